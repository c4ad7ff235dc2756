//! The PIV application: persistent state ([`PivState`]) and the APDU handler ([`PivApplet`]), with no
//! I/O, so that it can be unit-tested without pcscd.

use std::collections::BTreeMap;

use des::cipher::generic_array::GenericArray;
use des::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use des::TdesEde3;
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::{PublicKey, SecretKey};
use zeroize::{Zeroize, Zeroizing};

use crate::apdu::{parse_all, parse_tlv, response, sw, tlv, tlv2, Command};

/// The PIV application identifier (NIST SP 800-73-4), as a YubiKey answers it.
pub const PIV_AID: [u8; 11] = [
    0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];
/// Factory PIN, PUK and management key of a YubiKey's PIV application.
pub const FACTORY_PIN: &[u8] = b"123456";
pub const FACTORY_PUK: &[u8] = b"12345678";
pub const FACTORY_MGM_KEY: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];
/// Tries a new PIN or PUK gets.
pub const DEFAULT_TRIES: u8 = 3;

/// The version GET VERSION reports: 5.4.3 (5.3+ has GET METADATA; below 5.7, so a 3DES management
/// key as the `yubikey` crate 0.8 expects).
pub const DEFAULT_VERSION: [u8; 3] = [5, 4, 3];

/// The "printed information" object, where YubiKey tools keep the PIN-protected management key.
pub const OBJ_PRINTED: u32 = 0x5F_C109;
/// Yubico's admin data object (flags: "management key is PIN-protected").
pub const OBJ_ADMIN_DATA: u32 = 0x5F_FF00;
/// The discovery object.
pub const OBJ_DISCOVERY: u32 = 0x7E;

/// Slot references.
pub const SLOT_PIN: u8 = 0x80;
pub const SLOT_PUK: u8 = 0x81;
pub const SLOT_MGM: u8 = 0x9B;

/// Algorithm references.
pub const ALG_3DES: u8 = 0x03;
pub const ALG_P256: u8 = 0x11;

/// PIN policy bytes (tag AA of GENERATE, tag 02 of metadata).
pub mod pin_policy {
    pub const DEFAULT: u8 = 0;
    pub const NEVER: u8 = 1;
    pub const ONCE: u8 = 2;
    pub const ALWAYS: u8 = 3;
}

/// Touch policy bytes (tag AB of GENERATE, tag 02 of metadata).
pub mod touch_policy {
    pub const DEFAULT: u8 = 0;
    pub const NEVER: u8 = 1;
    pub const ALWAYS: u8 = 2;
    pub const CACHED: u8 = 3;
}

/// Where a key came from (metadata tag 03).
pub const ORIGIN_GENERATED: u8 = 1;
pub const ORIGIN_IMPORTED: u8 = 2;

/// What happened when the card asked for a touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TouchOutcome {
    /// The person touched the key.
    Touched,
    /// Nobody touched it in time: the card answers 6982, as a YubiKey does.
    TimedOut,
    /// The card was pulled out while it waited: it answers nothing.
    Removed,
}

/// A P-256 key in a slot, with the policies it was generated with.
#[derive(Clone)]
pub struct SlotKey {
    secret: SecretKey,
    /// The PIN policy byte as received (0 = default).
    pub pin_policy: u8,
    /// The touch policy byte as received (0 = default).
    pub touch_policy: u8,
    pub origin: u8,
}

impl SlotKey {
    /// The SEC1 uncompressed public key (65 bytes).
    pub fn public_key(&self) -> Vec<u8> {
        self.secret
            .public_key()
            .to_sec1_point(false)
            .as_bytes()
            .to_vec()
    }

    /// The policy in force: a default byte resolved as a YubiKey resolves it for the slot.
    fn effective_pin_policy(&self, slot: u8) -> u8 {
        match (self.pin_policy, slot) {
            (pin_policy::DEFAULT, 0x9C) => pin_policy::ALWAYS,
            (pin_policy::DEFAULT, 0x9E) => pin_policy::NEVER,
            (pin_policy::DEFAULT, _) => pin_policy::ONCE,
            (p, _) => p,
        }
    }

    fn effective_touch_policy(&self) -> u8 {
        match self.touch_policy {
            touch_policy::DEFAULT => touch_policy::NEVER,
            t => t,
        }
    }
}

impl std::fmt::Debug for SlotKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotKey")
            .field("pin_policy", &self.pin_policy)
            .field("touch_policy", &self.touch_policy)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// What survives a power cycle: serial, version, PIN/PUK and their counters, the management key, keys
/// and data objects. In memory only.
#[derive(Clone)]
pub struct PivState {
    pub serial: u32,
    pub version: [u8; 3],
    pin: Zeroizing<Vec<u8>>,
    puk: Zeroizing<Vec<u8>>,
    pin_tries: u8,
    puk_tries: u8,
    mgm_key: Zeroizing<[u8; 24]>,
    mgm_touch: bool,
    slots: BTreeMap<u8, SlotKey>,
    objects: BTreeMap<u32, Vec<u8>>,
}

impl std::fmt::Debug for PivState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PivState")
            .field("serial", &self.serial)
            .field("version", &self.version)
            .field("pin_tries", &self.pin_tries)
            .field("puk_tries", &self.puk_tries)
            .field("slots", &self.slots)
            .field("objects", &self.objects.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl PivState {
    /// A card as it leaves the factory: PIN 123456, PUK 12345678, the default 3DES management key,
    /// no keys, no objects.
    pub fn factory(serial: u32) -> PivState {
        PivState {
            serial,
            version: DEFAULT_VERSION,
            pin: Zeroizing::new(FACTORY_PIN.to_vec()),
            puk: Zeroizing::new(FACTORY_PUK.to_vec()),
            pin_tries: DEFAULT_TRIES,
            puk_tries: DEFAULT_TRIES,
            mgm_key: Zeroizing::new(FACTORY_MGM_KEY),
            mgm_touch: false,
            slots: BTreeMap::new(),
            objects: BTreeMap::new(),
        }
    }

    /// A card personalised as `ykman piv access change-pin`, `change-puk` and
    /// `change-management-key --algorithm TDES --generate --protect` leave it: the given PIN and
    /// PUK, and `mgm_key` set as the management key **and** stored PIN-protected in the printed
    /// object (`88 1A 89 18 <key>`), with the admin-data flag saying so.
    pub fn personalised(serial: u32, pin: &str, puk: &str, mgm_key: [u8; 24]) -> PivState {
        let mut s = PivState::factory(serial);
        s.pin = Zeroizing::new(pin.as_bytes().to_vec());
        s.puk = Zeroizing::new(puk.as_bytes().to_vec());
        s.mgm_key = Zeroizing::new(mgm_key);
        s.objects
            .insert(OBJ_PRINTED, tlv(0x88, &tlv(0x89, &mgm_key)));
        // Admin data: flags-1 = 0x02 (PIN-protected management key).
        s.objects
            .insert(OBJ_ADMIN_DATA, tlv(0x80, &tlv(0x81, &[0x02])));
        s
    }

    /// Another version (e.g. 5.2.7 to see the "older than 5.3" refusal).
    pub fn with_version(mut self, version: [u8; 3]) -> PivState {
        self.version = version;
        self
    }

    /// Puts a P-256 key in `slot` directly (origin "generated"), for tests that start with an
    /// enrolled card.
    pub fn with_p256_key(
        mut self,
        slot: u8,
        secret: [u8; 32],
        pin_policy: u8,
        touch_policy: u8,
    ) -> Option<PivState> {
        let secret = SecretKey::from_slice(&secret).ok()?;
        self.slots.insert(
            slot,
            SlotKey {
                secret,
                pin_policy,
                touch_policy,
                origin: ORIGIN_GENERATED,
            },
        );
        Some(self)
    }

    pub fn pin_tries(&self) -> u8 {
        self.pin_tries
    }

    pub fn puk_tries(&self) -> u8 {
        self.puk_tries
    }

    pub fn pin_is_default(&self) -> bool {
        self.pin.as_slice() == FACTORY_PIN
    }

    pub fn puk_is_default(&self) -> bool {
        self.puk.as_slice() == FACTORY_PUK
    }

    pub fn mgm_key_is_default(&self) -> bool {
        *self.mgm_key == FACTORY_MGM_KEY
    }

    /// The key in `slot`, if any.
    pub fn slot(&self, slot: u8) -> Option<&SlotKey> {
        self.slots.get(&slot)
    }

    /// The stored data object `id`, if any.
    pub fn object(&self, id: u32) -> Option<&[u8]> {
        self.objects.get(&id).map(Vec::as_slice)
    }
}

/// What a reset clears: security status, half-done authentications, chaining buffers.
#[derive(Default)]
struct Session {
    selected: bool,
    pin_verified: bool,
    /// PIN policy "always": the next private-key operation consumes the verification.
    pin_fresh: bool,
    mgm_authenticated: bool,
    /// The witness of a mutual authentication in progress.
    witness: Option<[u8; 8]>,
    /// The challenge of a single (external) authentication in progress.
    challenge: Option<[u8; 8]>,
    /// Command chaining: the INS and data received so far.
    chain: Option<(u8, Vec<u8>)>,
    /// Response data still to be fetched with GET RESPONSE.
    pending: Vec<u8>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.pending.zeroize();
        if let Some((_, d)) = self.chain.as_mut() {
            d.zeroize();
        }
    }
}

/// The most response data sent in one APDU before `61xx`.
const MAX_RESPONSE_CHUNK: usize = 256;

/// The PIV application of the virtual card.
pub struct PivApplet {
    state: PivState,
    session: Session,
}

type Reply = (Vec<u8>, u16);

fn status(sw: u16) -> Reply {
    (Vec::new(), sw)
}

fn random<const N: usize>() -> Option<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).ok()?;
    Some(b)
}

fn tdes(key: &[u8; 24]) -> Option<TdesEde3> {
    TdesEde3::new_from_slice(key).ok()
}

fn tdes_encrypt(key: &[u8; 24], block: &[u8; 8]) -> Option<[u8; 8]> {
    let mut b = GenericArray::clone_from_slice(block);
    tdes(key)?.encrypt_block(&mut b);
    Some(b.into())
}

fn tdes_decrypt(key: &[u8; 24], block: &[u8; 8]) -> Option<[u8; 8]> {
    let mut b = GenericArray::clone_from_slice(block);
    tdes(key)?.decrypt_block(&mut b);
    Some(b.into())
}

/// A PIN or PUK as VERIFY carries it: 8 bytes, padded with FF.
fn unpad(field: &[u8]) -> Option<&[u8]> {
    if field.len() != 8 {
        return None;
    }
    let end = field.iter().position(|&b| b == 0xFF).unwrap_or(8);
    if field[end..].iter().any(|&b| b != 0xFF) {
        return None;
    }
    Some(&field[..end])
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Object id of a GET/PUT DATA tag list `5C len id`.
fn object_id(tag_list: &[u8]) -> Option<u32> {
    if tag_list.is_empty() || tag_list.len() > 3 {
        return None;
    }
    Some(
        tag_list
            .iter()
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b)),
    )
}

fn is_key_slot(slot: u8) -> bool {
    matches!(slot, 0x9A | 0x9C | 0x9D | 0x9E | 0x82..=0x95)
}

impl PivApplet {
    pub fn new(state: PivState) -> PivApplet {
        PivApplet {
            state,
            session: Session::default(),
        }
    }

    pub fn state(&self) -> &PivState {
        &self.state
    }

    /// Power off, power on or reset: the security status and any half-done exchange are gone.
    pub fn reset(&mut self) {
        self.session = Session::default();
    }

    /// Answers one command APDU. `touch` is asked when a key with touch policy "always"/"cached" is
    /// used. `None`: the card was removed while it waited, and answers nothing.
    pub fn process(
        &mut self,
        raw: &[u8],
        touch: &mut dyn FnMut() -> TouchOutcome,
    ) -> Option<Vec<u8>> {
        let Some(cmd) = Command::parse(raw) else {
            return Some(response(&[], sw::WRONG_LENGTH));
        };
        if cmd.cla & !0x10 != 0 {
            return Some(response(&[], sw::CLA_NOT_SUPPORTED));
        }
        if cmd.ins == 0xC0 {
            return Some(self.get_response());
        }
        self.session.pending.zeroize();
        self.session.pending.clear();
        // Command chaining (CLA bit 0x10): collect, answer 9000, act on the last part.
        let data = match self.session.chain.take() {
            Some((ins, mut so_far)) if ins == cmd.ins => {
                so_far.extend_from_slice(&cmd.data);
                so_far
            }
            Some((_, mut other)) => {
                other.zeroize();
                cmd.data.clone()
            }
            None => cmd.data.clone(),
        };
        let mut data = Zeroizing::new(data);
        if cmd.cla & 0x10 != 0 {
            if data.len() > 0x4000 {
                return Some(response(&[], sw::WRONG_LENGTH));
            }
            self.session.chain = Some((cmd.ins, std::mem::take(&mut *data)));
            return Some(response(&[], sw::OK));
        }
        let (body, code) = match self.dispatch(&cmd, &data, touch)? {
            (body, code) if code == sw::OK => (body, code),
            (_, code) => (Vec::new(), code),
        };
        Some(self.send(body, code))
    }

    fn send(&mut self, mut body: Vec<u8>, code: u16) -> Vec<u8> {
        if body.len() <= MAX_RESPONSE_CHUNK {
            let r = response(&body, code);
            body.zeroize();
            return r;
        }
        let rest = body.split_off(MAX_RESPONSE_CHUNK);
        self.session.pending = rest;
        let more = self.session.pending.len().min(0xFF) as u16;
        let r = response(&body, sw::MORE_DATA | more);
        body.zeroize();
        r
    }

    fn get_response(&mut self) -> Vec<u8> {
        if self.session.pending.is_empty() {
            return response(&[], sw::CONDITIONS_NOT_SATISFIED);
        }
        let pending = std::mem::take(&mut self.session.pending);
        self.send(pending, sw::OK)
    }

    fn dispatch(
        &mut self,
        cmd: &Command,
        data: &[u8],
        touch: &mut dyn FnMut() -> TouchOutcome,
    ) -> Option<Reply> {
        if cmd.ins == 0xA4 {
            return Some(self.select(cmd, data));
        }
        if !self.session.selected {
            // Another application (or none) is selected: it does not know PIV instructions.
            return Some(status(sw::INS_NOT_SUPPORTED));
        }
        Some(match cmd.ins {
            0xFD => (self.state.version.to_vec(), sw::OK),
            0xF8 => (self.state.serial.to_be_bytes().to_vec(), sw::OK),
            0x20 => self.verify(cmd, data),
            0x24 => self.change_reference(cmd, data),
            0x2C => self.reset_retry(cmd, data),
            0x87 => return self.general_authenticate(cmd, data, touch),
            0x47 => self.generate(cmd, data),
            0xF7 => self.metadata(cmd),
            0xCB => self.get_data(cmd, data),
            0xDB => self.put_data(cmd, data),
            0xFF => self.set_management_key(cmd, data),
            0xFB => self.factory_reset(),
            _ => status(sw::INS_NOT_SUPPORTED),
        })
    }

    fn select(&mut self, cmd: &Command, aid: &[u8]) -> Reply {
        if cmd.p1 != 0x04 {
            return status(sw::INCORRECT_P1P2);
        }
        // Selecting (even re-selecting) resets the security status, as on a YubiKey.
        self.session = Session::default();
        if aid.len() >= 5 && PIV_AID.starts_with(aid) {
            self.session.selected = true;
            // Application property template: 61 { 4F PIX, 79 { 4F RID } }.
            let apt = [
                tlv(0x4F, &PIV_AID[5..]),
                tlv(0x79, &tlv(0x4F, &PIV_AID[..5])),
            ]
            .concat();
            (tlv(0x61, &apt), sw::OK)
        } else {
            status(sw::FILE_NOT_FOUND)
        }
    }

    /// VERIFY PIN (P2 80). No data: the number of tries left (63Cx) or 9000 when verified. P1 FF:
    /// forget the verification.
    fn verify(&mut self, cmd: &Command, data: &[u8]) -> Reply {
        if cmd.p2 != SLOT_PIN || !(cmd.p1 == 0x00 || cmd.p1 == 0xFF) {
            return status(sw::INCORRECT_P1P2);
        }
        if cmd.p1 == 0xFF {
            if !data.is_empty() {
                return status(sw::INCORRECT_DATA);
            }
            self.session.pin_verified = false;
            self.session.pin_fresh = false;
            return status(sw::OK);
        }
        if data.is_empty() {
            return if self.session.pin_verified {
                status(sw::OK)
            } else if self.state.pin_tries == 0 {
                status(sw::AUTH_BLOCKED)
            } else {
                status(sw::VERIFY_FAIL | u16::from(self.state.pin_tries))
            };
        }
        let Some(pin) = unpad(data) else {
            return status(sw::INCORRECT_DATA);
        };
        if self.state.pin_tries == 0 {
            return status(sw::AUTH_BLOCKED);
        }
        if constant_time_eq(pin, &self.state.pin) {
            self.state.pin_tries = DEFAULT_TRIES;
            self.session.pin_verified = true;
            self.session.pin_fresh = true;
            status(sw::OK)
        } else {
            self.state.pin_tries -= 1;
            self.session.pin_verified = false;
            self.session.pin_fresh = false;
            status(sw::VERIFY_FAIL | u16::from(self.state.pin_tries))
        }
    }

    /// Checks `given` against the PIN or PUK, counting tries. `Ok(())` or the status word.
    fn check_reference(&mut self, which: u8, given: &[u8]) -> Result<(), u16> {
        let (secret, tries) = match which {
            SLOT_PIN => (&self.state.pin, &mut self.state.pin_tries),
            _ => (&self.state.puk, &mut self.state.puk_tries),
        };
        if *tries == 0 {
            return Err(sw::AUTH_BLOCKED);
        }
        if constant_time_eq(given, secret) {
            *tries = DEFAULT_TRIES;
            Ok(())
        } else {
            *tries -= 1;
            Err(sw::VERIFY_FAIL | u16::from(*tries))
        }
    }

    /// CHANGE REFERENCE DATA for the PIN (80) or PUK (81): old ‖ new, each 8 bytes FF-padded.
    fn change_reference(&mut self, cmd: &Command, data: &[u8]) -> Reply {
        if cmd.p1 != 0 || !(cmd.p2 == SLOT_PIN || cmd.p2 == SLOT_PUK) {
            return status(sw::INCORRECT_P1P2);
        }
        let (Some(old), Some(new)) = (data.get(..8).and_then(unpad), data.get(8..).and_then(unpad))
        else {
            return status(sw::INCORRECT_DATA);
        };
        let new = Zeroizing::new(new.to_vec());
        if let Err(code) = self.check_reference(cmd.p2, old) {
            if cmd.p2 == SLOT_PIN {
                self.session.pin_verified = false;
            }
            return status(code);
        }
        if !(6..=8).contains(&new.len()) {
            return status(sw::INCORRECT_DATA);
        }
        if cmd.p2 == SLOT_PIN {
            self.state.pin = new;
        } else {
            self.state.puk = new;
        }
        status(sw::OK)
    }

    /// RESET RETRY COUNTER: PUK ‖ new PIN unblocks the PIN.
    fn reset_retry(&mut self, cmd: &Command, data: &[u8]) -> Reply {
        if cmd.p1 != 0 || cmd.p2 != SLOT_PIN {
            return status(sw::INCORRECT_P1P2);
        }
        let (Some(puk), Some(new)) = (data.get(..8).and_then(unpad), data.get(8..).and_then(unpad))
        else {
            return status(sw::INCORRECT_DATA);
        };
        let new = Zeroizing::new(new.to_vec());
        if let Err(code) = self.check_reference(SLOT_PUK, puk) {
            return status(code);
        }
        if !(6..=8).contains(&new.len()) {
            return status(sw::INCORRECT_DATA);
        }
        self.state.pin = new;
        self.state.pin_tries = DEFAULT_TRIES;
        status(sw::OK)
    }

    /// GENERAL AUTHENTICATE: management-key authentication (P1 03, P2 9B) or a private-key operation
    /// (P1 11, P2 slot).
    fn general_authenticate(
        &mut self,
        cmd: &Command,
        data: &[u8],
        touch: &mut dyn FnMut() -> TouchOutcome,
    ) -> Option<Reply> {
        let Some((0x7C, inner, [])) = parse_tlv(data) else {
            return Some(status(sw::INCORRECT_DATA));
        };
        let Some(items) = parse_all(inner) else {
            return Some(status(sw::INCORRECT_DATA));
        };
        if cmd.p2 == SLOT_MGM {
            if cmd.p1 != ALG_3DES {
                return Some(status(sw::INCORRECT_P1P2));
            }
            return Some(self.management_auth(&items));
        }
        if !is_key_slot(cmd.p2) {
            return Some(status(sw::INCORRECT_P1P2));
        }
        let Some(key) = self.state.slots.get(&cmd.p2).cloned() else {
            return Some(status(sw::INCORRECT_DATA));
        };
        if cmd.p1 != ALG_P256 {
            return Some(status(sw::INCORRECT_P1P2));
        }
        // 82 00 (response requested) with 85 <point> (ECDH) or 81 <digest> (ECDSA sign).
        enum Op<'a> {
            Ecdh(PublicKey),
            Sign(&'a [u8]),
        }
        let op = match items.as_slice() {
            [(0x82, []), (0x85, point)] | [(0x85, point), (0x82, [])] => {
                match PublicKey::from_sec1_bytes(point) {
                    Ok(peer) => Op::Ecdh(peer),
                    Err(_) => return Some(status(sw::INCORRECT_DATA)),
                }
            }
            // A YubiKey signs a digest of at most the field size (SHA-256 for P-256).
            [(0x82, []), (0x81, digest)] | [(0x81, digest), (0x82, [])]
                if !digest.is_empty() && digest.len() <= 32 =>
            {
                Op::Sign(digest)
            }
            _ => return Some(status(sw::INCORRECT_DATA)),
        };
        match key.effective_pin_policy(cmd.p2) {
            pin_policy::NEVER => {}
            pin_policy::ALWAYS => {
                if !self.session.pin_fresh {
                    return Some(status(sw::SECURITY_STATUS));
                }
                self.session.pin_fresh = false;
            }
            _ => {
                if !self.session.pin_verified {
                    return Some(status(sw::SECURITY_STATUS));
                }
            }
        }
        if key.effective_touch_policy() != touch_policy::NEVER {
            match touch() {
                TouchOutcome::Touched => {}
                TouchOutcome::TimedOut => return Some(status(sw::SECURITY_STATUS)),
                TouchOutcome::Removed => return None,
            }
        }
        match op {
            Op::Ecdh(peer) => {
                let shared =
                    p256::ecdh::diffie_hellman(key.secret.to_nonzero_scalar(), peer.as_affine());
                let x = Zeroizing::new(shared.raw_secret_bytes().to_vec());
                Some((tlv(0x7C, &tlv(0x82, &x)), sw::OK))
            }
            Op::Sign(digest) => {
                use p256::ecdsa::signature::hazmat::PrehashSigner;
                let signer = p256::ecdsa::SigningKey::from(&key.secret);
                let mut prehash = [0u8; 32];
                prehash[32 - digest.len()..].copy_from_slice(digest);
                let signature: p256::ecdsa::Signature = match signer.sign_prehash(&prehash) {
                    Ok(s) => s,
                    Err(_) => return Some(status(sw::INCORRECT_DATA)),
                };
                Some((tlv(0x7C, &tlv(0x82, signature.to_der().as_bytes())), sw::OK))
            }
        }
    }

    fn management_auth(&mut self, items: &[(u8, &[u8])]) -> Reply {
        let key = self.state.mgm_key.clone();
        let key: &[u8; 24] = &key;
        match items {
            // Mutual authentication, step 1: the card's witness, encrypted.
            [(0x80, [])] => {
                let Some(w) = random::<8>() else {
                    return status(sw::CONDITIONS_NOT_SATISFIED);
                };
                let Some(ew) = tdes_encrypt(key, &w) else {
                    return status(sw::CONDITIONS_NOT_SATISFIED);
                };
                self.session.witness = Some(w);
                self.session.mgm_authenticated = false;
                (tlv(0x7C, &tlv(0x80, &ew)), sw::OK)
            }
            // Step 2: the decrypted witness and the host's challenge.
            [(0x80, w), (0x81, c)] if w.len() == 8 && c.len() == 8 => {
                let expected = self.session.witness.take();
                match expected {
                    Some(e) if constant_time_eq(&e, w) => {}
                    _ => return status(sw::SECURITY_STATUS),
                }
                let mut challenge = [0u8; 8];
                challenge.copy_from_slice(c);
                let Some(ec) = tdes_encrypt(key, &challenge) else {
                    return status(sw::CONDITIONS_NOT_SATISFIED);
                };
                self.session.mgm_authenticated = true;
                (tlv(0x7C, &tlv(0x82, &ec)), sw::OK)
            }
            // Single authentication: a challenge in the clear, the host answers it encrypted.
            [(0x81, [])] => {
                let Some(c) = random::<8>() else {
                    return status(sw::CONDITIONS_NOT_SATISFIED);
                };
                self.session.challenge = Some(c);
                self.session.mgm_authenticated = false;
                (tlv(0x7C, &tlv(0x81, &c)), sw::OK)
            }
            [(0x82, r)] if r.len() == 8 => {
                let Some(c) = self.session.challenge.take() else {
                    return status(sw::CONDITIONS_NOT_SATISFIED);
                };
                match tdes_encrypt(key, &c) {
                    Some(e) if constant_time_eq(&e, r) => {
                        self.session.mgm_authenticated = true;
                        status(sw::OK)
                    }
                    _ => status(sw::SECURITY_STATUS),
                }
            }
            _ => status(sw::INCORRECT_DATA),
        }
    }

    /// GENERATE ASYMMETRIC KEY PAIR: `AC { 80 alg, [AA pin], [AB touch] }`; P-256 only.
    fn generate(&mut self, cmd: &Command, data: &[u8]) -> Reply {
        if cmd.p1 != 0 || !is_key_slot(cmd.p2) {
            return status(sw::INCORRECT_P1P2);
        }
        if !self.session.mgm_authenticated {
            return status(sw::SECURITY_STATUS);
        }
        let Some((0xAC, inner, [])) = parse_tlv(data) else {
            return status(sw::INCORRECT_DATA);
        };
        let Some(items) = parse_all(inner) else {
            return status(sw::INCORRECT_DATA);
        };
        let (mut alg, mut pin, mut touch) = (None, pin_policy::DEFAULT, touch_policy::DEFAULT);
        for (tag, value) in items {
            match (tag, value) {
                (0x80, [a]) => alg = Some(*a),
                (0xAA, [p]) if *p <= pin_policy::ALWAYS => pin = *p,
                (0xAB, [t]) if *t <= touch_policy::CACHED => touch = *t,
                _ => return status(sw::INCORRECT_DATA),
            }
        }
        if alg != Some(ALG_P256) {
            // RSA, P-384, Ed25519 …: not in this twin (a YubiKey has them).
            return status(sw::INCORRECT_DATA);
        }
        let secret = loop {
            let Some(mut seed) = random::<32>() else {
                return status(sw::CONDITIONS_NOT_SATISFIED);
            };
            let k = SecretKey::from_slice(&seed);
            seed.zeroize();
            if let Ok(k) = k {
                break k;
            }
        };
        let key = SlotKey {
            secret,
            pin_policy: pin,
            touch_policy: touch,
            origin: ORIGIN_GENERATED,
        };
        let point = key.public_key();
        self.state.slots.insert(cmd.p2, key);
        (tlv2([0x7F, 0x49], &tlv(0x86, &point)), sw::OK)
    }

    /// GET METADATA (Yubico, firmware 5.3+): PIN/PUK (80/81), management key (9B), key slots.
    fn metadata(&mut self, cmd: &Command) -> Reply {
        if cmd.p1 != 0 {
            return status(sw::INCORRECT_P1P2);
        }
        let s = &self.state;
        let body = match cmd.p2 {
            SLOT_PIN | SLOT_PUK => {
                let (default, tries) = if cmd.p2 == SLOT_PIN {
                    (s.pin_is_default(), s.pin_tries)
                } else {
                    (s.puk_is_default(), s.puk_tries)
                };
                [
                    tlv(0x01, &[0xFF]),
                    tlv(0x05, &[u8::from(default)]),
                    tlv(0x06, &[DEFAULT_TRIES, tries]),
                ]
                .concat()
            }
            SLOT_MGM => {
                let touch = if s.mgm_touch {
                    touch_policy::ALWAYS
                } else {
                    touch_policy::NEVER
                };
                [
                    tlv(0x01, &[ALG_3DES]),
                    tlv(0x02, &[pin_policy::DEFAULT, touch]),
                    tlv(0x05, &[u8::from(s.mgm_key_is_default())]),
                ]
                .concat()
            }
            slot if is_key_slot(slot) || slot == 0xF9 => match s.slots.get(&slot) {
                None => return status(sw::REF_DATA_NOT_FOUND),
                Some(k) => [
                    tlv(0x01, &[ALG_P256]),
                    tlv(
                        0x02,
                        &[k.effective_pin_policy(slot), k.effective_touch_policy()],
                    ),
                    tlv(0x03, &[k.origin]),
                    tlv(0x04, &tlv(0x86, &k.public_key())),
                ]
                .concat(),
            },
            _ => return status(sw::INCORRECT_P1P2),
        };
        (body, sw::OK)
    }

    fn get_data(&mut self, cmd: &Command, data: &[u8]) -> Reply {
        if (cmd.p1, cmd.p2) != (0x3F, 0xFF) {
            return status(sw::INCORRECT_P1P2);
        }
        let Some((0x5C, tag_list, [])) = parse_tlv(data) else {
            return status(sw::INCORRECT_DATA);
        };
        let Some(id) = object_id(tag_list) else {
            return status(sw::INCORRECT_DATA);
        };
        if id == OBJ_PRINTED && !self.session.pin_verified {
            return status(sw::SECURITY_STATUS);
        }
        if id == OBJ_DISCOVERY {
            // 7E { 4F AID, 5F2F PIN usage policy 40 00 }.
            let body = [tlv(0x4F, &PIV_AID), vec![0x5F, 0x2F, 0x02, 0x40, 0x00]].concat();
            return (tlv(0x7E, &body), sw::OK);
        }
        match self.state.objects.get(&id) {
            Some(content) => (tlv(0x53, content), sw::OK),
            None => status(sw::FILE_NOT_FOUND),
        }
    }

    /// PUT DATA: `5C id 53 content`; an empty `53` deletes the object. Needs the management key.
    fn put_data(&mut self, cmd: &Command, data: &[u8]) -> Reply {
        if (cmd.p1, cmd.p2) != (0x3F, 0xFF) {
            return status(sw::INCORRECT_P1P2);
        }
        if !self.session.mgm_authenticated {
            return status(sw::SECURITY_STATUS);
        }
        let Some((0x5C, tag_list, rest)) = parse_tlv(data) else {
            return status(sw::INCORRECT_DATA);
        };
        let (Some(id), Some((0x53, content, []))) = (object_id(tag_list), parse_tlv(rest)) else {
            return status(sw::INCORRECT_DATA);
        };
        if id == OBJ_DISCOVERY {
            return status(sw::INCORRECT_DATA);
        }
        if content.is_empty() {
            self.state.objects.remove(&id);
        } else {
            self.state.objects.insert(id, content.to_vec());
        }
        status(sw::OK)
    }

    /// SET MANAGEMENT KEY (Yubico): P1 FF, P2 FF (no touch) or FE (touch); `03 9B 18 <key>`.
    fn set_management_key(&mut self, cmd: &Command, data: &[u8]) -> Reply {
        if cmd.p1 != 0xFF || !(cmd.p2 == 0xFF || cmd.p2 == 0xFE) {
            return status(sw::INCORRECT_P1P2);
        }
        if !self.session.mgm_authenticated {
            return status(sw::SECURITY_STATUS);
        }
        match data {
            [ALG_3DES, SLOT_MGM, 24, key @ ..] if key.len() == 24 => {
                let mut k = [0u8; 24];
                k.copy_from_slice(key);
                self.state.mgm_key = Zeroizing::new(k);
                k.zeroize();
                self.state.mgm_touch = cmd.p2 == 0xFE;
                status(sw::OK)
            }
            _ => status(sw::INCORRECT_DATA),
        }
    }

    /// RESET (Yubico): only when both PIN and PUK are blocked.
    fn factory_reset(&mut self) -> Reply {
        if self.state.pin_tries != 0 || self.state.puk_tries != 0 {
            return status(sw::CONDITIONS_NOT_SATISFIED);
        }
        let (serial, version) = (self.state.serial, self.state.version);
        self.state = PivState::factory(serial).with_version(version);
        self.session = Session::default();
        self.session.selected = true;
        status(sw::OK)
    }
}

/// The host side of the management-key exchange, for tests of this crate: D(K, block).
#[doc(hidden)]
pub fn host_decrypt(key: &[u8; 24], block: &[u8; 8]) -> Option<[u8; 8]> {
    tdes_decrypt(key, block)
}

/// The host side: E(K, block).
#[doc(hidden)]
pub fn host_encrypt(key: &[u8; 24], block: &[u8; 8]) -> Option<[u8; 8]> {
    tdes_encrypt(key, block)
}
