//! How a hardware backend talks to the person: ask for a PIN, say "touch your key", and take the
//! prompt down again. The CLI prints and reads from the terminal; the window shows dialogs.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use custos_core::hardware::Pin;
use webauthn_authenticator_rs::types::{CableRequestType, CableState, EnrollSampleStatus};
use webauthn_authenticator_rs::ui::UiCallback;

/// What a shell provides to the hardware backends.
///
/// The methods are called from a worker thread while the device operation is in progress, so they
/// may block (a PIN dialog) but must not wait for the operation itself to finish.
pub trait Prompt: Send + Sync {
    /// Ask for the PIN of `device` (e.g. "FIDO2 key (USB)", "DEMO software FIDO2 key"). `None`: the
    /// person cancelled, and the operation fails with [`custos_core::Error::PinRequired`].
    fn pin(&self, device: &str) -> Option<Pin>;
    /// Tell the person to touch `device` now. Called once per operation that waits for a touch (the
    /// device's own repeated "still waiting" signals are folded into one call); demo devices call it
    /// too and approve at once.
    fn touch(&self, device: &str);
    /// The operation is over (done, failed or timed out): take down any PIN or touch prompt.
    fn done(&self) {}
}

/// Adapts a [`Prompt`] to webauthn-authenticator-rs's [`UiCallback`] for one operation.
///
/// The crate takes the PIN as a plain `String`, which it keeps until the operation ends and does not
/// zeroize: that copy is outside Custos's control.
pub(crate) struct PromptUi {
    prompt: Arc<dyn Prompt>,
    device: String,
    touch_shown: AtomicBool,
}

impl PromptUi {
    pub fn new(prompt: Arc<dyn Prompt>, device: &str) -> Self {
        Self {
            prompt,
            device: device.to_owned(),
            touch_shown: AtomicBool::new(false),
        }
    }
}

impl fmt::Debug for PromptUi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromptUi")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl UiCallback for PromptUi {
    fn request_pin(&self) -> Option<String> {
        self.prompt
            .pin(&self.device)
            .map(|pin| pin.expose().to_owned())
    }

    /// The USB transport calls this on every "user presence needed" keepalive (every ~100 ms).
    fn request_touch(&self) {
        if !self.touch_shown.swap(true, Ordering::SeqCst) {
            self.prompt.touch(&self.device);
        }
    }

    fn processing(&self) {}

    fn fingerprint_enrollment_feedback(&self, _: u32, _: Option<EnrollSampleStatus>) {}

    fn cable_qr_code(&self, _: CableRequestType, _: String) {}

    fn dismiss_qr_code(&self) {}

    fn cable_status_update(&self, _: CableState) {}
}
