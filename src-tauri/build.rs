// The app's own commands get generated `allow-<command>` permissions; capabilities/default.json
// grants exactly these (plus event listen/unlisten) and nothing else.
const COMMANDS: &[&str] = &[
    "app_status",
    "passphrase_strength",
    "create_vault",
    "unlock",
    "lock",
    "vault_info",
    "list_keys",
    "create_key",
    "key_detail",
    "rotate_key",
    "set_key_state",
    "destroy_version",
    "set_rotation_policy",
    "audit_entries",
    "audit_verify",
    "list_custodians",
    "custody_status",
    "act_as",
    "add_custodian",
    "change_roles",
    "enroll_key",
    "revoke_authenticator",
    "set_rule",
    "activate_rules",
    "list_requests",
    "approve_request",
    "submit_pin",
    "escrow_status",
    "list_ceremonies",
    "run_escrow",
    "reveal_share",
    "confirm_share",
    "write_share_file",
    "finish_handout",
    "record_deviation",
    "drill_share",
    "ceremony_transcript",
    "export_transcript",
    "present_share",
    "withdraw_share",
    "forget_presented_shares",
    "recover_vault",
];

fn main() {
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri-build failed");
}
