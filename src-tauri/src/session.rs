//! The unlocked vault lives here, in Tauri state, and nowhere else.
//!
//! Every command that touches the vault goes through [`Session::with_vault`], which counts as activity.
//! A background thread ([`spawn_idle_watcher`]) locks the vault once no command has run for the idle
//! timeout and emits `vault-locked` so the window returns to the unlock screen.
//!
//! Operations that wait for a hardware key (a touch, a PIN) run on a blocking thread and hold the
//! vault for as long as the key takes. While one runs ([`Session::begin_device`]), other commands are
//! refused at once with `busy` instead of waiting (sync commands run on the UI thread), and the idle
//! lock waits for it to finish. The acting custodian lives in the unlocked [`Vault`] itself, so it is
//! forgotten with the keys when the vault locks.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use custos_core::sharing::Share;
use custos_core::Vault;
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager, Runtime};

use crate::commands::ceremonies::Handout;
use crate::config::Config;
use crate::error::{AppError, AppResult};

/// Event emitted whenever the vault gets locked (by the Lock button, by idle time-out, or on exit).
pub const EVENT_VAULT_LOCKED: &str = "vault-locked";

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LockedEvent {
    /// "user" | "idle" | "exit" | "shares" (recovery shares forgotten after the idle time)
    pub reason: &'static str,
}

pub struct Session {
    config: Config,
    vault: Mutex<Option<Vault>>,
    last_activity: Mutex<Instant>,
    /// Set while `Vault::init` runs, so a second create cannot race it.
    creating: AtomicBool,
    /// Set while an operation waits for a hardware key (see [`Session::begin_device`]).
    device_busy: AtomicBool,
    /// The shares of the ceremony that just ran, until the hand-out ends. Dropped (zeroized) with
    /// the vault when it locks.
    handout: Mutex<Option<Handout>>,
    /// Recovery shares presented on the unlock screen and checked, until the recovery succeeds or
    /// the person leaves the screen (zeroized on drop).
    presented: Mutex<Vec<Share>>,
}

/// Held while a key operation runs; clears the busy flag when dropped (also on panic).
pub struct DeviceGuard<'a> {
    session: &'a Session,
}

impl Drop for DeviceGuard<'_> {
    fn drop(&mut self) {
        // Activity first, so the idle watcher never sees a just-finished operation as idle time.
        self.session.touch();
        self.session.device_busy.store(false, Ordering::SeqCst);
    }
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another command must not leave the vault unreachable (or un-lockable).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Session {
    pub fn new(config: Config) -> Self {
        Session {
            config,
            vault: Mutex::new(None),
            last_activity: Mutex::new(Instant::now()),
            creating: AtomicBool::new(false),
            device_busy: AtomicBool::new(false),
            handout: Mutex::new(None),
            // Room for every share of the largest escrow: no reallocation leaves copies behind.
            presented: Mutex::new(Vec::with_capacity(
                custos_core::sharing::MAX_SHARES as usize,
            )),
        }
    }

    /// Opens the hand-out of a ceremony's shares (replacing any earlier one).
    pub fn set_handout(&self, handout: Handout) {
        *relock(&self.handout) = Some(handout);
    }

    /// Runs `f` on the open hand-out, while the vault is unlocked; `no_handout` when none is open.
    pub fn with_handout<T>(&self, f: impl FnOnce(&mut Handout) -> AppResult<T>) -> AppResult<T> {
        if !self.is_unlocked() {
            self.take_handout();
            return Err(AppError::locked());
        }
        self.touch();
        let mut guard = relock(&self.handout);
        let h = guard
            .as_mut()
            .ok_or_else(crate::commands::ceremonies::no_handout)?;
        f(h)
    }

    /// Forgets the hand-out (its shares are zeroized).
    pub fn take_handout(&self) {
        relock(&self.handout).take();
    }

    /// Keeps a recovery share that passed its checks. Refused when a share with the same index is
    /// already presented (each share counts once), or one of another ceremony.
    pub fn present(&self, share: Share) -> AppResult<()> {
        let mut presented = relock(&self.presented);
        if presented.len() >= custos_core::sharing::MAX_SHARES as usize {
            return Err(custos_core::Error::BadShare(format!(
                "{} shares are entered already: no escrow has more",
                presented.len()
            ))
            .into());
        }
        if presented.iter().any(|s| s.index == share.index) {
            return Err(custos_core::Error::BadShare(format!(
                "share #{} is already entered: each share counts once",
                share.index
            ))
            .into());
        }
        if let Some(first) = presented.first().filter(|s| s.ceremony != share.ceremony) {
            return Err(custos_core::Error::BadShare(format!(
                "share #{} comes from another ceremony than share #{} already entered",
                share.index, first.index
            ))
            .into());
        }
        presented.push(share);
        Ok(())
    }

    /// Takes back the presented share `index`; returns the indexes still presented.
    pub fn withdraw(&self, index: u8) -> Vec<u8> {
        let mut presented = relock(&self.presented);
        presented.retain(|s| s.index != index);
        presented.iter().map(|s| s.index).collect()
    }

    /// The presented shares (copies, zeroized on drop), in the order they came.
    pub fn presented(&self) -> Vec<Share> {
        relock(&self.presented).clone()
    }

    pub fn forget_presented(&self) {
        relock(&self.presented).clear();
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn vault_path(&self) -> &Path {
        &self.config.vault_path
    }

    pub fn vault_path_buf(&self) -> PathBuf {
        self.config.vault_path.clone()
    }

    /// Records activity: pushes the idle auto-lock back.
    pub fn touch(&self) {
        *relock(&self.last_activity) = Instant::now();
    }

    pub fn idle_for(&self) -> Duration {
        relock(&self.last_activity).elapsed()
    }

    pub fn is_unlocked(&self) -> bool {
        relock(&self.vault).is_some()
    }

    /// Runs `f` on the unlocked vault; counts as activity. Fails with `vault_locked` when locked, and
    /// with `busy` while a key operation is waiting for a touch or a PIN.
    pub fn with_vault<T>(
        &self,
        f: impl FnOnce(&mut Vault) -> Result<T, custos_core::Error>,
    ) -> AppResult<T> {
        if self.device_busy() {
            return Err(AppError::busy());
        }
        self.vault_access(|v| f(v).map_err(AppError::from))
    }

    /// Like [`Session::with_vault`], for the key operation that holds the busy flag (it may block
    /// while the key waits for the person).
    pub fn device_vault<T>(
        &self,
        _busy: &DeviceGuard<'_>,
        f: impl FnOnce(&mut Vault) -> AppResult<T>,
    ) -> AppResult<T> {
        self.vault_access(f)
    }

    fn vault_access<T>(&self, f: impl FnOnce(&mut Vault) -> AppResult<T>) -> AppResult<T> {
        self.touch();
        let mut guard = relock(&self.vault);
        let vault = guard.as_mut().ok_or_else(AppError::locked)?;
        let out = f(vault);
        // Still holding the vault: the idle watcher cannot take it between the end and this touch.
        self.touch();
        drop(guard);
        out
    }

    pub fn device_busy(&self) -> bool {
        self.device_busy.load(Ordering::SeqCst)
    }

    /// Marks a key operation as running; `busy` if one already is.
    pub fn begin_device(&self) -> AppResult<DeviceGuard<'_>> {
        self.device_busy
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .map_err(|_| AppError::busy())?;
        self.touch();
        Ok(DeviceGuard { session: self })
    }

    /// Installs a freshly unlocked or created vault, locking any previous one.
    pub fn install(&self, vault: Vault) {
        self.take_handout();
        self.forget_presented();
        let previous = relock(&self.vault).replace(vault);
        if let Some(old) = previous {
            old.lock();
        }
        self.touch();
    }

    /// Locks the vault if it is unlocked. Returns whether there was one to lock.
    pub fn lock(&self) -> bool {
        self.take_handout();
        self.forget_presented();
        let taken = relock(&self.vault).take();
        match taken {
            Some(vault) => {
                vault.lock();
                true
            }
            None => false,
        }
    }

    /// Locks the vault if it has been idle for the timeout. Returns whether it locked it. A key
    /// operation in progress is activity: the person is at the key.
    pub fn lock_if_idle(&self) -> bool {
        if self.device_busy() {
            return false;
        }
        if self.idle_for() >= self.config.idle_timeout {
            // Shares presented on the unlock screen exist only while locked; none survive idleness.
            self.forget_presented();
        }
        let mut guard = relock(&self.vault);
        if self.device_busy() {
            return false;
        }
        if guard.is_none() || self.idle_for() < self.config.idle_timeout {
            return false;
        }
        if let Some(vault) = guard.take() {
            drop(guard);
            self.take_handout();
            vault.lock();
            return true;
        }
        false
    }

    /// Forgets the recovery shares presented on the unlock screen once nothing has happened for the
    /// idle time (the vault is locked then, so `lock_if_idle` does not apply). Returns whether there
    /// were any.
    pub fn forget_presented_if_idle(&self) -> bool {
        if self.device_busy() || self.idle_for() < self.config.idle_timeout {
            return false;
        }
        let mut presented = relock(&self.presented);
        let had = !presented.is_empty();
        presented.clear();
        had
    }

    /// Marks a vault creation as running; `false` if one already is.
    pub fn begin_create(&self) -> bool {
        self.creating
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    pub fn end_create(&self) {
        self.creating.store(false, Ordering::SeqCst);
    }
}

/// Checks often enough that the lock happens within about a second of the deadline.
fn watch_interval(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

pub fn spawn_idle_watcher<R: Runtime>(app: AppHandle<R>) -> std::io::Result<()> {
    let interval = watch_interval(app.state::<Session>().config().idle_timeout);
    std::thread::Builder::new()
        .name("custos-idle-lock".into())
        .spawn(move || loop {
            std::thread::sleep(interval);
            let session = app.state::<Session>();
            let reason = if session.lock_if_idle() {
                Some("idle")
            } else if session.forget_presented_if_idle() {
                // The recovery screen goes back to the unlock screen: its list is gone.
                Some("shares")
            } else {
                None
            };
            if let Some(reason) = reason {
                if let Err(err) = app.emit(EVENT_VAULT_LOCKED, LockedEvent { reason }) {
                    eprintln!("custos-app: could not emit {EVENT_VAULT_LOCKED}: {err}");
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_shares_are_forgotten_after_the_idle_time_and_on_lock() {
        let session = Session::new(Config {
            vault_path: PathBuf::from("/nonexistent/vault.db"),
            idle_timeout: Duration::from_secs(2),
            test_kdf_allowed: true,
            demo: true,
            prompt_timeout: Duration::from_secs(1),
        });
        let secret = custos_core::SecretKey::generate().expect("key");
        let (_, shares) = custos_core::sharing::split(&secret, 2, 3, [3; 8]).expect("split");
        session.present(shares[0].clone()).expect("first");
        assert!(session.present(shares[0].clone()).is_err(), "counts once");
        session.touch();
        assert!(!session.forget_presented_if_idle(), "activity keeps them");
        assert_eq!(session.presented().len(), 1);
        std::thread::sleep(Duration::from_millis(2200));
        assert!(session.forget_presented_if_idle(), "idle: forgotten");
        assert!(session.presented().is_empty());
        assert!(
            !session.forget_presented_if_idle(),
            "nothing left to forget"
        );
        session.present(shares[1].clone()).expect("again");
        session.lock();
        assert!(session.presented().is_empty(), "a lock forgets them");
    }

    #[test]
    fn interval_is_bounded() {
        assert_eq!(
            watch_interval(Duration::from_secs(300)),
            Duration::from_secs(1)
        );
        assert_eq!(
            watch_interval(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        assert_eq!(
            watch_interval(Duration::from_millis(100)),
            Duration::from_millis(100)
        );
    }
}
