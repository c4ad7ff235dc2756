//! Custos's real PIV backend, [`YubiKeyPiv`], against the software PIV card of
//! `custos-piv-card-twin` plugged into a real pcscd through vpcd: the unmodified `yubikey` crate 0.8
//! → `pcsc` → libpcsclite → pcscd → vpcd → TCP → the card. Then the vault's PIV enrolment and
//! PIV-bound unlock through the same path.
//!
//! Runs only with `CUSTOS_VPCD=1`, which `make test` / `make test-piv` set after
//! `scripts/pcscd-vpcd.sh start`; otherwise every test prints why it skipped. The card tests share
//! one virtual reader and are serialized by a static mutex (`make test-piv` also passes
//! `--test-threads=1`). The reader is opened **by name** (`CUSTOS_VPCD_READER`, default
//! "Virtual PCD 00 00"), so a real YubiKey plugged in is never touched.
#![cfg(feature = "piv")]

mod common;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::ScriptedPrompt;
use custos_core::hardware::{DeviceIdentity, Fido2Client, Pin, PivCard};
use custos_core::policy::{OpKind, Role};
use custos_core::{Error, InitOptions, KeyType, Passphrase, Performed, Vault};
use custos_hardware::{create_demo_key, open_demo, Ctap2Key, SoftCtap2Device, YubiKeyPiv};
use custos_piv_card_twin::{
    pin_policy, touch_policy, Inserted, PivState, Touch, VirtualPivCard, DEFAULT_HOST, DEFAULT_PORT,
};
use p256::elliptic_curve::sec1::ToSec1Point;
use webauthn_rs_proto::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};

/// PIV PIN (6–8) and FIDO2 PIN (4–63) of the test custodian.
const PIN: &str = "24681357";
const PUK: &str = "86420975";
const WRONG_PIN: &str = "11112222";
const PASS: &str = "correct horse battery staple 7!";
const VERIFY: u8 = 0x20;

static CARD_READER: Mutex<()> = Mutex::new(());

fn pin(s: &str) -> Pin {
    Pin::new(s.to_owned())
}

struct Env {
    reader: String,
    host: String,
    port: u16,
    reused: bool,
}

/// The test environment, or `None` after printing why the card tests skip.
fn env() -> Option<Env> {
    if std::env::var("CUSTOS_VPCD").as_deref() != Ok("1") {
        eprintln!("skipped: CUSTOS_VPCD not set (run `make test`)");
        return None;
    }
    if let Ok(reason) = std::env::var("CUSTOS_VPCD_SKIP") {
        eprintln!("skipped: {reason}");
        return None;
    }
    let port = match std::env::var("CUSTOS_VPCD_PORT") {
        Ok(p) => p.parse().expect("CUSTOS_VPCD_PORT is a port number"),
        Err(_) => DEFAULT_PORT,
    };
    Some(Env {
        reader: std::env::var("CUSTOS_VPCD_READER").unwrap_or_else(|_| "Virtual PCD 00 00".into()),
        host: std::env::var("CUSTOS_VPCD_HOST").unwrap_or_else(|_| DEFAULT_HOST.into()),
        port,
        reused: std::env::var("CUSTOS_VPCD_REUSED").as_deref() == Ok("1"),
    })
}

/// One virtual card in the virtual reader, for one test.
struct Fixture {
    env: Env,
    card: VirtualPivCard,
    inserted: Option<Inserted>,
    _reader: MutexGuard<'static, ()>,
}

impl Fixture {
    /// Takes the reader, inserts a card with `state`. `None`: skipped (printed).
    fn new(state: PivState) -> Option<Fixture> {
        let env = env()?;
        let guard = CARD_READER.lock().unwrap_or_else(|e| e.into_inner());
        let card = VirtualPivCard::new(state);
        let mut f = Fixture {
            env,
            card,
            inserted: None,
            _reader: guard,
        };
        f.insert();
        Some(f)
    }

    fn insert(&mut self) {
        let inserted = self
            .card
            .insert(
                (self.env.host.as_str(), self.env.port),
                Duration::from_secs(10),
            )
            .unwrap_or_else(|e| {
                panic!(
                    "the virtual card could not connect to vpcd at {}:{}: {e} (is pcscd running with \
                     vpcd? scripts/pcscd-vpcd.sh start)",
                    self.env.host, self.env.port
                )
            });
        self.inserted = Some(inserted);
    }

    fn remove(&mut self) {
        if let Some(i) = self.inserted.take() {
            i.remove().expect("the card thread ended cleanly");
        }
    }

    /// Opens the virtual reader by name through `YubiKeyPiv`, retrying while pcscd has not seen the
    /// card yet (0.3–0.6 s after it connects; longer after a removal). `None` when a reused pcscd
    /// has no such reader (printed as a skip).
    fn try_open(&self) -> Option<YubiKeyPiv> {
        let started = Instant::now();
        loop {
            match YubiKeyPiv::open_reader(&self.env.reader) {
                Ok(piv) if piv.serial() == self.card.serial() => {
                    eprintln!(
                        "opened {} in {:?}",
                        piv.identity().description,
                        started.elapsed()
                    );
                    return Some(piv);
                }
                Ok(other) => drop(other), // the previous card, not yet gone from pcscd's view
                Err(e) if started.elapsed() > Duration::from_secs(15) => {
                    if self.env.reused {
                        eprintln!(
                            "skipped: the already-running pcscd was reused, but its reader {:?} \
                             does not show the virtual card ({e})",
                            self.env.reader
                        );
                        return None;
                    }
                    panic!(
                        "the virtual card did not appear in reader {:?} within 15 s: {e}",
                        self.env.reader
                    );
                }
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn open(&self) -> YubiKeyPiv {
        self.try_open()
            .expect("the virtual reader is there (see the skip above)")
    }

    fn pin_tries(&self) -> u8 {
        self.card.with_state(|s| s.pin_tries())
    }

    fn verifies(&self) -> usize {
        self.card
            .instructions()
            .iter()
            .filter(|&&i| i == VERIFY)
            .count()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.remove();
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("random");
    b
}

fn personalised(serial: u32) -> PivState {
    PivState::personalised(serial, PIN, PUK, random::<24>())
}

/// A personalised card with a P-256 key already in slot 82 (PIN once, touch always).
fn enrolled(serial: u32) -> PivState {
    loop {
        if let Some(s) = personalised(serial).with_p256_key(
            0x82,
            random::<32>(),
            pin_policy::ONCE,
            touch_policy::ALWAYS,
        ) {
            return s;
        }
    }
}

/// The other party of an ECDH: an ephemeral P-256 key.
fn peer() -> p256::SecretKey {
    loop {
        if let Ok(k) = p256::SecretKey::from_slice(&random::<32>()) {
            return k;
        }
    }
}

fn ecdh_expected(card_public: &[u8], eph: &p256::SecretKey) -> Vec<u8> {
    let card_public = p256::PublicKey::from_sec1_bytes(card_public).expect("a P-256 point");
    p256::ecdh::diffie_hellman(eph.to_nonzero_scalar(), card_public.as_affine())
        .raw_secret_bytes()
        .to_vec()
}

fn eph_point(eph: &p256::SecretKey, compressed: bool) -> Vec<u8> {
    eph.public_key()
        .to_sec1_point(compressed)
        .as_bytes()
        .to_vec()
}

// ---- the card through YubiKeyPiv ----------------------------------------------------------------------

#[test]
fn a_factory_card_is_refused_without_a_pin_try_until_personalised_as_ykman_would() {
    let Some(f) = Fixture::new(PivState::factory(19_000_001)) else {
        return;
    };
    let mut piv = f.open();
    let id = piv.identity();
    assert_eq!(piv.serial(), 19_000_001);
    assert_eq!(id.serial, Some(19_000_001));
    assert_eq!(piv.version(), "5.4.3");
    assert_eq!(id.kind, "piv");
    assert!(
        !id.demo,
        "the virtual card is reached through the real PIV path"
    );
    assert_eq!(id.description, "YubiKey (PIV 5.4.3, serial 19000001)");

    let e = piv.check_not_default().expect_err("factory credentials");
    let m = e.to_string();
    assert!(matches!(e, Error::DefaultCredentials(_)), "{e:?}");
    for what in [
        "PIN 123456",
        "PUK 12345678",
        "the default management key",
        "1. ykman piv access change-pin",
        "2. ykman piv access change-puk",
        "3. ykman piv access change-management-key --algorithm TDES --generate --protect",
    ] {
        assert!(m.contains(what), "{what:?} missing from: {m}");
    }
    assert_eq!(f.verifies(), 0, "no VERIFY was sent");
    assert_eq!(f.pin_tries(), 3, "no PIN try spent");

    // Personalise it with the yubikey crate itself, as ykman would, in the same reader (a second
    // PC/SC connection to the same card, shared mode), re-checking after each step.
    let mut yk = open_raw(&f.env.reader);
    yk.change_pin(b"123456", PIN.as_bytes())
        .expect("change the PIN");
    let m = piv
        .check_not_default()
        .expect_err("PUK still default")
        .to_string();
    assert!(
        !m.contains("PIN 123456") && !m.contains("change-pin"),
        "{m}"
    );
    assert!(m.contains("1. ykman piv access change-puk"), "{m}");
    assert!(
        m.contains("2. ykman piv access change-management-key"),
        "{m}"
    );
    yk.change_puk(b"12345678", PUK.as_bytes())
        .expect("change the PUK");
    let m = piv
        .check_not_default()
        .expect_err("management key still default")
        .to_string();
    assert!(m.contains("(the default management key)"), "{m}");
    assert!(
        m.contains("1. ykman piv access change-management-key"),
        "{m}"
    );
    yk.verify_pin(PIN.as_bytes()).expect("PIN");
    yk.authenticate(yubikey::MgmKey::default())
        .expect("the factory management key");
    yubikey::MgmKey::generate()
        .set_protected(&mut yk)
        .expect("a random management key, stored PIN-protected");
    drop(yk);
    assert!(f.card.with_state(|s| !s.pin_is_default()
        && !s.puk_is_default()
        && !s.mgm_key_is_default()
        && s.object(0x5F_C109).is_some()));

    // A new session: the PIN-protected management key is what YubiKeyPiv now finds and uses.
    drop(piv);
    let mut piv = f.open();
    piv.check_not_default().expect("personalised");
    let public = piv
        .generate_p256(0x95, &pin(PIN))
        .expect("generate with the stored key");
    assert_eq!(piv.public_key(0x95).expect("public key"), public);
}

/// The yubikey crate's own handle on the reader named `reader` (for what YubiKeyPiv does not do).
fn open_raw(reader: &str) -> yubikey::YubiKey {
    let mut ctx = yubikey::Context::open().expect("PC/SC");
    let readers = ctx.iter().expect("readers");
    let r = readers
        .into_iter()
        .find(|r| r.name() == reader)
        .expect("the virtual reader");
    r.open().expect("open the virtual card")
}

#[test]
fn generation_in_82_metadata_and_ecdh_through_the_real_pcsc_path() {
    let Some(f) = Fixture::new(personalised(19_000_002)) else {
        return;
    };
    let mut piv = f.open();
    let prompt = ScriptedPrompt::with_pin(PIN);
    piv.set_prompt(prompt.clone());
    piv.check_not_default().expect("personalised");

    // Slot 9a is refused before anything reaches the card.
    let before = f.card.apdus();
    match piv.generate_p256(0x9a, &pin(PIN)) {
        Err(Error::Device(m)) => assert!(m.contains("82 to 95"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.card.apdus(), before, "no APDU for a refused slot");
    match piv.public_key(0x82) {
        Err(Error::Device(m)) => assert!(m.contains("holds no key"), "{m}"),
        other => panic!("{other:?}"),
    }

    let started = Instant::now();
    let public = piv.generate_p256(0x82, &pin(PIN)).expect("generate in 82");
    eprintln!("generate_p256: {:?}", started.elapsed());
    assert_eq!(public.len(), 65);
    assert_eq!(public[0], 0x04);
    let (pin_p, touch_p, origin, on_card) = f.card.with_state(|s| {
        let k = s.slot(0x82).expect("a key in 82");
        (k.pin_policy, k.touch_policy, k.origin, k.public_key())
    });
    assert_eq!(
        (pin_p, touch_p, origin),
        (pin_policy::ONCE, touch_policy::ALWAYS, 1),
        "PIN once, touch always, generated on the card"
    );
    assert_eq!(on_card, public);
    assert_eq!(piv.public_key(0x82).expect("from metadata"), public);
    assert_eq!(
        (f.card.touch_requests(), prompt.touches()),
        (1, 1),
        "one touch: the card signed the slot's certificate"
    );
    match piv.generate_p256(0x82, &pin(PIN)) {
        Err(Error::Device(m)) => assert!(m.contains("already holds a key"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(piv.public_key(0x82).expect("unchanged"), public);

    for compressed in [false, true] {
        let eph = peer();
        let started = Instant::now();
        let shared = piv
            .ecdh(0x82, &eph_point(&eph, compressed), &pin(PIN))
            .expect("ecdh");
        eprintln!("ecdh: {:?}", started.elapsed());
        assert_eq!(shared.expose(), ecdh_expected(&public, &eph).as_slice());
    }
    assert_eq!(
        f.card.touch_requests(),
        3,
        "the card asked for a touch each time"
    );
    assert_eq!(prompt.touches(), 3, "and Custos said so each time");
    assert_eq!(prompt.dones(), 3);
    match piv.ecdh(0x83, &eph_point(&peer(), false), &pin(PIN)) {
        Err(Error::Device(m)) => assert!(m.contains("holds no key"), "{m}"),
        other => panic!("{other:?}"),
    }

    // A wrong management key in CUSTOS_PIV_MGMT_KEY (serialized tests: no other thread reads it).
    std::env::set_var(
        custos_hardware::piv::yubikey::MGMT_KEY_ENV,
        hex::encode(random::<24>()),
    );
    let r = piv.generate_p256(0x84, &pin(PIN));
    std::env::set_var(custos_hardware::piv::yubikey::MGMT_KEY_ENV, "not hex");
    let r2 = piv.generate_p256(0x84, &pin(PIN));
    std::env::remove_var(custos_hardware::piv::yubikey::MGMT_KEY_ENV);
    match r {
        Err(Error::Device(m)) => assert!(m.contains("refused the management key"), "{m}"),
        other => panic!("{other:?}"),
    }
    match r2 {
        Err(Error::Device(m)) => assert!(m.contains("48 hex digits"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(
        f.card.with_state(|s| s.slot(0x84).is_none()),
        "nothing generated"
    );
    assert_eq!(f.pin_tries(), 3);

    // No touch for the certificate: the key is there and works, the certificate is not, and the
    // warning says so (the enrolment shows it).
    assert!(piv.take_warning().is_none(), "82's certificate was written");
    f.card.set_touch(Touch::Refused);
    let p85 = piv
        .generate_p256(0x85, &pin(PIN))
        .expect("the key is generated");
    f.card.set_touch(Touch::Given);
    let w = piv.take_warning().expect("a warning");
    assert!(
        w.contains("slot 85 works, but its certificate was not written") && w.contains("no touch"),
        "{w}"
    );
    assert!(piv.take_warning().is_none(), "taken once");
    assert_eq!(piv.public_key(0x85).expect("85"), p85);
    assert!(
        f.card.with_state(|s| s.object(0x5F_C110).is_none()),
        "no certificate object for 85"
    );

    // The certificate in slot 82, as any PIV tool reads it (age-plugin-yubikey finds keys so):
    // the slot's public key, signed by that key on the card.
    drop(piv);
    let mut yk = open_raw(&f.env.reader);
    let cert = yubikey::certificate::Certificate::read(
        &mut yk,
        yubikey::piv::SlotId::Retired(yubikey::piv::RetiredSlotId::R1),
    )
    .expect("a certificate in slot 82");
    let tbs = &cert.cert.tbs_certificate;
    assert_eq!(
        tbs.subject_public_key_info.subject_public_key.raw_bytes(),
        public.as_slice(),
        "the certificate carries the slot's key"
    );
    assert_eq!(tbs.subject.to_string(), "CN=Custos PIV key 82,O=Custos");
    assert_eq!(tbs.issuer, tbs.subject, "self-signed");
    use p256::ecdsa::signature::Verifier;
    use x509_cert::der::Encode;
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&public).expect("key");
    let sig = p256::ecdsa::DerSignature::try_from(cert.cert.signature.raw_bytes()).expect("DER");
    key.verify(&tbs.to_der().expect("tbs"), &sig)
        .expect("signed by the slot's own key");
}

#[test]
fn a_wrong_pin_counts_down_two_one_then_blocked_with_clear_messages() {
    let Some(f) = Fixture::new(enrolled(19_000_003)) else {
        return;
    };
    let mut piv = f.open();
    let eph = peer();
    let point = eph_point(&eph, false);

    for left in [2u32, 1] {
        let e = piv
            .ecdh(0x82, &point, &pin(WRONG_PIN))
            .expect_err("wrong PIN");
        assert!(
            matches!(e, Error::WrongPin { retries: Some(n) } if n == left),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!("wrong PIN ({left} tries left before the key locks): nothing was done")
        );
        assert_eq!(u32::from(f.pin_tries()), left);
    }
    let e = piv
        .ecdh(0x82, &point, &pin(WRONG_PIN))
        .expect_err("third wrong PIN");
    assert!(matches!(e, Error::PinBlocked(_)), "{e:?}");
    let m = e.to_string();
    assert!(
        m.contains("the PIN of this YubiKey PIV is blocked") && m.contains("PUK"),
        "{m}"
    );
    assert_eq!(f.pin_tries(), 0);
    // Blocked for good, even with the right PIN; generation too.
    let e = piv.ecdh(0x82, &point, &pin(PIN)).expect_err("blocked");
    assert!(matches!(e, Error::PinBlocked(_)), "{e:?}");
    let e = piv.generate_p256(0x83, &pin(PIN)).expect_err("blocked");
    assert!(matches!(e, Error::PinBlocked(_)), "{e:?}");
    assert_eq!(f.card.touch_requests(), 0, "never asked for a touch");
    // Reading metadata needs no PIN: the card still answers what it holds.
    piv.check_not_default().expect("metadata without the PIN");
    assert!(piv.public_key(0x82).is_ok());
    // A PIN of the wrong length never reaches the card.
    let before = f.verifies();
    assert!(matches!(
        piv.ecdh(0x82, &point, &pin("123")),
        Err(Error::Device(m)) if m.contains("6 to 8 characters")
    ));
    assert_eq!(f.verifies(), before);
}

#[test]
fn a_share_file_opens_through_the_real_pcsc_path_with_pin_and_touch() {
    use custos_core::sharefile::{self, FileLock, ShareLock};
    let Some(f) = Fixture::new(enrolled(19_000_007)) else {
        return;
    };
    let mut piv = f.open();
    let prompt = ScriptedPrompt::with_pin(PIN);
    piv.set_prompt(prompt.clone());
    let public = piv.public_key(0x82).expect("the key in 82");
    let secret = custos_core::SecretKey::generate().expect("key");
    let (_, shares) = custos_core::sharing::split(&secret, 2, 3, [7; 8]).expect("split");
    let share = &shares[2];
    let file = sharefile::seal(
        share,
        "bob",
        ShareLock::Piv {
            public_keys: std::slice::from_ref(&public),
        },
    )
    .expect("seal");
    let FileLock::Piv { tags } = sharefile::lock_of(&file).expect("lock") else {
        panic!("locked to the card");
    };
    // The slot is found from the card's metadata, without the PIN.
    let before = f.verifies();
    assert_eq!(
        sharefile::piv_slot_for(&mut piv, &tags).expect("slot").0,
        0x82
    );
    assert_eq!(f.verifies(), before);

    let e = sharefile::open_with_piv(&file, &mut piv, &pin(WRONG_PIN)).expect_err("wrong PIN");
    assert!(matches!(e, Error::WrongPin { retries: Some(2) }), "{e:?}");
    assert_eq!(f.card.touch_requests(), 0);

    let opened = sharefile::open_with_piv(&file, &mut piv, &pin(PIN)).expect("open");
    assert_eq!(&opened, share);
    assert_eq!(f.card.touch_requests(), 1, "one touch for the file");
    assert_eq!(f.pin_tries(), 3, "the right PIN resets the count");
}

#[test]
fn no_touch_is_no_touch_and_the_card_then_works() {
    let Some(f) = Fixture::new(enrolled(19_000_004)) else {
        return;
    };
    let mut piv = f.open();
    let prompt = ScriptedPrompt::with_pin(PIN);
    piv.set_prompt(prompt.clone());
    let public = piv.public_key(0x82).expect("public key");
    let eph = peer();

    f.card.set_touch(Touch::Refused);
    let e = piv
        .ecdh(0x82, &eph_point(&eph, false), &pin(PIN))
        .expect_err("no touch");
    assert!(matches!(e, Error::NoTouch), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("no touch within the time allowed"),
        "{e}"
    );
    assert_eq!(f.pin_tries(), 3, "the PIN was right: no try spent");
    assert_eq!(
        (prompt.touches(), prompt.dones()),
        (1, 1),
        "prompt shown and closed"
    );

    f.card.set_touch(Touch::Given);
    let shared = piv
        .ecdh(0x82, &eph_point(&eph, false), &pin(PIN))
        .expect("touched");
    assert_eq!(shared.expose(), ecdh_expected(&public, &eph).as_slice());
    assert_eq!(f.card.touch_requests(), 2);
}

/// Pulls the card out while it waits for a touch in `op`; returns the error and how long it took.
fn removed_during<T: std::fmt::Debug>(
    f: &mut Fixture,
    op: impl FnOnce() -> custos_core::Result<T>,
) -> (Error, Duration) {
    f.card.set_touch(Touch::Pending);
    let inserted = f.inserted.take().expect("inserted");
    let card = f.card.clone();
    let waiting = card.touch_requests() + 1;
    let puller = std::thread::spawn(move || {
        assert!(
            card.wait_for_touch_request(waiting, Duration::from_secs(20)),
            "the card never asked for the touch"
        );
        std::thread::sleep(Duration::from_millis(200)); // blinking…
        inserted.remove().expect("removed");
    });
    let started = Instant::now();
    let r = op();
    let took = started.elapsed();
    puller.join().expect("the puller thread");
    f.card.set_touch(Touch::Given);
    (r.expect_err("the card was removed"), took)
}

#[test]
fn a_card_removed_mid_operation_is_a_clear_error_and_nothing_is_lost() {
    let Some(mut f) = Fixture::new(enrolled(19_000_005)) else {
        return;
    };
    let mut piv = f.open();
    let public = piv.public_key(0x82).expect("public key");
    let eph = peer();
    let point = eph_point(&eph, false);

    let (e, took) = removed_during(&mut f, || piv.ecdh(0x82, &point, &pin(PIN)));
    eprintln!("removed mid-ECDH after {took:?}: {e:?} / {e}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(
        matches!(e, Error::NoDevice("YubiKey")),
        "expected `no YubiKey found`, got {e:?}: {e}"
    );
    // The stale handle keeps answering quickly, with the same error.
    let started = Instant::now();
    let e = piv.public_key(0x82).expect_err("no card");
    assert!(matches!(e, Error::NoDevice(_)), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(piv);

    // Plugged back in: the same key, the PIN tries untouched, ECDH works.
    f.insert();
    let mut piv = f.open();
    assert_eq!(piv.public_key(0x82).expect("the key survived"), public);
    assert_eq!(f.pin_tries(), 3);
    let shared = piv.ecdh(0x82, &point, &pin(PIN)).expect("ecdh");
    assert_eq!(shared.expose(), ecdh_expected(&public, &eph).as_slice());
}

// ---- the vault: enrolment and PIV-bound unlock with the virtual card ------------------------------

/// A demo FIDO2 key that reports itself as hardware (as tests/cli/tests/presence.rs does): the
/// virtual PIV card goes through the real `YubiKeyPiv` and reports `demo = false`, and the vault
/// refuses to mix demo and real devices, so the officer's FIDO2 key must not be a demo one.
struct HardwareLike(Ctap2Key<SoftCtap2Device>);

impl Fido2Client for HardwareLike {
    fn identity(&self) -> DeviceIdentity {
        DeviceIdentity {
            kind: "fido2".into(),
            description: "FIDO2 key (USB)".into(),
            serial: None,
            demo: false,
        }
    }
    fn register(
        &mut self,
        options: CreationChallengeResponse,
    ) -> custos_core::Result<RegisterPublicKeyCredential> {
        self.0.register(options)
    }
    fn assert(
        &mut self,
        options: RequestChallengeResponse,
    ) -> custos_core::Result<PublicKeyCredential> {
        self.0.assert(options)
    }
}

fn demo_fido2(dir: &Path, name: &str) -> Ctap2Key<SoftCtap2Device> {
    let path = dir.join(format!("{name}-fido2.json"));
    create_demo_key(&path, &pin(PIN)).expect("create a demo FIDO2 key");
    open_demo(&path, ScriptedPrompt::with_pin(PIN)).expect("open it")
}

fn new_vault(dir: &Path, name: &str) -> (std::path::PathBuf, Vault) {
    let path = dir.join(name);
    let opts = InitOptions {
        insecure_test_kdf: true,
        ..InitOptions::default()
    };
    let v = Vault::init(&path, &Passphrase::new(PASS.into()), &opts, &mut |_| {}).expect("init");
    (path, v)
}

fn done(p: Performed) {
    assert!(matches!(p, Performed::Done { .. }), "expected done: {p:?}");
}

fn unlock(path: &Path, card: Option<&mut YubiKeyPiv>, pin_s: &str) -> custos_core::Result<Vault> {
    let p = pin(pin_s);
    Vault::unlock_with(
        path,
        &Passphrase::new(PASS.into()),
        "piv-vpcd-test",
        card.map(|c| (c as &mut dyn PivCard, &p)),
    )
}

#[test]
fn a_vault_bound_to_the_virtual_card_opens_only_with_it() {
    let Some(mut f) = Fixture::new(personalised(19_000_006)) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");

    // A demo vault (demo FIDO2 key enrolled) refuses the card: it is real hardware as far as Custos
    // can tell. Nothing reaches the card.
    {
        let (_, mut demo) = new_vault(dir.path(), "demo.db");
        let mut key = demo_fido2(dir.path(), "demo-officer");
        done(
            demo.add_custodian("olivia", &[Role::Officer], None)
                .expect("add"),
        );
        demo.act_as(Some("olivia")).expect("as olivia");
        done(
            demo.enroll_fido2("olivia", &mut key, None)
                .expect("enrol demo key"),
        );
        let mut piv = f.open();
        let before = f.card.apdus();
        let e = demo
            .enroll_piv("olivia", &mut piv, 0x82, &pin(PIN), Some(&mut key))
            .expect_err("a demo vault refuses hardware");
        assert!(matches!(e, Error::DemoMismatch(_)), "{e:?}");
        assert_eq!(f.card.apdus(), before, "nothing reached the card");
    }

    // A production vault: officer alice, her FIDO2 key, then her PIV card in slot 82.
    let (path, mut v) = new_vault(dir.path(), "vault.db");
    v.create_key("k", KeyType::Symmetric256, None)
        .expect("key k");
    let plain = dir.path().join("share.txt");
    std::fs::write(&plain, b"the custodians' share of the secret").expect("write");
    let sealed = dir.path().join("share.txt.custos");
    v.encrypt_file("k", &plain, &sealed).expect("encrypt");

    let mut alice = HardwareLike(demo_fido2(dir.path(), "alice"));
    done(
        v.add_custodian("alice", &[Role::Officer, Role::Operator], None)
            .expect("add alice"),
    );
    v.act_as(Some("alice")).expect("as alice");
    done(
        v.enroll_fido2("alice", &mut alice, None)
            .expect("enrol alice's FIDO2 key"),
    );
    let mut piv = f.open();
    let started = Instant::now();
    done(
        v.enroll_piv("alice", &mut piv, 0x82, &pin(PIN), Some(&mut alice))
            .expect("enrol alice's PIV card"),
    );
    eprintln!("enroll_piv: {:?}", started.elapsed());
    let listed = v.custodians().expect("custodians");
    let auths = &listed
        .iter()
        .find(|c| c.name == "alice")
        .expect("alice")
        .authenticators;
    assert_eq!(auths.len(), 2, "{auths:?}");
    assert!(
        f.card.with_state(|s| s.slot(0x82).is_some()),
        "the key was generated on the card"
    );

    v.touch_for(OpKind::VaultRequirePiv, Some(&mut alice))
        .expect("alice touches");
    let factor = v
        .require_piv(&Passphrase::new(PASS.into()), "alice", &mut piv, &pin(PIN))
        .expect("bind the vault to the card");
    assert_eq!((factor.serial, factor.slot), (19_000_006, 0x82));
    drop(v);

    // Without the card.
    match unlock(&path, None, PIN) {
        Err(Error::PivRequired { serial, slot }) => assert_eq!((serial, slot), (19_000_006, 0x82)),
        other => panic!("expected PivRequired, got {other:?}"),
    }
    // With the card and a wrong PIN.
    match unlock(&path, Some(&mut piv), WRONG_PIN) {
        Err(e @ Error::WrongPin { retries: Some(2) }) => eprintln!("wrong PIN: {e}"),
        other => panic!("expected WrongPin(2), got {other:?}"),
    }
    // With the card, no touch.
    f.card.set_touch(Touch::Refused);
    let e = unlock(&path, Some(&mut piv), PIN).expect_err("no touch");
    assert!(matches!(e, Error::NoTouch), "{e:?}");
    f.card.set_touch(Touch::Given);
    // The card pulled out while it blinks.
    let (e, took) = removed_during(&mut f, || unlock(&path, Some(&mut piv), PIN).map(|_| ()));
    eprintln!("removed mid-unlock after {took:?}: {e}");
    assert!(matches!(e, Error::NoDevice(_)), "{e:?}");
    drop(piv);
    let info = Vault::peek(&path).expect("the vault file is intact");
    assert!(info.piv_required.is_some());

    // Plugged back in: the right card, PIN and touch open it, and the file decrypts.
    f.insert();
    let mut piv = f.open();
    let started = Instant::now();
    let mut v = unlock(&path, Some(&mut piv), PIN).expect("unlock with the card");
    eprintln!("PIV-bound unlock: {:?}", started.elapsed());
    assert!(v.failed_unlocks() >= 1, "the wrong PIN was recorded");
    v.act_as(Some("alice")).expect("as alice");
    let out = dir.path().join("share.out");
    v.decrypt_file(&sealed, &out).expect("decrypt");
    assert_eq!(
        std::fs::read(&out).expect("read"),
        b"the custodians' share of the secret"
    );
    assert_eq!(f.pin_tries(), 3);
}

/// `age-plugin-yubikey` and `age`, when both are installed (`make test` installs the plugin into
/// `.tools/bin` and says so in CUSTOS_AGE_PLUGIN_DIR); else `None`.
fn age_tools() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let find = |name: &str| {
        let extra = std::env::var_os("CUSTOS_AGE_PLUGIN_DIR");
        let path = std::env::var_os("PATH").unwrap_or_default();
        extra
            .iter()
            .flat_map(std::env::split_paths)
            .chain(std::env::split_paths(&path))
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    Some((find("age-plugin-yubikey")?, find("age")?))
}

/// A share file written by Custos for a key Custos generated opens with the standard tools:
/// age-plugin-yubikey finds the key through the certificate Custos wrote to the slot, and `age -d`
/// decrypts with the PIN typed at the terminal (a pseudo-terminal here) and a touch.
#[test]
fn a_share_file_opens_with_age_and_age_plugin_yubikey() {
    use custos_core::sharefile::{self, ShareLock};
    let Some((plugin, age)) = age_tools() else {
        // `make test` installs both: there, a missing tool is a failure, not a skip.
        assert!(
            std::env::var_os("CUSTOS_AGE_PLUGIN_DIR").is_none(),
            "CUSTOS_AGE_PLUGIN_DIR is set but age or age-plugin-yubikey is missing"
        );
        eprintln!("skipped: age and age-plugin-yubikey are not both installed (run `make test`)");
        return;
    };
    let serial = 19_000_009;
    let Some(f) = Fixture::new(personalised(serial)) else {
        return;
    };
    let mut piv = f.open();
    piv.set_prompt(ScriptedPrompt::with_pin(PIN));
    let public = piv.generate_p256(0x83, &pin(PIN)).expect("generate in 83");
    drop(piv);
    let secret = custos_core::SecretKey::generate().expect("key");
    let (_, shares) = custos_core::sharing::split(&secret, 2, 3, [9; 8]).expect("split");
    let file = sharefile::seal(
        &shares[1],
        "carol",
        ShareLock::Piv {
            public_keys: std::slice::from_ref(&public),
        },
    )
    .expect("seal");
    let dir = tempfile::tempdir().expect("tmp");
    let share_path = dir.path().join("share.age");
    std::fs::write(&share_path, &file).expect("write");
    let plugin_dir = plugin.parent().expect("dir").to_path_buf();
    let path = std::env::join_paths(std::iter::once(plugin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");

    // The plugin's identity for slot 83 (its slot 2), read from the certificate on the card.
    let out = std::process::Command::new(&plugin)
        .args(["--identity", "--serial", &serial.to_string(), "--slot", "2"])
        .env("PATH", &path)
        .output()
        .expect("age-plugin-yubikey runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("AGE-PLUGIN-YUBIKEY-1"),
        "age-plugin-yubikey --identity: {}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let identity = dir.path().join("identity.txt");
    std::fs::write(&identity, &text).expect("identity");

    // `age -d` asks for the PIN on the terminal: a pseudo-terminal from script(1), fed the PIN.
    let plain = dir.path().join("share.txt");
    let command = format!(
        "{} -d -i {} -o {} {}",
        age.display(),
        identity.display(),
        plain.display(),
        share_path.display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("PATH", &path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("script runs");
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let mut terminal = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 512];
        while let Ok(n) = terminal.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let wait_for = |what: &str, seen: &mut String| {
        while !seen.contains(what) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                Err(_) => return false,
            }
        }
        true
    };
    // Type the PIN when the plugin asks for it (through age, on the terminal), as a person would.
    let asked = wait_for("PIN", &mut seen);
    let mut stdin = child.stdin.take().expect("stdin");
    if asked {
        use std::io::Write;
        writeln!(stdin, "{PIN}").expect("type the PIN");
    }
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(stdin);
    while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        asked,
        "age never asked for the PIN; the terminal showed:\n{seen}"
    );
    let status = status.unwrap_or_else(|| panic!("age -d did not finish in 60 s:\n{seen}"));
    let opened = std::fs::read_to_string(&plain).unwrap_or_default();
    assert!(
        status.success() && !opened.is_empty(),
        "age -d with age-plugin-yubikey: {status}\n{seen}"
    );
    assert!(
        opened.contains(&shares[1].to_words().join(" ")),
        "the plaintext is the share's words: {opened}"
    );
    // Custos reads the same file back to the same share.
    let mut piv = f.open();
    piv.set_prompt(ScriptedPrompt::with_pin(PIN));
    let back = sharefile::open_with_piv(&file, &mut piv, &pin(PIN)).expect("Custos opens it");
    assert!(back == shares[1]);
}
