//! Approvals: the pending and past requests, and approving one as the acting custodian (with a touch
//! of their key). The core counts each approver once, never the requester, and runs the operation in
//! the requester's name when the rule is met.

use custos_core::RequestView;
use tauri::{AppHandle, Runtime, State};

use crate::commands::device::{with_key, OpResult};
use crate::error::AppResult;
use crate::session::Session;

/// Every request, oldest first (expired ones are marked so on the way).
#[tauri::command]
pub fn list_requests(session: State<'_, Session>) -> AppResult<Vec<RequestView>> {
    session.with_vault(|v| v.requests())
}

/// Approve request `id` as the acting custodian: their key asks for its PIN and a touch.
#[tauri::command]
pub async fn approve_request<R: Runtime>(app: AppHandle<R>, id: String) -> AppResult<OpResult> {
    let id = id.trim().to_owned();
    with_key(app, move |k| {
        // Refuse an unknown or closed request before anyone is asked for a PIN.
        k.vault(|v| {
            let known = v
                .requests()?
                .into_iter()
                .find(|r| r.id == id.to_ascii_lowercase());
            match known {
                None => Err(custos_core::Error::NoSuchRequest(id.clone())),
                Some(_) => Ok(()),
            }
        })?;
        let mut key = k.acting_key()?;
        Ok(k.vault(|v| v.approve(&id, key.as_mut()))?.into())
    })
    .await
}
