//! Quorum ceremonies in the window: the escrow (or rekey) script with every participant's touch, the
//! hand-out of the shares one custodian at a time, drills, transcripts, and recovery from shares on
//! the unlock screen. The ceremony itself is the core's ([`Vault::escrow`]); this module only holds
//! the shares between the end of the script and the end of the hand-out.
//!
//! Shares live in [`Handout`] in the session (zeroized on drop, dropped on lock) and leave Rust only
//! through [`reveal_share`], when the person whose share it is asks to see it.

use std::path::PathBuf;

use custos_core::escrow::{
    self, CeremonySummary, EscrowPlan, EscrowStatus, HandOut, HandOutReport, Medium,
    RecoveryShareCheck, Room, ShareStatus, Transcript,
};
use custos_core::hardware::{DeviceIdentity, Fido2Client};
use custos_core::sharefile::{self, FileLock};
use custos_core::sharing::Share;
use custos_core::{Error, Passphrase, Vault};
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Emitter, Manager, Runtime, State};
use zeroize::{Zeroize, Zeroizing};

use crate::commands::device::with_key;
use crate::commands::vault::{new_passphrase, session_info, SessionInfo};
use crate::devices::Devices;
use crate::error::{AppError, AppResult};
use crate::session::Session;

/// Emitted as each step of a ceremony's script starts: `{ "text": "1. olivia opens …" }`.
pub const EVENT_CEREMONY_STEP: &str = "custos://ceremony-step";

/// The shares of the ceremony that just ran, until every custodian has received theirs.
pub struct Handout {
    ceremony: String,
    threshold: u8,
    total: u8,
    date: String,
    shares: Vec<Given>,
}

/// One share of the hand-out and how far its hand-out got.
struct Given {
    out: HandOut,
    /// A screen share typed back by its holder.
    confirmed: bool,
    /// Where a share file was written.
    file: Option<PathBuf>,
}

impl Handout {
    fn find(&mut self, index: u8) -> AppResult<&mut Given> {
        self.shares
            .iter_mut()
            .find(|g| g.out.share.index == index)
            .ok_or_else(|| {
                Error::BadShare(format!("there is no share #{index} in this hand-out")).into()
            })
    }

    fn views(&self) -> Vec<HandOutView> {
        self.shares.iter().map(view).collect()
    }
}

pub fn no_handout() -> AppError {
    AppError::new(
        "no_handout",
        "No hand-out is open: the shares of a ceremony can only be shown right after it ran.",
    )
}

#[derive(Debug, Deserialize)]
pub struct Holder {
    pub name: String,
    pub medium: Medium,
}

#[derive(Debug, Serialize)]
pub struct HandOutView {
    pub custodian: String,
    pub index: u8,
    pub medium: Medium,
    pub fingerprint: String,
    pub confirmed: bool,
    /// For a share file: where it was written, once it was.
    pub file: Option<String>,
}

fn view(g: &Given) -> HandOutView {
    HandOutView {
        custodian: g.out.custodian.clone(),
        index: g.out.share.index,
        medium: g.out.medium,
        fingerprint: g.out.share.fingerprint(),
        confirmed: g.confirmed,
        file: g.file.as_ref().map(|p| p.display().to_string()),
    }
}

/// `<vault><suffix>`: a directory next to the vault file (`.shares`: where the window offers to write
/// share files, though the officer names the holder's removable medium; `.transcripts`: exports).
fn next_to_vault(vault: &std::path::Path, suffix: &str) -> PathBuf {
    let mut dir = vault.as_os_str().to_owned();
    dir.push(suffix);
    PathBuf::from(dir)
}

#[derive(Debug, Serialize)]
pub struct EscrowResult {
    pub ceremony: String,
    pub kind: String,
    pub threshold: u8,
    pub total: u8,
    pub date: String,
    pub shares: Vec<HandOutView>,
    pub transcript: Transcript,
    /// The directory offered for share files (see [`write_share_file`]).
    pub share_dir: String,
}

/// One share as its custodian sees it. Secret: shown on request, never kept by the window.
#[derive(Serialize)]
pub struct RevealedShare {
    pub custodian: String,
    pub index: u8,
    pub medium: Medium,
    pub ceremony: String,
    pub threshold: u8,
    pub total: u8,
    pub date: String,
    pub fingerprint: String,
    pub words: Vec<&'static str>,
    pub qr_text: String,
    pub qr_svg: String,
}

/// The room of a ceremony in the window: each participant's own key (the DEMO twin in demo mode, or
/// for keys enrolled as twins), and each step of the script shown as it starts.
struct WindowRoom<R: Runtime> {
    app: AppHandle<R>,
    vault: PathBuf,
    demo: bool,
}

impl<R: Runtime> Room for WindowRoom<R> {
    fn key_of(
        &mut self,
        custodian: &str,
        enrolled: &[DeviceIdentity],
    ) -> custos_core::Result<Box<dyn Fido2Client>> {
        let descriptions: Vec<String> = enrolled.iter().map(|d| d.description.clone()).collect();
        let demo = self.demo || enrolled.iter().any(|d| d.demo);
        Devices::new(&self.app, &self.vault, demo).presence(custodian, &descriptions)
    }

    fn step(&mut self, text: &str) {
        if let Err(err) = self
            .app
            .emit(EVENT_CEREMONY_STEP, serde_json::json!({ "text": text }))
        {
            eprintln!("custos-app: could not emit {EVENT_CEREMONY_STEP}: {err}");
        }
    }
}

/// The escrow and its shares' drill state, or `null` when the vault has none.
#[tauri::command]
pub fn escrow_status(session: State<'_, Session>) -> AppResult<Option<EscrowStatus>> {
    session.with_vault(|v| v.escrow_status())
}

/// Every ceremony held in the vault, oldest first.
#[tauri::command]
pub fn list_ceremonies(session: State<'_, Session>) -> AppResult<Vec<CeremonySummary>> {
    session.with_vault(|v| v.ceremonies())
}

/// Runs the escrow script (a rekey when an escrow exists) with the acting custodian as administrator;
/// every participant touches their own key in turn. The shares stay in Rust for the hand-out.
#[tauri::command]
pub async fn run_escrow<R: Runtime>(
    app: AppHandle<R>,
    threshold: u8,
    holders: Vec<Holder>,
    witness: String,
    drill_every_days: Option<u32>,
) -> AppResult<EscrowResult> {
    let plan = EscrowPlan {
        threshold,
        holders: holders.into_iter().map(|h| (h.name, h.medium)).collect(),
        witness,
        drill_every_days,
    };
    let handle = app.clone();
    let state = app.clone();
    let outcome = with_key(app, move |k| {
        let mut room = WindowRoom {
            app: handle,
            vault: k.devices.vault().to_path_buf(),
            demo: k.devices.demo(),
        };
        k.vault(|v| v.escrow(&plan, &mut room))
    })
    .await?;
    let date = outcome
        .transcript
        .steps
        .first()
        .map(|s| s.time.clone())
        .unwrap_or_default();
    let (threshold, total) = outcome
        .shares
        .first()
        .map(|h| (h.share.threshold, h.share.total))
        .unwrap_or_default();
    let handout = Handout {
        ceremony: outcome.ceremony.clone(),
        threshold,
        total,
        date: date.clone(),
        shares: outcome
            .shares
            .into_iter()
            .map(|out| Given {
                out,
                confirmed: false,
                file: None,
            })
            .collect(),
    };
    let share_dir = next_to_vault(state.state::<Session>().vault_path(), ".shares")
        .display()
        .to_string();
    let result = EscrowResult {
        ceremony: outcome.ceremony,
        kind: outcome.transcript.kind.clone(),
        threshold,
        total,
        date,
        shares: handout.views(),
        transcript: outcome.transcript,
        share_dir,
    };
    state.state::<Session>().set_handout(handout);
    Ok(result)
}

/// One share of the open hand-out, for its custodian's eyes: words, QR code, fingerprint.
#[tauri::command]
pub fn reveal_share(session: State<'_, Session>, index: u8) -> AppResult<RevealedShare> {
    session.with_handout(|h| {
        let (ceremony, threshold, total, date) =
            (h.ceremony.clone(), h.threshold, h.total, h.date.clone());
        let share = &h.find(index)?.out;
        if share.medium.is_file() {
            return Err(Error::BadShare(format!(
                "share #{index} goes out as a share file: write the file for {} instead of showing it",
                share.custodian
            ))
            .into());
        }
        Ok(RevealedShare {
            custodian: share.custodian.clone(),
            index,
            medium: share.medium,
            ceremony,
            threshold,
            total,
            date,
            fingerprint: share.share.fingerprint(),
            words: share.words(),
            qr_text: share.qr_text(),
            qr_svg: escrow::qr_svg(&share.qr_text())?,
        })
    })
}

/// The custodian typed their words back: they must be exactly their share (a wrong word is named by
/// its position).
#[tauri::command]
pub fn confirm_share(
    session: State<'_, Session>,
    index: u8,
    words: String,
) -> AppResult<HandOutView> {
    session.with_handout(|h| {
        let given = h.find(index)?;
        given.out.confirm(&words)?;
        given.confirmed = true;
        Ok(view(given))
    })
}

/// Writes the share file of share `index` into `dir` (created, owner-only, if missing) as
/// `<ceremony>-share-<index>-<custodian>.age`, and returns the hand-out row with its path. A
/// `passphrase-file` share is locked with the passphrase its holder types here (twice; as strong as a
/// vault passphrase); a `file` share opens with the holder's YubiKey PIV key. Each share file is
/// written once (the record says where); an existing file is never overwritten.
#[tauri::command]
pub async fn write_share_file<R: Runtime>(
    app: AppHandle<R>,
    index: u8,
    dir: String,
    passphrase: Option<String>,
    confirmation: Option<String>,
) -> AppResult<HandOutView> {
    let passphrase = passphrase.map(Zeroizing::new);
    let confirmation = confirmation.map(Zeroizing::new);
    let dir = PathBuf::from(dir.trim());
    if dir.as_os_str().is_empty() || !dir.is_absolute() {
        return Err(AppError::new(
            "bad_input",
            "Name the directory for the share file as a full path (for example the custodian's USB stick).",
        ));
    }
    // scrypt (passphrase files) takes about a second: off the UI thread.
    tauri::async_runtime::spawn_blocking(move || {
        app.state::<Session>().with_handout(|h| {
            let ceremony = h.ceremony.clone();
            let given = h.find(index)?;
            if let Some(done) = &given.file {
                return Err(AppError::new(
                    "exists",
                    format!(
                        "the share file of {} is already written ({}): each share file is written once",
                        given.out.custodian,
                        done.display()
                    ),
                ));
            }
            let pass = match given.out.medium {
                Medium::PassphraseFile => Some(new_passphrase(
                    passphrase.as_deref().cloned().unwrap_or_default(),
                    confirmation.as_deref().cloned().unwrap_or_default(),
                )?),
                Medium::File => None,
                Medium::Screen | Medium::Card => {
                    return Err(Error::BadShare(format!(
                        "share #{index} is not a share file: show it to {} instead",
                        given.out.custodian
                    ))
                    .into())
                }
            };
            let bytes = given.out.share_file(pass.as_ref())?;
            let path = dir.join(escrow::share_file_name(
                &ceremony,
                index,
                &given.out.custodian,
                "age",
            ));
            write_new_file(&dir, &path, &bytes)?;
            given.file = Some(path);
            Ok(view(given))
        })
    })
    .await
    .map_err(|e| AppError::internal(format!("writing the share file stopped: {e}")))?
}

/// Creates `path` (and its directory, owner-only) with `bytes`, refusing to replace an existing
/// file; a file left half-written by a failed write is removed.
fn write_new_file(dir: &std::path::Path, path: &std::path::Path, bytes: &[u8]) -> AppResult<()> {
    use std::io::Write;
    let io = |p: &std::path::Path, source| {
        AppError::from(Error::Io {
            path: p.display().to_string(),
            source,
        })
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| io(dir, e))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            AppError::new(
                "exists",
                format!(
                    "{} exists: move it away or choose another directory",
                    path.display()
                ),
            )
        } else {
            io(path, e)
        }
    })?;
    if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_all()) {
        drop(f);
        let _ = std::fs::remove_file(path);
        return Err(io(path, e));
    }
    Ok(())
}

/// Ends the hand-out: the shares are forgotten, and how each was handed out goes in the audit log.
/// Refused while a screen share is unconfirmed, unless `force` (they are then recorded as such).
#[derive(Debug, Deserialize)]
pub struct BagSerial {
    pub index: u8,
    pub serial: String,
}

/// Ends the hand-out: the witness records how each share went out (typed back, a card's tamper-evident
/// bag serial) and any deviation, and touches their key; the step is appended to the transcript.
/// Refused while a screen share is unconfirmed, unless `force`. The shares are forgotten after.
#[tauri::command(rename_all = "snake_case")]
pub async fn finish_handout<R: Runtime>(
    app: AppHandle<R>,
    force: bool,
    bag_serials: Vec<BagSerial>,
    note: Option<String>,
) -> AppResult<Transcript> {
    let (ceremony, confirmed, unwritten) = app.state::<Session>().with_handout(|h| {
        let named = |keep: &dyn Fn(&Given) -> bool| -> Vec<String> {
            h.shares
                .iter()
                .filter(|g| keep(g))
                .map(|g| format!("#{} ({})", g.out.share.index, g.out.custodian))
                .collect()
        };
        let unconfirmed = named(&|g| g.out.medium == Medium::Screen && !g.confirmed);
        let unwritten = named(&|g| g.out.medium.is_file() && g.file.is_none());
        if !force && !unconfirmed.is_empty() {
            return Err(Error::BadShare(format!(
                "share {} has not been typed back yet: each custodian types their words back to show \
                 they wrote them down, or finish anyway and the transcript says so",
                unconfirmed.join(", ")
            ))
            .into());
        }
        if !force && !unwritten.is_empty() {
            return Err(Error::BadShare(format!(
                "the share file of {} has not been written yet: write it, or finish anyway and the \
                 transcript says so (that share is then lost)",
                unwritten.join(", ")
            ))
            .into());
        }
        let indexes = |keep: &dyn Fn(&Given) -> bool| -> Vec<u8> {
            h.shares
                .iter()
                .filter(|g| keep(g))
                .map(|g| g.out.share.index)
                .collect()
        };
        Ok((
            h.ceremony.clone(),
            indexes(&|g| g.confirmed),
            indexes(&|g| g.out.medium.is_file() && g.file.is_none()),
        ))
    })?;
    let serials: Vec<(u8, String)> = bag_serials
        .into_iter()
        .filter(|b| !b.serial.trim().is_empty())
        .map(|b| (b.index, b.serial))
        .collect();
    let handle = app.clone();
    let (_, transcript) = with_key(app.clone(), move |k| {
        let mut room = WindowRoom {
            app: handle,
            vault: k.devices.vault().to_path_buf(),
            demo: k.devices.demo(),
        };
        let report = HandOutReport {
            confirmed: &confirmed,
            bag_serials: &serials,
            unwritten: &unwritten,
            note: note.as_deref(),
        };
        k.vault(|v| v.finish_handout(&ceremony, &report, &mut room))
    })
    .await?;
    app.state::<Session>().take_handout();
    Ok(transcript)
}

/// The ceremony's witness notes a deviation from the script at step `step` (with a touch); the
/// note becomes a step of the transcript, which is returned.
#[tauri::command]
pub async fn record_deviation<R: Runtime>(
    app: AppHandle<R>,
    ceremony: String,
    step: u32,
    note: String,
) -> AppResult<Transcript> {
    let handle = app.clone();
    with_key(app, move |k| {
        let mut room = WindowRoom {
            app: handle,
            vault: k.devices.vault().to_path_buf(),
            demo: k.devices.demo(),
        };
        k.vault(|v| v.record_deviation(ceremony.trim(), step, &note, &mut room))
    })
    .await
}

/// A drill: one share — typed words, a QR picture or the holder's share file (a YubiKey file asks
/// the PIV PIN in the dialog, then a touch) — checked alone against the escrow's commitments.
/// Nothing is rebuilt or unlocked; the drill's date is recorded.
#[tauri::command]
pub async fn drill_share<R: Runtime>(
    app: AppHandle<R>,
    source: ShareSource,
) -> AppResult<ShareStatus> {
    let handle = app.clone();
    tauri::async_runtime::spawn_blocking(move || -> AppResult<ShareStatus> {
        let session = handle.state::<Session>();
        // A demo vault's share files open with its demo PIV keys, as with_key decides for touches;
        // and a locked vault refuses before any PIN is asked.
        let vault_demo = session.with_vault(|v| Ok(v.custody_status()?.demo))?;
        let demo = session.config().demo || vault_demo;
        let share = read_presented(&handle, &session, source, demo)?;
        session.with_vault(|v| v.drill(&share))
    })
    .await
    .map_err(|e| AppError::internal(format!("the drill stopped: {e}")))?
}

#[tauri::command]
pub fn ceremony_transcript(session: State<'_, Session>, id: String) -> AppResult<Transcript> {
    session.with_vault(|v| v.transcript(id.trim()))
}

/// Writes a ceremony's transcript as JSON next to the vault
/// (`<vault>.transcripts/<id>-<head>.json`, the first 12 digits of its head hash) and returns the path;
/// `custos ceremony verify-transcript` checks it offline. A transcript grows (the hand-out record, a
/// deviation note): each version is its own file, and exporting one version again keeps its file.
#[tauri::command]
pub fn export_transcript(session: State<'_, Session>, id: String) -> AppResult<String> {
    let t = session.with_vault(|v| v.transcript(id.trim()))?;
    let text = serde_json::to_string_pretty(&t).map_err(|e| AppError::internal(e.to_string()))?;
    let dir = next_to_vault(session.vault_path(), ".transcripts");
    let io = |path: &std::path::Path, source| {
        AppError::from(Error::Io {
            path: path.display().to_string(),
            source,
        })
    };
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let head: String = t.head.chars().take(12).collect();
    let path = dir.join(format!("{}-{head}.json", t.ceremony));
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing == text => {}
        Ok(_) => {
            return Err(AppError::new(
                "exists",
                format!(
                    "{} exists and differs from this transcript: move it away and export again",
                    path.display()
                ),
            ))
        }
        Err(_) => std::fs::write(&path, text).map_err(|e| io(&path, e))?,
    }
    Ok(path.display().to_string())
}

/// How a share is presented at recovery on the unlock screen.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ShareSource {
    /// The words, typed (or copied from a card).
    Words { words: String },
    /// A picture of the share's QR code (PNG or JPEG), as read from the file the person chose.
    Picture { name: String, bytes: Vec<u8> },
    /// A share file (age): opened with its passphrase, or with the holder's YubiKey PIV key (PIN in
    /// the PIN dialog, then a touch).
    File {
        name: String,
        bytes: Vec<u8>,
        passphrase: Option<String>,
    },
}

impl Drop for ShareSource {
    fn drop(&mut self) {
        // The words and a QR picture are the share in plain form; a file's passphrase opens one.
        match self {
            ShareSource::Words { words } => words.zeroize(),
            ShareSource::Picture { bytes, .. } => bytes.zeroize(),
            ShareSource::File {
                bytes, passphrase, ..
            } => {
                bytes.zeroize();
                passphrase.zeroize();
            }
        }
    }
}

/// A picture or file larger than this is not a share (a share file is about 1 KiB).
const MAX_PRESENTED_BYTES: usize = 16 * 1024 * 1024;

impl ShareSource {
    fn what(&self) -> String {
        match self {
            ShareSource::Words { .. } => "the words entered".into(),
            ShareSource::Picture { name, .. } => format!("share picture {name}"),
            ShareSource::File { name, .. } => format!("share file {name}"),
        }
    }
}

/// Unlock screen: one share presented for recovery (words, QR picture or share file) is read,
/// checked against the locked vault's escrow (ceremony, M-of-N, its commitment) and kept in Rust
/// until the recovery (or until the person leaves the screen). A bad share is named at once and
/// not kept; so is one already presented.
#[tauri::command]
pub async fn present_share<R: Runtime>(
    app: AppHandle<R>,
    source: ShareSource,
) -> AppResult<RecoveryShareCheck> {
    let handle = app.clone();
    tauri::async_runtime::spawn_blocking(move || -> AppResult<RecoveryShareCheck> {
        let session = handle.state::<Session>();
        if session.is_unlocked() {
            return Err(AppError::new(
                "bad_input",
                "The vault is unlocked: shares are presented only to recover a locked vault.",
            ));
        }
        session.touch();
        let named = named_for(source.what());
        let share = read_presented(&handle, &session, source, session.config().demo)?;
        let check = escrow::check_recovery_share(session.vault_path(), &share).map_err(named)?;
        session.present(share)?;
        Ok(check)
    })
    .await
    .map_err(|e| AppError::internal(format!("reading the share stopped: {e}")))?
}

/// A share refusal prefixed with what was presented ("share picture carol.png: …").
fn named_for(what: String) -> impl Fn(Error) -> AppError {
    move |e: Error| match e {
        Error::BadShare(_) => Error::BadShare(format!(
            "{what}: {}",
            e.to_string().trim_start_matches("share refused: ")
        ))
        .into(),
        other => other.into(),
    }
}

/// The share a person presented (recovery or drill): typed words, a QR picture, or a share file (its
/// passphrase, or the PIV card holding its key: the demo PIV keys when `demo`). A refusal names
/// what was presented. The source is zeroized as soon as it is read.
fn read_presented<R: Runtime>(
    app: &AppHandle<R>,
    session: &Session,
    source: ShareSource,
    demo: bool,
) -> AppResult<Share> {
    let named = named_for(source.what());
    let share = match &source {
        ShareSource::Words { words } => Share::from_words(words).map_err(&named)?,
        ShareSource::Picture { bytes, .. } | ShareSource::File { bytes, .. }
            if bytes.len() > MAX_PRESENTED_BYTES =>
        {
            return Err(named(Error::BadShare(
                "this file is far too large to be a share".into(),
            )))
        }
        ShareSource::Picture { bytes, .. } => {
            custos_core::scan::share_from_image(bytes).map_err(&named)?
        }
        ShareSource::File {
            bytes, passphrase, ..
        } => {
            let _busy = session.begin_device()?;
            let devices = Devices::new(app, session.vault_path(), demo);
            open_share_file(&devices, bytes, passphrase.as_deref()).map_err(&named)?
        }
    };
    drop(source);
    Ok(share)
}

/// Opens a share file: with the passphrase given, or with the YubiKey PIV key it is locked to.
fn open_share_file<R: Runtime>(
    devices: &Devices<R>,
    bytes: &[u8],
    passphrase: Option<&str>,
) -> custos_core::Result<Share> {
    match sharefile::lock_of(bytes)? {
        FileLock::Passphrase => {
            let pass = passphrase.filter(|p| !p.is_empty()).ok_or_else(|| {
                Error::BadShare(
                    "it is locked with a passphrase: its holder types the passphrase, then adds the file again".into(),
                )
            })?;
            sharefile::open_with_passphrase(bytes, &Passphrase::new(pass.to_owned()))
        }
        FileLock::Piv { tags } => {
            let (mut card, pin) = devices.piv_for_share_file(&tags)?;
            sharefile::open_with_piv(bytes, card.as_mut(), &pin)
        }
    }
}

/// Unlock screen: a presented share is taken back (by its index).
#[tauri::command]
pub fn withdraw_share(session: State<'_, Session>, index: u8) -> Vec<u8> {
    session.withdraw(index)
}

/// Unlock screen: every presented share is forgotten (the person left the recovery screen).
#[tauri::command]
pub fn forget_presented_shares(session: State<'_, Session>) {
    session.forget_presented();
}

/// Unlock screen: the presented shares rebuild the recovery key; each holder confirms with their own
/// key; the vault gets the new passphrase and is left unlocked. A bad, duplicate or missing share
/// is named; nothing changes then (the shares stay presented for another try).
#[tauri::command]
pub async fn recover_vault<R: Runtime>(
    app: AppHandle<R>,
    passphrase: String,
    confirmation: String,
) -> AppResult<SessionInfo> {
    let pass = new_passphrase(passphrase, confirmation)?;
    let handle = app.clone();
    let vault = tauri::async_runtime::spawn_blocking(move || -> AppResult<Vault> {
        let session = handle.state::<Session>();
        let shares = session.presented();
        if shares.is_empty() {
            return Err(Error::BadShare(
                "no share presented yet: each holder enters their share first".into(),
            )
            .into());
        }
        let _busy = session.begin_device()?;
        let mut room = WindowRoom {
            app: handle.clone(),
            vault: session.vault_path().to_path_buf(),
            demo: session.config().demo,
        };
        Ok(Vault::recover(
            session.vault_path(),
            &shares,
            &pass,
            &custos_core::actor_name(),
            &mut room,
        )?)
    })
    .await
    .map_err(|e| AppError::internal(format!("recovery stopped: {e}")))??;
    let info = session_info(&vault)?;
    app.state::<Session>().install(vault);
    Ok(info)
}
