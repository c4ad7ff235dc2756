//! # custos-core — the Custos domain
//!
//! An encrypted vault in one SQLite file: an Argon2id-protected envelope hierarchy (root key → one KEK
//! per key → key versions) sealed with XChaCha20-Poly1305, typed keys with NIST SP 800-57 lifecycle states
//! and rotation policies, offline file encryption and signing, and a hash-chained, signed audit log.
//!
//! No Tauri, no UI: the `custos` CLI and the desktop window are thin shells over [`Vault`].

mod audit;
mod backoff;
mod clock;
mod custody;
mod error;
pub mod escrow;
mod fileenc;
pub mod hardware;
pub mod kdf;
mod keys;
mod pivfactor;
pub mod policy;
mod presence;
pub mod scan;
mod seal;
mod secret;
pub mod sharefile;
pub mod sharing;
mod store;
mod vault;

pub use audit::{key_fingerprint, verify_export, AuditEntry, AuditReport, Outcome};
pub use custody::{
    AuthenticatorView, CustodianView, CustodyStatus, Evidence, Operation, Performed, RequestStatus,
    RequestView, RuleView,
};
pub use error::{Error, Result};
pub use kdf::{CalibrationProgress, KdfParams};
pub use keys::{
    format_duration, parse_duration, KeyDetail, KeyState, KeySummary, KeyType, RotationStatus,
    VersionInfo,
};
pub use pivfactor::PivFactor;
pub use secret::{Passphrase, SecretBytes, SecretKey};
pub use store::SCHEMA_VERSION;
pub use vault::{
    actor_name, DecryptReport, InitOptions, KdfInfo, LockedInfo, Vault, VaultInfo, VerifyReport,
};
