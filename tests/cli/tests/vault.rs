//! Vault life cycle: init, info, passphrases, KDF, what lands on disk, error contract.

mod common;

use common::*;
use std::collections::BTreeSet;

#[test]
fn init_then_info_has_the_contract_shape() {
    let env = Env::new();
    let info = env.info();

    let path = str_field(&info, "path");
    assert!(
        path.ends_with("vault.db"),
        "path {path:?} should be the --vault path"
    );
    assert!(
        !str_field(&info, "vault_id").is_empty(),
        "vault_id empty: {info}"
    );
    assert!(u64_field(&info, "schema_version") >= 1, "{info}");
    assert_eq!(
        u64_field(&info, "keys"),
        0,
        "a new vault has no keys: {info}"
    );
    let created = rfc3339_utc(str_field(&info, "created"));
    assert!(
        (created - now_secs()).abs() < 300,
        "created is not about now: {info}"
    );
    assert_eq!(
        field(&info, "insecure_test_kdf"),
        &serde_json::json!(true),
        "{info}"
    );
    assert!(
        !str_field(&info, "audit_key_fingerprint").is_empty(),
        "{info}"
    );
    let entries_before = u64_field(&info, "audit_entries");

    let kdf = field(&info, "kdf");
    assert_eq!(str_field(kdf, "algorithm"), "argon2id");
    assert!(u64_field(kdf, "memory_kib") >= 8, "{kdf}");
    assert!(u64_field(kdf, "iterations") >= 1, "{kdf}");
    assert!(u64_field(kdf, "parallelism") >= 1, "{kdf}");
    assert!(
        u64_field(kdf, "salt_len") >= 16,
        "salt shorter than 16 bytes: {kdf}"
    );

    // keys and audit_entries follow what happens in the vault
    env.sh("key create k1 --type symmetric-256").ok();
    env.sh("key create k2 --type ed25519").ok();
    let info2 = env.info();
    assert_eq!(u64_field(&info2, "keys"), 2, "{info2}");
    assert!(
        u64_field(&info2, "audit_entries") >= entries_before + 2,
        "{info} -> {info2}"
    );
    assert_eq!(str_field(&info2, "vault_id"), str_field(&info, "vault_id"));
    assert_eq!(
        str_field(&info2, "audit_key_fingerprint"),
        str_field(&info, "audit_key_fingerprint")
    );
}

#[test]
fn two_vaults_have_distinct_ids() {
    let (a, b) = (Env::new(), Env::new());
    assert_ne!(
        str_field(&a.info(), "vault_id"),
        str_field(&b.info(), "vault_id")
    );
    assert_ne!(
        str_field(&a.info(), "audit_key_fingerprint"),
        str_field(&b.info(), "audit_key_fingerprint")
    );
}

#[test]
fn default_init_calibrates_a_real_kdf() {
    let env = Env::empty();
    env.sh("init --target-ms 100").ok();
    let info = env.info();
    assert_eq!(
        field(&info, "insecure_test_kdf"),
        &serde_json::json!(false),
        "{info}"
    );
    let kdf = field(&info, "kdf");
    assert_eq!(str_field(kdf, "algorithm"), "argon2id");
    let m = u64_field(kdf, "memory_kib");
    let t = u64_field(kdf, "iterations");
    assert!(
        m >= 19456,
        "memory_kib {m} is below OWASP's 19 MiB floor: {kdf}"
    );
    assert!(t >= 2, "iterations {t} < 2: {kdf}");
}

#[test]
fn init_refuses_to_overwrite_an_existing_vault() {
    let env = Env::new();
    env.sh("key create keepme --type symmetric-256").ok();
    let before = std::fs::read(&env.vault).unwrap();
    env.sh("init --insecure-test-kdf").err();
    assert_eq!(
        std::fs::read(&env.vault).unwrap(),
        before,
        "a refused init changed the vault"
    );
    assert_eq!(str_field(&env.list()[0], "name"), "keepme");
}

#[test]
fn vault_files_hold_neither_key_names_nor_the_passphrase() {
    let env = Env::new();
    let names = [
        "zebra-payroll-signing",
        "quokka-backup-wrap",
        "narwhal-exchange",
    ];
    env.run([
        "key",
        "create",
        names[0],
        "--type",
        "ed25519",
        "--rotate-every",
        "90d",
    ])
    .ok();
    env.run(["key", "create", names[1], "--type", "symmetric-256"])
        .ok();
    env.run(["key", "create", names[2], "--type", "x25519"])
        .ok();
    env.run(["key", "rotate", names[1]]).ok();
    let plain = env.write("plain.txt", b"hello");
    let ct = env.path("ct");
    env.run([
        "encrypt",
        "--key",
        names[1],
        &plain.display().to_string(),
        &ct.display().to_string(),
    ])
    .ok();
    // an audited failure with a key name in it
    env.sh("key show no-such-walrus-key").err();
    env.run_with_pass("wrong passphrase here", ["key", "list"])
        .err();

    let mut files = Vec::new();
    for e in std::fs::read_dir(env.dir.path()).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("vault.db") {
            files.push(e.path());
        }
    }
    assert!(
        files.iter().any(|f| f == &env.vault),
        "vault file missing: {files:?}"
    );
    let mut secrets: Vec<&str> = names.to_vec();
    secrets.push(&env.pass);
    secrets.push("correct horse"); // a fragment of the passphrase
    secrets.push("no-such-walrus-key");
    secrets.push("wrong passphrase here"); // a failed attempt must not be recorded either
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for s in &secrets {
            assert!(
                !contains_bytes(&bytes, s.as_bytes()),
                "{} contains {s:?} in clear",
                f.display()
            );
            // also UTF-16LE, as SQLite may store text that way
            let utf16: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
            assert!(
                !contains_bytes(&bytes, &utf16),
                "{} contains {s:?} as UTF-16",
                f.display()
            );
        }
    }
}

#[test]
fn wrong_passphrase_is_refused_and_audited() {
    let env = Env::new();
    env.sh("key create k --type symmetric-256").ok();
    let before = env.audit().len();

    env.run_with_pass("not the passphrase", ["key", "list"])
        .err_containing("wrong passphrase");
    env.run_with_pass("also not it", ["vault", "info"])
        .err_containing("wrong passphrase");

    let audit = env.audit();
    assert!(audit.len() > before, "failed unlock not audited");
    let failed: Vec<&serde_json::Value> = audit
        .iter()
        .filter(|e| e["action"] == "vault.unlock" && e["outcome"] == "failed")
        .collect();
    assert!(
        failed.len() >= 2,
        "expected 2 {{action: unlock, outcome: failed}} entries in {audit:?}"
    );
    // the chain still verifies with the failed attempt in it
    env.sh("audit verify").ok();
}

#[test]
fn passphrase_file_works_instead_of_the_env() {
    let env = Env::empty();
    let pf = env.write("pass.txt", b"file-based passphrase 42\n");
    let mut c = std::process::Command::new(custos_bin());
    c.arg("--vault")
        .arg(&env.vault)
        .arg("--passphrase-file")
        .arg(&pf);
    c.args(["init", "--insecure-test-kdf"])
        .env_remove("CUSTOS_PASSPHRASE");
    c.stdin(std::process::Stdio::null());
    let out = c.output().unwrap();
    assert!(out.status.success(), "init with --passphrase-file: {out:?}");

    // the same passphrase through the env unlocks it (a trailing newline is not part of it)
    env.run_with_pass("file-based passphrase 42", ["key", "list"])
        .ok();
    env.sh("key list").err_containing("wrong passphrase");

    let mut c = std::process::Command::new(custos_bin());
    c.arg("--vault")
        .arg(&env.vault)
        .arg("--passphrase-file")
        .arg(&pf);
    c.args(["vault", "info", "--json"])
        .env_remove("CUSTOS_PASSPHRASE");
    c.stdin(std::process::Stdio::null());
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "vault info with --passphrase-file: {out:?}"
    );
}

#[test]
fn change_passphrase_keeps_keys_and_retires_the_old_one() {
    let mut env = Env::new();
    env.sh("key create s --type symmetric-256").ok();
    let plain = env.write("p", b"secret payload");
    let (p, c) = (
        plain.display().to_string(),
        env.path("c").display().to_string(),
    );
    env.run(["encrypt", "--key", "s", &p, &c]).ok();

    let (mut cmd, _) = env.cmd(["vault", "change-passphrase"]);
    let out = cmd
        .env("CUSTOS_NEW_PASSPHRASE", "a brand new passphrase")
        .output()
        .unwrap();
    assert!(out.status.success(), "change-passphrase: {out:?}");

    env.sh("key list").err_containing("wrong passphrase");
    env.pass = "a brand new passphrase".into();
    assert_eq!(str_field(&env.list()[0], "name"), "s");
    let d = env.path("d").display().to_string();
    env.run(["decrypt", &c, &d]).ok();
    assert_eq!(std::fs::read(&d).unwrap(), b"secret payload");

    // and through --new-passphrase-file
    let npf = env.write("newpass", b"third passphrase\n");
    env.run([
        "vault",
        "change-passphrase",
        "--new-passphrase-file",
        &npf.display().to_string(),
    ])
    .ok();
    env.sh("key list").err_containing("wrong passphrase");
    env.pass = "third passphrase".into();
    env.sh("key show s").ok();
    env.sh("audit verify").ok();
}

#[test]
fn rekdf_recalibrates_and_keeps_data_readable() {
    let env = Env::new();
    env.sh("key create s --type symmetric-256").ok();
    let plain = env.write("p", b"before rekdf");
    let (p, c) = (
        plain.display().to_string(),
        env.path("c").display().to_string(),
    );
    env.run(["encrypt", "--key", "s", &p, &c]).ok();
    let kdf_before = env.info()["kdf"].clone();

    env.sh("vault rekdf --target-ms 100").ok();
    let info = env.info();
    assert_eq!(
        field(&info, "insecure_test_kdf"),
        &serde_json::json!(false),
        "{info}"
    );
    let kdf = field(&info, "kdf");
    assert!(
        u64_field(kdf, "memory_kib") >= 19456,
        "{kdf} (was {kdf_before})"
    );
    assert!(u64_field(kdf, "iterations") >= 2, "{kdf}");

    let d = env.path("d").display().to_string();
    env.run(["decrypt", &c, &d]).ok();
    assert_eq!(std::fs::read(&d).unwrap(), b"before rekdf");
    env.run_with_pass("nope", ["key", "list"])
        .err_containing("wrong passphrase");
}

#[test]
fn bench_kdf_reports_the_vault_parameters() {
    let env = Env::new();
    let info = env.info();
    let b = env.json(["vault", "bench-kdf"]);
    for k in ["memory_kib", "iterations", "parallelism"] {
        assert_eq!(
            u64_field(&b, k),
            u64_field(&info["kdf"], k),
            "{k}: {b} vs {info}"
        );
    }
    for k in ["seconds", "seconds_p1"] {
        let s = field(&b, k)
            .as_f64()
            .unwrap_or_else(|| panic!("{k} not a number: {b}"));
        assert!(
            s > 0.0 && s < 60.0,
            "{k} = {s} is not a plausible time: {b}"
        );
    }
}

#[test]
fn errors_are_one_line_and_name_the_problem() {
    let env = Env::new();
    env.sh("key show ghost").err_containing("no key named");
    env.sh("key rotate ghost").err_containing("no key named");
    env.sh("key set-state ghost 1 compromised")
        .err_containing("no key named");
    env.sh("key destroy ghost 1").err_containing("no key named");
    env.sh("key policy ghost --no-rotation")
        .err_containing("no key named");
    env.sh("key create t --type rsa-1024").usage_err();
    env.sh("key create t --type symmetric-256 --rotate-every soon")
        .usage_err();
    assert!(env.list().is_empty(), "a refused create left a key behind");

    // a vault that does not exist is an error, not a silent init
    let other = Env::empty();
    other.sh("key list").err();
    assert!(!other.vault.exists(), "key list created a vault");
}

#[test]
fn every_documented_subcommand_exists() {
    // --help of each subcommand must succeed: catches a renamed or missing command early
    let env = Env::empty();
    let cmds: &[&[&str]] = &[
        &["init"],
        &["vault", "info"],
        &["vault", "change-passphrase"],
        &["vault", "rekdf"],
        &["vault", "bench-kdf"],
        &["key", "create"],
        &["key", "list"],
        &["key", "show"],
        &["key", "rotate"],
        &["key", "set-state"],
        &["key", "destroy"],
        &["key", "policy"],
        &["encrypt"],
        &["decrypt"],
        &["sign"],
        &["verify"],
        &["audit", "verify"],
        &["audit", "export"],
        &["audit", "list"],
    ];
    let mut missing = BTreeSet::new();
    for c in cmds {
        let mut a: Vec<&str> = c.to_vec();
        a.push("--help");
        if !env.run(&a).success() {
            missing.insert(c.join(" "));
        }
    }
    assert!(
        missing.is_empty(),
        "subcommands without a working --help: {missing:?}"
    );
}
