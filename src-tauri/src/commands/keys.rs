//! Keys: list, create, detail, rotate, state changes, destroy, rotation policy.
//! Every result is metadata (names, states, dates, public keys); the core never returns secret material.

use std::time::Duration;

use custos_core::{parse_duration, KeyDetail, KeyState, KeySummary, KeyType};
use tauri::State;

use crate::error::AppResult;
use crate::session::Session;

/// "" or absent means "no rotation policy".
fn optional_duration(text: Option<String>) -> AppResult<Option<Duration>> {
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => Ok(Some(parse_duration(s)?)),
    }
}

#[tauri::command]
pub fn list_keys(session: State<'_, Session>) -> AppResult<Vec<KeySummary>> {
    session.with_vault(|v| v.list_keys())
}

#[tauri::command]
pub fn create_key(
    session: State<'_, Session>,
    name: String,
    key_type: String,
    rotate_every: Option<String>,
) -> AppResult<KeyDetail> {
    let ty = KeyType::parse(key_type.trim())?;
    let every = optional_duration(rotate_every)?;
    session.with_vault(|v| v.create_key(name.trim(), ty, every))
}

#[tauri::command]
pub fn key_detail(session: State<'_, Session>, name: String) -> AppResult<KeyDetail> {
    session.with_vault(|v| v.key_detail(&name))
}

#[tauri::command]
pub fn rotate_key(session: State<'_, Session>, name: String) -> AppResult<KeyDetail> {
    session.with_vault(|v| v.rotate_key(&name))
}

#[tauri::command]
pub fn set_key_state(
    session: State<'_, Session>,
    name: String,
    version: u32,
    state: String,
) -> AppResult<KeyDetail> {
    let state = KeyState::parse(&state)?;
    session.with_vault(|v| v.set_state(&name, version, state))
}

#[tauri::command]
pub fn destroy_version(
    session: State<'_, Session>,
    name: String,
    version: u32,
) -> AppResult<KeyDetail> {
    session.with_vault(|v| v.destroy_version(&name, version))
}

#[tauri::command]
pub fn set_rotation_policy(
    session: State<'_, Session>,
    name: String,
    every: Option<String>,
) -> AppResult<KeyDetail> {
    let every = optional_duration(every)?;
    session.with_vault(|v| v.set_rotation_policy(&name, every))
}
