//! The audit log: entries and chain verification.

use custos_core::{AuditEntry, AuditReport};
use tauri::State;

use crate::error::AppResult;
use crate::session::Session;

#[tauri::command]
pub fn audit_entries(session: State<'_, Session>) -> AppResult<Vec<AuditEntry>> {
    session.with_vault(|v| v.audit_entries())
}

#[tauri::command]
pub fn audit_verify(session: State<'_, Session>) -> AppResult<AuditReport> {
    session.with_vault(|v| v.audit_verify())
}
