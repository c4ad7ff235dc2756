//! What Custos needs from a hardware key, as traits. The domain never talks to a device itself.
//!
//! Real implementations (FIDO2 over CTAP2/USB with webauthn-authenticator-rs; YubiKey PIV over PC/SC with
//! the `yubikey` crate) and the software twins used by tests and `--demo` live in `custos-hardware`. The
//! twins run the same client code as the real devices; only the device differs. Every implementation
//! reports whether it is a twin ([`DeviceIdentity::demo`]), and the vault refuses to mix the two.

use serde::{Deserialize, Serialize};
use webauthn_rs_proto::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};

use crate::error::Result;
use crate::secret::SecretBytes;

/// The PIV slots Custos uses: the retired key-management slots 0x82–0x95 (as age-plugin-yubikey does).
pub const PIV_RETIRED_SLOTS: std::ops::RangeInclusive<u8> = 0x82..=0x95;

/// Which device answered, for the person and the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceIdentity {
    /// "fido2" or "piv".
    pub kind: String,
    /// For a person: "YubiKey 5 (PIV 5.4.3)", "FIDO2 key (USB)", "DEMO software key — not hardware".
    pub description: String,
    /// The device serial when it has one (PIV).
    pub serial: Option<u32>,
    /// A software twin, not hardware. Never shown to a user as hardware.
    pub demo: bool,
}

/// A FIDO2 authenticator seen through a CTAP2 client. Custos is its own relying party: the options come
/// from the vault (webauthn-rs-core), the answers go back to it to be verified.
///
/// Implementations block until the person touches the key (or a timeout, reported as
/// [`crate::Error::NoTouch`]), ask for the PIN through their own prompt, and never hang without a device
/// ([`crate::Error::NoDevice`]).
pub trait Fido2Client {
    fn identity(&self) -> DeviceIdentity;
    /// makeCredential: create a credential for the options (registration).
    fn register(
        &mut self,
        options: CreationChallengeResponse,
    ) -> Result<RegisterPublicKeyCredential>;
    /// getAssertion: sign the challenge in the options with a credential from its allow list.
    fn assert(&mut self, options: RequestChallengeResponse) -> Result<PublicKeyCredential>;
}

/// A PIV card (YubiKey PIV application). The private key never leaves the card; Custos uses it for ECDH
/// (the hardware key-encryption key) with a P-256 key in a retired slot.
pub trait PivCard {
    fn identity(&self) -> DeviceIdentity;
    fn serial(&self) -> u32;
    /// Refuse a card still on the factory PIN, PUK or management key, saying how to change them.
    fn check_not_default(&mut self) -> Result<()>;
    /// Generate a P-256 key on the card in `slot` with PIN policy "once" and touch policy "always";
    /// returns the SEC1 uncompressed public key (65 bytes). Needs the PIN (and the management key, which
    /// the implementation obtains from the card's PIN-protected store or asks for).
    fn generate_p256(&mut self, slot: u8, pin: &Pin) -> Result<Vec<u8>>;
    /// The public key in `slot` (SEC1 uncompressed), from the card's metadata.
    fn public_key(&mut self, slot: u8) -> Result<Vec<u8>>;
    /// ECDH between the card's key in `slot` and `peer` (SEC1 public key): the 32-byte shared x
    /// coordinate. Needs the PIN and, with touch policy "always", a touch.
    fn ecdh(&mut self, slot: u8, peer: &[u8], pin: &Pin) -> Result<SecretBytes>;
    /// A problem the last operation met that did not stop it (e.g. a generated key whose slot
    /// certificate could not be written), to be shown to the person; taken once.
    fn take_warning(&mut self) -> Option<String> {
        None
    }
}

/// A PIN, zeroized on drop, never printed.
pub struct Pin(zeroize::Zeroizing<String>);

impl Pin {
    pub fn new(s: String) -> Self {
        Pin(zeroize::Zeroizing::new(s))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// The relying-party id Custos uses for every FIDO2 credential. Fixed: a credential made for one
/// vault cannot be replayed to a web site, and all Custos vaults share one id on a key.
pub const RP_ID: &str = "custos.local";
/// The origin Custos's CTAP2 clients put in clientDataJSON; the vault accepts only this one.
pub const ORIGIN: &str = "https://custos.local";
