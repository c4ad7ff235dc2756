//! Keys: create, list, show, rotate, state transitions, destroy, rotation policy.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn set(v: &Value) -> BTreeSet<String> {
    as_array(v)
        .iter()
        .map(|s| s.as_str().expect("state string").to_string())
        .collect()
}

fn states(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn create_list_show_shapes() {
    let env = Env::new();
    env.sh("key create sym --type symmetric-256").ok();
    env.sh("key create sig --type ed25519 --rotate-every 90d")
        .ok();
    env.sh("key create kex --type x25519").ok();

    let list = env.list();
    assert_eq!(list.len(), 3, "{list:?}");
    let names: BTreeSet<&str> = list.iter().map(|k| str_field(k, "name")).collect();
    assert_eq!(
        names,
        ["kex", "sig", "sym"].into_iter().collect(),
        "{list:?}"
    );
    let mut ids = BTreeSet::new();
    for k in &list {
        assert!(
            ids.insert(str_field(k, "id").to_string()),
            "duplicate id in {list:?}"
        );
        assert_eq!(str_field(k, "state"), "active", "{k}");
        assert_eq!(u64_field(k, "active_version"), 1, "{k}");
        assert_eq!(u64_field(k, "versions"), 1, "{k}");
        let ty = str_field(k, "type");
        let want = match str_field(k, "name") {
            "sym" => "symmetric-256",
            "sig" => "ed25519",
            _ => "x25519",
        };
        assert_eq!(ty, want, "{k}");
        if str_field(k, "name") == "sig" {
            assert_eq!(u64_field(k, "rotate_every_secs"), 90 * 86400, "{k}");
            assert_eq!(str_field(k, "rotation_status"), "ok", "{k}");
            rfc3339_utc(str_field(k, "rotation_due"));
        } else {
            assert!(field(k, "rotate_every_secs").is_null(), "{k}");
            assert!(field(k, "rotation_due").is_null(), "{k}");
            assert_eq!(str_field(k, "rotation_status"), "none", "{k}");
        }
    }

    for (name, ty, pk_len) in [
        ("sym", "symmetric-256", None),
        ("sig", "ed25519", Some(64)),
        ("kex", "x25519", Some(64)),
    ] {
        let d = env.show(name);
        assert_eq!(str_field(&d, "name"), name);
        assert_eq!(str_field(&d, "type"), ty);
        assert!(!str_field(&d, "id").is_empty());
        let created = rfc3339_utc(str_field(&d, "created"));
        assert!((created - now_secs()).abs() < 300, "{d}");
        assert_eq!(u64_field(&d, "active_version"), 1, "{d}");
        field(&d, "rotate_every_secs");
        field(&d, "rotation_due");
        field(&d, "rotation_status");
        let versions = as_array(field(&d, "versions"));
        assert_eq!(versions.len(), 1, "{d}");
        let v1 = &versions[0];
        assert_eq!(u64_field(v1, "version"), 1);
        assert_eq!(str_field(v1, "state"), "active");
        rfc3339_utc(str_field(v1, "created"));
        match pk_len {
            None => assert!(
                field(v1, "public_key").is_null(),
                "symmetric key shows a public key: {d}"
            ),
            Some(n) => {
                let pk = str_field(v1, "public_key");
                assert_eq!(pk.len(), n, "public key not {n} hex chars: {d}");
                assert!(pk.chars().all(|c| c.is_ascii_hexdigit()), "not hex: {pk}");
            }
        }
        assert_eq!(
            set(field(v1, "allowed_states")),
            states(&["decrypt-only", "compromised"]),
            "{d}"
        );
    }

    // distinct keys have distinct public keys
    let a = env.show("sig")["versions"][0]["public_key"].clone();
    let b = env.show("kex")["versions"][0]["public_key"].clone();
    assert_ne!(a, b);
}

#[test]
fn duplicate_names_are_refused() {
    let env = Env::new();
    env.sh("key create dup --type symmetric-256").ok();
    let before = env.show("dup");
    env.sh("key create dup --type ed25519").err();
    assert_eq!(env.list().len(), 1);
    assert_eq!(env.show("dup"), before);
}

#[test]
fn rotate_makes_v2_active_and_v1_decrypt_only() {
    let env = Env::new();
    env.sh("key create r --type ed25519").ok();
    let pk1 = env.show("r")["versions"][0]["public_key"].clone();
    env.sh("key rotate r").ok();

    let d = env.show("r");
    assert_eq!(u64_field(&d, "active_version"), 2, "{d}");
    assert_eq!(as_array(field(&d, "versions")).len(), 2, "{d}");
    assert_eq!(state_of(&d, 1), "decrypt-only", "{d}");
    assert_eq!(state_of(&d, 2), "active", "{d}");
    assert_eq!(
        version(&d, 1)["public_key"],
        pk1,
        "rotation changed v1: {d}"
    );
    assert_ne!(
        version(&d, 2)["public_key"],
        pk1,
        "v2 reuses v1's key pair: {d}"
    );
    assert_eq!(
        set(field(version(&d, 1), "allowed_states")),
        states(&["compromised", "destroyed"])
    );

    let k = &env.list()[0];
    assert_eq!(u64_field(k, "active_version"), 2, "{k}");
    assert_eq!(u64_field(k, "versions"), 2, "{k}");

    env.sh("key rotate r").ok();
    let d = env.show("r");
    assert_eq!(u64_field(&d, "active_version"), 3);
    assert_eq!(
        (state_of(&d, 1), state_of(&d, 2), state_of(&d, 3)),
        (
            "decrypt-only".into(),
            "decrypt-only".into(),
            "active".into()
        )
    );
}

#[test]
fn legal_state_transitions_are_applied() {
    let env = Env::new();
    env.sh("key create k --type symmetric-256").ok();
    env.sh("key rotate k").ok();
    env.sh("key rotate k").ok(); // v1, v2 decrypt-only; v3 active

    // decrypt-only -> compromised -> destroyed
    env.sh("key set-state k 1 compromised").ok();
    assert_eq!(state_of(&env.show("k"), 1), "compromised");
    assert_eq!(
        set(field(version(&env.show("k"), 1), "allowed_states")),
        states(&["destroyed"])
    );
    env.sh("key set-state k 1 destroyed").ok();
    let d = env.show("k");
    assert_eq!(state_of(&d, 1), "destroyed");
    assert!(
        as_array(field(version(&d, 1), "allowed_states")).is_empty(),
        "{d}"
    );

    // decrypt-only -> destroyed
    env.sh("key set-state k 2 destroyed").ok();
    assert_eq!(state_of(&env.show("k"), 2), "destroyed");

    // active -> decrypt-only leaves the key with no active version
    env.sh("key set-state k 3 decrypt-only").ok();
    let d = env.show("k");
    assert_eq!(state_of(&d, 3), "decrypt-only");
    assert!(field(&d, "active_version").is_null(), "{d}");
    assert!(env.list()[0]["active_version"].is_null());

    // active -> compromised
    env.sh("key create c --type ed25519").ok();
    env.sh("key set-state c 1 compromised").ok();
    assert_eq!(state_of(&env.show("c"), 1), "compromised");

    // every transition is in the audit log
    let audit = env.audit();
    let about_k = audit
        .iter()
        .filter(|e| e["key_name"] == "k" && e["outcome"] == "ok")
        .count();
    assert!(
        about_k >= 7,
        "create, 2 rotations, 4 state changes of k not all audited: {audit:?}"
    );
}

#[test]
fn illegal_transitions_fail_and_change_nothing() {
    let env = Env::new();
    env.sh("key create k --type symmetric-256").ok();
    env.sh("key rotate k").ok(); // v1 decrypt-only, v2 active
    env.sh("key create gone --type symmetric-256").ok();
    env.sh("key set-state gone 1 compromised").ok();
    env.sh("key set-state gone 1 destroyed").ok();

    let k_before = env.show("k");
    let gone_before = env.show("gone");
    let illegal: &[(&str, &str, &str)] = &[
        ("k", "2", "destroyed"),  // active -> destroyed
        ("k", "2", "pre-active"), // active -> pre-active
        ("k", "1", "active"),     // decrypt-only -> active
        ("k", "1", "pre-active"), // decrypt-only -> pre-active
        ("gone", "1", "active"),  // destroyed -> anything
        ("gone", "1", "compromised"),
        ("gone", "1", "decrypt-only"),
        ("k", "3", "compromised"), // no such version
        ("k", "0", "compromised"),
    ];
    for (name, v, st) in illegal {
        let r = env.run(["key", "set-state", name, v, st]);
        assert!(!r.success(), "{name} v{v} -> {st} was accepted");
        r.err();
        assert_eq!(env.show("k"), k_before, "after refused {name} v{v} -> {st}");
        assert_eq!(
            env.show("gone"),
            gone_before,
            "after refused {name} v{v} -> {st}"
        );
    }
    // no such state (may be refused at argument parsing)
    env.sh("key set-state k 1 retired").usage_err();
    assert_eq!(env.show("k"), k_before);
    // same state again is not a transition either
    env.sh("key set-state k 2 active").err();
    assert_eq!(env.show("k"), k_before);
    env.sh("audit verify").ok();
}

#[test]
fn destroy_only_inactive_versions() {
    let env = Env::new();
    env.sh("key create d --type ed25519").ok();
    let before = env.show("d");
    // the active version cannot be destroyed directly
    env.sh("key destroy d 1").err();
    assert_eq!(env.show("d"), before);

    env.sh("key rotate d").ok();
    env.sh("key destroy d 1").ok();
    let d = env.show("d");
    assert_eq!(state_of(&d, 1), "destroyed", "{d}");
    assert_eq!(state_of(&d, 2), "active", "{d}");
    assert_eq!(
        as_array(field(&d, "versions")).len(),
        2,
        "the destroyed record must stay: {d}"
    );
    // destroying twice is refused
    let d_before = env.show("d");
    env.sh("key destroy d 1").err();
    assert_eq!(env.show("d"), d_before);
    env.sh("key destroy d 7").err();

    // compromised versions can be destroyed
    env.sh("key set-state d 2 compromised").ok();
    env.sh("key destroy d 2").ok();
    let d = env.show("d");
    assert_eq!(
        (state_of(&d, 1), state_of(&d, 2)),
        ("destroyed".into(), "destroyed".into())
    );
    assert!(env
        .audit()
        .iter()
        .any(|e| e["key_name"] == "d" && e["version"] == json!(2)));
}

#[test]
fn rotation_policy_can_be_set_and_cleared() {
    let env = Env::new();
    env.sh("key create p --type symmetric-256 --rotate-every 90d")
        .ok();
    let d = env.show("p");
    assert_eq!(u64_field(&d, "rotate_every_secs"), 90 * 86400, "{d}");
    assert_eq!(str_field(&d, "rotation_status"), "ok", "{d}");
    let due = rfc3339_utc(str_field(&d, "rotation_due"));
    let created = rfc3339_utc(str_field(version(&d, 1), "created"));
    assert!(
        (due - created - 90 * 86400).abs() <= 2,
        "due {due} != v1 created {created} + 90d: {d}"
    );

    env.sh("key policy p --rotate-every 30d").ok();
    let d = env.show("p");
    assert_eq!(u64_field(&d, "rotate_every_secs"), 30 * 86400, "{d}");
    let due = rfc3339_utc(str_field(&d, "rotation_due"));
    assert!((due - created - 30 * 86400).abs() <= 2, "{d}");
    let k = &env.list()[0];
    assert_eq!(u64_field(k, "rotate_every_secs"), 30 * 86400, "{k}");
    assert_eq!(str_field(k, "rotation_status"), "ok", "{k}");

    env.sh("key policy p --no-rotation").ok();
    let d = env.show("p");
    assert!(field(&d, "rotate_every_secs").is_null(), "{d}");
    assert!(field(&d, "rotation_due").is_null(), "{d}");
    assert_eq!(str_field(&d, "rotation_status"), "none", "{d}");
    assert_eq!(str_field(&env.list()[0], "rotation_status"), "none");

    // other duration units parse
    env.sh("key policy p --rotate-every 12h").ok();
    assert_eq!(u64_field(&env.show("p"), "rotate_every_secs"), 12 * 3600);
    env.sh("key policy p --rotate-every 2w").ok();
    assert_eq!(u64_field(&env.show("p"), "rotate_every_secs"), 14 * 86400);
    // a policy needs exactly one of the two options
    env.sh("key policy p").usage_err();
    env.sh("key policy p --rotate-every 1d --no-rotation")
        .usage_err();
    assert_eq!(u64_field(&env.show("p"), "rotate_every_secs"), 14 * 86400);
}

#[test]
fn rotation_becomes_overdue_and_rotating_clears_it() {
    let env = Env::new();
    env.sh("key create fast --type symmetric-256 --rotate-every 1s")
        .ok();
    env.sh("key create slow --type symmetric-256 --rotate-every 90d")
        .ok();
    std::thread::sleep(std::time::Duration::from_secs(2));

    let list = env.list();
    let by = |n: &str| list.iter().find(|k| k["name"] == n).unwrap().clone();
    assert_eq!(
        str_field(&by("fast"), "rotation_status"),
        "overdue",
        "{list:?}"
    );
    assert_eq!(str_field(&by("slow"), "rotation_status"), "ok", "{list:?}");
    assert_eq!(str_field(&env.show("fast"), "rotation_status"), "overdue");
    assert!(rfc3339_utc(str_field(&by("fast"), "rotation_due")) <= now_secs());

    // a longer policy ends the overdue state; the due date follows the active version
    env.sh("key policy fast --rotate-every 90d").ok();
    assert_eq!(str_field(&env.show("fast"), "rotation_status"), "ok");
    env.sh("key rotate fast").ok();
    let d = env.show("fast");
    assert_eq!(str_field(&d, "rotation_status"), "ok", "{d}");
    let v2_created = rfc3339_utc(str_field(version(&d, 2), "created"));
    let due = rfc3339_utc(str_field(&d, "rotation_due"));
    assert!(
        (due - v2_created - 90 * 86400).abs() <= 2,
        "due not v2 created + 90d: {d}"
    );
}
