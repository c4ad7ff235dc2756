//! The real USB path on a machine without a FIDO2 key: it must say so at once, never hang.
#![cfg(feature = "usb")]

mod common;

use std::time::{Duration, Instant};

use common::ScriptedPrompt;
use custos_core::Error;

#[test]
fn open_usb_without_a_key_is_no_device_quickly() {
    if std::env::var_os("CUSTOS_FIDO2_USB").is_some() {
        eprintln!("skipped: CUSTOS_FIDO2_USB is set, a key is expected to be plugged in");
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
