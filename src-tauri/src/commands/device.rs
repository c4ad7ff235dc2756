//! Hardware-key operations: the PIN answer from the dialog, and how the other commands run an
//! operation that waits for a key (a blocking thread, the busy flag, the acting custodian's key).

use custos_core::hardware::Fido2Client;
use custos_core::policy::OpKind;
use custos_core::{Error, KeyDetail, Operation, Performed, RequestView, Vault};
use serde::Serialize;
use tauri::{AppHandle, Manager, Runtime, State};

use crate::devices::Devices;
use crate::error::{AppError, AppResult};
use crate::prompt::{PinInput, PromptHub};
use crate::session::{DeviceGuard, Session};

/// The PIN dialog's answer to request `id`: the PIN, or nothing to cancel.
#[tauri::command]
pub fn submit_pin(hub: State<'_, PromptHub>, id: u64, pin: Option<PinInput>) -> AppResult<()> {
    hub.answer(id, pin.map(PinInput::into_pin))
}

/// The optional key as the core takes it.
pub fn dev(key: &mut Option<Box<dyn Fido2Client>>) -> Option<&mut dyn Fido2Client> {
    match key {
        Some(k) => Some(k.as_mut()),
        None => None,
    }
}

/// What asking for an operation led to: `{"done": detail}` or `{"pending": request}`, and for key
/// operations the key as it is now.
#[derive(Debug, Serialize)]
pub struct OpResult {
    #[serde(flatten)]
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyDetail>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It ran; the text is its audit detail.
    Done(String),
    /// It waits for approvals.
    Pending(RequestView),
}

impl From<Performed> for Outcome {
    fn from(p: Performed) -> Self {
        match p {
            Performed::Done { detail } => Outcome::Done(detail),
            Performed::Pending { request } => Outcome::Pending(request),
        }
    }
}

impl From<Performed> for OpResult {
    fn from(p: Performed) -> Self {
        OpResult {
            outcome: p.into(),
            key: None,
        }
    }
}

/// One key operation in progress: the session (busy), and the devices to use.
pub struct KeyOp<'a, R: Runtime> {
    session: &'a Session,
    busy: DeviceGuard<'a>,
    pub devices: Devices<R>,
}

impl<R: Runtime> KeyOp<'_, R> {
    /// The unlocked vault (blocks while a key answers; other commands get `busy` meanwhile).
    pub fn vault<T>(&self, f: impl FnOnce(&mut Vault) -> Result<T, Error>) -> AppResult<T> {
        self.session
            .device_vault(&self.busy, |v| f(v).map_err(AppError::from))
    }

    /// The acting custodian and the device descriptions of their active FIDO2 keys.
    fn acting(&self) -> AppResult<Option<Acting>> {
        self.vault(|v| {
            let Some(name) = v.acting_as().map(str::to_owned) else {
                return Ok(None);
            };
            let keys = v
                .custodians()?
                .into_iter()
                .filter(|c| c.name == name)
                .flat_map(|c| c.authenticators)
                .filter(|a| a.kind == "fido2" && a.revoked.is_none())
                .map(|a| a.device.description)
                .collect();
            Ok(Some(Acting { name, keys }))
        })
    }

    fn key_of(&self, me: Acting) -> AppResult<Box<dyn Fido2Client>> {
        if me.keys.is_empty() {
            return Err(Error::NoAuthenticator(me.name).into());
        }
        Ok(self.devices.presence(&me.name, &me.keys)?)
    }

    /// The acting custodian's key, for an operation of `kind` that needs their touch. No key when no
    /// touch is needed (no custodians yet, or an operation without presence), when no one is acting,
    /// or when they have no key: the core then refuses in its own order (who, role, then touch).
    pub fn requester(&self, kind: OpKind) -> AppResult<Requester> {
        let guarded = self.vault(|v| Ok(!v.custody_status()?.unguarded))?;
        let none = Requester {
            key: None,
            keyless: None,
        };
        if !guarded || !kind.needs_presence() {
            return Ok(none);
        }
        match self.acting()? {
            None => Ok(none),
            Some(me) if me.keys.is_empty() => Ok(Requester {
                key: None,
                keyless: Some(me.name),
            }),
            Some(me) => Ok(Requester {
                key: Some(self.key_of(me)?),
                keyless: None,
            }),
        }
    }

    /// Asks the core for `op` as the acting custodian, with their key's touch when it needs one.
    pub fn perform(&self, op: Operation) -> AppResult<Performed> {
        let mut req = self.requester(op.kind())?;
        self.vault(|v| v.perform(op, req.dev()))
            .map_err(|e| req.explain(e))
    }

    /// The acting custodian's key if they have one (an enrolment's requester touch: their very first
    /// key needs none).
    pub fn acting_key_if_enrolled(&self) -> AppResult<Option<Box<dyn Fido2Client>>> {
        match self.acting()? {
            Some(me) if !me.keys.is_empty() => self.key_of(me).map(Some),
            _ => Ok(None),
        }
    }

    /// The acting custodian's key, which must exist (approving).
    pub fn acting_key(&self) -> AppResult<Box<dyn Fido2Client>> {
        match self.acting()? {
            None => Err(Error::IdentityRequired.into()),
            Some(me) => self.key_of(me),
        }
    }
}

/// The requester's key for one operation.
pub struct Requester {
    key: Option<Box<dyn Fido2Client>>,
    /// The acting custodian, who has no key to touch with.
    keyless: Option<String>,
}

impl Requester {
    pub fn dev(&mut self) -> Option<&mut dyn Fido2Client> {
        dev(&mut self.key)
    }

    /// The core's "no key was offered", for someone who has no key at all, reads better as "enrol
    /// one first".
    pub fn explain(&self, e: AppError) -> AppError {
        match &self.keyless {
            Some(name) if e.kind == "assertion_refused" => {
                Error::NoAuthenticator(name.clone()).into()
            }
            _ => e,
        }
    }
}

struct Acting {
    name: String,
    /// Device descriptions of their active FIDO2 keys.
    keys: Vec<String>,
}

/// Runs `op` on a blocking thread (never the UI thread), as the only key operation in progress. The
/// devices are the demo twins when the window runs with `--demo` or the vault is a demo vault.
pub async fn with_key<R, T, F>(app: AppHandle<R>, op: F) -> AppResult<T>
where
    R: Runtime,
    T: Send + 'static,
    F: for<'a> FnOnce(&KeyOp<'a, R>) -> AppResult<T> + Send + 'static,
{
    tauri::async_runtime::spawn_blocking(move || {
        let session = app.state::<Session>();
        let busy = session.begin_device()?;
        let demo = session.config().demo
            || session.device_vault(&busy, |v| Ok(v.custody_status()?.demo))?;
        let ctx = KeyOp {
            session: &session,
            busy,
            devices: Devices::new(&app, session.vault_path(), demo),
        };
        op(&ctx)
    })
    .await
    .map_err(|e| AppError::internal(format!("the key operation stopped: {e}")))?
}
