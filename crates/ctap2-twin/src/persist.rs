//! The twin's "flash": what a [`SoftCtap2Device`](crate::SoftCtap2Device) keeps across power cycles,
//! as a JSON file, and the file writes (temporary file + rename, owner-only) that keep it whole.
//!
//! **The file is not a secure element.** It holds the credentials' private keys in clear (hex), the
//! PIN's CTAP hash (`LEFT(SHA-256(PIN), 16)`, which a PIN list inverts at once) and the retry counter,
//! which anyone who can write the file can reset. It exists so that a `--demo` key survives between
//! invocations of the CLI; it protects nothing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

/// The `format` field of a twin file.
pub const FORMAT: &str = "custos-ctap2-twin/1";

const NOTICE: &str =
    "DEMO software FIDO2 key - not hardware. The private keys below are NOT protected: \
                      anyone who can read this file can act as this key.";

/// One credential as stored in the file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileCredential {
    pub id: String,
    pub rp_id_hash: String,
    pub private_key: String,
}

impl Drop for FileCredential {
    fn drop(&mut self) {
        self.private_key.zeroize();
    }
}

/// The persisted state. Everything else (key agreement key, PIN token, the "three wrong PINs in a
/// row" block) is volatile and starts fresh when the file is opened, as after a power cycle.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileState {
    pub format: String,
    pub notice: String,
    pub aaguid: String,
    pub pin_hash: Option<String>,
    pub pin_retries: u8,
    pub sign_count: u32,
    pub pin_protocols: Vec<u32>,
    pub pin_uv_auth_token: bool,
    pub credentials: Vec<FileCredential>,
}

impl FileState {
    pub fn notice() -> String {
        NOTICE.to_owned()
    }

    pub fn to_json(&self) -> io::Result<Zeroizing<Vec<u8>>> {
        serde_json::to_vec_pretty(self)
            .map(Zeroizing::new)
            .map_err(|e| io::Error::other(format!("cannot encode the twin state: {e}")))
    }

    pub fn from_json(path: &Path, bytes: &[u8]) -> io::Result<Self> {
        let bad = |what: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a CTAP2 twin file: {what}", path.display()),
            )
        };
        let state: FileState = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if state.format != FORMAT {
            return Err(bad(format!(
                "format {:?}, expected {FORMAT:?}",
                state.format
            )));
        }
        Ok(state)
    }
}

/// Hex of fixed length into bytes.
pub(crate) fn unhex<const N: usize>(s: &str, what: &str) -> io::Result<[u8; N]> {
    let v = Zeroizing::new(hex::decode(s).map_err(|_| invalid(what))?);
    <[u8; N]>::try_from(v.as_slice()).map_err(|_| invalid(what))
}

pub(crate) fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("CTAP2 twin file: invalid {what}"),
    )
}

/// Reads a whole state file (at most 1 MiB: a twin file is a few KiB).
pub fn read(path: &Path) -> io::Result<Zeroizing<Vec<u8>>> {
    let meta = fs::metadata(path)?;
    if meta.len() > 1 << 20 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is too large for a key state file", path.display()),
        ));
    }
    fs::read(path).map(Zeroizing::new)
}

/// Creates `path` with `bytes`, owner-only (0600), refusing to overwrite anything already there
/// ([`io::ErrorKind::AlreadyExists`]). The file appears whole or not at all (written to a temporary
/// file in the same directory, synced, then hard-linked into place).
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = write_temp(path, bytes)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    linked?;
    sync_dir(path);
    Ok(())
}

/// Replaces `path` with `bytes` atomically (temporary file in the same directory, synced, renamed
/// over the old one), owner-only (0600).
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = write_temp(path, bytes)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path);
    Ok(())
}

fn write_temp(path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| io::Error::other(e.to_string()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        hex::encode(nonce)
    ));
    let tmp = path.with_file_name(tmp_name);

    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = (|| {
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// Best effort: make the rename or link durable.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}
