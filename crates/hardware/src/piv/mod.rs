//! PIV: a P-256 key in a retired slot (82–95) used for ECDH, on a YubiKey ([`YubiKeyPiv`], feature
//! `piv`) or in the demo twin ([`DemoPiv`]), both behind [`custos_core::hardware::PivCard`].

pub mod demo;
#[cfg(feature = "piv")]
pub mod yubikey;

pub use demo::{create_demo_piv, find_demo_piv, open_demo_piv, DemoPiv};
#[cfg(feature = "piv")]
pub use yubikey::YubiKeyPiv;

use custos_core::hardware::PIV_RETIRED_SLOTS;
use custos_core::{Error, Result};
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::PublicKey;

/// The factory PIN of a YubiKey's PIV application.
pub const FACTORY_PIN: &str = "123456";
/// The factory PUK.
pub const FACTORY_PUK: &str = "12345678";

/// Refuses any slot but the retired key-management slots 0x82–0x95.
pub(crate) fn check_slot(slot: u8) -> Result<()> {
    if PIV_RETIRED_SLOTS.contains(&slot) {
        Ok(())
    } else {
        Err(Error::Device(format!(
            "PIV slot {slot:02x} is not one Custos uses: choose a retired slot, 82 to 95; nothing \
             was done"
        )))
    }
}

/// A PIV PIN has 6 to 8 characters; checked before anything reaches a card, so that a malformed PIN
/// never costs a retry.
pub(crate) fn check_pin_format(pin: &str) -> Result<()> {
    if (6..=8).contains(&pin.len()) {
        Ok(())
    } else {
        Err(Error::Device(
            "a PIV PIN has 6 to 8 characters: nothing was sent to the key".into(),
        ))
    }
}

/// A peer public key (SEC1, compressed or not) checked to be on P-256, as the 65-byte uncompressed
/// point the card expects.
pub(crate) fn peer_point(peer: &[u8]) -> Result<Vec<u8>> {
    let pk = PublicKey::from_sec1_bytes(peer).map_err(|_| {
        Error::Device("the other party's public key is not a P-256 point; nothing was done".into())
    })?;
    Ok(pk.to_sec1_point(false).as_bytes().to_vec())
}

/// Which PIV credentials are still the factory ones.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Defaults {
    pub pin: bool,
    pub puk: bool,
    pub management_key: bool,
}

/// The command that replaces the management key with a random one stored on the YubiKey under the
/// PIN. TDES because the `yubikey` crate 0.8 speaks no AES management key (the default algorithm
/// on firmware 5.7 and later).
pub const CHANGE_MANAGEMENT_KEY: &str =
    "ykman piv access change-management-key --algorithm TDES --generate --protect";

/// The message for [`Error::DefaultCredentials`]: what is still default and, in order, how to
/// change it.
pub(crate) fn default_credentials_message(d: Defaults) -> String {
    let mut what = Vec::new();
    let mut steps = Vec::new();
    if d.pin {
        what.push(format!("PIN {FACTORY_PIN}"));
        steps.push("ykman piv access change-pin   (asks for the current PIN 123456, then a new one of 6-8 characters)".to_owned());
    }
    if d.puk {
        what.push(format!("PUK {FACTORY_PUK}"));
        steps.push(
            "ykman piv access change-puk   (asks for the current PUK 12345678, then a new one)"
                .to_owned(),
        );
    }
    if d.management_key {
        what.push("the default management key".to_owned());
        steps.push(format!(
            "{CHANGE_MANAGEMENT_KEY}   (a random management key kept on the YubiKey, unlocked by the PIN; \
             TDES because Custos's PIV driver does not speak AES management keys yet)"
        ));
    }
    let steps: Vec<String> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("  {}. {s}", i + 1))
        .collect();
    format!(
        "this YubiKey still has its factory PIV credentials ({}): anyone who picks it up could use \
         or re-key it. Nothing was done. Change them with YubiKey Manager, then try again:\n{}",
        what.join(", "),
        steps.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_retired_slots_are_accepted() {
        for s in 0x82..=0x95u8 {
            assert!(check_slot(s).is_ok(), "{s:02x}");
        }
        for s in [0x9a, 0x9c, 0x9d, 0x9e, 0x81, 0x96, 0xf9, 0x00] {
            assert!(matches!(check_slot(s), Err(Error::Device(_))), "{s:02x}");
        }
    }

    #[test]
    fn the_default_message_lists_exactly_what_is_default_in_order() {
        let m = default_credentials_message(Defaults {
            pin: true,
            puk: false,
            management_key: true,
        });
        assert!(m.contains("PIN 123456"));
        assert!(!m.contains("change-puk"));
        assert!(m.contains("1. ykman piv access change-pin"));
        assert!(m.contains(
            "2. ykman piv access change-management-key --algorithm TDES --generate --protect"
        ));
        let all = default_credentials_message(Defaults {
            pin: true,
            puk: true,
            management_key: true,
        });
        assert!(all.contains("2. ykman piv access change-puk"));
        assert!(all.contains("3. ykman piv access change-management-key"));
    }

    #[test]
    fn peer_points_are_checked_and_uncompressed() {
        let secret = p256::SecretKey::from_slice(&[7u8; 32]).expect("scalar");
        let compressed = secret.public_key().to_sec1_point(true);
        let p = peer_point(compressed.as_bytes()).expect("valid");
        assert_eq!(p.len(), 65);
        assert_eq!(p[0], 4);
        let mut bad = p.clone();
        bad[64] ^= 1;
        assert!(peer_point(&bad).is_err(), "off the curve");
        assert!(peer_point(&[]).is_err());
    }
}
