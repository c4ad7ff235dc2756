//! Secret-holding types: zeroized on drop, never printed.

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, Result};

/// A passphrase typed by a person. Zeroized on drop; `Debug` never shows it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Passphrase(String);

impl Passphrase {
    pub fn new(s: String) -> Self {
        Passphrase(s)
    }
    pub(crate) fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
    pub(crate) fn expose_str(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Whether two typed passphrases are the same (for "type it again" prompts), in constant time
    /// for equal lengths.
    pub fn same_as(&self, other: &Passphrase) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// A 256-bit secret key (root key, KEK, key material, file key). Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self> {
        let mut k = [0u8; 32];
        fill_random(&mut k)?;
        Ok(SecretKey(k))
    }
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(bytes)
    }
    /// From a slice that must be exactly 32 bytes (e.g. a just-opened sealed value).
    pub(crate) fn from_slice(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::Tampered("a sealed key has the wrong length".into()))?;
        Ok(SecretKey(arr))
    }
    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Variable-length secret bytes (an opened sealed record). Zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(v: Vec<u8>) -> Self {
        SecretBytes(v)
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

/// Fill `buf` from the operating system's CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::Random(e.to_string()))
}

/// `n` random bytes (not secret: ids, salts, nonces).
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    fill_random(&mut b)?;
    Ok(b)
}

/// Decode lower-case hex only: every encoded value has exactly one accepted spelling, so an altered
/// file never verifies as "the same" by a change of letter case.
pub(crate) fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        hex::decode(s).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secret_bytes() {
        let p = Passphrase::new("correct horse battery staple".into());
        assert!(!format!("{p:?}").contains("horse"));
        let k = SecretKey::from_bytes([0x41; 32]);
        let dbg = format!("{k:?}");
        assert!(!dbg.contains("41") && !dbg.contains("65"), "{dbg}");
    }

    #[test]
    fn generated_keys_differ() {
        let a = SecretKey::generate().unwrap();
        let b = SecretKey::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
    }
}
