//! The window's side of the hardware prompts: "Enter the PIN" and "Touch your key".
//!
//! The hardware backends call a [`Prompt`] from their worker thread while a key operation runs. The
//! window's prompt emits an event the UI turns into a dialog, and, for a PIN, blocks that worker until
//! the UI answers with the `submit_pin` command (or cancels, or [`Config::prompt_timeout`] passes,
//! which the backend reports as `pin_required`).
//!
//! Events (payloads never carry a PIN or key material):
//! - [`EVENT_PIN_REQUEST`] `{id, device, custodian, purpose: "enter" | "new", min_len, max_len}`
//! - [`EVENT_TOUCH`] `{device, custodian}`
//! - [`EVENT_PROMPT_DONE`] `{}`: the operation is over; take the dialog down.
//!
//! The PIN travels once, UI → Rust, in `submit_pin`, and is kept only as a zeroizing [`Pin`].
//!
//! [`Config::prompt_timeout`]: crate::config::Config::prompt_timeout

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use custos_core::hardware::Pin;
use custos_hardware::Prompt;
use serde::{Deserialize, Deserializer, Serialize};
use tauri::{AppHandle, Emitter, Manager, Runtime};
use zeroize::Zeroizing;

use crate::error::{AppError, AppResult};

pub const EVENT_PIN_REQUEST: &str = "custos://pin-request";
pub const EVENT_TOUCH: &str = "custos://touch";
pub const EVENT_PROMPT_DONE: &str = "custos://prompt-done";

/// What a PIN dialog asks for.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PinPurpose {
    /// The PIN already set on the key.
    Enter,
    /// A PIN for a new DEMO software key (the dialog asks for it twice).
    New,
}

/// The kind of key a prompt is for (PIN length rules differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Fido2,
    Piv,
}

impl KeyKind {
    fn pin_lengths(self) -> (u8, u8) {
        match self {
            KeyKind::Fido2 => (4, 63),
            KeyKind::Piv => (6, 8),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PinRequest {
    pub id: u64,
    pub device: String,
    pub custodian: Option<String>,
    pub purpose: PinPurpose,
    pub min_len: u8,
    pub max_len: u8,
}

#[derive(Debug, Clone, Serialize)]
pub struct TouchRequest {
    pub device: String,
    pub custodian: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PromptDone {}

/// A PIN as it arrives from the UI: straight into zeroizing memory, never printed.
pub struct PinInput(Zeroizing<String>);

impl PinInput {
    pub fn into_pin(mut self) -> Pin {
        // Moves the buffer (no copy) into `Pin`, which zeroizes it on drop.
        Pin::new(std::mem::take(&mut *self.0))
    }
}

impl<'de> Deserialize<'de> for PinInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| PinInput(Zeroizing::new(s)))
    }
}

impl std::fmt::Debug for PinInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinInput(<redacted>)")
    }
}

struct Waiting {
    id: u64,
    reply: SyncSender<Option<Pin>>,
}

/// The PIN request in flight (at most one: key operations run one at a time) and its answer channel.
/// Managed Tauri state.
pub struct PromptHub {
    next_id: AtomicU64,
    waiting: Mutex<Option<Waiting>>,
    timeout: Duration,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl PromptHub {
    pub fn new(timeout: Duration) -> Self {
        PromptHub {
            next_id: AtomicU64::new(1),
            waiting: Mutex::new(None),
            timeout,
        }
    }

    /// Registers a PIN request, lets `announce` tell the UI, and waits for the answer. `None`:
    /// cancelled, timed out, or superseded.
    fn ask(&self, announce: impl FnOnce(u64)) -> Option<Pin> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (reply, answer) = mpsc::sync_channel(1);
        // A request still registered belongs to an operation that is over: its sender drops here.
        *relock(&self.waiting) = Some(Waiting { id, reply });
        announce(id);
        // Timed out or superseded (the sender dropped): no PIN.
        let result: Option<Pin> = answer.recv_timeout(self.timeout).unwrap_or_default();
        let mut waiting = relock(&self.waiting);
        if waiting.as_ref().is_some_and(|w| w.id == id) {
            *waiting = None;
        }
        result
    }

    /// The UI's answer to request `id`: a PIN, or `None` to cancel.
    pub fn answer(&self, id: u64, pin: Option<Pin>) -> AppResult<()> {
        let waiting = relock(&self.waiting).take_if(|w| w.id == id);
        match waiting {
            Some(w) => {
                // The receiver is gone only if the request just timed out.
                let _ = w.reply.try_send(pin);
                Ok(())
            }
            None => Err(AppError::new(
                "no_pin_request",
                "No key is waiting for this PIN any more (the request was cancelled or timed out): start the operation again.",
            )),
        }
    }

    /// Cancels whatever PIN request is waiting (the window is closing).
    pub fn cancel_all(&self) {
        if let Some(w) = relock(&self.waiting).take() {
            let _ = w.reply.try_send(None);
        }
    }
}

/// The [`Prompt`] the window hands to a hardware backend for one key.
pub struct WindowPrompt<R: Runtime> {
    app: AppHandle<R>,
    custodian: Option<String>,
    kind: KeyKind,
    /// The PIN just chosen for a new demo key: answers the key's first PIN request without asking
    /// the person a second time.
    chosen: Mutex<Option<Pin>>,
}

impl<R: Runtime> WindowPrompt<R> {
    pub fn new(app: &AppHandle<R>, custodian: Option<&str>, kind: KeyKind) -> Self {
        WindowPrompt {
            app: app.clone(),
            custodian: custodian.map(str::to_owned),
            kind,
            chosen: Mutex::new(None),
        }
    }

    pub fn into_arc(self) -> Arc<dyn Prompt> {
        Arc::new(self)
    }

    /// Remember a PIN the person has just chosen for this (new demo) key.
    pub fn with_chosen(self, pin: Pin) -> Self {
        *relock(&self.chosen) = Some(pin);
        self
    }

    fn emit<S: Serialize + Clone>(&self, event: &str, payload: S) {
        if let Err(err) = self.app.emit(event, payload) {
            eprintln!("custos-app: could not emit {event}: {err}");
        }
    }

    /// Asks the person for a PIN through the window's dialog.
    pub fn ask(&self, device: &str, purpose: PinPurpose) -> Option<Pin> {
        let (min_len, max_len) = self.kind.pin_lengths();
        let hub = self.app.state::<PromptHub>();
        hub.ask(|id| {
            self.emit(
                EVENT_PIN_REQUEST,
                PinRequest {
                    id,
                    device: device.to_owned(),
                    custodian: self.custodian.clone(),
                    purpose,
                    min_len,
                    max_len,
                },
            )
        })
    }

    /// Takes the dialog down.
    pub fn finish(&self) {
        self.emit(EVENT_PROMPT_DONE, PromptDone {});
    }
}

impl<R: Runtime> Prompt for WindowPrompt<R> {
    fn pin(&self, device: &str) -> Option<Pin> {
        if let Some(pin) = relock(&self.chosen).take() {
            return Some(pin);
        }
        self.ask(device, PinPurpose::Enter)
    }

    fn touch(&self, device: &str) {
        self.emit(
            EVENT_TOUCH,
            TouchRequest {
                device: device.to_owned(),
                custodian: self.custodian.clone(),
            },
        );
    }

    fn done(&self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_reaches_the_waiting_request_only() {
        let hub = Arc::new(PromptHub::new(Duration::from_secs(5)));
        let (tx, rx) = mpsc::channel();
        let h = hub.clone();
        let worker = std::thread::spawn(move || {
            h.ask(|id| tx.send(id).expect("announce"))
                .map(|p| p.expose().to_owned())
        });
        let id = rx.recv().expect("announced");
        assert_eq!(
            hub.answer(id + 1, Some(Pin::new("0000".into())))
                .unwrap_err()
                .kind,
            "no_pin_request"
        );
        hub.answer(id, Some(Pin::new("4321".into())))
            .expect("answered");
        assert_eq!(worker.join().expect("worker").as_deref(), Some("4321"));
        // Answered once: a second answer finds nothing waiting.
        assert_eq!(hub.answer(id, None).unwrap_err().kind, "no_pin_request");
    }

    #[test]
    fn cancel_and_timeout_give_no_pin() {
        let hub = Arc::new(PromptHub::new(Duration::from_millis(200)));
        assert!(hub.ask(|_| {}).is_none(), "timed out");
        let h = hub.clone();
        let (tx, rx) = mpsc::channel();
        let worker = std::thread::spawn(move || h.ask(|id| tx.send(id).expect("announce")));
        let id = rx.recv().expect("announced");
        hub.answer(id, None).expect("cancelled");
        assert!(worker.join().expect("worker").is_none());
    }

    #[test]
    fn pin_input_is_redacted() {
        let input: PinInput = serde_json::from_str("\"123456\"").expect("parse");
        assert_eq!(format!("{input:?}"), "PinInput(<redacted>)");
        assert_eq!(input.into_pin().expose(), "123456");
    }
}
