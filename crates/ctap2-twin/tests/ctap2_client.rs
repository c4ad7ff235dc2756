//! The software key driven only through webauthn-authenticator-rs's real CTAP2 client
//! (`CtapAuthenticator` + `WebauthnAuthenticator`), its output verified by webauthn-rs.

use std::time::{Duration, Instant};

use custos_ctap2_twin::{Config, Presence, SoftCtap2Device, TestUi, MAX_PIN_RETRIES};
use futures::executor::block_on;
use webauthn_authenticator_rs::ctap2::CtapAuthenticator;
use webauthn_authenticator_rs::error::{CtapError, WebauthnCError};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{SecurityKey, Url, Uuid, Webauthn, WebauthnBuilder, WebauthnError};

const PIN: &str = "4711-custos";
const RP_ID: &str = "custos.test";

fn origin() -> Url {
    Url::parse("https://custos.test").expect("origin")
}

fn rp() -> Webauthn {
    WebauthnBuilder::new(RP_ID, &origin())
        .expect("builder")
        .rp_name("Custos")
        .build()
        .expect("webauthn")
}

/// A client session on the device, as a fresh plug-in would give (getInfo included).
fn client<'a>(
    dev: &SoftCtap2Device,
    ui: &'a TestUi,
) -> CtapAuthenticator<'a, SoftCtap2Device, TestUi> {
    block_on(CtapAuthenticator::new(dev.clone(), ui)).expect("getInfo accepted by the client")
}

fn register(rp: &Webauthn, dev: &SoftCtap2Device, ui: &TestUi) -> Result<SecurityKey, String> {
    let (ccr, state) = rp
        .start_securitykey_registration(Uuid::new_v4(), "officer", "Officer", None, None, None)
        .expect("start registration");
    let cred = client(dev, ui)
        .do_registration(origin(), ccr)
        .map_err(|e| format!("client: {e:?}"))?;
    rp.finish_securitykey_registration(&cred, &state)
        .map_err(|e| format!("rp: {e:?}"))
}

fn registered(dev: &SoftCtap2Device, ui: &TestUi) -> (Webauthn, SecurityKey) {
    let rp = rp();
    let key = register(&rp, dev, ui).expect("registration");
    (rp, key)
}

fn expect_ctap(r: Result<impl std::fmt::Debug, WebauthnCError>, want: CtapError) {
    match r {
        Err(WebauthnCError::Ctap(e)) => assert_eq!(e, want),
        other => panic!("expected Ctap({want:?}), got {other:?}"),
    }
}

#[test]
fn register_then_authenticate_with_pin_counter_increases() {
    let dev = SoftCtap2Device::new(Config::with_pin(PIN));
    let ui = TestUi::with_pin(PIN);
    let (rp, mut key) = registered(&dev, &ui);
    assert_eq!(dev.credential_count(), 1);
    assert_eq!(dev.sign_count(), 1);

    let mut last = 1;
    for _ in 0..2 {
        let (rcr, state) = rp
            .start_securitykey_authentication(std::slice::from_ref(&key))
            .expect("start auth");
        let assertion = client(&dev, &ui)
            .do_authentication(origin(), rcr)
            .expect("assertion");
        let result = rp
            .finish_securitykey_authentication(&assertion, &state)
            .expect("webauthn-rs accepts the assertion");
        assert!(result.user_verified(), "a PIN was entered: UV must be true");
        assert!(
            result.counter() > last,
            "counter {} after {last}",
            result.counter()
        );
        assert!(result.needs_update());
        assert_eq!(key.update_credential(&result), Some(true));
        last = result.counter();
    }
    assert_eq!(last, 3);
    // One PIN entry and one touch per ceremony (1 registration + 2 authentications).
    assert_eq!(ui.pin_requests(), 3);
    assert_eq!(ui.touch_prompts(), 3);
    assert_eq!(dev.touch_requests(), 3);
    assert_eq!(dev.pin_retries(), MAX_PIN_RETRIES);
}

#[test]
fn pin_protocol_one_and_legacy_get_pin_token_also_work() {
    for (protocols, permissions_token) in [(vec![1], true), (vec![1], false), (vec![2], false)] {
        let dev = SoftCtap2Device::new(Config {
            pin_protocols: protocols.clone(),
            pin_uv_auth_token: permissions_token,
            ..Config::with_pin(PIN)
        });
        let ui = TestUi::with_pin(PIN);
        let (rp, key) = registered(&dev, &ui);
        let (rcr, state) = rp
            .start_securitykey_authentication(&[key])
            .expect("start auth");
        let assertion = client(&dev, &ui)
            .do_authentication(origin(), rcr)
            .expect("assertion");
        let result = rp
            .finish_securitykey_authentication(&assertion, &state)
            .unwrap_or_else(|e| {
                panic!("protocols {protocols:?}, token {permissions_token}: {e:?}")
            });
        assert!(result.user_verified());
    }
}

#[test]
fn wrong_pin_is_refused_and_retries_count_down() {
    let dev = SoftCtap2Device::new(Config::with_pin(PIN));
    let ui = TestUi::with_pin("0000");
    let rp = rp();

    let err = register(&rp, &dev, &ui).expect_err("a wrong PIN must not register");
    assert!(err.contains("Ctap2PinInvalid"), "{err}");
    assert_eq!(dev.pin_retries(), MAX_PIN_RETRIES - 1);
    assert_eq!(dev.credential_count(), 0);
    assert_eq!(
        dev.touch_requests(),
        0,
        "no touch is asked before the PIN is right"
    );

    let err = register(&rp, &dev, &ui).expect_err("still wrong");
    assert!(err.contains("Ctap2PinInvalid"), "{err}");
    assert_eq!(dev.pin_retries(), MAX_PIN_RETRIES - 2);

    // Third mismatch in a row: blocked until the key is re-plugged.
    let err = register(&rp, &dev, &ui).expect_err("still wrong");
    assert!(err.contains("Ctap2PinAuthBlocked"), "{err}");
    assert_eq!(dev.pin_retries(), MAX_PIN_RETRIES - 3);
    ui.set_pin(Some(PIN));
    let err = register(&rp, &dev, &ui).expect_err("blocked even with the right PIN");
    assert!(err.contains("Ctap2PinAuthBlocked"), "{err}");
    assert_eq!(
        dev.pin_retries(),
        MAX_PIN_RETRIES - 3,
        "a blocked attempt costs no retry"
    );

    dev.power_cycle();
    register(&rp, &dev, &ui).expect("right PIN after a power cycle");
    assert_eq!(
        dev.pin_retries(),
        MAX_PIN_RETRIES,
        "success restores the retries"
    );
}

#[test]
fn pin_blocks_at_zero_retries() {
    let dev = SoftCtap2Device::new(Config::with_pin(PIN));
    let ui = TestUi::with_pin("0000");
    let rp = rp();
    let mut last = String::new();
    for _ in 0..MAX_PIN_RETRIES {
        last = register(&rp, &dev, &ui).expect_err("wrong PIN");
        dev.power_cycle();
    }
    assert!(last.contains("Ctap2PinBlocked"), "{last}");
    assert_eq!(dev.pin_retries(), 0);
    ui.set_pin(Some(PIN));
    let err = register(&rp, &dev, &ui).expect_err("blocked for good");
    assert!(err.contains("Ctap2PinBlocked"), "{err}");
}

#[test]
fn no_touch_times_out_instead_of_hanging() {
    let dev = SoftCtap2Device::new(Config {
        presence: Presence::NoTouch,
        touch_timeout: Duration::from_millis(100),
        ..Config::with_pin(PIN)
    });
    let ui = TestUi::with_pin(PIN);
    let rp = rp();
    let started = Instant::now();
    let err = register(&rp, &dev, &ui).expect_err("no touch, no credential");
    assert!(err.contains("Ctap2UserActionTimeout"), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(ui.touch_prompts(), 1, "the user was asked to touch");
    assert_eq!(dev.credential_count(), 0);

    // Register with a touch, then refuse the touch on authentication.
    dev.set_presence(Presence::Touch);
    let key = register(&rp, &dev, &ui).expect("registration with a touch");
    let count = dev.sign_count();
    dev.set_presence(Presence::NoTouch);
    let (rcr, _state) = rp.start_securitykey_authentication(&[key]).expect("start");
    expect_ctap(
        client(&dev, &ui).do_authentication(origin(), rcr),
        CtapError::Ctap2UserActionTimeout,
    );
    assert_eq!(dev.sign_count(), count, "no assertion, no counter step");

    dev.set_presence(Presence::Deny);
    expect_ctap(
        block_on(client(&dev, &ui).selection()),
        CtapError::Ctap2OperationDenied,
    );
    dev.set_presence(Presence::Touch);
    block_on(client(&dev, &ui).selection()).expect("selection with a touch");
}

#[test]
fn key_without_pin_is_refused_when_uv_is_preferred() {
    // webauthn-rs asks UV=Preferred for security keys; a key with no PIN and no built-in UV cannot
    // give it, and the client refuses before touching the key.
    let dev = SoftCtap2Device::new(Config::default());
    let ui = TestUi::default();
    let err = register(&rp(), &dev, &ui).expect_err("no PIN, no UV");
    assert!(err.contains("UserVerificationRequired"), "{err}");
    assert_eq!(dev.credential_count(), 0);
    assert_eq!(dev.touch_requests(), 0);

    // With the danger feature off, webauthn-rs cannot be told to take presence only; the client can
    // still set a PIN (ctap2-management), after which the key registers with UV.
    block_on(client(&dev, &ui).set_new_pin(PIN)).expect("setPIN");
    assert!(dev.pin_is_set());
    ui.set_pin(Some(PIN));
    let (rp, key) = registered(&dev, &ui);
    let (rcr, state) = rp.start_securitykey_authentication(&[key]).expect("start");
    let a = client(&dev, &ui)
        .do_authentication(origin(), rcr)
        .expect("assertion");
    let r = rp
        .finish_securitykey_authentication(&a, &state)
        .expect("verified");
    assert!(r.user_verified());
}

#[test]
fn set_pin_twice_is_not_allowed_and_change_pin_checks_the_old_one() {
    let dev = SoftCtap2Device::new(Config::with_pin(PIN));
    let ui = TestUi::default();
    expect_ctap(
        block_on(client(&dev, &ui).set_new_pin("9999")),
        CtapError::Ctap2NotAllowed,
    );
    expect_ctap(
        block_on(client(&dev, &ui).change_pin("0000", "2468")),
        CtapError::Ctap2PinInvalid,
    );
    assert_eq!(dev.pin_retries(), MAX_PIN_RETRIES - 1);
    block_on(client(&dev, &ui).change_pin(PIN, "2468")).expect("changePIN");
    ui.set_pin(Some("2468"));
    registered(&dev, &ui);
    ui.set_pin(Some(PIN));
    assert!(
        register(&rp(), &dev, &ui).is_err(),
        "the old PIN no longer works"
    );
}

#[test]
fn assertion_for_one_challenge_fails_against_another() {
    let dev = SoftCtap2Device::new(Config::with_pin(PIN));
    let ui = TestUi::with_pin(PIN);
    let (rp, key) = registered(&dev, &ui);
    let keys = [key];
    let (rcr_a, state_a) = rp.start_securitykey_authentication(&keys).expect("a");
    let (_rcr_b, state_b) = rp.start_securitykey_authentication(&keys).expect("b");
    let assertion = client(&dev, &ui)
        .do_authentication(origin(), rcr_a)
        .expect("assertion");
    let err = rp
        .finish_securitykey_authentication(&assertion, &state_b)
        .expect_err("the challenge differs");
    assert!(matches!(err, WebauthnError::MismatchedChallenge), "{err:?}");
    // The same assertion against its own challenge passes, so the failure above is the challenge.
    rp.finish_securitykey_authentication(&assertion, &state_a)
        .expect("own challenge");
}

#[test]
fn counter_rolled_back_is_flagged_as_possible_clone() {
    let dev = SoftCtap2Device::new(Config::with_pin(PIN));
    let ui = TestUi::with_pin(PIN);
    let (rp, mut key) = registered(&dev, &ui);
    let (rcr, state) = rp
        .start_securitykey_authentication(std::slice::from_ref(&key))
        .expect("start");
    let a = client(&dev, &ui)
        .do_authentication(origin(), rcr)
        .expect("assertion");
    let r = rp
        .finish_securitykey_authentication(&a, &state)
        .expect("ok");
    key.update_credential(&r);
    assert_eq!(r.counter(), 2);

    dev.set_sign_count(0); // the "clone" next signs with counter 1 <= 2
    let (rcr, state) = rp.start_securitykey_authentication(&[key]).expect("start");
    let a = client(&dev, &ui)
        .do_authentication(origin(), rcr)
        .expect("assertion");
    let err = rp
        .finish_securitykey_authentication(&a, &state)
        .expect_err("counter went backwards");
    assert!(
        matches!(err, WebauthnError::CredentialPossibleCompromise),
        "{err:?}"
    );
}

#[test]
fn get_info_is_what_the_client_sees() {
    let dev = SoftCtap2Device::new(Config::default());
    let ui = TestUi::default();
    let c = client(&dev, &ui);
    let info = c.get_info();
    assert!(info.versions.contains("FIDO_2_1") && info.versions.contains("FIDO_2_0"));
    assert!(matches!(c, CtapAuthenticator::Fido21(_)));
    assert_eq!(info.get_option("clientPin"), Some(false));
    assert_eq!(info.get_option("rk"), Some(false));
    assert_eq!(info.get_option("up"), Some(true));
    assert_eq!(info.pin_protocols, Some(vec![2, 1]));
    assert_eq!(
        info.aaguid.map(|u| *u.as_bytes()),
        Some(custos_ctap2_twin::AAGUID)
    );
    let with_pin = SoftCtap2Device::new(Config::with_pin(PIN));
    assert_eq!(
        client(&with_pin, &ui).get_info().get_option("clientPin"),
        Some(true)
    );
}

#[test]
fn excluded_credential_and_foreign_rp_are_refused() {
    let dev = SoftCtap2Device::new(Config::with_pin(PIN));
    let ui = TestUi::with_pin(PIN);
    let (rp, key) = registered(&dev, &ui);

    // Registering again with the existing credential in excludeCredentials: the key refuses.
    let (ccr, _state) = rp
        .start_securitykey_registration(
            Uuid::new_v4(),
            "officer",
            "Officer",
            Some(vec![key.cred_id().clone()]),
            None,
            None,
        )
        .expect("start registration");
    expect_ctap(
        client(&dev, &ui).do_registration(origin(), ccr),
        CtapError::Ctap2CredentialExcluded,
    );
    assert_eq!(dev.credential_count(), 1);

    // The credential is bound to its RP: another RP presenting the same credential ID gets nothing.
    let other_origin = Url::parse("https://other.test").expect("origin");
    let other = WebauthnBuilder::new("other.test", &other_origin)
        .expect("builder")
        .build()
        .expect("webauthn");
    let (rcr, _state) = other
        .start_securitykey_authentication(&[key])
        .expect("start");
    expect_ctap(
        client(&dev, &ui).do_authentication(other_origin, rcr),
        CtapError::Ctap2NoCredentials,
    );
}
