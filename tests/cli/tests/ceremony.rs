//! Ceremonies through the `custos` binary with demo keys: a 3-of-5 escrow (screen and card media),
//! recovery from every 3-subset and refusal of 2, bad shares named (a wrong word by position, a
//! duplicate, a share of another ceremony), rekey killing the old shares, drills that unlock nothing,
//! and transcripts that fail verification after a one-byte change.

mod common;

use std::path::{Path, PathBuf};

use common::demo::*;
use common::*;
use serde_json::Value;

const HOLDERS: [&str; 5] = ["bob", "carol", "dave", "erin", "frank"];

/// A vault with officer olivia, the five holders and witness wendy (custodians), each with a demo
/// FIDO2 key.
fn ceremony_team() -> Env {
    let env = Env::new();
    run(
        &env,
        &["key", "create", "payroll", "--type", "symmetric-256"],
    )
    .ok();
    run(&env, &["custodian", "add", "olivia", "--role", "officer"]).ok();
    run(
        &env,
        &["--demo", "custodian", "enroll", "olivia", "--fido2"],
    )
    .ok();
    for name in HOLDERS.iter().chain(&["wendy"]) {
        as_(
            &env,
            "olivia",
            &["custodian", "add", name, "--role", "custodian"],
        )
        .ok();
        as_(&env, name, &["custodian", "enroll", name, "--fido2"]).ok();
    }
    env
}

/// The words of a printed share card.
fn card_words(html: &str) -> String {
    let words: Vec<&str> = html
        .split("<li><b>")
        .skip(1)
        .filter_map(|li| li.split_once("</b> ")?.1.split_once("</li>"))
        .map(|(w, _)| w)
        .collect();
    assert_eq!(words.len(), 34, "a card holds 34 words: {words:?}");
    words.join(" ")
}

struct Escrow {
    ceremony: String,
    /// Share words by holder, in the order of HOLDERS.
    words: Vec<(String, String)>,
    out: PathBuf,
}

/// 3-of-5 among HOLDERS (dave on a card), witness wendy, administered by olivia.
fn escrow(env: &Env, out: &str, args: &[&str]) -> Escrow {
    let dir = env.path(out);
    std::fs::create_dir_all(&dir).expect("out dir");
    let mut a = vec!["ceremony"];
    a.extend_from_slice(args);
    let dir_s = dir.to_string_lossy().into_owned();
    a.extend_from_slice(&["--witness", "wendy", "--out-dir", &dir_s, "--json"]);
    let r = as_(env, "olivia", &a).ok();
    let v = r.json();
    let ceremony = str_field(&v, "ceremony").to_string();
    let mut words = Vec::new();
    for s in as_array(field(&v, "shares")) {
        words.push((
            str_field(s, "custodian").to_string(),
            str_field(s, "words").to_string(),
        ));
    }
    for entry in std::fs::read_dir(&dir).expect("read out dir") {
        let p = entry.expect("entry").path();
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if let Some(rest) = name.strip_suffix(".html") {
            let holder = rest.rsplit('-').next().unwrap_or_default().to_string();
            let html = std::fs::read_to_string(&p).expect("card");
            words.push((holder, card_words(&html)));
        }
    }
    words.sort_by_key(|(h, _)| HOLDERS.iter().position(|x| x == h));
    Escrow {
        ceremony,
        words,
        out: dir,
    }
}

fn escrow_3_of_5(env: &Env, out: &str) -> Escrow {
    escrow(
        env,
        out,
        &[
            "escrow",
            "--threshold",
            "3",
            "--custodian",
            "bob",
            "--custodian",
            "carol:screen",
            "--custodian",
            "dave:card",
            "--custodian",
            "erin",
            "--custodian",
            "frank",
        ],
    )
}

fn recover_args<'a>(shares: &'a [&'a str], pass_file: &'a str) -> Vec<&'a str> {
    let mut a = vec!["ceremony", "recover"];
    for s in shares {
        a.extend_from_slice(&["--share-words", s]);
    }
    a.extend_from_slice(&["--new-passphrase-file", pass_file]);
    a
}

/// `ceremony recover` with `shares` and a new passphrase; no passphrase in the environment.
fn recover(env: &Env, shares: &[&str], new_pass: &str) -> Run {
    let f = env.write("new-pass.txt", format!("{new_pass}\n").as_bytes());
    let f = f.to_string_lossy().into_owned();
    run_full(env, "", PIN, &recover_args(shares, &f), DEADLINE)
}

/// A refusal that came after steps of the script were shown: exit 1, no panic, the last stderr line
/// is the one `error:` line. Returns it, lowercased.
fn refused_after_steps(r: Run, fragment: &str) -> String {
    let d = describe(&r);
    assert_eq!(r.code(), Some(1), "expected exit 1:\n{d}");
    let stderr = r.stderr();
    assert!(!stderr.contains("panicked"), "panic:\n{d}");
    let last = stderr
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        last.starts_with("error: ") && last.contains(fragment),
        "{d}"
    );
    last
}

fn opens_with(env: &Env, pass: &str) -> bool {
    run_full(env, pass, PIN, &["key", "list"], DEADLINE).success()
}

fn status(env: &Env) -> Value {
    json_of(env, &["ceremony", "list"])
}

#[test]
fn escrow_3_of_5_every_3_shares_recover_and_2_are_refused() {
    let env = ceremony_team();
    let e = escrow_3_of_5(&env, "out");
    assert_eq!(e.words.len(), 5, "four screen shares and one card");
    assert_eq!(e.ceremony.len(), 16);
    let card = std::fs::read_dir(&e.out)
        .expect("out")
        .filter_map(|d| d.ok())
        .find(|d| d.file_name().to_string_lossy().ends_with("-dave.html"))
        .expect("dave's share card");
    let html = std::fs::read_to_string(card.path()).expect("card");
    for needle in [
        "<svg",
        &e.ceremony,
        "dave",
        "3-of-5",
        "Tamper-evident bag serial",
        "Custody log",
    ] {
        assert!(html.contains(needle), "the card should show {needle:?}");
    }
    assert!(
        e.out
            .join(format!("{}-transcript.json", e.ceremony))
            .is_file(),
        "the transcript is written next to the cards"
    );

    let s = status(&env);
    assert_eq!(s["threshold"], 3);
    assert_eq!(s["total"], 5);
    let shares = as_array(field(&s, "shares"));
    assert_eq!(shares.len(), 5);
    assert!(shares.iter().all(|sh| sh["status"] == "never"), "{s}");

    // Every 3-subset recovers; each recovery sets a new passphrase.
    let mut n = 0;
    for a in 0..5 {
        for b in a + 1..5 {
            for c in b + 1..5 {
                n += 1;
                let pass = format!("recovered passphrase number {n}");
                let picked = [&e.words[a].1[..], &e.words[b].1[..], &e.words[c].1[..]];
                let r = recover(&env, &picked, &pass).ok();
                assert!(r.stdout().contains("recovered"), "{}", r.stdout());
                assert!(opens_with(&env, &pass), "subset {a},{b},{c}");
            }
        }
    }
    assert_eq!(n, 10);
    let last = "recovered passphrase number 10";
    assert!(!opens_with(&env, &env.pass), "the old passphrase is gone");

    // Each recovery was confirmed by the touch of each share's holder, written to its audit entry.
    let log = run_full(&env, last, PIN, &["audit", "list", "--json"], DEADLINE)
        .ok()
        .json();
    let recoveries: Vec<&Value> = as_array(&log)
        .iter()
        .filter(|e| e["action"] == "ceremony.recover" && e["outcome"] == "ok")
        .collect();
    assert_eq!(recoveries.len(), 10);
    let d = str_field(recoveries[9], "detail");
    for (i, holder) in [(3, "dave"), (4, "erin"), (5, "frank")] {
        assert!(
            d.contains(&format!("share #{i} by {holder} [cred")) && d.contains("UP+UV"),
            "the last recovery (shares 3, 4, 5) names each holder's touch: {d}"
        );
    }

    // A holder who does not confirm (wrong PIN) stops the recovery: nothing changes.
    let f = env.write("other-pass.txt", b"not set by a refused recovery\n");
    let err = run_full(
        &env,
        "",
        "99999999",
        &recover_args(
            &[&e.words[0].1, &e.words[1].1, &e.words[2].1],
            &f.to_string_lossy(),
        ),
        DEADLINE,
    );
    let err = refused_after_steps(err, "wrong pin");
    assert!(err.contains("wrong pin"), "{err}");
    assert!(opens_with(&env, last));
    assert!(!opens_with(&env, "not set by a refused recovery"));

    // Two shares are refused and change nothing.
    let err = recover(&env, &[&e.words[0].1, &e.words[4].1], "never set").err();
    assert!(err.contains("too few shares: 2 of the 3"), "{err}");
    assert!(opens_with(&env, last));
    assert!(!opens_with(&env, "never set"));
    // The keys survived every recovery.
    let keys = run_full(&env, last, PIN, &["key", "list", "--json"], DEADLINE)
        .ok()
        .json();
    assert_eq!(as_array(&keys)[0]["name"], "payroll");
}

#[test]
fn a_wrong_word_a_duplicate_and_a_share_of_another_ceremony_are_named() {
    let env = ceremony_team();
    let e = escrow_3_of_5(&env, "out");
    let (s1, s2, s3) = (&e.words[0].1, &e.words[1].1, &e.words[2].1);

    // Word 7 of the second share mistyped.
    let mut w: Vec<&str> = s2.split_whitespace().collect();
    let right = w[6];
    let wrong = if right == "abandon" {
        "ability"
    } else {
        "abandon"
    };
    w[6] = wrong;
    let typo = w.join(" ");
    let err = recover(&env, &[s1, &typo, s3], "new one").err();
    assert!(err.contains("share 2"), "names the share: {err}");
    assert!(err.contains("word 7"), "names the word: {err}");
    assert!(
        err.contains(right),
        "and the word that belongs there: {err}"
    );

    // A word not in the list.
    let mut w: Vec<&str> = s3.split_whitespace().collect();
    w[0] = "custos";
    let unknown = w.join(" ");
    let err = recover(&env, &[s1, s2, &unknown], "new one").err();
    assert!(err.contains("share 3") && err.contains("word 1"), "{err}");

    // The same share twice.
    let err = recover(&env, &[s1, s2, s1], "new one").err();
    assert!(err.contains("given twice"), "{err}");
    assert!(err.contains(&format!("#{}", 1)), "{err}");

    // A share of another vault's ceremony.
    let other = ceremony_team();
    let o = escrow_3_of_5(&other, "out");
    let err = recover(&env, &[s1, s2, &o.words[2].1], "new one").err();
    assert!(err.contains("another ceremony"), "{err}");
    assert!(err.contains(&o.ceremony), "names the ceremony: {err}");

    // Nothing changed.
    assert!(opens_with(&env, &env.pass));
    assert!(!opens_with(&env, "new one"));
    recover(&env, &[s1, s2, s3], "new one").ok();
    assert!(opens_with(&env, "new one"));
}

#[test]
fn rekey_kills_the_old_shares_and_a_drill_unlocks_nothing() {
    let env = ceremony_team();
    let old = escrow_3_of_5(&env, "old");

    // A drill checks one share alone; the vault's state stays as it was.
    let r = json_of(
        &env,
        &["ceremony", "drill", "--share-words", &old.words[1].1],
    );
    assert_eq!(r["custodian"], "carol", "{r}");
    let s = status(&env);
    for sh in as_array(field(&s, "shares")) {
        let want = if sh["custodian"] == "carol" {
            "verified"
        } else {
            "never"
        };
        assert_eq!(sh["status"], want, "{s}");
    }
    let mut bad: Vec<&str> = old.words[0].1.split_whitespace().collect();
    bad.swap(3, 4);
    if bad[3] != bad[4] {
        let err = run(
            &env,
            &["ceremony", "drill", "--share-words", &bad.join(" ")],
        )
        .err();
        assert!(err.contains("do not check"), "{err}");
    }

    // The default drill policy: 180 days after the escrow (never drilled) or after the drill.
    assert_eq!(s["drill_every_days"], 180, "{s}");
    assert_eq!(s["overdue"], 0, "{s}");

    // Rekey 2-of-3, with a drill every 30 days.
    let new = escrow(
        &env,
        "new",
        &[
            "rekey",
            "--threshold",
            "2",
            "--custodian",
            "bob",
            "--custodian",
            "carol",
            "--custodian",
            "erin",
            "--drill-every",
            "30",
        ],
    );
    assert_ne!(new.ceremony, old.ceremony);
    let s = status(&env);
    assert_eq!(
        (s["threshold"].clone(), s["total"].clone()),
        (2.into(), 3.into())
    );
    assert_eq!(s["drill_every_days"], 30, "{s}");
    let created = str_field(&s, "created").to_string();
    let due = str_field(&as_array(field(&s, "shares"))[0], "due").to_string();
    assert_eq!(
        unix_seconds(&due) - unix_seconds(&created),
        30 * 86_400,
        "due 30 days after the escrow: {s}"
    );
    let text = run(&env, &["ceremony", "list"]).ok();
    assert!(
        text.stdout()
            .contains("each share drilled at least every 30 days"),
        "{}",
        text.stdout()
    );

    let olds: Vec<&str> = old.words.iter().map(|(_, w)| w.as_str()).collect();
    let err = recover(&env, &olds[..3], "from old shares").err();
    assert!(
        err.contains("another ceremony"),
        "old shares are dead: {err}"
    );
    let err = run(&env, &["ceremony", "drill", "--share-words", olds[0]]).err();
    assert!(err.contains("another ceremony"), "{err}");
    // Naming the escrow: the old one is refused as such, the current one drills.
    let err = run(&env, &["ceremony", "drill", "--escrow", &old.ceremony]).err();
    assert!(err.contains("not the vault's current escrow"), "{err}");
    let r = json_of(
        &env,
        &[
            "ceremony",
            "drill",
            "--escrow",
            &new.ceremony,
            "--share-words",
            &new.words[1].1,
        ],
    );
    assert_eq!(r["status"], "verified", "{r}");
    assert!(!opens_with(&env, "from old shares"));

    // Another rekey without --drill-every keeps the 30-day policy.
    let newer = escrow(
        &env,
        "newer",
        &[
            "rekey",
            "--threshold",
            "2",
            "--custodian",
            "bob",
            "--custodian",
            "carol",
        ],
    );
    assert_eq!(status(&env)["drill_every_days"], 30);
    let err = recover(&env, &[&new.words[0].1, &new.words[2].1], "from new shares").err();
    assert!(err.contains("another ceremony"), "{err}");
    recover(
        &env,
        &[&newer.words[0].1, &newer.words[1].1],
        "from new shares",
    )
    .ok();
    assert!(opens_with(&env, "from new shares"));
}

/// Seconds since 1970 of an RFC 3339 UTC time ("2026-12-04T10:00:00Z"), for date arithmetic in
/// assertions (days from the civil date, as in Howard Hinnant's algorithm).
fn unix_seconds(t: &str) -> i64 {
    let n = |a: usize, b: usize| t[a..b].parse::<i64>().expect("a number");
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19)
}

#[test]
fn unix_seconds_matches_known_dates() {
    assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), 0);
    assert_eq!(unix_seconds("2026-12-03T00:00:00Z"), 1_796_256_000);
    assert_eq!(unix_seconds("2000-03-01T01:02:03Z"), 951_872_523);
}

fn write_json(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(v).expect("json")).expect("write");
}

#[test]
fn a_transcript_verifies_offline_and_one_changed_byte_fails() {
    let env = ceremony_team();
    let e = escrow_3_of_5(&env, "out");

    // The witness records the hand-out: dave's card went into bag TEB-0042, and a deviation.
    let handout = |args: &[&str]| {
        let mut a = vec!["ceremony", "handout", &e.ceremony];
        a.extend_from_slice(args);
        as_(&env, "wendy", &a)
    };
    refused(handout(&["--bag-serial", "bob=TEB-1"]), "not a card");
    refused(handout(&["--bag-serial", "dave=<b>"]), "bag serial");
    refused(
        as_(
            &env,
            "olivia",
            &[
                "ceremony",
                "handout",
                &e.ceremony,
                "--note",
                "x",
                "--bag-serial",
                "zed=1",
            ],
        ),
        "zed holds no share",
    );
    // In the CLI a screen holder proves they wrote their words down by typing them back in a drill.
    let r = json_of(&env, &["ceremony", "drill", "--share-words", &e.words[0].1]);
    assert_eq!(r["custodian"], "bob", "{r}");
    let r = handout(&[
        "--bag-serial",
        "dave=TEB-0042",
        "--note",
        "frank arrived after step 4; the witness read him the script",
    ])
    .ok();
    assert!(r.stdout().contains("recorded"), "{}", r.stdout());
    refused(
        handout(&["--bag-serial", "dave=TEB-0043"]),
        "already recorded",
    );
    // A deviation the witness finds later, noted against the step it concerns (with a touch).
    let deviation = |step: &str, note: &str| {
        as_(
            &env,
            "wendy",
            &[
                "ceremony",
                "deviation",
                &e.ceremony,
                "--step",
                step,
                "--note",
                note,
            ],
        )
    };
    refused(deviation("42", "late"), "has no step 42");
    refused(deviation("3", "  "), "note is empty");
    let r = deviation("5", "carol's words were read aloud by mistake").ok();
    assert!(
        r.stdout().contains("deviation at step 5") && r.stdout().contains("11 steps"),
        "{}",
        r.stdout()
    );

    let t_path = env.path("t.json");
    let t_s = t_path.to_string_lossy().into_owned();
    run(
        &env,
        &["ceremony", "transcript", &e.ceremony, "--out", &t_s],
    )
    .ok();
    let t: Value =
        serde_json::from_str(&std::fs::read_to_string(&t_path).expect("t")).expect("json");

    // A transcript changed in the vault file is never extended and signed again.
    {
        let db = rusqlite::Connection::open(&env.vault).expect("open the vault file");
        let n = db
            .execute(
                "UPDATE ceremonies SET transcript = replace(transcript, 'frank arrived', 'frank arrives')",
                [],
            )
            .expect("edit");
        assert_eq!(n, 1);
    }
    refused(deviation("5", "more"), "outside custos");
    {
        let db = rusqlite::Connection::open(&env.vault).expect("open the vault file");
        db.execute(
            "UPDATE ceremonies SET transcript = replace(transcript, 'frank arrives', 'frank arrived')",
            [],
        )
        .expect("restore");
    }
    let steps = as_array(field(&t, "steps"));
    // open, witness, split, five hand-outs, close, the witness's hand-out record, a deviation.
    assert_eq!(steps.len(), 11, "{t:#}");
    let touched = steps.iter().filter(|s| !s["presence"].is_null()).count();
    assert_eq!(touched, 10, "each person's step carries their touch: {t:#}");
    assert_eq!(
        (steps[10]["action"].clone(), steps[10]["actor"].clone()),
        (Value::from("deviation"), Value::from("wendy"))
    );
    assert_eq!(
        str_field(&steps[10], "detail"),
        "at step 5 (hand-out, carol): carol's words were read aloud by mistake"
    );
    let last = &steps[9];
    assert_eq!(last["action"], "hand-out-finished");
    assert_eq!(last["actor"], "wendy");
    let d = str_field(last, "detail");
    assert!(
        d.contains("share #3 (dave) on a printed card, sealed in bag TEB-0042"),
        "{d}"
    );
    assert!(
        d.contains("share #1 (bob) confirmed: the words were typed back"),
        "{d}"
    );
    assert!(d.contains("share #2 (carol) NOT confirmed"), "{d}");
    assert!(d.contains("deviations: frank arrived after step 4"), "{d}");

    // Verification needs no vault and no passphrase.
    let fp = str_field(&env.info(), "audit_key_fingerprint").to_string();
    let bare = Env::empty();
    let ok = bare
        .run(["ceremony", "verify-transcript", &t_s, "--expect-key", &fp])
        .ok();
    assert!(ok.stdout().contains("transcript OK"), "{}", ok.stdout());
    let err = bare
        .run([
            "ceremony",
            "verify-transcript",
            &t_s,
            "--expect-key",
            "0000",
        ])
        .err();
    assert!(err.contains("transcript"), "{err}");

    // One byte of one step's detail.
    let mut altered = t.clone();
    let d = altered["steps"][4]["detail"]
        .as_str()
        .expect("detail")
        .to_string();
    let mut bytes = d.into_bytes();
    bytes[0] ^= 0x01;
    altered["steps"][4]["detail"] = Value::String(String::from_utf8(bytes).expect("ascii"));
    let p = env.path("altered.json");
    write_json(&p, &altered);
    let err = bare
        .run(["ceremony", "verify-transcript", &p.to_string_lossy()])
        .err();
    assert!(
        err.contains("step 5") || err.contains("was altered"),
        "{err}"
    );

    // A step removed, and a forged head.
    let mut cut = t.clone();
    cut["steps"].as_array_mut().expect("steps").pop();
    write_json(&p, &cut);
    let err = bare
        .run(["ceremony", "verify-transcript", &p.to_string_lossy()])
        .err();
    assert!(err.contains("head"), "{err}");
    let mut forged = t.clone();
    let sig = str_field(&t, "signature").to_string();
    let flipped = format!(
        "{}{}",
        if sig.starts_with('0') { "1" } else { "0" },
        &sig[1..]
    );
    forged["signature"] = Value::String(flipped);
    write_json(&p, &forged);
    let err = bare
        .run(["ceremony", "verify-transcript", &p.to_string_lossy()])
        .err();
    assert!(err.contains("signature"), "{err}");
}

#[test]
fn a_ceremony_with_a_bad_plan_is_refused_before_anyone_touches() {
    let env = ceremony_team();
    let before = as_array(&json_of(&env, &["audit", "list"])).len();
    // Threshold, second holder (bob is the first), what the refusal names.
    for (threshold, second, fragment) in [
        ("1", "carol", "not allowed"),
        ("3", "carol", "not allowed"),
        ("2", "bob", "twice"),
        ("2", "wendy", "witness"),
        ("2", "carol:pigeon", "unknown medium"),
    ] {
        let a = [
            "ceremony",
            "escrow",
            "--threshold",
            threshold,
            "--custodian",
            "bob",
            "--custodian",
            second,
            "--witness",
            "wendy",
            "--out-dir",
            ".",
        ];
        let err = refused(as_(&env, "olivia", &a), fragment);
        assert!(!err.contains("panicked"), "{err}");
    }
    // A drill policy must be a policy.
    for days in ["0", "3651"] {
        refused(
            as_(
                &env,
                "olivia",
                &[
                    "ceremony",
                    "escrow",
                    "--threshold",
                    "2",
                    "--custodian",
                    "bob",
                    "--custodian",
                    "carol",
                    "--witness",
                    "wendy",
                    "--drill-every",
                    days,
                ],
            ),
            "1 to 3650 days",
        );
    }
    // A holder cannot run the ceremony.
    refused(
        as_(
            &env,
            "bob",
            &[
                "ceremony",
                "escrow",
                "--threshold",
                "2",
                "--custodian",
                "carol",
                "--custodian",
                "dave",
                "--witness",
                "wendy",
            ],
        ),
        "officer",
    );
    assert!(status(&env).is_null(), "no escrow was made");
    let after = as_array(&json_of(&env, &["audit", "list"])).len();
    assert!(after >= before, "refusals are logged, nothing else");
}

/// The share files an escrow wrote, by holder.
fn share_files(e: &Escrow) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(&e.out)
        .expect("out")
        .filter_map(|d| d.ok())
        .map(|d| d.path())
        .filter(|p| p.extension().is_some_and(|x| x == "age"))
        .map(|p| {
            let stem = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (stem.rsplit('-').next().unwrap_or_default().to_string(), p)
        })
        .collect();
    out.sort();
    out
}

/// The stock `age` CLI, given the passphrase on a pseudo-terminal (it reads passphrases from the
/// terminal only). `None` when `age` or `script` is not installed.
fn stock_age_decrypt(file: &Path, passphrase: &str) -> Option<std::process::Output> {
    for tool in ["age", "script"] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            eprintln!("skipped the stock age check: {tool} is not installed (scripts/setup-debian.sh installs it)");
            return None;
        }
    }
    let mut child = std::process::Command::new("script")
        .args(["-qec", &format!("age -d '{}'", file.display()), "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{passphrase}\n").as_bytes())
        .expect("passphrase");
    Some(child.wait_with_output().expect("age"))
}

#[test]
fn share_files_open_with_the_holders_yubikey_or_passphrase_and_recover() {
    let env = ceremony_team();
    as_(&env, "bob", &["custodian", "enroll", "bob", "--piv"]).ok();

    // frank has no PIV key: a `file` share for him is refused before anyone touches.
    refused(
        as_(
            &env,
            "olivia",
            &[
                "ceremony",
                "escrow",
                "--threshold",
                "2",
                "--custodian",
                "bob:file",
                "--custodian",
                "frank:file",
                "--witness",
                "wendy",
                "--out-dir",
                ".",
            ],
        ),
        "frank has no yubikey piv key enrolled",
    );
    assert!(status(&env).is_null());

    let carol_pass = "carol chooses a long passphrase";
    let pass_file = env.write("carol-pass.txt", format!("{carol_pass}\n").as_bytes());
    let arg = format!("carol={}", pass_file.display());
    let e = escrow(
        &env,
        "out",
        &[
            "escrow",
            "--threshold",
            "3",
            "--custodian",
            "bob:file",
            "--custodian",
            "carol:passphrase-file",
            "--custodian",
            "dave:card",
            "--custodian",
            "erin",
            "--custodian",
            "frank",
            "--share-passphrase-file",
            &arg,
        ],
    );
    let files = share_files(&e);
    assert_eq!(
        files.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>(),
        vec!["bob", "carol"],
        "{files:?}"
    );
    for (holder, f) in &files {
        let text = std::fs::read_to_string(f).expect("armored");
        assert!(
            text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
            "{text}"
        );
        // Armored ciphertext: no label of the plaintext (a short name may occur in base64 by chance).
        assert!(
            !text.contains(&format!("custodian: {holder}")),
            "nothing readable in the file"
        );
    }
    let (bob_file, carol_file) = (files[0].1.to_string_lossy(), files[1].1.to_string_lossy());
    let pass_s = pass_file.to_string_lossy();
    let erin = e
        .words
        .iter()
        .find(|(h, _)| h == "erin")
        .expect("erin")
        .1
        .clone();

    // A drill with bob's file and his demo PIV key (the PIN from CUSTOS_PIN).
    let r = json_of(
        &env,
        &["--demo", "ceremony", "drill", "--share-file", &bob_file],
    );
    assert_eq!(r["custodian"], "bob", "{r}");

    // A wrong passphrase, a wrong PIN, a damaged file: each named, nothing changed.
    let wrong = env.write("wrong-pass.txt", b"not carol's passphrase\n");
    let wrong_s = wrong.to_string_lossy();
    // bob's share file (or a stand-in), carol's file with a passphrase file, erin's words.
    let with = |bob: &str, carol_pass: &str, pin: &str| {
        recover_with(
            &env,
            pin,
            &[
                "--share-file",
                bob,
                "--share-file",
                &carol_file,
                "--share-passphrase-file",
                carol_pass,
                "--share-words",
                &erin,
            ],
        )
    };
    let err = with(&bob_file, &wrong_s, PIN).err();
    assert!(
        err.contains(&carol_file.to_lowercase()) && err.contains("wrong passphrase"),
        "{err}"
    );
    let err = with(&bob_file, &pass_s, "11112222").err();
    assert!(err.contains("wrong pin"), "{err}");
    let mut damaged = std::fs::read(&files[0].1).expect("bob's file");
    let at = damaged.len() / 2;
    damaged[at] = if damaged[at] == b'A' { b'B' } else { b'A' };
    let damaged = env.write("damaged.age", &damaged);
    let err = with(&damaged.to_string_lossy(), &pass_s, PIN).err();
    assert!(err.contains("damaged.age"), "names the file: {err}");
    assert!(opens_with(&env, &env.pass));

    // Bob's file, carol's file and erin's words recover the vault.
    let r = with(&bob_file, &pass_s, PIN).ok();
    assert!(r.stdout().contains("recovered"), "{}", r.stdout());
    assert!(opens_with(&env, "recovered from files"));

    // Carol's file is a standard age file: the stock `age` opens it with her passphrase, and the
    // words inside are her share.
    if let Some(out) = stock_age_decrypt(&files[1].1, carol_pass) {
        let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
        assert!(
            out.status.success(),
            "age -d failed: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("custodian: carol"), "{text}");
        let words = text
            .lines()
            .find_map(|l| l.strip_prefix("words: "))
            .unwrap_or_else(|| panic!("no words in {text}"))
            .trim()
            .to_string();
        let r = run_full(
            &env,
            "recovered from files",
            PIN,
            &["ceremony", "drill", "--share-words", &words, "--json"],
            DEADLINE,
        )
        .ok()
        .json();
        assert_eq!(r["custodian"], "carol", "{r}");
    }
}

/// `--demo ceremony recover ARGS` with PIN `pin` for the demo PIV keys; new passphrase
/// "recovered from files".
fn recover_with(env: &Env, pin: &str, args: &[&str]) -> Run {
    let f = env.write("new-pass.txt", b"recovered from files\n");
    let f = f.to_string_lossy().into_owned();
    let mut a = vec!["--demo", "ceremony", "recover"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--new-passphrase-file", &f]);
    run_full(env, "", pin, &a, DEADLINE)
}

/// A picture of `text` as a QR code, as a scanner would save it: PNG, or JPEG (lossy).
fn qr_picture(env: &Env, name: &str, text: &str) -> PathBuf {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .expect("qr");
    let img = code
        .render::<image::Luma<u8>>()
        .min_dimensions(400, 400)
        .build();
    let path = env.path(name);
    img.save(&path).expect("save picture");
    path
}

#[test]
fn shares_read_from_pictures_of_their_qr_codes_recover_and_a_bad_picture_is_named() {
    let env = ceremony_team();
    let dir = env.path("out");
    std::fs::create_dir_all(&dir).expect("out");
    let dir_s = dir.to_string_lossy().into_owned();
    let v = as_(
        &env,
        "olivia",
        &[
            "ceremony",
            "escrow",
            "--threshold",
            "3",
            "--custodian",
            "bob",
            "--custodian",
            "carol",
            "--custodian",
            "erin",
            "--witness",
            "wendy",
            "--out-dir",
            &dir_s,
            "--json",
        ],
    )
    .ok()
    .json();
    let shares = as_array(field(&v, "shares"));
    let qr = |i: usize| str_field(&shares[i], "qr_text").to_string();
    let words = |i: usize| str_field(&shares[i], "words").to_string();
    let bob = qr_picture(&env, "bob.png", &qr(0));
    let carol = qr_picture(&env, "carol.jpg", &qr(1));

    // A drill from a picture.
    let r = json_of(
        &env,
        &["ceremony", "drill", "--share-qr", &bob.to_string_lossy()],
    );
    assert_eq!(r["custodian"], "bob", "{r}");

    // Pictures that hold no share: each named.
    let blank = env.path("blank.png");
    image::GrayImage::from_pixel(300, 300, image::Luma([255]))
        .save(&blank)
        .expect("blank");
    let url = qr_picture(&env, "url.png", "https://example.com/not-a-share");
    let not_image = env.write("notes.png", b"these are not pixels");
    for (pic, fragment) in [
        (&blank, "no qr code found"),
        (&url, "does not hold a custos share"),
        (&not_image, "cannot be read"),
    ] {
        let f = env.write("p.txt", b"from pictures\n");
        let err = run_full(
            &env,
            "",
            PIN,
            &[
                "ceremony",
                "recover",
                "--share-qr",
                &bob.to_string_lossy(),
                "--share-qr",
                &pic.to_string_lossy(),
                "--share-words",
                &words(2),
                "--new-passphrase-file",
                &f.to_string_lossy(),
            ],
            DEADLINE,
        )
        .err();
        assert!(
            err.contains(&pic.to_string_lossy().to_lowercase()),
            "names the picture: {err}"
        );
        assert!(err.contains(fragment), "{fragment}: {err}");
    }
    assert!(opens_with(&env, &env.pass));

    // bob's PNG, carol's JPEG and erin's words.
    let f = env.write("p.txt", b"from pictures\n");
    run_full(
        &env,
        "",
        PIN,
        &[
            "ceremony",
            "recover",
            "--share-qr",
            &bob.to_string_lossy(),
            "--share-qr",
            &carol.to_string_lossy(),
            "--share-words",
            &words(2),
            "--new-passphrase-file",
            &f.to_string_lossy(),
        ],
        DEADLINE,
    )
    .ok();
    assert!(opens_with(&env, "from pictures"));
}

/// The words of one share as `--type-back` shows them: rows of "N word" cells.
fn shown_words(rows: &[String]) -> Vec<String> {
    rows.iter()
        .flat_map(|r| r.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter(|t| t.parse::<u32>().is_err())
        .collect()
}

#[test]
fn type_back_at_the_terminal_confirms_screen_shares_and_the_witness_records_the_hand_out() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::Stdio;
    use std::sync::mpsc;

    let env = ceremony_team();
    let dir = env.path("out");
    std::fs::create_dir_all(&dir).expect("out");
    let dir_s = dir.to_string_lossy().into_owned();
    let (mut c, _) = env.cmd([
        "--demo",
        "--as",
        "olivia",
        "ceremony",
        "escrow",
        "--threshold",
        "2",
        "--custodian",
        "bob",
        "--custodian",
        "carol",
        "--custodian",
        "dave:card",
        "--witness",
        "wendy",
        "--out-dir",
        &dir_s,
        "--type-back",
        "--bag-serial",
        "dave=TEB-0007",
        "--note",
        "carol could not copy her words: she gets a new share at the next rekey",
    ]);
    c.env("CUSTOS_PIN", PIN).env_remove("CUSTOS_AS");
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("custos runs");
    let mut input = child.stdin.take().expect("stdin");
    let (tx, rx) = mpsc::channel::<String>();
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut err_pipe = child.stderr.take().expect("stderr");
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let mut seen = Vec::new();
    let next = |seen: &mut Vec<String>| -> String {
        let line = rx.recv_timeout(DEADLINE).unwrap_or_else(|_| {
            panic!(
                "custos --type-back stopped talking; stdout so far:\n{}",
                seen.join("\n")
            )
        });
        seen.push(line.clone());
        line
    };
    // Each screen holder's words, as shown, then what they type back.
    let words_of = |who: &str, seen: &mut Vec<String>| -> Vec<String> {
        while !next(seen).contains(&format!("for {who}: only {who} looks")) {}
        let rows: Vec<String> = (0..6).map(|_| next(seen)).collect();
        shown_words(&rows)
    };
    let bob = words_of("bob", &mut seen);
    assert_eq!(bob.len(), 34, "{bob:?}");
    let mut typo = bob.clone();
    typo[2] = if typo[2] == "abandon" {
        "ability".into()
    } else {
        "abandon".into()
    };
    writeln!(input, "\n{}\n{}", typo.join(" "), bob.join(" ")).expect("bob types");
    let carol = words_of("carol", &mut seen);
    assert_eq!(carol.len(), 34);
    // Carol gives bob's words three times: a valid share, but not hers.
    writeln!(input, "\n{0}\n{0}\n{0}", bob.join(" ")).expect("carol types");
    drop(input);
    while let Ok(line) = rx.recv_timeout(DEADLINE) {
        seen.push(line);
    }
    let status = child.wait().expect("custos ends");
    let stderr = stderr.join().expect("stderr");
    let stdout = seen.join("\n");
    assert!(
        status.success(),
        "exit {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("word 3"),
        "the typo is named by position: {stderr}"
    );
    assert!(stderr.contains("not share #2"), "{stderr}");
    assert!(stderr.contains("share #2 stays NOT confirmed"), "{stderr}");
    assert!(
        stdout.contains("share #1 (bob): typed back correctly"),
        "{stdout}"
    );
    assert!(
        stdout.contains("share #2 (carol): NOT confirmed"),
        "{stdout}"
    );
    let ceremony = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("ceremony ")
                .and_then(|r| r.split(':').next())
        })
        .expect("ceremony id")
        .to_string();
    assert!(
        stdout.contains(&format!("hand-out of ceremony {ceremony} recorded")),
        "{stdout}"
    );

    // The witness's record is the transcript's last step, with the bag serial and the note.
    let t_path = env.path("t.json");
    let t_s = t_path.to_string_lossy().into_owned();
    run(&env, &["ceremony", "transcript", &ceremony, "--out", &t_s]).ok();
    let t: Value =
        serde_json::from_str(&std::fs::read_to_string(&t_path).expect("t")).expect("json");
    let steps = as_array(field(&t, "steps"));
    let last = steps.last().expect("a step");
    assert_eq!(
        (last["action"].clone(), last["actor"].clone()),
        (Value::from("hand-out-finished"), Value::from("wendy"))
    );
    let d = str_field(last, "detail");
    for part in [
        "share #1 (bob) confirmed: the words were typed back",
        "share #2 (carol) NOT confirmed",
        "share #3 (dave) on a printed card, sealed in bag TEB-0007",
        "deviations: carol could not copy her words",
    ] {
        assert!(d.contains(part), "{part:?} missing in {d}");
    }
    refused(
        as_(&env, "wendy", &["ceremony", "handout", &ceremony]),
        "already recorded",
    );
    // --type-back is a conversation: not with --json.
    let r = as_(
        &env,
        "olivia",
        &[
            "ceremony",
            "rekey",
            "--threshold",
            "2",
            "--custodian",
            "bob",
            "--custodian",
            "carol",
            "--witness",
            "wendy",
            "--type-back",
            "--json",
        ],
    );
    refused(r, "cannot be used with --json");
}
