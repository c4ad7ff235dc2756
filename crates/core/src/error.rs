//! Errors a security officer can act on.
//!
//! Every variant's message says what happened and what to do next. No variant carries secret bytes.

use std::path::PathBuf;

/// Result type of the Custos domain.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the vault, with a message for the person at the keyboard.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(
        "wrong passphrase: the vault was not unlocked (the failed attempt is in the audit log)"
    )]
    WrongPassphrase,
    #[error("no vault at {0}: create one, or open another vault file")]
    NoVault(PathBuf),
    #[error("a vault already exists at {0}: refusing to overwrite it")]
    VaultExists(PathBuf),
    #[error("{path} is not a Custos vault, or it is damaged ({detail}); restore it from a backup")]
    NotAVault { path: PathBuf, detail: String },
    #[error(
        "the vault was written by a newer Custos (schema {found}, this build knows up to {known}): upgrade Custos"
    )]
    SchemaTooNew { found: u32, known: u32 },
    #[error("vault integrity check failed: {0}. The vault file may have been tampered with; restore it from a backup and investigate")]
    Tampered(String),
    #[error("no key named {0:?}: check the name in the key list")]
    NoSuchKey(String),
    #[error("a key named {0:?} already exists: choose another name")]
    KeyExists(String),
    #[error("key {name:?} has no version {version}: check its versions in the key's detail")]
    NoSuchVersion { name: String, version: u32 },
    #[error(
        "invalid key name {0:?}: use 1-128 printable characters, no leading or trailing spaces"
    )]
    InvalidName(String),
    #[error("unknown key type {0:?}: use symmetric-256, ed25519 or x25519")]
    InvalidKeyType(String),
    #[error(
        "unknown key state {0:?}: use pre-active, active, decrypt-only, compromised or destroyed"
    )]
    InvalidKeyState(String),
    #[error("invalid duration {0:?}: write a number and a unit, e.g. 90d, 12h, 30m, 2w, 1y")]
    InvalidDuration(String),
    #[error("key {name:?} version {version} cannot go from {from} to {to}; allowed next states: {allowed}")]
    IllegalTransition {
        name: String,
        version: u32,
        from: &'static str,
        to: &'static str,
        allowed: String,
    },
    #[error("key {name:?} is {key_type}, which cannot {operation}: use a {needed} key")]
    WrongKeyType {
        name: String,
        key_type: &'static str,
        operation: &'static str,
        needed: &'static str,
    },
    #[error(
        "key {name:?} has no active version to {operation} with: rotate it or activate a version"
    )]
    NoActiveVersion {
        name: String,
        operation: &'static str,
    },
    #[error("key {name:?} version {version} is {state} and cannot be used to {operation}")]
    VersionUnusable {
        name: String,
        version: u32,
        state: &'static str,
        operation: &'static str,
    },
    #[error("this file was encrypted with a key that is not in this vault (key id {0}): open it with the vault that encrypted it")]
    ForeignKey(String),
    #[error("{0} is not a Custos-encrypted file (bad header)")]
    NotEncryptedFile(String),
    #[error("decryption failed: the file is corrupted, truncated or was tampered with; nothing was written")]
    DecryptionFailed,
    #[error("signature does not match: the file or the signature was changed, or it was signed by another key")]
    BadSignature,
    #[error("malformed signature file: {0}")]
    MalformedSignature(String),
    #[error("unlock time target {0} ms is outside the allowed 100-500 ms")]
    InvalidTarget(u32),
    #[error("passphrase is empty: choose a long passphrase")]
    EmptyPassphrase,
    #[error("audit export is malformed at line {line}: {detail}")]
    MalformedExport { line: usize, detail: String },
    #[error("the system random number generator failed: {0}")]
    Random(String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("vault database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("internal error: {0}")]
    Internal(String),
    #[error(
        "no {0} found: plug it in (and on Linux check that you may access it), then try again"
    )]
    NoDevice(&'static str),
    #[error("PC/SC service not running: start pcscd (sudo systemctl start pcscd) and try again")]
    PcscNotRunning,
    #[error("wrong PIN{}: nothing was done", match .retries { Some(n) => format!(" ({n} tries left before the key locks)"), None => String::new() })]
    WrongPin { retries: Option<u32> },
    #[error("the PIN of this {0} is blocked: unblock it with its PUK (ykman piv access unblock-pin) or reset the FIDO2 application; nothing was done")]
    PinBlocked(&'static str),
    #[error("a PIN is needed and none was given: enter the key's PIN")]
    PinRequired,
    #[error("{0}")]
    DefaultCredentials(String),
    #[error("no touch within the time allowed: the operation was not authorized; try again and touch the key when it blinks")]
    NoTouch,
    #[error("hardware key error: {0}")]
    Device(String),
    #[error("no custodian named {0:?}: check `custodian list`")]
    NoSuchCustodian(String),
    #[error("a custodian named {0:?} already exists")]
    CustodianExists(String),
    #[error("this vault has custodians: say who you are with --as NAME (or choose yourself in the window)")]
    IdentityRequired,
    #[error("{who} may not {operation}: that needs the role {needed} (their roles: {has})")]
    RoleNotAllowed {
        who: String,
        operation: String,
        needed: String,
        has: String,
    },
    #[error("separation of duties: {0}")]
    SeparationOfDuties(String),
    #[error(
        "{0} has no usable authenticator: enrol a FIDO2 key (custodian enroll NAME --fido2) first"
    )]
    NoAuthenticator(String),
    #[error("the key's answer was refused: {0}. Nothing was done")]
    AssertionRefused(String),
    #[error("possible cloned key: credential {credential} of {custodian} presented counter {presented}, but {stored} was already seen. The credential is now suspended (revoked); investigate, then enrol a new key for them")]
    PossibleClone {
        custodian: String,
        credential: String,
        presented: u32,
        stored: u32,
    },
    #[error("pending approval: request {id} needs {missing} more approval(s) ({needed}); run `custos approvals approve {id} --as NAME`")]
    ApprovalPending {
        id: String,
        missing: u32,
        needed: String,
    },
    #[error("no pending request {0}: check `custos approvals list`")]
    NoSuchRequest(String),
    #[error("request {0} has expired: nothing was done; make the request again")]
    RequestExpired(String),
    #[error("request {0} is already {1}")]
    RequestClosed(String, &'static str),
    #[error("{0}")]
    RuleUnmeetable(String),
    #[error("too many failed attempts: wait {wait_secs} s before trying again (the delay grows with each failure and survives restarts)")]
    BackedOff { wait_secs: u64 },
    #[error("{0}")]
    DemoMismatch(String),
    #[error("this vault also needs YubiKey serial {serial} (PIV slot {slot:02x}) to unlock: insert it and give its PIN")]
    PivRequired { serial: u32, slot: u8 },
    #[error("transcript verification failed: {0}")]
    BadTranscript(String),
    #[error("share refused: {0}")]
    BadShare(String),
    #[error("unknown role {0:?}: use officer, custodian, auditor or operator")]
    InvalidRole(String),
    #[error("unknown operation {0:?}: see `custos rules list`")]
    InvalidOperation(String),
}

impl Error {
    /// A stable machine-readable name for the error (used by the window and by `--json`).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::WrongPassphrase => "wrong_passphrase",
            Error::NoVault(_) => "no_vault",
            Error::VaultExists(_) => "vault_exists",
            Error::NotAVault { .. } => "not_a_vault",
            Error::SchemaTooNew { .. } => "schema_too_new",
            Error::Tampered(_) => "tampered",
            Error::NoSuchKey(_) => "no_such_key",
            Error::KeyExists(_) => "key_exists",
            Error::NoSuchVersion { .. } => "no_such_version",
            Error::InvalidName(_) => "invalid_name",
            Error::InvalidKeyType(_) => "invalid_key_type",
            Error::InvalidKeyState(_) => "invalid_key_state",
            Error::InvalidDuration(_) => "invalid_duration",
            Error::IllegalTransition { .. } => "illegal_transition",
            Error::WrongKeyType { .. } => "wrong_key_type",
            Error::NoActiveVersion { .. } => "no_active_version",
            Error::VersionUnusable { .. } => "version_unusable",
            Error::ForeignKey(_) => "foreign_key",
            Error::NotEncryptedFile(_) => "not_encrypted_file",
            Error::DecryptionFailed => "decryption_failed",
            Error::BadSignature => "bad_signature",
            Error::MalformedSignature(_) => "malformed_signature",
            Error::InvalidTarget(_) => "invalid_target",
            Error::EmptyPassphrase => "empty_passphrase",
            Error::MalformedExport { .. } => "malformed_export",
            Error::Random(_) => "random",
            Error::Io { .. } => "io",
            Error::Database(_) => "database",
            Error::Internal(_) => "internal",
            Error::NoDevice(_) => "no_device",
            Error::PcscNotRunning => "pcsc_not_running",
            Error::WrongPin { .. } => "wrong_pin",
            Error::PinBlocked(_) => "pin_blocked",
            Error::PinRequired => "pin_required",
            Error::DefaultCredentials(_) => "default_credentials",
            Error::NoTouch => "no_touch",
            Error::Device(_) => "device",
            Error::NoSuchCustodian(_) => "no_such_custodian",
            Error::CustodianExists(_) => "custodian_exists",
            Error::IdentityRequired => "identity_required",
            Error::RoleNotAllowed { .. } => "role_not_allowed",
            Error::SeparationOfDuties(_) => "separation_of_duties",
            Error::NoAuthenticator(_) => "no_authenticator",
            Error::AssertionRefused(_) => "assertion_refused",
            Error::PossibleClone { .. } => "possible_clone",
            Error::ApprovalPending { .. } => "approval_pending",
            Error::NoSuchRequest(_) => "no_such_request",
            Error::RequestExpired(_) => "request_expired",
            Error::RequestClosed(..) => "request_closed",
            Error::RuleUnmeetable(_) => "rule_unmeetable",
            Error::BackedOff { .. } => "backed_off",
            Error::DemoMismatch(_) => "demo_mismatch",
            Error::PivRequired { .. } => "piv_required",
            Error::BadShare(_) => "bad_share",
            Error::BadTranscript(_) => "bad_transcript",
            Error::InvalidRole(_) => "invalid_role",
            Error::InvalidOperation(_) => "invalid_operation",
        }
    }

    pub(crate) fn io(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            source,
        }
    }
}
