//! The command layer driven through Tauri's real IPC path (mock runtime, the real capabilities/ACL),
//! against a real custos-core vault in a temporary directory. No window, no display needed.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, MockRuntime, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::{Listener, Manager, WebviewWindow};

use crate::config::Config;
use crate::session::Session;

const STRONG: &str = "quiet-harbour ledger 7 tangerine violin";

struct Harness {
    _app: tauri::App<MockRuntime>,
    window: WebviewWindow<MockRuntime>,
}

fn harness(vault: &Path, test_kdf_allowed: bool, idle: Duration) -> Harness {
    let config = Config {
        vault_path: vault.to_path_buf(),
        idle_timeout: idle,
        test_kdf_allowed,
    };
    let app = crate::app_builder(mock_builder(), config)
        .build(tauri::generate_context!())
        .expect("mock app builds");
    // `setup` (which starts the idle watcher in the real app) runs only once the event loop runs.
    crate::session::spawn_idle_watcher(app.handle().clone()).expect("idle watcher starts");
    // The "main" window of tauri.conf.json (the one capabilities/default.json names).
    let window = match app.get_webview_window("main") {
        Some(w) => w,
        None => tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .expect("mock window builds"),
    };
    Harness { _app: app, window }
}

impl Harness {
    fn call(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        get_ipc_response(
            &self.window,
            InvokeRequest {
                cmd: cmd.into(),
                callback: CallbackFn(0),
                error: CallbackFn(1),
                url: "tauri://localhost".parse().expect("url"),
                body: InvokeBody::Json(args),
                headers: Default::default(),
                invoke_key: INVOKE_KEY.to_string(),
            },
        )
        .map(|body| body.deserialize::<Value>().expect("json response"))
    }

    fn ok(&self, cmd: &str, args: Value) -> Value {
        match self.call(cmd, args) {
            Ok(v) => v,
            Err(e) => panic!("{cmd} failed: {e}"),
        }
    }

    fn err_kind(&self, cmd: &str, args: Value) -> String {
        match self.call(cmd, args) {
            Ok(v) => panic!("{cmd} should have failed, returned {v}"),
            Err(e) => {
                assert!(
                    e["message"].as_str().is_some_and(|m| !m.is_empty()),
                    "error without message: {e}"
                );
                e["kind"].as_str().unwrap_or_default().to_owned()
            }
        }
    }

    fn create_test_vault(&self) -> Value {
        self.ok(
            "create_vault",
            json!({"passphrase": STRONG, "confirmation": STRONG, "targetMs": null, "insecureTestKdf": true}),
        )
    }
}

#[test]
fn full_workflow_through_ipc() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vault = dir.path().join("v").join("vault.db");
    let h = harness(&vault, true, Duration::from_secs(300));

    let status = h.ok("app_status", json!({}));
    assert_eq!(status["exists"], false);
    assert_eq!(status["unlocked"], false);
    assert_eq!(status["test_kdf_allowed"], true);
    assert_eq!(status["idle_lock_secs"], 300);

    assert_eq!(h.err_kind("list_keys", json!({})), "vault_locked");

    let info = h.create_test_vault();
    assert_eq!(info["insecure_test_kdf"], true);
    assert_eq!(info["kdf"]["algorithm"], "argon2id");

    let created = h.ok(
        "create_key",
        json!({"name": "payments", "keyType": "symmetric-256", "rotateEvery": "90d"}),
    );
    assert_eq!(created["active_version"], 1);
    assert_eq!(created["rotate_every_secs"], 90 * 86400);
    assert_eq!(
        h.err_kind(
            "create_key",
            json!({"name": "x", "keyType": "rsa", "rotateEvery": null})
        ),
        "invalid_key_type"
    );
    assert_eq!(
        h.err_kind(
            "create_key",
            json!({"name": "y", "keyType": "ed25519", "rotateEvery": "9x"})
        ),
        "invalid_duration"
    );

    let rotated = h.ok("rotate_key", json!({"name": "payments"}));
    assert_eq!(rotated["active_version"], 2);
    let versions = rotated["versions"].as_array().expect("versions");
    let state_of = |v: u64| {
        versions
            .iter()
            .find(|x| x["version"] == v)
            .map(|x| x["state"].clone())
            .expect("version present")
    };
    assert_eq!(state_of(1), "decrypt-only");
    assert_eq!(state_of(2), "active");
    // Nothing that looks like secret material crosses IPC for a symmetric key.
    assert!(versions.iter().all(|v| v["public_key"].is_null()));

    let keys = h.ok("list_keys", json!({}));
    assert_eq!(keys[0]["name"], "payments");
    assert_eq!(keys[0]["rotation_status"], "ok");

    // An illegal transition is refused with the core's error.
    assert_eq!(
        h.err_kind(
            "set_key_state",
            json!({"name": "payments", "version": 1, "state": "active"})
        ),
        "illegal_transition"
    );
    let compromised = h.ok(
        "set_key_state",
        json!({"name": "payments", "version": 1, "state": "compromised"}),
    );
    assert_eq!(
        compromised["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .find(|x| x["version"] == 1)
            .expect("v1")["state"],
        "compromised"
    );
    let destroyed = h.ok("destroy_version", json!({"name": "payments", "version": 1}));
    assert_eq!(
        destroyed["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .find(|x| x["version"] == 1)
            .expect("v1")["state"],
        "destroyed"
    );

    let policy = h.ok(
        "set_rotation_policy",
        json!({"name": "payments", "every": ""}),
    );
    assert!(policy["rotate_every_secs"].is_null());

    h.ok("lock", json!({}));
    assert_eq!(
        h.err_kind("key_detail", json!({"name": "payments"})),
        "vault_locked"
    );
    let status = h.ok("app_status", json!({}));
    assert_eq!(status["exists"], true);
    assert_eq!(status["locked_info"]["insecure_test_kdf"], true);

    assert_eq!(
        h.err_kind("unlock", json!({"passphrase": "wrong wrong wrong"})),
        "wrong_passphrase"
    );
    h.ok("unlock", json!({"passphrase": STRONG}));

    let entries = h.ok("audit_entries", json!({}));
    let entries = entries.as_array().expect("entries");
    assert!(entries
        .iter()
        .any(|e| e["action"] == "vault.unlock" && e["outcome"] == "failed"));
    let report = h.ok("audit_verify", json!({}));
    assert_eq!(report["ok"], true, "{report}");
}

#[test]
fn create_vault_checks_passphrase_and_test_kdf_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vault = dir.path().join("vault.db");
    let h = harness(&vault, false, Duration::from_secs(300));

    let args = |p: &str, c: &str, insecure: bool| json!({"passphrase": p, "confirmation": c, "targetMs": 100, "insecureTestKdf": insecure});
    assert_eq!(
        h.err_kind("create_vault", args(STRONG, "something else", false)),
        "passphrase_mismatch"
    );
    assert_eq!(
        h.err_kind("create_vault", args("password1", "password1", false)),
        "weak_passphrase"
    );
    assert_eq!(
        h.err_kind("create_vault", args(STRONG, STRONG, true)),
        "test_kdf_not_allowed"
    );
    assert!(!vault.exists(), "a refused create must not leave a file");

    let strength = h.ok("passphrase_strength", json!({"passphrase": "password1"}));
    assert_eq!(strength["acceptable"], false);
    let strength = h.ok("passphrase_strength", json!({"passphrase": STRONG}));
    assert_eq!(strength["score"], 4);
}

#[test]
fn capabilities_grant_nothing_beyond_the_app_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = harness(
        &dir.path().join("vault.db"),
        false,
        Duration::from_secs(300),
    );
    // A core window command that is not in capabilities/default.json is refused by the ACL.
    let denied = h.call("plugin:window|close", json!({"label": "main"}));
    let denied = denied.expect_err("window close should be denied");
    assert!(
        denied.to_string().contains("not allowed"),
        "unexpected refusal: {denied}"
    );
    // Our own commands are allowed.
    assert!(h.call("app_status", json!({})).is_ok());
}

#[test]
fn real_calibration_emits_progress_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vault = dir.path().join("vault.db");
    let h = harness(&vault, false, Duration::from_secs(300));
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = Arc::clone(&seen);
    h.window
        .app_handle()
        .listen_any("calibration-progress", move |event| {
            let payload: Value =
                serde_json::from_str(event.payload()).expect("progress payload is JSON");
            sink.lock().expect("sink").push(payload);
        });
    let info = h.ok(
        "create_vault",
        json!({"passphrase": STRONG, "confirmation": STRONG, "targetMs": 100, "insecureTestKdf": false}),
    );
    assert_eq!(info["insecure_test_kdf"], false);
    assert!(
        info["kdf"]["memory_kib"]
            .as_u64()
            .is_some_and(|m| m >= 19 * 1024),
        "{info}"
    );
    let seen = seen.lock().expect("seen");
    assert!(!seen.is_empty(), "no calibration-progress event");
    let last = seen.last().expect("last");
    assert_eq!(
        last["step"], last["of"],
        "last event is not the final step: {seen:?}"
    );
    assert!(last["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[test]
fn idle_timeout_locks_the_vault() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vault = dir.path().join("vault.db");
    let h = harness(&vault, true, Duration::from_millis(600));
    h.create_test_vault();
    let session = h.window.state::<Session>();
    assert!(session.is_unlocked());
    // Activity keeps it open...
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(250));
        h.ok("list_keys", json!({}));
    }
    assert!(session.is_unlocked(), "commands count as activity");
    // ...and silence locks it (the watcher checks every 150 ms).
    std::thread::sleep(Duration::from_millis(1200));
    assert!(!session.is_unlocked(), "idle vault was not locked");
    assert_eq!(h.err_kind("list_keys", json!({})), "vault_locked");
}
