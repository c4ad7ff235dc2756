//! Custos desktop window: builds the Tauri app around custos-core.
//!
//! - [`session`] holds the unlocked vault (and only there), with the idle auto-lock.
//! - [`commands`] are thin IPC commands; errors reach the window as [`error::AppError`] `{kind, message}`.
//! - [`prompt`] turns the hardware keys' "enter PIN" / "touch" callbacks into window events and
//!   waits for the PIN dialog's answer; [`devices`] opens real keys or, in demo mode, the software
//!   twins next to the vault.
//! - No cryptography happens in this crate, and no key material ever crosses the IPC boundary.

pub mod commands;
pub mod config;
pub mod devices;
pub mod error;
pub mod prompt;
pub mod session;
pub mod strength;

use tauri::{Emitter, Manager, Runtime};

use crate::config::Config;
use crate::prompt::PromptHub;
use crate::session::{LockedEvent, Session, EVENT_VAULT_LOCKED};

/// Registers the state, the commands and the idle watcher on a builder (also used by the tests).
pub fn app_builder<R: Runtime>(builder: tauri::Builder<R>, config: Config) -> tauri::Builder<R> {
    let prompt_timeout = config.prompt_timeout;
    builder
        .manage(Session::new(config))
        .manage(PromptHub::new(prompt_timeout))
        .invoke_handler(tauri::generate_handler![
            commands::vault::app_status,
            commands::vault::passphrase_strength,
            commands::vault::create_vault,
            commands::vault::unlock,
            commands::vault::lock,
            commands::vault::vault_info,
            commands::keys::list_keys,
            commands::keys::create_key,
            commands::keys::key_detail,
            commands::keys::rotate_key,
            commands::keys::set_key_state,
            commands::keys::destroy_version,
            commands::keys::set_rotation_policy,
            commands::audit::audit_entries,
            commands::audit::audit_verify,
            commands::custodians::list_custodians,
            commands::custodians::custody_status,
            commands::custodians::act_as,
            commands::custodians::add_custodian,
            commands::custodians::change_roles,
            commands::custodians::enroll_key,
            commands::custodians::revoke_authenticator,
            commands::custodians::set_rule,
            commands::custodians::activate_rules,
            commands::approvals::list_requests,
            commands::approvals::approve_request,
            commands::device::submit_pin,
            commands::ceremonies::escrow_status,
            commands::ceremonies::list_ceremonies,
            commands::ceremonies::run_escrow,
            commands::ceremonies::reveal_share,
            commands::ceremonies::confirm_share,
            commands::ceremonies::write_share_file,
            commands::ceremonies::finish_handout,
            commands::ceremonies::record_deviation,
            commands::ceremonies::drill_share,
            commands::ceremonies::ceremony_transcript,
            commands::ceremonies::export_transcript,
            commands::ceremonies::present_share,
            commands::ceremonies::withdraw_share,
            commands::ceremonies::forget_presented_shares,
            commands::ceremonies::recover_vault,
        ])
        .setup(|app| {
            session::spawn_idle_watcher(app.handle().clone())?;
            Ok(())
        })
}

pub fn run() {
    let config = match Config::from_process() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("custos-app: {}", err.message);
            std::process::exit(2);
        }
    };
    let app = match app_builder(tauri::Builder::default(), config).build(tauri::generate_context!())
    {
        Ok(app) => app,
        Err(err) => {
            eprintln!("custos-app: could not start the window: {err}");
            std::process::exit(1);
        }
    };
    app.run(|handle, event| {
        if let tauri::RunEvent::Exit = event {
            // A key operation waiting for a PIN ends now rather than at its time-out.
            handle.state::<PromptHub>().cancel_all();
            // Lock (audited, zeroized) rather than just dropping the session on quit.
            if handle.state::<Session>().lock() {
                let _ = handle.emit(EVENT_VAULT_LOCKED, LockedEvent { reason: "exit" });
            }
        }
    });
}

#[cfg(test)]
mod tests;
