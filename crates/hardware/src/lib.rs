//! Custos's hardware backends, behind the traits of [`custos_core::hardware`].
//!
//! - [`fido2`]: one CTAP2 client, [`Ctap2Key`], for a real FIDO2 key over USB ([`open_usb`], feature
//!   `usb`) and for the demo twin ([`open_demo`], the software CTAP2 device of `custos-ctap2-twin`
//!   persisted in a file). The difference between demo and real is the device, not the code.
//! - [`piv`]: a YubiKey's PIV application over PC/SC ([`YubiKeyPiv`], feature `piv`) and the demo
//!   twin ([`DemoPiv`], a P-256 key in a file).
//! - [`Prompt`]: how the shells ask for a PIN and say "touch your key".
//!
//! Demo devices always report [`DeviceIdentity::demo`](custos_core::hardware::DeviceIdentity) =
//! `true` and a description starting "DEMO software"; their files hold private keys in clear and
//! protect nothing.
//!
//! Cargo features (both default):
//! - `usb`: webauthn-authenticator-rs's USB HID transport. Build: libudev-dev, libclang-dev,
//!   pkg-config. Run: read/write access to the key's /dev/hidraw* (udev rules, e.g. Debian's
//!   `libfido2-1` or `libu2f-udev`).
//! - `piv`: the `yubikey` crate over PC/SC. Build: libpcsclite-dev, pkg-config. Run: pcscd (and
//!   libccid for USB readers such as the YubiKey).

pub mod fido2;
pub mod piv;
mod prompt;

#[cfg(feature = "usb")]
pub use fido2::open_usb;
pub use fido2::{create_demo_key, open_demo, select_key, Ctap2Key};
#[cfg(feature = "piv")]
pub use piv::YubiKeyPiv;
pub use piv::{create_demo_piv, open_demo_piv, DemoPiv};
pub use prompt::Prompt;

/// The CTAP2 device of the FIDO2 demo twin (re-exported so that shells and tests can name
/// `Ctap2Key<SoftCtap2Device>` without depending on the twin crate).
pub use custos_ctap2_twin::SoftCtap2Device;
/// The USB token type of a real FIDO2 key (`Ctap2Key<USBToken>`).
#[cfg(feature = "usb")]
pub use webauthn_authenticator_rs::usb::USBToken;
