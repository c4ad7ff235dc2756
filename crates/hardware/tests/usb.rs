//! The real USB path on a machine without a FIDO2 key: it must say so at once, never hang.
#![cfg(feature = "usb")]

mod common;

use std::time::{Duration, Instant};

use common::{Rp, ScriptedPrompt};
use custos_core::hardware::Fido2Client;
use custos_core::Error;

#[test]
fn open_usb_without_a_key_is_no_device_quickly() {
    if std::env::var_os("CUSTOS_FIDO2_DEVICE").is_some() {
        eprintln!("skipped: CUSTOS_FIDO2_DEVICE is set, a key is expected to be plugged in");
        return;
    }
    let prompt = ScriptedPrompt::with_pin("unused");
    let started = Instant::now();
    let r = custos_hardware::open_usb(prompt.clone());
    let took = started.elapsed();
    match r {
        Err(Error::NoDevice("FIDO2 key")) => {}
        Err(other) => panic!("expected NoDevice(\"FIDO2 key\"), got {other:?}"),
        Ok(key) => panic!("a key answered on a machine without one: {key:?}"),
    }
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(
        prompt.pins() + prompt.touches(),
        0,
        "nobody was asked anything"
    );
}

/// Real hardware only (never run on the build machines, which have no USB): with one FIDO2 key
/// plugged in, `CUSTOS_FIDO2_DEVICE=1 CUSTOS_FIDO2_PIN=… cargo test -p custos-hardware --test usb --
/// --nocapture`, and touch the key each time it blinks (three times). Registers a credential for
/// the vault's relying party and asserts twice: user verification and a growing counter, as the
/// vault requires. See docs/hardware-checklist.md.
#[test]
fn real_fido2_key_registers_and_asserts_with_uv_and_a_growing_counter() {
    if std::env::var("CUSTOS_FIDO2_DEVICE").as_deref() != Ok("1") {
        eprintln!(
            "skipped: set CUSTOS_FIDO2_DEVICE=1 (and CUSTOS_FIDO2_PIN) with a FIDO2 key plugged in"
        );
        return;
    }
    let Ok(pin) = std::env::var("CUSTOS_FIDO2_PIN") else {
        panic!("CUSTOS_FIDO2_DEVICE=1 needs CUSTOS_FIDO2_PIN, the key's FIDO2 PIN");
    };
    let prompt = ScriptedPrompt::with_pin(&pin);
    let mut key = custos_hardware::open_usb(prompt.clone()).expect("open the FIDO2 key");
    assert!(key.pin_is_set(), "Custos requires a FIDO2 PIN on the key");
    let rp = Rp::new();

    eprintln!("touch the key to register (1 of 3)");
    let (ccr, state) = rp.start_registration("custos-hardware-test");
    let reg = key.register(ccr).expect("registration");
    let mut cred = rp.finish_registration(&reg, &state);
    let mut last = cred.counter;
    for n in [2, 3] {
        eprintln!("touch the key to sign ({n} of 3)");
        let (rcr, state) = rp.start_assertion(&cred);
        let pkc = key.assert(rcr).expect("assertion");
        let r = rp.finish_assertion(&pkc, &state);
        assert!(r.user_verified(), "UV must be true: the PIN was entered");
        assert_eq!(r.cred_id(), &cred.cred_id);
        // A key with a global counter may also report 0 throughout; Custos refuses that (no growth).
        assert!(
            r.counter() > last,
            "the counter must grow: {} after {last}",
            r.counter()
        );
        last = r.counter();
        cred.counter = last;
    }
    assert_eq!(prompt.touches(), 3, "Custos asked for each touch");
    eprintln!("done: the credential stays on the key (resident credentials: remove it with ykman fido credentials delete)");
}
