//! Vault-level properties: what a thief with the file, or someone editing it, can and cannot do.

use std::path::{Path, PathBuf};

use custos_core::{Error, InitOptions, KeyState, KeyType, Passphrase, Vault};
use rusqlite::Connection;

const PASS: &str = "correct horse battery staple";

fn pass(s: &str) -> Passphrase {
    Passphrase::new(s.into())
}

fn test_vault(dir: &Path) -> (PathBuf, Vault) {
    let path = dir.join("vault.db");
    let opts = InitOptions {
        insecure_test_kdf: true,
        ..InitOptions::default()
    };
    let v = Vault::init(&path, &pass(PASS), &opts, &mut |_| {}).unwrap();
    (path, v)
}

fn unlock(path: &Path) -> Vault {
    Vault::unlock(path, &pass(PASS), "test").unwrap()
}

/// The report must fail and name entry `n`, in its number and its message.
fn assert_broken_at(report: &custos_core::AuditReport, n: u64) {
    assert!(!report.ok, "{}", report.message);
    assert_eq!(report.first_broken, Some(n), "{}", report.message);
    assert!(
        report.message.contains(&format!("entry {n}")),
        "{}",
        report.message
    );
}

/// Unlocking with the right passphrase must refuse with `Tampered`.
fn assert_unlock_refused_as_tampered(path: &Path) {
    let err = Vault::unlock(path, &pass(PASS), "t").unwrap_err();
    assert!(matches!(err, Error::Tampered(_)), "{err}");
}

fn raw(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

fn file_bytes(path: &Path) -> Vec<u8> {
    let mut all = std::fs::read(path).unwrap();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if let Ok(w) = std::fs::read(PathBuf::from(wal)) {
        all.extend(w);
    }
    all
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn stolen_file_holds_no_names_or_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = test_vault(dir.path());
    v.create_key("Radiology-PACS-master", KeyType::Symmetric256, None)
        .unwrap();
    v.create_key("Court filing signer", KeyType::Ed25519, None)
        .unwrap();
    // Check while the session is open (WAL present) and after it closed.
    for _ in 0..2 {
        let bytes = file_bytes(&path);
        // Key types appear in audit details (the log is verifiable offline); names never do.
        for secret in ["Radiology-PACS-master", "Court filing signer", PASS] {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{secret:?} found in the vault file"
            );
        }
        v.lock();
        v = unlock(&path);
    }
}

#[test]
fn wrong_passphrase_is_refused_audited_and_changes_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = test_vault(dir.path());
    v.create_key("k", KeyType::Symmetric256, None).unwrap();
    v.lock();
    let keys_before: Vec<Vec<u8>> = raw(&path)
        .prepare("SELECT record FROM keys")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let err = Vault::unlock(&path, &pass("not it"), "mallory").unwrap_err();
    assert!(matches!(err, Error::WrongPassphrase));
    assert!(err.to_string().contains("wrong passphrase"));
    let v = unlock(&path);
    let log = v.audit_entries().unwrap();
    let failed = log
        .iter()
        .find(|e| e.action == "vault.unlock" && e.actor == "mallory")
        .expect("failed unlock in the log");
    assert_eq!(serde_json::to_value(failed.outcome).unwrap(), "failed");
    let keys_after: Vec<Vec<u8>> = raw(&path)
        .prepare("SELECT record FROM keys")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(keys_before, keys_after);
}

#[test]
fn sealed_blob_moved_between_rows_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = test_vault(dir.path());
    v.create_key("a", KeyType::Symmetric256, None).unwrap();
    v.create_key("b", KeyType::Symmetric256, None).unwrap();
    v.lock();
    let db = raw(&path);
    // Give key b the record of key a (so b would be renamed "a").
    db.execute(
        "UPDATE keys SET record = (SELECT record FROM keys ORDER BY id LIMIT 1)
         WHERE id = (SELECT id FROM keys ORDER BY id DESC LIMIT 1)",
        [],
    )
    .unwrap();
    drop(db);
    assert_unlock_refused_as_tampered(&path);
}

#[test]
fn material_moved_between_versions_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = test_vault(dir.path());
    v.create_key("k", KeyType::Symmetric256, None).unwrap();
    v.rotate_key("k").unwrap();
    let src = dir.path().join("plain");
    std::fs::write(&src, b"attack at dawn").unwrap();
    v.encrypt_file("k", &src, &dir.path().join("enc")).unwrap(); // with version 2
    v.lock();
    let db = raw(&path);
    db.execute(
        "UPDATE key_versions SET material = (SELECT material FROM key_versions WHERE version = 1) WHERE version = 2",
        [],
    )
    .unwrap();
    drop(db);
    // The swap is caught at unlock, before any key is used.
    assert_unlock_refused_as_tampered(&path);
}

#[test]
fn replaced_audit_key_is_detected_at_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = test_vault(dir.path());
    v.lock();
    raw(&path)
        .execute(
            "UPDATE meta SET value = ?1 WHERE name = 'audit_public'",
            [[7u8; 32].to_vec()],
        )
        .unwrap();
    assert_unlock_refused_as_tampered(&path);
}

#[test]
fn illegal_transition_is_refused_logged_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_path, mut v) = test_vault(dir.path());
    v.create_key("k", KeyType::Symmetric256, None).unwrap();
    let before = v.key_detail("k").unwrap();
    let err = v.set_state("k", 1, KeyState::Destroyed).unwrap_err();
    assert!(matches!(err, Error::IllegalTransition { .. }));
    assert!(
        err.to_string().contains("decrypt-only, compromised"),
        "{err}"
    );
    let after = v.key_detail("k").unwrap();
    assert_eq!(before.versions[0].state, after.versions[0].state);
    let last = v.audit_entries().unwrap().pop().unwrap();
    assert_eq!(last.action, "key.destroy");
    assert_eq!(serde_json::to_value(last.outcome).unwrap(), "refused");
    assert!(!last.detail.contains('k') || last.detail == "illegal_transition");
}

#[test]
fn lifecycle_rotation_and_destruction() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = test_vault(dir.path());
    v.create_key("k", KeyType::Symmetric256, None).unwrap();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, vec![42u8; 200_000]).unwrap();
    v.encrypt_file("k", &plain, &dir.path().join("enc1"))
        .unwrap();
    let d = v.rotate_key("k").unwrap();
    assert_eq!(d.active_version, Some(2));
    assert_eq!(d.versions[0].state, KeyState::DecryptOnly);
    // Old files still open after rotation.
    let r = v
        .decrypt_file(&dir.path().join("enc1"), &dir.path().join("out1"))
        .unwrap();
    assert_eq!(r.version, 1);
    assert_eq!(
        std::fs::read(dir.path().join("out1")).unwrap(),
        vec![42u8; 200_000]
    );

    let sealed_v1: Vec<u8> = raw(&path)
        .query_row(
            "SELECT material FROM key_versions WHERE version = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    v.destroy_version("k", 1).unwrap();
    let d = v.key_detail("k").unwrap();
    assert_eq!(d.versions[0].state, KeyState::Destroyed);
    assert!(d.versions[0].allowed_states.is_empty());
    let err = v
        .decrypt_file(&dir.path().join("enc1"), &dir.path().join("out2"))
        .unwrap_err();
    assert!(matches!(err, Error::VersionUnusable { .. }), "{err}");
    assert!(
        !contains(&file_bytes(&path), &sealed_v1),
        "destroyed material still in the file"
    );
}

#[test]
fn passphrase_change_rewraps_only_the_root_key() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = test_vault(dir.path());
    v.create_key("k", KeyType::Ed25519, None).unwrap();
    let pk = v.key_detail("k").unwrap().versions[0].public_key.clone();
    assert!(matches!(
        v.change_passphrase(&pass("wrong"), &pass("new one")),
        Err(Error::WrongPassphrase)
    ));
    v.change_passphrase(&pass(PASS), &pass("new one")).unwrap();
    v.lock();
    assert!(matches!(
        Vault::unlock(&path, &pass(PASS), "t"),
        Err(Error::WrongPassphrase)
    ));
    let v = Vault::unlock(&path, &pass("new one"), "t").unwrap();
    assert_eq!(v.key_detail("k").unwrap().versions[0].public_key, pk);
    assert!(
        v.info().unwrap().insecure_test_kdf,
        "test vault stays flagged"
    );
}

#[test]
fn audit_tampering_names_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = test_vault(dir.path());
    v.create_key("k", KeyType::Symmetric256, None).unwrap();
    v.rotate_key("k").unwrap();
    assert!(v.audit_verify().unwrap().ok);
    v.lock();
    // Rewrite entry 3's detail in place.
    let db = raw(&path);
    let entry: String = db
        .query_row("SELECT entry FROM audit WHERE seq = 3", [], |r| r.get(0))
        .unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&entry).unwrap();
    json["detail"] = "nothing happened here".into();
    db.execute(
        "UPDATE audit SET entry = ?1 WHERE seq = 3",
        [json.to_string()],
    )
    .unwrap();
    drop(db);
    let mut v = unlock(&path);
    let report = v.audit_verify().unwrap();
    assert_broken_at(&report, 3);
}

#[test]
fn truncated_audit_log_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = test_vault(dir.path());
    v.create_key("k", KeyType::Symmetric256, None).unwrap();
    v.lock();
    // Drop entry 2 and renumber nothing: the gap must be named.
    raw(&path)
        .execute("DELETE FROM audit WHERE seq = 2", [])
        .unwrap();
    let mut v = unlock(&path);
    let report = v.audit_verify().unwrap();
    assert!(!report.ok);
    assert_eq!(report.first_broken, Some(2));
}

#[test]
fn export_verifies_offline_and_a_flipped_byte_names_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = test_vault(dir.path());
    v.create_key("k", KeyType::Symmetric256, None).unwrap();
    let _ = Vault::unlock(&path, &pass("bad"), "x"); // an unsigned entry in the middle
    let out = dir.path().join("audit.jsonl");
    v.audit_export(&out).unwrap();
    let fp = v.info().unwrap().audit_key_fingerprint;
    v.lock();
    let report = custos_core::verify_export(&out, Some(&fp)).unwrap();
    assert!(report.ok, "{}", report.message);

    // Another key's fingerprint is refused.
    assert!(
        custos_core::verify_export(&out, Some("0000-0000-0000-0000-0000-0000-0000-0000")).is_err()
    );

    // Flip one character inside the key.create entry's action ("key.create" -> "key.creatf").
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let idx = lines
        .iter()
        .position(|l| l.contains("\"action\":\"key.create\""))
        .unwrap();
    let seq = serde_json::from_str::<serde_json::Value>(&lines[idx]).unwrap()["seq"]
        .as_u64()
        .unwrap();
    assert_eq!(seq, 2, "init is entry 1, key.create entry 2");
    lines[idx] = lines[idx].replacen("key.create", "key.creatf", 1);
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let report = custos_core::verify_export(&bad, Some(&fp)).unwrap();
    assert_broken_at(&report, 2);
}

#[test]
fn encrypted_file_tampering_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = test_vault(dir.path());
    v.create_key("k", KeyType::Symmetric256, None).unwrap();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, vec![7u8; 300_000]).unwrap();
    let enc = dir.path().join("enc");
    v.encrypt_file("k", &plain, &enc).unwrap();
    let good = std::fs::read(&enc).unwrap();
    // Header, wrapped key, first chunk, last chunk, and truncation by one chunk.
    let mut cases: Vec<Vec<u8>> = [20usize, 80, 200, good.len() - 3]
        .iter()
        .map(|&i| {
            let mut b = good.clone();
            b[i] ^= 0x80;
            b
        })
        .collect();
    cases.push(good[..good.len() - (300_000 % 65_536) - 16].to_vec());
    for (i, bad) in cases.iter().enumerate() {
        let f = dir.path().join(format!("bad{i}"));
        std::fs::write(&f, bad).unwrap();
        let out = dir.path().join(format!("out{i}"));
        assert!(v.decrypt_file(&f, &out).is_err(), "case {i} decrypted");
        assert!(!out.exists(), "case {i} left output");
        let mut partial = out.as_os_str().to_owned();
        partial.push(".custos-partial");
        assert!(
            !PathBuf::from(partial).exists(),
            "case {i} left a partial file"
        );
    }
    // Wrong key type and refusal to overwrite.
    v.create_key("s", KeyType::Ed25519, None).unwrap();
    assert!(matches!(
        v.encrypt_file("s", &plain, &dir.path().join("x")),
        Err(Error::WrongKeyType { .. })
    ));
    assert!(
        v.encrypt_file("k", &plain, &enc).is_err(),
        "overwrote an existing file"
    );
}

#[test]
fn empty_file_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = test_vault(dir.path());
    v.create_key("k", KeyType::Symmetric256, None).unwrap();
    let plain = dir.path().join("empty");
    std::fs::write(&plain, b"").unwrap();
    v.encrypt_file("k", &plain, &dir.path().join("enc"))
        .unwrap();
    let r = v
        .decrypt_file(&dir.path().join("enc"), &dir.path().join("out"))
        .unwrap();
    assert_eq!(r.bytes, 0);
    assert_eq!(std::fs::read(dir.path().join("out")).unwrap(), b"");
}

#[test]
fn exact_chunk_multiple_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = test_vault(dir.path());
    v.create_key("k", KeyType::Symmetric256, None).unwrap();
    let data: Vec<u8> = (0..2 * 65_536u32).map(|i| (i % 251) as u8).collect();
    let plain = dir.path().join("p");
    std::fs::write(&plain, &data).unwrap();
    v.encrypt_file("k", &plain, &dir.path().join("enc"))
        .unwrap();
    v.decrypt_file(&dir.path().join("enc"), &dir.path().join("out"))
        .unwrap();
    assert_eq!(std::fs::read(dir.path().join("out")).unwrap(), data);
}

#[test]
fn real_init_is_never_weak() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let opts = InitOptions {
        target_ms: 100,
        insecure_test_kdf: false,
    };
    let v = Vault::init(&path, &pass(PASS), &opts, &mut |_| {}).unwrap();
    let info = v.info().unwrap();
    assert!(!info.insecure_test_kdf);
    assert!(info.kdf.memory_kib >= 19 * 1024 && info.kdf.iterations >= 2);
    assert!(info.kdf.salt_len >= 16);
    assert!(matches!(
        Vault::init(&path, &pass(PASS), &opts, &mut |_| {}),
        Err(Error::VaultExists(_))
    ));
}

fn version_record(path: &Path, version: u32) -> Vec<u8> {
    raw(path)
        .query_row(
            "SELECT record FROM key_versions WHERE version = ?1",
            [version],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn replayed_old_version_record_cannot_reactivate_a_compromised_key() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = test_vault(dir.path());
    v.create_key("k", KeyType::Symmetric256, None).unwrap();
    let active_v1 = version_record(&path, 1);
    v.set_state("k", 1, KeyState::Compromised).unwrap();
    v.rotate_key("k").unwrap();
    v.lock();
    raw(&path)
        .execute(
            "UPDATE key_versions SET record = ?1 WHERE version = 1",
            [active_v1],
        )
        .unwrap();
    assert_unlock_refused_as_tampered(&path);
    // The refusal is in the log, unsigned (written as a failed unlock).
    let n: i64 = raw(&path)
        .query_row(
            "SELECT count(*) FROM audit WHERE entry LIKE '%integrity check%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn replayed_material_cannot_undo_a_destruction() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = test_vault(dir.path());
    v.create_key("k", KeyType::Symmetric256, None).unwrap();
    v.rotate_key("k").unwrap();
    let (rec, mat): (Vec<u8>, Vec<u8>) = raw(&path)
        .query_row(
            "SELECT record, material FROM key_versions WHERE version = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    v.destroy_version("k", 1).unwrap();
    v.lock();
    raw(&path)
        .execute(
            "UPDATE key_versions SET record = ?1, material = ?2 WHERE version = 1",
            rusqlite::params![rec, mat],
        )
        .unwrap();
    assert_unlock_refused_as_tampered(&path);
}

/// Rewrite the entries after `keep` (recomputing their hashes) and delete their checkpoints: what an
/// attacker with the file but without the audit key can do.
fn launder_audit_after(path: &Path, keep: i64) {
    let db = raw(path);
    db.execute("DELETE FROM audit_checkpoints WHERE seq > ?1", [keep])
        .unwrap();
    let rows: Vec<(i64, String)> = db
        .prepare("SELECT seq, entry FROM audit WHERE seq > ?1 ORDER BY seq")
        .unwrap()
        .query_map([keep], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut prev: String = db
        .query_row("SELECT hash FROM audit WHERE seq = ?1", [keep], |r| {
            r.get(0)
        })
        .unwrap();
    for (seq, json) in rows {
        let mut e: serde_json::Value = serde_json::from_str(&json).unwrap();
        e["actor"] = "os-user:somebody-else".into();
        e["prev_hash"] = prev.clone().into();
        let hash = hash_entry(&e);
        e["hash"] = hash.clone().into();
        db.execute(
            "UPDATE audit SET entry = ?1, hash = ?2 WHERE seq = ?3",
            rusqlite::params![e.to_string(), hash, seq],
        )
        .unwrap();
        prev = hash;
    }
}

/// The entry hash of docs/audit-format.md, written independently of the library.
fn hash_entry(e: &serde_json::Value) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"custos-audit-entry-v1\0");
    let field = |h: &mut Sha256, v: &serde_json::Value| match v {
        serde_json::Value::Null => h.update(u32::MAX.to_be_bytes()),
        serde_json::Value::Number(n) => {
            let s = n.to_string();
            h.update((s.len() as u32).to_be_bytes());
            h.update(s.as_bytes());
        }
        serde_json::Value::String(s) => {
            h.update((s.len() as u32).to_be_bytes());
            h.update(s.as_bytes());
        }
        other => panic!("unexpected {other}"),
    };
    for f in [
        "seq",
        "time",
        "action",
        "actor",
        "key_id",
        "version",
        "outcome",
        "detail",
        "prev_hash",
    ] {
        field(&mut h, &e[f]);
    }
    hex::encode(h.finalize())
}

#[test]
fn independent_hash_matches_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = test_vault(dir.path());
    v.lock();
    let json: String = raw(&path)
        .query_row("SELECT entry FROM audit WHERE seq = 1", [], |r| r.get(0))
        .unwrap();
    let e: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(hash_entry(&e), e["hash"].as_str().unwrap());
}

#[test]
fn rewritten_history_without_checkpoints_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = test_vault(dir.path());
    v.create_key("k", KeyType::Symmetric256, None).unwrap();
    v.rotate_key("k").unwrap();
    v.lock();
    launder_audit_after(&path, 1);
    // Unlocking reports it (and does not hide it by signing over it) ...
    let mut v = unlock(&path);
    assert!(v.integrity_warning().is_some());
    assert!(v.info().unwrap().audit_warning.is_some());
    // ... and the full check names the first rewritten entry, now and in later sessions.
    let report = v.audit_verify().unwrap();
    assert!(!report.ok);
    assert_eq!(report.first_broken, Some(2), "{}", report.message);
    v.lock();
    let mut v = unlock(&path);
    let report = v.audit_verify().unwrap();
    assert!(!report.ok, "{}", report.message);
    assert_eq!(report.first_broken, Some(2));
}

#[test]
fn rolled_back_audit_log_is_detected_at_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = test_vault(dir.path());
    v.create_key("k", KeyType::Symmetric256, None).unwrap();
    v.lock();
    // Remove the newest entries together with their checkpoints (a clean truncation).
    let db = raw(&path);
    let max: i64 = db
        .query_row("SELECT max(seq) FROM audit", [], |r| r.get(0))
        .unwrap();
    db.execute("DELETE FROM audit WHERE seq > ?1", [max - 2])
        .unwrap();
    db.execute("DELETE FROM audit_checkpoints WHERE seq > ?1", [max - 2])
        .unwrap();
    drop(db);
    let mut v = unlock(&path);
    let w = v.integrity_warning().expect("rollback must be reported");
    assert!(w.contains("rolled back"), "{w}");
    assert!(!v.audit_verify().unwrap().ok);
}

#[test]
fn failed_unlocks_stay_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = test_vault(dir.path());
    v.lock();
    // Two: a third would start the back-off (tested below).
    for _ in 0..2 {
        assert!(Vault::unlock(&path, &pass("nope"), "x").is_err());
    }
    let mut v = unlock(&path);
    assert_eq!(v.failed_unlocks(), 2);
    assert!(v.integrity_warning().is_none());
    let report = v.audit_verify().unwrap();
    assert!(report.ok, "{}", report.message);
}

#[test]
fn tampering_during_a_session_is_never_sealed_over() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = test_vault(dir.path());
    v.create_key("k", KeyType::Symmetric256, None).unwrap();
    let active_v1 = version_record(&path, 1);
    v.set_state("k", 1, KeyState::Compromised).unwrap();
    // Another process rewinds the row while the window holds the vault open ...
    raw(&path)
        .execute(
            "UPDATE key_versions SET record = ?1 WHERE version = 1",
            [active_v1],
        )
        .unwrap();
    // ... then operations that do not touch keys (verify, export) and the lock must not re-seal it.
    assert!(matches!(v.audit_verify(), Err(Error::Tampered(_))));
    assert!(v.integrity_warning().is_some());
    assert!(v.audit_export(&dir.path().join("x.jsonl")).is_err());
    v.lock();
    assert_unlock_refused_as_tampered(&path);
}

#[test]
fn refusals_name_the_key_they_concern() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut v) = test_vault(dir.path());
    let id = v.create_key("k", KeyType::Ed25519, None).unwrap().id;
    let src = dir.path().join("f");
    std::fs::write(&src, b"x").unwrap();
    assert!(v.encrypt_file("k", &src, &dir.path().join("o")).is_err());
    let last = v.audit_entries().unwrap().pop().unwrap();
    assert_eq!(last.action, "file.encrypt");
    assert_eq!(serde_json::to_value(last.outcome).unwrap(), "refused");
    assert_eq!(last.key_id.as_deref(), Some(id.as_str()));
    assert_eq!(last.key_name.as_deref(), Some("k"));
    assert_eq!(last.detail, "wrong_key_type");
}

/// Pretend the last failure happened `secs` earlier (the back-off is measured from it).
fn age_backoff(path: &Path, secs: i64) {
    raw(path)
        .execute(
            "UPDATE backoff SET last_failure = last_failure - ?1",
            [secs],
        )
        .unwrap();
}

#[test]
fn wrong_passphrases_back_off_and_it_persists_and_grows() {
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = test_vault(dir.path());
    v.lock();
    for _ in 0..3 {
        assert!(matches!(
            Vault::unlock(&path, &pass("nope"), "x"),
            Err(Error::WrongPassphrase)
        ));
    }
    // Even the right passphrase waits now, and is not checked.
    match Vault::unlock(&path, &pass(PASS), "x") {
        Err(Error::BackedOff { wait_secs }) => assert!((1..=5).contains(&wait_secs), "{wait_secs}"),
        other => panic!("expected a back-off, got {other:?}"),
    }
    // Persisted: a new process (peek opens the file afresh) sees it too.
    let info = Vault::peek(&path).unwrap();
    assert_eq!(info.failed_unlocks, 3);
    assert!(info.wait_secs >= 1);
    // After the delay, one more wrong guess doubles it.
    age_backoff(&path, 5);
    assert!(matches!(
        Vault::unlock(&path, &pass("nope"), "x"),
        Err(Error::WrongPassphrase)
    ));
    match Vault::unlock(&path, &pass(PASS), "x") {
        Err(Error::BackedOff { wait_secs }) => {
            assert!((6..=10).contains(&wait_secs), "{wait_secs}")
        }
        other => panic!("expected a longer back-off, got {other:?}"),
    }
    // Once it has passed, the right passphrase unlocks, reports the failures and resets the count.
    age_backoff(&path, 10);
    let v = unlock(&path);
    assert_eq!(v.failed_unlocks(), 4);
    v.lock();
    assert_eq!(Vault::peek(&path).unwrap().failed_unlocks, 0);
    let mut v = unlock(&path);
    let report = v.audit_verify().unwrap();
    assert!(report.ok, "{}", report.message);
    let entries = v.audit_entries().unwrap();
    assert!(entries
        .iter()
        .any(|e| e.action == "vault.unlock" && e.detail == "after 4 failed attempt(s)"));
}
