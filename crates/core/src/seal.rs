//! Authenticated encryption: the only module that touches nonces.
//!
//! Every sealed value is XChaCha20-Poly1305 under a 256-bit key with a fresh random 192-bit nonce, and
//! associated data ([`Binding`]) that names the vault, the purpose, the key id and the version the value
//! belongs to. A sealed blob copied to another row, key, version or vault therefore fails to open.
//!
//! Sealed value layout: `0x01 ‖ nonce (24) ‖ ciphertext ‖ tag (16)`.
//!
//! Files are encrypted with the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015) over
//! XChaCha20-Poly1305: nonce = `prefix (19) ‖ counter (u32 BE) ‖ last-chunk flag (1)`, so chunks cannot be
//! reordered, dropped or truncated without detection.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{AeadInOut, Key, XChaCha20Poly1305, XNonce};

use crate::error::{Error, Result};
use crate::secret::{random_bytes, SecretBytes, SecretKey};

const SEAL_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
pub(crate) const TAG_LEN: usize = 16;
/// Bytes a sealed value adds to its plaintext.
pub(crate) const SEAL_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// What a sealed value is for. Part of the associated data, so a value sealed for one purpose never
/// opens as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Purpose {
    /// The vault root key, wrapped by the passphrase-derived key.
    RootKey = 1,
    /// A key's key-encryption key, wrapped by the root key.
    Kek = 2,
    /// A key version's secret material, wrapped by the key's KEK.
    KeyMaterial = 3,
    /// A key's metadata (name, type, policy), sealed by the root key.
    KeyRecord = 4,
    /// A key version's metadata (state, dates, public key), sealed by the root key.
    VersionRecord = 5,
    /// The vault audit signing key, sealed by the root key.
    AuditKey = 6,
    /// The per-file key of an encrypted file, wrapped by a key version's material.
    FileKey = 7,
    /// The vault's state seal: the audit head and a digest of every key row, sealed by the root key.
    StateSeal = 8,
    /// A custodian's record (name, roles, authenticators), sealed by the root key.
    Custodian = 9,
    /// A pending or closed approval request, sealed by the root key.
    Request = 10,
    /// The approval rules, sealed by the root key.
    Rules = 11,
    /// The root key wrapped by the escrowed recovery key (whose shares the custodians hold).
    RecoveryWrap = 12,
}

/// The associated data of a sealed value: where it belongs.
pub(crate) struct Binding<'a> {
    pub vault_id: &'a [u8; 16],
    pub purpose: Purpose,
    pub key_id: Option<&'a [u8; 16]>,
    pub version: u32,
    /// Further context (for file keys: the file header).
    pub extra: &'a [u8],
}

impl Binding<'_> {
    fn encode(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(64 + self.extra.len());
        aad.extend_from_slice(b"custos/seal/v1\0");
        aad.extend_from_slice(self.vault_id);
        aad.push(self.purpose as u8);
        aad.extend_from_slice(self.key_id.unwrap_or(&[0u8; 16]));
        aad.extend_from_slice(&self.version.to_be_bytes());
        aad.extend_from_slice(&(self.extra.len() as u64).to_be_bytes());
        aad.extend_from_slice(self.extra);
        aad
    }
}

/// The sealed value did not open: wrong key, wrong binding, or altered bytes. Callers decide what that means
/// (wrong passphrase, tampering, ...).
#[derive(Debug)]
pub(crate) struct OpenFailed;

fn cipher(key: &SecretKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&Key::from(*key.expose()))
}

/// Seal `plaintext` under `key`, bound to `binding`.
pub(crate) fn seal(key: &SecretKey, binding: &Binding<'_>, plaintext: &[u8]) -> Result<Vec<u8>> {
    let nonce_bytes: [u8; NONCE_LEN] = random_bytes()?;
    let nonce = XNonce::from(nonce_bytes);
    let aad = binding.encode();
    let ct = cipher(key)
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| Error::Internal("encryption failed".into()))?;
    let mut out = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
    out.push(SEAL_VERSION);
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Open a value sealed by [`seal`] with the same key and binding.
pub(crate) fn open(
    key: &SecretKey,
    binding: &Binding<'_>,
    sealed: &[u8],
) -> std::result::Result<SecretBytes, OpenFailed> {
    if sealed.len() < SEAL_OVERHEAD || sealed[0] != SEAL_VERSION {
        return Err(OpenFailed);
    }
    let nonce_bytes: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN]
        .try_into()
        .map_err(|_| OpenFailed)?;
    let aad = binding.encode();
    cipher(key)
        .decrypt(
            &XNonce::from(nonce_bytes),
            Payload {
                msg: &sealed[1 + NONCE_LEN..],
                aad: &aad,
            },
        )
        .map(SecretBytes::new)
        .map_err(|_| OpenFailed)
}

/// Length of the random nonce prefix of a STREAM.
pub(crate) const STREAM_PREFIX_LEN: usize = 19;

/// One direction of a STREAM (encrypting or decrypting chunks in order).
pub(crate) struct Stream {
    cipher: XChaCha20Poly1305,
    prefix: [u8; STREAM_PREFIX_LEN],
    counter: u32,
    finished: bool,
}

impl Stream {
    /// A new encrypting stream with a fresh random prefix (returned for the file header).
    pub(crate) fn new_encryptor(file_key: &SecretKey) -> Result<(Self, [u8; STREAM_PREFIX_LEN])> {
        let prefix: [u8; STREAM_PREFIX_LEN] = random_bytes()?;
        Ok((Self::with_prefix(file_key, prefix), prefix))
    }

    /// A decrypting stream for the prefix read from a file header.
    pub(crate) fn new_decryptor(file_key: &SecretKey, prefix: [u8; STREAM_PREFIX_LEN]) -> Self {
        Self::with_prefix(file_key, prefix)
    }

    fn with_prefix(file_key: &SecretKey, prefix: [u8; STREAM_PREFIX_LEN]) -> Self {
        Stream {
            cipher: cipher(file_key),
            prefix,
            counter: 0,
            finished: false,
        }
    }

    fn next_nonce(&mut self, last: bool) -> Result<XNonce> {
        if self.finished {
            return Err(Error::Internal("stream used after its last chunk".into()));
        }
        let mut n = [0u8; NONCE_LEN];
        n[..STREAM_PREFIX_LEN].copy_from_slice(&self.prefix);
        n[STREAM_PREFIX_LEN..STREAM_PREFIX_LEN + 4].copy_from_slice(&self.counter.to_be_bytes());
        n[NONCE_LEN - 1] = u8::from(last);
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| Error::Internal("file too large for one stream".into()))?;
        self.finished = last;
        Ok(XNonce::from(n))
    }

    /// Encrypt one chunk in place (appends the tag).
    pub(crate) fn seal_chunk(&mut self, buf: &mut Vec<u8>, last: bool) -> Result<()> {
        let nonce = self.next_nonce(last)?;
        self.cipher
            .encrypt_in_place(&nonce, b"", buf)
            .map_err(|_| Error::Internal("encryption failed".into()))
    }

    /// Decrypt one chunk in place (removes the tag). Any failure means the file was altered.
    pub(crate) fn open_chunk(&mut self, buf: &mut Vec<u8>, last: bool) -> Result<()> {
        let nonce = self.next_nonce(last)?;
        self.cipher
            .decrypt_in_place(&nonce, b"", buf)
            .map_err(|_| Error::DecryptionFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding<'a>(vault: &'a [u8; 16], key: &'a [u8; 16], version: u32) -> Binding<'a> {
        Binding {
            vault_id: vault,
            purpose: Purpose::KeyMaterial,
            key_id: Some(key),
            version,
            extra: b"",
        }
    }

    #[test]
    fn seal_open_round_trip_and_fresh_nonces() {
        let k = SecretKey::generate().unwrap();
        let (v, id) = ([1u8; 16], [2u8; 16]);
        let a = seal(&k, &binding(&v, &id, 1), b"secret").unwrap();
        let b = seal(&k, &binding(&v, &id, 1), b"secret").unwrap();
        assert_ne!(
            a, b,
            "two seals of the same value must differ (random nonce)"
        );
        assert_eq!(
            open(&k, &binding(&v, &id, 1), &a).unwrap().expose(),
            b"secret"
        );
    }

    #[test]
    fn moved_blob_does_not_open() {
        let k = SecretKey::generate().unwrap();
        let (v, id) = ([1u8; 16], [2u8; 16]);
        let sealed = seal(&k, &binding(&v, &id, 1), b"secret").unwrap();
        assert!(
            open(&k, &binding(&v, &id, 2), &sealed).is_err(),
            "other version"
        );
        assert!(
            open(&k, &binding(&v, &[3u8; 16], 1), &sealed).is_err(),
            "other key"
        );
        assert!(
            open(&k, &binding(&[9u8; 16], &id, 1), &sealed).is_err(),
            "other vault"
        );
        let other_purpose = Binding {
            purpose: Purpose::KeyRecord,
            ..binding(&v, &id, 1)
        };
        assert!(open(&k, &other_purpose, &sealed).is_err(), "other purpose");
        let other_key = SecretKey::generate().unwrap();
        assert!(open(&other_key, &binding(&v, &id, 1), &sealed).is_err());
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let k = SecretKey::generate().unwrap();
        let (v, id) = ([1u8; 16], [2u8; 16]);
        let sealed = seal(&k, &binding(&v, &id, 1), b"sixteen byte msg").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(open(&k, &binding(&v, &id, 1), &bad).is_err(), "byte {i}");
        }
    }

    #[test]
    fn stream_detects_reorder_and_truncation() {
        let k = SecretKey::generate().unwrap();
        let (mut enc, prefix) = Stream::new_encryptor(&k).unwrap();
        let mut c1 = b"chunk one".to_vec();
        let mut c2 = b"chunk two".to_vec();
        enc.seal_chunk(&mut c1, false).unwrap();
        enc.seal_chunk(&mut c2, true).unwrap();

        let mut dec = Stream::new_decryptor(&k, prefix);
        let (mut a, mut b) = (c1.clone(), c2.clone());
        dec.open_chunk(&mut a, false).unwrap();
        dec.open_chunk(&mut b, true).unwrap();
        assert_eq!(
            (a.as_slice(), b.as_slice()),
            (&b"chunk one"[..], &b"chunk two"[..])
        );

        // Swapped order.
        let mut dec = Stream::new_decryptor(&k, prefix);
        assert!(dec.open_chunk(&mut c2.clone(), false).is_err());
        // Truncated after the first chunk: the first chunk presented as last fails.
        let mut dec = Stream::new_decryptor(&k, prefix);
        assert!(dec.open_chunk(&mut c1.clone(), true).is_err());
    }
}
