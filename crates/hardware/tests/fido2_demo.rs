//! FIDO2 through `Ctap2Key` on the demo twin, verified by webauthn-rs-core as the vault's relying
//! party: the same client code a USB key goes through, only the device differs.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Rp, ScriptedPrompt};
use custos_core::hardware::{Fido2Client, Pin};
use custos_core::Error;
use custos_ctap2_twin::{Config, Presence, MAX_PIN_RETRIES};
use custos_hardware::{create_demo_key, open_demo, Ctap2Key, SoftCtap2Device};

const PIN: &str = "4711-custos";

fn demo_key(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("officer.fido2.json");
    create_demo_key(&path, &Pin::new(PIN.into())).expect("create the demo key");
    path
}

fn enrol(key: &mut impl Fido2Client, rp: &Rp) -> webauthn_rs_core::proto::Credential {
    let (ccr, state) = rp.start_registration("officer");
    let reg = key.register(ccr).expect("registration");
    rp.finish_registration(&reg, &state)
}

fn retries_in_file(path: &Path) -> u8 {
    SoftCtap2Device::open_file(path)
        .expect("the demo file")
        .pin_retries()
}

#[test]
fn register_and_assert_round_trip_through_the_relying_party() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = demo_key(dir.path());
    let prompt = ScriptedPrompt::with_pin(PIN);
    let mut key = open_demo(&path, prompt.clone()).expect("open");
    assert!(key.pin_is_set());
    let rp = Rp::new();

    let mut cred = enrol(&mut key, &rp);
    assert_eq!(prompt.pins(), 1, "the PIN was asked once");
    assert_eq!(prompt.touches(), 1, "one touch prompt, auto-approved");
    assert_eq!(prompt.dones(), 1);

    for expected in [2, 3] {
        let (rcr, state) = rp.start_assertion(&cred);
        let pkc = key.assert(rcr).expect("assertion");
        let r = rp.finish_assertion(&pkc, &state);
        assert!(r.user_verified(), "UV must be true: the PIN was entered");
        assert_eq!(r.counter(), expected);
        assert_eq!(r.cred_id(), &cred.cred_id);
        cred.counter = r.counter();
    }
    assert_eq!(prompt.pins(), 3);
    assert_eq!(prompt.touches(), 3);
    assert_eq!(prompt.dones(), 3);
    assert!(prompt
        .devices
        .lock()
        .expect("devices")
        .iter()
        .all(|d| d.contains("DEMO")));
}

#[test]
fn a_reloaded_demo_key_still_asserts_and_its_counter_keeps_growing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = demo_key(dir.path());
    let prompt = ScriptedPrompt::with_pin(PIN);
    let rp = Rp::new();
    let mut cred = {
        let mut key = open_demo(&path, prompt.clone()).expect("open");
        enrol(&mut key, &rp)
    };
    let mut last = cred.counter;
    for _ in 0..3 {
        // A new process: the key comes from the file alone.
        let mut key = open_demo(&path, prompt.clone()).expect("reopen");
        let (rcr, state) = rp.start_assertion(&cred);
        let r = rp.finish_assertion(&key.assert(rcr).expect("assertion"), &state);
        assert!(r.counter() > last, "counter {} after {last}", r.counter());
        assert!(r.user_verified());
        last = r.counter();
        cred.counter = last;
    }
    assert_eq!(last, 4);
    assert_eq!(
        SoftCtap2Device::open_file(&path)
            .expect("file")
            .sign_count(),
        4
    );
}

#[test]
fn wrong_pin_counts_down_is_persisted_and_the_right_pin_restores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = demo_key(dir.path());
    let prompt = ScriptedPrompt::with_pin("0000-wrong");
    let rp = Rp::new();
    let mut key = open_demo(&path, prompt.clone()).expect("open");

    for expected in [MAX_PIN_RETRIES - 1, MAX_PIN_RETRIES - 2] {
        let (ccr, _) = rp.start_registration("officer");
        match key.register(ccr) {
            Err(Error::WrongPin { retries }) => assert_eq!(retries, Some(u32::from(expected))),
            other => panic!("expected WrongPin, got {other:?}"),
        }
        assert_eq!(retries_in_file(&path), expected, "written at once");
    }
    assert_eq!(
        prompt.touches(),
        0,
        "no touch is asked before the PIN is right"
    );

    // A third wrong PIN in a row blocks PIN entry until the key is re-plugged: not "blocked for
    // good" (that advice would make people reset the key and lose every credential).
    let (ccr, _) = rp.start_registration("officer");
    match key.register(ccr) {
        Err(Error::Device(m)) => {
            assert!(m.contains("unplugged and plugged back in"), "{m}");
            assert!(m.contains("5 tries left"), "{m}");
        }
        other => panic!("expected the replug advice, got {other:?}"),
    }
    drop(key);

    // Re-plugged (reopened), with the right PIN: works, and the tries are back to 8 in the file.
    prompt.set_pin(Some(PIN));
    let mut key = open_demo(&path, prompt.clone()).expect("reopen");
    enrol(&mut key, &rp);
    assert_eq!(retries_in_file(&path), MAX_PIN_RETRIES);
}

#[test]
fn a_pin_blocked_key_says_so() {
    let dev = SoftCtap2Device::new(Config::with_pin(PIN));
    let prompt = ScriptedPrompt::with_pin("0000-wrong");
    let rp = Rp::new();
    let mut last = None;
    for _ in 0..MAX_PIN_RETRIES {
        dev.power_cycle();
        let mut key = Ctap2Key::from_twin(dev.clone(), prompt.clone()).expect("open");
        let (ccr, _) = rp.start_registration("officer");
        last = Some(key.register(ccr));
    }
    assert!(
        matches!(last, Some(Err(Error::PinBlocked("FIDO2 key")))),
        "{last:?}"
    );
    prompt.set_pin(Some(PIN));
    let mut key = Ctap2Key::from_twin(dev, prompt).expect("open");
    let (ccr, _) = rp.start_registration("officer");
    assert!(matches!(
        key.register(ccr),
        Err(Error::PinBlocked("FIDO2 key"))
    ));
}

#[test]
fn a_key_without_a_pin_is_refused_with_the_set_a_pin_advice() {
    let dev = SoftCtap2Device::new(Config::default());
    let prompt = ScriptedPrompt::with_pin(PIN);
    let mut key = Ctap2Key::from_twin(dev.clone(), prompt.clone()).expect("open");
    assert!(!key.pin_is_set());
    let rp = Rp::new();
    let (ccr, _) = rp.start_registration("officer");
    match key.register(ccr) {
        Err(Error::Device(m)) => {
            assert!(m.contains("has no PIN"), "{m}");
            assert!(m.contains("ykman fido access change-pin"), "{m}");
            assert!(m.contains("nothing was done"), "{m}");
        }
        other => panic!("expected the no-PIN refusal, got {other:?}"),
    }
    assert_eq!(dev.credential_count(), 0, "nothing was created on the key");
    assert_eq!(dev.touch_requests(), 0);
    assert_eq!(prompt.pins(), 0, "no PIN is asked for a key that has none");
    assert_eq!(prompt.dones(), 1, "the prompt is taken down");

    // Asserting is refused the same way (a key reset after enrolment).
    let other = SoftCtap2Device::new(Config::with_pin(PIN));
    let cred = enrol(
        &mut Ctap2Key::from_twin(other, prompt.clone()).expect("open"),
        &rp,
    );
    let (rcr, _) = rp.start_assertion(&cred);
    assert!(matches!(key.assert(rcr), Err(Error::Device(m)) if m.contains("has no PIN")));
}

#[test]
fn the_demo_identity_says_demo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = demo_key(dir.path());
    let key = open_demo(&path, ScriptedPrompt::with_pin(PIN)).expect("open");
    let id = key.identity();
    assert!(id.demo);
    assert_eq!(id.kind, "fido2");
    assert_eq!(id.serial, None);
    assert!(
        id.description
            .starts_with("DEMO software FIDO2 key — not hardware"),
        "{}",
        id.description
    );
    assert!(id.description.contains(&path.display().to_string()));

    let mem = Ctap2Key::from_twin(
        SoftCtap2Device::new(Config::with_pin(PIN)),
        ScriptedPrompt::with_pin(PIN),
    )
    .expect("open");
    assert!(mem.identity().demo);
    assert!(mem.identity().description.contains("DEMO"));
}

#[test]
fn creating_refuses_to_overwrite_and_rejects_bad_pins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = demo_key(dir.path());
    let before = std::fs::read(&path).expect("read");
    match create_demo_key(&path, &Pin::new("another-pin".into())) {
        Err(Error::Device(m)) => assert!(m.contains("refusing to overwrite"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&path).expect("read"), before);

    for bad in ["123", "", &"x".repeat(64)] {
        let p = dir.path().join("bad.json");
        assert!(
            matches!(
                create_demo_key(&p, &Pin::new(bad.to_string())),
                Err(Error::Device(_))
            ),
            "{bad:?}"
        );
        assert!(!p.exists());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn opening_a_missing_or_damaged_demo_file_fails_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.json");
    assert!(matches!(
        open_demo(&missing, ScriptedPrompt::with_pin(PIN)),
        Err(Error::Io { .. })
    ));
    let damaged = dir.path().join("damaged.json");
    std::fs::write(&damaged, b"{\"format\": 1}").expect("write");
    match open_demo(&damaged, ScriptedPrompt::with_pin(PIN)) {
        Err(Error::Device(m)) => assert!(m.contains("not a usable demo FIDO2 key file"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_cancelled_pin_prompt_is_pin_required() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = demo_key(dir.path());
    let prompt = Arc::new(ScriptedPrompt::default());
    let mut key = open_demo(&path, prompt.clone()).expect("open");
    let (ccr, _) = Rp::new().start_registration("officer");
    assert!(matches!(key.register(ccr), Err(Error::PinRequired)));
    assert_eq!(prompt.pins(), 1);
    assert_eq!(retries_in_file(&path), MAX_PIN_RETRIES, "no try spent");
}

#[test]
fn no_touch_is_reported_as_no_touch_without_hanging() {
    let dev = SoftCtap2Device::new(Config {
        presence: Presence::NoTouch,
        touch_timeout: Duration::from_millis(200),
        ..Config::with_pin(PIN)
    });
    let prompt = ScriptedPrompt::with_pin(PIN);
    let mut key = Ctap2Key::from_twin(dev.clone(), prompt.clone()).expect("open");
    let started = Instant::now();
    let (ccr, _) = Rp::new().start_registration("officer");
    assert!(matches!(key.register(ccr), Err(Error::NoTouch)));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(prompt.touches(), 1, "the person was asked to touch");
    assert_eq!(prompt.dones(), 1);
    assert_eq!(dev.credential_count(), 0);
}

#[test]
fn an_assertion_from_another_key_is_reported_as_such() {
    let rp = Rp::new();
    let prompt = ScriptedPrompt::with_pin(PIN);
    let cred = enrol(
        &mut Ctap2Key::from_twin(SoftCtap2Device::new(Config::with_pin(PIN)), prompt.clone())
            .expect("open"),
        &rp,
    );
    let mut other =
        Ctap2Key::from_twin(SoftCtap2Device::new(Config::with_pin(PIN)), prompt).expect("open");
    let (rcr, _) = rp.start_assertion(&cred);
    match other.assert(rcr) {
        Err(Error::Device(m)) => assert!(m.contains("none of the credentials"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn with_several_keys_the_one_touched_is_chosen_and_none_touched_is_no_touch() {
    let refuses = |_| {
        SoftCtap2Device::new(Config {
            presence: Presence::Deny,
            ..Config::with_pin(PIN)
        })
    };
    let touched = SoftCtap2Device::new(Config::with_pin(PIN));
    let (a, b) = (refuses(0), refuses(1));
    let prompt = ScriptedPrompt::with_pin(PIN);
    let chosen = custos_hardware::select_key(
        // The touched key last: the others' refusals do not end the selection.
        vec![a.clone(), b.clone(), touched.clone()],
        prompt.clone(),
    )
    .expect("the touched key");
    assert_eq!(chosen.touch_requests(), 1);
    assert_eq!(
        touched.touch_requests(),
        1,
        "the one returned is the touched one"
    );
    assert_eq!(
        a.touch_requests() + b.touch_requests(),
        2,
        "every key was asked"
    );
    assert!(prompt.touches() >= 1, "the person was asked to touch one");
    assert_eq!(prompt.dones(), 1);
    assert_eq!(prompt.pins(), 0, "selection needs no PIN");
    // The chosen key works as any other.
    let rp = Rp::new();
    let mut key = Ctap2Key::from_twin(chosen, prompt.clone()).expect("open");
    enrol(&mut key, &rp);

    let started = Instant::now();
    match custos_hardware::select_key(vec![refuses(2), refuses(3)], prompt.clone()) {
        Err(Error::NoTouch) => {}
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}
