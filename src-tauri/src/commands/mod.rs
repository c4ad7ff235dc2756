//! Thin `#[tauri::command]` functions over custos-core. No crypto here: every operation is the core's,
//! and none of them returns key material.

pub mod approvals;
pub mod audit;
pub mod ceremonies;
pub mod custodians;
pub mod device;
pub mod keys;
pub mod vault;
