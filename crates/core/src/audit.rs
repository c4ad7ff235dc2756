//! The tamper-evident audit log: hash-chained entries, heads signed with the vault audit key.
//!
//! The format is specified in `docs/audit-format.md`; [`verify_export`] is a reference verifier that needs
//! no passphrase.

use std::io::{BufRead, Write};
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::{now, rfc3339};
use crate::error::{Error, Result};

const ENTRY_DOMAIN: &[u8] = b"custos-audit-entry-v1\0";
const CHECKPOINT_DOMAIN: &[u8] = b"custos-audit-checkpoint-v1\0";
const KEY_FINGERPRINT_DOMAIN: &[u8] = b"custos-audit-key-v1\0";
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
pub(crate) const EXPORT_FORMAT: &str = "custos-audit-export";

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Ok,
    /// Refused by a rule (illegal transition, wrong key type, ...); nothing changed.
    Refused,
    /// Failed (wrong passphrase, tampered input, ...); nothing changed.
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

/// One entry exactly as stored and exported. Never holds a secret or a key name (names are confidential
/// at rest); keys are referenced by their random id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEntry {
    pub seq: u64,
    pub time: String,
    pub action: String,
    pub actor: String,
    pub key_id: Option<String>,
    pub version: Option<u32>,
    pub outcome: Outcome,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// A signed chain head.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    pub signature: String,
}

/// An entry to append.
pub(crate) struct Draft<'a> {
    pub action: &'a str,
    pub actor: &'a str,
    pub key_id: Option<&'a [u8; 16]>,
    pub version: Option<u32>,
    pub outcome: Outcome,
    pub detail: String,
}

/// An audit entry for display.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub time: String,
    pub action: String,
    pub actor: String,
    pub key_id: Option<String>,
    /// Resolved from the (sealed) key record while the vault is unlocked.
    pub key_name: Option<String>,
    pub version: Option<u32>,
    pub outcome: Outcome,
    pub detail: String,
    pub hash: String,
    pub prev_hash: String,
    /// Covered by a signed checkpoint.
    pub signed: bool,
}

/// The result of checking a chain.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub ok: bool,
    /// The vault the log belongs to.
    pub vault_id: String,
    /// Whether the audit key was checked against a known one (the vault's, or `--expect-key`). An
    /// unpinned export proves only that it is self-consistent.
    pub key_pinned: bool,
    pub entries: u64,
    pub signed_through: Option<u64>,
    pub unsigned_tail: u64,
    pub first_broken: Option<u64>,
    pub head_hash: Option<String>,
    pub audit_key_fingerprint: String,
    pub message: String,
}

fn field(h: &mut Sha256, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            h.update((b.len() as u32).to_be_bytes());
            h.update(b);
        }
        None => h.update(u32::MAX.to_be_bytes()),
    }
}

/// SHA-256 over the domain and the length-prefixed fields, in order (see docs/audit-format.md).
pub(crate) fn entry_hash(e: &RawEntry) -> String {
    let mut h = Sha256::new();
    h.update(ENTRY_DOMAIN);
    field(&mut h, Some(e.seq.to_string().as_bytes()));
    field(&mut h, Some(e.time.as_bytes()));
    field(&mut h, Some(e.action.as_bytes()));
    field(&mut h, Some(e.actor.as_bytes()));
    field(&mut h, e.key_id.as_deref().map(str::as_bytes));
    field(
        &mut h,
        e.version
            .map(|v| v.to_string())
            .as_deref()
            .map(str::as_bytes),
    );
    field(&mut h, Some(e.outcome.as_str().as_bytes()));
    field(&mut h, Some(e.detail.as_bytes()));
    field(&mut h, Some(e.prev_hash.as_bytes()));
    hex::encode(h.finalize())
}

fn checkpoint_message(vault_id: &[u8; 16], seq: u64, hash_hex: &str) -> Option<Vec<u8>> {
    let hash = crate::secret::hex_decode(hash_hex)?;
    let mut m = Vec::with_capacity(CHECKPOINT_DOMAIN.len() + 16 + 8 + 32);
    m.extend_from_slice(CHECKPOINT_DOMAIN);
    m.extend_from_slice(vault_id);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&hash);
    Some(m)
}

/// Short fingerprint of the audit public key, to be written down and compared when verifying an export.
pub fn key_fingerprint(public: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(KEY_FINGERPRINT_DOMAIN);
    h.update(public);
    let hex = hex::encode(&h.finalize()[..16]);
    hex.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("-")
}

/// Append an entry inside the caller's transaction; sign the new head if the signing key is at hand
/// (it is not while the vault is locked, e.g. for a failed unlock).
pub(crate) fn append(
    tx: &Transaction<'_>,
    vault_id: &[u8; 16],
    signer: Option<&SigningKey>,
    draft: Draft<'_>,
) -> Result<RawEntry> {
    let last: Option<(i64, String)> = tx
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (seq, prev_hash) = match last {
        Some((s, h)) => (s as u64 + 1, h),
        None => (1, GENESIS.to_string()),
    };
    let mut e = RawEntry {
        seq,
        time: rfc3339(now()),
        action: draft.action.into(),
        actor: draft.actor.into(),
        key_id: draft.key_id.map(hex::encode),
        version: draft.version,
        outcome: draft.outcome,
        detail: draft.detail,
        prev_hash,
        hash: String::new(),
    };
    e.hash = entry_hash(&e);
    let json = serde_json::to_string(&e).map_err(|err| Error::Internal(err.to_string()))?;
    tx.execute(
        "INSERT INTO audit (seq, hash, entry) VALUES (?1, ?2, ?3)",
        params![seq as i64, e.hash, json],
    )?;
    if let Some(sk) = signer {
        let msg = checkpoint_message(vault_id, seq, &e.hash)
            .ok_or_else(|| Error::Internal("bad hash".into()))?;
        let sig = sk.sign(&msg);
        tx.execute(
            "INSERT OR REPLACE INTO audit_checkpoints (seq, hash, signature) VALUES (?1, ?2, ?3)",
            params![seq as i64, e.hash, hex::encode(sig.to_bytes())],
        )?;
    }
    Ok(e)
}

/// Read the whole log. A row that does not parse is kept as a placeholder that fails verification.
pub(crate) fn load(conn: &rusqlite::Connection) -> Result<(Vec<RawEntry>, Vec<Checkpoint>)> {
    let mut stmt = conn.prepare("SELECT seq, entry FROM audit ORDER BY seq")?;
    let entries = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
        .collect::<std::result::Result<Vec<_>, _>>()?
        .into_iter()
        .map(|(seq, json)| serde_json::from_str(&json).unwrap_or_else(|_| unreadable(seq as u64)))
        .collect();
    let mut stmt =
        conn.prepare("SELECT seq, hash, signature FROM audit_checkpoints ORDER BY seq")?;
    let checkpoints = stmt
        .query_map([], |r| {
            Ok(Checkpoint {
                seq: r.get::<_, i64>(0)? as u64,
                hash: r.get(1)?,
                signature: r.get(2)?,
            })
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((entries, checkpoints))
}

fn unreadable(seq: u64) -> RawEntry {
    RawEntry {
        seq,
        time: String::new(),
        action: "<unreadable>".into(),
        actor: String::new(),
        key_id: None,
        version: None,
        outcome: Outcome::Failed,
        detail: String::new(),
        prev_hash: String::new(),
        hash: String::new(),
    }
}

/// Check hashes, links, sequence numbers and checkpoints, and that every entry the vault wrote while
/// unlocked has its own signed checkpoint. Names the first broken entry. With `all_signatures` false only
/// the newest checkpoint's signature is checked (the quick check at unlock).
pub(crate) fn verify_chain(
    vault_id: &[u8; 16],
    public: &VerifyingKey,
    entries: &[RawEntry],
    checkpoints: &[Checkpoint],
    all_signatures: bool,
) -> AuditReport {
    let fingerprint = key_fingerprint(public.as_bytes());
    let broken = |seq: u64, message: String| AuditReport {
        ok: false,
        vault_id: hex::encode(vault_id),
        key_pinned: true,
        entries: entries.len() as u64,
        signed_through: None,
        unsigned_tail: 0,
        first_broken: Some(seq),
        head_hash: None,
        audit_key_fingerprint: fingerprint.clone(),
        message,
    };
    let mut prev = GENESIS.to_string();
    for (i, e) in entries.iter().enumerate() {
        let expected_seq = i as u64 + 1;
        if e.seq != expected_seq {
            return broken(
                expected_seq,
                format!("entry {expected_seq} is missing (found entry {} in its place): entries were removed or reordered", e.seq),
            );
        }
        if entry_hash(e) != e.hash {
            return broken(
                e.seq,
                format!(
                    "entry {} was altered: its content does not match its hash",
                    e.seq
                ),
            );
        }
        if e.prev_hash != prev {
            let at = e.seq.saturating_sub(1).max(1);
            return broken(
                at,
                format!(
                    "entry {at} was altered or replaced: entry {} no longer chains to it",
                    e.seq
                ),
            );
        }
        prev = e.hash.clone();
    }
    // Checkpoints: a valid signature over an existing entry's hash.
    let last_checkpoint = checkpoints.iter().map(|c| c.seq).max();
    let mut covered = std::collections::HashSet::with_capacity(checkpoints.len());
    for c in checkpoints {
        if all_signatures || Some(c.seq) == last_checkpoint {
            let sig_ok = checkpoint_message(vault_id, c.seq, &c.hash)
                .zip(
                    crate::secret::hex_decode(&c.signature)
                        .and_then(|b| Signature::from_slice(&b).ok()),
                )
                .is_some_and(|(m, s)| public.verify_strict(&m, &s).is_ok());
            if !sig_ok {
                return broken(
                    c.seq,
                    format!(
                        "the signed checkpoint at entry {} has an invalid signature: it was forged or altered",
                        c.seq
                    ),
                );
            }
        }
        let Some(e) = entries.get((c.seq as usize).wrapping_sub(1)) else {
            return broken(
                entries.len() as u64 + 1,
                format!(
                    "the log ends at entry {} but a signed checkpoint covers entry {}: entries were removed",
                    entries.len(),
                    c.seq
                ),
            );
        };
        if c.hash != e.hash {
            return broken(
                c.seq,
                format!(
                    "entry {} was altered: it differs from what the signed checkpoint covers",
                    c.seq
                ),
            );
        }
        covered.insert(c.seq);
    }
    // The vault signs every entry it writes while unlocked; only a failed unlock is written without
    // the signing key. Any other entry without its own checkpoint was inserted or rewritten.
    for e in entries {
        if !covered.contains(&e.seq) && !is_written_locked(e) {
            return broken(
                e.seq,
                format!(
                    "entry {} has no signed checkpoint of its own: it was inserted or rewritten, or its checkpoint was deleted",
                    e.seq
                ),
            );
        }
    }
    let n = entries.len() as u64;
    let Some(through) = last_checkpoint else {
        return AuditReport {
            ok: false,
            vault_id: hex::encode(vault_id),
            key_pinned: true,
            entries: n,
            signed_through: None,
            unsigned_tail: n,
            first_broken: None,
            head_hash: entries.last().map(|e| e.hash.clone()),
            audit_key_fingerprint: fingerprint,
            message: "no signed checkpoint: the log cannot be trusted".into(),
        };
    };
    let unsigned_tail = n.saturating_sub(through);
    let mut message = format!(
        "audit chain OK: {n} entries, hash-chained, signed through entry {through} by audit key {fingerprint}"
    );
    if unsigned_tail > 0 {
        message.push_str(&format!(
            "; the last {unsigned_tail} entries are failed unlock attempts, written while the vault was locked: chained, and signed at the next unlock"
        ));
    }
    AuditReport {
        ok: true,
        vault_id: hex::encode(vault_id),
        key_pinned: true,
        entries: n,
        signed_through: Some(through),
        unsigned_tail,
        first_broken: None,
        head_hash: entries.last().map(|e| e.hash.clone()),
        audit_key_fingerprint: fingerprint,
        message,
    }
}

/// An entry the vault writes without its signing key: a failed unlock (the only thing that happens
/// while the vault is locked).
pub(crate) fn is_written_locked(e: &RawEntry) -> bool {
    e.action == "vault.unlock"
        && e.outcome == Outcome::Failed
        && e.key_id.is_none()
        && e.version.is_none()
}

/// First line of an export.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportHeader {
    pub format: String,
    pub version: u32,
    pub vault_id: String,
    pub audit_public_key: String,
    pub audit_key_fingerprint: String,
    pub exported: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointLine {
    checkpoint: Checkpoint,
}

/// Write the JSON Lines export: header, entries, checkpoints.
pub(crate) fn write_export(
    out: &mut dyn Write,
    vault_id: &[u8; 16],
    public: &VerifyingKey,
    entries: &[RawEntry],
    checkpoints: &[Checkpoint],
) -> Result<()> {
    let header = ExportHeader {
        format: EXPORT_FORMAT.into(),
        version: 1,
        vault_id: hex::encode(vault_id),
        audit_public_key: hex::encode(public.as_bytes()),
        audit_key_fingerprint: key_fingerprint(public.as_bytes()),
        exported: rfc3339(now()),
    };
    let io = |e| Error::io("audit export", e);
    writeln!(out, "{}", json(&header)?).map_err(io)?;
    for e in entries {
        writeln!(out, "{}", json(e)?).map_err(io)?;
    }
    for c in checkpoints {
        writeln!(
            out,
            "{}",
            json(&CheckpointLine {
                checkpoint: c.clone()
            })?
        )
        .map_err(io)?;
    }
    out.flush().map_err(io)
}

fn json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Internal(e.to_string()))
}

/// Verify an exported log without the vault or its passphrase. If `expected_fingerprint` is given the
/// export's audit key must match it (otherwise anyone could re-sign a forged log with their own key).
pub fn verify_export(path: &Path, expected_fingerprint: Option<&str>) -> Result<AuditReport> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path.display(), e))?;
    let mut lines = std::io::BufReader::new(file).lines();
    let malformed = |line: usize, detail: String| Error::MalformedExport { line, detail };
    let header_line = lines
        .next()
        .ok_or_else(|| malformed(1, "the file is empty".into()))?
        .map_err(|e| Error::io(path.display(), e))?;
    let header: ExportHeader = serde_json::from_str(&header_line)
        .map_err(|e| malformed(1, format!("not an audit export header ({e})")))?;
    if header.format != EXPORT_FORMAT || header.version != 1 {
        return Err(malformed(1, "unknown export format or version".into()));
    }
    let vault_id: [u8; 16] = crate::secret::hex_decode(&header.vault_id)
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| malformed(1, "bad vault_id".into()))?;
    let public: VerifyingKey = crate::secret::hex_decode(&header.audit_public_key)
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| malformed(1, "bad audit_public_key".into()))?;
    let fingerprint = key_fingerprint(public.as_bytes());
    if header.audit_key_fingerprint != fingerprint {
        return Err(malformed(
            1,
            "the header's audit_key_fingerprint does not match its audit_public_key".into(),
        ));
    }
    if let Some(expected) = expected_fingerprint {
        if expected.trim().to_ascii_lowercase() != fingerprint {
            return Err(Error::Tampered(format!(
                "the export is signed by audit key {fingerprint}, not the expected {expected}"
            )));
        }
    }
    let mut entries = Vec::new();
    let mut checkpoints = Vec::new();
    for (i, line) in lines.enumerate() {
        let lineno = i + 2;
        let line = line.map_err(|e| Error::io(path.display(), e))?;
        if line.trim().is_empty() {
            continue;
        }
        if let Ok(c) = serde_json::from_str::<CheckpointLine>(&line) {
            checkpoints.push(c.checkpoint);
            continue;
        }
        match serde_json::from_str::<RawEntry>(&line) {
            Ok(e) if checkpoints.is_empty() => entries.push(e),
            Ok(_) => return Err(malformed(lineno, "an entry after the checkpoints".into())),
            Err(err) => {
                let seq = entries.len() + 1;
                return Ok(AuditReport {
                    ok: false,
                    vault_id: header.vault_id.clone(),
                    key_pinned: expected_fingerprint.is_some(),
                    entries: entries.len() as u64,
                    signed_through: None,
                    unsigned_tail: 0,
                    first_broken: Some(seq as u64),
                    head_hash: None,
                    audit_key_fingerprint: fingerprint,
                    message: format!(
                        "entry {seq} (line {lineno}) is damaged and does not parse ({err}): the export was altered"
                    ),
                });
            }
        }
    }
    let mut report = verify_chain(&vault_id, &public, &entries, &checkpoints, true);
    report.key_pinned = expected_fingerprint.is_some();
    if !report.key_pinned && report.ok {
        report.message.push_str(
            "; WARNING: the audit key was not pinned: compare its fingerprint with the one recorded for this vault",
        );
    }
    Ok(report)
}
