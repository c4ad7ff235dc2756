//! Presence, approvals and the PIV factor at the library level: `custos_core::Vault` driven with the
//! demo twins of `custos_hardware`, and small `Fido2Client` wrappers around a genuine demo key that
//! play an attacker (replaying an assertion, presenting one made for another operation, lying about
//! being hardware). Each test asserts what would break if the protection were removed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use custos_core::hardware::{DeviceIdentity, Fido2Client, Pin, PivCard};
use custos_core::policy::Role;
use custos_core::{
    Error, InitOptions, KeyState, KeyType, Operation, Outcome, Passphrase, Performed, Vault,
};
use custos_hardware::{
    create_demo_key, create_demo_piv, open_demo_piv, Ctap2Key, Prompt, SoftCtap2Device,
};
use serde_json::Value;
use tempfile::TempDir;
use webauthn_rs_proto::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};

const PASS: &str = "correct horse battery staple 7!";
/// One PIN for the FIDO2 twins (4-63 characters) and the PIV twins (6-8).
const PIN: &str = "24681357";
const ACTOR: &str = "e2e-presence";

// ---- prompts, keys and attackers --------------------------------------------------------------------

/// The terminal prompt of a test: always the PIN, touches approved by the twin itself.
struct PinPrompt(&'static str);

impl Prompt for PinPrompt {
    fn pin(&self, _device: &str) -> Option<Pin> {
        Some(Pin::new(self.0.into()))
    }
    fn touch(&self, _device: &str) {}
}

fn prompt() -> Arc<dyn Prompt> {
    Arc::new(PinPrompt(PIN))
}

fn pin() -> Pin {
    Pin::new(PIN.into())
}

fn pass() -> Passphrase {
    Passphrase::new(PASS.into())
}

type DemoKey = Ctap2Key<SoftCtap2Device>;

/// A new demo FIDO2 key in `dir`, with a handle on its twin to inspect or roll back its counter.
fn demo_key(dir: &Path, name: &str) -> (DemoKey, SoftCtap2Device) {
    let path = dir.join(format!("{name}-fido2.json"));
    create_demo_key(&path, &pin()).expect("create a demo FIDO2 key");
    let twin = SoftCtap2Device::open_file(&path).expect("open the twin");
    let key = Ctap2Key::from_twin(twin.clone(), prompt()).expect("open the demo key");
    (key, twin)
}

fn dev(k: &mut dyn Fido2Client) -> Option<&mut dyn Fido2Client> {
    Some(k)
}

/// Replays: the first assertion goes to the real key and is recorded; every later one is the
/// recording, whatever the vault asks.
struct Replayer<K> {
    inner: K,
    recorded: Option<PublicKeyCredential>,
    replays: u32,
}

impl<K: Fido2Client> Replayer<K> {
    fn new(inner: K) -> Self {
        Replayer {
            inner,
            recorded: None,
            replays: 0,
        }
    }
}

impl<K: Fido2Client> Fido2Client for Replayer<K> {
    fn identity(&self) -> DeviceIdentity {
        self.inner.identity()
    }
    fn register(
        &mut self,
        options: CreationChallengeResponse,
    ) -> custos_core::Result<RegisterPublicKeyCredential> {
        self.inner.register(options)
    }
    fn assert(
        &mut self,
        options: RequestChallengeResponse,
    ) -> custos_core::Result<PublicKeyCredential> {
        if let Some(r) = &self.recorded {
            self.replays += 1;
            return Ok(r.clone());
        }
        let r = self.inner.assert(options)?;
        self.recorded = Some(r.clone());
        Ok(r)
    }
}

/// A compromised client: while `capturing`, it lets the person touch for the operation the vault
/// asks about, keeps the genuine assertion and tells the vault nobody touched. Afterwards it answers
/// the next request — another operation — with that never-used assertion.
struct Diverter<K> {
    inner: K,
    captured: Option<PublicKeyCredential>,
    capturing: bool,
}

impl<K: Fido2Client> Fido2Client for Diverter<K> {
    fn identity(&self) -> DeviceIdentity {
        self.inner.identity()
    }
    fn register(
        &mut self,
        options: CreationChallengeResponse,
    ) -> custos_core::Result<RegisterPublicKeyCredential> {
        self.inner.register(options)
    }
    fn assert(
        &mut self,
        options: RequestChallengeResponse,
    ) -> custos_core::Result<PublicKeyCredential> {
        if self.capturing {
            self.captured = Some(self.inner.assert(options)?);
            self.capturing = false;
            return Err(Error::NoTouch);
        }
        self.captured
            .take()
            .ok_or_else(|| Error::Internal("nothing captured".into()))
    }
}

/// A demo key that claims to be hardware (for the demo/real separation).
struct ClaimsHardware<K>(K);

impl<K: Fido2Client> Fido2Client for ClaimsHardware<K> {
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

// ---- vaults ----------------------------------------------------------------------------------------

fn new_vault(dir: &Path) -> (PathBuf, Vault) {
    let path = dir.join("vault.db");
    let opts = InitOptions {
        insecure_test_kdf: true,
        ..InitOptions::default()
    };
    let mut v = Vault::init(&path, &pass(), &opts, &mut |_| {}).expect("init");
    v.create_key("k", KeyType::Symmetric256, None)
        .expect("create k");
    (path, v)
}

/// Officer alice, custodians bob and carol, each with a demo key; key `k`.
struct Team {
    dir: TempDir,
    path: PathBuf,
    v: Vault,
    alice: DemoKey,
    alice_twin: SoftCtap2Device,
    bob: DemoKey,
    carol: DemoKey,
}

fn done(p: Performed) -> String {
    match p {
        Performed::Done { detail } => detail,
        Performed::Pending { request } => panic!("expected done, got pending {request:?}"),
    }
}

fn pending(p: Performed) -> custos_core::RequestView {
    match p {
        Performed::Pending { request } => request,
        Performed::Done { detail } => panic!("expected pending, got done: {detail}"),
    }
}

fn team(activate: bool) -> Team {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, mut v) = new_vault(dir.path());
    let (mut alice, alice_twin) = demo_key(dir.path(), "alice");
    let (mut bob, _) = demo_key(dir.path(), "bob");
    let (mut carol, _) = demo_key(dir.path(), "carol");

    done(
        v.add_custodian("alice", &[Role::Officer], None)
            .expect("add alice"),
    );
    v.act_as(Some("alice")).expect("as alice");
    done(
        v.enroll_fido2("alice", &mut alice, None)
            .expect("enrol alice"),
    );
    for (name, key) in [("bob", &mut bob), ("carol", &mut carol)] {
        v.act_as(Some("alice")).expect("as alice");
        done(
            v.add_custodian(name, &[Role::Custodian], dev(&mut alice))
                .expect("add custodian"),
        );
        v.act_as(Some(name)).expect("as custodian");
        done(v.enroll_fido2(name, key, None).expect("enrol custodian"));
    }
    v.act_as(Some("alice")).expect("as alice");
    if activate {
        done(
            v.perform(Operation::RulesActivate, dev(&mut alice))
                .expect("activate"),
        );
        assert!(v.custody_status().expect("status").enforced);
    }
    Team {
        dir,
        path,
        v,
        alice,
        alice_twin,
        bob,
        carol,
    }
}

/// Key `k` and every custodian (authenticators, counters): what a refusal must leave as it was.
fn snapshot(v: &mut Vault) -> Value {
    serde_json::json!({
        "k": serde_json::to_value(v.key_detail("k").expect("k")).expect("json"),
        "custodians": serde_json::to_value(v.custodians().expect("custodians")).expect("json"),
        "requests": serde_json::to_value(v.requests().expect("requests")).expect("json"),
    })
}

fn counter_of(v: &Vault, name: &str) -> u32 {
    v.custodians()
        .expect("custodians")
        .into_iter()
        .find(|c| c.name == name)
        .and_then(|c| c.authenticators.into_iter().find_map(|a| a.counter))
        .unwrap_or_else(|| panic!("{name} has no FIDO2 counter"))
}

fn audit_len(v: &Vault) -> usize {
    v.audit_entries().expect("audit").len()
}

/// An entry after the first `from` with `action` and `outcome`.
fn logged(v: &Vault, from: usize, action: &str, outcome: Outcome) -> custos_core::AuditEntry {
    let log = v.audit_entries().expect("audit");
    log[from..]
        .iter()
        .find(|e| e.action == action && e.outcome == outcome)
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no {outcome:?} {action} after entry {from}: {:#?}",
                &log[from..]
            )
        })
}

fn active_version(v: &Vault) -> Option<u32> {
    v.key_detail("k").expect("k").active_version
}

fn audit_ok(v: &mut Vault) {
    let r = v.audit_verify().expect("audit verify");
    assert!(r.ok, "audit chain: {}", r.message);
}

// ---- (a) registration and assertion ---------------------------------------------------------------

#[test]
fn registration_and_assertion_round_trip() {
    let mut t = team(false);
    let alice =
        t.v.custodians()
            .expect("custodians")
            .into_iter()
            .find(|c| c.name == "alice")
            .expect("alice");
    assert_eq!(alice.roles, vec![Role::Officer]);
    assert_eq!(alice.authenticators.len(), 1);
    let a = &alice.authenticators[0];
    assert_eq!(a.kind, "fido2");
    assert!(a.device.demo, "{a:?}");
    assert!(a.credential_id.as_deref().is_some_and(|c| c.len() >= 32));
    assert!(
        a.attestation
            .as_deref()
            .is_some_and(|s| s.contains("packed")),
        "{a:?}"
    );

    let before = counter_of(&t.v, "alice");
    assert_eq!(
        before,
        t.alice_twin.sign_count(),
        "the vault saw the key's last counter"
    );
    let from = audit_len(&t.v);
    let detail = done(
        t.v.perform(Operation::KeyRotate { key: "k".into() }, dev(&mut t.alice))
            .expect("rotate with alice's touch"),
    );
    assert!(detail.contains("rotated to version 2"), "{detail}");
    assert_eq!(active_version(&t.v), Some(2));
    let after = counter_of(&t.v, "alice");
    assert!(
        after > before,
        "the counter is recorded: {before} -> {after}"
    );
    assert_eq!(after, t.alice_twin.sign_count());
    let touch = logged(&t.v, from, "presence.verify", Outcome::Ok);
    assert_eq!(touch.actor, "alice");
    assert!(touch.detail.contains("UP+UV"), "{}", touch.detail);
    let rotate = logged(&t.v, from, "key.rotate", Outcome::Ok);
    assert!(
        rotate.detail.contains("requested by alice"),
        "{}",
        rotate.detail
    );

    // No key, or somebody else's key: nothing happens.
    let snap = snapshot(&mut t.v);
    let e =
        t.v.perform(Operation::KeyRotate { key: "k".into() }, None)
            .expect_err("no touch");
    assert!(matches!(e, Error::AssertionRefused(_)), "{e:?}");
    let e =
        t.v.perform(Operation::KeyRotate { key: "k".into() }, dev(&mut t.bob))
            .expect_err("bob's key for alice");
    assert!(
        matches!(e, Error::Device(_) | Error::AssertionRefused(_)),
        "{e:?}"
    );
    assert_eq!(snapshot(&mut t.v), snap);
    // Nor can the operation be called around the gate.
    let e = t.v.rotate_key("k").expect_err("rotate without the gate");
    assert!(matches!(e, Error::AssertionRefused(_)), "{e:?}");
    assert_eq!(active_version(&t.v), Some(2));
    audit_ok(&mut t.v);
}

// ---- (b) replay ------------------------------------------------------------------------------------

#[test]
fn a_replayed_assertion_is_refused() {
    let mut t = team(true);
    let mut replayer = Replayer::new(t.alice);
    done(
        t.v.perform(Operation::KeyRotate { key: "k".into() }, dev(&mut replayer))
            .expect("the genuine touch"),
    );
    assert_eq!(active_version(&t.v), Some(2));
    assert_eq!(replayer.replays, 0);

    let snap = snapshot(&mut t.v);
    let from = audit_len(&t.v);
    let e =
        t.v.perform(Operation::KeyRotate { key: "k".into() }, dev(&mut replayer))
            .expect_err("replayed");
    assert_eq!(replayer.replays, 1, "the replay was presented");
    match &e {
        Error::AssertionRefused(m) => {
            assert!(m.contains("replay") || m.contains("challenge"), "{m}")
        }
        other => panic!("expected AssertionRefused, got {other:?}"),
    }
    assert_eq!(snapshot(&mut t.v), snap, "a replay changed the vault");
    assert_eq!(active_version(&t.v), Some(2));
    let r = logged(&t.v, from, "key.rotate", Outcome::Failed);
    assert_eq!(r.actor, "alice");
    assert_eq!(r.detail, "assertion_refused");

    // The same recording for an approval (bob's genuine approval of one request, replayed on another).
    done(
        t.v.perform(
            Operation::KeySetState {
                key: "k".into(),
                version: 1,
                state: KeyState::Compromised,
            },
            dev(&mut replayer.inner),
        )
        .expect("compromise v1"),
    );
    let destroy = |v: u32| Operation::KeySetState {
        key: "k".into(),
        version: v,
        state: KeyState::Destroyed,
    };
    let r1 = pending(
        t.v.perform(destroy(1), dev(&mut replayer.inner))
            .expect("request 1"),
    );
    done(
        t.v.perform(
            Operation::KeyRotate { key: "k".into() },
            dev(&mut replayer.inner),
        )
        .expect("rotate"),
    );
    let r2 = pending(
        t.v.perform(destroy(2), dev(&mut replayer.inner))
            .expect("request 2"),
    );
    let mut bob = Replayer::new(t.bob);
    t.v.act_as(Some("bob")).expect("as bob");
    pending(
        t.v.approve(&r1.id, &mut bob)
            .expect("bob approves request 1"),
    );
    let snap = snapshot(&mut t.v);
    let e =
        t.v.approve(&r2.id, &mut bob)
            .expect_err("replayed approval");
    assert_eq!(bob.replays, 1);
    assert!(matches!(e, Error::AssertionRefused(_)), "{e:?}");
    assert_eq!(snapshot(&mut t.v), snap);
    let r2_now =
        t.v.requests()
            .expect("requests")
            .into_iter()
            .find(|r| r.id == r2.id)
            .expect("request 2");
    assert!(r2_now.approvals.is_empty(), "{r2_now:?}");
    audit_ok(&mut t.v);
}

// ---- (c) an assertion for operation A presented for operation B -----------------------------------

#[test]
fn an_assertion_made_for_one_operation_does_not_authorize_another() {
    let mut t = team(true);
    done(
        t.v.perform(
            Operation::KeySetState {
                key: "k".into(),
                version: 1,
                state: KeyState::Compromised,
            },
            dev(&mut t.alice),
        )
        .expect("compromise v1"),
    );
    let stored = counter_of(&t.v, "alice");
    let mut diverter = Diverter {
        inner: t.alice,
        captured: None,
        capturing: true,
    };
    // alice touches for "destroy k v1"; the client keeps the assertion and reports no touch.
    let snap = snapshot(&mut t.v);
    let e =
        t.v.perform(
            Operation::KeySetState {
                key: "k".into(),
                version: 1,
                state: KeyState::Destroyed,
            },
            dev(&mut diverter),
        )
        .expect_err("the client withheld the answer");
    assert!(matches!(e, Error::NoTouch), "{e:?}");
    assert!(diverter.captured.is_some());
    assert_eq!(snapshot(&mut t.v), snap);
    assert!(
        t.alice_twin.sign_count() > stored,
        "the captured assertion carries a fresh counter: only the binding can stop it"
    );

    // …and presents it when the vault asks alice's touch for a rotation.
    let from = audit_len(&t.v);
    let e =
        t.v.perform(Operation::KeyRotate { key: "k".into() }, dev(&mut diverter))
            .expect_err("assertion for another operation");
    match &e {
        Error::AssertionRefused(m) => {
            assert!(
                m.contains("another operation") || m.contains("challenge"),
                "{m}"
            )
        }
        other => panic!("expected AssertionRefused, got {other:?}"),
    }
    assert_eq!(
        snapshot(&mut t.v),
        snap,
        "the diverted assertion changed the vault"
    );
    assert_eq!(
        active_version(&t.v),
        None,
        "v1 is compromised, nothing rotated"
    );
    assert_eq!(counter_of(&t.v, "alice"), stored);
    logged(&t.v, from, "key.rotate", Outcome::Failed);

    // The same for approvals: bob's touch for request A does not approve request B.
    let mut alice = diverter.inner;
    done(
        t.v.perform(Operation::KeyRotate { key: "k".into() }, dev(&mut alice))
            .expect("rotate"),
    );
    let destroy = |v: u32| Operation::KeySetState {
        key: "k".into(),
        version: v,
        state: KeyState::Destroyed,
    };
    let a = pending(t.v.perform(destroy(1), dev(&mut alice)).expect("request A"));
    done(
        t.v.perform(Operation::KeyRotate { key: "k".into() }, dev(&mut alice))
            .expect("rotate"),
    );
    let b = pending(t.v.perform(destroy(2), dev(&mut alice)).expect("request B"));
    let mut bob = Diverter {
        inner: t.bob,
        captured: None,
        capturing: true,
    };
    t.v.act_as(Some("bob")).expect("as bob");
    let e = t.v.approve(&a.id, &mut bob).expect_err("withheld");
    assert!(matches!(e, Error::NoTouch), "{e:?}");
    let snap = snapshot(&mut t.v);
    let e =
        t.v.approve(&b.id, &mut bob)
            .expect_err("approval made for A");
    assert!(matches!(e, Error::AssertionRefused(_)), "{e:?}");
    assert_eq!(snapshot(&mut t.v), snap);
    audit_ok(&mut t.v);
}

// ---- (d) counter regression -------------------------------------------------------------------------

#[test]
fn a_counter_that_goes_back_raises_a_clone_alert() {
    let mut t = team(true);
    done(
        t.v.perform(Operation::KeyRotate { key: "k".into() }, dev(&mut t.alice))
            .expect("rotate"),
    );
    let stored = counter_of(&t.v, "alice");
    assert!(stored >= 3, "{stored}");
    // A copy of alice's key that has signed less: its counter is behind the vault's.
    t.alice_twin.set_sign_count(1);

    let snap = snapshot(&mut t.v);
    let from = audit_len(&t.v);
    let e =
        t.v.perform(Operation::KeyRotate { key: "k".into() }, dev(&mut t.alice))
            .expect_err("cloned key");
    match &e {
        Error::PossibleClone {
            custodian,
            presented,
            stored: s,
            ..
        } => {
            assert_eq!(custodian, "alice");
            assert_eq!(*presented, 2);
            assert_eq!(*s, stored);
        }
        other => panic!("expected PossibleClone, got {other:?}"),
    }
    // The only change a clone's touch makes: the credential is suspended (revoked).
    let after = snapshot(&mut t.v);
    assert_eq!(after["k"], snap["k"], "a clone's touch changed a key");
    assert_eq!(after["requests"], snap["requests"]);
    let revoked = |s: &serde_json::Value| {
        s["custodians"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "alice")
            .unwrap()["authenticators"][0]["revoked"]
            .clone()
    };
    assert!(revoked(&snap).is_null());
    assert!(
        !revoked(&after).is_null(),
        "the cloned credential was not suspended"
    );
    assert_eq!(active_version(&t.v), Some(2));
    let alert = logged(&t.v, from, "presence.clone-alert", Outcome::Failed);
    assert!(
        alert.detail.contains("possible cloned key"),
        "{}",
        alert.detail
    );
    logged(&t.v, from, "key.rotate", Outcome::Failed);

    // The credential is suspended: even a touch with a counter that now grows is not accepted.
    t.alice_twin.set_sign_count(stored + 10);
    let e =
        t.v.perform(Operation::KeyRotate { key: "k".into() }, dev(&mut t.alice))
            .expect_err("suspended credential");
    assert!(matches!(e, Error::NoAuthenticator(_)), "{e:?}");
    assert_eq!(active_version(&t.v), Some(2));
    audit_ok(&mut t.v);
}

#[test]
fn a_credential_flagged_as_cloned_stays_suspended() {
    // Error::PossibleClone says: "The credential is now suspended; investigate before re-enrolling".
    let mut t = team(true);
    let stored = counter_of(&t.v, "alice");
    t.alice_twin.set_sign_count(0);
    let e =
        t.v.perform(Operation::KeyRotate { key: "k".into() }, dev(&mut t.alice))
            .expect_err("cloned key");
    assert!(
        e.to_string().contains("now suspended"),
        "the message promises a suspension: {e}"
    );
    // The clone catches up past the stored counter: the suspended credential must still be refused.
    t.alice_twin.set_sign_count(stored + 10);
    let r =
        t.v.perform(Operation::KeyRotate { key: "k".into() }, dev(&mut t.alice));
    assert!(
        r.is_err(),
        "a credential reported as suspended after a clone alert authorized a rotation: {r:?}"
    );
    assert_eq!(active_version(&t.v), Some(1));
}

// ---- (e) PIV-bound unlock -------------------------------------------------------------------------

fn demo_card(dir: &Path, name: &str) -> (PathBuf, custos_hardware::DemoPiv) {
    let path = dir.join(format!("{name}-piv.json"));
    create_demo_piv(&path, &pin()).expect("create a demo PIV key");
    let card = open_demo_piv(&path).expect("open the demo PIV key");
    (path, card)
}

fn unlock_card(path: &Path, card: &mut dyn PivCard, pin: &Pin) -> custos_core::Result<Vault> {
    Vault::unlock_with(path, &pass(), ACTOR, Some((card, pin)))
}

/// Moves every back-off record of the vault an hour into the past (instead of sleeping).
fn age_backoff(vault: &Path) {
    let conn = rusqlite::Connection::open(vault).expect("open the vault file");
    conn.execute("UPDATE backoff SET last_failure = last_failure - 3600", [])
        .expect("age the back-off");
}

#[test]
fn a_piv_bound_vault_opens_only_with_its_card() {
    let mut t = team(false);
    let (card_path, mut card) = demo_card(t.dir.path(), "alice");
    done(
        t.v.enroll_piv("alice", &mut card, 0x82, &pin(), dev(&mut t.alice))
            .expect("enrol alice's PIV key"),
    );
    // Binding needs the officer's touch first.
    let e =
        t.v.require_piv(&pass(), "alice", &mut card, &pin())
            .expect_err("no touch");
    assert!(matches!(e, Error::AssertionRefused(_)), "{e:?}");
    t.v.touch_for(
        custos_core::policy::OpKind::VaultRequirePiv,
        dev(&mut t.alice),
    )
    .expect("alice touches");
    let factor =
        t.v.require_piv(&pass(), "alice", &mut card, &pin())
            .expect("bind");
    assert_eq!(factor.serial, card.serial());
    assert_eq!(factor.slot, 0x82);
    let before = serde_json::to_value(t.v.key_detail("k").expect("k")).expect("json");
    let path = t.path.clone();
    drop(t.v);

    // Without the card.
    let e = Vault::unlock(&path, &pass(), ACTOR).expect_err("no card");
    match e {
        Error::PivRequired { serial, slot } => {
            assert_eq!(serial, factor.serial);
            assert_eq!(slot, 0x82);
        }
        other => panic!("expected PivRequired, got {other:?}"),
    }
    assert!(matches!(
        Vault::unlock_with(&path, &pass(), ACTOR, None),
        Err(Error::PivRequired { .. })
    ));

    // With another demo card (another serial, another key).
    let (_, mut other) = demo_card(t.dir.path(), "mallory");
    other.generate_p256(0x82, &pin()).expect("a key in slot 82");
    let e = unlock_card(&path, &mut other, &pin()).expect_err("another card");
    assert!(matches!(e, Error::PivRequired { .. }), "{e:?}");

    // With a card that claims the right serial but holds another key.
    let forged_path = t.dir.path().join("mallory-piv.json");
    let mut forged: Value =
        serde_json::from_slice(&std::fs::read(&forged_path).expect("read")).expect("json");
    forged["serial"] = factor.serial.into();
    std::fs::write(&forged_path, serde_json::to_vec(&forged).expect("json")).expect("write");
    let mut forged_card = open_demo_piv(&forged_path).expect("open the forged card");
    assert_eq!(forged_card.serial(), factor.serial);
    let r = unlock_card(&path, &mut forged_card, &pin());
    assert!(r.is_err(), "a card with another key opened the vault");

    // The right card with a wrong PIN.
    let e = unlock_card(&path, &mut card, &Pin::new("11111111".into())).expect_err("wrong PIN");
    assert!(matches!(e, Error::WrongPin { .. }), "{e:?}");
    // The right card with the wrong passphrase.
    let e = Vault::unlock_with(
        &path,
        &Passphrase::new("not it".into()),
        ACTOR,
        Some((&mut card as &mut dyn PivCard, &pin())),
    )
    .expect_err("wrong passphrase");
    assert!(matches!(e, Error::WrongPassphrase), "{e:?}");

    // Three failures: the next attempt waits, even with everything right.
    let mut card = open_demo_piv(&card_path).expect("reopen");
    let e = unlock_card(&path, &mut card, &pin()).expect_err("backed off");
    assert!(matches!(e, Error::BackedOff { .. }), "{e:?}");
    age_backoff(&path);

    // The right card, PIN and passphrase.
    let mut v = unlock_card(&path, &mut card, &pin()).expect("unlock with the card");
    assert_eq!(
        serde_json::to_value(v.key_detail("k").expect("k")).expect("json"),
        before
    );
    assert_eq!(v.failed_unlocks(), 3, "the failed attempts are reported");
    audit_ok(&mut v);
}

// ---- (f) approvals -----------------------------------------------------------------------------------

#[test]
fn approvals_need_k_distinct_custodians_other_than_the_requester() {
    let mut t = team(true);
    done(
        t.v.perform(
            Operation::KeySetState {
                key: "k".into(),
                version: 1,
                state: KeyState::Compromised,
            },
            dev(&mut t.alice),
        )
        .expect("compromise"),
    );
    // Around the gate: refused.
    let e = t.v.destroy_version("k", 1).expect_err("direct destroy");
    assert!(matches!(e, Error::AssertionRefused(_)), "{e:?}");

    let req = pending(
        t.v.perform(
            Operation::KeySetState {
                key: "k".into(),
                version: 1,
                state: KeyState::Destroyed,
            },
            dev(&mut t.alice),
        )
        .expect("request"),
    );
    assert_eq!(req.needed, 2);
    assert_eq!(req.requester, "alice");
    let state = |v: &Vault| v.key_detail("k").expect("k").versions[0].state;
    assert_eq!(state(&t.v), KeyState::Compromised);

    // Self-approval.
    let snap = snapshot(&mut t.v);
    let e =
        t.v.approve(&req.id, &mut t.alice)
            .expect_err("self-approval");
    assert!(matches!(e, Error::SeparationOfDuties(_)), "{e:?}");
    assert_eq!(snapshot(&mut t.v), snap);

    // K-1.
    t.v.act_as(Some("bob")).expect("as bob");
    let r = pending(t.v.approve(&req.id, &mut t.bob).expect("bob"));
    assert_eq!(r.approvals.len(), 1);
    assert_eq!(r.approvals[0].custodian, "bob");
    assert!(r.approvals[0].user_verified);
    assert_eq!(
        state(&t.v),
        KeyState::Compromised,
        "K-1 approvals were enough"
    );
    let e = t.v.approve(&req.id, &mut t.bob).expect_err("bob twice");
    assert!(matches!(e, Error::SeparationOfDuties(_)), "{e:?}");
    // bob's key cannot stand in for carol either.
    t.v.act_as(Some("carol")).expect("as carol");
    let e =
        t.v.approve(&req.id, &mut t.bob)
            .expect_err("bob's key as carol");
    assert!(
        matches!(e, Error::Device(_) | Error::AssertionRefused(_)),
        "{e:?}"
    );
    assert_eq!(state(&t.v), KeyState::Compromised);

    // K.
    done(t.v.approve(&req.id, &mut t.carol).expect("carol"));
    assert_eq!(state(&t.v), KeyState::Destroyed);
    let listed =
        t.v.requests()
            .expect("requests")
            .into_iter()
            .find(|r| r.id == req.id)
            .expect("request");
    assert_eq!(listed.status, custos_core::RequestStatus::Done);
    let e = t.v.approve(&req.id, &mut t.carol).expect_err("closed");
    assert!(matches!(e, Error::RequestClosed(..)), "{e:?}");
    audit_ok(&mut t.v);
}

// ---- demo and real keys do not mix ------------------------------------------------------------------

#[test]
fn demo_and_hardware_keys_are_never_mixed() {
    // A production vault: alice's key says it is hardware.
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, mut v) = new_vault(dir.path());
    let (alice_key, _) = demo_key(dir.path(), "alice");
    let mut alice = ClaimsHardware(alice_key);
    done(
        v.add_custodian("alice", &[Role::Officer], None)
            .expect("alice"),
    );
    v.act_as(Some("alice")).expect("as alice");
    done(v.enroll_fido2("alice", &mut alice, None).expect("enrol"));
    assert!(!v.custody_status().expect("status").demo);
    done(
        v.add_custodian("bob", &[Role::Custodian], dev(&mut alice))
            .expect("bob"),
    );
    let (mut bob_demo, _) = demo_key(dir.path(), "bob");
    v.act_as(Some("bob")).expect("as bob");
    let e = v
        .enroll_fido2("bob", &mut bob_demo, None)
        .expect_err("a demo key in a production vault");
    assert!(matches!(e, Error::DemoMismatch(_)), "{e:?}");
    assert!(!v.custody_status().expect("status").demo);
    let bob = v
        .custodians()
        .expect("custodians")
        .into_iter()
        .find(|c| c.name == "bob")
        .expect("bob");
    assert!(bob.authenticators.is_empty());
    // The same key, unmasked, cannot touch for alice either.
    v.act_as(Some("alice")).expect("as alice");
    let e = v
        .perform(Operation::KeyRotate { key: "k".into() }, dev(&mut alice.0))
        .expect_err("a demo key's touch in a production vault");
    assert!(matches!(e, Error::DemoMismatch(_)), "{e:?}");
    assert_eq!(active_version(&v), Some(1));
    audit_ok(&mut v);

    // A demo vault refuses hardware.
    let mut t = team(false);
    let (fake, _) = demo_key(t.dir.path(), "dave");
    let mut fake = ClaimsHardware(fake);
    let snap = snapshot(&mut t.v);
    t.v.act_as(Some("bob")).expect("as bob");
    let e =
        t.v.enroll_fido2("bob", &mut fake, None)
            .expect_err("hardware in a demo vault");
    assert!(matches!(e, Error::DemoMismatch(_)), "{e:?}");
    assert_eq!(snapshot(&mut t.v), snap);
    audit_ok(&mut t.v);
}

// ---- enrolment needs the requester's touch ------------------------------------------------------------

#[test]
fn an_unenrolled_officer_cannot_enrol_a_key_for_an_enrolled_custodian() {
    // enroll_fido2: "in a guarded vault the requester (the custodian themselves or an officer) also
    // touches their own key, except for a custodian's very first key". alice already has a key; dave
    // has none, so he cannot touch, and must not be able to add a key of his choosing to alice.
    let mut t = team(false);
    done(
        t.v.add_custodian("dave", &[Role::Officer], dev(&mut t.alice))
            .expect("dave"),
    );
    let snap = snapshot(&mut t.v);
    let (mut mallory_key, _) = demo_key(t.dir.path(), "mallory");
    t.v.act_as(Some("dave")).expect("as dave");
    let r = t.v.enroll_fido2("alice", &mut mallory_key, None);
    assert!(
        r.is_err(),
        "dave enrolled a key for alice without any touch: {r:?}"
    );
    assert_eq!(snapshot(&mut t.v), snap);
}
