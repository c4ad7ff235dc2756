//! Malformed input never panics: random and mutated encrypted files, signature files and audit exports
//! give errors (a poor man's fuzzer; cargo-fuzz needs a nightly toolchain these machines do not have).

use std::path::Path;

use custos_core::{InitOptions, KeyType, Passphrase, Vault};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, good: &[u8]) -> Vec<u8> {
    let mut b = good.to_vec();
    match rng.below(4) {
        0 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
        }
        1 => b.truncate(rng.below(b.len())),
        2 => {
            let i = rng.below(b.len());
            b.insert(i, rng.next() as u8);
        }
        _ => b = (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
    }
    b
}

fn vault(dir: &Path) -> Vault {
    let opts = InitOptions {
        insecure_test_kdf: true,
        ..InitOptions::default()
    };
    Vault::init(
        &dir.join("v.db"),
        &Passphrase::new("p".into()),
        &opts,
        &mut |_| {},
    )
    .unwrap()
}

#[test]
fn mutated_encrypted_files_and_signatures_are_refused_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = vault(dir.path());
    v.create_key("k", KeyType::Symmetric256, None).unwrap();
    v.create_key("s", KeyType::Ed25519, None).unwrap();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, vec![5u8; 70_000]).unwrap();
    let (enc, sig) = (dir.path().join("enc"), dir.path().join("sig"));
    v.encrypt_file("k", &plain, &enc).unwrap();
    v.sign_file("s", &plain, &sig).unwrap();
    let (good_enc, good_sig) = (std::fs::read(&enc).unwrap(), std::fs::read(&sig).unwrap());

    let mut rng = Rng(0x00c0_ffee);
    let bad = dir.path().join("bad");
    let mut accepted = 0;
    for i in 0..300 {
        let m = mutate(&mut rng, &good_enc);
        std::fs::write(&bad, &m).unwrap();
        let out = dir.path().join(format!("out{i}"));
        if v.decrypt_file(&bad, &out).is_ok() {
            // Only an unchanged file may decrypt.
            assert_eq!(m, good_enc, "a modified file decrypted");
            accepted += 1;
        } else {
            assert!(!out.exists());
        }
        let m = mutate(&mut rng, &good_sig);
        std::fs::write(&bad, &m).unwrap();
        if v.verify_file("s", &plain, &bad).is_ok() {
            // Only JSON formatting may differ: the fields must be the original ones.
            let parsed: serde_json::Value = serde_json::from_slice(&m).unwrap();
            let original: serde_json::Value = serde_json::from_slice(&good_sig).unwrap();
            assert_eq!(parsed, original, "a modified signature verified");
        }
    }
    assert!(accepted <= 1);
}

#[test]
fn mutated_audit_exports_never_verify_and_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = vault(dir.path());
    v.create_key("k", KeyType::Symmetric256, None).unwrap();
    let export = dir.path().join("a.jsonl");
    v.audit_export(&export).unwrap();
    let fp = v.info().unwrap().audit_key_fingerprint;
    let good = std::fs::read(&export).unwrap();
    let mut rng = Rng(0xdead_beef);
    let bad = dir.path().join("bad.jsonl");
    for _ in 0..400 {
        let m = mutate(&mut rng, &good);
        if m == good {
            continue;
        }
        std::fs::write(&bad, &m).unwrap();
        if let Ok(report) = custos_core::verify_export(&bad, Some(&fp)) {
            // A change that keeps the log valid may only be outside the hashed and signed data:
            // JSON whitespace, or the export time in the header.
            if report.ok {
                let parse = |b: &[u8]| -> Vec<serde_json::Value> {
                    String::from_utf8_lossy(b)
                        .lines()
                        .skip(1)
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| serde_json::from_str(l).unwrap())
                        .collect()
                };
                assert_eq!(parse(&m), parse(&good), "a changed log verified");
            }
        }
    }
}
