//! The suite lives in tests/.
