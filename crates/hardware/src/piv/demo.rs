//! The demo PIV twin: a P-256 key per retired slot in a JSON file, a PIN (salted hash) with a
//! persisted retry counter (3, then locked for good), and a fake serial. It behaves like the
//! YubiKey path at the [`PivCard`] level — same slot rule, same PIN and lock-out errors, same
//! refusal of an occupied slot and of the factory PIN — so the vault code above it runs unchanged.
//!
//! **Not a security device.** The private keys are in the file in clear; the PIN and its counter
//! imitate a card's behaviour and protect nothing from whoever can read or write the file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use custos_core::hardware::{DeviceIdentity, Pin, PivCard};
use custos_core::{Error, Result, SecretBytes};
use custos_ctap2_twin::persist;
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::{PublicKey, SecretKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::{check_pin_format, check_slot, default_credentials_message, peer_point, Defaults};
use crate::prompt::Prompt;

/// The `format` field of a demo PIV file.
pub const FORMAT: &str = "custos-demo-piv/1";
/// PIN tries of a fresh (or just unlocked) demo card, as on a YubiKey.
pub const DEMO_PIN_RETRIES: u8 = 3;
/// Demo serials are drawn from [`DEMO_SERIAL_BASE`]`..`[`DEMO_SERIAL_BASE`]` + 10^8`, far above
/// any YubiKey serial (8 digits).
pub const DEMO_SERIAL_BASE: u32 = 3_900_000_000;
/// The description of every demo PIV key.
pub const DEMO_PIV_DESCRIPTION: &str = "DEMO software PIV key — not hardware";

const NOTICE: &str = "DEMO software PIV key - not hardware. The private keys below are NOT \
                      protected: anyone who can read this file can use them.";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoFile {
    format: String,
    notice: String,
    serial: u32,
    pin_salt: String,
    pin_hash: String,
    pin_retries: u8,
    /// Slot (two hex digits) → P-256 private key (hex).
    slots: BTreeMap<String, String>,
}

impl Drop for DemoFile {
    fn drop(&mut self) {
        for v in self.slots.values_mut() {
            v.zeroize();
        }
    }
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| Error::Random(e.to_string()))?;
    Ok(b)
}

fn pin_hash(salt: &[u8], pin: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"custos-demo-piv-pin\0");
    h.update(salt);
    h.update(pin.as_bytes());
    h.finalize().into()
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn damaged(path: &Path, what: &str) -> Error {
    Error::Device(format!(
        "{} is not a usable demo PIV key file: {what}",
        path.display()
    ))
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

impl DemoFile {
    fn load(path: &Path) -> Result<Self> {
        let bytes = persist::read(path).map_err(|e| io_error(path, e))?;
        let f: DemoFile =
            serde_json::from_slice(&bytes).map_err(|e| damaged(path, &e.to_string()))?;
        if f.format != FORMAT {
            return Err(damaged(path, &format!("format {:?}", f.format)));
        }
        if f.pin_retries > DEMO_PIN_RETRIES {
            return Err(damaged(path, "PIN retry counter"));
        }
        Ok(f)
    }

    fn to_json(&self) -> Result<Zeroizing<Vec<u8>>> {
        serde_json::to_vec_pretty(self)
            .map(Zeroizing::new)
            .map_err(|e| Error::Internal(format!("encoding the demo PIV key: {e}")))
    }

    fn save(&self, path: &Path) -> Result<()> {
        persist::replace(path, &self.to_json()?).map_err(|e| io_error(path, e))
    }

    fn pin_matches(&self, path: &Path, pin: &str) -> Result<bool> {
        let salt = hex::decode(&self.pin_salt).map_err(|_| damaged(path, "PIN salt"))?;
        let stored = hex::decode(&self.pin_hash).map_err(|_| damaged(path, "PIN hash"))?;
        Ok(ct_eq(&pin_hash(&salt, pin), &stored))
    }

    /// VERIFY as a card does it: a blocked PIN stays blocked; a wrong one costs a try; the right
    /// one restores the tries. The caller saves the file whatever the outcome.
    fn verify(&mut self, path: &Path, pin: &Pin) -> Result<()> {
        check_pin_format(pin.expose())?;
        if self.pin_retries == 0 {
            return Err(Error::PinBlocked("DEMO PIV key"));
        }
        if self.pin_matches(path, pin.expose())? {
            self.pin_retries = DEMO_PIN_RETRIES;
            return Ok(());
        }
        self.pin_retries -= 1;
        if self.pin_retries == 0 {
            Err(Error::PinBlocked("DEMO PIV key"))
        } else {
            Err(Error::WrongPin {
                retries: Some(u32::from(self.pin_retries)),
            })
        }
    }

    fn slot_key(&self, path: &Path, slot: u8) -> Result<Option<SecretKey>> {
        let Some(hex_key) = self.slots.get(&format!("{slot:02x}")) else {
            return Ok(None);
        };
        let bytes = Zeroizing::new(hex::decode(hex_key).map_err(|_| damaged(path, "slot key"))?);
        SecretKey::from_slice(&bytes)
            .map(Some)
            .map_err(|_| damaged(path, "slot key"))
    }
}

/// Creates a demo PIV key in `path` (a new owner-only file; an existing file is never overwritten)
/// with `pin` (6 to 8 characters) and no keys in its slots.
pub fn create_demo_piv(path: &Path, pin: &Pin) -> Result<()> {
    check_pin_format(pin.expose())?;
    let salt = random::<16>()?;
    let serial_offset = u32::from_be_bytes(random::<4>()?) % 100_000_000;
    let file = DemoFile {
        format: FORMAT.into(),
        notice: NOTICE.into(),
        serial: DEMO_SERIAL_BASE + serial_offset,
        pin_salt: hex::encode(salt),
        pin_hash: hex::encode(pin_hash(&salt, pin.expose())),
        pin_retries: DEMO_PIN_RETRIES,
        slots: BTreeMap::new(),
    };
    persist::write_new(path, &file.to_json()?).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Device(format!(
                "{} already exists: refusing to overwrite a demo key file",
                path.display()
            ))
        } else {
            io_error(path, e)
        }
    })
}

/// The first demo PIV key in `dir` (the files `<custodian>-piv.json`, by custodian name) for which
/// `holds` says yes — e.g. the one that holds the key a share file is locked to — with the name of
/// its custodian.
pub fn find_demo_piv(
    dir: &Path,
    mut holds: impl FnMut(&mut DemoPiv) -> bool,
) -> Result<Option<(DemoPiv, String)>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix("-piv.json"))
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    for name in names {
        let mut card = open_demo_piv(&dir.join(format!("{name}-piv.json")))?;
        if holds(&mut card) {
            return Ok(Some((card, name)));
        }
    }
    Ok(None)
}

/// Opens the demo PIV key in `path`.
pub fn open_demo_piv(path: &Path) -> Result<DemoPiv> {
    let f = DemoFile::load(path)?;
    Ok(DemoPiv {
        path: path.to_path_buf(),
        serial: f.serial,
        prompt: None,
    })
}

/// The demo PIV key. Every operation reads the file, and writes it back when something changed
/// (a PIN try, a generated key), so the retry counter survives across processes.
pub struct DemoPiv {
    path: PathBuf,
    serial: u32,
    prompt: Option<Arc<dyn Prompt>>,
}

impl fmt::Debug for DemoPiv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemoPiv")
            .field("path", &self.path)
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

impl DemoPiv {
    /// Where "touch your key" is shown before an ECDH (the demo approves at once).
    pub fn set_prompt(&mut self, prompt: Arc<dyn Prompt>) {
        self.prompt = Some(prompt);
    }

    /// PIN tries left (from the file).
    pub fn pin_retries(&self) -> Result<u8> {
        Ok(DemoFile::load(&self.path)?.pin_retries)
    }

    /// Loads, verifies the PIN, and saves the counter whatever the outcome.
    fn verified(&self, pin: &Pin) -> Result<DemoFile> {
        let mut f = DemoFile::load(&self.path)?;
        let before = f.pin_retries;
        let r = f.verify(&self.path, pin);
        if f.pin_retries != before {
            f.save(&self.path)?;
        }
        r.map(|()| f)
    }
}

impl PivCard for DemoPiv {
    fn identity(&self) -> DeviceIdentity {
        DeviceIdentity {
            kind: "piv".into(),
            description: format!(
                "{DEMO_PIV_DESCRIPTION} (demo serial {}, file {})",
                self.serial,
                self.path.display()
            ),
            serial: Some(self.serial),
            demo: true,
        }
    }

    fn serial(&self) -> u32 {
        self.serial
    }

    /// Refuses the factory PIN 123456 (checked against the hash: no try is spent). A demo key has
    /// no PUK and no management key to be left at their defaults.
    fn check_not_default(&mut self) -> Result<()> {
        let f = DemoFile::load(&self.path)?;
        if f.pin_matches(&self.path, super::FACTORY_PIN)? {
            return Err(Error::DefaultCredentials(format!(
                "{} (This is a DEMO key: create a new one with another PIN.)",
                default_credentials_message(Defaults {
                    pin: true,
                    ..Defaults::default()
                })
            )));
        }
        Ok(())
    }

    fn generate_p256(&mut self, slot: u8, pin: &Pin) -> Result<Vec<u8>> {
        check_slot(slot)?;
        let mut f = self.verified(pin)?;
        if f.slot_key(&self.path, slot)?.is_some() {
            return Err(Error::Device(format!(
                "slot {slot:02x} of this DEMO PIV key already holds a key: choose another retired \
                 slot (82 to 95); nothing was done"
            )));
        }
        let key = loop {
            let candidate = Zeroizing::new(random::<32>()?);
            if let Ok(k) = SecretKey::from_slice(candidate.as_slice()) {
                break k;
            }
        };
        f.slots
            .insert(format!("{slot:02x}"), hex::encode(key.to_bytes()));
        f.save(&self.path)?;
        Ok(key.public_key().to_sec1_point(false).as_bytes().to_vec())
    }

    fn public_key(&mut self, slot: u8) -> Result<Vec<u8>> {
        check_slot(slot)?;
        let f = DemoFile::load(&self.path)?;
        match f.slot_key(&self.path, slot)? {
            Some(k) => Ok(k.public_key().to_sec1_point(false).as_bytes().to_vec()),
            None => Err(Error::Device(format!(
                "slot {slot:02x} of this DEMO PIV key holds no key"
            ))),
        }
    }

    fn ecdh(&mut self, slot: u8, peer: &[u8], pin: &Pin) -> Result<SecretBytes> {
        check_slot(slot)?;
        let peer = PublicKey::from_sec1_bytes(&peer_point(peer)?).map_err(|_| {
            Error::Device("the other party's public key is not a P-256 point".into())
        })?;
        if DemoFile::load(&self.path)?
            .slot_key(&self.path, slot)?
            .is_none()
        {
            return Err(Error::Device(format!(
                "slot {slot:02x} of this DEMO PIV key holds no key"
            )));
        }
        let f = self.verified(pin)?;
        let key = f
            .slot_key(&self.path, slot)?
            .ok_or_else(|| Error::Device(format!("slot {slot:02x} holds no key")))?;
        // Touch policy "always": the demo shows the prompt and approves at once.
        if let Some(p) = &self.prompt {
            p.touch("DEMO PIV key (software, not hardware)");
        }
        let shared = p256::ecdh::diffie_hellman(key.to_nonzero_scalar(), peer.as_affine());
        if let Some(p) = &self.prompt {
            p.done();
        }
        Ok(SecretBytes::new(shared.raw_secret_bytes().to_vec()))
    }
}
