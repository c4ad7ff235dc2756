//! The file-backed twin: what survives a "power cycle" (reopening the file) and what does not.

use std::io::ErrorKind;

use custos_ctap2_twin::{persist, Config, SoftCtap2Device, TestUi, AAGUID, MAX_PIN_RETRIES};
use futures::executor::block_on;
use webauthn_authenticator_rs::ctap2::CtapAuthenticator;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{Url, Uuid, Webauthn, WebauthnBuilder};

const PIN: &str = "4711-custos";

fn origin() -> Url {
    Url::parse("https://custos.test").expect("origin")
}

fn rp() -> Webauthn {
    WebauthnBuilder::new("custos.test", &origin())
        .expect("builder")
        .build()
        .expect("webauthn")
}

fn client<'a>(
    dev: &SoftCtap2Device,
    ui: &'a TestUi,
) -> CtapAuthenticator<'a, SoftCtap2Device, TestUi> {
    block_on(CtapAuthenticator::new(dev.clone(), ui)).expect("getInfo")
}

#[test]
fn credentials_counter_and_retries_survive_reopening_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("key.json");
    let dev = SoftCtap2Device::create_file(&path, Config::with_pin(PIN)).expect("create");
    assert_eq!(dev.file().as_deref(), Some(path.as_path()));
    let ui = TestUi::with_pin(PIN);
    let rp = rp();
    let (ccr, reg_state) = rp
        .start_securitykey_registration(Uuid::new_v4(), "o", "O", None, None, None)
        .expect("start");
    let cred = client(&dev, &ui)
        .do_registration(origin(), ccr)
        .expect("register");
    let key = rp
        .finish_securitykey_registration(&cred, &reg_state)
        .expect("verified");
    drop(dev);

    // Reopened: the credential is still there and the counter continues.
    let dev = SoftCtap2Device::open_file(&path).expect("reopen");
    assert_eq!(dev.credential_count(), 1);
    assert_eq!(dev.sign_count(), 1);
    assert!(dev.pin_is_set());
    assert_eq!(dev.aaguid(), AAGUID);
    let (rcr, auth_state) = rp.start_securitykey_authentication(&[key]).expect("start");
    let a = client(&dev, &ui)
        .do_authentication(origin(), rcr)
        .expect("assert");
    let r = rp
        .finish_securitykey_authentication(&a, &auth_state)
        .expect("verified after reopening");
    assert_eq!(r.counter(), 2);
    assert_eq!(
        SoftCtap2Device::open_file(&path)
            .expect("reopen")
            .sign_count(),
        2
    );

    // A wrong PIN is written at once (as flash would be), even though the command failed.
    let wrong = TestUi::with_pin("0000");
    let (ccr, _) = rp
        .start_securitykey_registration(Uuid::new_v4(), "o", "O", None, None, None)
        .expect("start");
    assert!(client(&dev, &wrong).do_registration(origin(), ccr).is_err());
    let reopened = SoftCtap2Device::open_file(&path).expect("reopen");
    assert_eq!(reopened.pin_retries(), MAX_PIN_RETRIES - 1);
    assert_eq!(reopened.credential_count(), 1);
}

#[test]
fn create_refuses_to_overwrite_and_the_file_is_owner_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("key.json");
    SoftCtap2Device::create_file(&path, Config::with_pin(PIN)).expect("create");
    let before = std::fs::read(&path).expect("read");
    let err = SoftCtap2Device::create_file(&path, Config::default()).expect_err("exists");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&path).expect("read"), before, "untouched");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // No temporary files left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("key.json")]);
}

#[test]
fn damaged_files_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("key.json");
    SoftCtap2Device::create_file(&path, Config::with_pin(PIN)).expect("create");
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains(persist::FORMAT));
    assert!(text.contains("DEMO software FIDO2 key"));

    for (from, to) in [
        (persist::FORMAT, "something-else/9"),
        ("\"pin_retries\": 8", "\"pin_retries\": 200"),
        (
            "\"pin_protocols\": [\n    2,\n    1\n  ]",
            "\"pin_protocols\": []",
        ),
    ] {
        assert!(text.contains(from), "{from:?} not in {text}");
        std::fs::write(&path, text.replace(from, to)).expect("write");
        let err = SoftCtap2Device::open_file(&path).expect_err("damaged");
        assert_eq!(err.kind(), ErrorKind::InvalidData, "{from}: {err}");
    }
    std::fs::write(&path, "{").expect("write");
    assert_eq!(
        SoftCtap2Device::open_file(&path)
            .expect_err("not JSON")
            .kind(),
        ErrorKind::InvalidData
    );
    assert_eq!(
        SoftCtap2Device::open_file(&dir.path().join("missing.json"))
            .expect_err("missing")
            .kind(),
        ErrorKind::NotFound
    );
}
