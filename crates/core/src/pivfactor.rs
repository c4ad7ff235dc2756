//! PIV-bound unlock: the root key is wrapped under a key derived from the passphrase **and** an ECDH
//! with the custodian's YubiKey PIV key, so unlocking needs both.
//!
//! Binding: an ephemeral P-256 key `e` is drawn, `Z = ECDH(e, card public key)` is computed here and
//! once more by the card (proving it holds the key), `e` is forgotten and `e·G` stored. At unlock the
//! card recomputes `Z = ECDH(card key, e·G)`. The wrapping key is
//! `HKDF-SHA256(passphrase key ‖ HKDF(Z))`; nothing in the file lets one factor stand in for the other.

use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToSec1Point;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::hardware::{Pin, PivCard};
use crate::secret::SecretKey;

/// What the vault file says about its PIV factor (in the clear: needed before unlocking).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PivFactor {
    pub serial: u32,
    pub slot: u8,
    pub custodian: String,
    /// The card's public key (SEC1, hex).
    pub card_public: String,
    /// e·G (SEC1, hex).
    pub ephemeral_public: String,
}

fn derive(z: &[u8], vault_id: &[u8; 16]) -> Result<SecretKey> {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(Some(vault_id), z)
        .expand(b"custos-piv-factor-v1", &mut out)
        .map_err(|_| Error::Internal("HKDF length".into()))?;
    Ok(SecretKey::from_bytes(out))
}

/// The key that wraps the root: the passphrase key alone, or combined with the PIV factor.
pub(crate) fn wrapping_key(pkey: SecretKey, piv: Option<&SecretKey>) -> Result<SecretKey> {
    let Some(piv) = piv else {
        return Ok(pkey);
    };
    let mut ikm = zeroize::Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(pkey.expose());
    ikm[32..].copy_from_slice(piv.expose());
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(None, ikm.as_slice())
        .expand(b"custos-root-wrap-passphrase+piv-v1", &mut out)
        .map_err(|_| Error::Internal("HKDF length".into()))?;
    Ok(SecretKey::from_bytes(out))
}

fn parse_public(hex_str: &str, what: &str) -> Result<p256::PublicKey> {
    hex::decode(hex_str)
        .ok()
        .and_then(|b| p256::PublicKey::from_sec1_bytes(&b).ok())
        .ok_or_else(|| Error::Tampered(format!("the vault's PIV factor has a malformed {what}")))
}

/// Bind to `card`'s key in `slot` (whose public key the vault recorded at enrolment).
pub(crate) fn bind(
    vault_id: &[u8; 16],
    custodian: &str,
    card: &mut dyn PivCard,
    slot: u8,
    card_public_hex: &str,
    pin: &Pin,
) -> Result<(PivFactor, SecretKey)> {
    let card_public = parse_public(card_public_hex, "card key")?;
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    let ephemeral = loop {
        crate::secret::fill_random(seed.as_mut_slice())?;
        if let Ok(k) = p256::SecretKey::from_slice(seed.as_slice()) {
            break k;
        }
    };
    let ephemeral_public = ephemeral.public_key();
    let z = p256::ecdh::diffie_hellman(ephemeral.to_nonzero_scalar(), card_public.as_affine());
    let eph_sec1 = ephemeral_public.to_sec1_point(false);
    let from_card = card.ecdh(slot, eph_sec1.as_bytes(), pin)?;
    if from_card.expose() != z.raw_secret_bytes().as_slice() {
        return Err(Error::Device(
            "the card's key does not match the one enrolled for this custodian: use the enrolled YubiKey".into(),
        ));
    }
    let key = derive(from_card.expose(), vault_id)?;
    Ok((
        PivFactor {
            serial: card.serial(),
            slot,
            custodian: custodian.into(),
            card_public: card_public_hex.into(),
            ephemeral_public: hex::encode(eph_sec1.as_bytes()),
        },
        key,
    ))
}

/// Recompute the PIV factor key with the card.
pub(crate) fn unlock_key(
    vault_id: &[u8; 16],
    factor: &PivFactor,
    card: &mut dyn PivCard,
    pin: &Pin,
) -> Result<SecretKey> {
    if card.serial() != factor.serial {
        return Err(Error::PivRequired {
            serial: factor.serial,
            slot: factor.slot,
        });
    }
    let e = parse_public(&factor.ephemeral_public, "ephemeral key")?;
    let z = card.ecdh(factor.slot, e.to_sec1_point(false).as_bytes(), pin)?;
    derive(z.expose(), vault_id)
}
