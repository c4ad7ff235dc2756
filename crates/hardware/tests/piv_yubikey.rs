//! The real YubiKey PIV path. Without a key (this machine has no USB) it must say why at once. With
//! `CUSTOS_YUBIKEY_SERIAL` set, the real-device checks run against that key.
#![cfg(feature = "piv")]

use std::time::{Duration, Instant};

use custos_core::hardware::{Pin, PivCard};
use custos_core::Error;
use custos_hardware::YubiKeyPiv;
use p256::elliptic_curve::sec1::ToSec1Point;

#[test]
fn open_without_a_card_is_pcsc_not_running_or_no_device_quickly() {
    if std::env::var_os("CUSTOS_YUBIKEY_SERIAL").is_some() {
        eprintln!("skipped: CUSTOS_YUBIKEY_SERIAL is set, a YubiKey is expected to be plugged in");
        return;
    }
    let started = Instant::now();
    let r = YubiKeyPiv::open(None);
    let took = started.elapsed();
    match r {
        Err(Error::PcscNotRunning) => eprintln!("pcscd is not running here"),
        Err(Error::NoDevice("YubiKey")) => eprintln!("pcscd runs, no YubiKey"),
        Err(other) => panic!("expected PcscNotRunning or NoDevice, got {other:?}"),
        Ok(card) => panic!("a YubiKey answered on a machine without one: {card:?}"),
    }
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // Same with a serial asked for.
    assert!(matches!(
        YubiKeyPiv::open(Some(12345678)),
        Err(Error::PcscNotRunning | Error::NoDevice("YubiKey"))
    ));
}

/// Real hardware only: `CUSTOS_YUBIKEY_SERIAL=NNN` (and, to generate and use a key,
/// `CUSTOS_YUBIKEY_PIN` and `CUSTOS_YUBIKEY_SLOT`, e.g. 95 — an EMPTY retired slot). Touch the key
/// when it blinks. See docs/hardware-checklist.md.
#[test]
fn real_yubikey_checks() {
    let Some(serial) = std::env::var("CUSTOS_YUBIKEY_SERIAL")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
    else {
        eprintln!("skipped: set CUSTOS_YUBIKEY_SERIAL to run the real-YubiKey checks");
        return;
    };
    let mut card = YubiKeyPiv::open(Some(serial)).expect("open the YubiKey");
    let id = card.identity();
    eprintln!("opened {}", id.description);
    assert!(!id.demo);
    assert_eq!(card.serial(), serial);
    assert_eq!(id.serial, Some(serial));
    match card.check_not_default() {
        Ok(()) => eprintln!("credentials are not the factory ones"),
        Err(e) => eprintln!("check_not_default: {e}"),
    }
    assert!(matches!(
        card.generate_p256(0x9a, &Pin::new("000000".into())),
        Err(Error::Device(_))
    ));

    let (Ok(pin), Some(slot)) = (
        std::env::var("CUSTOS_YUBIKEY_PIN"),
        std::env::var("CUSTOS_YUBIKEY_SLOT")
            .ok()
            .and_then(|s| u8::from_str_radix(&s, 16).ok()),
    ) else {
        eprintln!("skipped generate/ECDH: set CUSTOS_YUBIKEY_PIN and CUSTOS_YUBIKEY_SLOT");
        return;
    };
    let pin = Pin::new(pin);
    let public = match card.public_key(slot) {
        Ok(p) => p,
        Err(_) => card.generate_p256(slot, &pin).expect("generate"),
    };
    assert_eq!(card.public_key(slot).expect("public key"), public);
    let card_public = p256::PublicKey::from_sec1_bytes(&public).expect("P-256");
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("random");
    let eph = p256::SecretKey::from_slice(&b).expect("scalar");
    eprintln!("touch the YubiKey now");
    let shared = card
        .ecdh(slot, eph.public_key().to_sec1_point(false).as_bytes(), &pin)
        .expect("ecdh");
    let expected = p256::ecdh::diffie_hellman(eph.to_nonzero_scalar(), card_public.as_affine());
    assert_eq!(shared.expose(), expected.raw_secret_bytes().as_slice());
}
