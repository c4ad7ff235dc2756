//! Typed keys, their lifecycle states (NIST SP 800-57 part 1, section 7) and rotation policies.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::{rfc3339, Timestamp};
use crate::error::{Error, Result};

/// What kind of key material a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    /// 256-bit symmetric key: file encryption.
    #[serde(rename = "symmetric-256")]
    Symmetric256,
    /// Ed25519 signing key.
    #[serde(rename = "ed25519")]
    Ed25519,
    /// X25519 key-agreement key.
    #[serde(rename = "x25519")]
    X25519,
}

impl KeyType {
    pub fn parse(s: &str) -> Result<KeyType> {
        match s {
            "symmetric-256" => Ok(KeyType::Symmetric256),
            "ed25519" => Ok(KeyType::Ed25519),
            "x25519" => Ok(KeyType::X25519),
            other => Err(Error::InvalidKeyType(other.into())),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Symmetric256 => "symmetric-256",
            KeyType::Ed25519 => "ed25519",
            KeyType::X25519 => "x25519",
        }
    }
}

/// Lifecycle state of one key version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyState {
    /// Generated, not yet in use.
    PreActive,
    /// In use: encrypts and decrypts, signs and verifies. At most one version of a key is active.
    Active,
    /// Deactivated: only decrypts (or verifies) what was protected before. Rotation puts old versions here.
    DecryptOnly,
    /// Suspected or known to be exposed: may still decrypt for recovery, never encrypts or signs.
    Compromised,
    /// Material erased; the record remains for the audit trail.
    Destroyed,
}

impl KeyState {
    pub fn parse(s: &str) -> Result<KeyState> {
        match s {
            "pre-active" => Ok(KeyState::PreActive),
            "active" => Ok(KeyState::Active),
            "decrypt-only" => Ok(KeyState::DecryptOnly),
            "compromised" => Ok(KeyState::Compromised),
            "destroyed" => Ok(KeyState::Destroyed),
            other => Err(Error::InvalidKeyState(other.into())),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::PreActive => "pre-active",
            KeyState::Active => "active",
            KeyState::DecryptOnly => "decrypt-only",
            KeyState::Compromised => "compromised",
            KeyState::Destroyed => "destroyed",
        }
    }

    /// The states this one may move to. Nothing ever returns to pre-active, nothing leaves destroyed,
    /// and a compromised key is never trusted again.
    pub fn allowed_next(self) -> &'static [KeyState] {
        use KeyState::*;
        match self {
            PreActive => &[Active, Compromised, Destroyed],
            Active => &[DecryptOnly, Compromised],
            DecryptOnly => &[Compromised, Destroyed],
            Compromised => &[Destroyed],
            Destroyed => &[],
        }
    }

    pub fn can_become(self, next: KeyState) -> bool {
        self.allowed_next().contains(&next)
    }

    /// May this version's material protect new data (encrypt, sign)?
    pub fn may_protect(self) -> bool {
        self == KeyState::Active
    }

    /// May this version's material process protected data (decrypt, verify)?
    pub fn may_process(self) -> bool {
        matches!(
            self,
            KeyState::Active | KeyState::DecryptOnly | KeyState::Compromised
        )
    }
}

pub(crate) fn describe_allowed(state: KeyState) -> String {
    let next = state.allowed_next();
    if next.is_empty() {
        "none (destroyed is final)".into()
    } else {
        next.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Where a key stands against its rotation policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RotationStatus {
    /// No policy, or no active version.
    None,
    Ok,
    /// Within the warning window before the due date.
    Due,
    /// Past the due date.
    Overdue,
}

/// The due date and status of a key with policy `every` whose active version was created at `active_since`.
pub(crate) fn rotation_status(
    every: Option<Duration>,
    active_since: Option<Timestamp>,
    now: Timestamp,
) -> (Option<Timestamp>, RotationStatus) {
    let (Some(every), Some(since)) = (every, active_since) else {
        return (None, RotationStatus::None);
    };
    let every = i64::try_from(every.as_secs()).unwrap_or(i64::MAX);
    let due = since.saturating_add(every);
    // Warn a tenth of the period ahead, at most 14 days.
    let warn = (every / 10).min(14 * 86_400);
    let status = if now >= due {
        RotationStatus::Overdue
    } else if now >= due.saturating_sub(warn) {
        RotationStatus::Due
    } else {
        RotationStatus::Ok
    };
    (Some(due), status)
}

/// Parse a policy period such as `90d`, `12h`, `30m`, `45s`, `2w` or `1y` (365 days).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || Error::InvalidDuration(s.into());
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(mult).ok_or_else(bad)?;
    if secs == 0 || secs > 100 * 365 * 86_400 {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs))
}

/// Format a period back as the largest exact unit (for display and audit details).
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, secs) in [
        ("y", 365 * 86_400),
        ("w", 7 * 86_400),
        ("d", 86_400),
        ("h", 3_600),
        ("m", 60),
    ] {
        if s >= secs && s.is_multiple_of(secs) {
            return format!("{}{unit}", s / secs);
        }
    }
    format!("{s}s")
}

/// Check a key name: what a person would type and read back.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= 128
        && name.trim() == name
        && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(name.into()))
    }
}

/// A key as listed.
#[derive(Debug, Clone, Serialize)]
pub struct KeySummary {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub key_type: KeyType,
    /// The active version's state, or the newest version's when none is active.
    pub state: KeyState,
    pub active_version: Option<u32>,
    pub versions: u32,
    pub rotate_every_secs: Option<u64>,
    pub rotation_due: Option<String>,
    pub rotation_status: RotationStatus,
}

/// One version of a key.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    pub version: u32,
    pub state: KeyState,
    pub created: String,
    pub state_changed: String,
    /// Public half (hex) of an ed25519 or x25519 version; kept after destruction so old signatures verify.
    pub public_key: Option<String>,
    pub allowed_states: Vec<KeyState>,
}

/// A key with all its versions.
#[derive(Debug, Clone, Serialize)]
pub struct KeyDetail {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub key_type: KeyType,
    pub created: String,
    pub active_version: Option<u32>,
    pub rotate_every_secs: Option<u64>,
    pub rotation_due: Option<String>,
    pub rotation_status: RotationStatus,
    pub versions: Vec<VersionInfo>,
}

impl KeyDetail {
    pub fn summary(&self) -> KeySummary {
        let state = self
            .active_version
            .and_then(|v| self.versions.iter().find(|x| x.version == v))
            .or_else(|| self.versions.last())
            .map(|v| v.state)
            .unwrap_or(KeyState::Destroyed);
        KeySummary {
            id: self.id.clone(),
            name: self.name.clone(),
            key_type: self.key_type,
            state,
            active_version: self.active_version,
            versions: self.versions.len() as u32,
            rotate_every_secs: self.rotate_every_secs,
            rotation_due: self.rotation_due.clone(),
            rotation_status: self.rotation_status,
        }
    }
}

pub(crate) fn due_string(due: Option<Timestamp>) -> Option<String> {
    due.map(rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_follow_sp800_57() {
        use KeyState::*;
        assert!(PreActive.can_become(Active));
        assert!(Active.can_become(DecryptOnly));
        assert!(
            !Active.can_become(Destroyed),
            "deactivate before destroying"
        );
        assert!(!DecryptOnly.can_become(Active), "no reactivation");
        assert!(!Compromised.can_become(Active));
        assert!(Destroyed.allowed_next().is_empty());
        for s in [PreActive, Active, DecryptOnly, Compromised, Destroyed] {
            assert!(!s.can_become(PreActive));
            assert_eq!(KeyState::parse(s.as_str()).unwrap(), s);
        }
        assert!(Compromised.may_process() && !Compromised.may_protect());
        assert!(!Destroyed.may_process());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d").unwrap().as_secs(), 90 * 86_400);
        assert_eq!(parse_duration("1s").unwrap().as_secs(), 1);
        assert_eq!(parse_duration("2w").unwrap().as_secs(), 14 * 86_400);
        for bad in [
            "",
            "d",
            "90",
            "0d",
            "-1d",
            "1.5d",
            "9999999999999999999y",
            "3x",
            "101y",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(format_duration(Duration::from_secs(90 * 86_400)), "90d");
        assert_eq!(format_duration(Duration::from_secs(61)), "61s");
    }

    #[test]
    fn rotation_due_and_overdue() {
        let day = 86_400;
        let every = Some(Duration::from_secs(90 * day as u64));
        let since = Some(1_000_000);
        let (due, st) = rotation_status(every, since, 1_000_000 + 10 * day);
        assert_eq!(due, Some(1_000_000 + 90 * day));
        assert_eq!(st, RotationStatus::Ok);
        assert_eq!(
            rotation_status(every, since, 1_000_000 + 85 * day).1,
            RotationStatus::Due
        );
        assert_eq!(
            rotation_status(every, since, 1_000_000 + 90 * day).1,
            RotationStatus::Overdue
        );
        assert_eq!(rotation_status(None, since, 0).1, RotationStatus::None);
        assert_eq!(rotation_status(every, None, 0).1, RotationStatus::None);
    }

    #[test]
    fn names() {
        assert!(validate_name("backup-2026").is_ok());
        assert!(validate_name("Gehaltsdaten ü").is_ok());
        for bad in ["", " x", "x ", "a\nb", &"x".repeat(129)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
