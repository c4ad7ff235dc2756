//! Helpers for the suites that drive custody through the binary: demo keys (`--demo`, PIN from
//! `CUSTOS_PIN`), `--as`, a deadline on every command (a hang fails the test), readers for the
//! vault's JSON, and the team set-up.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

/// PIN of every demo key (a PIV PIN has 6-8 characters, a FIDO2 PIN 4-63).
pub const PIN: &str = "24681357";

/// No command here should take long; one that does is a hang, reported as such.
pub const DEADLINE: Duration = Duration::from_secs(120);

// ---- running the binary ----------------------------------------------------------------------

/// `custos --vault <vault> ARGS` with the passphrase and the demo PIN in the environment, and no
/// `CUSTOS_AS` inherited. Killed (and the test failed) if it outlives `deadline`.
pub fn run_full(env: &Env, pass: &str, pin: &str, args: &[&str], deadline: Duration) -> Run {
    static N: AtomicU32 = AtomicU32::new(0);
    let (mut c, args) = env.cmd(args);
    c.env("CUSTOS_PASSPHRASE", pass);
    c.env("CUSTOS_PIN", pin);
    c.env_remove("CUSTOS_AS");
    let n = N.fetch_add(1, Ordering::SeqCst);
    let out_path = env.path(&format!(".run-{n}.out"));
    let err_path = env.path(&format!(".run-{n}.err"));
    c.stdout(Stdio::from(
        std::fs::File::create(&out_path).expect("stdout file"),
    ));
    c.stderr(Stdio::from(
        std::fs::File::create(&err_path).expect("stderr file"),
    ));
    let mut child = c
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", custos_bin().display()));
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for custos") {
            break s;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "custos {} did not finish within {deadline:?} (hung); stderr so far: {}",
                args.join(" "),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = std::process::Output {
        status,
        stdout: std::fs::read(&out_path).expect("stdout"),
        stderr: std::fs::read(&err_path).expect("stderr"),
    };
    let _ = std::fs::remove_file(out_path);
    let _ = std::fs::remove_file(err_path);
    Run { out, args }
}

pub fn run(env: &Env, args: &[&str]) -> Run {
    run_full(env, &env.pass, PIN, args, DEADLINE)
}

/// `--demo --as NAME ARGS`.
pub fn as_(env: &Env, name: &str, args: &[&str]) -> Run {
    let mut a = vec!["--demo", "--as", name];
    a.extend_from_slice(args);
    run(env, &a)
}

pub fn json_of(env: &Env, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    run(env, &a).ok().json()
}

pub fn describe(r: &Run) -> String {
    format!(
        "custos {}\n  exit: {:?}\n  stdout: {}\n  stderr: {}",
        r.args.join(" "),
        r.out.status,
        r.stdout().trim_end(),
        r.stderr().trim_end()
    )
}

/// A refusal of a command that may have asked for a touch first: exit 1, no panic, the last stderr
/// line is the one `error: ` line and every line before it is a touch prompt. Returns the error line,
/// lowercased.
pub fn refused(r: Run, fragment: &str) -> String {
    let d = describe(&r);
    assert_eq!(r.code(), Some(1), "expected exit 1:\n{d}");
    let stderr = r.stderr();
    assert!(!stderr.contains("panicked"), "panic:\n{d}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let (last, before) = lines
        .split_last()
        .unwrap_or_else(|| panic!("no stderr:\n{d}"));
    assert!(
        last.starts_with("error: "),
        "last line is not `error: `:\n{d}"
    );
    for l in before {
        assert!(
            l.starts_with("Touch your key now"),
            "stderr holds more than touch prompts and one error line:\n{d}"
        );
    }
    let e = last.to_lowercase();
    assert!(
        e.contains(&fragment.to_lowercase()),
        "the error should contain {fragment:?}:\n{d}"
    );
    e
}

/// An operation left waiting for approvals: exit 3, no `error:` line, the request named on stderr.
/// With `--json`, stdout is `{"result": "pending", "request": {...}}`; returns the request.
pub fn pending(r: Run) -> Value {
    let d = describe(&r);
    assert_eq!(
        r.code(),
        Some(3),
        "expected exit 3 (pending approval):\n{d}"
    );
    let stderr = r.stderr();
    assert!(!stderr.contains("panicked"), "panic:\n{d}");
    assert!(!stderr.contains("error:"), "pending is not an error:\n{d}");
    assert!(stderr.contains("pending approval"), "{d}");
    let v = r.json();
    assert_eq!(v["result"], "pending", "{d}");
    let req = field(&v, "request").clone();
    assert!(
        stderr.contains(str_field(&req, "id")),
        "stderr should name the request id:\n{d}"
    );
    req
}

// ---- reading the vault -------------------------------------------------------------------------

pub fn custodians(env: &Env) -> Vec<Value> {
    as_array(&json_of(env, &["--demo", "custodian", "list"])).clone()
}

pub fn custodian(env: &Env, name: &str) -> Value {
    custodians(env)
        .into_iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no custodian {name}"))
}

pub fn active_authenticators(c: &Value) -> Vec<Value> {
    as_array(field(c, "authenticators"))
        .iter()
        .filter(|a| a["revoked"].is_null())
        .cloned()
        .collect()
}

pub fn requests(env: &Env) -> Vec<Value> {
    as_array(&json_of(env, &["--demo", "approvals", "list"])).clone()
}

pub fn request(env: &Env, id: &str) -> Value {
    requests(env)
        .into_iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no request {id}"))
}

pub fn show(env: &Env, key: &str) -> Value {
    json_of(env, &["--demo", "key", "show", key])
}

pub fn audit(env: &Env) -> Vec<Value> {
    as_array(&json_of(env, &["--demo", "audit", "list"])).clone()
}

pub fn audit_len(env: &Env) -> usize {
    audit(env).len()
}

pub fn rules(env: &Env) -> Value {
    json_of(env, &["--demo", "rules", "list"])
}

/// What a refusal must leave untouched: the key, the custodians (with their authenticators and
/// counters), the requests and the rules.
pub fn snapshot(env: &Env, key: &str) -> Value {
    serde_json::json!({
        "key": show(env, key),
        "custodians": custodians(env),
        "requests": requests(env),
        "rules": rules(env),
    })
}

/// The audit entries after the first `from`, with `action`, `actor` and an outcome of `refused` or
/// `failed`. Panics if there is none.
pub fn refusal_logged(env: &Env, from: usize, action: &str, actor: &str) -> Value {
    let log = audit(env);
    log[from..]
        .iter()
        .find(|e| {
            e["action"] == action
                && e["actor"] == actor
                && (e["outcome"] == "refused" || e["outcome"] == "failed")
        })
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no refused/failed {action} by {actor} in the audit log after entry {from}: {:#?}",
                &log[from..]
            )
        })
}

pub fn audit_verifies(env: &Env) {
    let r = json_of(env, &["--demo", "audit", "verify"]);
    assert_eq!(r["ok"], true, "audit verify: {r}");
    assert!(r["first_broken"].is_null(), "{r}");
}

pub fn demo_dir(env: &Env) -> PathBuf {
    let mut s = env.vault.as_os_str().to_owned();
    s.push(".demo-keys");
    PathBuf::from(s)
}

pub fn demo_fido2(env: &Env, name: &str, n: u32) -> PathBuf {
    demo_dir(env).join(format!("{name}-fido2-{n}.json"))
}

// ---- set-ups ------------------------------------------------------------------------------------

/// A vault with key `k`, officer alice, custodians bob and carol, each with a demo FIDO2 key;
/// the two-person rule active when `activate`.
pub fn team(activate: bool) -> Env {
    let env = Env::new();
    run(&env, &["key", "create", "k", "--type", "symmetric-256"]).ok();

    assert_eq!(rules(&env)["unguarded"], true);
    let out = run(&env, &["custodian", "add", "alice", "--role", "officer"]).ok();
    assert!(
        out.stdout().contains("custodian.add alice"),
        "{}",
        out.stdout()
    );
    let alice = custodian(&env, "alice");
    assert_eq!(alice["roles"], serde_json::json!(["officer"]));
    assert!(active_authenticators(&alice).is_empty());
    assert_eq!(rules(&env)["unguarded"], false);

    run(&env, &["--demo", "custodian", "enroll", "alice", "--fido2"]).ok();
    assert!(
        demo_fido2(&env, "alice", 1).is_file(),
        "alice's demo key file"
    );
    let a = active_authenticators(&custodian(&env, "alice"));
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["kind"], "fido2");
    assert_eq!(a[0]["device"]["demo"], true, "a demo key says so: {a:?}");
    assert_eq!(rules(&env)["demo"], true, "the vault is now a demo vault");

    for name in ["bob", "carol"] {
        as_(
            &env,
            "alice",
            &["custodian", "add", name, "--role", "custodian"],
        )
        .ok();
        as_(&env, name, &["custodian", "enroll", name, "--fido2"]).ok();
        assert!(demo_fido2(&env, name, 1).is_file());
        let c = custodian(&env, name);
        assert_eq!(c["roles"], serde_json::json!(["custodian"]));
        assert_eq!(active_authenticators(&c).len(), 1);
    }
    if activate {
        assert_eq!(rules(&env)["unmet"], serde_json::json!([]));
        as_(&env, "alice", &["rules", "activate"]).ok();
        assert_eq!(rules(&env)["enforced"], true);
    }
    env
}
