//! encrypt / decrypt / sign / verify through the CLI.

mod common;

use common::*;
use std::path::Path;

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn encrypt(env: &Env, key: &str, plain: &Path, out: &Path) {
    env.run(["encrypt", "--key", key, &s(plain), &s(out)]).ok();
    assert!(out.is_file(), "encrypt wrote no {}", out.display());
}

fn decrypt(env: &Env, ct: &Path, out: &Path) -> Vec<u8> {
    env.run(["decrypt", &s(ct), &s(out)]).ok();
    std::fs::read(out).expect("decrypt output")
}

/// Changes one byte of the signature proper. A JSON signature file with a hex `signature` field
/// gets one hex digit changed (so it still parses and the cryptographic check is what fails);
/// anything else gets its middle byte flipped.
fn corrupt_signature(bytes: &[u8]) -> Vec<u8> {
    if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(bytes) {
        if let Some(hexsig) = v
            .get("signature")
            .and_then(|x| x.as_str())
            .map(str::to_string)
        {
            let mut h = hexsig.into_bytes();
            let i = h.len() / 2;
            h[i] = if h[i] == b'0' { b'1' } else { b'0' };
            v["signature"] = serde_json::Value::String(String::from_utf8(h).unwrap());
            return serde_json::to_vec(&v).unwrap();
        }
    }
    let mut b = bytes.to_vec();
    let i = b.len() / 2;
    b[i] ^= 0x01;
    b
}

#[test]
fn encrypt_decrypt_round_trip() {
    let env = Env::new();
    env.sh("key create data --type symmetric-256").ok();
    let msg = b"The quick brown fox jumps over the lazy dog. Attack at dawn.";
    let plain = env.write("plain.txt", msg);
    let ct = env.path("plain.txt.custos");
    encrypt(&env, "data", &plain, &ct);

    let c = std::fs::read(&ct).unwrap();
    assert!(
        c.len() > msg.len(),
        "ciphertext not longer than the plaintext (no tag/header?)"
    );
    assert!(
        !contains_bytes(&c, b"Attack at dawn"),
        "plaintext visible in the ciphertext"
    );
    assert!(
        !contains_bytes(&c, b"quick brown"),
        "plaintext visible in the ciphertext"
    );
    assert_eq!(decrypt(&env, &ct, &env.path("out.txt")), msg);

    // two encryptions of the same file differ (fresh nonce)
    let ct2 = env.path("again.custos");
    encrypt(&env, "data", &plain, &ct2);
    assert_ne!(std::fs::read(&ct2).unwrap(), c, "deterministic encryption");

    // the empty file
    let empty = env.write("empty", b"");
    let cte = env.path("empty.custos");
    encrypt(&env, "data", &empty, &cte);
    assert!(decrypt(&env, &cte, &env.path("empty.out")).is_empty());
}

#[test]
fn multi_mib_round_trip() {
    let env = Env::new();
    env.sh("key create bulk --type symmetric-256").ok();
    // 5 MiB + an odd tail, so the last chunk of any chunking is partial
    let data = pseudo_random(5 * 1024 * 1024 + 12_345, 0xC0FFEE);
    let plain = env.write("big.bin", &data);
    let ct = env.path("big.custos");
    encrypt(&env, "bulk", &plain, &ct);
    let clen = std::fs::metadata(&ct).unwrap().len() as usize;
    assert!(
        clen > data.len() && clen < data.len() + data.len() / 50,
        "ciphertext size {clen}"
    );
    let back = decrypt(&env, &ct, &env.path("big.out"));
    assert!(
        back == data,
        "multi-MiB round trip differs (len {} vs {})",
        back.len(),
        data.len()
    );
}

#[test]
fn a_file_encrypted_before_rotation_still_decrypts_after_it() {
    let env = Env::new();
    env.sh("key create rot --type symmetric-256").ok();
    let p1 = env.write("one", b"encrypted under version 1");
    let c1 = env.path("one.custos");
    encrypt(&env, "rot", &p1, &c1);

    env.sh("key rotate rot").ok();
    assert_eq!(state_of(&env.show("rot"), 1), "decrypt-only");
    let p2 = env.write("two", b"encrypted under version 2");
    let c2 = env.path("two.custos");
    encrypt(&env, "rot", &p2, &c2);

    assert_eq!(
        decrypt(&env, &c1, &env.path("one.out")),
        b"encrypted under version 1"
    );
    assert_eq!(
        decrypt(&env, &c2, &env.path("two.out")),
        b"encrypted under version 2"
    );

    // destroying v1 makes only the old file unreadable: proof that the header picks the version
    env.sh("key destroy rot 1").ok();
    let out1 = env.path("one.out2");
    env.run(["decrypt", &s(&c1), &s(&out1)]).err();
    assert!(
        !out1.exists(),
        "a failed decrypt left {} behind",
        out1.display()
    );
    assert_eq!(
        decrypt(&env, &c2, &env.path("two.out2")),
        b"encrypted under version 2"
    );
}

#[test]
fn tampered_ciphertext_is_rejected_and_leaves_no_output() {
    let env = Env::new();
    env.sh("key create t --type symmetric-256").ok();
    let data = pseudo_random(3 * 1024 * 1024 + 7, 42);
    let plain = env.write("p", &data);
    let ct = env.path("p.custos");
    encrypt(&env, "t", &plain, &ct);
    let good = std::fs::read(&ct).unwrap();

    let n = good.len();
    // a byte in the header, in the first chunk, in the middle, and the very last byte (tag)
    for (i, pos) in [5, 100, n / 2, n - 1].into_iter().enumerate() {
        let mut bad = good.clone();
        bad[pos] ^= 0x01;
        let f = env.write(&format!("bad{i}"), &bad);
        let out = env.path(&format!("bad{i}.out"));
        let r = env.run(["decrypt", &s(&f), &s(&out)]);
        assert!(
            !r.success(),
            "decrypt accepted a flipped byte at offset {pos} of {n}"
        );
        r.err();
        assert!(
            !out.exists(),
            "decrypt left {} behind (flip at {pos})",
            out.display()
        );
    }
    // truncations: last byte, half the file, header only
    for (i, len) in [n - 1, n / 2, 16].into_iter().enumerate() {
        let f = env.write(&format!("trunc{i}"), &good[..len]);
        let out = env.path(&format!("trunc{i}.out"));
        let r = env.run(["decrypt", &s(&f), &s(&out)]);
        assert!(
            !r.success(),
            "decrypt accepted a file truncated to {len} of {n} bytes"
        );
        r.err();
        assert!(
            !out.exists(),
            "decrypt left {} behind (truncated to {len})",
            out.display()
        );
    }
    // an appended byte
    let mut longer = good.clone();
    longer.push(0);
    let f = env.write("longer", &longer);
    env.run(["decrypt", &s(&f), &s(&env.path("longer.out"))])
        .err();
    // the untouched file still decrypts
    assert!(decrypt(&env, &ct, &env.path("good.out")) == data);
}

#[test]
fn ciphertext_from_another_vault_does_not_decrypt() {
    let (a, b) = (Env::new(), Env::new());
    a.sh("key create same-name --type symmetric-256").ok();
    b.sh("key create same-name --type symmetric-256").ok();
    let p = a.write("p", b"for vault a only");
    let c = a.path("c");
    encrypt(&a, "same-name", &p, &c);
    let out = b.path("out");
    b.run(["decrypt", &s(&c), &s(&out)]).err();
    assert!(!out.exists());
}

#[test]
fn encrypt_refuses_keys_that_cannot_encrypt() {
    let env = Env::new();
    let p = env.write("p", b"payload");
    for ty in ["ed25519", "x25519"] {
        env.run(["key", "create", ty, "--type", ty]).ok();
        let out = env.path(&format!("{ty}.out"));
        env.run(["encrypt", "--key", ty, &s(&p), &s(&out)]).err();
        assert!(!out.exists(), "encrypt with a {ty} key left output");
    }

    env.sh("key create ret --type symmetric-256").ok();
    env.sh("key set-state ret 1 decrypt-only").ok();
    let out = env.path("dec-only.out");
    env.run(["encrypt", "--key", "ret", &s(&p), &s(&out)]).err();
    assert!(!out.exists(), "encrypt with a decrypt-only key left output");

    env.sh("key destroy ret 1").ok();
    let out = env.path("destroyed.out");
    env.run(["encrypt", "--key", "ret", &s(&p), &s(&out)]).err();
    assert!(!out.exists(), "encrypt with a destroyed key left output");

    env.sh("key create cmp --type symmetric-256").ok();
    env.sh("key set-state cmp 1 compromised").ok();
    env.run(["encrypt", "--key", "cmp", &s(&p), &s(&env.path("cmp.out"))])
        .err();

    env.run(["encrypt", "--key", "nobody", &s(&p), &s(&env.path("x"))])
        .err_containing("no key named");
    env.run([
        "encrypt",
        "--key",
        "ret",
        &s(&env.path("missing-input")),
        &s(&env.path("y")),
    ])
    .err();
}

#[test]
fn sign_and_verify() {
    let env = Env::new();
    env.sh("key create signer --type ed25519").ok();
    env.sh("key create other --type ed25519").ok();
    let doc = env.write("contract.pdf", &pseudo_random(200_000, 7));
    let sig = env.path("contract.sig");
    env.run(["sign", "--key", "signer", &s(&doc), &s(&sig)])
        .ok();
    assert!(
        sig.is_file() && std::fs::metadata(&sig).unwrap().len() >= 64,
        "signature file"
    );

    let ok = env
        .run(["verify", "--key", "signer", &s(&doc), &s(&sig)])
        .ok();
    assert!(
        ok.stdout().contains("signature OK"),
        "stdout: {}",
        ok.stdout()
    );

    // one changed byte in the document
    let mut changed = std::fs::read(&doc).unwrap();
    changed[123_456] ^= 0x80;
    let doc2 = env.write("contract2.pdf", &changed);
    let r = env.run(["verify", "--key", "signer", &s(&doc2), &s(&sig)]);
    assert!(!r.success(), "verify accepted a modified file");
    assert!(!r.stdout().contains("signature OK"), "{}", r.stdout());
    r.err();

    // one changed byte in the signature value itself (not just in its framing)
    let sig2 = env.write("bad.sig", &corrupt_signature(&std::fs::read(&sig).unwrap()));
    assert!(!env
        .run(["verify", "--key", "signer", &s(&doc), &s(&sig2)])
        .success());

    // another key's verdict
    assert!(!env
        .run(["verify", "--key", "other", &s(&doc), &s(&sig)])
        .success());

    // keys that cannot sign
    env.sh("key create sym --type symmetric-256").ok();
    env.sh("key create kx --type x25519").ok();
    for k in ["sym", "kx"] {
        let out = env.path(&format!("{k}.sig"));
        env.run(["sign", "--key", k, &s(&doc), &s(&out)]).err();
        assert!(!out.exists(), "sign with {k} left a signature");
    }
    env.run(["sign", "--key", "ghost", &s(&doc), &s(&env.path("g.sig"))])
        .err_containing("no key named");
}

#[test]
fn a_signature_made_before_rotation_still_verifies_after_it() {
    let env = Env::new();
    env.sh("key create signer --type ed25519").ok();
    let doc = env.write("doc", b"signed under version 1");
    let sig = env.path("doc.sig");
    env.run(["sign", "--key", "signer", &s(&doc), &s(&sig)])
        .ok();
    env.sh("key rotate signer").ok();
    assert_eq!(state_of(&env.show("signer"), 1), "decrypt-only");
    let r = env
        .run(["verify", "--key", "signer", &s(&doc), &s(&sig)])
        .ok();
    assert!(r.stdout().contains("signature OK"), "{}", r.stdout());
    // and a new signature (version 2) verifies too
    let sig2 = env.path("doc.sig2");
    env.run(["sign", "--key", "signer", &s(&doc), &s(&sig2)])
        .ok();
    env.run(["verify", "--key", "signer", &s(&doc), &s(&sig2)])
        .ok();
}
