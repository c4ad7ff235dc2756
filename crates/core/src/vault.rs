//! The vault: unlocking, the envelope hierarchy and key lifecycle, each operation audited.
//!
//! Envelope hierarchy: passphrase --Argon2id--> passphrase key --wraps--> root key --wraps--> one KEK per key
//! --wraps--> each key version's material. The root key also seals every key's metadata and the audit
//! signing key. Changing the passphrase re-wraps only the root key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use rusqlite::{params, Connection, Transaction, TransactionBehavior};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::audit::{self, AuditEntry, AuditReport, Draft, Outcome};
use crate::backoff;
use crate::clock::{now, rfc3339, Timestamp};
use crate::error::{Error, Result};
use crate::hardware::{Pin, PivCard};
use crate::kdf::{self, CalibrationProgress, KdfParams};
use crate::pivfactor::{self, PivFactor};
use crate::policy::OpKind;

const UNLOCK_SCOPE: &str = "unlock";
use crate::keys::{
    describe_allowed, due_string, format_duration, rotation_status, validate_name, KeyDetail,
    KeyState, KeySummary, KeyType, VersionInfo,
};
use crate::seal::{open, seal, Binding, Purpose};
use crate::secret::{random_bytes, Passphrase, SecretKey};
use crate::store;

/// How to create a vault.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Unlock time to calibrate Argon2id for, in milliseconds (100-500).
    pub target_ms: u32,
    /// Use deliberately weak KDF parameters (tests only). `vault info` and the window say so, always.
    pub insecure_test_kdf: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            target_ms: kdf::DEFAULT_TARGET_MS,
            insecure_test_kdf: false,
        }
    }
}

/// KDF parameters as shown to people and scripts.
#[derive(Debug, Clone, Serialize)]
pub struct KdfInfo {
    pub algorithm: &'static str,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub salt_len: usize,
}

impl From<&KdfParams> for KdfInfo {
    fn from(p: &KdfParams) -> Self {
        KdfInfo {
            algorithm: "argon2id",
            memory_kib: p.memory_kib,
            iterations: p.iterations,
            parallelism: p.parallelism,
            salt_len: p.salt.len(),
        }
    }
}

/// What can be known about a vault without its passphrase.
#[derive(Debug, Clone, Serialize)]
pub struct LockedInfo {
    pub path: String,
    pub vault_id: String,
    pub schema_version: u32,
    pub insecure_test_kdf: bool,
    pub kdf: KdfInfo,
    pub audit_key_fingerprint: String,
    /// Set when unlocking also needs a YubiKey.
    pub piv_required: Option<PivFactor>,
    /// Consecutive failed unlocks (an alert), and how long before the next attempt is allowed.
    pub failed_unlocks: u32,
    pub wait_secs: u64,
}

/// A summary of an unlocked vault.
#[derive(Debug, Clone, Serialize)]
pub struct VaultInfo {
    pub path: String,
    pub vault_id: String,
    pub schema_version: u32,
    pub keys: u64,
    pub created: String,
    pub insecure_test_kdf: bool,
    pub kdf: KdfInfo,
    pub audit_entries: u64,
    pub audit_key_fingerprint: String,
    /// Set when the audit log failed its check at unlock; show it on every screen.
    pub audit_warning: Option<String>,
}

/// Result of decrypting a file: which key version opened it.
#[derive(Debug, Clone, Serialize)]
pub struct DecryptReport {
    pub key: String,
    pub version: u32,
    /// The version's state: `compromised` means whoever holds the leaked key could have made this file.
    pub state: KeyState,
    pub bytes: u64,
}

/// Result of checking a signature.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub key: String,
    pub version: u32,
    pub state: KeyState,
}

/// Sealed metadata of a key.
#[derive(Serialize, Deserialize)]
struct KeyRecord {
    name: String,
    key_type: KeyType,
    rotate_every_secs: Option<u64>,
    created: Timestamp,
}

/// Sealed metadata of a key version.
#[derive(Serialize, Deserialize, Clone)]
struct VersionRecord {
    state: KeyState,
    created: Timestamp,
    state_changed: Timestamp,
    public_key: Option<String>,
}

struct KeyRow {
    id: [u8; 16],
    record: KeyRecord,
    kek_sealed: Vec<u8>,
}

struct VersionRow {
    version: u32,
    record: VersionRecord,
    material: Option<Vec<u8>>,
}

/// What an unlocked session holds. Secret fields zeroize on drop.
pub(crate) struct Ctx {
    pub(crate) vault_id: [u8; 16],
    root: SecretKey,
    audit_key: SigningKey,
    pub(crate) actor: String,
    /// The PIV factor's key when the vault is bound to a YubiKey (kept to re-wrap the root key).
    piv_key: Option<SecretKey>,
    /// The touches that authorized the operation in progress, appended to its audit entry.
    pub(crate) evidence: Option<String>,
}

impl Ctx {
    fn binding<'a>(
        &'a self,
        purpose: Purpose,
        key_id: Option<&'a [u8; 16]>,
        version: u32,
    ) -> Binding<'a> {
        Binding {
            vault_id: &self.vault_id,
            purpose,
            key_id,
            version,
            extra: b"",
        }
    }

    pub(crate) fn seal_json<T: Serialize>(
        &self,
        purpose: Purpose,
        key_id: &[u8; 16],
        version: u32,
        v: &T,
    ) -> Result<Vec<u8>> {
        let json =
            Zeroizing::new(serde_json::to_vec(v).map_err(|e| Error::Internal(e.to_string()))?);
        seal(
            &self.root,
            &self.binding(purpose, Some(key_id), version),
            &json,
        )
    }

    pub(crate) fn open_json<T: DeserializeOwned>(
        &self,
        purpose: Purpose,
        key_id: &[u8; 16],
        version: u32,
        sealed: &[u8],
    ) -> Result<T> {
        let what = || {
            format!(
                "a sealed record of key {} does not open",
                hex::encode(key_id)
            )
        };
        let bytes = open(
            &self.root,
            &self.binding(purpose, Some(key_id), version),
            sealed,
        )
        .map_err(|_| Error::Tampered(what()))?;
        serde_json::from_slice(bytes.expose()).map_err(|_| Error::Tampered(what()))
    }

    fn kek(&self, key: &KeyRow) -> Result<SecretKey> {
        let b = open(
            &self.root,
            &self.binding(Purpose::Kek, Some(&key.id), 0),
            &key.kek_sealed,
        )
        .map_err(|_| {
            Error::Tampered(format!(
                "the KEK of key {} does not open",
                hex::encode(key.id)
            ))
        })?;
        SecretKey::from_slice(b.expose())
    }

    /// Open a version's material with its key's KEK.
    fn material(&self, key: &KeyRow, v: &VersionRow) -> Result<SecretKey> {
        let sealed = v.material.as_ref().ok_or_else(|| Error::VersionUnusable {
            name: key.record.name.clone(),
            version: v.version,
            state: KeyState::Destroyed.as_str(),
            operation: "use",
        })?;
        let kek = self.kek(key)?;
        let b = open(
            &kek,
            &self.binding(Purpose::KeyMaterial, Some(&key.id), v.version),
            sealed,
        )
        .map_err(|_| {
            Error::Tampered(format!(
                "the material of key {} version {} does not open",
                hex::encode(key.id),
                v.version
            ))
        })?;
        SecretKey::from_slice(b.expose())
    }

    pub(crate) fn draft<'a>(
        &'a self,
        action: &'a str,
        key_id: Option<&'a [u8; 16]>,
        version: Option<u32>,
        detail: String,
    ) -> Draft<'a> {
        let detail = match &self.evidence {
            Some(e) => format!("{detail}{e}"),
            None => detail,
        };
        Draft {
            action,
            actor: &self.actor,
            key_id,
            version,
            outcome: Outcome::Ok,
            detail,
        }
    }

    /// The root key wrapped under a passphrase-derived key.
    pub(crate) fn wrap_root_with(&self, pkey: &SecretKey) -> Result<Vec<u8>> {
        seal(pkey, &root_binding(&self.vault_id), self.root.expose())
    }

    /// The root key sealed under the escrow's recovery key.
    pub(crate) fn wrap_root_for_recovery(&self, recovery: &SecretKey) -> Result<Vec<u8>> {
        seal(
            recovery,
            &self.binding(Purpose::RecoveryWrap, None, 0),
            self.root.expose(),
        )
    }

    /// Sign `message` with the vault audit key (transcripts).
    pub(crate) fn sign(&self, message: &[u8]) -> ed25519_dalek::Signature {
        use ed25519_dalek::Signer;
        self.audit_key.sign(message)
    }

    pub(crate) fn audit_public(&self) -> [u8; 32] {
        self.audit_key.verifying_key().to_bytes()
    }

    /// Append a signed audit entry and re-seal the vault state (audit head + digest of every key row)
    /// in the caller's transaction. Every mutation ends here.
    pub(crate) fn append(&self, tx: &Transaction<'_>, draft: Draft<'_>) -> Result<()> {
        let entry = audit::append(tx, &self.vault_id, Some(&self.audit_key), draft)?;
        let state = StateSeal {
            audit_seq: entry.seq,
            audit_hash: entry.hash,
            keys_digest: keys_digest(tx)?,
        };
        let json = serde_json::to_vec(&state).map_err(|e| Error::Internal(e.to_string()))?;
        let sealed = seal(
            &self.root,
            &self.binding(Purpose::StateSeal, None, 0),
            &json,
        )?;
        store::set_meta(tx, "state_seal", &sealed)
    }

    fn state_seal(&self, conn: &Connection) -> Result<StateSeal> {
        let sealed = store::require_meta(conn, "state_seal")?;
        let bytes = open(
            &self.root,
            &self.binding(Purpose::StateSeal, None, 0),
            &sealed,
        )
        .map_err(|_| Error::Tampered("the vault's state seal does not open".into()))?;
        serde_json::from_slice(bytes.expose())
            .map_err(|_| Error::Tampered("the vault's state seal is unreadable".into()))
    }

    /// The key tables must be exactly what the last operation sealed: no row changed, replayed
    /// (an old sealed record put back), added or deleted outside Custos.
    fn check_keys(&self, conn: &Connection) -> Result<()> {
        if self.state_seal(conn)?.keys_digest != keys_digest(conn)? {
            return Err(Error::Tampered(
                "the key tables differ from the vault's sealed state: rows were changed, replayed or deleted outside Custos".into(),
            ));
        }
        Ok(())
    }
}

/// What the last operation sealed: the audit head it wrote and a digest of every key row.
#[derive(Serialize, Deserialize)]
struct StateSeal {
    audit_seq: u64,
    audit_hash: String,
    keys_digest: String,
}

/// SHA-256 over every row of `keys` and `key_versions`, length-prefixed, in primary-key order.
/// Sealed blobs carry random nonces, so a replayed old blob changes the digest.
fn keys_digest(conn: &Connection) -> Result<String> {
    use sha2::{Digest, Sha256};
    fn field(h: &mut Sha256, b: Option<&[u8]>) {
        match b {
            Some(b) => {
                h.update((b.len() as u64).to_be_bytes());
                h.update(b);
            }
            None => h.update(u64::MAX.to_be_bytes()),
        }
    }
    let mut h = Sha256::new();
    h.update(b"custos-keys-digest-v1\0");
    let mut stmt = conn.prepare("SELECT id, record, kek FROM keys ORDER BY id")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        h.update(b"K");
        for i in 0..3 {
            field(&mut h, Some(&r.get::<_, Vec<u8>>(i)?));
        }
    }
    let mut stmt = conn.prepare(
        "SELECT key_id, version, record, material FROM key_versions ORDER BY key_id, version",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        h.update(b"V");
        field(&mut h, Some(&r.get::<_, Vec<u8>>(0)?));
        field(&mut h, Some(&r.get::<_, i64>(1)?.to_be_bytes()));
        field(&mut h, Some(&r.get::<_, Vec<u8>>(2)?));
        field(&mut h, r.get::<_, Option<Vec<u8>>>(3)?.as_deref());
    }
    // Custody (schema 2). Empty tables and absent meta rows add nothing, so a vault without custodians
    // keeps the digest it had before.
    for (tag, table, col) in [
        (b"C", "custodians", "record"),
        (b"R", "requests", "record"),
        (b"T", "ceremonies", "CAST(transcript AS BLOB)"),
    ] {
        let mut stmt = conn.prepare(&format!("SELECT id, {col} FROM {table} ORDER BY id"))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            h.update(tag);
            field(&mut h, Some(&r.get::<_, Vec<u8>>(0)?));
            field(&mut h, Some(&r.get::<_, Vec<u8>>(1)?));
        }
    }
    for name in ["rules", "demo", "piv_factor", "recovery"] {
        if let Some(v) = store::get_meta(conn, name)? {
            h.update(b"M");
            field(&mut h, Some(name.as_bytes()));
            field(&mut h, Some(&v));
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// An unlocked vault session: an open vault file and the root key in memory.
/// Dropping it (or [`Vault::lock`]) records the lock and zeroizes the keys.
pub struct Vault {
    pub(crate) conn: Connection,
    path: PathBuf,
    pub(crate) ctx: Ctx,
    integrity_warning: Option<String>,
    /// Failed unlock attempts since the previous successful unlock (an alert for the person).
    failed_unlocks: u32,
    /// The custodian this session acts as (`--as`).
    pub(crate) acting: Option<String>,
    /// The one operation kind the last verified touch authorized (taken by the next check).
    pub(crate) granted: Option<OpKind>,
    /// The requester's touch for an enrolment in progress.
    pub(crate) enrol_evidence: Option<crate::custody::Evidence>,
    /// Set when a refusal was written, so that an outer layer does not write it twice.
    pub(crate) refusal_recorded: bool,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

pub(crate) fn vault_id_of(conn: &Connection) -> Result<[u8; 16]> {
    store::require_meta(conn, "vault_id")?
        .try_into()
        .map_err(|_| Error::Tampered("vault id has the wrong length".into()))
}

pub(crate) fn kdf_of(conn: &Connection) -> Result<KdfParams> {
    let p: KdfParams = serde_json::from_slice(&store::require_meta(conn, "kdf")?)
        .map_err(|_| Error::Tampered("KDF parameters are unreadable".into()))?;
    // Unauthenticated until the root key opens: refuse values that would exhaust memory or hang.
    let sane = (1..=16).contains(&p.parallelism)
        && p.memory_kib >= 8 * p.parallelism
        && p.memory_kib <= 4 * kdf::MAX_MEMORY_KIB
        && (1..=64).contains(&p.iterations)
        && (16..=64).contains(&p.salt.len());
    if !sane {
        return Err(Error::Tampered(format!(
            "KDF parameters out of range (m={} KiB, t={}, p={})",
            p.memory_kib, p.iterations, p.parallelism
        )));
    }
    Ok(p)
}

fn audit_public_of(conn: &Connection) -> Result<ed25519_dalek::VerifyingKey> {
    let b: [u8; 32] = store::require_meta(conn, "audit_public")?
        .try_into()
        .map_err(|_| Error::Tampered("audit public key has the wrong length".into()))?;
    ed25519_dalek::VerifyingKey::from_bytes(&b)
        .map_err(|_| Error::Tampered("audit public key is invalid".into()))
}

pub(crate) fn root_binding(vault_id: &[u8; 16]) -> Binding<'_> {
    Binding {
        vault_id,
        purpose: Purpose::RootKey,
        key_id: None,
        version: 0,
        extra: b"",
    }
}

fn kdf_detail(p: &KdfParams) -> String {
    let mut s = format!(
        "argon2id m={} KiB t={} p={}",
        p.memory_kib, p.iterations, p.parallelism
    );
    if p.is_insecure() {
        s.push_str(" (INSECURE TEST KDF)");
    }
    s
}

/// Open the root key wrapped by an escrow's recovery key.
pub(crate) fn unwrap_root_with_recovery(
    vault_id: &[u8; 16],
    recovery: &SecretKey,
    wrapped: &[u8],
) -> Result<SecretKey> {
    let b = open(
        recovery,
        &Binding {
            vault_id,
            purpose: Purpose::RecoveryWrap,
            key_id: None,
            version: 0,
            extra: b"",
        },
        wrapped,
    )
    .map_err(|_| Error::BadShare("the rebuilt recovery key does not open the vault".into()))?;
    SecretKey::from_slice(b.expose())
}

/// The vault's PIV factor, if it is bound to a YubiKey.
fn piv_factor_of(conn: &Connection) -> Result<Option<PivFactor>> {
    store::get_meta(conn, "piv_factor")?
        .map(|b| {
            serde_json::from_slice(&b)
                .map_err(|_| Error::Tampered("the vault's PIV factor is unreadable".into()))
        })
        .transpose()
}

/// Unwrap the root key with the passphrase (and the PIV factor's key when the vault has one);
/// `Err(WrongPassphrase)` if it does not open.
fn unwrap_root(
    conn: &Connection,
    vault_id: &[u8; 16],
    pass: &Passphrase,
    piv: Option<&SecretKey>,
) -> Result<SecretKey> {
    let params = kdf_of(conn)?;
    let pkey = pivfactor::wrapping_key(kdf::derive(pass, &params)?, piv)?;
    let wrapped = store::require_meta(conn, "root_wrapped")?;
    let root =
        open(&pkey, &root_binding(vault_id), &wrapped).map_err(|_| Error::WrongPassphrase)?;
    SecretKey::from_slice(root.expose())
}

fn load_keys(conn: &Connection, ctx: &Ctx) -> Result<Vec<KeyRow>> {
    ctx.check_keys(conn)?;
    let mut stmt = conn.prepare("SELECT id, record, kek FROM keys")?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut keys = Vec::with_capacity(rows.len());
    for (id, record, kek_sealed) in rows {
        let id: [u8; 16] = id
            .try_into()
            .map_err(|_| Error::Tampered("a key id has the wrong length".into()))?;
        let record: KeyRecord = ctx.open_json(Purpose::KeyRecord, &id, 0, &record)?;
        keys.push(KeyRow {
            id,
            record,
            kek_sealed,
        });
    }
    keys.sort_by(|a, b| a.record.name.cmp(&b.record.name));
    Ok(keys)
}

fn find_key(conn: &Connection, ctx: &Ctx, name: &str) -> Result<KeyRow> {
    load_keys(conn, ctx)?
        .into_iter()
        .find(|k| k.record.name == name)
        .ok_or_else(|| Error::NoSuchKey(name.into()))
}

fn find_key_by_id(conn: &Connection, ctx: &Ctx, id: &[u8; 16]) -> Result<Option<KeyRow>> {
    Ok(load_keys(conn, ctx)?.into_iter().find(|k| &k.id == id))
}

fn load_versions(conn: &Connection, ctx: &Ctx, key_id: &[u8; 16]) -> Result<Vec<VersionRow>> {
    let mut stmt = conn.prepare(
        "SELECT version, record, material FROM key_versions WHERE key_id = ?1 ORDER BY version",
    )?;
    let rows = stmt
        .query_map([&key_id[..]], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
            ))
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(version, record, material)| {
            Ok(VersionRow {
                version,
                record: ctx.open_json(Purpose::VersionRecord, key_id, version, &record)?,
                material,
            })
        })
        .collect::<Result<Vec<_>>>()
        .and_then(|versions| {
            let active = versions
                .iter()
                .filter(|v| v.record.state == KeyState::Active)
                .count();
            if active > 1 {
                return Err(Error::Tampered(format!(
                    "key {} has {active} active versions",
                    hex::encode(key_id)
                )));
            }
            Ok(versions)
        })
}

fn version_of<'a>(
    key: &KeyRow,
    versions: &'a [VersionRow],
    version: u32,
) -> Result<&'a VersionRow> {
    versions
        .iter()
        .find(|v| v.version == version)
        .ok_or_else(|| Error::NoSuchVersion {
            name: key.record.name.clone(),
            version,
        })
}

fn write_version_record(
    tx: &Transaction<'_>,
    ctx: &Ctx,
    key_id: &[u8; 16],
    version: u32,
    record: &VersionRecord,
) -> Result<()> {
    let sealed = ctx.seal_json(Purpose::VersionRecord, key_id, version, record)?;
    tx.execute(
        "UPDATE key_versions SET record = ?3 WHERE key_id = ?1 AND version = ?2",
        params![&key_id[..], version, sealed],
    )?;
    Ok(())
}

/// Fresh material for a key type and its public half (hex) where there is one.
fn generate_material(ty: KeyType) -> Result<(SecretKey, Option<String>)> {
    let secret = SecretKey::generate()?;
    let public = match ty {
        KeyType::Symmetric256 => None,
        KeyType::Ed25519 => Some(hex::encode(
            SigningKey::from_bytes(secret.expose())
                .verifying_key()
                .as_bytes(),
        )),
        KeyType::X25519 => {
            let s = x25519_dalek::StaticSecret::from(*secret.expose());
            Some(hex::encode(x25519_dalek::PublicKey::from(&s).as_bytes()))
        }
    };
    Ok((secret, public))
}

fn insert_version(
    tx: &Transaction<'_>,
    ctx: &Ctx,
    key: &KeyRow,
    version: u32,
    state: KeyState,
) -> Result<()> {
    let (material, public_key) = generate_material(key.record.key_type)?;
    let t = now();
    let record = VersionRecord {
        state,
        created: t,
        state_changed: t,
        public_key,
    };
    let kek = ctx.kek(key)?;
    let sealed_material = seal(
        &kek,
        &ctx.binding(Purpose::KeyMaterial, Some(&key.id), version),
        material.expose(),
    )?;
    tx.execute(
        "INSERT INTO key_versions (key_id, version, record, material) VALUES (?1, ?2, ?3, ?4)",
        params![
            &key.id[..],
            version,
            ctx.seal_json(Purpose::VersionRecord, &key.id, version, &record)?,
            sealed_material
        ],
    )?;
    Ok(())
}

fn detail_of(key: &KeyRow, versions: &[VersionRow]) -> KeyDetail {
    let active = versions.iter().find(|v| v.record.state == KeyState::Active);
    let every = key.record.rotate_every_secs.map(Duration::from_secs);
    let (due, status) = rotation_status(every, active.map(|v| v.record.created), now());
    KeyDetail {
        id: hex::encode(key.id),
        name: key.record.name.clone(),
        key_type: key.record.key_type,
        created: rfc3339(key.record.created),
        active_version: active.map(|v| v.version),
        rotate_every_secs: key.record.rotate_every_secs,
        rotation_due: due_string(due),
        rotation_status: status,
        versions: versions
            .iter()
            .map(|v| VersionInfo {
                version: v.version,
                state: v.record.state,
                created: rfc3339(v.record.created),
                state_changed: rfc3339(v.record.state_changed),
                public_key: v.record.public_key.clone(),
                allowed_states: v.record.state.allowed_next().to_vec(),
            })
            .collect(),
    }
}

/// Errors that are a person's request refused or failed (recorded in the audit log), as opposed to
/// infrastructure errors.
fn refusal_outcome(e: &Error) -> Option<Outcome> {
    match e {
        Error::NoSuchKey(_)
        | Error::KeyExists(_)
        | Error::NoSuchVersion { .. }
        | Error::InvalidName(_)
        | Error::IllegalTransition { .. }
        | Error::WrongKeyType { .. }
        | Error::NoActiveVersion { .. }
        | Error::VersionUnusable { .. }
        | Error::IdentityRequired
        | Error::RoleNotAllowed { .. }
        | Error::SeparationOfDuties(_)
        | Error::NoAuthenticator(_)
        | Error::NoSuchCustodian(_)
        | Error::CustodianExists(_)
        | Error::NoSuchRequest(_)
        | Error::RequestExpired(_)
        | Error::RequestClosed(..)
        | Error::RuleUnmeetable(_)
        | Error::DemoMismatch(_)
        | Error::BackedOff { .. }
        | Error::DefaultCredentials(_)
        | Error::BadShare(_) => Some(Outcome::Refused),
        Error::DecryptionFailed
        | Error::BadSignature
        | Error::MalformedSignature(_)
        | Error::ForeignKey(_)
        | Error::NotEncryptedFile(_)
        | Error::WrongPassphrase
        | Error::AssertionRefused(_)
        | Error::PossibleClone { .. }
        | Error::WrongPin { .. }
        | Error::PinBlocked(_)
        | Error::NoTouch => Some(Outcome::Failed),
        _ => None,
    }
}

/// Record a failed unlock. The signing key is out of reach, so the entry is chained but unsigned (the
/// only kind of entry the audit format allows without its own checkpoint).
fn record_failed_unlock(
    conn: &mut Connection,
    vault_id: &[u8; 16],
    actor: &str,
    detail: &str,
) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    audit::append(
        &tx,
        vault_id,
        None,
        Draft {
            action: "vault.unlock",
            actor,
            key_id: None,
            version: None,
            outcome: Outcome::Failed,
            detail: detail.into(),
        },
    )?;
    tx.commit()?;
    Ok(())
}

/// Start a write: an immediate transaction (no other writer until it ends) on a vault whose key rows
/// still match the sealed state. Every signed append happens inside one, so a signature never covers
/// rows changed behind Custos's back.
pub(crate) fn begin<'c>(conn: &'c mut Connection, ctx: &Ctx) -> Result<Transaction<'c>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    ctx.check_keys(&tx)?;
    Ok(tx)
}

/// A key (by name) and version an operation is about, for the audit entry of a refusal.
type Target<'a> = (Option<&'a str>, Option<u32>);

/// The quick audit check at unlock: the log still holds the head the last operation sealed, nothing but
/// failed unlocks after it, an intact chain, and a valid newest checkpoint. `Some(message)` if not.
fn audit_integrity(conn: &Connection, ctx: &Ctx) -> Result<Option<String>> {
    let state = ctx.state_seal(conn)?;
    let (entries, checkpoints) = audit::load(conn)?;
    let sealed_head = entries
        .get((state.audit_seq as usize).wrapping_sub(1))
        .filter(|e| e.hash == state.audit_hash);
    if sealed_head.is_none() {
        return Ok(Some(format!(
            "audit log rolled back or altered: entry {} is not the one the vault sealed",
            state.audit_seq
        )));
    }
    if let Some(e) = entries
        .iter()
        .skip(state.audit_seq as usize)
        .find(|e| !audit::is_written_locked(e))
    {
        return Ok(Some(format!(
            "audit log altered: entry {} was added after the vault's last sealed state",
            e.seq
        )));
    }
    let report = audit::verify_chain(
        &ctx.vault_id,
        &ctx.audit_key.verifying_key(),
        &entries,
        &checkpoints,
        false,
    );
    Ok((!report.ok).then_some(report.message))
}

/// With the root key in hand: open the audit key, check the sealed state, record the unlock (with
/// `detail`), and make the session.
pub(crate) fn open_session(
    path: &Path,
    mut conn: Connection,
    vault_id: [u8; 16],
    root: SecretKey,
    piv_key: Option<SecretKey>,
    actor: &str,
    detail: String,
) -> Result<Vault> {
    let seed = open(
        &root,
        &Binding {
            vault_id: &vault_id,
            purpose: Purpose::AuditKey,
            key_id: None,
            version: 0,
            extra: b"",
        },
        &store::require_meta(&conn, "audit_secret")?,
    )
    .map_err(|_| Error::Tampered("the audit signing key does not open".into()))?;
    let seed = SecretKey::from_slice(seed.expose())?;
    let audit_key = SigningKey::from_bytes(seed.expose());
    if audit_key.verifying_key() != audit_public_of(&conn)? {
        return Err(Error::Tampered(
            "the stored audit public key was replaced".into(),
        ));
    }
    let ctx = Ctx {
        vault_id,
        root,
        audit_key,
        actor: actor.to_string(),
        piv_key,
        evidence: None,
    };
    // Key rows changed behind Custos's back: refuse, and never re-seal that state.
    let outcome = begin(&mut conn, &ctx).and_then(|tx| {
        // A damaged audit log does not lock the officer out of the keys, but it is reported on
        // every screen and recorded.
        let warning = audit_integrity(&tx, &ctx)?;
        ctx.append(&tx, ctx.draft("vault.unlock", None, None, detail))?;
        if let Some(w) = &warning {
            ctx.append(
                &tx,
                Draft {
                    outcome: Outcome::Failed,
                    ..ctx.draft("audit.check", None, None, w.clone())
                },
            )?;
        }
        tx.commit()?;
        Ok(warning)
    });
    let integrity_warning = match outcome {
        Ok(w) => w,
        Err(e @ Error::Tampered(_)) => {
            record_failed_unlock(
                &mut conn,
                &vault_id,
                actor,
                "refused: the key tables failed the integrity check",
            )?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    Ok(Vault {
        conn,
        path: path.to_path_buf(),
        ctx,
        integrity_warning,
        failed_unlocks: 0,
        acting: None,
        granted: None,
        enrol_evidence: None,
        refusal_recorded: false,
    })
}

impl Vault {
    /// `<user data dir>/custos/vault.db` (on Linux `~/.local/share/custos/vault.db`).
    pub fn default_path() -> Result<PathBuf> {
        directories::BaseDirs::new()
            .map(|d| d.data_dir().join("custos").join("vault.db"))
            .ok_or_else(|| {
                Error::Internal("cannot find the user's data directory: pass --vault PATH".into())
            })
    }

    pub fn exists(path: &Path) -> bool {
        path.is_file()
    }

    /// What can be read without the passphrase.
    pub fn peek(path: &Path) -> Result<LockedInfo> {
        let conn = store::open(path)?;
        let params = kdf_of(&conn)?;
        Ok(LockedInfo {
            path: path.display().to_string(),
            vault_id: hex::encode(vault_id_of(&conn)?),
            schema_version: store::schema_of(&conn)?,
            insecure_test_kdf: params.is_insecure(),
            kdf: KdfInfo::from(&params),
            audit_key_fingerprint: audit::key_fingerprint(audit_public_of(&conn)?.as_bytes()),
            piv_required: piv_factor_of(&conn)?,
            failed_unlocks: backoff::state(&conn, UNLOCK_SCOPE)?.0,
            wait_secs: backoff::remaining(&conn, UNLOCK_SCOPE)?,
        })
    }

    /// Create a vault at `path` protected by `pass`, calibrating Argon2id on this machine.
    pub fn init(
        path: &Path,
        pass: &Passphrase,
        opts: &InitOptions,
        progress: &mut dyn FnMut(CalibrationProgress),
    ) -> Result<Vault> {
        if pass.is_empty() {
            return Err(Error::EmptyPassphrase);
        }
        if path.exists() {
            return Err(Error::VaultExists(path.to_path_buf()));
        }
        let params = if opts.insecure_test_kdf {
            KdfParams::insecure_test()?
        } else {
            kdf::calibrate(opts.target_ms, progress)?
        };
        let pkey = kdf::derive(pass, &params)?;
        let vault_id: [u8; 16] = random_bytes()?;
        let root = SecretKey::generate()?;
        let audit_seed = SecretKey::generate()?;
        let audit_key = SigningKey::from_bytes(audit_seed.expose());
        let ctx = Ctx {
            vault_id,
            root,
            audit_key,
            actor: actor_name(),
            piv_key: None,
            evidence: None,
        };
        let wrapped_root = seal(&pkey, &root_binding(&vault_id), ctx.root.expose())?;
        let sealed_audit = seal(
            &ctx.root,
            &ctx.binding(Purpose::AuditKey, None, 0),
            audit_seed.expose(),
        )?;
        let kdf_json = serde_json::to_vec(&params).map_err(|e| Error::Internal(e.to_string()))?;

        let mut conn = store::create(path)?;
        let written = (|| -> Result<()> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            store::set_meta(&tx, "vault_id", &vault_id)?;
            store::set_meta(&tx, "kdf", &kdf_json)?;
            store::set_meta(&tx, "root_wrapped", &wrapped_root)?;
            store::set_meta(
                &tx,
                "audit_public",
                ctx.audit_key.verifying_key().as_bytes(),
            )?;
            store::set_meta(&tx, "audit_secret", &sealed_audit)?;
            store::set_meta(&tx, "created", now().to_string().as_bytes())?;
            ctx.append(
                &tx,
                ctx.draft("vault.init", None, None, kdf_detail(&params)),
            )?;
            tx.commit()?;
            Ok(())
        })();
        if let Err(e) = written {
            drop(conn);
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        Ok(Vault {
            conn,
            path: path.to_path_buf(),
            ctx,
            integrity_warning: None,
            failed_unlocks: 0,
            acting: None,
            granted: None,
            enrol_evidence: None,
            refusal_recorded: false,
        })
    }

    /// Unlock with the passphrase. A wrong passphrase is recorded in the audit log and changes nothing else.
    pub fn unlock(path: &Path, pass: &Passphrase, actor: &str) -> Result<Vault> {
        Vault::unlock_with(path, pass, actor, None)
    }

    /// Unlock a vault that may be bound to a YubiKey: `card` answers the PIV factor's ECDH.
    pub fn unlock_with(
        path: &Path,
        pass: &Passphrase,
        actor: &str,
        card: Option<(&mut dyn PivCard, &Pin)>,
    ) -> Result<Vault> {
        let mut conn = store::open(path)?;
        let vault_id = vault_id_of(&conn)?;
        backoff::check(&conn, UNLOCK_SCOPE)?;
        let piv_key = match (piv_factor_of(&conn)?, card) {
            (None, _) => None,
            (Some(f), None) => {
                return Err(Error::PivRequired {
                    serial: f.serial,
                    slot: f.slot,
                })
            }
            (Some(f), Some((card, pin))) => match pivfactor::unlock_key(&vault_id, &f, card, pin) {
                Ok(k) => Some(k),
                Err(e @ (Error::WrongPin { .. } | Error::PinBlocked(_))) => {
                    backoff::record_failure(&conn, UNLOCK_SCOPE)?;
                    record_failed_unlock(&mut conn, &vault_id, actor, "wrong YubiKey PIN")?;
                    return Err(e);
                }
                Err(e) => return Err(e),
            },
        };
        let root = match unwrap_root(&conn, &vault_id, pass, piv_key.as_ref()) {
            Ok(root) => root,
            Err(Error::WrongPassphrase) => {
                let n = backoff::record_failure(&conn, UNLOCK_SCOPE)?;
                record_failed_unlock(
                    &mut conn,
                    &vault_id,
                    actor,
                    &format!("wrong passphrase (failure {n} in a row)"),
                )?;
                return Err(Error::WrongPassphrase);
            }
            Err(e) => return Err(e),
        };
        let failed_unlocks = backoff::state(&conn, UNLOCK_SCOPE)?.0;
        backoff::clear(&conn, UNLOCK_SCOPE)?;
        let detail = match failed_unlocks {
            0 => String::new(),
            n => format!("after {n} failed attempt(s)"),
        };
        let mut v = open_session(path, conn, vault_id, root, piv_key, actor, detail)?;
        v.failed_unlocks = failed_unlocks;
        Ok(v)
    }

    /// Failed unlock attempts between the previous unlock and this one.
    pub fn failed_unlocks(&self) -> u32 {
        self.failed_unlocks
    }

    /// Set at unlock when the audit log failed its check (altered, truncated or rolled back).
    pub fn integrity_warning(&self) -> Option<&str> {
        self.integrity_warning.as_deref()
    }

    /// Lock: record it and forget the keys.
    pub fn lock(self) {
        drop(self)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run a mutation and its audit entry in one transaction; record a refusal if it is refused.
    /// `kind` is what the permission matrix calls the operation (`None`: open to anyone who unlocked).
    fn run<T>(
        &mut self,
        kind: Option<OpKind>,
        action: &'static str,
        target: Target<'_>,
        f: impl FnOnce(&Transaction<'_>, &Ctx) -> Result<T>,
    ) -> Result<T> {
        let result = match kind {
            Some(k) => self.authorize(k),
            None => Ok(()),
        }
        .and_then(|()| {
            let tx = begin(&mut self.conn, &self.ctx)?;
            let v = f(&tx, &self.ctx)?;
            tx.commit()?;
            Ok(v)
        });
        if let Err(e) = &result {
            self.record_refusal(action, target, e);
        }
        // A touch's evidence belongs to one operation only.
        self.ctx.evidence = None;
        result
    }

    /// Best effort: the refusal itself must reach the person even if the log write fails. Tampering
    /// is never logged with a signature (that would seal the tampered state); it is raised as the
    /// session's integrity warning instead.
    pub(crate) fn record_refusal(&mut self, action: &str, (key, version): Target<'_>, e: &Error) {
        // A refused operation never leaves a touch behind for a later one.
        self.granted = None;
        self.refusal_recorded = true;
        if let Error::Tampered(m) = e {
            self.integrity_warning = Some(m.clone());
            return;
        }
        let Some(outcome) = refusal_outcome(e) else {
            return;
        };
        let ctx = &self.ctx;
        let key_id = key.and_then(|name| find_key(&self.conn, ctx, name).ok().map(|k| k.id));
        let result = (|| -> Result<()> {
            let tx = begin(&mut self.conn, ctx)?;
            ctx.append(
                &tx,
                Draft {
                    outcome,
                    ..ctx.draft(action, key_id.as_ref(), version, e.kind().to_string())
                },
            )?;
            tx.commit()?;
            Ok(())
        })();
        let _ = result;
    }

    pub fn info(&self) -> Result<VaultInfo> {
        let params = kdf_of(&self.conn)?;
        let keys = self
            .conn
            .query_row("SELECT count(*) FROM keys", [], |r| r.get::<_, i64>(0))?
            as u64;
        let audit_entries = self
            .conn
            .query_row("SELECT count(*) FROM audit", [], |r| r.get::<_, i64>(0))?
            as u64;
        let created = store::require_meta(&self.conn, "created")?;
        let created = std::str::from_utf8(&created)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok(VaultInfo {
            path: self.path.display().to_string(),
            vault_id: hex::encode(self.ctx.vault_id),
            schema_version: store::schema_of(&self.conn)?,
            keys,
            created: rfc3339(created),
            insecure_test_kdf: params.is_insecure(),
            kdf: KdfInfo::from(&params),
            audit_entries,
            audit_key_fingerprint: audit::key_fingerprint(
                self.ctx.audit_key.verifying_key().as_bytes(),
            ),
            audit_warning: self.integrity_warning.clone(),
        })
    }

    /// Change the passphrase: re-wraps the root key only (same KDF cost, fresh salt).
    pub fn change_passphrase(&mut self, old: &Passphrase, new: &Passphrase) -> Result<()> {
        if new.is_empty() {
            return Err(Error::EmptyPassphrase);
        }
        let params = kdf_of(&self.conn)?.with_fresh_salt()?;
        self.rewrap_root(old, new, params, "vault.change-passphrase")
    }

    /// Re-calibrate Argon2id on this machine and re-wrap the root key with the new parameters.
    pub fn rekdf(
        &mut self,
        pass: &Passphrase,
        target_ms: u32,
        progress: &mut dyn FnMut(CalibrationProgress),
    ) -> Result<KdfInfo> {
        let params = kdf::calibrate(target_ms, progress)?;
        let info = KdfInfo::from(&params);
        self.rewrap_root(pass, pass, params, "vault.rekdf")?;
        Ok(info)
    }

    fn rewrap_root(
        &mut self,
        old: &Passphrase,
        new: &Passphrase,
        params: KdfParams,
        action: &'static str,
    ) -> Result<()> {
        // The current passphrase must be presented again, even in an unlocked session.
        let check = unwrap_root(
            &self.conn,
            &self.ctx.vault_id,
            old,
            self.ctx.piv_key.as_ref(),
        );
        if let Err(e) = check {
            self.record_refusal(action, (None, None), &e);
            return Err(e);
        }
        let pkey = pivfactor::wrapping_key(kdf::derive(new, &params)?, self.ctx.piv_key.as_ref())?;
        let wrapped = seal(
            &pkey,
            &root_binding(&self.ctx.vault_id),
            self.ctx.root.expose(),
        )?;
        let kdf_json = serde_json::to_vec(&params).map_err(|e| Error::Internal(e.to_string()))?;
        self.run(
            Some(OpKind::VaultPassphrase),
            action,
            (None, None),
            |tx, ctx| {
                store::set_meta(tx, "kdf", &kdf_json)?;
                store::set_meta(tx, "root_wrapped", &wrapped)?;
                ctx.append(tx, ctx.draft(action, None, None, kdf_detail(&params)))
            },
        )?;
        store::checkpoint_wal(&self.conn)
    }

    /// Bind the vault to `custodian`'s enrolled PIV key: from now on unlocking needs the passphrase
    /// **and** that YubiKey (its PIN and touch). Needs the passphrase again and the officer's touch
    /// ([`Vault::touch_for`] with `vault.require-piv`).
    pub fn require_piv(
        &mut self,
        pass: &Passphrase,
        custodian: &str,
        card: &mut dyn PivCard,
        pin: &Pin,
    ) -> Result<PivFactor> {
        let action = "vault.require-piv";
        let result = (|| {
            if piv_factor_of(&self.conn)?.is_some() {
                return Err(Error::Device(
                    "this vault is already bound to a YubiKey".into(),
                ));
            }
            unwrap_root(&self.conn, &self.ctx.vault_id, pass, None)?;
            let (slot, public) =
                crate::custody::piv_of(&self.conn, &self.ctx, custodian, card.serial())?;
            let (factor, key) =
                pivfactor::bind(&self.ctx.vault_id, custodian, card, slot, &public, pin)?;
            let params = kdf_of(&self.conn)?.with_fresh_salt()?;
            let pkey = pivfactor::wrapping_key(kdf::derive(pass, &params)?, Some(&key))?;
            let wrapped = seal(
                &pkey,
                &root_binding(&self.ctx.vault_id),
                self.ctx.root.expose(),
            )?;
            let kdf_json =
                serde_json::to_vec(&params).map_err(|e| Error::Internal(e.to_string()))?;
            let factor_json =
                serde_json::to_vec(&factor).map_err(|e| Error::Internal(e.to_string()))?;
            let detail = format!(
                "bound to {custodian}'s YubiKey serial {} slot {:02x}",
                factor.serial, factor.slot
            );
            self.run(
                Some(OpKind::VaultRequirePiv),
                action,
                (None, None),
                |tx, ctx| {
                    store::set_meta(tx, "kdf", &kdf_json)?;
                    store::set_meta(tx, "root_wrapped", &wrapped)?;
                    store::set_meta(tx, "piv_factor", &factor_json)?;
                    ctx.append(tx, ctx.draft(action, None, None, detail))
                },
            )?;
            self.ctx.piv_key = Some(key);
            store::checkpoint_wal(&self.conn)?;
            Ok(factor)
        })();
        if let Err(e) = &result {
            self.record_refusal(action, (None, None), e);
        }
        result
    }

    pub fn create_key(
        &mut self,
        name: &str,
        ty: KeyType,
        rotate_every: Option<Duration>,
    ) -> Result<KeyDetail> {
        self.run(
            Some(OpKind::KeyCreate),
            "key.create",
            (Some(name), None),
            |tx, ctx| {
                validate_name(name)?;
                if load_keys(tx, ctx)?.iter().any(|k| k.record.name == name) {
                    return Err(Error::KeyExists(name.into()));
                }
                let id: [u8; 16] = random_bytes()?;
                let kek = SecretKey::generate()?;
                let key = KeyRow {
                    id,
                    record: KeyRecord {
                        name: name.into(),
                        key_type: ty,
                        rotate_every_secs: rotate_every.map(|d| d.as_secs()),
                        created: now(),
                    },
                    kek_sealed: seal(
                        &ctx.root,
                        &ctx.binding(Purpose::Kek, Some(&id), 0),
                        kek.expose(),
                    )?,
                };
                tx.execute(
                    "INSERT INTO keys (id, record, kek) VALUES (?1, ?2, ?3)",
                    params![
                        &id[..],
                        ctx.seal_json(Purpose::KeyRecord, &id, 0, &key.record)?,
                        key.kek_sealed
                    ],
                )?;
                insert_version(tx, ctx, &key, 1, KeyState::Active)?;
                let policy = rotate_every.map_or("no rotation policy".to_string(), |d| {
                    format!("rotate every {}", format_duration(d))
                });
                ctx.append(
                    tx,
                    ctx.draft(
                        "key.create",
                        Some(&id),
                        Some(1),
                        format!("{}; {policy}", ty.as_str()),
                    ),
                )?;
                Ok(detail_of(&key, &load_versions(tx, ctx, &id)?))
            },
        )
    }

    pub fn list_keys(&self) -> Result<Vec<KeySummary>> {
        load_keys(&self.conn, &self.ctx)?
            .iter()
            .map(|k| Ok(detail_of(k, &load_versions(&self.conn, &self.ctx, &k.id)?).summary()))
            .collect()
    }

    pub fn key_detail(&self, name: &str) -> Result<KeyDetail> {
        let key = find_key(&self.conn, &self.ctx, name)?;
        Ok(detail_of(
            &key,
            &load_versions(&self.conn, &self.ctx, &key.id)?,
        ))
    }

    /// New active version; the previous active version becomes decrypt-only.
    pub fn rotate_key(&mut self, name: &str) -> Result<KeyDetail> {
        self.run(
            Some(OpKind::KeyRotate),
            "key.rotate",
            (Some(name), None),
            |tx, ctx| {
                let key = find_key(tx, ctx, name)?;
                let versions = load_versions(tx, ctx, &key.id)?;
                let next = versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
                let mut detail = String::from("new active version");
                for v in versions
                    .iter()
                    .filter(|v| v.record.state == KeyState::Active)
                {
                    let mut r = v.record.clone();
                    r.state = KeyState::DecryptOnly;
                    r.state_changed = now();
                    write_version_record(tx, ctx, &key.id, v.version, &r)?;
                    detail = format!("version {} -> decrypt-only", v.version);
                }
                insert_version(tx, ctx, &key, next, KeyState::Active)?;
                ctx.append(
                    tx,
                    ctx.draft("key.rotate", Some(&key.id), Some(next), detail),
                )?;
                Ok(detail_of(&key, &load_versions(tx, ctx, &key.id)?))
            },
        )
    }

    /// Move a version to another lifecycle state (only legal transitions). Activating a pre-active
    /// version makes the current active version decrypt-only. `destroyed` erases the material.
    pub fn set_state(&mut self, name: &str, version: u32, state: KeyState) -> Result<KeyDetail> {
        let action = if state == KeyState::Destroyed {
            "key.destroy"
        } else {
            "key.set-state"
        };
        let kind = match state {
            KeyState::Destroyed => OpKind::KeyDestroy,
            KeyState::Compromised => OpKind::KeyCompromise,
            _ => OpKind::KeySetState,
        };
        let detail = self.run(
            Some(kind),
            action,
            (Some(name), Some(version)),
            |tx, ctx| {
                let key = find_key(tx, ctx, name)?;
                let versions = load_versions(tx, ctx, &key.id)?;
                let v = version_of(&key, &versions, version)?;
                let from = v.record.state;
                if !from.can_become(state) {
                    return Err(Error::IllegalTransition {
                        name: name.into(),
                        version,
                        from: from.as_str(),
                        to: state.as_str(),
                        allowed: describe_allowed(from),
                    });
                }
                if state == KeyState::Active {
                    for other in versions
                        .iter()
                        .filter(|o| o.record.state == KeyState::Active)
                    {
                        let mut r = other.record.clone();
                        r.state = KeyState::DecryptOnly;
                        r.state_changed = now();
                        write_version_record(tx, ctx, &key.id, other.version, &r)?;
                    }
                }
                let mut r = v.record.clone();
                r.state = state;
                r.state_changed = now();
                write_version_record(tx, ctx, &key.id, version, &r)?;
                if state == KeyState::Destroyed {
                    tx.execute(
                    "UPDATE key_versions SET material = NULL WHERE key_id = ?1 AND version = ?2",
                    params![&key.id[..], version],
                )?;
                }
                ctx.append(
                    tx,
                    ctx.draft(
                        action,
                        Some(&key.id),
                        Some(version),
                        format!("{} -> {}", from.as_str(), state.as_str()),
                    ),
                )?;
                Ok(detail_of(&key, &load_versions(tx, ctx, &key.id)?))
            },
        )?;
        if state == KeyState::Destroyed {
            // secure_delete zeroes the freed cells; the checkpoint removes the old pages from the WAL.
            store::checkpoint_wal(&self.conn)?;
        }
        Ok(detail)
    }

    /// Erase a version's material; the record stays (state `destroyed`).
    pub fn destroy_version(&mut self, name: &str, version: u32) -> Result<KeyDetail> {
        self.set_state(name, version, KeyState::Destroyed)
    }

    pub fn set_rotation_policy(
        &mut self,
        name: &str,
        every: Option<Duration>,
    ) -> Result<KeyDetail> {
        self.run(
            Some(OpKind::KeyPolicy),
            "key.policy",
            (Some(name), None),
            |tx, ctx| {
                let mut key = find_key(tx, ctx, name)?;
                key.record.rotate_every_secs = every.map(|d| d.as_secs());
                tx.execute(
                    "UPDATE keys SET record = ?2 WHERE id = ?1",
                    params![
                        &key.id[..],
                        ctx.seal_json(Purpose::KeyRecord, &key.id, 0, &key.record)?
                    ],
                )?;
                let detail = every.map_or("no rotation policy".to_string(), |d| {
                    format!("rotate every {}", format_duration(d))
                });
                ctx.append(tx, ctx.draft("key.policy", Some(&key.id), None, detail))?;
                Ok(detail_of(&key, &load_versions(tx, ctx, &key.id)?))
            },
        )
    }

    /// Encrypt `input` to `output` with the key's active version (symmetric keys only). `output` must not
    /// exist; it appears only when complete.
    pub fn encrypt_file(&mut self, name: &str, input: &Path, output: &Path) -> Result<u64> {
        self.run(
            Some(OpKind::KeyUse),
            "file.encrypt",
            (Some(name), None),
            |tx, ctx| {
                let key = find_key(tx, ctx, name)?;
                if key.record.key_type != KeyType::Symmetric256 {
                    return Err(Error::WrongKeyType {
                        name: name.into(),
                        key_type: key.record.key_type.as_str(),
                        operation: "encrypt files",
                        needed: "symmetric-256",
                    });
                }
                let versions = load_versions(tx, ctx, &key.id)?;
                let v = versions
                    .iter()
                    .find(|v| v.record.state.may_protect())
                    .ok_or_else(|| Error::NoActiveVersion {
                        name: name.into(),
                        operation: "encrypt",
                    })?;
                let material = ctx.material(&key, v)?;
                let (bytes, pending) = crate::fileenc::encrypt_path(
                    &ctx.vault_id,
                    &key.id,
                    v.version,
                    &material,
                    input,
                    output,
                )?;
                ctx.append(
                    tx,
                    ctx.draft(
                        "file.encrypt",
                        Some(&key.id),
                        Some(v.version),
                        format!("{bytes} bytes"),
                    ),
                )?;
                Ok((bytes, pending))
            },
        )
        .and_then(|(bytes, pending)| pending.publish().map(|()| bytes))
    }

    /// Decrypt a file made by [`Vault::encrypt_file`] with whichever version its header names, provided
    /// that version is active, decrypt-only or compromised. Nothing is written unless the whole file
    /// authenticates.
    pub fn decrypt_file(&mut self, input: &Path, output: &Path) -> Result<DecryptReport> {
        self.run(
            Some(OpKind::KeyUse),
            "file.decrypt",
            (None, None),
            |tx, ctx| {
                let (header, reader) = crate::fileenc::open_header(input)?;
                if header.vault_id != ctx.vault_id {
                    return Err(Error::ForeignKey(hex::encode(header.key_id)));
                }
                let key = find_key_by_id(tx, ctx, &header.key_id)?
                    .ok_or_else(|| Error::ForeignKey(hex::encode(header.key_id)))?;
                let versions = load_versions(tx, ctx, &key.id)?;
                let v = version_of(&key, &versions, header.version)?;
                if !v.record.state.may_process() {
                    return Err(Error::VersionUnusable {
                        name: key.record.name.clone(),
                        version: v.version,
                        state: v.record.state.as_str(),
                        operation: "decrypt",
                    });
                }
                let material = ctx.material(&key, v)?;
                let (bytes, pending) =
                    crate::fileenc::decrypt_to_path(&header, reader, &material, output)?;
                let mut detail = format!("{bytes} bytes");
                if v.record.state == KeyState::Compromised {
                    detail.push_str("; key version is COMPROMISED");
                }
                ctx.append(
                    tx,
                    ctx.draft("file.decrypt", Some(&key.id), Some(v.version), detail),
                )?;
                let report = DecryptReport {
                    key: key.record.name.clone(),
                    version: v.version,
                    state: v.record.state,
                    bytes,
                };
                Ok((report, pending))
            },
        )
        .and_then(|(report, pending)| pending.publish().map(|()| report))
    }

    /// Sign a file with the key's active ed25519 version; writes a small signature file.
    pub fn sign_file(&mut self, name: &str, input: &Path, signature_out: &Path) -> Result<u32> {
        self.run(
            Some(OpKind::KeyUse),
            "file.sign",
            (Some(name), None),
            |tx, ctx| {
                let key = find_key(tx, ctx, name)?;
                if key.record.key_type != KeyType::Ed25519 {
                    return Err(Error::WrongKeyType {
                        name: name.into(),
                        key_type: key.record.key_type.as_str(),
                        operation: "sign",
                        needed: "ed25519",
                    });
                }
                let versions = load_versions(tx, ctx, &key.id)?;
                let v = versions
                    .iter()
                    .find(|v| v.record.state.may_protect())
                    .ok_or_else(|| Error::NoActiveVersion {
                        name: name.into(),
                        operation: "sign",
                    })?;
                let material = ctx.material(&key, v)?;
                let pending =
                    crate::fileenc::sign_path(&key.id, v.version, &material, input, signature_out)?;
                ctx.append(
                    tx,
                    ctx.draft("file.sign", Some(&key.id), Some(v.version), String::new()),
                )?;
                Ok((v.version, pending))
            },
        )
        .and_then(|(version, pending)| pending.publish().map(|()| version))
    }

    /// Check a signature made by [`Vault::sign_file`] against the named key.
    pub fn verify_file(
        &mut self,
        name: &str,
        input: &Path,
        signature: &Path,
    ) -> Result<VerifyReport> {
        self.run(None, "file.verify", (Some(name), None), |tx, ctx| {
            let key = find_key(tx, ctx, name)?;
            let sig = crate::fileenc::read_signature(signature)?;
            if sig.key_id != key.id {
                return Err(Error::BadSignature);
            }
            let versions = load_versions(tx, ctx, &key.id)?;
            let v = version_of(&key, &versions, sig.version)?;
            let public = v
                .record
                .public_key
                .as_deref()
                .ok_or_else(|| Error::WrongKeyType {
                    name: name.into(),
                    key_type: key.record.key_type.as_str(),
                    operation: "verify signatures",
                    needed: "ed25519",
                })?;
            crate::fileenc::verify_path(&sig, public, input)?;
            let mut detail = String::from("signature valid");
            if v.record.state == KeyState::Compromised {
                detail.push_str("; key version is COMPROMISED");
            }
            ctx.append(
                tx,
                ctx.draft("file.verify", Some(&key.id), Some(v.version), detail),
            )?;
            Ok(VerifyReport {
                key: name.into(),
                version: v.version,
                state: v.record.state,
            })
        })
    }

    /// The log, with key names resolved.
    pub fn audit_entries(&self) -> Result<Vec<AuditEntry>> {
        let (entries, checkpoints) = audit::load(&self.conn)?;
        let names: std::collections::HashMap<String, String> = load_keys(&self.conn, &self.ctx)?
            .into_iter()
            .map(|k| (hex::encode(k.id), k.record.name))
            .collect();
        let signed_through = checkpoints.iter().map(|c| c.seq).max().unwrap_or(0);
        Ok(entries
            .into_iter()
            .map(|e| AuditEntry {
                key_name: e.key_id.as_ref().and_then(|id| names.get(id).cloned()),
                signed: e.seq <= signed_through,
                seq: e.seq,
                time: e.time,
                action: e.action,
                actor: e.actor,
                key_id: e.key_id,
                version: e.version,
                outcome: e.outcome,
                detail: e.detail,
                hash: e.hash,
                prev_hash: e.prev_hash,
            })
            .collect())
    }

    /// Check the whole chain and its signatures, then sign the head (recording the check).
    pub fn audit_verify(&mut self) -> Result<AuditReport> {
        let (entries, checkpoints) = audit::load(&self.conn)?;
        let mut report = audit::verify_chain(
            &self.ctx.vault_id,
            &self.ctx.audit_key.verifying_key(),
            &entries,
            &checkpoints,
            true,
        );
        if let (true, Some(w)) = (report.ok, &self.integrity_warning) {
            report.ok = false;
            report.message = format!("{w} (found when this session unlocked the vault)");
        }
        let detail = match report.first_broken {
            Some(n) => format!("BROKEN at entry {n}"),
            None => format!("ok, {} entries", report.entries),
        };
        let outcome = if report.ok {
            Outcome::Ok
        } else {
            Outcome::Failed
        };
        self.run(None, "audit.verify", (None, None), |tx, ctx| {
            ctx.append(
                tx,
                Draft {
                    outcome,
                    ..ctx.draft("audit.verify", None, None, detail)
                },
            )
        })?;
        Ok(report)
    }

    /// Write the log as JSON Lines (see docs/audit-format.md). Refuses to overwrite `out`.
    pub fn audit_export(&mut self, out: &Path) -> Result<u64> {
        // Claim the output first, so a refused path is never logged as an export.
        let mut pending = crate::fileenc::PendingOutput::create(out)?;
        self.run(
            Some(OpKind::AuditExport),
            "audit.export",
            (None, None),
            |tx, ctx| ctx.append(tx, ctx.draft("audit.export", None, None, "jsonl".into())),
        )?;
        let (entries, checkpoints) = audit::load(&self.conn)?;
        let mut buf = Vec::new();
        audit::write_export(
            &mut buf,
            &self.ctx.vault_id,
            &self.ctx.audit_key.verifying_key(),
            &entries,
            &checkpoints,
        )?;
        pending.write(&buf)?;
        pending.complete()?;
        pending.publish()?;
        Ok(entries.len() as u64)
    }
}

impl Drop for Vault {
    fn drop(&mut self) {
        // Best effort: a lock that cannot be logged still locks (the keys are zeroized regardless).
        let ctx = &self.ctx;
        if let Ok(tx) = begin(&mut self.conn, ctx) {
            if ctx
                .append(&tx, ctx.draft("vault.lock", None, None, String::new()))
                .is_ok()
            {
                let _ = tx.commit();
            }
        }
    }
}

/// Who is at the keyboard, for the audit log (custodians and their hardware come later).
pub fn actor_name() -> String {
    let from_env = ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()));
    // Launched without a login environment (a desktop launcher, a test driver): fall back to the home
    // directory's name.
    let user = from_env
        .or_else(|| {
            directories::BaseDirs::new().and_then(|d| {
                d.home_dir()
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    format!("os-user:{user}")
}
