//! The demo PIV twin behind `PivCard`: generation in a retired slot, public key from the file, ECDH
//! checked from the other side, the PIN counter and its lock-out persisted.

use std::path::{Path, PathBuf};

mod common;

use common::ScriptedPrompt;
use custos_core::hardware::{Pin, PivCard};
use custos_core::Error;
use custos_hardware::{create_demo_piv, open_demo_piv};
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::{PublicKey, SecretKey};

const PIN: &str = "731904";

fn pin(s: &str) -> Pin {
    Pin::new(s.to_owned())
}

fn demo(dir: &Path) -> PathBuf {
    let path = dir.join("officer.piv.json");
    create_demo_piv(&path, &pin(PIN)).expect("create");
    path
}

/// The other party: an ephemeral P-256 key, as the vault makes when it wraps a key for the card.
fn peer() -> SecretKey {
    loop {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).expect("random");
        if let Ok(k) = SecretKey::from_slice(&b) {
            return k;
        }
    }
}

#[test]
fn generate_in_82_public_key_round_trips_and_ecdh_matches_the_peer_side() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = demo(dir.path());
    let mut card = open_demo_piv(&path).expect("open");
    let prompt = ScriptedPrompt::with_pin(PIN);
    card.set_prompt(prompt.clone());
    card.check_not_default().expect("not the factory PIN");

    let public = card.generate_p256(0x82, &pin(PIN)).expect("generate");
    assert_eq!(public.len(), 65);
    assert_eq!(public[0], 0x04);
    assert_eq!(card.public_key(0x82).expect("public key"), public);
    // From the file alone (another process).
    assert_eq!(
        open_demo_piv(&path)
            .expect("reopen")
            .public_key(0x82)
            .expect("public key"),
        public
    );

    let card_public = PublicKey::from_sec1_bytes(&public).expect("a P-256 point");
    for compressed in [false, true] {
        let eph = peer();
        let eph_public = eph.public_key().to_sec1_point(compressed);
        let from_card = card
            .ecdh(0x82, eph_public.as_bytes(), &pin(PIN))
            .expect("ecdh");
        let from_peer =
            p256::ecdh::diffie_hellman(eph.to_nonzero_scalar(), card_public.as_affine());
        assert_eq!(from_card.expose(), from_peer.raw_secret_bytes().as_slice());
        assert_eq!(from_card.expose().len(), 32);
    }
    assert_eq!(prompt.touches(), 2, "touch shown for each ECDH");
    assert_eq!(prompt.dones(), 2);

    // Another slot is another key; the same slot is not generated over.
    let other = card.generate_p256(0x95, &pin(PIN)).expect("slot 95");
    assert_ne!(other, public);
    match card.generate_p256(0x82, &pin(PIN)) {
        Err(Error::Device(m)) => assert!(m.contains("already holds a key"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(card.public_key(0x82).expect("unchanged"), public);
}

#[test]
fn wrong_pin_counts_down_two_one_then_blocked_and_it_persists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = demo(dir.path());
    let mut card = open_demo_piv(&path).expect("open");
    card.generate_p256(0x82, &pin(PIN)).expect("generate");
    let eph = peer().public_key().to_sec1_point(false);

    assert!(matches!(
        card.ecdh(0x82, eph.as_bytes(), &pin("000000")),
        Err(Error::WrongPin { retries: Some(2) })
    ));
    // Another process sees the same counter.
    let mut card = open_demo_piv(&path).expect("reopen");
    assert_eq!(card.pin_retries().expect("retries"), 2);
    assert!(matches!(
        card.generate_p256(0x83, &pin("000000")),
        Err(Error::WrongPin { retries: Some(1) })
    ));
    // The right PIN restores the tries, as on a card.
    card.ecdh(0x82, eph.as_bytes(), &pin(PIN))
        .expect("right PIN");
    assert_eq!(card.pin_retries().expect("retries"), 3);

    for expected in [2, 1] {
        assert!(matches!(
            card.ecdh(0x82, eph.as_bytes(), &pin("000000")),
            Err(Error::WrongPin { retries: Some(n) }) if n == expected
        ));
    }
    assert!(matches!(
        card.ecdh(0x82, eph.as_bytes(), &pin("000000")),
        Err(Error::PinBlocked(_))
    ));
    let mut card = open_demo_piv(&path).expect("reopen");
    assert_eq!(card.pin_retries().expect("retries"), 0);
    assert!(
        matches!(
            card.ecdh(0x82, eph.as_bytes(), &pin(PIN)),
            Err(Error::PinBlocked(_))
        ),
        "blocked for good, even with the right PIN"
    );
    assert!(matches!(
        card.generate_p256(0x84, &pin(PIN)),
        Err(Error::PinBlocked(_))
    ));
}

#[test]
fn only_retired_slots_are_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = demo(dir.path());
    let mut card = open_demo_piv(&path).expect("open");
    for slot in [0x9a, 0x9c, 0x9d, 0x9e, 0x81, 0x96] {
        match card.generate_p256(slot, &pin(PIN)) {
            Err(Error::Device(m)) => assert!(m.contains("82 to 95"), "{m}"),
            other => panic!("slot {slot:02x}: {other:?}"),
        }
    }
    assert!(matches!(card.public_key(0x9a), Err(Error::Device(_))));
    assert_eq!(card.pin_retries().expect("retries"), 3, "no PIN try spent");
    assert!(matches!(card.public_key(0x83), Err(Error::Device(m)) if m.contains("holds no key")));
}

#[test]
fn the_factory_pin_is_refused_without_spending_a_try() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("factory.piv.json");
    create_demo_piv(&path, &pin("123456")).expect("create");
    let mut card = open_demo_piv(&path).expect("open");
    match card.check_not_default() {
        Err(Error::DefaultCredentials(m)) => {
            assert!(m.contains("123456"), "{m}");
            assert!(m.contains("ykman piv access change-pin"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(card.pin_retries().expect("retries"), 3);
}

#[test]
fn the_demo_identity_says_demo_and_files_are_not_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = demo(dir.path());
    let card = open_demo_piv(&path).expect("open");
    let id = card.identity();
    assert!(id.demo);
    assert_eq!(id.kind, "piv");
    assert!(
        id.description
            .starts_with("DEMO software PIV key — not hardware"),
        "{}",
        id.description
    );
    assert_eq!(id.serial, Some(card.serial()));
    assert!(card.serial() >= custos_hardware::piv::demo::DEMO_SERIAL_BASE);

    let before = std::fs::read(&path).expect("read");
    assert!(
        matches!(create_demo_piv(&path, &pin("246810")), Err(Error::Device(m)) if m.contains("refusing to overwrite"))
    );
    assert_eq!(std::fs::read(&path).expect("read"), before);
    assert!(matches!(
        create_demo_piv(&dir.path().join("short.json"), &pin("12345")),
        Err(Error::Device(_))
    ));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let text = String::from_utf8(before).expect("utf-8");
    assert!(!text.contains(PIN), "the PIN is not stored in clear");
}

#[test]
fn a_malformed_pin_or_peer_costs_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = demo(dir.path());
    let mut card = open_demo_piv(&path).expect("open");
    card.generate_p256(0x82, &pin(PIN)).expect("generate");
    let eph = peer().public_key().to_sec1_point(false);
    assert!(matches!(
        card.ecdh(0x82, eph.as_bytes(), &pin("12")),
        Err(Error::Device(_))
    ));
    assert!(matches!(
        card.ecdh(0x82, &[4u8; 65], &pin(PIN)),
        Err(Error::Device(_))
    ));
    assert_eq!(card.pin_retries().expect("retries"), 3);
}
