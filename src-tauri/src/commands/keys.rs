//! Keys: list, create, detail, rotate, state changes, destroy, rotation policy.
//! Every result is metadata (names, states, dates, public keys); the core never returns secret material.
//!
//! Rotating, changing a state, destroying and changing the policy are asked through the core's
//! `perform` as the acting custodian, with their key's touch when the vault has custodians: the result
//! is `{done: detail}` or, when the rules ask for approvals, `{pending: request}`, with the key as it
//! is now.

use std::time::Duration;

use custos_core::{parse_duration, KeyDetail, KeyState, KeySummary, KeyType, Operation};
use tauri::{AppHandle, Runtime, State};

use crate::commands::device::{with_key, OpResult};
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

/// Asks for `op` on key `name` as the acting custodian and returns the outcome with the key.
async fn key_operation<R: Runtime>(
    app: AppHandle<R>,
    name: String,
    op: Operation,
) -> AppResult<OpResult> {
    with_key(app, move |k| {
        let mut result = OpResult::from(k.perform(op)?);
        result.key = Some(k.vault(|v| v.key_detail(&name))?);
        Ok(result)
    })
    .await
}

#[tauri::command]
pub async fn rotate_key<R: Runtime>(app: AppHandle<R>, name: String) -> AppResult<OpResult> {
    let op = Operation::KeyRotate { key: name.clone() };
    key_operation(app, name, op).await
}

#[tauri::command]
pub async fn set_key_state<R: Runtime>(
    app: AppHandle<R>,
    name: String,
    version: u32,
    state: String,
) -> AppResult<OpResult> {
    let state = KeyState::parse(&state)?;
    let op = Operation::KeySetState {
        key: name.clone(),
        version,
        state,
    };
    key_operation(app, name, op).await
}

#[tauri::command]
pub async fn destroy_version<R: Runtime>(
    app: AppHandle<R>,
    name: String,
    version: u32,
) -> AppResult<OpResult> {
    let op = Operation::KeySetState {
        key: name.clone(),
        version,
        state: KeyState::Destroyed,
    };
    key_operation(app, name, op).await
}

#[tauri::command]
pub async fn set_rotation_policy<R: Runtime>(
    app: AppHandle<R>,
    name: String,
    every: Option<String>,
) -> AppResult<OpResult> {
    let every = optional_duration(every)?;
    let op = Operation::KeyPolicy {
        key: name.clone(),
        rotate_every_secs: every.map(|d| d.as_secs()),
    };
    key_operation(app, name, op).await
}
