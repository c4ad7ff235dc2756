//! Custody through the `custos` binary: custodians and roles, `--as`, demo software keys
//! (`--demo`), presence bound to the operation, the two-person rule (exit 3 while pending), PIV-bound
//! unlock and the persistent unlock back-off.
//!
//! Every test has its own vault; the demo keys live in `<vault>.demo-keys/` and take their PIN from
//! `CUSTOS_PIN` (one PIN for the FIDO2 and the PIV twins: 8 characters suits both).

mod common;

use std::path::Path;
use std::time::Duration;

use common::demo::*;
use common::*;
use serde_json::Value;

// ---- the two-person rule, end to end --------------------------------------------------------------

#[test]
fn destroy_needs_two_other_custodians_and_records_every_touch() {
    let env = team(true);

    // Compromise: the requester's touch alone.
    let before = audit_len(&env);
    as_(
        &env,
        "alice",
        &["key", "set-state", "k", "1", "compromised"],
    )
    .ok();
    assert_eq!(state_of(&show(&env, "k"), 1), "compromised");
    let log = audit(&env);
    let touch = log[before..]
        .iter()
        .find(|e| e["action"] == "presence.verify")
        .unwrap_or_else(|| panic!("no presence.verify for the compromise: {log:#?}"));
    assert_eq!(touch["actor"], "alice");
    assert!(str_field(touch, "detail").contains("UP+UV"), "{touch}");
    let entry = log[before..]
        .iter()
        .find(|e| e["action"] == "key.set-state" && e["outcome"] == "ok")
        .unwrap_or_else(|| panic!("no key.set-state entry: {log:#?}"));
    assert_eq!(entry["actor"], "alice");
    assert!(
        str_field(entry, "detail").contains("requested by alice"),
        "{entry}"
    );

    // Destroy: pending, exit 3.
    let req = pending(as_(&env, "alice", &["--json", "key", "destroy", "k", "1"]));
    let id = str_field(&req, "id").to_string();
    assert_eq!(state_of(&show(&env, "k"), 1), "compromised");
    let listed = request(&env, &id);
    assert_eq!(listed["requester"], "alice");
    assert_eq!(listed["status"], "pending");
    assert_eq!(listed["needed"], 2);
    assert_eq!(listed["approvals"], serde_json::json!([]));
    assert_eq!(listed["kind"], "key.destroy");
    let op = str_field(&listed, "operation");
    assert!(
        op.contains("key.destroy") && op.contains("k v1"),
        "{listed}"
    );

    // The requester cannot approve their own request (refused before any touch).
    let snap = snapshot(&env, "k");
    let from = audit_len(&env);
    as_(&env, "alice", &["approvals", "approve", &id]).err_containing("cannot approve");
    assert_eq!(
        snapshot(&env, "k"),
        snap,
        "a refused self-approval changed the vault"
    );
    let r = refusal_logged(&env, from, "request.approve", "alice");
    assert_eq!(r["detail"], "separation_of_duties");

    // One approval of two: still pending, exit 3, key untouched.
    let r = pending(as_(&env, "bob", &["--json", "approvals", "approve", &id]));
    assert_eq!(r["id"], id.as_str());
    let listed = request(&env, &id);
    assert_eq!(listed["status"], "pending");
    let approvals = as_array(field(&listed, "approvals"));
    assert_eq!(approvals.len(), 1, "{listed}");
    assert_eq!(approvals[0]["custodian"], "bob");
    assert_eq!(approvals[0]["user_verified"], true);
    assert_eq!(approvals[0]["demo"], true);
    assert_eq!(
        state_of(&show(&env, "k"), 1),
        "compromised",
        "K-1 approvals destroyed the key"
    );

    // The same approver twice counts once.
    let snap = snapshot(&env, "k");
    let from = audit_len(&env);
    as_(&env, "bob", &["approvals", "approve", &id]).err_containing("already approved");
    assert_eq!(snapshot(&env, "k"), snap);
    refusal_logged(&env, from, "request.approve", "bob");
    assert_eq!(state_of(&show(&env, "k"), 1), "compromised");

    // The second distinct approver: it runs.
    let from = audit_len(&env);
    let out = as_(&env, "carol", &["approvals", "approve", &id]).ok();
    assert!(out.stdout().contains("destroyed"), "{}", out.stdout());
    let d = show(&env, "k");
    assert_eq!(state_of(&d, 1), "destroyed");
    assert!(d["active_version"].is_null());
    let listed = request(&env, &id);
    assert_eq!(listed["status"], "done");
    assert_eq!(as_array(field(&listed, "approvals")).len(), 2);
    assert!(listed["result"].is_string(), "{listed}");

    let log = audit(&env);
    let destroy = log[from..]
        .iter()
        .find(|e| e["action"] == "key.destroy")
        .unwrap_or_else(|| panic!("no key.destroy entry: {:#?}", &log[from..]));
    assert_eq!(destroy["outcome"], "ok");
    assert_eq!(
        destroy["actor"], "alice",
        "the operation runs in the requester's name"
    );
    assert_eq!(destroy["key_name"], "k");
    assert_eq!(destroy["version"], 1);
    let detail = str_field(destroy, "detail");
    let (requested, approved) = detail
        .split_once("approved by")
        .unwrap_or_else(|| panic!("no approvers in {detail:?}"));
    assert!(requested.contains("requested by alice"), "{detail}");
    assert!(
        approved.contains("bob") && approved.contains("carol"),
        "{detail}"
    );
    assert!(
        log[from..]
            .iter()
            .any(|e| e["action"] == "request.close" && str_field(e, "detail").contains("done")),
        "no request.close: {:#?}",
        &log[from..]
    );

    // A closed request cannot be approved again.
    as_(&env, "alice", &["approvals", "approve", &id]).err_containing("already");
    audit_verifies(&env);
}

#[test]
fn a_pending_request_can_be_listed_as_json_and_text() {
    let env = team(true);
    as_(&env, "alice", &["key", "rotate", "k"]).ok();
    assert_eq!(state_of(&show(&env, "k"), 1), "decrypt-only");
    let req = pending(as_(&env, "alice", &["--json", "key", "destroy", "k", "1"]));
    let id = str_field(&req, "id");
    let text = run(&env, &["--demo", "approvals", "list"]).ok().stdout();
    assert!(text.contains(id) && text.contains("pending"), "{text}");
    assert!(text.contains("alice"), "{text}");
    let listed = request(&env, id);
    for f in [
        "id",
        "operation",
        "requester",
        "approvals",
        "needed",
        "status",
    ] {
        field(&listed, f);
    }
    audit_verifies(&env);
}

// ---- the permission matrix ------------------------------------------------------------------------

#[test]
fn a_custodian_without_the_role_is_refused_and_nothing_changes() {
    let env = team(false);
    // An operator, added while the vault is being set up.
    as_(
        &env,
        "alice",
        &["custodian", "add", "erin", "--role", "operator"],
    )
    .ok();
    as_(&env, "erin", &["custodian", "enroll", "erin", "--fido2"]).ok();
    as_(&env, "alice", &["rules", "activate"]).ok();
    as_(
        &env,
        "alice",
        &["key", "set-state", "k", "1", "compromised"],
    )
    .ok();

    let cases: [(&str, &[&str], &str, &str); 3] = [
        (
            "bob",
            &["key", "rotate", "k"],
            "key.rotate",
            "bob may not key.rotate",
        ),
        (
            "erin",
            &["key", "destroy", "k", "1"],
            "key.destroy",
            "erin may not key.destroy",
        ),
        (
            "carol",
            &["custodian", "add", "mallory", "--role", "officer"],
            "custodian.add",
            "carol may not custodian.add",
        ),
    ];
    for (who, args, action, message) in cases {
        let snap = snapshot(&env, "k");
        let from = audit_len(&env);
        // Refused before any key is touched: the one error line is all there is.
        let e = as_(&env, who, args).err_containing(message);
        assert!(
            e.contains("officer"),
            "the message names the role needed: {e}"
        );
        assert_eq!(
            snapshot(&env, "k"),
            snap,
            "{who} {args:?} changed the vault"
        );
        let r = refusal_logged(&env, from, action, who);
        assert_eq!(r["detail"], "role_not_allowed");
    }
    assert_eq!(state_of(&show(&env, "k"), 1), "compromised");
    assert_eq!(
        requests(&env),
        Vec::<Value>::new(),
        "no request was created"
    );
    assert!(custodians(&env).iter().all(|c| c["name"] != "mallory"));
    audit_verifies(&env);
}

#[test]
fn officer_and_auditor_cannot_be_one_person() {
    // As the very first custodian…
    let env = Env::new();
    run(&env, &["key", "create", "k", "--type", "symmetric-256"]).ok();
    let from = audit_len(&env);
    run(
        &env,
        &[
            "custodian",
            "add",
            "dave",
            "--role",
            "officer",
            "--role",
            "auditor",
        ],
    )
    .err_containing("cannot be both officer and auditor");
    assert_eq!(custodians(&env), Vec::<Value>::new());
    assert_eq!(rules(&env)["unguarded"], true);
    let log = audit(&env);
    assert!(
        log[from..]
            .iter()
            .any(|e| e["action"] == "custodian.add" && e["outcome"] == "refused"),
        "{log:#?}"
    );

    // …and later, asked for by an officer under the two-person rule.
    let env = team(true);
    let snap = snapshot(&env, "k");
    let from = audit_len(&env);
    as_(
        &env,
        "alice",
        &[
            "custodian",
            "add",
            "dave",
            "--role",
            "officer",
            "--role",
            "auditor",
        ],
    )
    .err_containing("separation of duties");
    assert_eq!(snapshot(&env, "k"), snap);
    let r = refusal_logged(&env, from, "custodian.add", "alice");
    assert_eq!(r["detail"], "separation_of_duties");
    audit_verifies(&env);
}

#[test]
fn a_guarded_vault_refuses_a_command_without_an_identity() {
    let env = team(true);
    let snap = snapshot(&env, "k");
    for args in [
        &["--demo", "key", "rotate", "k"][..],
        &["--demo", "key", "set-state", "k", "1", "compromised"][..],
        &["--demo", "key", "create", "k2", "--type", "ed25519"][..],
        &["--demo", "approvals", "approve", "000000000000"][..],
        &["--demo", "rules", "set", "key.rotate", "--approvals", "1"][..],
    ] {
        let from = audit_len(&env);
        run(&env, args).err_containing("say who you are with --as");
        assert_eq!(snapshot(&env, "k"), snap, "{args:?} changed the vault");
        if args[1] == "key" {
            let log = audit(&env);
            assert!(
                log[from..]
                    .iter()
                    .any(|e| e["outcome"] == "refused" && e["detail"] == "identity_required"),
                "{args:?}: refusal not logged: {:#?}",
                &log[from..]
            );
        }
    }
    assert_eq!(
        json_of(&env, &["--demo", "key", "list"])
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // An unknown name is no identity either.
    run(&env, &["--demo", "--as", "nobody", "key", "rotate", "k"]).err_containing("no custodian");
    assert_eq!(snapshot(&env, "k"), snap);
    audit_verifies(&env);
}

// ---- rules ------------------------------------------------------------------------------------------

#[test]
fn the_two_person_rule_cannot_be_activated_while_it_cannot_be_met() {
    let env = Env::new();
    run(&env, &["key", "create", "k", "--type", "symmetric-256"]).ok();
    run(&env, &["custodian", "add", "alice", "--role", "officer"]).ok();
    run(&env, &["--demo", "custodian", "enroll", "alice", "--fido2"]).ok();
    // bob exists but has no key: he cannot approve anything.
    as_(
        &env,
        "alice",
        &["custodian", "add", "bob", "--role", "custodian"],
    )
    .ok();

    let status = rules(&env);
    assert_eq!(status["enforced"], false);
    let unmet = as_array(field(&status, "unmet"));
    assert!(
        unmet
            .iter()
            .any(|u| u.as_str().is_some_and(|s| s.starts_with("key.destroy"))),
        "{status}"
    );

    let snap = snapshot(&env, "k");
    let from = audit_len(&env);
    let e = as_(&env, "alice", &["rules", "activate"]).err_containing("cannot be activated");
    assert!(
        e.contains("key.destroy needs 2 approval(s)"),
        "the message names the unmet rule: {e}"
    );
    assert_eq!(snapshot(&env, "k"), snap);
    assert_eq!(rules(&env)["enforced"], false);
    let r = refusal_logged(&env, from, "rules.change", "alice");
    assert_eq!(r["detail"], "rule_unmeetable");

    // Setup phase: a destroy runs at once (the rule is not active yet).
    as_(
        &env,
        "alice",
        &["key", "set-state", "k", "1", "compromised"],
    )
    .ok();
    as_(&env, "alice", &["key", "destroy", "k", "1"]).ok();
    assert_eq!(state_of(&show(&env, "k"), 1), "destroyed");
    audit_verifies(&env);
}

#[test]
fn changing_a_rule_under_the_two_person_rule_waits_for_approvals() {
    let env = team(true);
    let before = rules(&env);
    let req = pending(as_(
        &env,
        "alice",
        &["--json", "rules", "set", "key.rotate", "--approvals", "1"],
    ));
    assert_eq!(req["kind"], "rules.change");
    assert_eq!(rules(&env), before, "a pending rule change already applies");
    let id = str_field(&req, "id").to_string();
    pending(as_(&env, "bob", &["--json", "approvals", "approve", &id]));
    assert_eq!(rules(&env), before);
    as_(&env, "carol", &["approvals", "approve", &id]).ok();
    let after = rules(&env);
    let rotate = as_array(field(&after, "rules"))
        .iter()
        .find(|r| r["operation"] == "key.rotate")
        .cloned()
        .expect("key.rotate rule");
    assert_eq!(rotate["approvals"], 1, "{after}");
    // Rotation now waits for one approval.
    let req = pending(as_(&env, "alice", &["--json", "key", "rotate", "k"]));
    assert_eq!(u64_field(&show(&env, "k"), "active_version"), 1);
    as_(
        &env,
        "bob",
        &["approvals", "approve", str_field(&req, "id")],
    )
    .ok();
    assert_eq!(u64_field(&show(&env, "k"), "active_version"), 2);
    audit_verifies(&env);
}

// ---- authenticators ---------------------------------------------------------------------------------

#[test]
fn the_last_key_of_the_last_officer_cannot_be_revoked() {
    let env = team(true);
    let alice = custodian(&env, "alice");
    let id = str_field(&active_authenticators(&alice)[0], "id").to_string();
    let snap = snapshot(&env, "k");
    let from = audit_len(&env);
    let e = as_(&env, "alice", &["custodian", "revoke", "alice", &id])
        .err_containing("last key of the last officer");
    assert!(e.contains("alice"), "{e}");
    assert_eq!(snapshot(&env, "k"), snap);
    assert_eq!(active_authenticators(&custodian(&env, "alice")).len(), 1);
    let r = refusal_logged(&env, from, "custodian.revoke", "alice");
    assert_eq!(r["detail"], "separation_of_duties");
    // Revoking a key that does not exist is refused too, and changes nothing.
    as_(&env, "alice", &["custodian", "revoke", "bob", "ffffffff"])
        .err_containing("no active authenticator");
    assert_eq!(snapshot(&env, "k"), snap);
    audit_verifies(&env);
}

#[test]
fn an_officer_who_replaced_a_lost_key_can_still_act() {
    // Setup phase: alice enrols a second key, then revokes the first (lost) one. That is allowed —
    // she keeps a key — and she must still be able to act with the key she kept.
    let env = team(false);
    as_(&env, "alice", &["custodian", "enroll", "alice", "--fido2"]).ok();
    assert!(demo_fido2(&env, "alice", 2).is_file());
    let keys = active_authenticators(&custodian(&env, "alice"));
    assert_eq!(keys.len(), 2, "{keys:?}");
    let first = keys
        .iter()
        .find(|a| str_field(&a["device"], "description").contains("alice-fido2-1.json"))
        .unwrap_or_else(|| panic!("which key is the first? {keys:?}"));
    let first_id = str_field(first, "id").to_string();
    as_(&env, "alice", &["custodian", "revoke", "alice", &first_id]).ok();
    let keys = active_authenticators(&custodian(&env, "alice"));
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0]["id"], first_id.as_str());

    // Her remaining key is alice-fido2-2.json: the CLI must touch with it.
    as_(&env, "alice", &["key", "rotate", "k"]).ok();
    assert_eq!(u64_field(&show(&env, "k"), "active_version"), 2);
    audit_verifies(&env);
}

#[test]
fn an_officer_without_a_key_cannot_plant_one_on_another_custodian() {
    // dave is an officer who never enrolled a key. Enrolling a key for someone else needs the
    // requester's own touch ("except for a custodian's very first key" — alice already has one), so
    // whoever claims to be dave must not be able to add a key to alice's authenticators.
    let env = team(false);
    as_(
        &env,
        "alice",
        &["custodian", "add", "dave", "--role", "officer"],
    )
    .ok();
    let alice_before = custodian(&env, "alice");
    assert_eq!(active_authenticators(&alice_before).len(), 1);
    let snap = snapshot(&env, "k");

    let r = as_(&env, "dave", &["custodian", "enroll", "alice", "--fido2"]);
    let d = describe(&r);
    assert_ne!(
        r.code(),
        Some(0),
        "dave, with no key of his own, enrolled a new key for alice without any touch:\n{d}"
    );
    refused(r, "");
    assert_eq!(
        custodian(&env, "alice"),
        alice_before,
        "alice's authenticators changed"
    );
    assert_eq!(snapshot(&env, "k"), snap);
    audit_verifies(&env);
}

#[test]
fn a_hardware_enrolment_without_a_device_fails_at_once() {
    // A production (non-demo) vault: without --demo the CLI looks for real hardware, and there is
    // none on this machine. It must fail with a clear message, not hang.
    let env = Env::new();
    run(&env, &["key", "create", "k", "--type", "symmetric-256"]).ok();
    run(&env, &["custodian", "add", "alice", "--role", "officer"]).ok();
    let snap = snapshot(&env, "k");

    let bound = Duration::from_secs(60);
    let r = run_full(
        &env,
        &env.pass,
        PIN,
        &["custodian", "enroll", "alice", "--fido2"],
        bound,
    );
    let e = r.err();
    assert!(
        e.contains("no fido2 key found") || e.contains("no usb support"),
        "{e}"
    );
    assert!(e.contains("plug it in") || e.contains("usb"), "{e}");

    let r = run_full(
        &env,
        &env.pass,
        PIN,
        &["custodian", "enroll", "alice", "--piv"],
        bound,
    );
    let e = r.err();
    assert!(
        e.contains("no yubikey found") || e.contains("pc/sc") || e.contains("pcscd"),
        "{e}"
    );

    assert_eq!(
        snapshot(&env, "k"),
        snap,
        "a failed enrolment changed the vault"
    );
    assert_eq!(
        rules(&env)["demo"],
        false,
        "the vault did not become a demo vault"
    );
    assert!(!demo_dir(&env).join("alice-piv.json").exists());
    audit_verifies(&env);
}

#[test]
fn a_wrong_demo_pin_is_refused_and_backs_off() {
    let env = team(true);
    let snap = snapshot(&env, "k");
    let from = audit_len(&env);
    for _ in 0..3 {
        refused(
            run_full(
                &env,
                &env.pass,
                "00000000",
                &["--demo", "--as", "alice", "key", "rotate", "k"],
                DEADLINE,
            ),
            "wrong pin",
        );
    }
    // Counters do not move on a wrong PIN; only the key's retries (in its file) do.
    assert_eq!(snapshot(&env, "k"), snap);
    refusal_logged(&env, from, "presence.pin", "alice");
    // The right PIN now waits.
    refused(as_(&env, "alice", &["key", "rotate", "k"]), "wait");
    assert_eq!(u64_field(&show(&env, "k"), "active_version"), 1);
    age_backoff(&env.vault, "pin:alice", 3600);
    as_(&env, "alice", &["key", "rotate", "k"]).ok();
    assert_eq!(u64_field(&show(&env, "k"), "active_version"), 2);
    audit_verifies(&env);
}

// ---- unlock back-off ------------------------------------------------------------------------------

/// Moves the last failure of `scope` `secs` into the past (instead of sleeping).
fn age_backoff(vault: &Path, scope: &str, secs: i64) {
    let conn = rusqlite::Connection::open(vault).expect("open the vault file");
    let n = conn
        .execute(
            "UPDATE backoff SET last_failure = last_failure - ?1 WHERE scope = ?2",
            rusqlite::params![secs, scope],
        )
        .expect("age the back-off");
    assert_eq!(n, 1, "no back-off row for {scope}");
}

/// N in "... wait N s ...".
fn wait_secs(error: &str) -> u64 {
    error
        .split("wait ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `wait N s` in {error:?}"))
}

fn backoff_failures(vault: &Path) -> Option<i64> {
    let conn = rusqlite::Connection::open(vault).expect("open the vault file");
    conn.query_row(
        "SELECT failures FROM backoff WHERE scope = 'unlock'",
        [],
        |r| r.get(0),
    )
    .ok()
}

#[test]
fn failed_unlocks_back_off_across_processes() {
    let env = Env::new();
    run(&env, &["key", "create", "k", "--type", "symmetric-256"]).ok();
    let wrong = "not the passphrase";
    for n in 1..=3 {
        run_full(&env, wrong, PIN, &["key", "list"], DEADLINE).err_containing("wrong passphrase");
        assert_eq!(backoff_failures(&env.vault), Some(n));
    }
    // Three free attempts spent: even the right passphrase must wait (5 s), in a new process.
    let e = run(&env, &["key", "list"]).err_containing("wait");
    let w = wait_secs(&e);
    assert!((1..=5).contains(&w), "{e}");
    // Hold the window open (the last failure a minute ahead) so that a slow machine cannot close it
    // during the checks below.
    age_backoff(&env.vault, "unlock", -60);
    let e = run(&env, &["vault", "info"]).err_containing("too many failed attempts");
    assert!(e.contains("wait"), "{e}");
    // While waiting, wrong guesses are not even tried (the count stays).
    run_full(&env, wrong, PIN, &["key", "list"], DEADLINE).err_containing("wait");
    assert_eq!(backoff_failures(&env.vault), Some(3));

    // Five seconds after the third failure another wrong guess doubles the delay.
    age_backoff(&env.vault, "unlock", 66);
    run_full(&env, wrong, PIN, &["key", "list"], DEADLINE).err_containing("wrong passphrase");
    assert_eq!(backoff_failures(&env.vault), Some(4));
    let e = run(&env, &["key", "list"]).err_containing("wait");
    let w = wait_secs(&e);
    assert!((6..=10).contains(&w), "the delay doubled to 10 s: {e}");
    age_backoff(&env.vault, "unlock", 6);
    let e = run(&env, &["key", "list"]).err_containing("wait");
    assert!(wait_secs(&e) <= 4, "the wait shrinks with time: {e}");

    // Once it has passed, the right passphrase opens, says how many attempts failed, and resets.
    age_backoff(&env.vault, "unlock", 5);
    let r = run(&env, &["key", "list", "--json"]).ok();
    assert!(
        r.stderr().contains("4 failed unlock attempt(s)"),
        "{}",
        r.stderr()
    );
    assert_eq!(as_array(&r.json()).len(), 1);
    assert_eq!(
        backoff_failures(&env.vault),
        None,
        "the count was not reset"
    );
    run_full(&env, wrong, PIN, &["key", "list"], DEADLINE).err_containing("wrong passphrase");
    run(&env, &["key", "list"]).ok();

    let log = audit(&env);
    let failed = log
        .iter()
        .filter(|e| e["action"] == "vault.unlock" && e["outcome"] == "failed")
        .count();
    assert_eq!(failed, 5, "{log:#?}");
    assert!(
        log.iter()
            .any(|e| e["action"] == "vault.unlock" && e["detail"] == "after 4 failed attempt(s)"),
        "{log:#?}"
    );
    audit_verifies(&env);
}

// ---- PIV-bound unlock ----------------------------------------------------------------------------

#[test]
fn a_piv_bound_vault_needs_the_demo_card_and_its_pin() {
    let env = Env::new();
    run(&env, &["key", "create", "k", "--type", "symmetric-256"]).ok();
    run(&env, &["custodian", "add", "alice", "--role", "officer"]).ok();
    run(&env, &["--demo", "custodian", "enroll", "alice", "--fido2"]).ok();
    run(&env, &["--demo", "custodian", "enroll", "alice", "--piv"]).ok();
    let piv_file = demo_dir(&env).join("alice-piv.json");
    assert!(piv_file.is_file());
    let alice = custodian(&env, "alice");
    let piv = active_authenticators(&alice)
        .into_iter()
        .find(|a| a["kind"] == "piv")
        .unwrap_or_else(|| panic!("no PIV authenticator: {alice}"));
    assert_eq!(piv["piv_slot"], "82");
    let serial = u64_field(&piv, "piv_serial");

    let before = show(&env, "k");
    let out = as_(&env, "alice", &["vault", "require-piv", "alice"]).ok();
    assert!(
        out.stdout().contains(&serial.to_string()),
        "{}",
        out.stdout()
    );
    let log = audit(&env);
    let bound = log
        .iter()
        .find(|e| e["action"] == "vault.require-piv")
        .unwrap_or_else(|| panic!("no vault.require-piv entry: {log:#?}"));
    assert_eq!(bound["outcome"], "ok");
    assert!(
        str_field(bound, "detail").contains("requested by alice"),
        "{bound}"
    );

    // With the card and its PIN: opens.
    assert_eq!(show(&env, "k"), before);

    // Wrong PIN: refused, nothing opened; the right PIN opens again afterwards.
    let e = run_full(
        &env,
        &env.pass,
        "11111111",
        &["--demo", "key", "show", "k"],
        DEADLINE,
    )
    .err_containing("wrong pin");
    assert!(e.contains("tries left"), "{e}");
    let r = run(&env, &["--demo", "key", "show", "k", "--json"]).ok();
    assert_eq!(r.json(), before);

    // The card gone: refused with a message naming what is missing; the passphrase alone is not enough.
    let away = env.path("alice-piv-elsewhere.json");
    std::fs::rename(&piv_file, &away).expect("move the demo card away");
    let e = run(&env, &["--demo", "key", "show", "k"]).err();
    assert!(
        e.contains("alice-piv.json") || e.contains("yubikey") || e.contains("piv"),
        "the message should say the PIV key is missing: {e}"
    );
    std::fs::rename(&away, &piv_file).expect("put the demo card back");

    // The right passphrase with the card, the wrong passphrase with the card.
    run_full(
        &env,
        "wrong passphrase",
        PIN,
        &["--demo", "key", "show", "k"],
        DEADLINE,
    )
    .err_containing("wrong passphrase");
    let r = run(&env, &["--demo", "key", "show", "k", "--json"]).ok();
    assert_eq!(r.json(), before);
    // A vault can be bound once.
    refused(
        as_(&env, "alice", &["vault", "require-piv", "alice"]),
        "already bound",
    );
    audit_verifies(&env);
}

#[test]
fn role_changes_follow_the_rule_and_never_strand_the_vault() {
    let env = team(true);
    let snap = snapshot(&env, "k");
    let from = audit_len(&env);
    // The last officer cannot give up the role: nobody could manage custodians any more.
    as_(
        &env,
        "alice",
        &["custodian", "roles", "alice", "--role", "custodian"],
    )
    .err_containing("last officer");
    // Officer and auditor stay apart on a role change too.
    as_(
        &env,
        "alice",
        &[
            "custodian",
            "roles",
            "bob",
            "--role",
            "officer",
            "--role",
            "auditor",
        ],
    )
    .err_containing("cannot be both officer and auditor");
    assert_eq!(
        snapshot(&env, "k"),
        snap,
        "refused role changes changed nothing"
    );
    refusal_logged(&env, from, "custodian.roles", "alice");

    // A legal change waits for two approvals once the rule is active…
    let r = pending(as_(
        &env,
        "alice",
        &[
            "--json",
            "custodian",
            "roles",
            "bob",
            "--role",
            "custodian",
            "--role",
            "operator",
        ],
    ));
    assert_eq!(r["needed"], 2);
    assert_eq!(
        custodian(&env, "bob")["roles"],
        serde_json::json!(["custodian"])
    );
    let id = str_field(&r, "id").to_string();
    // …and neither the requester nor the person the change is about may approve it.
    as_(&env, "alice", &["approvals", "approve", &id]).err_containing("cannot approve it");
    as_(&env, "bob", &["approvals", "approve", &id]).err_containing("on their own roles");
    let r = pending(as_(&env, "carol", &["--json", "approvals", "approve", &id]));
    assert_eq!(r["approvals"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        custodian(&env, "bob")["roles"],
        serde_json::json!(["custodian"]),
        "one approval of two changes nothing"
    );
    assert_eq!(request(&env, &id)["status"], "pending");
    audit_verifies(&env);
}
