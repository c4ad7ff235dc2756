//! The audit log: list, verify, export, and tamper detection on an export.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A vault with a handful of audited events (at least 6 entries).
fn busy_vault() -> Env {
    let env = Env::new();
    env.sh("key create alpha --type symmetric-256").ok();
    env.sh("key create beta --type ed25519 --rotate-every 30d")
        .ok();
    env.sh("key rotate alpha").ok();
    env.sh("key set-state alpha 1 compromised").ok();
    env.run_with_pass("bad guess", ["key", "list"])
        .err_containing("wrong passphrase");
    env.sh("key policy beta --no-rotation").ok();
    env
}

fn export(env: &Env) -> PathBuf {
    let out = env.path("audit.jsonl");
    env.run([
        "audit",
        "export",
        "--format",
        "jsonl",
        &out.display().to_string(),
    ])
    .ok();
    assert!(out.is_file(), "audit export wrote nothing");
    out
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Index of the export line holding the entry with this seq.
fn entry_line(lines: &[String], seq: u64) -> usize {
    lines
        .iter()
        .position(|l| {
            serde_json::from_str::<Value>(l)
                .map(|v| v.get("action").is_some() && v["seq"].as_u64() == Some(seq))
                .unwrap_or(false)
        })
        .unwrap_or_else(|| {
            panic!(
                "no entry line with seq {seq} in the export:\n{}",
                lines.join("\n")
            )
        })
}

/// Flips one byte inside the string value of `key` on this JSON line (keeps it valid JSON).
fn flip_in_value(line: &str, key: &str) -> String {
    let k = format!("\"{key}\"");
    let at = line
        .find(&k)
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    let mut i = at + k.len();
    let b = line.as_bytes();
    while b[i] == b' ' || b[i] == b':' {
        i += 1;
    }
    assert_eq!(b[i], b'"', "{key} is not a string value in {line}");
    let j = i + 1; // first byte of the value
    assert!(
        b[j].is_ascii_alphanumeric(),
        "value of {key} does not start with [a-z0-9]: {line}"
    );
    let mut out = b.to_vec();
    out[j] = match b[j] {
        b'z' => b'a',
        b'Z' => b'A',
        b'9' => b'0',
        c => c + 1,
    };
    String::from_utf8(out).unwrap()
}

fn write_lines(p: &Path, lines: &[String]) {
    std::fs::write(p, lines.join("\n") + "\n").unwrap();
}

#[test]
fn audit_list_is_a_hash_chain_of_typed_entries() {
    let env = busy_vault();
    let audit = env.audit();
    assert!(audit.len() >= 6, "expected at least 6 entries: {audit:?}");
    let mut hashes = BTreeSet::new();
    for (i, e) in audit.iter().enumerate() {
        assert_eq!(u64_field(e, "seq"), i as u64 + 1, "seq not 1,2,3…: {e}");
        let t = rfc3339_utc(str_field(e, "time"));
        assert!((t - now_secs()).abs() < 600, "{e}");
        assert!(!str_field(e, "action").is_empty(), "{e}");
        str_field(e, "actor");
        let outcome = str_field(e, "outcome");
        assert!(["ok", "refused", "failed"].contains(&outcome), "{e}");
        field(e, "detail");
        for k in ["key_id", "key_name", "version"] {
            field(e, k);
        }
        assert!(field(e, "signed").is_boolean(), "{e}");
        let h = str_field(e, "hash");
        assert!(
            h.len() >= 32 && h.chars().all(|c| c.is_ascii_hexdigit()),
            "hash not hex: {e}"
        );
        assert!(hashes.insert(h.to_string()), "repeated hash: {e}");
        str_field(e, "prev_hash");
        if i > 0 {
            assert_eq!(
                str_field(e, "prev_hash"),
                str_field(&audit[i - 1], "hash"),
                "entry {} does not chain to {}",
                i + 1,
                i
            );
        }
    }
    // the events done above are there
    let has = |name: &str, outcome: &str| {
        audit
            .iter()
            .any(|e| e["key_name"] == name && e["outcome"] == outcome)
    };
    assert!(has("alpha", "ok") && has("beta", "ok"), "{audit:?}");
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "vault.unlock" && e["outcome"] == "failed"),
        "{audit:?}"
    );
    let alpha_id = str_field(&env.show("alpha"), "id").to_string();
    assert!(
        audit.iter().any(|e| e["key_id"] == alpha_id.as_str()),
        "no entry with alpha's id"
    );
}

#[test]
fn audit_verify_on_the_live_vault() {
    let env = busy_vault();
    let r = env.sh("audit verify").ok();
    assert!(
        !r.stdout().trim().is_empty(),
        "audit verify printed nothing"
    );

    let n = env.audit().len() as u64;
    let rep = env.json(["audit", "verify"]);
    assert_eq!(field(&rep, "ok"), &serde_json::json!(true), "{rep}");
    // `audit list` itself may be audited, so entries is at least what we saw
    assert!(
        u64_field(&rep, "entries") >= n,
        "{rep} vs {n} entries listed"
    );
    assert!(field(&rep, "first_broken").is_null(), "{rep}");
    let signed = field(&rep, "signed_through");
    assert!(signed.is_null() || signed.is_u64(), "{rep}");
    let tail = u64_field(&rep, "unsigned_tail");
    assert!(tail <= u64_field(&rep, "entries"), "{rep}");
    str_field(&rep, "message");
}

#[test]
fn exported_log_verifies() {
    let env = busy_vault();
    let f = export(&env);
    let ls = lines(&f);
    let entries: Vec<Value> = ls
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
        .filter(|v| v.get("action").is_some())
        .collect();
    assert!(entries.len() >= 6, "export has {} entries", entries.len());
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(u64_field(e, "seq"), i as u64 + 1, "{e}");
        assert!(
            field(e, "hash").is_string() && field(e, "prev_hash").is_string(),
            "{e}"
        );
    }
    assert!(
        ls.len() > entries.len(),
        "no signed-head line in the export"
    );

    env.run(["audit", "verify", "--file", &f.display().to_string()])
        .ok();
    let rep = env.json(["audit", "verify", "--file", &f.display().to_string()]);
    assert_eq!(field(&rep, "ok"), &serde_json::json!(true), "{rep}");
    assert_eq!(u64_field(&rep, "entries"), entries.len() as u64, "{rep}");
    assert!(field(&rep, "first_broken").is_null(), "{rep}");

    env.run([
        "audit",
        "export",
        "--format",
        "xml",
        &env.path("x").display().to_string(),
    ])
    .usage_err();
}

#[test]
fn one_flipped_byte_in_an_exported_entry_is_found_and_named() {
    let env = busy_vault();
    let f = export(&env);
    let orig = lines(&f);

    // flip a byte of entry 3's action
    let mut ls = orig.clone();
    let i = entry_line(&ls, 3);
    ls[i] = flip_in_value(&ls[i], "action");
    assert_ne!(ls[i], orig[i]);
    let bad = env.path("tampered.jsonl");
    write_lines(&bad, &ls);
    env.run(["audit", "verify", "--file", &bad.display().to_string()])
        .err_containing("entry 3");

    let r = env.run([
        "audit",
        "verify",
        "--file",
        &bad.display().to_string(),
        "--json",
    ]);
    assert!(
        !r.success(),
        "audit verify --json accepted a tampered export"
    );
    let rep = r.json();
    assert_eq!(field(&rep, "ok"), &serde_json::json!(false), "{rep}");
    assert_eq!(u64_field(&rep, "first_broken"), 3, "{rep}");

    // two tampered entries: the first one is named
    let mut ls = orig.clone();
    for (seq, key) in [(5, "action"), (2, "action")] {
        let i = entry_line(&ls, seq);
        ls[i] = flip_in_value(&ls[i], key);
    }
    let bad2 = env.path("tampered2.jsonl");
    write_lines(&bad2, &ls);
    env.run(["audit", "verify", "--file", &bad2.display().to_string()])
        .err_containing("entry 2");

    // the original export still verifies (the vault itself was not touched)
    env.run(["audit", "verify", "--file", &f.display().to_string()])
        .ok();
    env.sh("audit verify").ok();
}

#[test]
fn removed_or_reordered_entries_are_detected() {
    let env = busy_vault();
    let f = export(&env);
    let orig = lines(&f);
    let p = env.path("edited.jsonl");

    // a middle entry removed
    let mut ls = orig.clone();
    ls.remove(entry_line(&ls, 3));
    write_lines(&p, &ls);
    env.run(["audit", "verify", "--file", &p.display().to_string()])
        .err();

    // two entries swapped
    let mut ls = orig.clone();
    let (a, b) = (entry_line(&ls, 2), entry_line(&ls, 3));
    ls.swap(a, b);
    write_lines(&p, &ls);
    env.run(["audit", "verify", "--file", &p.display().to_string()])
        .err();

    // the newest entry cut off while the signed head line is kept (truncation)
    let mut ls = orig.clone();
    let last_seq = orig
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("action").is_some())
        .map(|v| v["seq"].as_u64().unwrap())
        .max()
        .unwrap();
    ls.remove(entry_line(&ls, last_seq));
    write_lines(&p, &ls);
    env.run(["audit", "verify", "--file", &p.display().to_string()])
        .err();
}
