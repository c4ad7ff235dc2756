//! The recovery escrow: a recovery key that wraps the vault root key is split M-of-N among custodians
//! in a ceremony (script, administrator, witness, each step initialled by a touch), recorded in a
//! hash-chained transcript signed by the vault audit key. Later M shares recover the vault (new
//! passphrase), and drills check shares one by one without unlocking anything.
//!
//! Stored in the vault (in the clear, needed while locked, covered by the state seal): the share set
//! (M, N, per-share commitments, a digest of the recovery key) and the root key sealed under the
//! recovery key. Shares are never stored.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::{Draft, Outcome};
use crate::clock::{now, rfc3339, Timestamp};
use crate::custody::{load_custodians, CustodianRow, Evidence};
use crate::error::{Error, Result};
use crate::hardware::{DeviceIdentity, Fido2Client};
use crate::policy::Role;
use crate::secret::{random_bytes, Passphrase, SecretKey};
use crate::sharing::{self, Share, ShareSet};
use crate::vault::{begin, open_session, Vault};
use crate::{kdf, store};

const TRANSCRIPT_FORMAT: &str = "custos-transcript-v1";
const STEP_DOMAIN: &[u8] = b"custos-transcript-step-v1\0";
const SIGN_DOMAIN: &[u8] = b"custos-transcript-head-v1\0";
/// The default drill policy: each share is checked at least every 180 days.
pub const DEFAULT_DRILL_DAYS: u32 = 180;
/// The longest drill interval an escrow may set (ten years).
pub const MAX_DRILL_DAYS: u32 = 3650;

fn default_drill_days() -> u32 {
    DEFAULT_DRILL_DAYS
}

/// How a share is handed to its custodian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Medium {
    /// On screen: words (and a QR code in the window), typed back to prove they were written down.
    Screen,
    /// A printable share card.
    Card,
    /// An age file that only the holder's YubiKey PIV key (any of their enrolled ones) opens.
    File,
    /// An age file locked with a passphrase the holder chooses (opens with stock `age -d` too).
    PassphraseFile,
}

impl Medium {
    pub fn parse(s: &str) -> Result<Medium> {
        match s {
            "screen" => Ok(Medium::Screen),
            "card" => Ok(Medium::Card),
            "file" => Ok(Medium::File),
            "passphrase-file" => Ok(Medium::PassphraseFile),
            other => Err(Error::BadShare(format!(
                "unknown medium {other:?}: use screen, card, file (encrypted to the holder's YubiKey) or passphrase-file"
            ))),
        }
    }
    /// The medium's name, as `parse` takes it and the transcript writes it.
    pub fn name(self) -> &'static str {
        match self {
            Medium::Screen => "screen",
            Medium::Card => "card",
            Medium::File => "file",
            Medium::PassphraseFile => "passphrase-file",
        }
    }
    /// Whether the share goes out as an encrypted file.
    pub fn is_file(self) -> bool {
        matches!(self, Medium::File | Medium::PassphraseFile)
    }
}

/// Who takes part, and the split.
#[derive(Debug, Clone)]
pub struct EscrowPlan {
    pub threshold: u8,
    pub holders: Vec<(String, Medium)>,
    pub witness: String,
    /// The escrow's drill policy: each share is checked by its holder at least this often (days).
    /// `None`: a rekey keeps the current escrow's policy; a first escrow takes the default.
    pub drill_every_days: Option<u32>,
}

/// What the shells need from the room: each participant's own key for their touch (`enrolled`: the
/// devices of their active FIDO2 keys; demo twins say so), and a way to show a step of the script as
/// it happens.
pub trait Room {
    fn key_of(
        &mut self,
        custodian: &str,
        enrolled: &[DeviceIdentity],
    ) -> Result<Box<dyn Fido2Client>>;
    fn step(&mut self, _text: &str) {}
}

/// One share to hand out. `share` is secret.
#[derive(Debug)]
pub struct HandOut {
    pub custodian: String,
    pub medium: Medium,
    pub share: Share,
    /// For [`Medium::File`]: the holder's enrolled PIV public keys, the file's recipients.
    pub piv_keys: Vec<Vec<u8>>,
}

impl HandOut {
    /// The share as an encrypted share file (armored age): to the holder's PIV keys for
    /// [`Medium::File`], to `passphrase` for [`Medium::PassphraseFile`].
    pub fn share_file(&self, passphrase: Option<&Passphrase>) -> Result<Vec<u8>> {
        let lock = match (self.medium, passphrase) {
            (Medium::File, _) => crate::sharefile::ShareLock::Piv {
                public_keys: &self.piv_keys,
            },
            (Medium::PassphraseFile, Some(p)) => crate::sharefile::ShareLock::Passphrase(p),
            (Medium::PassphraseFile, None) => return Err(Error::EmptyPassphrase),
            (Medium::Screen | Medium::Card, _) => {
                return Err(Error::Internal(format!(
                    "share #{} goes out by {:?}, not as a file",
                    self.share.index, self.medium
                )))
            }
        };
        crate::sharefile::seal(&self.share, &self.custodian, lock)
    }

    pub fn words(&self) -> Vec<&'static str> {
        self.share.to_words()
    }
    /// The share as uppercase base32 (no padding), for a QR code in alphanumeric mode.
    pub fn qr_text(&self) -> String {
        self.share.qr_text()
    }

    /// The custodian typed the words back: they must be exactly this share. A mistyped word is named
    /// by its position (the words' checksum); a valid share that is not this one is refused as such.
    pub fn confirm(&self, typed: &str) -> Result<()> {
        let back = Share::from_words(typed)?;
        if back != self.share {
            return Err(Error::BadShare(format!(
                "these words are a valid share, but not share #{} of ceremony {}: copy them again \
                 from the screen",
                self.share.index,
                hex::encode(self.share.ceremony)
            )));
        }
        Ok(())
    }
}

/// A QR code of `text` (a share's base32 text) as an SVG document, error correction M.
pub fn qr_svg(text: &str) -> Result<String> {
    Ok(
        qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
            .map_err(|e| Error::Internal(format!("QR code: {e}")))?
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .build(),
    )
}

/// How the hand-out of one share went, as the witness records it.
#[derive(Debug, Clone, Serialize)]
pub struct HandOutRecord {
    pub custodian: String,
    pub index: u8,
    pub medium: Medium,
    /// The custodian typed the words back correctly.
    pub confirmed: bool,
    /// The serial of the tamper-evident bag a card was sealed in, typed by the witness.
    pub bag_serial: Option<String>,
    /// For a share file: it was written out.
    pub file_written: bool,
}

/// What the witness records at the end of the hand-out.
#[derive(Debug, Clone, Copy, Default)]
pub struct HandOutReport<'a> {
    /// Screen shares whose holders typed the words back.
    pub confirmed: &'a [u8],
    /// The tamper-evident bag serial of each card, typed by the witness.
    pub bag_serials: &'a [(u8, String)],
    /// File shares whose file was never written (the window writes them during the hand-out).
    pub unwritten: &'a [u8],
    /// A deviation from the script, in the witness's words.
    pub note: Option<&'a str>,
}

/// A step the witness adds to a stored transcript (see `Vault::witness_step`).
struct WitnessStep<'a> {
    /// What the room is told: "Witness W {says}. Touch your key."
    says: &'static str,
    action: &'static str,
    detail: String,
    audit: &'static str,
    audit_prefix: &'static str,
    /// The escrow record to store with it, when the step changes it.
    recovery: Option<&'a RecoveryRecord>,
}

/// The witness's note, trimmed; `None` when empty. At most 2000 characters.
fn witness_note(note: Option<&str>) -> Result<Option<&str>> {
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.chars().count() > 2000) {
        return Err(Error::BadShare(
            "the witness's note is too long (2000 characters at most)".into(),
        ));
    }
    Ok(note)
}

/// A past ceremony, for the list.
#[derive(Debug, Clone, Serialize)]
pub struct CeremonySummary {
    pub ceremony: String,
    pub kind: String,
    /// When its first step happened.
    pub time: String,
    pub steps: usize,
    pub head: String,
}

/// A share checked on entry at recovery, while the vault is locked.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryShareCheck {
    pub index: u8,
    pub fingerprint: String,
    pub threshold: u8,
    pub total: u8,
    pub ceremony: String,
}

/// Check one share against the vault's escrow without unlocking anything (the escrow record is kept
/// in the clear for this): the ceremony, the M-of-N and the share's commitment.
pub fn check_recovery_share(path: &Path, share: &Share) -> Result<RecoveryShareCheck> {
    let conn = store::open(path)?;
    let r = recovery_of(&conn)?.ok_or_else(|| {
        Error::BadShare("this vault has no escrow: it cannot be recovered from shares".into())
    })?;
    sharing::check_share(&r.set, share)?;
    Ok(RecoveryShareCheck {
        index: share.index,
        fingerprint: share.fingerprint(),
        threshold: r.set.threshold,
        total: r.set.total,
        ceremony: r.set.ceremony,
    })
}

#[derive(Debug)]
pub struct EscrowOutcome {
    pub ceremony: String,
    pub shares: Vec<HandOut>,
    pub transcript: Transcript,
}

/// What the vault keeps of the escrow.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoveryRecord {
    set: ShareSet,
    /// Custodian per share index (1-based order).
    holders: Vec<String>,
    /// The root key sealed under the recovery key, hex.
    wrapped_root: String,
    created: Timestamp,
    /// Last successful drill per share index.
    drills: BTreeMap<u8, Timestamp>,
    /// Medium per share index (1-based order).
    #[serde(default)]
    media: Vec<Medium>,
    /// Whether the hand-out has been recorded (the witness's step in the transcript).
    #[serde(default)]
    handed_out: bool,
    /// The drill policy, days (escrows made before it existed have the default).
    #[serde(default = "default_drill_days")]
    drill_every_days: u32,
}

/// A ceremony transcript: hash-chained steps, the head signed by the vault audit key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transcript {
    pub format: String,
    pub ceremony: String,
    pub kind: String,
    pub vault_id: String,
    /// The vault audit key (hex) that signs the head; check its fingerprint against the one recorded
    /// when the vault was created.
    pub audit_public: String,
    pub steps: Vec<Step>,
    pub head: String,
    pub signature: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub seq: u32,
    pub time: String,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub detail: String,
    pub presence: Option<Evidence>,
    pub prev_hash: String,
    pub hash: String,
}

fn step_hash(s: &Step) -> Result<String> {
    let mut unhashed = s.clone();
    unhashed.hash = String::new();
    let json = serde_json::to_vec(&unhashed).map_err(|e| Error::Internal(e.to_string()))?;
    let mut h = Sha256::new();
    h.update(STEP_DOMAIN);
    h.update((json.len() as u64).to_be_bytes());
    h.update(&json);
    Ok(hex::encode(h.finalize()))
}

fn head_message(t: &Transcript) -> Vec<u8> {
    let mut m = SIGN_DOMAIN.to_vec();
    for part in [&t.ceremony, &t.kind, &t.vault_id, &t.head] {
        m.extend_from_slice(&(part.len() as u64).to_be_bytes());
        m.extend_from_slice(part.as_bytes());
    }
    m
}

struct Recorder {
    steps: Vec<Step>,
}

impl Recorder {
    fn add(
        &mut self,
        actor: &str,
        role: &str,
        action: &str,
        detail: String,
        presence: Option<Evidence>,
    ) -> Result<()> {
        let prev_hash = self
            .steps
            .last()
            .map_or_else(|| "0".repeat(64), |s| s.hash.clone());
        let mut step = Step {
            seq: self.steps.len() as u32 + 1,
            time: rfc3339(now()),
            actor: actor.into(),
            role: role.into(),
            action: action.into(),
            detail,
            presence,
            prev_hash,
            hash: String::new(),
        };
        step.hash = step_hash(&step)?;
        self.steps.push(step);
        Ok(())
    }
}

/// Check an exported transcript without the vault: the chain, and the signature by the audit key it
/// names (pinned to `expected_fingerprint` when given).
pub fn verify_transcript(path: &Path, expected_fingerprint: Option<&str>) -> Result<Transcript> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
    let t: Transcript = serde_json::from_str(&text)
        .map_err(|e| Error::BadTranscript(format!("not a Custos transcript ({e})")))?;
    if t.format != TRANSCRIPT_FORMAT {
        return Err(Error::BadTranscript(format!(
            "unknown format {:?}",
            t.format
        )));
    }
    let public = check_transcript(&t)?;
    if let Some(fp) = expected_fingerprint {
        if crate::audit::key_fingerprint(&public) != fp {
            return Err(Error::BadTranscript(format!(
                "signed by audit key {}, not the expected {fp}",
                crate::audit::key_fingerprint(&public)
            )));
        }
    }
    Ok(t)
}

/// The chain of `t`'s steps, its head and its signature by the audit key it names (returned).
fn check_transcript(t: &Transcript) -> Result<[u8; 32]> {
    let mut prev = "0".repeat(64);
    for s in &t.steps {
        if s.prev_hash != prev || step_hash(s)? != s.hash {
            return Err(Error::BadTranscript(format!(
                "step {} ({}) was altered: its hash does not match",
                s.seq, s.action
            )));
        }
        prev = s.hash.clone();
    }
    if t.head != prev {
        return Err(Error::BadTranscript(
            "the head does not match the last step: steps were removed or added".into(),
        ));
    }
    let public: [u8; 32] = hex::decode(&t.audit_public)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::BadTranscript("the audit key is malformed".into()))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&public)
        .map_err(|_| Error::BadTranscript("the audit key is invalid".into()))?;
    let sig: [u8; 64] = hex::decode(&t.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::BadTranscript("the signature is malformed".into()))?;
    key.verify_strict(
        &head_message(t),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .map_err(|_| Error::BadTranscript("the signature does not verify".into()))?;
    Ok(public)
}

/// The name of a share card or share file: `<ceremony>-share-<index>-<custodian>.<ext>`, the
/// custodian's name reduced to letters, digits, `-` and `_` (anything else becomes `_`), so that no
/// name can leave the directory or hide the file.
pub fn share_file_name(ceremony: &str, index: u8, custodian: &str, ext: &str) -> String {
    let name: String = custodian
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{ceremony}-share-{index}-{name}.{ext}")
}

/// The state of the escrow for the drill screen and `ceremony list`.
#[derive(Debug, Clone, Serialize)]
pub struct EscrowStatus {
    pub ceremony: String,
    pub threshold: u8,
    pub total: u8,
    pub created: String,
    /// The drill policy: each share is checked at least every this many days.
    pub drill_every_days: u32,
    /// How many shares are overdue for a drill now.
    pub overdue: usize,
    pub shares: Vec<ShareStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShareStatus {
    pub index: u8,
    pub custodian: String,
    pub fingerprint: String,
    pub last_drill: Option<String>,
    /// "verified" (drilled within the policy), "stale" (drilled, but longer ago) or "never".
    pub status: String,
    /// When the next drill is due: the policy's days after the last drill, or after the escrow.
    pub due: String,
    /// The due date has passed.
    pub overdue: bool,
}

/// A share's drill state under a policy of `every` seconds at time `now`: its status ("verified"
/// within the policy, "stale" after, "never"), when the next drill is due (`every` after the last
/// drill, or after the escrow was made), and whether that date has passed.
fn drill_state(
    last: Option<Timestamp>,
    created: Timestamp,
    every: i64,
    now: Timestamp,
) -> (&'static str, Timestamp, bool) {
    let due = last.unwrap_or(created).saturating_add(every);
    let status = match last {
        None => "never",
        Some(d) if now.saturating_sub(d) <= every => "verified",
        Some(_) => "stale",
    };
    (status, due, now > due)
}

fn recovery_of(conn: &rusqlite::Connection) -> Result<Option<RecoveryRecord>> {
    store::get_meta(conn, "recovery")?
        .map(|b| {
            serde_json::from_slice(&b)
                .map_err(|_| Error::Tampered("the vault's escrow record is unreadable".into()))
        })
        .transpose()
}

impl Vault {
    /// Run the escrow ceremony (or a rekey, when an escrow exists: the old wrapping is destroyed and
    /// the old shares are dead). The acting custodian is the administrator (an officer); the witness
    /// and every share holder touch their own keys at their steps.
    pub fn escrow(&mut self, plan: &EscrowPlan, room: &mut dyn Room) -> Result<EscrowOutcome> {
        let result = self.escrow_inner(plan, room);
        if let Err(e) = &result {
            self.record_refusal("ceremony.escrow", (None, None), e);
        }
        result
    }

    fn escrow_inner(&mut self, plan: &EscrowPlan, room: &mut dyn Room) -> Result<EscrowOutcome> {
        let custodians = load_custodians(&self.conn, &self.ctx)?;
        let find = |name: &str| -> Result<&CustodianRow> {
            custodians
                .iter()
                .find(|c| c.record.name == name)
                .ok_or_else(|| Error::NoSuchCustodian(name.into()))
        };
        let admin_name = self.acting.clone().ok_or(Error::IdentityRequired)?;
        let admin = find(&admin_name)?;
        if !admin.record.roles.contains(&Role::Officer) {
            return Err(Error::RoleNotAllowed {
                who: admin_name.clone(),
                operation: "administer a ceremony".into(),
                needed: "officer".into(),
                has: crate::policy::roles_string(&admin.record.roles),
            });
        }
        let witness = find(&plan.witness)?;
        if let Some(days) = plan
            .drill_every_days
            .filter(|d| *d == 0 || *d > MAX_DRILL_DAYS)
        {
            return Err(Error::BadShare(format!(
                "a drill every {days} days is not a policy: choose 1 to {MAX_DRILL_DAYS} days (the default is {DEFAULT_DRILL_DAYS})"
            )));
        }
        let total = plan.holders.len();
        if total > sharing::MAX_SHARES as usize
            || plan.threshold < 2
            || plan.threshold as usize > total
        {
            return Err(Error::BadShare(format!(
                "{}-of-{total} is not allowed: use 2 ≤ M ≤ N ≤ {}",
                plan.threshold,
                sharing::MAX_SHARES
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (h, _) in &plan.holders {
            let c = find(h)?;
            if !seen.insert(h.as_str()) {
                return Err(Error::SeparationOfDuties(format!(
                    "{h} is named twice as a share holder"
                )));
            }
            if !c.record.roles.contains(&Role::Custodian) {
                return Err(Error::RoleNotAllowed {
                    who: h.clone(),
                    operation: "hold a share".into(),
                    needed: "custodian".into(),
                    has: crate::policy::roles_string(&c.record.roles),
                });
            }
        }
        for (h, medium) in &plan.holders {
            if *medium == Medium::File && find(h)?.record.piv_public_keys().is_empty() {
                return Err(Error::BadShare(format!(
                    "{h} has no YubiKey PIV key enrolled, and a `file` share is encrypted to it: enrol one first (custodian enroll {h} --piv) or choose another medium"
                )));
            }
        }
        if plan.witness == admin_name || seen.contains(plan.witness.as_str()) {
            return Err(Error::SeparationOfDuties(
                "the witness must be neither the administrator nor a share holder".into(),
            ));
        }
        let previous = recovery_of(&self.conn)?;
        let drill_every_days = plan
            .drill_every_days
            .or(previous.as_ref().map(|p| p.drill_every_days))
            .unwrap_or(DEFAULT_DRILL_DAYS);
        let kind = if previous.is_some() {
            "rekey"
        } else {
            "escrow"
        };
        let ceremony_bytes: [u8; 8] = random_bytes()?;
        let ceremony = hex::encode(ceremony_bytes);
        let mut rec = Recorder { steps: Vec::new() };
        let admin_row = CustodianRow {
            id: admin.id,
            record: admin.record.clone(),
        };
        let witness_row = CustodianRow {
            id: witness.id,
            record: witness.record.clone(),
        };
        let holders: Vec<CustodianRow> = plan
            .holders
            .iter()
            .map(|(h, _)| {
                find(h).map(|c| CustodianRow {
                    id: c.id,
                    record: c.record.clone(),
                })
            })
            .collect::<Result<_>>()?;

        // 1. The administrator opens the ceremony.
        let script = format!(
            "{kind} {}-of-{total}, each share drilled at least every {} days: administrator {admin_name}, witness {}, holders {}",
            plan.threshold,
            drill_every_days,
            plan.witness,
            plan.holders
                .iter()
                .map(|(h, m)| format!("{h} ({})", m.name()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        room.step(&format!(
            "1. {admin_name} opens the ceremony: {script}. Touch your key."
        ));
        let e = self.ceremony_touch(&admin_row, &ceremony, 1, room)?;
        rec.add(&admin_name, "administrator", "open", script, Some(e))?;
        // 2. The witness confirms they are present.
        room.step(&format!(
            "2. Witness {} confirms the room and the script. Touch your key.",
            plan.witness
        ));
        let e = self.ceremony_touch(&witness_row, &ceremony, 2, room)?;
        rec.add(
            &plan.witness,
            "witness",
            "witness-present",
            "the witness is present".into(),
            Some(e),
        )?;
        // 3. Split, and check every share before anyone gets one.
        let recovery = SecretKey::generate()?;
        let (set, shares) = sharing::split(&recovery, plan.threshold, total as u8, ceremony_bytes)?;
        rec.add(
            &admin_name,
            "administrator",
            "split",
            format!(
                "recovery key split {}-of-{total}; every share checked to lie on one polynomial (any {} rebuild it); share fingerprints {}",
                plan.threshold,
                plan.threshold,
                shares.iter().map(|s| format!("#{} {}", s.index, s.fingerprint())).collect::<Vec<_>>().join(", ")
            ),
            None,
        )?;
        // 4. Each holder touches their key, then receives their share.
        let mut out = Vec::with_capacity(total);
        for ((row, (name, medium)), share) in holders.iter().zip(&plan.holders).zip(shares) {
            let n = rec.steps.len() as u32 + 1;
            room.step(&format!(
                "{n}. {name} receives share #{} by {}. Touch your key.",
                share.index,
                medium.name()
            ));
            let e = self.ceremony_touch(row, &ceremony, n, room)?;
            rec.add(
                name,
                "share holder",
                "hand-out",
                format!(
                    "share #{} (fingerprint {}) by {}",
                    share.index,
                    share.fingerprint(),
                    medium.name()
                ),
                Some(e),
            )?;
            out.push(HandOut {
                custodian: name.clone(),
                medium: *medium,
                share,
                piv_keys: if *medium == Medium::File {
                    row.record.piv_public_keys()
                } else {
                    Vec::new()
                },
            });
        }
        // 5. The witness closes.
        let n = rec.steps.len() as u32 + 1;
        room.step(&format!(
            "{n}. Witness {} closes the ceremony. Touch your key.",
            plan.witness
        ));
        let e = self.ceremony_touch(&witness_row, &ceremony, n, room)?;
        rec.add(
            &plan.witness,
            "witness",
            "close",
            match &previous {
                Some(p) => format!(
                    "the recovery wrapping of ceremony {} is destroyed: its shares are dead",
                    p.set.ceremony
                ),
                None => "escrow installed".into(),
            },
            Some(e),
        )?;

        let head = rec.steps.last().map(|s| s.hash.clone()).unwrap_or_default();
        let mut transcript = Transcript {
            format: TRANSCRIPT_FORMAT.into(),
            ceremony: ceremony.clone(),
            kind: kind.into(),
            vault_id: hex::encode(self.ctx.vault_id),
            audit_public: hex::encode(self.ctx.audit_public()),
            steps: rec.steps,
            head,
            signature: String::new(),
        };
        transcript.signature = hex::encode(self.ctx.sign(&head_message(&transcript)).to_bytes());
        let record = RecoveryRecord {
            set,
            holders: plan.holders.iter().map(|(h, _)| h.clone()).collect(),
            wrapped_root: hex::encode(self.ctx.wrap_root_for_recovery(&recovery)?),
            created: now(),
            drills: BTreeMap::new(),
            media: plan.holders.iter().map(|(_, m)| *m).collect(),
            handed_out: false,
            drill_every_days,
        };
        let record_json =
            serde_json::to_vec(&record).map_err(|e| Error::Internal(e.to_string()))?;
        let transcript_json =
            serde_json::to_string(&transcript).map_err(|e| Error::Internal(e.to_string()))?;
        let (conn, ctx) = (&mut self.conn, &self.ctx);
        let tx = begin(conn, ctx)?;
        store::set_meta(&tx, "recovery", &record_json)?;
        tx.execute(
            "INSERT INTO ceremonies (id, transcript) VALUES (?1, ?2)",
            rusqlite::params![&ceremony_bytes[..], transcript_json],
        )?;
        ctx.append(
            &tx,
            ctx.draft(
                if kind == "rekey" {
                    "ceremony.rekey"
                } else {
                    "ceremony.escrow"
                },
                None,
                None,
                format!(
                    "ceremony {ceremony}: {}-of-{total}; transcript head {}",
                    plan.threshold, transcript.head
                ),
            ),
        )?;
        tx.commit()?;
        store::checkpoint_wal(&self.conn)?;
        Ok(EscrowOutcome {
            ceremony,
            shares: out,
            transcript,
        })
    }

    fn ceremony_touch(
        &mut self,
        who: &CustodianRow,
        ceremony: &str,
        step: u32,
        room: &mut dyn Room,
    ) -> Result<Evidence> {
        let purpose = format!("ceremony {ceremony} step {step}");
        self.room_touch(who, &purpose, room)
    }

    /// `who` touches their own key for `purpose` (bound into the challenge).
    fn room_touch(
        &mut self,
        who: &CustodianRow,
        purpose: &str,
        room: &mut dyn Room,
    ) -> Result<Evidence> {
        let devices = who.record.fido2_devices();
        if devices.is_empty() {
            return Err(Error::NoAuthenticator(who.record.name.clone()));
        }
        let mut key = room.key_of(&who.record.name, &devices)?;
        self.presence(who, purpose.as_bytes(), Some(key.as_mut()))
    }

    /// The escrow's shares and their drill state; `None` when no escrow exists.
    pub fn escrow_status(&self) -> Result<Option<EscrowStatus>> {
        let Some(r) = recovery_of(&self.conn)? else {
            return Ok(None);
        };
        let t = now();
        let every = i64::from(r.drill_every_days) * 86_400;
        let shares: Vec<ShareStatus> = (1..=r.set.total)
            .map(|i| {
                let last = r.drills.get(&i).copied();
                let (status, due, overdue) = drill_state(last, r.created, every, t);
                ShareStatus {
                    index: i,
                    custodian: r.holders.get(i as usize - 1).cloned().unwrap_or_default(),
                    fingerprint: r
                        .set
                        .commitments
                        .get(i as usize - 1)
                        .map(|c| c[..16].to_string())
                        .unwrap_or_default(),
                    last_drill: last.map(rfc3339),
                    status: status.into(),
                    due: rfc3339(due),
                    overdue,
                }
            })
            .collect();
        Ok(Some(EscrowStatus {
            ceremony: r.set.ceremony.clone(),
            threshold: r.set.threshold,
            total: r.set.total,
            created: rfc3339(r.created),
            drill_every_days: r.drill_every_days,
            overdue: shares.iter().filter(|s| s.overdue).count(),
            shares,
        }))
    }

    /// Drill: check one share alone against the commitments (nothing is rebuilt or unlocked) and
    /// record the date.
    pub fn drill(&mut self, share: &Share) -> Result<ShareStatus> {
        let result = (|| {
            let mut r = recovery_of(&self.conn)?
                .ok_or_else(|| Error::BadShare("this vault has no escrow yet".into()))?;
            sharing::check_share(&r.set, share)?;
            r.drills.insert(share.index, now());
            let json = serde_json::to_vec(&r).map_err(|e| Error::Internal(e.to_string()))?;
            let (conn, ctx) = (&mut self.conn, &self.ctx);
            let tx = begin(conn, ctx)?;
            store::set_meta(&tx, "recovery", &json)?;
            ctx.append(
                &tx,
                ctx.draft(
                    "ceremony.drill",
                    None,
                    None,
                    format!(
                        "ceremony {}: share #{} ({}) verified against its commitment",
                        r.set.ceremony,
                        share.index,
                        share.fingerprint()
                    ),
                ),
            )?;
            tx.commit()?;
            Ok(())
        })();
        if let Err(e) = &result {
            self.record_refusal("ceremony.drill", (None, None), e);
        }
        result?;
        self.escrow_status()?
            .and_then(|s| s.shares.into_iter().find(|x| x.index == share.index))
            .ok_or_else(|| Error::Internal("drilled share vanished".into()))
    }

    /// Every ceremony held in the vault, oldest first.
    pub fn ceremonies(&self) -> Result<Vec<CeremonySummary>> {
        let mut stmt = self
            .conn
            .prepare("SELECT transcript FROM ceremonies ORDER BY rowid")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for text in rows {
            let t: Transcript = serde_json::from_str(&text?)
                .map_err(|_| Error::Tampered("a stored transcript is unreadable".into()))?;
            out.push(CeremonySummary {
                time: t.steps.first().map(|s| s.time.clone()).unwrap_or_default(),
                steps: t.steps.len(),
                ceremony: t.ceremony,
                kind: t.kind,
                head: t.head,
            });
        }
        Ok(out)
    }

    /// Close the hand-out of the current escrow: the witness records how each share went out
    /// (`confirmed`: the indices whose words were typed back; `bag_serials`: the tamper-evident bag
    /// of each card) and any deviation from the script (`note`), and initials it with a touch. The
    /// step is appended to the ceremony's transcript, which is signed again, and to the audit log.
    pub fn finish_handout(
        &mut self,
        ceremony: &str,
        report: &HandOutReport<'_>,
        room: &mut dyn Room,
    ) -> Result<(Vec<HandOutRecord>, Transcript)> {
        let result = self.finish_handout_inner(ceremony, report, room);
        if let Err(e) = &result {
            self.record_refusal("ceremony.handout", (None, None), e);
        }
        result
    }

    fn finish_handout_inner(
        &mut self,
        ceremony: &str,
        report: &HandOutReport<'_>,
        room: &mut dyn Room,
    ) -> Result<(Vec<HandOutRecord>, Transcript)> {
        let HandOutReport {
            confirmed,
            bag_serials,
            unwritten,
            note,
        } = *report;
        let mut r = recovery_of(&self.conn)?
            .filter(|r| r.set.ceremony == ceremony)
            .ok_or_else(|| {
                Error::BadShare(format!(
                    "ceremony {ceremony} is not the vault's current escrow: only its hand-out can be recorded"
                ))
            })?;
        if r.handed_out {
            return Err(Error::BadShare(format!(
                "the hand-out of ceremony {ceremony} is already recorded in its transcript"
            )));
        }
        let mut records: Vec<HandOutRecord> = r
            .holders
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let index = i as u8 + 1;
                let medium = r.media.get(i).copied().unwrap_or(Medium::Screen);
                // Typed back in the window's hand-out, or checked by its holder in a drill since
                // the escrow (the CLI's way: `ceremony drill --share-words`).
                let drilled = r.drills.get(&index).is_some_and(|t| *t >= r.created);
                HandOutRecord {
                    custodian: h.clone(),
                    index,
                    medium,
                    confirmed: confirmed.contains(&index) || (medium == Medium::Screen && drilled),
                    bag_serial: None,
                    file_written: medium.is_file() && !unwritten.contains(&index),
                }
            })
            .collect();
        for (index, serial) in bag_serials {
            let serial = serial.trim();
            let rec = records
                .iter_mut()
                .find(|h| h.index == *index)
                .ok_or_else(|| {
                    Error::BadShare(format!("there is no share #{index} in ceremony {ceremony}"))
                })?;
            if rec.medium != Medium::Card {
                return Err(Error::BadShare(format!(
                    "share #{index} ({}) is not a card: only cards go into tamper-evident bags",
                    rec.custodian
                )));
            }
            if serial.is_empty()
                || serial.len() > 64
                || !serial
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./ ".contains(c))
            {
                return Err(Error::BadShare(format!(
                    "bag serial {serial:?} for share #{index}: use up to 64 letters, digits, spaces or - _ . /"
                )));
            }
            rec.bag_serial = Some(serial.to_string());
        }
        for i in unwritten {
            if !records.iter().any(|h| h.index == *i && h.medium.is_file()) {
                return Err(Error::BadShare(format!(
                    "share #{i} is not a share file: only share files can be left unwritten"
                )));
            }
        }
        let lost = records
            .iter()
            .filter(|h| unwritten.contains(&h.index))
            .count();
        if records.len() - lost < r.set.threshold as usize {
            return Err(Error::BadShare(format!(
                "only {} of the {} shares would be handed out, fewer than the {} needed to recover: write the missing share files, or run a rekey",
                records.len() - lost,
                records.len(),
                r.set.threshold
            )));
        }
        for i in confirmed {
            if !records
                .iter()
                .any(|h| h.index == *i && h.medium == Medium::Screen)
            {
                return Err(Error::BadShare(format!(
                    "share #{i} is not a screen share: only screen shares are typed back"
                )));
            }
        }
        let note = witness_note(note)?;
        let detail = format!(
            "{}; deviations: {}",
            records
                .iter()
                .map(|h| {
                    let how = match (h.medium, h.confirmed) {
                        (_, true) => "confirmed: the words were typed back".to_string(),
                        (Medium::Card, false) => match &h.bag_serial {
                            Some(b) => format!("on a printed card, sealed in bag {b}"),
                            None => "on a printed card, NO bag serial recorded".to_string(),
                        },
                        (Medium::File | Medium::PassphraseFile, false) if !h.file_written => {
                            "NOT handed out: the share file was never written".into()
                        }
                        (Medium::File, false) => "in a share file for their YubiKey".into(),
                        (Medium::PassphraseFile, false) => {
                            "in a share file locked with their passphrase".into()
                        }
                        (Medium::Screen, false) => {
                            "NOT confirmed: the words were never typed back".into()
                        }
                    };
                    format!("share #{} ({}) {how}", h.index, h.custodian)
                })
                .collect::<Vec<_>>()
                .join("; "),
            note.unwrap_or("none noted by the witness")
        );
        r.handed_out = true;
        let transcript = self.witness_step(
            ceremony,
            WitnessStep {
                says: if note.is_some() {
                    "records the hand-out and a deviation"
                } else {
                    "records the hand-out"
                },
                action: "hand-out-finished",
                detail,
                audit: "ceremony.handout",
                audit_prefix: "hand-out finished",
                recovery: Some(&r),
            },
            room,
        )?;
        Ok((records, transcript))
    }

    /// A witness's note on a deviation from the script of `ceremony`, naming the step it concerns
    /// (`at_step`, 1-based, as shown in the transcript). The ceremony's witness touches their key;
    /// the note is appended to the transcript as a step of its own (chained and re-signed) and to
    /// the audit log. It can be written during the hand-out or at any time after, as the witness
    /// finds it; the time of the note is its own.
    pub fn record_deviation(
        &mut self,
        ceremony: &str,
        at_step: u32,
        note: &str,
        room: &mut dyn Room,
    ) -> Result<Transcript> {
        let result = self.record_deviation_inner(ceremony, at_step, note, room);
        if let Err(e) = &result {
            self.record_refusal("ceremony.deviation", (None, None), e);
        }
        result
    }

    fn record_deviation_inner(
        &mut self,
        ceremony: &str,
        at_step: u32,
        note: &str,
        room: &mut dyn Room,
    ) -> Result<Transcript> {
        let note = witness_note(Some(note))?.ok_or_else(|| {
            Error::BadShare("write the deviation down: the witness's note is empty".into())
        })?;
        let t = self.transcript(ceremony)?;
        let step = t.steps.iter().find(|s| s.seq == at_step).ok_or_else(|| {
            Error::BadShare(format!(
                "ceremony {ceremony} has no step {at_step}: its transcript has steps 1 to {}",
                t.steps.len()
            ))
        })?;
        let detail = format!(
            "at step {at_step} ({}, {}): {note}",
            step.action, step.actor
        );
        self.witness_step(
            ceremony,
            WitnessStep {
                says: "records a deviation",
                action: "deviation",
                detail,
                audit: "ceremony.deviation",
                audit_prefix: "deviation noted",
                recovery: None,
            },
            room,
        )
    }

    /// The ceremony's witness (as its transcript names them) touches their key; `step` is appended
    /// to the stored transcript, which is re-signed, and written with the audit entry (and the
    /// escrow record, when given) in one transaction.
    fn witness_step(
        &mut self,
        ceremony: &str,
        step: WitnessStep<'_>,
        room: &mut dyn Room,
    ) -> Result<Transcript> {
        let stored = self.transcript_text(ceremony)?;
        let t = self.checked_transcript(ceremony, &stored)?;
        let witness = t
            .steps
            .iter()
            .find(|s| s.role == "witness")
            .map(|s| s.actor.clone())
            .ok_or_else(|| Error::Tampered("the transcript names no witness".into()))?;
        let custodians = load_custodians(&self.conn, &self.ctx)?;
        let w = custodians
            .iter()
            .find(|c| c.record.name == witness)
            .ok_or_else(|| Error::NoSuchCustodian(witness.clone()))?;
        let w = CustodianRow {
            id: w.id,
            record: w.record.clone(),
        };
        let n = t.steps.len() as u32 + 1;
        room.step(&format!(
            "{n}. Witness {witness} {}. Touch your key.",
            step.says
        ));
        // The touch is bound to what the witness signs off: the step and its text.
        let purpose = format!(
            "ceremony {ceremony} step {n} {} {}",
            step.action,
            hex::encode(Sha256::digest(step.detail.as_bytes()))
        );
        let e = self.room_touch(&w, &purpose, room)?;
        let mut rec = Recorder { steps: t.steps };
        rec.add(
            &witness,
            "witness",
            step.action,
            step.detail.clone(),
            Some(e),
        )?;
        let head = rec.steps.last().map(|s| s.hash.clone()).unwrap_or_default();
        let mut transcript = Transcript {
            steps: rec.steps,
            head,
            signature: String::new(),
            ..t
        };
        transcript.signature = hex::encode(self.ctx.sign(&head_message(&transcript)).to_bytes());
        let record_json = step
            .recovery
            .map(|r| serde_json::to_vec(r).map_err(|e| Error::Internal(e.to_string())))
            .transpose()?;
        let transcript_json =
            serde_json::to_string(&transcript).map_err(|e| Error::Internal(e.to_string()))?;
        let id = hex::decode(ceremony).map_err(|_| Error::BadTranscript(ceremony.into()))?;
        let (conn, ctx) = (&mut self.conn, &self.ctx);
        let tx = begin(conn, ctx)?;
        // Nothing else may have added a step while the witness was at their key.
        let changed = tx.execute(
            "UPDATE ceremonies SET transcript = ?2 WHERE id = ?1 AND transcript = ?3",
            rusqlite::params![id, transcript_json, stored],
        )?;
        if changed != 1 {
            return Err(Error::BadTranscript(format!(
                "the transcript of ceremony {ceremony} changed while the witness was at their key (another window or command added a step): nothing was recorded; try again"
            )));
        }
        if let Some(json) = &record_json {
            store::set_meta(&tx, "recovery", json)?;
        }
        ctx.append(
            &tx,
            ctx.draft(
                step.audit,
                None,
                None,
                format!(
                    "ceremony {ceremony}: {}: {}; transcript head {}",
                    step.audit_prefix, step.detail, transcript.head
                ),
            ),
        )?;
        tx.commit()?;
        Ok(transcript)
    }

    /// The stored JSON of a ceremony's transcript.
    fn transcript_text(&self, ceremony: &str) -> Result<String> {
        let id = hex::decode(ceremony)
            .ok()
            .filter(|b| b.len() == 8)
            .ok_or_else(|| Error::BadTranscript(format!("no ceremony {ceremony:?}")))?;
        self.conn
            .query_row(
                "SELECT transcript FROM ceremonies WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .map_err(|_| Error::BadTranscript(format!("no ceremony {ceremony:?}")))
    }

    /// A stored transcript that still verifies (chain, head, signature) under this vault's audit
    /// key: one that does not is never extended and signed again.
    fn checked_transcript(&self, ceremony: &str, text: &str) -> Result<Transcript> {
        let t: Transcript = serde_json::from_str(text)
            .map_err(|_| Error::Tampered("a stored transcript is unreadable".into()))?;
        let public = check_transcript(&t).map_err(|e| {
            Error::Tampered(format!(
                "the stored transcript of ceremony {ceremony} fails its check ({}): it was changed outside Custos",
                e.to_string().trim_start_matches("transcript verification failed: ")
            ))
        })?;
        if public != self.ctx.audit_public() || t.ceremony != ceremony {
            return Err(Error::Tampered(format!(
                "the stored transcript of ceremony {ceremony} is signed by another audit key or names another ceremony"
            )));
        }
        Ok(t)
    }

    /// The transcript of a ceremony (by id), as stored.
    pub fn transcript(&self, ceremony: &str) -> Result<Transcript> {
        let id = hex::decode(ceremony)
            .ok()
            .filter(|b| b.len() == 8)
            .ok_or_else(|| Error::BadTranscript(format!("no ceremony {ceremony:?}")))?;
        let text: String = self
            .conn
            .query_row(
                "SELECT transcript FROM ceremonies WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .map_err(|_| Error::BadTranscript(format!("no ceremony {ceremony:?}")))?;
        serde_json::from_str(&text)
            .map_err(|_| Error::Tampered("a stored transcript is unreadable".into()))
    }

    /// Recover a vault whose passphrase (or PIV key) is lost: M shares rebuild the recovery key,
    /// which opens the root key; the root is re-wrapped under `new_pass` (a PIV binding is removed:
    /// recovery also serves a lost YubiKey). Each share is checked on entry and a bad one named.
    ///
    /// Once the shares rebuild the recovery key, the holder of each share (as recorded at the
    /// escrow) touches their own key before anything changes; a holder who cannot touch stops the
    /// recovery. The touches are written to the recovery's audit entry.
    pub fn recover(
        path: &Path,
        shares: &[Share],
        new_pass: &Passphrase,
        actor: &str,
        room: &mut dyn Room,
    ) -> Result<Vault> {
        if new_pass.is_empty() {
            return Err(Error::EmptyPassphrase);
        }
        let conn = store::open(path)?;
        let vault_id = crate::vault::vault_id_of(&conn)?;
        let r = recovery_of(&conn)?.ok_or_else(|| {
            Error::BadShare("this vault has no escrow: it cannot be recovered from shares".into())
        })?;
        let recovery = sharing::combine(&r.set, shares)?;
        let wrapped = hex::decode(&r.wrapped_root)
            .map_err(|_| Error::Tampered("the escrow's wrapped root key is malformed".into()))?;
        let root = crate::vault::unwrap_root_with_recovery(&vault_id, &recovery, &wrapped)?;
        let used: Vec<String> = shares
            .iter()
            .map(|s| format!("#{} {}", s.index, s.fingerprint()))
            .collect();
        let mut v = open_session(
            path,
            conn,
            vault_id,
            root,
            None,
            actor,
            format!(
                "by recovery: ceremony {} shares {}",
                r.set.ceremony,
                used.join(", ")
            ),
        )?;
        // Each share's holder, in person.
        let custodians = load_custodians(&v.conn, &v.ctx)?;
        let mut touched = Vec::with_capacity(shares.len());
        for (n, s) in shares.iter().enumerate() {
            let holder = r.holders.get(s.index as usize - 1).ok_or_else(|| {
                Error::Tampered("the escrow record lists fewer holders than shares".into())
            })?;
            let row = custodians
                .iter()
                .find(|c| &c.record.name == holder)
                .ok_or_else(|| Error::NoSuchCustodian(holder.clone()))?;
            let row = CustodianRow {
                id: row.id,
                record: row.record.clone(),
            };
            room.step(&format!(
                "{}. {holder}, holder of share #{}, confirms the recovery. Touch your key.",
                n + 1,
                s.index
            ));
            let purpose = format!("ceremony {} recover share {}", r.set.ceremony, s.index);
            let e = v.room_touch(&row, &purpose, room).map_err(|e| match e {
                Error::NoAuthenticator(_) => Error::BadShare(format!(
                    "share #{}: its holder {holder} has no FIDO2 key to confirm the recovery with; bring another holder's share",
                    s.index
                )),
                other => other,
            })?;
            touched.push(format!("share #{} by {}", s.index, e.audit_text()));
        }
        let params = crate::vault::kdf_of(&v.conn)?.with_fresh_salt()?;
        let pkey = kdf::derive(new_pass, &params)?;
        let wrapped_root = v.ctx.wrap_root_with(&pkey)?;
        let had_piv = store::get_meta(&v.conn, "piv_factor")?.is_some();
        let kdf_json = serde_json::to_vec(&params).map_err(|e| Error::Internal(e.to_string()))?;
        let (conn, ctx) = (&mut v.conn, &v.ctx);
        let tx = begin(conn, ctx)?;
        store::set_meta(&tx, "kdf", &kdf_json)?;
        store::set_meta(&tx, "root_wrapped", &wrapped_root)?;
        tx.execute("DELETE FROM meta WHERE name = 'piv_factor'", [])?;
        tx.execute("DELETE FROM backoff WHERE scope = 'unlock'", [])?;
        ctx.append(
            &tx,
            Draft {
                outcome: Outcome::Ok,
                ..ctx.draft(
                    "ceremony.recover",
                    None,
                    None,
                    format!(
                        "ceremony {}: {} shares ({}) rebuilt the recovery key; confirmed {}; new passphrase set{}",
                        r.set.ceremony,
                        shares.len(),
                        used.join(", "),
                        touched.join(", "),
                        if had_piv { "; the YubiKey binding was removed (bind a key again with vault require-piv)" } else { "" }
                    ),
                )
            },
        )?;
        tx.commit()?;
        store::checkpoint_wal(&v.conn)?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn drill_state_follows_the_policy() {
        let made = 1_796_256_000; // 2026-12-03
        let every = 30 * DAY;
        // Never drilled: due 30 days after the escrow, overdue after that.
        assert_eq!(
            drill_state(None, made, every, made + DAY),
            ("never", made + every, false)
        );
        assert_eq!(
            drill_state(None, made, every, made + every + 1),
            ("never", made + every, true)
        );
        // Drilled on day 10: verified until day 40, then stale and overdue.
        let d = made + 10 * DAY;
        assert_eq!(
            drill_state(Some(d), made, every, d + every),
            ("verified", d + every, false)
        );
        assert_eq!(
            drill_state(Some(d), made, every, d + every + 1),
            ("stale", d + every, true)
        );
        // A longer policy keeps the same drill verified.
        assert_eq!(
            drill_state(Some(d), made, 180 * DAY, d + 31 * DAY).0,
            "verified"
        );
    }

    #[test]
    fn share_file_names_never_leave_the_directory() {
        assert_eq!(
            share_file_name("ab12", 3, "carol", "age"),
            "ab12-share-3-carol.age"
        );
        assert_eq!(
            share_file_name("ab12", 1, "../../etc/x y", "html"),
            "ab12-share-1-______etc_x_y.html"
        );
        assert_eq!(
            share_file_name("ab12", 2, ".hidden", "age"),
            "ab12-share-2-_hidden.age"
        );
    }

    #[test]
    fn medium_names_round_trip_and_match_the_serialized_form() {
        for m in [
            Medium::Screen,
            Medium::Card,
            Medium::File,
            Medium::PassphraseFile,
        ] {
            assert_eq!(Medium::parse(m.name()).expect("parses"), m);
            assert_eq!(
                serde_json::to_value(m).expect("json"),
                serde_json::Value::from(m.name())
            );
        }
    }
}
