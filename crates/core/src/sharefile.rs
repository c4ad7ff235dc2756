//! A share in a file only its custodian can open: an ASCII-armored age file
//! (age-encryption.org/v1) with one recipient, either
//! - the custodian's YubiKey PIV key, as the `piv-p256` stanza that age-plugin-yubikey writes
//!   (ECDH with an ephemeral P-256 key, HKDF-SHA-256 over both compressed points, ChaCha20-Poly1305),
//!   opened here through [`PivCard::ecdh`] with the PIN and a touch; or
//! - a passphrase the custodian chose (age's scrypt stanza), which the stock `age -d` also opens.
//!
//! Inside is the share as its 34 checksummed words with a plain-text label, so a file opened with
//! standard age tooling reads like a share card. Opening a file checks the words like typed words
//! do: a file that decrypts but holds a damaged share is named as such.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::Write;

use age::armor::{ArmoredWriter, Format};
use age::secrecy::{ExposeSecret, SecretString};
use age_core::format::{FileKey, Stanza, FILE_KEY_BYTES};
use age_core::primitives::{aead_decrypt, aead_encrypt, hkdf};
use base64::prelude::{Engine, BASE64_STANDARD_NO_PAD};
use p256::elliptic_curve::sec1::ToSec1Point;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::hardware::{Pin, PivCard};
use crate::secret::Passphrase;
use crate::sharing::Share;

/// The stanza tag (and HKDF label) of age-plugin-yubikey's P-256 recipients.
const PIV_TAG: &str = "piv-p256";
const TAG_BYTES: usize = 4;
const POINT_BYTES: usize = 33;
/// The retired slots a Custos PIV key may live in.
const RETIRED_SLOTS: std::ops::RangeInclusive<u8> = 0x82..=0x95;
/// The largest scrypt work factor a passphrase share file may ask for (about 2^20 ≈ 1 s here).
const MAX_SCRYPT_LOG_N: u8 = 22;

/// What a share file is locked to.
pub enum ShareLock<'a> {
    /// The custodian's PIV keys (SEC1 public keys, as enrolled): any one of them opens the file, so a
    /// custodian with a backup YubiKey can use either.
    Piv { public_keys: &'a [Vec<u8>] },
    /// A passphrase the custodian chose.
    Passphrase(&'a Passphrase),
}

/// What opens a share file, read from its header without opening it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileLock {
    /// YubiKey PIV keys, each named by a tag: the start of SHA-256 of its compressed public key.
    Piv { tags: Vec<[u8; TAG_BYTES]> },
    /// A passphrase.
    Passphrase,
}

/// The text inside a share file.
fn plaintext(share: &Share, custodian: &str) -> String {
    format!(
        "Custos recovery share\nceremony: {}\ncustodian: {custodian}\nshare: #{} ({} of {} recover the vault)\nfingerprint: {}\nwords: {}\n",
        hex::encode(share.ceremony),
        share.index,
        share.threshold,
        share.total,
        share.fingerprint(),
        share.to_words().join(" ")
    )
}

fn compressed(public_key: &p256::PublicKey) -> Vec<u8> {
    public_key.to_sec1_point(true).as_bytes().to_vec()
}

fn tag_of(compressed_key: &[u8]) -> [u8; TAG_BYTES] {
    let h = Sha256::digest(compressed_key);
    let mut t = [0u8; TAG_BYTES];
    t.copy_from_slice(&h[..TAG_BYTES]);
    t
}

fn parse_point(bytes: &[u8], what: &str) -> Result<p256::PublicKey> {
    p256::PublicKey::from_sec1_bytes(bytes)
        .map_err(|_| Error::BadShare(format!("{what} is not a P-256 public key")))
}

fn age_error(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("age: {e}"))
}

/// The `piv-p256` recipient: wraps the file key to a PIV public key as age-plugin-yubikey does.
struct PivRecipient {
    public_key: p256::PublicKey,
}

impl age::Recipient for PivRecipient {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> std::result::Result<(Vec<Stanza>, HashSet<String>), age::EncryptError> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        let ephemeral = loop {
            crate::secret::fill_random(seed.as_mut_slice())
                .map_err(|e| age::EncryptError::Io(std::io::Error::other(e.to_string())))?;
            if let Ok(k) = p256::SecretKey::from_slice(seed.as_slice()) {
                break k;
            }
        };
        let epk = compressed(&ephemeral.public_key());
        let pk = compressed(&self.public_key);
        let shared =
            p256::ecdh::diffie_hellman(ephemeral.to_nonzero_scalar(), self.public_key.as_affine());
        let mut salt = epk.clone();
        salt.extend_from_slice(&pk);
        let key = zeroize::Zeroizing::new(hkdf(
            &salt,
            PIV_TAG.as_bytes(),
            shared.raw_secret_bytes().as_slice(),
        ));
        let body = aead_encrypt(&key, file_key.expose_secret());
        Ok((
            vec![Stanza {
                tag: PIV_TAG.into(),
                args: vec![
                    BASE64_STANDARD_NO_PAD.encode(tag_of(&pk)),
                    BASE64_STANDARD_NO_PAD.encode(&epk),
                ],
                body,
            }],
            HashSet::new(),
        ))
    }
}

/// Seal `share` (held by `custodian`) into an armored age file locked to `lock`.
pub fn seal(share: &Share, custodian: &str, lock: ShareLock<'_>) -> Result<Vec<u8>> {
    let text = zeroize::Zeroizing::new(plaintext(share, custodian));
    let encryptor = match lock {
        ShareLock::Piv { public_keys } => {
            if public_keys.is_empty() {
                return Err(Error::BadShare(format!(
                    "{custodian} has no YubiKey PIV key enrolled: a share file is encrypted to it"
                )));
            }
            let recipients = public_keys
                .iter()
                .map(|k| {
                    Ok(PivRecipient {
                        public_key: parse_point(k, "the custodian's enrolled PIV key")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .map_err(age_error)?
        }
        ShareLock::Passphrase(pass) => {
            if pass.is_empty() {
                return Err(Error::EmptyPassphrase);
            }
            age::Encryptor::with_user_passphrase(SecretString::from(pass.expose_str().to_owned()))
        }
    };
    let mut out = Vec::new();
    let armor = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).map_err(age_error)?;
    let mut writer = encryptor.wrap_output(armor).map_err(age_error)?;
    writer.write_all(text.as_bytes()).map_err(age_error)?;
    writer
        .finish()
        .and_then(|armor| armor.finish())
        .map_err(age_error)?;
    Ok(out)
}

/// An identity that opens nothing and remembers the stanzas it was shown (to read the lock).
#[derive(Default)]
struct Probe(RefCell<Vec<(String, Vec<String>)>>);

impl age::Identity for Probe {
    fn unwrap_stanza(
        &self,
        stanza: &Stanza,
    ) -> Option<std::result::Result<FileKey, age::DecryptError>> {
        self.0
            .borrow_mut()
            .push((stanza.tag.clone(), stanza.args.clone()));
        None
    }
}

fn not_a_share_file() -> Error {
    Error::BadShare(
        "this is not a Custos share file (an age file locked to a YubiKey PIV key or a passphrase), or it is damaged".into(),
    )
}

/// Which lock a share file has. A file that is not an age file, or has another kind of recipient,
/// is refused.
pub fn lock_of(file: &[u8]) -> Result<FileLock> {
    let probe = Probe::default();
    match age::decrypt(&probe, file) {
        Err(age::DecryptError::NoMatchingKeys) => {}
        _ => return Err(not_a_share_file()),
    }
    // Other stanzas (age adds a random "grease" one) are not ours to read.
    let seen: Vec<(String, Vec<String>)> = probe
        .0
        .into_inner()
        .into_iter()
        .filter(|(tag, _)| tag == "scrypt" || tag == PIV_TAG)
        .collect();
    match seen.as_slice() {
        [(tag, _)] if tag == "scrypt" => Ok(FileLock::Passphrase),
        [] => Err(not_a_share_file()),
        piv => {
            let tags = piv
                .iter()
                .map(|(tag, args)| {
                    (tag == PIV_TAG)
                        .then(|| args.first())
                        .flatten()
                        .and_then(|a| BASE64_STANDARD_NO_PAD.decode(a).ok())
                        .and_then(|b| <[u8; TAG_BYTES]>::try_from(b.as_slice()).ok())
                        .ok_or_else(not_a_share_file)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(FileLock::Piv { tags })
        }
    }
}

/// The PIV key in one slot of a card, as an age identity for its `piv-p256` stanzas.
struct PivIdentity<'a> {
    card: RefCell<&'a mut dyn PivCard>,
    slot: u8,
    compressed: Vec<u8>,
    pin: &'a Pin,
    /// The card's own error, kept so that the custodian sees "wrong PIN", not "decryption failed".
    failure: RefCell<Option<Error>>,
}

impl age::Identity for PivIdentity<'_> {
    fn unwrap_stanza(
        &self,
        stanza: &Stanza,
    ) -> Option<std::result::Result<FileKey, age::DecryptError>> {
        if stanza.tag != PIV_TAG {
            return None;
        }
        let [tag, epk] = stanza.args.as_slice() else {
            return Some(Err(age::DecryptError::InvalidHeader));
        };
        if BASE64_STANDARD_NO_PAD.decode(tag).ok().as_deref() != Some(&tag_of(&self.compressed)[..])
        {
            return None;
        }
        let epk = match BASE64_STANDARD_NO_PAD.decode(epk) {
            Ok(b) if b.len() == POINT_BYTES => b,
            _ => return Some(Err(age::DecryptError::InvalidHeader)),
        };
        let Ok(point) = p256::PublicKey::from_sec1_bytes(&epk) else {
            return Some(Err(age::DecryptError::InvalidHeader));
        };
        // A YubiKey takes the peer point uncompressed.
        let peer = point.to_sec1_point(false);
        let shared = match self
            .card
            .borrow_mut()
            .ecdh(self.slot, peer.as_bytes(), self.pin)
        {
            Ok(s) => s,
            Err(e) => {
                *self.failure.borrow_mut() = Some(e);
                return Some(Err(age::DecryptError::KeyDecryptionFailed));
            }
        };
        let mut salt = epk.clone();
        salt.extend_from_slice(&self.compressed);
        let key = zeroize::Zeroizing::new(hkdf(&salt, PIV_TAG.as_bytes(), shared.expose()));
        Some(
            aead_decrypt(&key, FILE_KEY_BYTES, &stanza.body)
                .map_err(|_| age::DecryptError::KeyDecryptionFailed)
                .and_then(|bytes| {
                    let mut k = [0u8; FILE_KEY_BYTES];
                    if bytes.len() != FILE_KEY_BYTES {
                        return Err(age::DecryptError::KeyDecryptionFailed);
                    }
                    k.copy_from_slice(&bytes);
                    let fk = FileKey::new(Box::new(k));
                    zeroize::Zeroize::zeroize(&mut k);
                    Ok(fk)
                }),
        )
    }
}

/// The share inside a decrypted share file.
fn share_in(text: &[u8]) -> Result<Share> {
    let text = std::str::from_utf8(text).map_err(|_| not_a_share_file())?;
    let words = text
        .lines()
        .find_map(|l| l.strip_prefix("words:"))
        .ok_or_else(not_a_share_file)?;
    Share::from_words(words).map_err(|e| match e {
        Error::BadShare(m) => Error::BadShare(format!(
            "the file opened, but the share inside is damaged: {m}"
        )),
        other => other,
    })
}

/// The retired slot of `card` that holds a key a `piv-p256` file is locked to (one of `tags`).
pub fn piv_slot_for(card: &mut dyn PivCard, tags: &[[u8; TAG_BYTES]]) -> Result<(u8, Vec<u8>)> {
    for slot in RETIRED_SLOTS {
        let Ok(public) = card.public_key(slot) else {
            continue;
        };
        let Ok(point) = p256::PublicKey::from_sec1_bytes(&public) else {
            continue;
        };
        let c = compressed(&point);
        if tags.contains(&tag_of(&c)) {
            return Ok((slot, c));
        }
    }
    Err(Error::Device(format!(
        "this share file is locked to a PIV key that is not on the YubiKey with serial {}: plug in the custodian's own YubiKey",
        card.serial()
    )))
}

/// Open a share file locked to a PIV key with `card` (PIN, and a touch on a YubiKey).
pub fn open_with_piv(file: &[u8], card: &mut dyn PivCard, pin: &Pin) -> Result<Share> {
    let FileLock::Piv { tags } = lock_of(file)? else {
        return Err(Error::BadShare(
            "this share file is locked to a passphrase, not to a YubiKey".into(),
        ));
    };
    let (slot, compressed) = piv_slot_for(card, &tags)?;
    let identity = PivIdentity {
        card: RefCell::new(card),
        slot,
        compressed,
        pin,
        failure: RefCell::new(None),
    };
    let result = age::decrypt(&identity, file);
    if let Some(e) = identity.failure.into_inner() {
        return Err(e);
    }
    let text = zeroize::Zeroizing::new(result.map_err(|_| {
        Error::BadShare(
            "the share file does not open with this YubiKey's key: it is damaged".into(),
        )
    })?);
    share_in(&text)
}

/// Open a share file locked to a passphrase.
pub fn open_with_passphrase(file: &[u8], pass: &Passphrase) -> Result<Share> {
    if lock_of(file)? != FileLock::Passphrase {
        return Err(Error::BadShare(
            "this share file is locked to a YubiKey, not to a passphrase".into(),
        ));
    }
    let mut identity = age::scrypt::Identity::new(SecretString::from(pass.expose_str().to_owned()));
    identity.set_max_work_factor(MAX_SCRYPT_LOG_N);
    let text = zeroize::Zeroizing::new(age::decrypt(&identity, file).map_err(|e| match e {
        age::DecryptError::ExcessiveWork { required, .. } => Error::BadShare(format!(
            "this share file asks for an scrypt work factor of 2^{required}, more than Custos accepts: it was not made by Custos"
        )),
        _ => Error::BadShare(
            "wrong passphrase for this share file (or the file is damaged)".into(),
        ),
    })?);
    share_in(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::DeviceIdentity;
    use crate::secret::{SecretBytes, SecretKey};
    use crate::sharing;

    /// A card with P-256 keys in some retired slots, ECDH in software; counts ECDH calls.
    struct SoftCard {
        keys: Vec<(u8, p256::SecretKey)>,
        ecdh_calls: u32,
        pin: &'static str,
    }

    impl SoftCard {
        fn new(slots: &[u8]) -> SoftCard {
            let keys = slots
                .iter()
                .map(|s| {
                    let mut seed = [0u8; 32];
                    loop {
                        crate::secret::fill_random(&mut seed).expect("random");
                        if let Ok(k) = p256::SecretKey::from_slice(&seed) {
                            break (*s, k);
                        }
                    }
                })
                .collect();
            SoftCard {
                keys,
                ecdh_calls: 0,
                pin: "123456789",
            }
        }
        fn public(&self, slot: u8) -> Vec<u8> {
            let (_, k) = self.keys.iter().find(|(s, _)| *s == slot).expect("slot");
            k.public_key().to_sec1_point(false).as_bytes().to_vec()
        }
    }

    impl PivCard for SoftCard {
        fn identity(&self) -> DeviceIdentity {
            DeviceIdentity {
                kind: "piv".into(),
                description: "test card".into(),
                serial: Some(7),
                demo: true,
            }
        }
        fn serial(&self) -> u32 {
            7
        }
        fn check_not_default(&mut self) -> Result<()> {
            Ok(())
        }
        fn generate_p256(&mut self, _slot: u8, _pin: &Pin) -> Result<Vec<u8>> {
            Err(Error::Internal("not in this test".into()))
        }
        fn public_key(&mut self, slot: u8) -> Result<Vec<u8>> {
            if self.keys.iter().any(|(s, _)| *s == slot) {
                Ok(self.public(slot))
            } else {
                Err(Error::Device(format!("PIV slot {slot:02x} holds no key")))
            }
        }
        fn ecdh(&mut self, slot: u8, peer: &[u8], pin: &Pin) -> Result<SecretBytes> {
            self.ecdh_calls += 1;
            if pin.expose() != self.pin {
                return Err(Error::WrongPin { retries: Some(2) });
            }
            let (_, k) = self.keys.iter().find(|(s, _)| *s == slot).expect("slot");
            let peer = p256::PublicKey::from_sec1_bytes(peer).expect("peer point");
            let z = p256::ecdh::diffie_hellman(k.to_nonzero_scalar(), peer.as_affine());
            Ok(SecretBytes::new(z.raw_secret_bytes().to_vec()))
        }
    }

    fn a_share() -> Share {
        let secret = SecretKey::generate().expect("key");
        let (_, shares) = sharing::split(&secret, 2, 3, [9; 8]).expect("split");
        shares.into_iter().nth(1).expect("share #2")
    }

    fn pin(s: &str) -> Pin {
        Pin::new(s.into())
    }

    #[test]
    fn a_piv_share_file_opens_with_the_card_only_and_names_its_lock() {
        let share = a_share();
        let mut card = SoftCard::new(&[0x82, 0x85]);
        let keys = vec![card.public(0x85)];
        let file = seal(&share, "bob", ShareLock::Piv { public_keys: &keys }).expect("seal");
        let text = String::from_utf8(file.clone()).expect("armored");
        assert!(
            text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
            "{text}"
        );
        // Nothing of the plaintext shows (a three-letter name could appear in base64 by chance).
        assert!(!text.contains("custodian:"), "nothing readable outside");
        assert!(
            !text.contains(&share.to_words()[..3].join(" ")),
            "no words outside"
        );
        let compressed = p256::PublicKey::from_sec1_bytes(&keys[0])
            .expect("pk")
            .to_sec1_point(true)
            .as_bytes()
            .to_vec();
        assert_eq!(
            lock_of(&file).expect("lock"),
            FileLock::Piv {
                tags: vec![tag_of(&compressed)]
            }
        );

        let opened = open_with_piv(&file, &mut card, &pin("123456789")).expect("open");
        assert_eq!(opened, share);
        assert_eq!(
            card.ecdh_calls, 1,
            "one ECDH (one touch) on the slot that matches"
        );

        // A wrong PIN is the card's own error, not "decryption failed".
        match open_with_piv(&file, &mut card, &pin("000000")) {
            Err(Error::WrongPin { retries: Some(2) }) => {}
            other => panic!("{other:?}"),
        }
        // Another card: named as such, without an ECDH.
        let mut other = SoftCard::new(&[0x82, 0x83]);
        match open_with_piv(&file, &mut other, &pin("123456789")) {
            Err(Error::Device(m)) => assert!(m.contains("not on the YubiKey"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(other.ecdh_calls, 0);
        // Not a passphrase file.
        match open_with_passphrase(&file, &Passphrase::new("x".into())) {
            Err(Error::BadShare(m)) => assert!(m.contains("locked to a YubiKey"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_file_for_two_piv_keys_opens_with_either() {
        let share = a_share();
        let mut main = SoftCard::new(&[0x82]);
        let mut backup = SoftCard::new(&[0x90]);
        let keys = vec![main.public(0x82), backup.public(0x90)];
        let file = seal(&share, "bob", ShareLock::Piv { public_keys: &keys }).expect("seal");
        for card in [&mut main, &mut backup] {
            let FileLock::Piv { tags } = lock_of(&file).expect("lock") else {
                panic!("a PIV file");
            };
            assert_eq!(tags.len(), 2, "one stanza per key");
            assert_eq!(
                open_with_piv(&file, card, &pin("123456789")).expect("open"),
                share
            );
        }
        assert!(seal(&share, "bob", ShareLock::Piv { public_keys: &[] }).is_err());
    }

    #[test]
    fn a_passphrase_share_file_opens_with_its_passphrase_only() {
        let share = a_share();
        let pass = Passphrase::new("quarry lantern ninety".into());
        let file = seal(&share, "carol", ShareLock::Passphrase(&pass)).expect("seal");
        assert_eq!(lock_of(&file).expect("lock"), FileLock::Passphrase);
        assert_eq!(open_with_passphrase(&file, &pass).expect("open"), share);
        match open_with_passphrase(&file, &Passphrase::new("quarry lantern ninety!".into())) {
            Err(Error::BadShare(m)) => assert!(m.contains("wrong passphrase"), "{m}"),
            other => panic!("{other:?}"),
        }
        let mut card = SoftCard::new(&[0x82]);
        match open_with_piv(&file, &mut card, &pin("123456789")) {
            Err(Error::BadShare(m)) => assert!(m.contains("locked to a passphrase"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            seal(
                &share,
                "carol",
                ShareLock::Passphrase(&Passphrase::new(String::new()))
            ),
            Err(Error::EmptyPassphrase)
        ));
    }

    #[test]
    fn a_damaged_file_or_a_damaged_share_inside_is_refused() {
        let share = a_share();
        let mut card = SoftCard::new(&[0x82]);
        let keys = vec![card.public(0x82)];
        let file = seal(&share, "bob", ShareLock::Piv { public_keys: &keys }).expect("seal");
        // One character of the armored body changed.
        let mut bad = file.clone();
        let at = bad.len() / 2;
        bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
        assert!(open_with_piv(&bad, &mut card, &pin("123456789")).is_err());
        assert!(lock_of(b"not an age file").is_err());

        // A valid age file whose share has one wrong word: named by its position.
        let mut words = share.to_words();
        words[4] = if words[4] == "abandon" {
            "ability"
        } else {
            "abandon"
        };
        let text = plaintext(&share, "bob").replace(&share.to_words().join(" "), &words.join(" "));
        let recipient = PivRecipient {
            public_key: p256::PublicKey::from_sec1_bytes(&keys[0]).expect("pk"),
        };
        let damaged = age::encrypt_and_armor(&recipient, text.as_bytes()).expect("age");
        match open_with_piv(damaged.as_bytes(), &mut card, &pin("123456789")) {
            Err(Error::BadShare(m)) => {
                assert!(
                    m.contains("share inside is damaged") && m.contains("word 5"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_file_holds_the_share_as_a_labelled_card() {
        let share = a_share();
        let text = plaintext(&share, "bob");
        assert!(text.contains("custodian: bob"));
        assert!(text.contains("share: #2 (2 of 3 recover the vault)"));
        assert_eq!(share_in(text.as_bytes()).expect("share"), share);
    }
}
