//! The unlocked vault lives here, in Tauri state, and nowhere else.
//!
//! Every command that touches the vault goes through [`Session::with_vault`], which counts as activity.
//! A background thread ([`spawn_idle_watcher`]) locks the vault once no command has run for the idle
//! timeout and emits `vault-locked` so the window returns to the unlock screen.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use custos_core::Vault;
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager, Runtime};

use crate::config::Config;
use crate::error::{AppError, AppResult};

/// Event emitted whenever the vault gets locked (by the Lock button, by idle time-out, or on exit).
pub const EVENT_VAULT_LOCKED: &str = "vault-locked";

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LockedEvent {
    /// "user" | "idle" | "exit"
    pub reason: &'static str,
}

pub struct Session {
    config: Config,
    vault: Mutex<Option<Vault>>,
    last_activity: Mutex<Instant>,
    /// Set while `Vault::init` runs, so a second create cannot race it.
    creating: AtomicBool,
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
        }
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

    /// Runs `f` on the unlocked vault; counts as activity. Fails with `vault_locked` when locked.
    pub fn with_vault<T>(
        &self,
        f: impl FnOnce(&mut Vault) -> Result<T, custos_core::Error>,
    ) -> AppResult<T> {
        self.touch();
        let mut guard = relock(&self.vault);
        let vault = guard.as_mut().ok_or_else(AppError::locked)?;
        let out = f(vault).map_err(AppError::from);
        drop(guard);
        self.touch();
        out
    }

    /// Installs a freshly unlocked or created vault, locking any previous one.
    pub fn install(&self, vault: Vault) {
        let previous = relock(&self.vault).replace(vault);
        if let Some(old) = previous {
            old.lock();
        }
        self.touch();
    }

    /// Locks the vault if it is unlocked. Returns whether there was one to lock.
    pub fn lock(&self) -> bool {
        let taken = relock(&self.vault).take();
        match taken {
            Some(vault) => {
                vault.lock();
                true
            }
            None => false,
        }
    }

    /// Locks the vault if it has been idle for the timeout. Returns whether it locked it.
    pub fn lock_if_idle(&self) -> bool {
        let mut guard = relock(&self.vault);
        if guard.is_none() || self.idle_for() < self.config.idle_timeout {
            return false;
        }
        if let Some(vault) = guard.take() {
            drop(guard);
            vault.lock();
            return true;
        }
        false
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
            let locked = app.state::<Session>().lock_if_idle();
            if locked {
                if let Err(err) = app.emit(EVENT_VAULT_LOCKED, LockedEvent { reason: "idle" }) {
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
