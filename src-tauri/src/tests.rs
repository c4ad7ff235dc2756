//! The command layer driven through Tauri's real IPC path (mock runtime, the real capabilities/ACL),
//! against a real custos-core vault in a temporary directory. No window, no display needed.

use std::path::{Path, PathBuf};
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
    harness_with(Config {
        vault_path: vault.to_path_buf(),
        idle_timeout: idle,
        test_kdf_allowed,
        demo: false,
        prompt_timeout: Duration::from_secs(20),
    })
}

fn harness_with(config: Config) -> Harness {
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

/// One IPC call through Tauri's real invoke path (ACL included).
fn invoke(window: &WebviewWindow<MockRuntime>, cmd: &str, args: Value) -> Result<Value, Value> {
    get_ipc_response(
        window,
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

impl Harness {
    fn call(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        invoke(&self.window, cmd, args)
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

    // No custodians yet: the operation runs at once, and the result carries the key as it is now.
    let rotated = h.ok("rotate_key", json!({"name": "payments"}));
    assert!(
        rotated["done"]
            .as_str()
            .is_some_and(|d| d.contains("rotated")),
        "{rotated}"
    );
    assert!(rotated.get("pending").is_none(), "{rotated}");
    let rotated = &rotated["key"];
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
        compromised["key"]["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .find(|x| x["version"] == 1)
            .expect("v1")["state"],
        "compromised"
    );
    let destroyed = h.ok("destroy_version", json!({"name": "payments", "version": 1}));
    assert_eq!(
        destroyed["key"]["versions"]
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
    assert!(policy["key"]["rotate_every_secs"].is_null());

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

// ---- custody, with the demo (software) keys ---------------------------------------------------

const FIDO2_PIN: &str = "1357";
const PIV_PIN: &str = "24681357";

/// What the PIN dialog and the touch prompt saw, and how the "person" answers.
#[derive(Default)]
struct Person {
    pin_requests: Mutex<Vec<Value>>,
    touches: Mutex<Vec<Value>>,
    dones: Mutex<u32>,
    /// Overrides the right PIN for the next requests: `Some(None)` cancels, `Some(Some(pin))` types it.
    next: Mutex<Option<Option<String>>>,
    /// Don't answer at all (the dialog is left open).
    silent: Mutex<bool>,
    /// What another command got while a PIN request was open.
    probe: Mutex<Vec<String>>,
}

impl Person {
    fn pins(&self) -> Vec<Value> {
        self.pin_requests.lock().expect("pins").clone()
    }
    fn touch_count(&self) -> usize {
        self.touches.lock().expect("touches").len()
    }
    fn answer_next(&self, pin: Option<&str>) {
        *self.next.lock().expect("next") = Some(pin.map(str::to_owned));
    }
    fn answer_right(&self) {
        *self.next.lock().expect("next") = None;
    }
}

/// Listens to the prompt events like the window does, and answers PIN requests through the real
/// `submit_pin` command: the FIDO2 PIN or the PIV PIN (told apart by the length rule in the request).
fn person(h: &Harness) -> Arc<Person> {
    let p = Arc::new(Person::default());
    let handle = h.window.app_handle().clone();
    let (sink, window) = (p.clone(), h.window.clone());
    handle.listen_any(crate::prompt::EVENT_PIN_REQUEST, move |event| {
        let req: Value = serde_json::from_str(event.payload()).expect("pin request is JSON");
        assert!(req["id"].as_u64().is_some(), "{req}");
        assert!(req["device"].as_str().is_some_and(|d| !d.is_empty()));
        sink.pin_requests.lock().expect("pins").push(req.clone());
        if *sink.silent.lock().expect("silent") {
            return;
        }
        let pin = match sink.next.lock().expect("next").clone() {
            Some(choice) => choice,
            None if req["max_len"] == 8 => Some(PIV_PIN.to_owned()),
            None => Some(FIDO2_PIN.to_owned()),
        };
        let (sink, window) = (sink.clone(), window.clone());
        std::thread::spawn(move || {
            if let Err(e) = invoke(&window, "list_keys", json!({})) {
                sink.probe
                    .lock()
                    .expect("probe")
                    .push(e["kind"].as_str().unwrap_or_default().to_owned());
            }
            invoke(&window, "submit_pin", json!({"id": req["id"], "pin": pin}))
                .expect("submit_pin accepted");
        });
    });
    let sink = p.clone();
    handle.listen_any(crate::prompt::EVENT_TOUCH, move |event| {
        let touch: Value = serde_json::from_str(event.payload()).expect("touch is JSON");
        sink.touches.lock().expect("touches").push(touch);
    });
    let sink = p.clone();
    handle.listen_any(crate::prompt::EVENT_PROMPT_DONE, move |_| {
        *sink.dones.lock().expect("dones") += 1;
    });
    p
}

fn demo_harness(vault: &Path, prompt_timeout: Duration) -> Harness {
    harness_with(Config {
        vault_path: vault.to_path_buf(),
        idle_timeout: Duration::from_secs(300),
        test_kdf_allowed: true,
        demo: true,
        prompt_timeout,
    })
}

fn version_state(key: &Value, version: u64) -> Value {
    key["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .find(|v| v["version"] == version)
        .map(|v| v["state"].clone())
        .expect("version present")
}

impl Harness {
    fn add(&self, name: &str, roles: &[&str]) -> Value {
        self.ok("add_custodian", json!({"name": name, "roles": roles}))
    }
    fn enroll(&self, name: &str, kind: &str) -> Value {
        self.ok(
            "enroll_key",
            json!({"name": name, "kind": kind, "slot": null}),
        )
    }
    fn act(&self, name: Option<&str>) -> Value {
        self.ok("act_as", json!({ "name": name }))
    }
    /// An officer olivia and two custodians, carol and dave, each with a demo FIDO2 key.
    fn three_custodians(&self) {
        assert!(self.add("olivia", &["officer"])["done"].is_string());
        self.act(Some("olivia"));
        assert!(self.enroll("olivia", "fido2")["done"].is_string());
        for name in ["carol", "dave"] {
            assert!(self.add(name, &["custodian"])["done"].is_string());
            assert!(self.enroll(name, "fido2")["done"].is_string());
        }
    }
}

#[test]
fn custody_two_person_destroy_with_demo_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vault = dir.path().join("vault.db");
    let h = demo_harness(&vault, Duration::from_secs(20));
    let person = person(&h);
    assert_eq!(h.ok("app_status", json!({}))["demo"], true);
    h.create_test_vault();

    let status = h.ok("custody_status", json!({}));
    assert_eq!(status["unguarded"], true);
    assert_eq!(status["enforced"], false);

    // The first custodian (an officer) starts custody without a key.
    let added = h.add("olivia", &["officer"]);
    assert!(added["done"].as_str().is_some_and(|d| d.contains("olivia")));
    assert!(person.pins().is_empty(), "no PIN for the first custodian");
    let status = h.ok("custody_status", json!({}));
    assert_eq!(status["unguarded"], false);
    assert!(status["acting_as"].is_null());
    // From now on someone must act, and only an officer creates keys.
    assert_eq!(
        h.err_kind(
            "create_key",
            json!({"name": "payroll", "keyType": "symmetric-256", "rotateEvery": null})
        ),
        "identity_required"
    );
    assert_eq!(h.act(Some("olivia"))["acting_as"], "olivia");
    assert_eq!(
        h.err_kind("act_as", json!({"name": "mallory"})),
        "no_such_custodian"
    );

    // Enrol olivia's first key: the dialog asks for a new PIN, the key is touched.
    let enrolled = h.enroll("olivia", "fido2");
    assert!(enrolled["done"].is_string(), "{enrolled}");
    let pins = person.pins();
    assert_eq!(
        pins.len(),
        1,
        "one dialog: the new key's PIN is not asked twice"
    );
    assert_eq!(pins[0]["purpose"], "new");
    assert_eq!(pins[0]["custodian"], "olivia");
    assert_eq!(pins[0]["min_len"], 4);
    assert!(person.touch_count() >= 1, "no touch prompt");
    assert!(
        *person.dones.lock().expect("dones") >= 1,
        "prompt never closed"
    );
    assert!(vault
        .with_file_name("vault.db.demo-keys")
        .join("olivia-fido2-1.json")
        .is_file());
    let custodians = h.ok("list_custodians", json!({}));
    let olivia = &custodians[0];
    assert_eq!(olivia["name"], "olivia");
    assert_eq!(olivia["roles"], json!(["officer"]));
    let auth = &olivia["authenticators"][0];
    assert_eq!(auth["kind"], "fido2");
    assert_eq!(auth["device"]["demo"], true);
    assert!(auth["credential_id"]
        .as_str()
        .is_some_and(|c| c.len() >= 16));
    assert!(auth["counter"].is_u64());
    assert!(auth["attestation"].is_string());
    assert!(auth["revoked"].is_null());
    assert_eq!(h.ok("custody_status", json!({}))["demo"], true);

    // Separation of duties is the core's, and reaches the window with its message.
    assert_eq!(
        h.err_kind(
            "add_custodian",
            json!({"name": "eve", "roles": ["officer", "auditor"]})
        ),
        "separation_of_duties"
    );
    assert_eq!(
        h.err_kind("add_custodian", json!({"name": "eve", "roles": ["admin"]})),
        "invalid_role"
    );

    // Two custodians, each added with olivia's touch and enrolled by her.
    for name in ["carol", "dave"] {
        let before = person.pins().len();
        assert!(h.add(name, &["custodian"])["done"].is_string());
        assert!(h.enroll(name, "fido2")["done"].is_string());
        let asked: Vec<(Value, Value)> = person.pins()[before..]
            .iter()
            .map(|p| (p["custodian"].clone(), p["purpose"].clone()))
            .collect();
        assert_eq!(
            asked,
            vec![
                (json!("olivia"), json!("enter")),
                (json!(name), json!("new")),
                (json!("olivia"), json!("enter")),
            ],
            "add: officer's PIN; enrol: new key's PIN, then the officer's"
        );
    }

    // Setup: no approvals yet, and every rule can be met.
    let status = h.ok("custody_status", json!({}));
    assert_eq!(status["enforced"], false);
    assert_eq!(status["unmet"], json!([]));
    let destroy_rule = status["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["operation"] == "key.destroy")
        .expect("destroy rule")
        .clone();
    assert_eq!(destroy_rule["approvals"], 2);
    assert_eq!(destroy_rule["requester_roles"], json!(["officer"]));
    assert_eq!(destroy_rule["presence"], true);

    let activated = h.ok("activate_rules", json!({}));
    assert!(activated["done"].is_string(), "{activated}");
    assert_eq!(h.ok("custody_status", json!({}))["enforced"], true);

    h.ok(
        "create_key",
        json!({"name": "payroll", "keyType": "symmetric-256", "rotateEvery": null}),
    );
    let rotated = h.ok("rotate_key", json!({"name": "payroll"}));
    assert!(rotated["done"].is_string(), "rotation needs no approval");
    assert_eq!(rotated["key"]["active_version"], 2);

    // The destroy goes pending: two approvals needed, the key unchanged.
    let asked = h.ok("destroy_version", json!({"name": "payroll", "version": 1}));
    let request = &asked["pending"];
    assert_eq!(request["needed"], 2, "{asked}");
    assert_eq!(request["requester"], "olivia");
    assert_eq!(request["kind"], "key.destroy");
    assert_eq!(request["status"], "pending");
    assert_eq!(version_state(&asked["key"], 1), "decrypt-only");
    let id = request["id"].as_str().expect("request id").to_owned();

    // The requester cannot approve; an unknown request is refused before any PIN.
    assert_eq!(
        h.err_kind("approve_request", json!({"id": id})),
        "separation_of_duties"
    );
    let before = person.pins().len();
    assert_eq!(
        h.err_kind("approve_request", json!({"id": "000000000000"})),
        "no_such_request"
    );
    assert_eq!(person.pins().len(), before);

    h.act(Some("carol"));
    let first = h.ok("approve_request", json!({"id": id}));
    assert_eq!(first["pending"]["approvals"][0]["custodian"], "carol");
    assert_eq!(
        h.err_kind("approve_request", json!({"id": id})),
        "separation_of_duties",
        "each approver counts once"
    );
    h.act(Some("dave"));
    let second = h.ok("approve_request", json!({"id": id}));
    assert!(
        second["done"]
            .as_str()
            .is_some_and(|d| d.contains("destroyed")),
        "{second}"
    );
    let key = h.ok("key_detail", json!({"name": "payroll"}));
    assert_eq!(version_state(&key, 1), "destroyed");
    let requests = h.ok("list_requests", json!({}));
    let done = requests
        .as_array()
        .expect("requests")
        .iter()
        .find(|r| r["id"] == id.as_str())
        .expect("request listed");
    assert_eq!(done["status"], "done");
    assert_eq!(done["approvals"].as_array().expect("approvals").len(), 2);

    // The audit log names the requester's and the approvers' touches; no PIN anywhere.
    let entries = h.ok("audit_entries", json!({}));
    let entries = entries.as_array().expect("entries");
    let destroy = entries
        .iter()
        .find(|e| e["action"] == "key.destroy" && e["outcome"] == "ok")
        .expect("destroy entry");
    let detail = destroy["detail"].as_str().expect("detail");
    assert!(detail.contains("requested by olivia"), "{detail}");
    assert!(
        detail.contains("approved by carol") && detail.contains("dave"),
        "{detail}"
    );
    assert_eq!(destroy["actor"], "olivia");
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["action"] == "request.approve" && e["outcome"] == "ok")
            .count(),
        2
    );
    // The two refused approvals (the requester, and carol twice) are in the log as refusals.
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["action"] == "request.approve" && e["outcome"] == "refused")
            .count(),
        2
    );
    let all = serde_json::to_string(&entries).expect("json");
    assert!(!all.contains(FIDO2_PIN), "a PIN reached the audit log");
    assert_eq!(h.ok("audit_verify", json!({}))["ok"], true);
}

#[test]
fn pin_dialog_cancel_wrong_pin_timeout_and_busy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vault = dir.path().join("vault.db");
    let h = demo_harness(&vault, Duration::from_millis(1500));
    let person = person(&h);
    h.create_test_vault();
    h.three_custodians();
    // While a PIN dialog is open, other commands are refused at once (never queued on the UI thread).
    assert!(
        person
            .probe
            .lock()
            .expect("probe")
            .iter()
            .all(|k| k == "busy"),
        "{:?}",
        person.probe.lock().expect("probe")
    );
    assert!(!person.probe.lock().expect("probe").is_empty());

    // Cancel: the operation fails with pin_required and changes nothing.
    person.answer_next(None);
    assert_eq!(
        h.err_kind(
            "add_custodian",
            json!({"name": "erin", "roles": ["operator"]})
        ),
        "pin_required"
    );
    // A wrong PIN: wrong_pin, with the tries left.
    person.answer_next(Some("9999"));
    assert_eq!(
        h.err_kind(
            "add_custodian",
            json!({"name": "erin", "roles": ["operator"]})
        ),
        "wrong_pin"
    );
    person.answer_right();
    assert!(h.add("erin", &["operator"])["done"].is_string());
    assert_eq!(
        h.ok("list_custodians", json!({})).as_array().map(Vec::len),
        Some(4)
    );

    // Nobody answers: the dialog times out, the new demo key is not left behind.
    *person.silent.lock().expect("silent") = true;
    assert_eq!(
        h.err_kind(
            "enroll_key",
            json!({"name": "erin", "kind": "fido2", "slot": null})
        ),
        "pin_required"
    );
    let keys_dir = vault.with_file_name("vault.db.demo-keys");
    assert!(!keys_dir.join("erin-fido2-1.json").exists());
    // A late answer finds nothing waiting.
    let last = person.pins().last().expect("request")["id"].clone();
    assert_eq!(
        h.err_kind("submit_pin", json!({"id": last, "pin": "1234"})),
        "no_pin_request"
    );
    // ...and the session is usable again.
    h.ok("list_keys", json!({}));
}

#[test]
fn piv_enrolment_and_piv_bound_unlock_with_failed_attempt_alert() {
    use custos_core::hardware::Pin;
    use custos_core::policy::OpKind;
    use custos_core::Passphrase;

    struct Fixed;
    impl custos_hardware::Prompt for Fixed {
        fn pin(&self, _: &str) -> Option<Pin> {
            Some(Pin::new(FIDO2_PIN.into()))
        }
        fn touch(&self, _: &str) {}
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let vault = dir.path().join("vault.db");
    let h = demo_harness(&vault, Duration::from_secs(20));
    let person = person(&h);
    h.create_test_vault();
    h.add("olivia", &["officer"]);
    h.act(Some("olivia"));
    h.enroll("olivia", "fido2");

    let piv = h.enroll("olivia", "piv");
    assert!(piv["done"].is_string(), "{piv}");
    // The card's new PIN (6-8 characters), then olivia's FIDO2 PIN for her touch as the requester.
    let asked: Vec<(Value, Value, Value)> = person.pins()[1..]
        .iter()
        .map(|p| {
            (
                p["purpose"].clone(),
                p["min_len"].clone(),
                p["max_len"].clone(),
            )
        })
        .collect();
    assert_eq!(
        asked,
        vec![
            (json!("new"), json!(6), json!(8)),
            (json!("enter"), json!(4), json!(63))
        ]
    );
    let keys_dir = vault.with_file_name("vault.db.demo-keys");
    assert!(keys_dir.join("olivia-piv.json").is_file());
    let custodians = h.ok("list_custodians", json!({}));
    let card = custodians[0]["authenticators"]
        .as_array()
        .expect("authenticators")
        .iter()
        .find(|a| a["kind"] == "piv")
        .expect("PIV authenticator")
        .clone();
    assert_eq!(card["piv_slot"], "82");
    assert!(card["piv_serial"]
        .as_u64()
        .is_some_and(|s| s >= 3_900_000_000));
    assert_eq!(
        h.err_kind(
            "enroll_key",
            json!({"name": "olivia", "kind": "piv", "slot": "zz"})
        ),
        "invalid_slot"
    );

    // Bind the vault to olivia's demo PIV key with the core (the CLI's `vault require-piv`).
    let session = h.window.state::<Session>();
    session
        .with_vault(|v| {
            let mut fido = custos_hardware::fido2::open_demo(
                &keys_dir.join("olivia-fido2-1.json"),
                Arc::new(Fixed),
            )?;
            v.touch_for(OpKind::VaultRequirePiv, Some(&mut fido))?;
            let mut card = custos_hardware::piv::open_demo_piv(&keys_dir.join("olivia-piv.json"))?;
            v.require_piv(
                &Passphrase::new(STRONG.into()),
                "olivia",
                &mut card,
                &Pin::new(PIV_PIN.into()),
            )
        })
        .expect("vault bound to the PIV key");
    h.ok("lock", json!({}));

    let status = h.ok("app_status", json!({}));
    assert_eq!(status["locked_info"]["piv_required"]["custodian"], "olivia");
    assert_eq!(status["locked_info"]["failed_unlocks"], 0);

    // A wrong YubiKey PIN: refused, counted as a failed unlock.
    person.answer_next(Some("00000000"));
    assert_eq!(
        h.err_kind("unlock", json!({"passphrase": STRONG})),
        "wrong_pin"
    );
    let status = h.ok("app_status", json!({}));
    assert_eq!(status["locked_info"]["failed_unlocks"], 1);
    assert_eq!(h.err_kind("list_keys", json!({})), "vault_locked");

    person.answer_right();
    let unlocked = h.ok("unlock", json!({"passphrase": STRONG}));
    assert_eq!(unlocked["failed_unlocks"], 1, "{unlocked}");
    let asked = person.pins();
    assert_eq!(asked.last().expect("request")["max_len"], 8);
    assert_eq!(asked.last().expect("request")["custodian"], "olivia");
    assert!(person.touch_count() >= 1);
    assert_eq!(h.ok("vault_info", json!({}))["failed_unlocks"], 1);
    // After the unlock nobody acts yet: the window asks again.
    assert!(h.ok("custody_status", json!({}))["acting_as"].is_null());
}

#[test]
fn revoking_a_demo_key_leaves_the_next_one_in_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vault = dir.path().join("vault.db");
    let h = demo_harness(&vault, Duration::from_secs(20));
    let _person = person(&h);
    h.create_test_vault();
    h.add("olivia", &["officer"]);
    h.act(Some("olivia"));
    h.enroll("olivia", "fido2");
    // Her second key: key 1 touches for the request, key 2 is new.
    assert!(h.enroll("olivia", "fido2")["done"].is_string());
    let keys_dir = vault.with_file_name("vault.db.demo-keys");
    assert!(keys_dir.join("olivia-fido2-2.json").is_file());
    let auths = h.ok("list_custodians", json!({}))[0]["authenticators"].clone();
    let first = auths[0]["id"].as_str().expect("id").to_owned();
    let second = auths[1]["id"].as_str().expect("id").to_owned();

    let revoked = h.ok(
        "revoke_authenticator",
        json!({"name": "olivia", "authenticator": first}),
    );
    assert!(revoked["done"].is_string(), "{revoked}");
    // Key 1 is still on disk but revoked: the touch now comes from key 2.
    h.ok(
        "create_key",
        json!({"name": "k", "keyType": "ed25519", "rotateEvery": null}),
    );
    let rotated = h.ok("rotate_key", json!({"name": "k"}));
    assert!(rotated["done"].is_string(), "{rotated}");
    let second_cred = auths[1]["credential_id"].as_str().expect("cred").to_owned();
    let entries = h.ok("audit_entries", json!({}));
    let rotation = entries
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["action"] == "key.rotate" && e["outcome"] == "ok")
        .expect("rotation entry");
    assert!(
        rotation["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&format!("cred {}", &second_cred[..16]))),
        "the touch did not come from key 2: {rotation}"
    );
    // The last key of the last officer cannot be revoked.
    assert_eq!(
        h.err_kind(
            "revoke_authenticator",
            json!({"name": "olivia", "authenticator": second})
        ),
        "separation_of_duties"
    );

    // Without a key of their own: the role is checked first, then "enrol a key".
    h.add("ivan", &["officer"]);
    h.add("carl", &["operator"]);
    // Roles change with the officer's touch.
    let changed = h.ok(
        "change_roles",
        json!({"name": "carl", "roles": ["custodian", "operator"]}),
    );
    assert!(changed["done"].is_string(), "{changed}");
    let carl = h
        .ok("list_custodians", json!({}))
        .as_array()
        .expect("custodians")
        .iter()
        .find(|c| c["name"] == "carl")
        .cloned()
        .expect("carl");
    assert_eq!(carl["roles"], json!(["custodian", "operator"]));
    assert_eq!(
        h.err_kind("change_roles", json!({"name": "carl", "roles": ["boss"]})),
        "invalid_role"
    );
    h.act(Some("carl"));
    assert_eq!(
        h.err_kind("rotate_key", json!({"name": "k"})),
        "role_not_allowed"
    );
    h.act(Some("ivan"));
    assert_eq!(
        h.err_kind("rotate_key", json!({"name": "k"})),
        "no_authenticator"
    );
    h.act(None);
    assert_eq!(
        h.err_kind("rotate_key", json!({"name": "k"})),
        "identity_required"
    );
    assert_eq!(
        h.err_kind("approve_request", json!({"id": "000000000000"})),
        "no_such_request"
    );
}

/// Words of `share` with word `n` (1-based) swapped for another word of the list.
fn with_wrong_word(words: &[Value], n: usize) -> String {
    let mut w: Vec<String> = words
        .iter()
        .map(|w| w.as_str().expect("word").to_owned())
        .collect();
    w[n - 1] = if w[n - 1] == "abandon" {
        "ability".into()
    } else {
        "abandon".into()
    };
    w.join(" ")
}

fn words_of(revealed: &Value) -> String {
    revealed["words"]
        .as_array()
        .expect("words")
        .iter()
        .map(|w| w.as_str().expect("word"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A demo vault for the ceremony tests: officer olivia, custodians carol, dave and erin, auditor wendy
/// (the witness), each with a demo FIDO2 key; and the person answering the prompts.
fn ceremony_team(vault: &Path) -> (Harness, Arc<Person>) {
    let h = demo_harness(vault, Duration::from_secs(20));
    let person = person(&h);
    h.create_test_vault();
    h.three_custodians();
    for (name, roles) in [("erin", &["custodian"][..]), ("wendy", &["auditor"][..])] {
        assert!(h.add(name, roles)["done"].is_string());
        assert!(h.enroll(name, "fido2")["done"].is_string());
    }
    (h, person)
}

#[test]
fn escrow_handout_drill_transcript_and_recovery_in_the_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vault = dir.path().join("vault.db");
    let (h, person) = ceremony_team(&vault);
    assert!(h.ok("escrow_status", json!({})).is_null());
    assert_eq!(h.ok("list_ceremonies", json!({})), json!([]));
    assert_eq!(
        h.err_kind("reveal_share", json!({"index": 1})),
        "no_handout"
    );

    // The script's steps reach the window as they start.
    let steps = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = steps.clone();
    h.window.app_handle().listen_any(
        crate::commands::ceremonies::EVENT_CEREMONY_STEP,
        move |event| {
            let v: Value = serde_json::from_str(event.payload()).expect("step is JSON");
            sink.lock()
                .expect("steps")
                .push(v["text"].as_str().expect("text").to_owned());
        },
    );
    let plan = json!({
        "threshold": 2,
        "holders": [
            {"name": "carol", "medium": "screen"},
            {"name": "dave", "medium": "card"},
            {"name": "erin", "medium": "screen"},
        ],
        "witness": "wendy",
    });
    // Refusals come from the core, before anyone touches anything.
    let before = person.pins().len();
    let mut bad = plan.clone();
    bad["witness"] = json!("carol");
    assert_eq!(h.err_kind("run_escrow", bad), "separation_of_duties");
    let mut bad = plan.clone();
    bad["threshold"] = json!(4);
    assert_eq!(h.err_kind("run_escrow", bad), "bad_share");
    let mut bad = plan.clone();
    bad["drillEveryDays"] = json!(0);
    assert_eq!(h.err_kind("run_escrow", bad), "bad_share");
    assert_eq!(
        person.pins().len(),
        before,
        "no PIN asked for a refused plan"
    );

    let result = h.ok("run_escrow", plan);
    let ceremony = result["ceremony"].as_str().expect("ceremony").to_owned();
    assert_eq!(result["kind"], "escrow");
    assert_eq!(
        (result["threshold"].clone(), result["total"].clone()),
        (json!(2), json!(3))
    );
    let shares = result["shares"].as_array().expect("shares");
    assert_eq!(shares.len(), 3);
    assert_eq!(shares[1]["custodian"], "dave");
    assert_eq!(shares[1]["medium"], "card");
    assert!(shares.iter().all(|s| s["confirmed"] == false));
    assert!(
        !result.to_string().contains("words"),
        "no share in the result: {result}"
    );
    // Administrator, witness, three holders, witness: six touches, each asked of its own person.
    let asked: Vec<Value> = person.pins()[before..]
        .iter()
        .map(|p| p["custodian"].clone())
        .collect();
    assert_eq!(
        asked,
        vec![
            json!("olivia"),
            json!("wendy"),
            json!("carol"),
            json!("dave"),
            json!("erin"),
            json!("wendy")
        ]
    );
    let steps = steps.lock().expect("steps").clone();
    assert_eq!(steps.len(), 6, "{steps:?}");
    assert!(
        steps[0].starts_with("1. olivia opens the ceremony"),
        "{steps:?}"
    );
    assert!(steps[5].contains("Witness wendy closes"), "{steps:?}");
    let transcript = &result["transcript"];
    assert_eq!(transcript["steps"].as_array().expect("steps").len(), 7);

    // Hand-out: each share on request; the words typed back must be that share.
    let carol = h.ok("reveal_share", json!({"index": 1}));
    assert_eq!(carol["custodian"], "carol");
    assert_eq!(carol["ceremony"], ceremony.as_str());
    assert_eq!(carol["words"].as_array().expect("words").len(), 34);
    assert!(carol["qr_svg"].as_str().is_some_and(|s| s.contains("<svg")));
    assert!(carol["qr_text"].as_str().is_some_and(|s| s.len() == 69));
    let wrong = h.call(
        "confirm_share",
        json!({"index": 1, "words": with_wrong_word(carol["words"].as_array().expect("w"), 7)}),
    );
    let wrong = wrong.expect_err("a wrong word is refused");
    assert_eq!(wrong["kind"], "bad_share");
    assert!(
        wrong["message"]
            .as_str()
            .is_some_and(|m| m.contains("word 7")),
        "{wrong}"
    );
    let erin = h.ok("reveal_share", json!({"index": 3}));
    // Erin's valid words are not carol's share.
    let other = h
        .call(
            "confirm_share",
            json!({"index": 1, "words": words_of(&erin)}),
        )
        .expect_err("another share is refused");
    assert!(
        other["message"]
            .as_str()
            .is_some_and(|m| m.contains("not share #1")),
        "{other}"
    );
    let ok = h.ok(
        "confirm_share",
        json!({"index": 1, "words": words_of(&carol)}),
    );
    assert_eq!(ok["confirmed"], true);
    assert_eq!(h.ok("reveal_share", json!({"index": 2}))["medium"], "card");
    // Erin has not typed hers back: finishing is refused, naming her, unless forced.
    let refused = h
        .call(
            "finish_handout",
            json!({"force": false, "bag_serials": [], "note": null}),
        )
        .expect_err("unconfirmed share");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("#3 (erin)")),
        "{refused}"
    );
    // A bag serial only for a card, and a sane one: refused before the witness touches.
    let before = person.pins().len();
    assert_eq!(
        h.err_kind(
            "finish_handout",
            json!({"force": true, "bag_serials": [{"index": 1, "serial": "TEB-1"}], "note": null})
        ),
        "bad_share"
    );
    assert_eq!(
        h.err_kind(
            "finish_handout",
            json!({"force": true, "bag_serials": [{"index": 2, "serial": "<script>"}], "note": null})
        ),
        "bad_share"
    );
    assert_eq!(
        person.pins().len(),
        before,
        "no touch asked for a refused record"
    );
    // The witness records the hand-out with dave's bag serial and a deviation, and touches.
    let t = h.ok(
        "finish_handout",
        json!({"force": true, "bag_serials": [{"index": 2, "serial": "TEB-0042"}], "note": "erin left before typing her words back"}),
    );
    let asked: Vec<Value> = person.pins()[before..]
        .iter()
        .map(|p| p["custodian"].clone())
        .collect();
    assert_eq!(asked, vec![json!("wendy")], "the witness touches");
    let last = t["steps"]
        .as_array()
        .expect("steps")
        .last()
        .expect("a step")
        .clone();
    assert_eq!(last["action"], "hand-out-finished");
    assert_eq!(last["actor"], "wendy");
    let detail = last["detail"].as_str().expect("detail");
    assert!(
        detail.contains("share #2 (dave) on a printed card, sealed in bag TEB-0042"),
        "{detail}"
    );
    assert!(detail.contains("share #3 (erin) NOT confirmed"), "{detail}");
    assert!(
        detail.contains("deviations: erin left before typing"),
        "{detail}"
    );
    assert!(!last["presence"].is_null());
    assert_eq!(
        h.err_kind("reveal_share", json!({"index": 1})),
        "no_handout"
    );
    let audit = h.ok("audit_entries", json!({})).to_string();
    assert!(audit.contains("ceremony.handout"), "{audit}");
    assert!(audit.contains("share #3 (erin) NOT confirmed"), "{audit}");
    assert!(
        !audit.contains(&words_of(&carol)),
        "no words in the audit log"
    );

    // Drill: one share alone, nothing unlocked; a corrupted one is named.
    let status = h.ok("escrow_status", json!({}));
    assert_eq!(status["ceremony"], ceremony.as_str());
    assert_eq!(status["drill_every_days"], 180, "the default policy");
    assert_eq!(status["overdue"], 0);
    assert!(status["shares"]
        .as_array()
        .expect("s")
        .iter()
        .all(|s| s["status"] == "never"));
    let drilled = h.ok(
        "drill_share",
        json!({"source": {"kind": "words", "words": words_of(&erin)}}),
    );
    assert_eq!(
        (drilled["index"].clone(), drilled["status"].clone()),
        (json!(3), json!("verified"))
    );
    assert_eq!(
        h.err_kind(
            "drill_share",
            json!({"source": {"kind": "words", "words": with_wrong_word(erin["words"].as_array().expect("w"), 30)}})
        ),
        "bad_share"
    );
    let status = h.ok("escrow_status", json!({}));
    assert_eq!(status["shares"][2]["status"], "verified");
    assert_eq!(status["shares"][0]["status"], "never");

    // Transcript: listed, shown, exported; the export verifies offline.
    let list = h.ok("list_ceremonies", json!({}));
    assert_eq!(list[0]["ceremony"], ceremony.as_str());
    assert_eq!(list[0]["steps"], 8, "seven steps and the hand-out");
    let shown = h.ok("ceremony_transcript", json!({"id": ceremony}));
    assert_eq!(shown["head"], t["head"]);
    assert_ne!(
        shown["head"], transcript["head"],
        "the hand-out step moved the signed head"
    );
    assert_eq!(shown["steps"].as_array().map(Vec::len), Some(8));
    let exported = h.ok("export_transcript", json!({"id": ceremony}));
    let exported = std::path::PathBuf::from(exported.as_str().expect("path"));
    assert!(exported.starts_with(dir.path()));
    let checked = custos_core::escrow::verify_transcript(&exported, None).expect("verifies");
    assert_eq!(checked.ceremony, ceremony);
    // Exporting again keeps the same file.
    assert!(h.call("export_transcript", json!({"id": ceremony})).is_ok());

    // Recovery on the unlock screen: shares checked on entry, then M of them and a new passphrase.
    h.ok("lock", json!({}));
    let typed = |w: String| json!({"source": {"kind": "words", "words": w}});
    const NEW: &str = "orchard lantern seventeen cobalt whistle";
    let pass = json!({"passphrase": NEW, "confirmation": NEW});
    assert_eq!(
        h.err_kind("recover_vault", pass.clone()),
        "bad_share",
        "no share presented"
    );
    let check = h.ok("present_share", typed(words_of(&carol)));
    assert_eq!(
        (
            check["index"].clone(),
            check["threshold"].clone(),
            check["total"].clone()
        ),
        (json!(1), json!(2), json!(3))
    );
    assert_eq!(check["ceremony"], ceremony.as_str());
    let wrong = h
        .call(
            "present_share",
            typed(with_wrong_word(carol["words"].as_array().expect("w"), 2)),
        )
        .expect_err("a wrong word");
    assert!(
        wrong["message"]
            .as_str()
            .is_some_and(|m| m.contains("the words entered") && m.contains("word 2")),
        "{wrong}"
    );
    let too_few = h
        .call("recover_vault", pass.clone())
        .expect_err("one share of two");
    assert!(
        too_few["message"]
            .as_str()
            .is_some_and(|m| m.contains("too few")),
        "{too_few}"
    );
    let dup = h
        .call("present_share", typed(words_of(&carol)))
        .expect_err("a duplicate");
    assert!(
        dup["message"]
            .as_str()
            .is_some_and(|m| m.contains("share #1 is already entered")),
        "{dup}"
    );
    // Taken back and presented again; the screen's leaving forgets them all.
    assert_eq!(h.ok("withdraw_share", json!({"index": 1})), json!([]));
    h.ok("present_share", typed(words_of(&erin)));
    h.ok("forget_presented_shares", json!({}));
    assert_eq!(h.err_kind("recover_vault", pass.clone()), "bad_share");
    h.ok("present_share", typed(words_of(&carol)));
    h.ok("present_share", typed(words_of(&erin)));
    assert_eq!(
        h.err_kind(
            "recover_vault",
            json!({"passphrase": "short", "confirmation": "short"})
        ),
        "weak_passphrase"
    );
    assert_eq!(
        h.err_kind("list_keys", json!({})),
        "vault_locked",
        "nothing unlocked by refusals"
    );
    // Each share's holder confirms the recovery with their own key; a refused touch changes nothing.
    let before = person.pins().len();
    person.answer_next(Some("0000-wrong"));
    assert_eq!(h.err_kind("recover_vault", pass.clone()), "wrong_pin");
    person.answer_right();
    assert_eq!(
        h.err_kind("unlock", json!({"passphrase": NEW})),
        "wrong_passphrase",
        "a refused recovery sets no passphrase"
    );
    let before_ok = person.pins().len();
    assert!(before_ok > before);
    let info = h.ok("recover_vault", pass);
    let asked: Vec<Value> = person.pins()[before_ok..]
        .iter()
        .map(|p| p["custodian"].clone())
        .collect();
    assert_eq!(
        asked,
        vec![json!("carol"), json!("erin")],
        "each holder touched, in turn"
    );
    assert_eq!(info["insecure_test_kdf"], true);
    assert!(
        h.call("list_keys", json!({})).is_ok(),
        "recovered and unlocked"
    );
    h.ok("lock", json!({}));
    assert_eq!(
        h.err_kind("unlock", json!({"passphrase": STRONG})),
        "wrong_passphrase"
    );
    h.ok("unlock", json!({"passphrase": NEW}));
}

/// A picture of a share's QR text, as a scanner would save it (PNG).
fn qr_png(text: &str) -> Vec<u8> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .expect("qr");
    let img = code
        .render::<image::Luma<u8>>()
        .min_dimensions(300, 300)
        .build();
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)
        .expect("png");
    png.into_inner()
}

#[test]
fn share_files_pictures_and_deviation_notes_in_the_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vault = dir.path().join("vault.db");
    let (h, person) = ceremony_team(&vault);
    let plan = json!({
        "threshold": 2,
        "holders": [
            {"name": "carol", "medium": "passphrase-file"},
            {"name": "dave", "medium": "file"},
            {"name": "erin", "medium": "screen"},
        ],
        "witness": "wendy",
    });
    // A `file` share is encrypted to the holder's YubiKey PIV key: none enrolled yet.
    let refused = h.call("run_escrow", plan.clone()).expect_err("no PIV key");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("dave has no YubiKey PIV key enrolled")),
        "{refused}"
    );
    assert!(h.enroll("dave", "piv")["done"].is_string());
    let result = h.ok("run_escrow", plan);
    let ceremony = result["ceremony"].as_str().expect("ceremony").to_owned();
    let offered = result["share_dir"].as_str().expect("share_dir");
    assert_eq!(offered, format!("{}.shares", vault.display()));
    assert!(result["shares"]
        .as_array()
        .expect("shares")
        .iter()
        .all(|s| s["file"].is_null()));

    // A file share is written, never shown.
    assert_eq!(h.err_kind("reveal_share", json!({"index": 1})), "bad_share");
    let out = dir.path().join("usb-stick");
    let out_s = out.display().to_string();
    let write = |index: u8, dir: &str, pass: Option<&str>| {
        h.call(
            "write_share_file",
            json!({"index": index, "dir": dir, "passphrase": pass, "confirmation": pass}),
        )
    };
    const CAROL: &str = "heron basalt midnight quarry lantern";
    assert_eq!(
        write(1, "relative/dir", Some(CAROL)).expect_err("relative")["kind"],
        "bad_input"
    );
    assert_eq!(
        write(1, &out_s, Some("carol")).expect_err("weak")["kind"],
        "weak_passphrase"
    );
    assert_eq!(
        write(3, &out_s, None).expect_err("screen share")["kind"],
        "bad_share"
    );
    assert!(!out.exists(), "nothing written by refusals");
    let carol_row = write(1, &out_s, Some(CAROL)).expect("carol's file");
    let carol_file = PathBuf::from(carol_row["file"].as_str().expect("path"));
    assert_eq!(
        carol_file,
        out.join(format!("{ceremony}-share-1-carol.age"))
    );
    let carol_bytes = std::fs::read(&carol_file).expect("written");
    assert!(carol_bytes.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"));
    let again = write(1, &out_s, Some(CAROL)).expect_err("written once");
    assert_eq!(again["kind"], "exists", "{again}");
    assert!(
        again["message"]
            .as_str()
            .is_some_and(|m| m.contains("already written")),
        "{again}"
    );
    // A file already there (from another ceremony, say) is never replaced.
    let taken = dir.path().join("taken");
    std::fs::create_dir_all(&taken).expect("dir");
    std::fs::write(taken.join(format!("{ceremony}-share-2-dave.age")), b"old").expect("old");
    let refused = write(2, &taken.display().to_string(), None).expect_err("exists");
    assert_eq!(refused["kind"], "exists", "{refused}");
    assert_eq!(
        std::fs::read(taken.join(format!("{ceremony}-share-2-dave.age"))).expect("old"),
        b"old"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&carol_file)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "only the owner reads a share file");
    }

    // Erin types hers back; dave's file is still unwritten, and finishing says so.
    let erin = h.ok("reveal_share", json!({"index": 3}));
    h.ok(
        "confirm_share",
        json!({"index": 3, "words": words_of(&erin)}),
    );
    let unwritten = h
        .call(
            "finish_handout",
            json!({"force": false, "bag_serials": [], "note": null}),
        )
        .expect_err("dave's file");
    assert!(
        unwritten["message"]
            .as_str()
            .is_some_and(|m| m.contains("#2 (dave)") && m.contains("not been written")),
        "{unwritten}"
    );
    let dave_row = write(2, &out_s, None).expect("dave's file");
    let dave_file = PathBuf::from(dave_row["file"].as_str().expect("path"));
    let t = h.ok(
        "finish_handout",
        json!({"force": false, "bag_serials": [], "note": null}),
    );
    let last = t["steps"]
        .as_array()
        .expect("steps")
        .last()
        .expect("step")
        .clone();
    let detail = last["detail"].as_str().expect("detail");
    assert!(
        detail.contains("share #1 (carol) in a share file locked with their passphrase"),
        "{detail}"
    );
    assert!(
        detail.contains("share #2 (dave) in a share file for their YubiKey"),
        "{detail}"
    );

    // The witness notes a deviation at step 3, with a touch; the chain still verifies.
    let steps_before = t["steps"].as_array().map(Vec::len).expect("steps");
    let deviation = |step: u32, note: &str| {
        h.call(
            "record_deviation",
            json!({"ceremony": ceremony, "step": step, "note": note}),
        )
    };
    assert_eq!(deviation(3, "   ").expect_err("empty")["kind"], "bad_share");
    let none = deviation(99, "printer jammed").expect_err("no such step");
    assert!(
        none["message"]
            .as_str()
            .is_some_and(|m| m.contains("has no step 99")),
        "{none}"
    );
    let before = person.pins().len();
    let t = deviation(3, "the split was run twice: the first laptop froze").expect("noted");
    let asked: Vec<Value> = person.pins()[before..]
        .iter()
        .map(|p| p["custodian"].clone())
        .collect();
    assert_eq!(asked, vec![json!("wendy")], "the witness touches");
    let steps = t["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), steps_before + 1);
    let last = steps.last().expect("step");
    assert_eq!(
        (last["action"].clone(), last["actor"].clone()),
        (json!("deviation"), json!("wendy"))
    );
    assert_eq!(
        last["detail"],
        "at step 3 (split, olivia): the split was run twice: the first laptop froze"
    );
    let exported = h.ok("export_transcript", json!({"id": ceremony}));
    let exported = Path::new(exported.as_str().expect("p")).to_path_buf();
    custos_core::escrow::verify_transcript(&exported, None)
        .expect("the transcript with its deviation verifies");
    let head = t["head"].as_str().expect("head");
    assert!(
        exported.ends_with(format!("{ceremony}-{}.json", &head[..12])),
        "one file per version of the transcript: {}",
        exported.display()
    );
    let audit = h.ok("audit_entries", json!({})).to_string();
    assert!(audit.contains("ceremony.deviation"), "{audit}");

    // Drills from the files: carol's with her passphrase, dave's with his PIV PIN and touch.
    let drill_file = |bytes: &[u8], pass: Option<&str>| {
        h.call(
            "drill_share",
            json!({"source": {"kind": "file", "name": "drill.age", "bytes": bytes, "passphrase": pass}}),
        )
    };
    let carol_drill = drill_file(&carol_bytes, Some(CAROL)).expect("carol drills");
    assert_eq!(
        (carol_drill["index"].clone(), carol_drill["status"].clone()),
        (json!(1), json!("verified"))
    );
    let wrong = drill_file(&carol_bytes, Some("not hers")).expect_err("wrong passphrase");
    assert!(
        wrong["message"]
            .as_str()
            .is_some_and(|m| m.contains("share file drill.age")),
        "{wrong}"
    );
    let pins_before = person.pins().len();
    let dave_drill = drill_file(&std::fs::read(&dave_file).expect("f"), None).expect("dave drills");
    assert_eq!(dave_drill["index"], 2);
    assert_eq!(person.pins()[pins_before..].len(), 1, "dave's PIV PIN");
    let status = h.ok("escrow_status", json!({}));
    assert_eq!(status["shares"][0]["status"], "verified");
    assert_eq!(status["shares"][1]["status"], "verified");

    // Recovery from a share file with its passphrase, a PIV share file, and a QR picture.
    h.ok("lock", json!({}));
    // A drill needs the unlocked vault: refused before any PIN is asked.
    let pins_before = person.pins().len();
    assert_eq!(
        drill_file(&std::fs::read(&dave_file).expect("f"), None).expect_err("locked")["kind"],
        "vault_locked"
    );
    assert_eq!(
        person.pins().len(),
        pins_before,
        "no PIN for a locked vault"
    );
    let file = |bytes: &[u8], pass: Option<&str>| json!({"source": {"kind": "file", "name": "share.age", "bytes": bytes, "passphrase": pass}});
    let no_pass = h
        .call("present_share", file(&carol_bytes, None))
        .expect_err("passphrase needed");
    assert!(
        no_pass["message"]
            .as_str()
            .is_some_and(|m| m.contains("share file share.age") && m.contains("passphrase")),
        "{no_pass}"
    );
    let wrong = h
        .call("present_share", file(&carol_bytes, Some("not it at all")))
        .expect_err("a wrong passphrase");
    assert!(
        wrong["message"]
            .as_str()
            .is_some_and(|m| m.contains("share file share.age")),
        "{wrong}"
    );
    let mut flipped = carol_bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] = if flipped[mid] == b'A' { b'B' } else { b'A' };
    let bad = h
        .call("present_share", file(&flipped, Some(CAROL)))
        .expect_err("a corrupted file");
    assert!(
        bad["message"]
            .as_str()
            .is_some_and(|m| m.contains("share file share.age")),
        "{bad}"
    );
    assert_eq!(
        h.ok("present_share", file(&carol_bytes, Some(CAROL)))["index"],
        1
    );
    let before = person.pins().len();
    let dave_bytes = std::fs::read(&dave_file).expect("dave's file");
    assert_eq!(h.ok("present_share", file(&dave_bytes, None))["index"], 2);
    let asked = person.pins()[before..].to_vec();
    assert_eq!(asked.len(), 1, "dave's PIV PIN: {asked:?}");
    assert_eq!(asked[0]["max_len"], 8, "a PIV PIN: {asked:?}");
    assert!(
        asked[0]["device"]
            .as_str()
            .is_some_and(|d| d.contains("DEMO software PIV key of dave")),
        "{asked:?}"
    );
    let picture =
        |bytes: Vec<u8>| json!({"source": {"kind": "picture", "name": "erin.png", "bytes": bytes}});
    let not_image = h
        .call("present_share", picture(b"these are not pixels".to_vec()))
        .expect_err("not a picture");
    assert!(
        not_image["message"]
            .as_str()
            .is_some_and(|m| m.contains("share picture erin.png")),
        "{not_image}"
    );
    let erin_qr = erin["qr_text"].as_str().expect("qr text");
    assert_eq!(h.ok("present_share", picture(qr_png(erin_qr)))["index"], 3);
    // Any two of the three: carol's file and erin's picture (dave's withdrawn).
    assert_eq!(h.ok("withdraw_share", json!({"index": 2})), json!([1, 3]));
    const NEW: &str = "orchard lantern seventeen cobalt whistle";
    h.ok(
        "recover_vault",
        json!({"passphrase": NEW, "confirmation": NEW}),
    );
    assert!(h.call("list_keys", json!({})).is_ok(), "recovered");
    // Shares are presented only to a locked vault, and a lock forgets any left presented.
    assert_eq!(
        h.err_kind("present_share", picture(qr_png(erin_qr))),
        "bad_input"
    );
    h.ok("lock", json!({}));
    h.ok("present_share", picture(qr_png(erin_qr)));
    h.ok("unlock", json!({"passphrase": NEW}));
    h.ok("lock", json!({}));
    let none = h
        .call(
            "recover_vault",
            json!({"passphrase": NEW, "confirmation": NEW}),
        )
        .expect_err("nothing presented");
    assert!(
        none["message"]
            .as_str()
            .is_some_and(|m| m.contains("no share presented")),
        "{none}"
    );
}

#[test]
fn a_forced_hand_out_records_an_unwritten_file_but_never_leaves_fewer_than_m_shares() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vault = dir.path().join("vault.db");
    let (h, _person) = ceremony_team(&vault);
    let result = h.ok(
        "run_escrow",
        json!({
            "threshold": 2,
            "holders": [
                {"name": "carol", "medium": "passphrase-file"},
                {"name": "dave", "medium": "screen"},
                {"name": "erin", "medium": "passphrase-file"},
            ],
            "witness": "wendy",
        }),
    );
    let ceremony = result["ceremony"].as_str().expect("ceremony").to_owned();
    let dave = h.ok("reveal_share", json!({"index": 2}));
    h.ok(
        "confirm_share",
        json!({"index": 2, "words": words_of(&dave)}),
    );
    let finish = || {
        h.call(
            "finish_handout",
            json!({"force": true, "bag_serials": [], "note": "erin's USB stick failed"}),
        )
    };
    // Two files unwritten: only dave's share would go out, fewer than the 2 needed.
    let few = finish().expect_err("fewer than M");
    assert!(
        few["message"]
            .as_str()
            .is_some_and(|m| m.contains("only 1 of the 3 shares") && m.contains("rekey")),
        "{few}"
    );
    const PASS: &str = "heron basalt midnight quarry lantern";
    h.ok(
        "write_share_file",
        json!({"index": 1, "dir": dir.path().join("usb").display().to_string(), "passphrase": PASS, "confirmation": PASS}),
    );
    let t = finish().expect("two shares out of three");
    let detail = t["steps"]
        .as_array()
        .and_then(|s| s.last())
        .and_then(|s| s["detail"].as_str())
        .expect("detail")
        .to_owned();
    assert!(
        detail.contains("share #3 (erin) NOT handed out: the share file was never written"),
        "{detail}"
    );
    assert!(
        detail.contains("share #1 (carol) in a share file locked with their passphrase"),
        "{detail}"
    );
    assert_eq!(
        h.err_kind(
            "write_share_file",
            json!({"index": 3, "dir": dir.path().display().to_string(), "passphrase": PASS, "confirmation": PASS})
        ),
        "no_handout",
        "the shares are gone once the hand-out is recorded"
    );
    let audit = h.ok("audit_entries", json!({})).to_string();
    assert!(
        audit.contains(&ceremony) && audit.contains("NOT handed out"),
        "{audit}"
    );
}
