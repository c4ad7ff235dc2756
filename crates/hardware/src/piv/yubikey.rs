//! A YubiKey's PIV application over PC/SC, with the `yubikey` crate 0.8 (feature `untested`).
//!
//! **None of this has run against a real YubiKey yet** (these machines have no USB). What was shown
//! here: with no pcscd, `open` answers [`Error::PcscNotRunning`]; with pcscd and no reader,
//! [`Error::NoDevice`]. The APDU-level behaviour (metadata, management-key authentication,
//! generation, ECDH, wrong PIN, no touch, card removed mid-operation) follows the crate and Yubico's
//! documentation and runs in `tests/piv_vpcd.rs` against the software card of
//! `custos-piv-card-twin` behind a real pcscd + vpcd (`make test-piv`). Status words on a real key
//! may differ: follow docs/hardware-checklist.md and compare with a `pcscd -f -a` trace before
//! relying on an exact error.
//!
//! Requirements, checked with a clear message rather than assumed:
//! - firmware 5.3 or later (GET METADATA, to tell default credentials and occupied slots without
//!   spending a PIN try);
//! - a 3DES management key, stored PIN-protected on the key (`ykman ... --protect`) or given in
//!   `CUSTOS_PIV_MGMT_KEY` (48 hex digits). AES management keys (the default from firmware 5.7) are
//!   not spoken by the crate 0.8.

use std::fmt;
use std::sync::Arc;

use custos_core::hardware::{DeviceIdentity, Pin, PivCard};
use custos_core::{Error, Result, SecretBytes};
use yubikey::piv::{self, AlgorithmId, ManagementSlotId, RetiredSlotId, SlotId};
use yubikey::{MgmKey, PinPolicy, Serial, TouchPolicy, YubiKey};
use zeroize::Zeroizing;

use super::{
    check_pin_format, check_slot, default_credentials_message, peer_point, Defaults,
    CHANGE_MANAGEMENT_KEY,
};
use crate::prompt::Prompt;

/// The environment variable that may hold the management key (hex), for keys whose management key
/// is not stored PIN-protected on the YubiKey.
pub const MGMT_KEY_ENV: &str = "CUSTOS_PIV_MGMT_KEY";

/// A YubiKey's PIV application.
pub struct YubiKeyPiv {
    yk: YubiKey,
    prompt: Option<Arc<dyn Prompt>>,
    /// See [`PivCard::take_warning`].
    warning: Option<String>,
}

impl fmt::Debug for YubiKeyPiv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("YubiKeyPiv")
            .field("serial", &self.yk.serial().0)
            .field("version", &self.yk.version().to_string())
            .finish_non_exhaustive()
    }
}

/// PC/SC and card errors as the person should read them.
fn map_error(e: yubikey::Error) -> Error {
    use pcsc::Error as P;
    match e {
        yubikey::Error::PcscError {
            inner: Some(P::NoService | P::ServiceStopped),
        } => Error::PcscNotRunning,
        yubikey::Error::PcscError {
            inner:
                Some(
                    P::NoReadersAvailable
                    | P::NoSmartcard
                    | P::RemovedCard
                    | P::ResetCard
                    | P::UnpoweredCard
                    | P::UnresponsiveCard
                    | P::UnknownReader
                    | P::ReaderUnavailable,
                ),
        } => Error::NoDevice("YubiKey"),
        yubikey::Error::PcscError {
            inner: Some(P::SharingViolation),
        } => Error::Device(
            "the YubiKey is in use by another program (gpg's scdaemon, ykman, a browser): close \
             it (e.g. `gpgconf --kill scdaemon`) and try again"
                .into(),
        ),
        // `YubiKey::open` reports two keys this way (and logs "multiple YubiKeys detected").
        yubikey::Error::PcscError { inner: None } => Error::Device(
            "several YubiKeys are plugged in: leave only the custodian's key plugged in, or name \
             it by its serial"
                .into(),
        ),
        yubikey::Error::NotFound => Error::NoDevice("YubiKey"),
        yubikey::Error::AppletNotFound { .. } => {
            Error::Device("this card has no PIV application".into())
        }
        yubikey::Error::PinLocked | yubikey::Error::WrongPin { tries: 0 } => {
            Error::PinBlocked("YubiKey PIV")
        }
        yubikey::Error::WrongPin { tries } => Error::WrongPin {
            retries: Some(u32::from(tries)),
        },
        other => Error::Device(format!("YubiKey PIV: {other}")),
    }
}

fn retired(slot: u8) -> Result<SlotId> {
    check_slot(slot)?;
    RetiredSlotId::try_from(slot)
        .map(SlotId::Retired)
        .map_err(|_| Error::Internal(format!("slot {slot:02x} is not a retired slot")))
}

/// The SEC1 point of a public key from the card (the BIT STRING of its SubjectPublicKeyInfo), checked
/// to be an uncompressed P-256 point.
fn point_of(raw: &[u8]) -> Result<Vec<u8>> {
    let point = raw.to_vec();
    let checked = peer_point(&point)
        .map_err(|_| Error::Device("the YubiKey returned a public key that is not P-256".into()))?;
    if checked != point {
        return Err(Error::Device(
            "the YubiKey returned a public key in an unexpected encoding".into(),
        ));
    }
    Ok(point)
}

impl YubiKeyPiv {
    /// Opens the YubiKey with `serial`, or the only one plugged in. [`Error::PcscNotRunning`] when
    /// pcscd is not running, [`Error::NoDevice`] when there is no reader or no key.
    pub fn open(serial: Option<u32>) -> Result<Self> {
        let yk = match serial {
            Some(s) => YubiKey::open_by_serial(Serial(s)),
            None => YubiKey::open(),
        }
        .map_err(map_error)?;
        Ok(Self {
            yk,
            prompt: None,
            warning: None,
        })
    }

    /// Opens the card in the PC/SC reader named exactly `reader` (as `pcsc_scan` or `opensc-tool -l`
    /// list it), without connecting to any other reader: a key plugged into another reader is not
    /// touched. [`Error::NoDevice`] when there is no such reader or no card in it.
    pub fn open_reader(reader: &str) -> Result<Self> {
        let mut ctx = yubikey::Context::open().map_err(map_error)?;
        let found = ctx.iter().map_err(map_error)?.find(|r| r.name() == reader);
        let Some(r) = found else {
            return Err(Error::NoDevice("YubiKey"));
        };
        let yk = r.open().map_err(map_error)?;
        Ok(Self {
            yk,
            prompt: None,
            warning: None,
        })
    }

    /// Where "touch your YubiKey" is shown before an operation that waits for a touch.
    pub fn set_prompt(&mut self, prompt: Arc<dyn Prompt>) {
        self.prompt = Some(prompt);
    }

    /// The PIV application's version, e.g. "5.4.3".
    pub fn version(&self) -> String {
        self.yk.version().to_string()
    }

    /// GET METADATA needs firmware 5.3.
    fn require_metadata(&self) -> Result<()> {
        let v = self.yk.version();
        if v.major > 5 || (v.major == 5 && v.minor >= 3) {
            Ok(())
        } else {
            Err(Error::Device(format!(
                "this YubiKey's PIV firmware ({v}) is older than 5.3: it cannot report whether its \
                 PIN is still the factory one or which slots hold keys without spending PIN tries, \
                 so Custos does not use it for PIV"
            )))
        }
    }

    fn verify_pin(&mut self, pin: &Pin) -> Result<()> {
        check_pin_format(pin.expose())?;
        match self.yk.verify_pin(pin.expose().as_bytes()) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// The error for a failed exchange. A card pulled out in the middle of a command does not always
    /// surface as a PC/SC "removed" error: pcscd may answer the pending exchange with an empty
    /// response (which the crate reports as a generic error; seen with vpcd) or "not transacted".
    /// After such an ambiguous failure the card is asked something harmless (the PIN's metadata,
    /// which spends nothing); if that fails too, the card is gone: [`Error::NoDevice`].
    fn failed(&mut self, e: yubikey::Error) -> Error {
        use pcsc::Error as P;
        let ambiguous = matches!(
            e,
            yubikey::Error::GenericError
                | yubikey::Error::PcscError {
                    inner: Some(P::NotTransacted | P::CommError | P::UnknownError)
                }
        );
        if ambiguous && self.card_gone() {
            Error::NoDevice("YubiKey")
        } else {
            map_error(e)
        }
    }

    /// Whether the card stopped answering (removed): GET METADATA on the PIN slot fails at the PC/SC
    /// level or gets no status word. Firmware without GET METADATA answers "not supported", which
    /// counts as present.
    fn card_gone(&mut self) -> bool {
        matches!(
            piv::metadata(&mut self.yk, SlotId::Management(ManagementSlotId::Pin)),
            Err(yubikey::Error::PcscError { .. } | yubikey::Error::GenericError)
        )
    }

    /// Management-key authentication: `CUSTOS_PIV_MGMT_KEY` if set, else the PIN-protected key
    /// stored on the YubiKey (which needs the PIN verified first).
    fn authenticate(&mut self) -> Result<()> {
        let mgm = match std::env::var(MGMT_KEY_ENV) {
            Ok(hex_key) => {
                let bytes = Zeroizing::new(hex::decode(hex_key.trim()).map_err(|_| {
                    Error::Device(format!(
                        "{MGMT_KEY_ENV} is not hex: it must hold 48 hex digits"
                    ))
                })?);
                // A weak 3DES key is refused by the crate.
                MgmKey::from_bytes(bytes.as_slice()).map_err(|_| {
                    Error::Device(format!(
                        "{MGMT_KEY_ENV} is not a usable 3DES management key (48 hex digits)"
                    ))
                })?
            }
            Err(_) => match MgmKey::get_protected(&mut self.yk) {
                Ok(k) => k,
                Err(e) => {
                    if let Error::NoDevice(d) = self.failed(e) {
                        return Err(Error::NoDevice(d));
                    }
                    return Err(Error::Device(format!(
                        "this YubiKey has no PIN-protected management key: run \
                         `{CHANGE_MANAGEMENT_KEY}`, or give the management key in {MGMT_KEY_ENV} \
                         (48 hex digits); nothing was done"
                    )));
                }
            },
        };
        match self.yk.authenticate(mgm) {
            Ok(()) => Ok(()),
            Err(yubikey::Error::AuthenticationError) if !self.card_gone() => {
                Err(Error::Device(format!(
                    "the YubiKey refused the management key. If it is an AES key (the default \
                     from firmware 5.7), replace it with `{CHANGE_MANAGEMENT_KEY}`; nothing was \
                     done"
                )))
            }
            Err(yubikey::Error::AuthenticationError) => Err(Error::NoDevice("YubiKey")),
            Err(other) => Err(self.failed(other)),
        }
    }

    fn slot_metadata(&mut self, slot: SlotId) -> Result<Option<piv::SlotMetadata>> {
        self.require_metadata()?;
        match piv::metadata(&mut self.yk, slot) {
            Ok(m) => Ok(Some(m)),
            // An empty slot answers "not found" (6A88), which the crate reports as GenericError —
            // as it reports a card pulled out mid-exchange: tell the two apart.
            Err(yubikey::Error::GenericError) if !self.card_gone() => Ok(None),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Writes a self-signed X.509 certificate for the key just generated in `slot` (subject
    /// `O=Custos, CN=Custos PIV key <slot>`, valid 20 years), signed by that key on the card (a
    /// touch). Needs the management key, already authenticated for the generation.
    fn write_certificate(
        &mut self,
        slot: SlotId,
        spki: x509_cert::spki::SubjectPublicKeyInfoOwned,
    ) -> std::result::Result<(), String> {
        use std::str::FromStr;
        use x509_cert::{name::Name, serial_number::SerialNumber, time::Validity};
        let serial = random_serial().map_err(|e| e.to_string())?;
        let serial = SerialNumber::new(&serial).map_err(|e| e.to_string())?;
        let validity = Validity::from_now(std::time::Duration::from_secs(20 * 365 * 86_400))
            .map_err(|e| e.to_string())?;
        let slot_hex = u8::from(slot);
        let subject = Name::from_str(&format!("CN=Custos PIV key {slot_hex:02x},O=Custos"))
            .map_err(|e| e.to_string())?;
        let result = self.with_touch(|yk| {
            yubikey::certificate::Certificate::generate_self_signed::<_, p256_yubikey::NistP256>(
                yk,
                slot,
                serial,
                validity,
                subject,
                spki,
                |_| Ok(()),
            )
        });
        match result {
            Ok(_) => Ok(()),
            Err(_) if self.card_gone() => Err("the YubiKey was removed".into()),
            // The crate reports any failure to sign as a key error: with touch policy "always"
            // that is, in practice, the touch that did not come.
            Err(yubikey::Error::KeyError) => {
                Err("the card did not sign it (no touch within the time allowed?)".into())
            }
            // PUT DATA refused: the management key is no longer authenticated.
            Err(yubikey::Error::AuthenticationError) => {
                Err("the card refused to store it (management key not authenticated)".into())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Runs `f` on the card with "touch your YubiKey" shown meanwhile.
    fn with_touch<R>(&mut self, f: impl FnOnce(&mut YubiKey) -> R) -> R {
        if let Some(p) = &self.prompt {
            p.touch("YubiKey");
        }
        let r = f(&mut self.yk);
        if let Some(p) = &self.prompt {
            p.done();
        }
        r
    }
}

impl PivCard for YubiKeyPiv {
    fn identity(&self) -> DeviceIdentity {
        DeviceIdentity {
            kind: "piv".into(),
            description: format!(
                "YubiKey (PIV {}, serial {})",
                self.yk.version(),
                self.yk.serial()
            ),
            serial: Some(self.yk.serial().0),
            demo: false,
        }
    }

    fn serial(&self) -> u32 {
        self.yk.serial().0
    }

    /// From GET METADATA on the PIN (80), PUK (81) and management-key (9B) slots: their "default"
    /// flag, read without verifying anything, so no PIN or PUK try is spent. A management key the
    /// crate cannot parse (AES) is reported with the command that replaces it with a 3DES one.
    /// Not yet run on a real YubiKey.
    fn check_not_default(&mut self) -> Result<()> {
        self.require_metadata()?;
        let mut defaults = Defaults::default();
        for (slot, flag) in [
            (ManagementSlotId::Pin, &mut defaults.pin),
            (ManagementSlotId::Puk, &mut defaults.puk),
        ] {
            let m = match piv::metadata(&mut self.yk, SlotId::Management(slot)) {
                Ok(m) => m,
                Err(e) => return Err(self.failed(e)),
            };
            *flag = m.default == Some(true);
        }
        let aes_management_key = match piv::metadata(
            &mut self.yk,
            SlotId::Management(ManagementSlotId::Management),
        ) {
            Ok(m) => {
                defaults.management_key = m.default == Some(true);
                false
            }
            // The 0.8 parser knows only the 3DES management-key algorithm (03).
            Err(yubikey::Error::AlgorithmError) => true,
            Err(e) => return Err(self.failed(e)),
        };
        if defaults != Defaults::default() {
            return Err(Error::DefaultCredentials(default_credentials_message(
                defaults,
            )));
        }
        if aes_management_key {
            return Err(Error::Device(format!(
                "this YubiKey's PIV management key is not 3DES (firmware 5.7 and later use AES by \
                 default), which Custos's PIV driver cannot use yet: replace it with \
                 `{CHANGE_MANAGEMENT_KEY}`; nothing was done"
            )));
        }
        Ok(())
    }

    /// Not yet run on a real YubiKey.
    fn generate_p256(&mut self, slot: u8, pin: &Pin) -> Result<Vec<u8>> {
        let slot_id = retired(slot)?;
        if self.slot_metadata(slot_id)?.is_some() {
            return Err(Error::Device(format!(
                "slot {slot:02x} of this YubiKey already holds a key: choose another retired slot \
                 (82 to 95), or clear it with `ykman piv keys delete {slot:02x}` if it is really \
                 unused; nothing was done"
            )));
        }
        self.verify_pin(pin)?;
        self.authenticate()?;
        let spki = match piv::generate(
            &mut self.yk,
            slot_id,
            AlgorithmId::EccP256,
            PinPolicy::Once,
            TouchPolicy::Always,
        ) {
            Ok(spki) => spki,
            Err(e) => return Err(self.failed(e)),
        };
        let point = point_of(spki.subject_public_key.raw_bytes())?;
        // A self-signed certificate in the slot, as ykman and age-plugin-yubikey write one: other
        // PIV tools find the key through it (age-plugin-yubikey opens Custos's share files so). It
        // needs one more touch; without it the key still works for Custos, and that is said.
        self.warning = None;
        if let Err(e) = self.write_certificate(slot_id, spki) {
            let warning = format!(
                "the key in slot {slot:02x} works, but its certificate was not written ({e}): \
                 age-plugin-yubikey and other PIV tools will not find it (`ykman piv certificates \
                 generate {slot:02x}` writes one)"
            );
            eprintln!("custos: WARNING: {warning}");
            self.warning = Some(warning);
        }
        Ok(point)
    }

    fn take_warning(&mut self) -> Option<String> {
        self.warning.take()
    }

    /// Not yet run on a real YubiKey.
    fn public_key(&mut self, slot: u8) -> Result<Vec<u8>> {
        let slot_id = retired(slot)?;
        match self.slot_metadata(slot_id)? {
            Some(piv::SlotMetadata {
                public: Some(spki), ..
            }) => point_of(spki.subject_public_key.raw_bytes()),
            _ => Err(Error::Device(format!(
                "slot {slot:02x} of this YubiKey holds no key"
            ))),
        }
    }

    /// Not yet run on a real YubiKey. A touch the key did not get answers "security status not
    /// satisfied" (6982), which the crate reports as an authentication error: right after a
    /// successful VERIFY, that is read as [`Error::NoTouch`] (as other YubiKey tools do).
    fn ecdh(&mut self, slot: u8, peer: &[u8], pin: &Pin) -> Result<SecretBytes> {
        let slot_id = retired(slot)?;
        let peer = Zeroizing::new(peer_point(peer)?);
        match self.slot_metadata(slot_id)? {
            Some(piv::SlotMetadata {
                algorithm: piv::ManagementAlgorithmId::Asymmetric(AlgorithmId::EccP256),
                ..
            }) => {}
            Some(_) => {
                return Err(Error::Device(format!(
                    "slot {slot:02x} of this YubiKey holds a key that is not P-256"
                )))
            }
            None => {
                return Err(Error::Device(format!(
                    "slot {slot:02x} of this YubiKey holds no key"
                )))
            }
        }
        self.verify_pin(pin)?;
        let result = self.with_touch(|yk| {
            // `decrypt_data` with a P-256 key is ECDH (GENERAL AUTHENTICATE, tag 85).
            piv::decrypt_data(yk, peer.as_slice(), AlgorithmId::EccP256, slot_id)
        });
        let shared = match result {
            Ok(s) => s,
            Err(yubikey::Error::AuthenticationError) => return Err(Error::NoTouch),
            Err(other) => return Err(self.failed(other)),
        };
        if shared.len() != 32 {
            return Err(Error::Device(format!(
                "the YubiKey returned {} bytes for a P-256 ECDH, expected 32",
                shared.len()
            )));
        }
        Ok(SecretBytes::new(shared.to_vec()))
    }
}

/// A positive 16-byte certificate serial.
fn random_serial() -> Result<[u8; 16]> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::Device(format!("no randomness: {e}")))?;
    b[0] &= 0x7F;
    b[0] |= 0x01;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcsc_and_card_errors_map_to_actionable_errors() {
        use pcsc::Error as P;
        let pc = |e| yubikey::Error::PcscError { inner: Some(e) };
        assert!(matches!(map_error(pc(P::NoService)), Error::PcscNotRunning));
        assert!(matches!(
            map_error(pc(P::ServiceStopped)),
            Error::PcscNotRunning
        ));
        assert!(matches!(
            map_error(pc(P::NoReadersAvailable)),
            Error::NoDevice("YubiKey")
        ));
        assert!(matches!(
            map_error(pc(P::RemovedCard)),
            Error::NoDevice("YubiKey")
        ));
        assert!(matches!(
            map_error(yubikey::Error::NotFound),
            Error::NoDevice("YubiKey")
        ));
        assert!(matches!(
            map_error(yubikey::Error::WrongPin { tries: 2 }),
            Error::WrongPin { retries: Some(2) }
        ));
        assert!(matches!(
            map_error(yubikey::Error::WrongPin { tries: 0 }),
            Error::PinBlocked("YubiKey PIV")
        ));
        assert!(matches!(
            map_error(yubikey::Error::PinLocked),
            Error::PinBlocked("YubiKey PIV")
        ));
        match map_error(yubikey::Error::PcscError { inner: None }) {
            Error::Device(m) => assert!(m.contains("several YubiKeys"), "{m}"),
            other => panic!("{other:?}"),
        }
        match map_error(pc(P::SharingViolation)) {
            Error::Device(m) => assert!(m.contains("scdaemon"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
