//! The one error type the window sees: `{kind, message}`.
//!
//! `kind` is a stable machine name (the core's `Error::kind()` or one of the app's own kinds below);
//! `message` is the text shown to the security officer, taken from the core error's `Display`.

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AppError {
    pub kind: String,
    pub message: String,
}

impl AppError {
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        AppError {
            kind: kind.to_owned(),
            message: message.into(),
        }
    }

    /// A command that needs an unlocked vault was called while it is locked.
    pub fn locked() -> Self {
        AppError::new(
            "vault_locked",
            "The vault is locked. Unlock it to continue.",
        )
    }

    /// Another command arrived while a key operation waits for a touch or a PIN.
    pub fn busy() -> Self {
        AppError::new(
            "busy",
            "A hardware key operation is in progress: finish it (enter the PIN, touch the key) or cancel it first.",
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        AppError::new("internal", message)
    }
}

impl From<custos_core::Error> for AppError {
    fn from(err: custos_core::Error) -> Self {
        AppError {
            kind: err.kind().to_owned(),
            message: err.to_string(),
        }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.kind)
    }
}

impl std::error::Error for AppError {}

pub type AppResult<T> = Result<T, AppError>;
