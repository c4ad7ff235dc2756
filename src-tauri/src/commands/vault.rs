//! Vault life cycle: status, create (with Argon2 calibration), unlock (with the YubiKey of a PIV-bound
//! vault), lock, info.

use custos_core::{CalibrationProgress, InitOptions, LockedInfo, Passphrase, Vault, VaultInfo};
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager, Runtime, State};
use zeroize::Zeroize;

use crate::devices::Devices;
use crate::error::{AppError, AppResult};
use crate::session::{LockedEvent, Session, EVENT_VAULT_LOCKED};
use crate::strength::{self, Strength};

pub const EVENT_CALIBRATION_PROGRESS: &str = "calibration-progress";

#[derive(Debug, Serialize)]
pub struct AppStatus {
    pub vault_path: String,
    pub exists: bool,
    pub unlocked: bool,
    /// What can be read from the vault file without the passphrase (test-KDF flag, KDF parameters).
    pub locked_info: Option<LockedInfo>,
    /// Set when the file exists but cannot be read.
    pub peek_error: Option<AppError>,
    pub test_kdf_allowed: bool,
    pub idle_lock_secs: u64,
    pub min_passphrase_score: u8,
    /// Started with `--demo` (or `CUSTOS_DEMO=1`): keys are software twins; the DEMO banner shows.
    pub demo: bool,
}

/// An unlocked vault, as the window shows it.
#[derive(Debug, Serialize)]
pub struct SessionInfo {
    #[serde(flatten)]
    pub info: VaultInfo,
    /// Failed unlock attempts between the previous unlock and this one (an alert).
    pub failed_unlocks: u32,
}

pub fn session_info(v: &Vault) -> Result<SessionInfo, custos_core::Error> {
    Ok(SessionInfo {
        info: v.info()?,
        failed_unlocks: v.failed_unlocks(),
    })
}

#[tauri::command]
pub fn app_status(session: State<'_, Session>) -> AppStatus {
    let path = session.vault_path();
    let exists = Vault::exists(path);
    let (locked_info, peek_error) = if exists {
        match Vault::peek(path) {
            Ok(info) => (Some(info), None),
            Err(err) => (None, Some(AppError::from(err))),
        }
    } else {
        (None, None)
    };
    AppStatus {
        vault_path: path.display().to_string(),
        exists,
        unlocked: session.is_unlocked(),
        locked_info,
        peek_error,
        test_kdf_allowed: session.config().test_kdf_allowed,
        idle_lock_secs: session.config().idle_timeout.as_secs(),
        min_passphrase_score: strength::MIN_SCORE,
        demo: session.config().demo,
    }
}

#[tauri::command]
pub fn passphrase_strength(mut passphrase: String) -> Strength {
    let out = strength::estimate(&passphrase);
    passphrase.zeroize();
    out
}

/// A new passphrase (a new vault, or a recovered one): both entries match and it is hard enough to
/// guess. The strings are wiped either way.
pub fn new_passphrase(mut passphrase: String, mut confirmation: String) -> AppResult<Passphrase> {
    let matches = passphrase == confirmation;
    confirmation.zeroize();
    if !matches {
        passphrase.zeroize();
        return Err(AppError::new(
            "passphrase_mismatch",
            "The two passphrases do not match.",
        ));
    }
    let strength = strength::estimate(&passphrase);
    if !strength.acceptable {
        passphrase.zeroize();
        return Err(AppError::new(
            "weak_passphrase",
            format!(
                "This passphrase is too easy to guess (strength {} of 4; at least {} is required).",
                strength.score,
                strength::MIN_SCORE
            ),
        ));
    }
    Ok(Passphrase::new(passphrase))
}

/// Creates the vault: checks the passphrase, then runs `Vault::init` (Argon2 calibration) on a
/// blocking thread, emitting `calibration-progress` events. The new vault is left unlocked.
#[tauri::command]
pub async fn create_vault<R: Runtime>(
    app: AppHandle<R>,
    passphrase: String,
    confirmation: String,
    target_ms: Option<u32>,
    insecure_test_kdf: bool,
) -> AppResult<SessionInfo> {
    let session = app.state::<Session>();
    session.touch();
    let pass = new_passphrase(passphrase, confirmation)?;
    if insecure_test_kdf && !session.config().test_kdf_allowed {
        return Err(AppError::new(
            "test_kdf_not_allowed",
            "An insecure test vault can only be created when CUSTOS_TEST_KDF=1 is set.",
        ));
    }
    let path = session.vault_path_buf();
    if !session.begin_create() {
        return Err(AppError::new("busy", "A vault is already being created."));
    }

    let mut opts = InitOptions::default();
    if let Some(ms) = target_ms {
        opts.target_ms = ms;
    }
    opts.insecure_test_kdf = insecure_test_kdf;

    let emitter = app.clone();
    let result = tauri::async_runtime::spawn_blocking(move || {
        let mut progress = |p: CalibrationProgress| {
            if let Err(err) = emitter.emit(EVENT_CALIBRATION_PROGRESS, &p) {
                eprintln!("custos-app: could not emit {EVENT_CALIBRATION_PROGRESS}: {err}");
            }
        };
        Vault::init(&path, &pass, &opts, &mut progress)
    })
    .await;
    session.end_create();

    let vault =
        result.map_err(|e| AppError::internal(format!("vault creation stopped: {e}")))??;
    let info = session_info(&vault)?;
    session.install(vault);
    Ok(info)
}

/// Unlocks the vault (Argon2 runs on a blocking thread). A wrong passphrase comes back as the core's
/// `wrong_passphrase` error, with its message. A vault bound to a YubiKey (`piv_required`) also needs
/// that key: its PIN is asked in the PIN dialog (`custos://pin-request`), and the key is touched.
#[tauri::command]
pub async fn unlock<R: Runtime>(app: AppHandle<R>, passphrase: String) -> AppResult<SessionInfo> {
    let session = app.state::<Session>();
    session.touch();
    let pass = Passphrase::new(passphrase);
    let handle = app.clone();
    let vault = tauri::async_runtime::spawn_blocking(move || -> AppResult<Vault> {
        let session = handle.state::<Session>();
        let _busy = session.begin_device()?;
        let path = session.vault_path_buf();
        let actor = custos_core::actor_name();
        let locked = Vault::peek(&path)?;
        let Some(factor) = locked.piv_required else {
            return Ok(Vault::unlock(&path, &pass, &actor)?);
        };
        // Check the back-off before asking for a PIN that could not be used anyway.
        if locked.wait_secs > 0 {
            return Err(custos_core::Error::BackedOff {
                wait_secs: locked.wait_secs,
            }
            .into());
        }
        let devices = Devices::new(&handle, &path, session.config().demo);
        let (mut card, pin) = devices.piv_for_unlock(&factor)?;
        Ok(Vault::unlock_with(
            &path,
            &pass,
            &actor,
            Some((card.as_mut(), &pin)),
        )?)
    })
    .await
    .map_err(|e| AppError::internal(format!("unlock stopped: {e}")))??;
    let info = session_info(&vault)?;
    session.install(vault);
    Ok(info)
}

#[tauri::command]
pub fn lock<R: Runtime>(app: AppHandle<R>, session: State<'_, Session>) -> AppResult<()> {
    if session.device_busy() {
        return Err(AppError::busy());
    }
    if session.lock() {
        if let Err(err) = app.emit(EVENT_VAULT_LOCKED, LockedEvent { reason: "user" }) {
            eprintln!("custos-app: could not emit {EVENT_VAULT_LOCKED}: {err}");
        }
    }
    Ok(())
}

#[tauri::command]
pub fn vault_info(session: State<'_, Session>) -> AppResult<SessionInfo> {
    session.with_vault(|v| session_info(v))
}
