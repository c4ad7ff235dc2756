//! Which device answers a touch or a PIN: the real ones (FIDO2 over USB, YubiKey PIV over PC/SC) or,
//! with `--demo`, a custodian's software twins stored next to the vault. The same CTAP2 client code
//! drives both; only the device differs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use custos_core::hardware::{Fido2Client, Pin, PivCard};
use custos_core::{Error, Result};
use custos_hardware::Prompt;

/// Terminal prompts: the PIN from `CUSTOS_PIN` (scripts, tests) or typed without echo.
pub struct TerminalPrompt;

impl Prompt for TerminalPrompt {
    fn pin(&self, device: &str) -> Option<Pin> {
        if let Ok(p) = std::env::var("CUSTOS_PIN") {
            return Some(Pin::new(p));
        }
        rpassword::prompt_password(format!("PIN for {device}: "))
            .ok()
            .map(Pin::new)
    }
    fn touch(&self, device: &str) {
        // For a person at the terminal; scripts get the outcome only (one `error:` line on failure).
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            eprintln!("Touch your key now: {device}");
        }
    }
}

pub fn prompt() -> Arc<dyn Prompt> {
    Arc::new(TerminalPrompt)
}

/// `<vault>.demo-keys/`: where a demo vault keeps its custodians' software keys.
pub fn demo_dir(vault: &Path) -> PathBuf {
    let mut s = vault.as_os_str().to_owned();
    s.push(".demo-keys");
    PathBuf::from(s)
}

fn demo_fido2_path(vault: &Path, name: &str, n: u32) -> PathBuf {
    demo_dir(vault).join(format!("{name}-fido2-{n}.json"))
}

pub fn demo_piv_path(vault: &Path, name: &str) -> PathBuf {
    demo_dir(vault).join(format!("{name}-piv.json"))
}

/// The key `name` touches with: with `--demo`, the first of their demo key files that backs a
/// credential still active (`active` = the device descriptions of their active authenticators, which
/// name the file); else the FIDO2 key on USB.
pub fn fido2_for(
    vault: &Path,
    name: &str,
    demo: bool,
    active: &[String],
) -> Result<Box<dyn Fido2Client>> {
    if demo {
        let path = (1..=64)
            .map(|n| demo_fido2_path(vault, name, n))
            .filter(|p| p.exists())
            .find(|p| {
                let shown = p.display().to_string();
                active.iter().any(|d| d.contains(&shown))
            })
            .ok_or(Error::NoDevice(
                "demo FIDO2 key with an active credential (enrol one with --demo)",
            ))?;
        return Ok(Box::new(custos_hardware::fido2::open_demo(
            &path,
            prompt(),
        )?));
    }
    usb()
}

#[cfg(feature = "usb")]
fn usb() -> Result<Box<dyn Fido2Client>> {
    Ok(Box::new(custos_hardware::fido2::open_usb(prompt())?))
}

#[cfg(not(feature = "usb"))]
fn usb() -> Result<Box<dyn Fido2Client>> {
    Err(Error::NoDevice("FIDO2 key (this build has no USB support)"))
}

/// A new key to enrol for `name`: with `--demo`, a fresh software key (its PIN from `CUSTOS_PIN` or a
/// prompt); else the FIDO2 key on USB.
pub fn new_fido2_for(vault: &Path, name: &str, demo: bool) -> Result<Box<dyn Fido2Client>> {
    if !demo {
        return usb();
    }
    std::fs::create_dir_all(demo_dir(vault)).map_err(|e| Error::Device(e.to_string()))?;
    let path = (1..)
        .map(|n| demo_fido2_path(vault, name, n))
        .find(|p| !p.exists())
        .ok_or_else(|| Error::Internal("no free demo key name".into()))?;
    let pin = prompt()
        .pin("new DEMO software FIDO2 key (choose its PIN)")
        .ok_or(Error::PinRequired)?;
    custos_hardware::fido2::create_demo_key(&path, &pin)?;
    Ok(Box::new(custos_hardware::fido2::open_demo(
        &path,
        prompt(),
    )?))
}

/// The PIV card of `name`: their demo card, or the YubiKey with `serial` over PC/SC.
pub fn piv_for(
    vault: &Path,
    name: &str,
    demo: bool,
    serial: Option<u32>,
    create: bool,
) -> Result<Box<dyn PivCard>> {
    if demo {
        let path = demo_piv_path(vault, name);
        if create && !path.exists() {
            std::fs::create_dir_all(demo_dir(vault)).map_err(|e| Error::Device(e.to_string()))?;
            let pin = pin("new DEMO software PIV key (choose its PIN)")?;
            custos_hardware::piv::create_demo_piv(&path, &pin)?;
        }
        let mut card = custos_hardware::piv::open_demo_piv(&path)?;
        card.set_prompt(prompt());
        return Ok(Box::new(card));
    }
    real_piv(serial)
}

#[cfg(feature = "piv")]
fn real_piv(serial: Option<u32>) -> Result<Box<dyn PivCard>> {
    let mut card = custos_hardware::piv::YubiKeyPiv::open(serial)?;
    card.set_prompt(prompt());
    Ok(Box::new(card))
}

#[cfg(not(feature = "piv"))]
fn real_piv(_serial: Option<u32>) -> Result<Box<dyn PivCard>> {
    Err(Error::NoDevice("YubiKey (this build has no PC/SC support)"))
}

pub fn pin(what: &str) -> Result<Pin> {
    prompt().pin(what).ok_or(Error::PinRequired)
}

/// Lend an optional boxed key to the vault (which takes `Option<&mut dyn Fido2Client>`).
pub fn borrow(key: &mut Option<Box<dyn Fido2Client>>) -> Option<&mut dyn Fido2Client> {
    key.as_mut().map(|k| k.as_mut() as &mut dyn Fido2Client)
}
