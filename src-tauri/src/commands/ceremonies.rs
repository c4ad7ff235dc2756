//! Quorum ceremonies in the window: the escrow (or rekey) script with every participant's touch, the
//! hand-out of the shares one custodian at a time, drills, transcripts, and recovery from shares on
//! the unlock screen. The ceremony itself is the core's ([`Vault::escrow`]); this module only holds
//! the shares between the end of the script and the end of the hand-out.
//!
//! Shares live in [`Handout`] in the session (zeroized on drop, dropped on lock) and leave Rust only
//! through [`reveal_share`], when the person whose share it is asks to see it.

use std::path::PathBuf;

use custos_core::escrow::{
    self, CeremonySummary, EscrowPlan, EscrowStatus, HandOut, Medium, RecoveryShareCheck, Room,
    ShareStatus, Transcript,
};
use custos_core::hardware::{DeviceIdentity, Fido2Client};
use custos_core::sharing::Share;
use custos_core::{Error, Vault};
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Emitter, Manager, Runtime, State};

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
    shares: Vec<(HandOut, bool)>,
}

impl Handout {
    fn find(&mut self, index: u8) -> AppResult<&mut (HandOut, bool)> {
        self.shares
            .iter_mut()
            .find(|(h, _)| h.share.index == index)
            .ok_or_else(|| {
                Error::BadShare(format!("there is no share #{index} in this hand-out")).into()
            })
    }

    fn views(&self) -> Vec<HandOutView> {
        self.shares.iter().map(|(h, c)| view(h, *c)).collect()
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
}

fn view(h: &HandOut, confirmed: bool) -> HandOutView {
    HandOutView {
        custodian: h.custodian.clone(),
        index: h.share.index,
        medium: h.medium,
        fingerprint: h.share.fingerprint(),
        confirmed,
    }
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
) -> AppResult<EscrowResult> {
    if let Some(h) = holders.iter().find(|h| h.medium.is_file()) {
        // Not built in the window yet: it would need a place to write the file to.
        return Err(Error::BadShare(format!(
            "{}: share files are written by the CLI for now (custos ceremony escrow --custodian {}:file --out-dir DIR); choose screen or card here",
            h.name, h.name
        ))
        .into());
    }
    let plan = EscrowPlan {
        threshold,
        holders: holders.into_iter().map(|h| (h.name, h.medium)).collect(),
        witness,
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
        shares: outcome.shares.into_iter().map(|h| (h, false)).collect(),
    };
    let result = EscrowResult {
        ceremony: outcome.ceremony,
        kind: outcome.transcript.kind.clone(),
        threshold,
        total,
        date,
        shares: handout.views(),
        transcript: outcome.transcript,
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
        let (share, _) = h.find(index)?;
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
        let (share, confirmed) = h.find(index)?;
        share.confirm(&words)?;
        *confirmed = true;
        Ok(view(share, true))
    })
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
    let (ceremony, confirmed) = app.state::<Session>().with_handout(|h| {
        let unconfirmed: Vec<String> = h
            .shares
            .iter()
            .filter(|(s, c)| s.medium == Medium::Screen && !c)
            .map(|(s, _)| format!("#{} ({})", s.share.index, s.custodian))
            .collect();
        if !unconfirmed.is_empty() && !force {
            return Err(Error::BadShare(format!(
                "share {} has not been typed back yet: each custodian types their words back to show \
                 they wrote them down, or finish anyway and the transcript says so",
                unconfirmed.join(", ")
            ))
            .into());
        }
        Ok((
            h.ceremony.clone(),
            h.shares
                .iter()
                .filter(|(_, c)| *c)
                .map(|(s, _)| s.share.index)
                .collect::<Vec<_>>(),
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
        k.vault(|v| v.finish_handout(&ceremony, &confirmed, &serials, note.as_deref(), &mut room))
    })
    .await?;
    app.state::<Session>().take_handout();
    Ok(transcript)
}

/// A drill: one share checked alone against the escrow's commitments. Nothing is rebuilt or unlocked.
#[tauri::command]
pub fn drill_share(session: State<'_, Session>, words: String) -> AppResult<ShareStatus> {
    let share = Share::from_words(&words)?;
    session.with_vault(|v| v.drill(&share))
}

#[tauri::command]
pub fn ceremony_transcript(session: State<'_, Session>, id: String) -> AppResult<Transcript> {
    session.with_vault(|v| v.transcript(id.trim()))
}

/// Writes a ceremony's transcript as JSON next to the vault (`<vault>.transcripts/<id>.json`) and
/// returns the path; `custos ceremony verify-transcript` checks it offline.
#[tauri::command]
pub fn export_transcript(session: State<'_, Session>, id: String) -> AppResult<String> {
    let t = session.with_vault(|v| v.transcript(id.trim()))?;
    let text = serde_json::to_string_pretty(&t).map_err(|e| AppError::internal(e.to_string()))?;
    let mut dir = session.vault_path().as_os_str().to_owned();
    dir.push(".transcripts");
    let dir = std::path::PathBuf::from(dir);
    let io = |path: &std::path::Path, source| {
        AppError::from(Error::Io {
            path: path.display().to_string(),
            source,
        })
    };
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let path = dir.join(format!("{}.json", t.ceremony));
    // A stored transcript never changes: an existing export of it is kept if it is the same.
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

/// Unlock screen: one share checked on entry against the locked vault's escrow.
#[tauri::command]
pub fn check_recovery_share(
    session: State<'_, Session>,
    words: String,
) -> AppResult<RecoveryShareCheck> {
    let share = Share::from_words(&words)?;
    Ok(escrow::check_recovery_share(session.vault_path(), &share)?)
}

/// Unlock screen: M shares rebuild the recovery key; the vault gets the new passphrase and is left
/// unlocked. A bad, duplicate or missing share is named; nothing changes then.
#[tauri::command]
pub async fn recover_vault<R: Runtime>(
    app: AppHandle<R>,
    shares: Vec<String>,
    passphrase: String,
    confirmation: String,
) -> AppResult<SessionInfo> {
    let shares = shares
        .iter()
        .enumerate()
        .map(|(i, w)| {
            Share::from_words(w).map_err(|e| {
                Error::BadShare(format!(
                    "share {} of those entered: {}",
                    i + 1,
                    e.to_string().trim_start_matches("share refused: ")
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pass = new_passphrase(passphrase, confirmation)?;
    let handle = app.clone();
    let vault = tauri::async_runtime::spawn_blocking(move || -> AppResult<Vault> {
        let session = handle.state::<Session>();
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
