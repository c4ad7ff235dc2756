//! Which device answers a touch or a PIN: a real key (FIDO2 over USB, YubiKey PIV over PC/SC) or, in
//! demo mode, a custodian's software twin stored next to the vault.
//!
//! The demo layout is the CLI's, so both shells share a demo vault:
//! `<vault file>.demo-keys/<NAME>-fido2-<n>.json` (n = 1, 2, …; a touch uses the lowest existing n)
//! and `<NAME>-piv.json`. Demo files hold private keys in clear: they are a demonstration, never a
//! security device, and the window says so on every screen.

use std::path::{Path, PathBuf};

use custos_core::hardware::{Fido2Client, Pin, PivCard};
use custos_core::{Error, PivFactor, Result};
use tauri::{AppHandle, Runtime};

use crate::prompt::{KeyKind, PinPurpose, WindowPrompt};

/// `<vault>.demo-keys/`.
pub fn demo_dir(vault: &Path) -> PathBuf {
    let mut s = vault.as_os_str().to_owned();
    s.push(".demo-keys");
    PathBuf::from(s)
}

/// A custodian name becomes part of a file name: refuse what would leave the demo directory.
pub(crate) fn file_safe(name: &str) -> Result<&str> {
    let bad = name.is_empty()
        || name.starts_with('.')
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        return Err(Error::Device(format!(
            "demo keys are files named after the custodian, and {name:?} cannot be a file name: use a name without '/', '\\\\' or a leading '.'"
        )));
    }
    Ok(name)
}

pub fn demo_fido2_path(vault: &Path, name: &str, n: u32) -> PathBuf {
    demo_dir(vault).join(format!("{name}-fido2-{n}.json"))
}

pub fn demo_piv_path(vault: &Path, name: &str) -> PathBuf {
    demo_dir(vault).join(format!("{name}-piv.json"))
}

/// The numbers n of `<name>-fido2-<n>.json` present, ascending.
fn demo_fido2_numbers(vault: &Path, name: &str) -> Vec<u32> {
    let prefix = format!("{name}-fido2-");
    let mut found: Vec<u32> = std::fs::read_dir(demo_dir(vault))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let file = entry.file_name();
            let file = file.to_str()?;
            let n = file.strip_prefix(&prefix)?.strip_suffix(".json")?;
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            n.parse::<u32>().ok().filter(|n| *n > 0)
        })
        .collect();
    found.sort_unstable();
    found
}

fn make_demo_dir(vault: &Path) -> Result<()> {
    let dir = demo_dir(vault);
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(&dir).map_err(|source| Error::Io {
        path: dir.display().to_string(),
        source,
    })
}

/// A device created for an enrolment: if the enrolment fails, the new demo file is removed so that
/// it is never mistaken for the custodian's enrolled key.
pub struct NewDevice<T: ?Sized> {
    pub device: Box<T>,
    pub pin: Option<Pin>,
    created: Option<PathBuf>,
}

impl<T: ?Sized> NewDevice<T> {
    /// The operation failed: forget a demo key made for it.
    pub fn discard(self) {
        let NewDevice {
            device, created, ..
        } = self;
        drop(device);
        if let Some(path) = created {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Opens the devices of one vault, for one window.
pub struct Devices<R: Runtime> {
    app: AppHandle<R>,
    vault: PathBuf,
    demo: bool,
}

impl<R: Runtime> Devices<R> {
    pub fn new(app: &AppHandle<R>, vault: &Path, demo: bool) -> Self {
        Devices {
            app: app.clone(),
            vault: vault.to_path_buf(),
            demo,
        }
    }

    pub fn demo(&self) -> bool {
        self.demo
    }

    pub fn vault(&self) -> &Path {
        &self.vault
    }

    fn prompt(&self, custodian: &str, kind: KeyKind) -> WindowPrompt<R> {
        WindowPrompt::new(&self.app, Some(custodian), kind)
    }

    /// The FIDO2 key `custodian` touches with: their demo key with the lowest number (as the CLI
    /// does), preferring one that an active enrolment names (`enrolled`: the device descriptions of
    /// their active keys, which for a demo key include its file), so that a revoked key 1 does not
    /// hide key 2; or the key on USB.
    pub fn presence(&self, custodian: &str, enrolled: &[String]) -> Result<Box<dyn Fido2Client>> {
        let prompt = self.prompt(custodian, KeyKind::Fido2).into_arc();
        if self.demo {
            let name = file_safe(custodian)?;
            let paths: Vec<PathBuf> = demo_fido2_numbers(&self.vault, name)
                .into_iter()
                .map(|n| demo_fido2_path(&self.vault, name, n))
                .collect();
            let named = |p: &PathBuf| {
                let file = format!("(file {})", p.display());
                enrolled.iter().any(|d| d.contains(&file))
            };
            let path = paths
                .iter()
                .find(|p| named(p))
                .or(paths.first())
                .ok_or(Error::NoDevice(
                    "DEMO software key for this custodian (enrol one in demo mode first)",
                ))?;
            return Ok(Box::new(custos_hardware::fido2::open_demo(path, prompt)?));
        }
        Ok(Box::new(custos_hardware::fido2::open_usb(prompt)?))
    }

    /// A new FIDO2 key to enrol for `custodian`: in demo mode a fresh software key (the person
    /// chooses its PIN in the PIN dialog), else the key on USB.
    pub fn new_fido2(&self, custodian: &str) -> Result<NewDevice<dyn Fido2Client>> {
        if !self.demo {
            let prompt = self.prompt(custodian, KeyKind::Fido2).into_arc();
            return Ok(NewDevice {
                device: Box::new(custos_hardware::fido2::open_usb(prompt)?),
                pin: None,
                created: None,
            });
        }
        let name = file_safe(custodian)?;
        make_demo_dir(&self.vault)?;
        let n = demo_fido2_numbers(&self.vault, name)
            .last()
            .map_or(1, |n| n.saturating_add(1));
        let path = demo_fido2_path(&self.vault, name, n);
        let prompt = self.prompt(custodian, KeyKind::Fido2);
        let pin = prompt.ask(
            &format!("new DEMO software FIDO2 key {n} of {custodian}"),
            PinPurpose::New,
        );
        prompt.finish();
        let pin = pin.ok_or(Error::PinRequired)?;
        custos_hardware::fido2::create_demo_key(&path, &pin)?;
        let opened = custos_hardware::fido2::open_demo(&path, prompt.with_chosen(pin).into_arc());
        match opened {
            Ok(key) => Ok(NewDevice {
                device: Box::new(key),
                pin: None,
                created: Some(path),
            }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// The PIV card to enrol for `custodian`, with its PIN: in demo mode their demo card (created,
    /// with a PIN the person chooses, when they have none yet), else the YubiKey on PC/SC.
    pub fn piv_for_enrolment(&self, custodian: &str) -> Result<NewDevice<dyn PivCard>> {
        let prompt = self.prompt(custodian, KeyKind::Piv);
        if !self.demo {
            let mut card = custos_hardware::piv::YubiKeyPiv::open(None)?;
            let device = format!("YubiKey PIV (serial {})", card.serial());
            let pin = prompt.ask(&device, PinPurpose::Enter);
            prompt.finish();
            let pin = pin.ok_or(Error::PinRequired)?;
            card.set_prompt(prompt.into_arc());
            return Ok(NewDevice {
                device: Box::new(card),
                pin: Some(pin),
                created: None,
            });
        }
        let name = file_safe(custodian)?;
        let path = demo_piv_path(&self.vault, name);
        let (pin, created) = if path.exists() {
            let pin = prompt.ask(
                &format!("DEMO software PIV key of {custodian}"),
                PinPurpose::Enter,
            );
            prompt.finish();
            (pin.ok_or(Error::PinRequired)?, None)
        } else {
            make_demo_dir(&self.vault)?;
            let pin = prompt.ask(
                &format!("new DEMO software PIV key of {custodian}"),
                PinPurpose::New,
            );
            prompt.finish();
            let pin = pin.ok_or(Error::PinRequired)?;
            custos_hardware::piv::create_demo_piv(&path, &pin)?;
            (pin, Some(path.clone()))
        };
        let mut card = match custos_hardware::piv::open_demo_piv(&path) {
            Ok(card) => card,
            Err(e) => {
                if let Some(p) = &created {
                    let _ = std::fs::remove_file(p);
                }
                return Err(e);
            }
        };
        card.set_prompt(prompt.into_arc());
        Ok(NewDevice {
            device: Box::new(card),
            pin: Some(pin),
            created,
        })
    }

    /// The PIV card holding the key a share file is locked to (`tags`: the file's recipient tags),
    /// and its PIN from the PIN dialog. Demo mode searches the demo PIV keys of this vault's
    /// custodians; else the YubiKey on PC/SC. The card is checked to hold the key before anyone
    /// types a PIN.
    pub fn piv_for_share_file(&self, tags: &[[u8; 4]]) -> Result<(Box<dyn PivCard>, Pin)> {
        let touch = |holder: Option<&str>| WindowPrompt::new(&self.app, holder, KeyKind::Piv);
        let (mut card, holder, device): (Box<dyn PivCard>, Option<String>, String) = if self.demo {
            let found = custos_hardware::piv::find_demo_piv(&demo_dir(&self.vault), |card| {
                custos_core::sharefile::piv_slot_for(card, tags).is_ok()
            })?;
            let (mut card, name) = found.ok_or(Error::NoDevice(
                "DEMO PIV key holding the key this share file is locked to",
            ))?;
            card.set_prompt(touch(Some(&name)).into_arc());
            let device = format!("DEMO software PIV key of {name}");
            (Box::new(card), Some(name), device)
        } else {
            let mut card = custos_hardware::piv::YubiKeyPiv::open(None)?;
            card.set_prompt(touch(None).into_arc());
            let device = format!("YubiKey PIV (serial {})", card.serial());
            (Box::new(card), None, device)
        };
        custos_core::sharefile::piv_slot_for(card.as_mut(), tags)?;
        let prompt = touch(holder.as_deref());
        let pin = prompt.ask(&format!("{device} (share file)"), PinPurpose::Enter);
        prompt.finish();
        let pin = pin.ok_or(Error::PinRequired)?;
        Ok((card, pin))
    }

    /// The YubiKey a PIV-bound vault needs to unlock, and its PIN (asked in the PIN dialog). Demo
    /// mode, or a demo serial, uses the demo card of the custodian the vault is bound to.
    pub fn piv_for_unlock(&self, factor: &PivFactor) -> Result<(Box<dyn PivCard>, Pin)> {
        let prompt = self.prompt(&factor.custodian, KeyKind::Piv);
        let demo_serial = factor.serial >= custos_hardware::piv::demo::DEMO_SERIAL_BASE;
        let (card, device): (Box<dyn PivCard>, String) = if self.demo || demo_serial {
            let path = demo_piv_path(&self.vault, file_safe(&factor.custodian)?);
            if !path.exists() {
                return Err(Error::NoDevice(
                    "DEMO software PIV key of the custodian this vault is bound to",
                ));
            }
            let mut card = custos_hardware::piv::open_demo_piv(&path)?;
            card.set_prompt(self.prompt(&factor.custodian, KeyKind::Piv).into_arc());
            let device = format!(
                "DEMO software PIV key of {} (demo serial {})",
                factor.custodian, factor.serial
            );
            (Box::new(card), device)
        } else {
            let mut card = custos_hardware::piv::YubiKeyPiv::open(Some(factor.serial))?;
            card.set_prompt(self.prompt(&factor.custodian, KeyKind::Piv).into_arc());
            let device = format!(
                "YubiKey serial {} of {} (PIV slot {:02x})",
                factor.serial, factor.custodian, factor.slot
            );
            (Box::new(card), device)
        };
        let pin = prompt.ask(&device, PinPurpose::Enter);
        prompt.finish();
        let pin = pin.ok_or(Error::PinRequired)?;
        Ok((card, pin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_cli() {
        let v = Path::new("/tmp/x/vault.db");
        assert_eq!(demo_dir(v), PathBuf::from("/tmp/x/vault.db.demo-keys"));
        assert_eq!(
            demo_fido2_path(v, "olivia", 2),
            PathBuf::from("/tmp/x/vault.db.demo-keys/olivia-fido2-2.json")
        );
        assert_eq!(
            demo_piv_path(v, "olivia"),
            PathBuf::from("/tmp/x/vault.db.demo-keys/olivia-piv.json")
        );
    }

    #[test]
    fn lowest_existing_number_first_and_names_do_not_collide() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v = dir.path().join("vault.db");
        std::fs::create_dir_all(demo_dir(&v)).expect("dir");
        for f in [
            "ana-fido2-3.json",
            "ana-fido2-2.json",
            "ana-fido2-x.json",
            "ana-fido2-bob-fido2-1.json",
            "ana-piv.json",
            "anabel-fido2-1.json",
        ] {
            std::fs::write(demo_dir(&v).join(f), b"{}").expect("write");
        }
        assert_eq!(demo_fido2_numbers(&v, "ana"), vec![2, 3]);
        assert_eq!(demo_fido2_numbers(&v, "anabel"), vec![1]);
        assert!(demo_fido2_numbers(&v, "bob").is_empty());
    }

    #[test]
    fn names_that_leave_the_directory_are_refused() {
        for bad in ["../x", "a/b", ".hidden", "a\\b", ""] {
            assert_eq!(file_safe(bad).unwrap_err().kind(), "device", "{bad}");
        }
        assert!(file_safe("Dr. Müller").is_ok());
    }
}
