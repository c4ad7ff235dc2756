//! File formats for using keys offline: encrypted files (streaming) and detached signatures.
//!
//! Encrypted file: `"custos-enc-v1\n" ‖ vault id (16) ‖ key id (16) ‖ key version (u32 BE) ‖ chunk size
//! (u32 BE) ‖ STREAM nonce prefix (19) ‖ wrapped-file-key length (u16 BE) ‖ wrapped file key ‖ chunks`.
//! A fresh random file key encrypts the chunks (see `seal::Stream`); it is sealed under the key version's
//! material with the header as associated data, so any change to the header is detected.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

use crate::error::{Error, Result};
use crate::seal::{open, seal, Binding, Purpose, Stream, STREAM_PREFIX_LEN, TAG_LEN};
use crate::secret::SecretKey;

const MAGIC: &[u8; 14] = b"custos-enc-v1\n";
const CHUNK: usize = 64 * 1024;
const MAX_WRAPPED: usize = 256;
const SIGN_DOMAIN: &[u8] = b"custos-signature-v1\0";
const SIGNATURE_FORMAT: &str = "custos-signature";

/// The parsed header of an encrypted file.
pub(crate) struct Header {
    pub vault_id: [u8; 16],
    pub key_id: [u8; 16],
    pub version: u32,
    chunk_size: u32,
    prefix: [u8; STREAM_PREFIX_LEN],
    wrapped_file_key: Vec<u8>,
}

impl Header {
    /// The header bytes the wrapped file key is bound to (everything before its length).
    fn bound_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(MAGIC.len() + 16 + 16 + 4 + 4 + STREAM_PREFIX_LEN);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.vault_id);
        b.extend_from_slice(&self.key_id);
        b.extend_from_slice(&self.version.to_be_bytes());
        b.extend_from_slice(&self.chunk_size.to_be_bytes());
        b.extend_from_slice(&self.prefix);
        b
    }

    fn file_key_binding<'a>(&'a self, bound: &'a [u8]) -> Binding<'a> {
        Binding {
            vault_id: &self.vault_id,
            purpose: Purpose::FileKey,
            key_id: Some(&self.key_id),
            version: self.version,
            extra: bound,
        }
    }
}

/// An output file written under `<out>.custos-partial` and published under its real name only when
/// complete and after its audit entry is committed ([`PendingOutput::publish`]). Until then — on any
/// error, panic or early return — dropping it removes the partial file, so a failed run never leaves
/// plaintext or half a file behind.
pub(crate) struct PendingOutput {
    partial: PathBuf,
    target: PathBuf,
    writer: Option<BufWriter<File>>,
    published: bool,
}

fn exists_error(target: &Path) -> Error {
    Error::io(
        target.display(),
        std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "output exists: refusing to overwrite it",
        ),
    )
}

impl PendingOutput {
    pub(crate) fn create(target: &Path) -> Result<Self> {
        if target.exists() {
            return Err(exists_error(target));
        }
        let mut name = target.as_os_str().to_owned();
        name.push(".custos-partial");
        let partial = PathBuf::from(name);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let file = opts
            .open(&partial)
            .map_err(|e| Error::io(partial.display(), e))?;
        Ok(PendingOutput {
            partial,
            target: target.to_path_buf(),
            writer: Some(BufWriter::with_capacity(CHUNK * 2, file)),
            published: false,
        })
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let w = self
            .writer
            .as_mut()
            .ok_or_else(|| Error::Internal("output already complete".into()))?;
        w.write_all(bytes)
            .map_err(|e| Error::io(self.partial.display(), e))
    }

    /// Flush and fsync: the content is complete and durable, still under the partial name.
    pub(crate) fn complete(&mut self) -> Result<()> {
        let w = self
            .writer
            .take()
            .ok_or_else(|| Error::Internal("output already complete".into()))?;
        let file = w
            .into_inner()
            .map_err(|e| Error::io(self.partial.display(), e.into_error()))?;
        file.sync_all()
            .map_err(|e| Error::io(self.partial.display(), e))
    }

    /// Give the complete file its real name, never replacing a file that appeared meanwhile.
    pub(crate) fn publish(mut self) -> Result<()> {
        if self.writer.is_some() {
            return Err(Error::Internal(
                "output published before it was complete".into(),
            ));
        }
        match std::fs::hard_link(&self.partial, &self.target) {
            Ok(()) => {
                let _ = std::fs::remove_file(&self.partial);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(exists_error(&self.target))
            }
            // File systems without hard links (FAT on removable media): check, then rename.
            Err(_) => {
                if self.target.exists() {
                    return Err(exists_error(&self.target));
                }
                std::fs::rename(&self.partial, &self.target)
                    .map_err(|e| Error::io(self.target.display(), e))?;
            }
        }
        self.published = true;
        Ok(())
    }
}

impl Drop for PendingOutput {
    fn drop(&mut self) {
        if !self.published {
            drop(self.writer.take());
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// Read until `buf` is full or the input ends; returns how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8], path: &Path) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path.display(), e)),
        }
    }
    Ok(n)
}

fn at_eof(r: &mut BufReader<File>, path: &Path) -> Result<bool> {
    Ok(r.fill_buf()
        .map_err(|e| Error::io(path.display(), e))?
        .is_empty())
}

pub(crate) fn encrypt_path(
    vault_id: &[u8; 16],
    key_id: &[u8; 16],
    version: u32,
    material: &SecretKey,
    input: &Path,
    output: &Path,
) -> Result<(u64, PendingOutput)> {
    let mut reader = BufReader::with_capacity(
        CHUNK * 2,
        File::open(input).map_err(|e| Error::io(input.display(), e))?,
    );
    let file_key = SecretKey::generate()?;
    let (mut stream, prefix) = Stream::new_encryptor(&file_key)?;
    let mut header = Header {
        vault_id: *vault_id,
        key_id: *key_id,
        version,
        chunk_size: CHUNK as u32,
        prefix,
        wrapped_file_key: Vec::new(),
    };
    let bound = header.bound_bytes();
    header.wrapped_file_key = seal(
        material,
        &header.file_key_binding(&bound),
        file_key.expose(),
    )?;

    let mut out = PendingOutput::create(output)?;
    out.write(&bound)?;
    out.write(&(header.wrapped_file_key.len() as u16).to_be_bytes())?;
    out.write(&header.wrapped_file_key)?;

    let mut total = 0u64;
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(CHUNK + TAG_LEN));
    loop {
        buf.resize(CHUNK, 0);
        let n = read_full(&mut reader, &mut buf, input)?;
        buf.truncate(n);
        total += n as u64;
        let last = n < CHUNK || at_eof(&mut reader, input)?;
        stream.seal_chunk(&mut buf, last)?;
        out.write(&buf)?;
        if last {
            break;
        }
    }
    out.complete()?;
    Ok((total, out))
}

/// Parse the header of an encrypted file; the reader is left at the first chunk.
pub(crate) fn open_header(input: &Path) -> Result<(Header, BufReader<File>)> {
    let mut r = BufReader::with_capacity(
        CHUNK * 2,
        File::open(input).map_err(|e| Error::io(input.display(), e))?,
    );
    let not_ours = || Error::NotEncryptedFile(input.display().to_string());
    let mut fixed = [0u8; 14 + 16 + 16 + 4 + 4 + STREAM_PREFIX_LEN + 2];
    if read_full(&mut r, &mut fixed, input)? != fixed.len() || &fixed[..14] != MAGIC {
        return Err(not_ours());
    }
    let take = |from: usize, len: usize| &fixed[from..from + len];
    let arr16 = |s: &[u8]| -> [u8; 16] { s.try_into().unwrap_or([0; 16]) };
    let u32_at = |s: &[u8]| u32::from_be_bytes(s.try_into().unwrap_or([0; 4]));
    let mut header = Header {
        vault_id: arr16(take(14, 16)),
        key_id: arr16(take(30, 16)),
        version: u32_at(take(46, 4)),
        chunk_size: u32_at(take(50, 4)),
        prefix: take(54, STREAM_PREFIX_LEN)
            .try_into()
            .unwrap_or([0; STREAM_PREFIX_LEN]),
        wrapped_file_key: Vec::new(),
    };
    let wrapped_len = u16::from_be_bytes([fixed[fixed.len() - 2], fixed[fixed.len() - 1]]) as usize;
    if header.chunk_size as usize != CHUNK || wrapped_len > MAX_WRAPPED {
        return Err(Error::DecryptionFailed);
    }
    header.wrapped_file_key = vec![0u8; wrapped_len];
    if read_full(&mut r, &mut header.wrapped_file_key, input)? != wrapped_len {
        return Err(Error::DecryptionFailed);
    }
    Ok((header, r))
}

pub(crate) fn decrypt_to_path(
    header: &Header,
    mut reader: BufReader<File>,
    material: &SecretKey,
    output: &Path,
) -> Result<(u64, PendingOutput)> {
    let bound = header.bound_bytes();
    let file_key = open(
        material,
        &header.file_key_binding(&bound),
        &header.wrapped_file_key,
    )
    .map_err(|_| Error::DecryptionFailed)?;
    let file_key = SecretKey::from_slice(file_key.expose()).map_err(|_| Error::DecryptionFailed)?;
    let mut stream = Stream::new_decryptor(&file_key, header.prefix);
    let mut out = PendingOutput::create(output)?;
    let mut total = 0u64;
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(CHUNK + TAG_LEN));
    let path = output;
    loop {
        buf.resize(CHUNK + TAG_LEN, 0);
        let n = read_full(&mut reader, &mut buf, path)?;
        buf.truncate(n);
        let last = n < CHUNK + TAG_LEN || at_eof(&mut reader, path)?;
        stream.open_chunk(&mut buf, last)?;
        total += buf.len() as u64;
        out.write(&buf)?;
        if last {
            break;
        }
    }
    out.complete()?;
    Ok((total, out))
}

/// A detached signature file.
#[derive(Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignatureFile {
    pub format: String,
    #[serde(with = "hex16")]
    pub key_id: [u8; 16],
    pub version: u32,
    pub algorithm: String,
    pub digest: String,
    pub signature: String,
}

mod hex16 {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
        let s = String::deserialize(d)?;
        crate::secret::hex_decode(&s)
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| serde::de::Error::custom("expected 32 hex digits"))
    }
}

fn signed_message(key_id: &[u8; 16], version: u32, input: &Path) -> Result<Vec<u8>> {
    let mut r = BufReader::with_capacity(
        CHUNK * 2,
        File::open(input).map_err(|e| Error::io(input.display(), e))?,
    );
    let mut h = Sha512::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = read_full(&mut r, &mut buf, input)?;
        h.update(&buf[..n]);
        if n < buf.len() {
            break;
        }
    }
    let mut m = Vec::with_capacity(SIGN_DOMAIN.len() + 16 + 4 + 64);
    m.extend_from_slice(SIGN_DOMAIN);
    m.extend_from_slice(key_id);
    m.extend_from_slice(&version.to_be_bytes());
    m.extend_from_slice(&h.finalize());
    Ok(m)
}

pub(crate) fn sign_path(
    key_id: &[u8; 16],
    version: u32,
    material: &SecretKey,
    input: &Path,
    out: &Path,
) -> Result<PendingOutput> {
    let msg = signed_message(key_id, version, input)?;
    let sig = SigningKey::from_bytes(material.expose()).sign(&msg);
    let file = SignatureFile {
        format: SIGNATURE_FORMAT.into(),
        key_id: *key_id,
        version,
        algorithm: "ed25519".into(),
        digest: "sha512".into(),
        signature: hex::encode(sig.to_bytes()),
    };
    let json = serde_json::to_string_pretty(&file).map_err(|e| Error::Internal(e.to_string()))?;
    let mut o = PendingOutput::create(out)?;
    o.write(json.as_bytes())?;
    o.write(b"\n")?;
    o.complete()?;
    Ok(o)
}

pub(crate) fn read_signature(path: &Path) -> Result<SignatureFile> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
    let sig: SignatureFile = serde_json::from_str(&text)
        .map_err(|e| Error::MalformedSignature(format!("{}: {e}", path.display())))?;
    if sig.format != SIGNATURE_FORMAT || sig.algorithm != "ed25519" || sig.digest != "sha512" {
        return Err(Error::MalformedSignature(format!(
            "{}: unknown format",
            path.display()
        )));
    }
    Ok(sig)
}

pub(crate) fn verify_path(sig: &SignatureFile, public_hex: &str, input: &Path) -> Result<()> {
    let public: [u8; 32] = crate::secret::hex_decode(public_hex)
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| Error::Tampered("a stored public key is malformed".into()))?;
    let vk = VerifyingKey::from_bytes(&public)
        .map_err(|_| Error::Tampered("a stored public key is invalid".into()))?;
    let signature = crate::secret::hex_decode(&sig.signature)
        .and_then(|b| Signature::from_slice(&b).ok())
        .ok_or_else(|| Error::MalformedSignature("signature is not 64 bytes of hex".into()))?;
    let msg = signed_message(&sig.key_id, sig.version, input)?;
    vk.verify_strict(&msg, &signature)
        .map_err(|_| Error::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial_of(p: &Path) -> PathBuf {
        let mut n = p.as_os_str().to_owned();
        n.push(".custos-partial");
        PathBuf::from(n)
    }

    #[test]
    fn unpublished_output_is_removed_even_when_complete() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        let mut o = PendingOutput::create(&target).unwrap();
        o.write(b"plaintext").unwrap();
        o.complete().unwrap();
        assert!(partial_of(&target).exists());
        drop(o); // e.g. the audit commit failed
        assert!(!partial_of(&target).exists());
        assert!(!target.exists());
    }

    #[test]
    fn publish_never_replaces_a_file_that_appeared_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        let mut o = PendingOutput::create(&target).unwrap();
        o.write(b"new").unwrap();
        o.complete().unwrap();
        std::fs::write(&target, b"someone else's").unwrap();
        assert!(o.publish().is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"someone else's");
        assert!(!partial_of(&target).exists());
    }

    #[test]
    fn published_output_has_its_name_and_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        let mut o = PendingOutput::create(&target).unwrap();
        o.write(b"data").unwrap();
        o.complete().unwrap();
        o.publish().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"data");
        assert!(!partial_of(&target).exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&target).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
        }
    }
}
