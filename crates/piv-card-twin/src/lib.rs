//! A software PIV card — a "hardware twin" of a YubiKey 5's PIV application — that plugs into a real
//! `pcscd` through vpcd, the virtual reader driver of vsmartcard (`vsmartcard-vpcd` on Debian).
//!
//! **This is a TEST FIXTURE, never a security device.** Its keys, PIN and management key live in
//! process memory; it has no secure element and no button. It exists so that Custos's real PIV
//! backend (`custos_hardware::YubiKeyPiv`, the unmodified `yubikey` crate 0.8 → `pcsc` →
//! libpcsclite → pcscd → vpcd) can be tested end to end on machines without a YubiKey. Never install
//! vpcd on a custodian's laptop: any local process could then present itself as a smart card.
//!
//! # Using it
//!
//! ```no_run
//! use std::time::Duration;
//! use custos_piv_card_twin::{PivState, Touch, VirtualPivCard, DEFAULT_HOST, DEFAULT_PORT};
//!
//! let card = VirtualPivCard::new(PivState::personalised(
//!     12345678,
//!     "246813",
//!     "97531864",
//!     [0x42; 24],
//! ));
//! let inserted = card.insert((DEFAULT_HOST, DEFAULT_PORT), Duration::from_secs(10))?;
//! // … open the reader "Virtual PCD 00 00" with the yubikey crate, use it …
//! card.set_touch(Touch::Refused); // the next touch is not given: 6982
//! inserted.remove()?; // pulled out, even in the middle of a command
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! pcscd must run with vpcd configured (`scripts/pcscd-vpcd.sh start` in this repository writes a
//! private reader.conf and starts one). Select the virtual reader **by name**: with a real YubiKey
//! plugged in, `YubiKey::open()` would see two keys.
//!
//! # What it answers
//!
//! The instructions the `yubikey` crate 0.8 (feature `untested`) sends for Custos, short or chained
//! (CLA 0x10), with GET RESPONSE (`61xx`) for long answers:
//!
//! - SELECT the PIV AID (`A0 00 00 03 08`, answered with the application property template); any
//!   other AID is 6A82. Selecting resets the security status. Other instructions before a SELECT
//!   answer 6D00.
//! - GET VERSION (`FD`, 5.4.3 by default: 5.3+ has GET METADATA, below 5.7 the management key is
//!   3DES), GET SERIAL (`F8`).
//! - VERIFY (`20 00 80`): 8 bytes, FF-padded; right → 9000 and the tries back to 3; wrong → `63Cx`
//!   with x tries left (`63C0` on the last); at 0 → 6983 even for the right PIN. Empty data queries
//!   the tries (`63Cx`, or 9000 when verified). `20 FF 80` forgets the verification.
//! - CHANGE REFERENCE (`24 00 80|81`, old ‖ new) for PIN and PUK; RESET RETRY (`2C 00 80`, PUK ‖
//!   new PIN); the same counters.
//! - GENERAL AUTHENTICATE with the 3DES management key (`87 03 9B`): mutual (`7C 02 80 00` → the
//!   witness encrypted; `7C 14 80 08 W 81 08 C` → `7C 0A 82 08 E(K,C)`, or 6982 for a wrong witness)
//!   and single (`81 00` / `82 08`).
//! - GENERATE ASYMMETRIC (`47 00 slot`, `AC { 80 11, AA pin, AB touch }`): P-256 only, in 9A/9C/9D/9E
//!   and the retired slots 82–95; needs the management key (6982 otherwise); PIN and touch policy
//!   bytes are recorded as received; answers `7F 49 41 86 41 <point>`.
//! - GENERAL AUTHENTICATE ECDH (`87 11 slot`, `7C { 82 00, 85 <point> }`) → `7C 22 82 20 <x>`. The
//!   PIN policy is enforced (once: verified in this session; always: verified just before), then the
//!   touch policy: the card asks the test's [`Touch`] setting.
//! - GET METADATA (`F7 00 slot`): PIN/PUK (`01 FF`, `05` default flag, `06` total/remaining tries),
//!   management key (`01 03`, `02` policies, `05` default flag), key slots (`01 11`, `02` pin/touch
//!   policy, `03` origin, `04 { 86 point }`); an empty slot answers 6A88.
//! - GET DATA / PUT DATA (`CB`/`DB 3F FF`, `5C id [53 content]`): any object; the printed object
//!   5FC109 (where the PIN-protected management key lives) needs the PIN to be read; PUT DATA needs
//!   the management key; an empty `53` deletes. The discovery object 7E is built in.
//! - SET MANAGEMENT KEY (`FF FF FF|FE`, 3DES), RESET (`FB`, only with PIN and PUK blocked).
//!
//! # How it differs from a real YubiKey
//!
//! - No RSA, P-384, Ed25519/X25519 or AES management keys; no signing (`87 11 slot 7C{81 …}` is
//!   6A80), no IMPORT, ATTEST, SET PIN RETRIES, biometrics, no certificates beyond what PUT DATA
//!   stores. Only the OTP/management applets' absence is modelled (6A82 on SELECT).
//! - "No touch" answers 6982 at once ([`Touch::Refused`]); a YubiKey waits about 15 s first. The
//!   touch-cached policy is treated as "always".
//! - Status words follow the `yubikey` crate's expectations and the PIV/Yubico documentation as read
//!   here; a real key may differ in corner cases (for instance the status of an ECDH with an empty
//!   slot, here 6A80). docs/hardware-checklist.md says how to compare with a `pcscd -a` trace.
//! - State is in memory: a card lives as long as its [`VirtualPivCard`] handle, across any number of
//!   insertions and resets.

pub mod apdu;
pub mod applet;
pub mod vpcd;

pub use applet::{
    pin_policy, touch_policy, PivApplet, PivState, SlotKey, TouchOutcome, FACTORY_MGM_KEY,
    FACTORY_PIN, FACTORY_PUK,
};
pub use vpcd::{
    Inserted, Touch, VirtualPivCard, DEFAULT_HOST, DEFAULT_PORT, REINSERT_DELAY, YUBIKEY5_ATR,
};

#[cfg(test)]
mod tests {
    //! The applet driven with the APDUs the `yubikey` crate sends, without pcscd.
    use super::applet::{host_decrypt, host_encrypt};
    use super::*;
    use p256::elliptic_curve::sec1::ToSec1Point;

    const PIN: &str = "246813";
    const MGM: [u8; 24] = [
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xF0,
        0x01, 0x12, 0x23, 0x34, 0x45, 0x56, 0x67, 0x78, 0x89,
    ];

    struct Host {
        applet: PivApplet,
        touch: TouchOutcome,
        touches: u32,
    }

    impl Host {
        fn new(state: PivState) -> Host {
            let mut h = Host {
                applet: PivApplet::new(state),
                touch: TouchOutcome::Touched,
                touches: 0,
            };
            let (_, sw) = h.send(&[0, 0xA4, 4, 0, 5, 0xA0, 0, 0, 3, 8]);
            assert_eq!(sw, 0x9000);
            h
        }

        fn send(&mut self, apdu: &[u8]) -> (Vec<u8>, u16) {
            let outcome = self.touch;
            let touches = &mut self.touches;
            let mut touch = || {
                *touches += 1;
                outcome
            };
            let mut r = self
                .applet
                .process(apdu, &mut touch)
                .expect("the card answers");
            assert!(r.len() >= 2);
            let sw = u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]);
            r.truncate(r.len() - 2);
            (r, sw)
        }

        fn apdu(&mut self, ins: u8, p1: u8, p2: u8, data: &[u8]) -> (Vec<u8>, u16) {
            let mut a = vec![0, ins, p1, p2, data.len() as u8];
            a.extend_from_slice(data);
            self.send(&a)
        }

        fn verify(&mut self, pin: &str) -> u16 {
            let mut d = [0xFF; 8];
            d[..pin.len()].copy_from_slice(pin.as_bytes());
            self.apdu(0x20, 0, 0x80, &d).1
        }

        fn authenticate(&mut self, key: &[u8; 24]) -> u16 {
            let (r, sw) = self.apdu(0x87, 3, 0x9B, &[0x7C, 2, 0x80, 0]);
            assert_eq!(sw, 0x9000);
            assert_eq!(r[..4], [0x7C, 0x0A, 0x80, 0x08]);
            let w = host_decrypt(key, r[4..12].try_into().expect("8")).expect("3des");
            let c = [9u8; 8];
            let mut d = vec![0x7C, 20, 0x80, 8];
            d.extend_from_slice(&w);
            d.extend_from_slice(&[0x81, 8]);
            d.extend_from_slice(&c);
            let (r, sw) = self.apdu(0x87, 3, 0x9B, &d);
            if sw == 0x9000 {
                assert_eq!(r[4..12], host_encrypt(key, &c).expect("3des"));
            }
            sw
        }
    }

    fn generate(h: &mut Host, slot: u8) -> (Vec<u8>, u16) {
        h.apdu(
            0x47,
            0,
            slot,
            &[0xAC, 9, 0x80, 1, 0x11, 0xAA, 1, 2, 0xAB, 1, 2],
        )
    }

    #[test]
    fn version_serial_and_factory_metadata() {
        let mut h = Host::new(PivState::factory(0x0102_0304));
        assert_eq!(h.apdu(0xFD, 0, 0, &[]), (vec![5, 4, 3], 0x9000));
        assert_eq!(h.apdu(0xF8, 0, 0, &[]), (vec![1, 2, 3, 4], 0x9000));
        let (m, sw) = h.apdu(0xF7, 0, 0x80, &[]);
        assert_eq!(sw, 0x9000);
        assert_eq!(m, [1, 1, 0xFF, 5, 1, 1, 6, 2, 3, 3]);
        let (m, _) = h.apdu(0xF7, 0, 0x9B, &[]);
        assert_eq!(m, [1, 1, 3, 2, 2, 0, 1, 5, 1, 1]);
        assert_eq!(h.apdu(0xF7, 0, 0x82, &[]).1, 0x6A88);
        // The retries query spends nothing.
        for _ in 0..5 {
            assert_eq!(h.apdu(0x20, 0, 0x80, &[]).1, 0x63C3);
        }
    }

    #[test]
    fn a_wrong_pin_counts_down_and_blocks_even_the_right_one() {
        let mut h = Host::new(PivState::personalised(1, PIN, "97531864", MGM));
        assert_eq!(h.verify("000000"), 0x63C2);
        assert_eq!(h.verify("000000"), 0x63C1);
        assert_eq!(h.verify(PIN), 0x9000, "the right PIN restores the tries");
        assert_eq!(h.apdu(0x20, 0, 0x80, &[]).1, 0x9000, "verified");
        for expected in [0x63C2, 0x63C1, 0x63C0, 0x6983, 0x6983] {
            assert_eq!(h.verify("000000"), expected);
        }
        assert_eq!(h.verify(PIN), 0x6983);
        assert_eq!(h.applet.state().pin_tries(), 0);
        // Unblock with the PUK.
        let mut d = *b"97531864";
        let mut new = [0xFF; 8];
        new[..6].copy_from_slice(b"135790");
        let mut data = d.to_vec();
        data.extend_from_slice(&new);
        assert_eq!(h.apdu(0x2C, 0, 0x80, &data).1, 0x9000);
        d.fill(0);
        assert_eq!(h.verify("135790"), 0x9000);
        // Malformed PIN fields are refused without counting.
        assert_eq!(h.apdu(0x20, 0, 0x80, &[1, 2, 3]).1, 0x6A80);
        assert_eq!(h.applet.state().pin_tries(), 3);
    }

    #[test]
    fn management_key_gates_generation_and_a_wrong_key_is_refused() {
        let mut h = Host::new(PivState::personalised(1, PIN, "97531864", MGM));
        assert_eq!(generate(&mut h, 0x82).1, 0x6982, "not authenticated");
        assert_eq!(h.authenticate(&FACTORY_MGM_KEY), 0x6982);
        assert_eq!(generate(&mut h, 0x82).1, 0x6982);
        assert_eq!(h.authenticate(&MGM), 0x9000);
        let (r, sw) = generate(&mut h, 0x82);
        assert_eq!(sw, 0x9000);
        assert_eq!(r[..5], [0x7F, 0x49, 0x43, 0x86, 0x41]);
        let point = r[5..].to_vec();
        let slot = h.applet.state().slot(0x82).expect("key").clone();
        assert_eq!((slot.pin_policy, slot.touch_policy), (2, 2));
        assert_eq!(slot.public_key(), point);
        let (m, sw) = h.apdu(0xF7, 0, 0x82, &[]);
        assert_eq!(sw, 0x9000);
        let mut expected = vec![1, 1, 0x11, 2, 2, 2, 2, 3, 1, 1, 4, 0x43, 0x86, 0x41];
        expected.extend_from_slice(&point);
        assert_eq!(m, expected);
        // Selecting again forgets the management key.
        h.apdu(0xA4, 4, 0, &[0xA0, 0, 0, 3, 8]);
        assert_eq!(generate(&mut h, 0x83).1, 0x6982);
    }

    #[test]
    fn ecdh_needs_the_pin_then_the_touch_and_matches_the_peer_side() {
        let mut h = Host::new(PivState::personalised(1, PIN, "97531864", MGM));
        assert_eq!(h.authenticate(&MGM), 0x9000);
        let (r, _) = generate(&mut h, 0x85);
        let card_public = p256::PublicKey::from_sec1_bytes(&r[5..]).expect("point");
        let eph = p256::SecretKey::from_slice(&[7u8; 32]).expect("scalar");
        let eph_pub = eph.public_key().to_sec1_point(false);
        let mut data = vec![0x7C, 0x45, 0x82, 0x00, 0x85, 0x41];
        data.extend_from_slice(eph_pub.as_bytes());
        assert_eq!(h.apdu(0x87, 0x11, 0x85, &data).1, 0x6982, "no PIN");
        assert_eq!(h.touches, 0, "no touch asked before the PIN");
        assert_eq!(h.verify(PIN), 0x9000);
        h.touch = TouchOutcome::TimedOut;
        assert_eq!(h.apdu(0x87, 0x11, 0x85, &data).1, 0x6982, "no touch");
        assert_eq!(h.touches, 1);
        h.touch = TouchOutcome::Touched;
        let (r, sw) = h.apdu(0x87, 0x11, 0x85, &data);
        assert_eq!(sw, 0x9000);
        assert_eq!(r[..4], [0x7C, 0x22, 0x82, 0x20]);
        let expected = p256::ecdh::diffie_hellman(eph.to_nonzero_scalar(), card_public.as_affine());
        assert_eq!(&r[4..], expected.raw_secret_bytes().as_slice());
        // Removed while waiting for the touch: no answer at all.
        h.touch = TouchOutcome::Removed;
        let mut touch = || TouchOutcome::Removed;
        let mut apdu = vec![0, 0x87, 0x11, 0x85, data.len() as u8];
        apdu.extend_from_slice(&data);
        assert!(h.applet.process(&apdu, &mut touch).is_none());
        // Off-curve peer and empty slot.
        let mut bad = data.clone();
        bad[70] ^= 1;
        assert_eq!(h.apdu(0x87, 0x11, 0x85, &bad).1, 0x6A80);
        assert_eq!(h.apdu(0x87, 0x11, 0x86, &data).1, 0x6A80);
    }

    #[test]
    fn chaining_get_response_and_the_pin_protected_object() {
        let mut h = Host::new(PivState::personalised(1, PIN, "97531864", MGM));
        let get = [0x5C, 3, 0x5F, 0xC1, 0x09];
        assert_eq!(h.apdu(0xCB, 0x3F, 0xFF, &get).1, 0x6982, "PIN first");
        assert_eq!(h.verify(PIN), 0x9000);
        let (r, sw) = h.apdu(0xCB, 0x3F, 0xFF, &get);
        assert_eq!(sw, 0x9000);
        let mut expected = vec![0x53, 0x1C, 0x88, 0x1A, 0x89, 0x18];
        expected.extend_from_slice(&MGM);
        assert_eq!(r, expected);

        // A 600-byte object written in chained APDUs, read back through GET RESPONSE.
        assert_eq!(h.authenticate(&MGM), 0x9000);
        let content = vec![0xAB; 600];
        let mut data = vec![0x5C, 3, 0x5F, 0xC1, 0x05, 0x53, 0x82, 0x02, 0x58];
        data.extend_from_slice(&content);
        let chunks: Vec<&[u8]> = data.chunks(255).collect();
        for (i, c) in chunks.iter().enumerate() {
            let cla = if i + 1 < chunks.len() { 0x10 } else { 0 };
            let mut a = vec![cla, 0xDB, 0x3F, 0xFF, c.len() as u8];
            a.extend_from_slice(c);
            assert_eq!(h.send(&a).1, 0x9000);
        }
        let (mut got, mut sw) = h.apdu(0xCB, 0x3F, 0xFF, &[0x5C, 3, 0x5F, 0xC1, 0x05]);
        while sw & 0xFF00 == 0x6100 {
            let (more, s) = h.apdu(0xC0, 0, 0, &[]);
            got.extend_from_slice(&more);
            sw = s;
        }
        assert_eq!(sw, 0x9000);
        assert_eq!(got[..4], [0x53, 0x82, 0x02, 0x58]);
        assert_eq!(got[4..], content[..]);
        assert_eq!(
            h.apdu(0xCB, 0x3F, 0xFF, &[0x5C, 3, 0x5F, 0xC1, 0x0A]).1,
            0x6A82
        );
    }

    #[test]
    fn malformed_input_gets_a_status_word_never_a_panic() {
        let mut h = Host::new(PivState::personalised(1, PIN, "97531864", MGM));
        let mut seed = 0x1234_5678u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 80) as usize;
            let mut a: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if a.len() > 1 && next() % 2 == 0 {
                // Mostly-valid headers, to get past the CLA/INS checks.
                a[0] = [0, 0x10][(next() % 2) as usize];
                a[1] = [
                    0x20, 0x24, 0x2C, 0x47, 0x87, 0xCB, 0xDB, 0xF7, 0xFF, 0xC0, 0xA4,
                ][(next() % 11) as usize];
            }
            let mut touch = || TouchOutcome::Touched;
            let r = h.applet.process(&a, &mut touch).expect("an answer");
            assert!(r.len() >= 2);
        }
        // Also with the management key authenticated and the PIN verified.
        assert_eq!(h.verify(PIN), 0x9000);
        assert_eq!(h.authenticate(&MGM), 0x9000);
        assert_eq!(h.apdu(0x47, 0, 0x82, &[0xAC, 3, 0x80, 1, 0x14]).1, 0x6A80);
        assert_eq!(h.apdu(0x47, 0, 0x82, &[0xAC, 5, 0x80, 1]).1, 0x6A80);
        assert_eq!(h.apdu(0xFF, 0xFF, 0xFF, &[3, 0x9B, 24, 1]).1, 0x6A80);
        assert_eq!(h.apdu(0xDB, 0x3F, 0xFF, &[0x5C, 9]).1, 0x6A80);
    }
}
