//! FIDO2 through webauthn-authenticator-rs's CTAP2 client: one client type, [`Ctap2Key`], for a real
//! key over USB ([`open_usb`], feature `usb`) and for the demo twin ([`open_demo`]). The difference
//! between demo and real is the device (the `Token`), not the code.
//!
//! Every operation runs `CtapAuthenticator::new(token, &ui)` (CTAPHID init where the transport has
//! one, then getInfo) and `WebauthnAuthenticator::do_registration` / `do_authentication` with origin
//! [`ORIGIN`], on a worker thread of its own: the crate calls `futures::executor::block_on` inside,
//! so it must not run on an async executor, and over USB it waits on tokio timers, so the worker
//! enters a small tokio runtime owned by the key. A watchdog bounds every operation (the options'
//! timeout plus a margin), so a key that stops answering cannot hang the caller.
//!
//! # PIN policy
//!
//! Custos requires a PIN on every FIDO2 key (user verification "required"). A key whose getInfo does
//! not report `clientPin: true` is refused before anything is sent to it, with
//! [`Error::Device`] saying how to set a PIN (`ykman fido access change-pin`); nothing is created on
//! the key. The vault's relying party refuses an answer without UV as well, with the same advice.
//!
//! # Errors
//!
//! | from the key / client | [`Error`] |
//! |---|---|
//! | `PIN_INVALID` | [`Error::WrongPin`] with the retries the key reports afterwards |
//! | `PIN_BLOCKED` | [`Error::PinBlocked`]`("FIDO2 key")` |
//! | `PIN_AUTH_BLOCKED` (three wrong PINs in a row) | [`Error::Device`]: unplug and replug the key (no reset needed) |
//! | `USER_ACTION_TIMEOUT`, `ACTION_TIMEOUT`, `KEEPALIVE_CANCEL` | [`Error::NoTouch`] |
//! | PIN prompt cancelled | [`Error::PinRequired`] |
//! | no PIN set / UV required / `PIN_NOT_SET` / `PUAT_REQUIRED` | [`Error::Device`] with the set-a-PIN advice |
//! | no token at all | [`Error::NoDevice`]`("FIDO2 key")` |
//! | anything else | [`Error::Device`] with the client's message |
//!
//! `PIN_AUTH_BLOCKED` is deliberately not mapped to [`Error::PinBlocked`]: that message advises a
//! PUK or a FIDO2 reset, and a reset would destroy every credential on the key when a replug is all
//! that is needed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use custos_core::hardware::{DeviceIdentity, Fido2Client, Pin, ORIGIN};
use custos_core::{Error, Result};
use custos_ctap2_twin::{Config, SoftCtap2Device};
use serde_cbor_2::Value;
use url::Url;
use webauthn_authenticator_rs::ctap2::{CtapAuthenticator, GetInfoResponse};
use webauthn_authenticator_rs::error::{CtapError, WebauthnCError};
use webauthn_authenticator_rs::transport::Token;
use webauthn_authenticator_rs::ui::UiCallback;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs_proto::{
    AuthenticatorTransport, CreationChallengeResponse, PublicKeyCredential,
    RegisterPublicKeyCredential, RequestChallengeResponse,
};

use crate::prompt::{Prompt, PromptUi};

/// What the person is told when a key has no PIN.
pub const NO_PIN_MESSAGE: &str = "this FIDO2 key has no PIN: Custos requires one on every key. \
     Set one (YubiKey: `ykman fido access change-pin`; other keys: the vendor's tool or the \
     system's security-key settings), then try again; nothing was done";

const NO_PIN_SUPPORT_MESSAGE: &str = "this FIDO2 key cannot hold a PIN (no clientPIN support), \
     and Custos requires one on every key: use another FIDO2 key; nothing was done";

/// The description of every demo FIDO2 key (also in [`DeviceIdentity::description`]).
pub const DEMO_FIDO2_DESCRIPTION: &str = "DEMO software FIDO2 key — not hardware";

/// How long getInfo (and CTAPHID init) may take when a key is opened.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// An operation whose options carry no timeout.
const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(60);
/// Added to the options' timeout before the watchdog gives up on the key (a key times out a touch
/// on its own, after ~30 s on a YubiKey).
const WATCHDOG_MARGIN: Duration = Duration::from_secs(15);
const WATCHDOG_MAX: Duration = Duration::from_secs(300);

const CMD_CLIENT_PIN: u8 = 0x06;
const SUB_GET_PIN_RETRIES: i128 = 0x01;

// ---------------------------------------------------------------------------------------------
// The token, shared between the key and the client of one operation.

/// The token and what was learnt from its answers.
struct Link<T> {
    token: futures::lock::Mutex<T>,
    transport: AuthenticatorTransport,
    /// PIN retries reported by the key (getPinRetries), for [`Error::WrongPin`].
    retries: Mutex<Option<u32>>,
    /// The last transport-level failure, to explain a client that gave up.
    last_failure: Mutex<Option<String>>,
}

impl<T: Token> Link<T> {
    fn new(token: T) -> Self {
        let transport = token.get_transport();
        Self {
            token: futures::lock::Mutex::new(token),
            transport,
            retries: Mutex::new(None),
            last_failure: Mutex::new(None),
        }
    }

    fn set_retries(&self, r: Option<u32>) {
        *self.retries.lock().unwrap_or_else(|e| e.into_inner()) = r;
    }

    fn retries(&self) -> Option<u32> {
        *self.retries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_failure(&self, f: Option<String>) {
        *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = f;
    }

    fn failure(&self) -> Option<String> {
        self.last_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What `CtapAuthenticator` holds for one operation: a handle on the key's token. The token itself
/// stays with the [`Ctap2Key`] across operations.
struct Shared<T> {
    link: Arc<Link<T>>,
}

impl<T> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Shared(<token>)")
    }
}

/// `{0x03: retries}` from a getPinRetries answer.
fn parse_retries(response: &[u8]) -> Option<u32> {
    match serde_cbor_2::from_slice::<Value>(response).ok()? {
        Value::Map(m) => match m.get(&Value::Integer(0x03))? {
            Value::Integer(n) => u32::try_from(*n).ok(),
            _ => None,
        },
        _ => None,
    }
}

/// The clientPIN subcommand and protocol of a command, if it is a clientPIN command.
fn client_pin_request(cmd: &[u8]) -> Option<(Option<Value>, i128)> {
    let (&code, body) = cmd.split_first()?;
    if code != CMD_CLIENT_PIN {
        return None;
    }
    let Value::Map(m) = serde_cbor_2::from_slice::<Value>(body).ok()? else {
        return None;
    };
    let sub = match m.get(&Value::Integer(0x02))? {
        Value::Integer(s) => *s,
        _ => return None,
    };
    Some((m.get(&Value::Integer(0x01)).cloned(), sub))
}

#[async_trait]
impl<T: Token> Token for Shared<T> {
    type Id = T::Id;

    fn get_transport(&self) -> AuthenticatorTransport {
        self.link.transport.clone()
    }

    async fn transmit_raw<U>(&mut self, cmd: &[u8], ui: &U) -> Result<Vec<u8>, WebauthnCError>
    where
        U: UiCallback,
    {
        let mut token = self.link.token.lock().await;
        let result = token.transmit_raw(cmd, ui).await;
        let pin_request = client_pin_request(cmd);
        match (&result, pin_request) {
            (Ok(resp), Some((_, SUB_GET_PIN_RETRIES))) => {
                self.link.set_retries(parse_retries(resp))
            }
            (
                Err(WebauthnCError::Ctap(
                    CtapError::Ctap2PinInvalid | CtapError::Ctap2PinAuthBlocked,
                )),
                Some((protocol, _)),
            ) => {
                // The PIN was refused: ask the key how many tries are left (getPinRetries does not
                // cost one). Without an answer the count stays unknown.
                let mut query = std::collections::BTreeMap::new();
                if let Some(p) = protocol {
                    query.insert(Value::Integer(0x01), p);
                }
                query.insert(Value::Integer(0x02), Value::Integer(SUB_GET_PIN_RETRIES));
                let retries = match serde_cbor_2::to_vec(&Value::Map(query)) {
                    Ok(body) => {
                        let mut q = vec![CMD_CLIENT_PIN];
                        q.extend(body);
                        token
                            .transmit_raw(&q, ui)
                            .await
                            .ok()
                            .and_then(|r| parse_retries(&r))
                    }
                    Err(_) => None,
                };
                self.link.set_retries(retries);
            }
            (Err(WebauthnCError::Ctap(_)), _) | (Ok(_), _) => {}
            (Err(e), _) => self.link.set_failure(Some(e.to_string())),
        }
        result
    }

    async fn cancel(&mut self) -> Result<(), WebauthnCError> {
        self.link.token.lock().await.cancel().await
    }

    async fn init(&mut self) -> Result<(), WebauthnCError> {
        let r = self.link.token.lock().await.init().await;
        if let Err(e) = &r {
            self.link.set_failure(Some(e.to_string()));
        }
        r
    }

    async fn close(&mut self) -> Result<(), WebauthnCError> {
        self.link.token.lock().await.close().await
    }
}

// ---------------------------------------------------------------------------------------------
// The runtime and the worker thread.

/// A small tokio runtime for the client's timers. Shut down in the background when dropped, so that
/// dropping a key inside an async context (the window) cannot panic.
struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    fn new() -> Result<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("custos-ctap2")
            .enable_time()
            .build()
            .map(|rt| Runtime(Some(rt)))
            .map_err(|e| Error::Device(format!("cannot start the FIDO2 client: {e}")))
    }

    fn handle(&self) -> Result<tokio::runtime::Handle> {
        self.0
            .as_ref()
            .map(|rt| rt.handle().clone())
            .ok_or_else(|| Error::Internal("FIDO2 runtime already shut down".into()))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Why a worker gave up.
enum Outcome<R> {
    Done(R),
    /// The worker did not answer within the watchdog's time: the key is stuck.
    TimedOut,
    /// The worker panicked (a bug, or an assertion in the client on a misbehaving key).
    Crashed,
}

/// Runs `f` on a fresh thread inside the runtime's context and waits at most `timeout` for it.
fn on_worker<R, F>(handle: tokio::runtime::Handle, timeout: Duration, f: F) -> Result<Outcome<R>>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("custos-fido2".into())
        .spawn(move || {
            let _context = handle.enter();
            let _ = tx.send(f());
        })
        .map_err(|e| Error::Device(format!("cannot start the FIDO2 client thread: {e}")))?;
    Ok(match rx.recv_timeout(timeout) {
        Ok(r) => Outcome::Done(r),
        Err(mpsc::RecvTimeoutError::Timeout) => Outcome::TimedOut,
        Err(mpsc::RecvTimeoutError::Disconnected) => Outcome::Crashed,
    })
}

// ---------------------------------------------------------------------------------------------
// The client.

/// Where the key is, for its identity.
#[derive(Debug, Clone)]
enum Origin {
    #[cfg_attr(not(feature = "usb"), allow(dead_code))]
    Usb,
    DemoFile(PathBuf),
    DemoMemory,
}

/// Why an operation stopped before the key could answer it.
enum Failure {
    NoAnswer,
    NoPin { pin_supported: bool },
    Client(WebauthnCError),
}

/// A FIDO2 key driven through the CTAP2 client of webauthn-authenticator-rs. `T` is the device: a
/// USB token ([`open_usb`]) or the demo twin ([`open_demo`]); the code is the same.
pub struct Ctap2Key<T: Token + 'static> {
    link: Arc<Link<T>>,
    prompt: Arc<dyn Prompt>,
    identity: DeviceIdentity,
    /// How the prompts name the key.
    prompt_name: String,
    pin_set: bool,
    origin: Url,
    runtime: Runtime,
    /// Set when the watchdog gave up on the key: it is not used again.
    stuck: bool,
}

impl<T: Token + 'static> fmt::Debug for Ctap2Key<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctap2Key")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

fn stuck_error() -> Error {
    Error::Device(
        "the FIDO2 key stopped answering: unplug it, plug it back in and try again; \
         nothing was done"
            .into(),
    )
}

fn crashed_error() -> Error {
    Error::Device(
        "the FIDO2 client failed unexpectedly (the key sent something it could not handle): \
         unplug the key, plug it back in and try again"
            .into(),
    )
}

fn options_timeout(ms: Option<u32>) -> Duration {
    ms.map(|ms| Duration::from_millis(u64::from(ms)))
        .unwrap_or(DEFAULT_OPERATION_TIMEOUT)
        .saturating_add(WATCHDOG_MARGIN)
        .min(WATCHDOG_MAX)
}

impl<T: Token + 'static> Ctap2Key<T> {
    /// Opens `token`: CTAPHID init and getInfo, within [`OPEN_TIMEOUT`].
    fn open(token: T, prompt: Arc<dyn Prompt>, origin: Origin) -> Result<Self> {
        let link = Arc::new(Link::new(token));
        let runtime = Runtime::new()?;
        let (info, pin_set) =
            {
                let worker_link = link.clone();
                let prompt = prompt.clone();
                let name = prompt_name(&origin);
                match on_worker(runtime.handle()?, OPEN_TIMEOUT, move || {
                    let ui = PromptUi::new(prompt, &name);
                    futures::executor::block_on(CtapAuthenticator::new(
                        Shared { link: worker_link },
                        &ui,
                    ))
                    .map(|a| (a.get_info().clone(), a.get_info().get_option("clientPin")))
                })? {
                    Outcome::Done(Some((info, pin))) => (info, pin == Some(true)),
                    Outcome::Done(None) => {
                        return Err(Error::Device(format!(
                        "the FIDO2 key did not answer getInfo{}: unplug it, plug it back in and \
                         try again",
                        link.failure().map(|f| format!(" ({f})")).unwrap_or_default()
                    )))
                    }
                    Outcome::TimedOut => return Err(stuck_error()),
                    Outcome::Crashed => return Err(crashed_error()),
                }
            };
        let origin_url =
            Url::parse(ORIGIN).map_err(|e| Error::Internal(format!("origin {ORIGIN:?}: {e}")))?;
        Ok(Self {
            identity: identity(&origin, &info),
            prompt_name: prompt_name(&origin),
            link,
            prompt,
            pin_set,
            origin: origin_url,
            runtime,
            stuck: false,
        })
    }

    /// Whether the key reported a PIN when it was opened. Without one, [`Fido2Client::register`]
    /// and [`Fido2Client::assert`] refuse (see the module docs).
    pub fn pin_is_set(&self) -> bool {
        self.pin_set
    }

    /// One operation on the key: getInfo, the PIN check, then `op`, on a worker thread under the
    /// watchdog. The prompt's `done` is called whatever happens.
    fn run<R, F>(&mut self, timeout: Duration, op: F) -> Result<R>
    where
        R: Send + 'static,
        F: for<'a> FnOnce(
                &mut CtapAuthenticator<'a, Shared<T>, PromptUi>,
            ) -> Result<R, WebauthnCError>
            + Send
            + 'static,
    {
        if self.stuck {
            return Err(stuck_error());
        }
        self.link.set_retries(None);
        self.link.set_failure(None);
        let link = self.link.clone();
        let prompt = self.prompt.clone();
        let name = self.prompt_name.clone();
        let outcome = on_worker(self.runtime.handle()?, timeout, move || {
            let ui = PromptUi::new(prompt, &name);
            let mut authn =
                futures::executor::block_on(CtapAuthenticator::new(Shared { link }, &ui))
                    .ok_or(Failure::NoAnswer)?;
            match authn.get_info().get_option("clientPin") {
                Some(true) => {}
                other => {
                    return Err(Failure::NoPin {
                        pin_supported: other.is_some(),
                    })
                }
            }
            op(&mut authn).map_err(Failure::Client)
        });
        self.prompt.done();
        match outcome? {
            Outcome::Done(Ok(r)) => {
                self.pin_set = true;
                Ok(r)
            }
            Outcome::Done(Err(Failure::NoAnswer)) => Err(Error::Device(format!(
                "the FIDO2 key did not answer{}: unplug it, plug it back in and try again",
                self.link
                    .failure()
                    .map(|f| format!(" ({f})"))
                    .unwrap_or_default()
            ))),
            Outcome::Done(Err(Failure::NoPin { pin_supported })) => {
                self.pin_set = false;
                Err(Error::Device(
                    if pin_supported {
                        NO_PIN_MESSAGE
                    } else {
                        NO_PIN_SUPPORT_MESSAGE
                    }
                    .into(),
                ))
            }
            Outcome::Done(Err(Failure::Client(e))) => Err(map_client_error(e, self.link.retries())),
            Outcome::TimedOut => {
                self.stuck = true;
                Err(stuck_error())
            }
            Outcome::Crashed => Err(crashed_error()),
        }
    }
}

impl<T: Token + 'static> Fido2Client for Ctap2Key<T> {
    fn identity(&self) -> DeviceIdentity {
        self.identity.clone()
    }

    fn register(
        &mut self,
        options: CreationChallengeResponse,
    ) -> Result<RegisterPublicKeyCredential> {
        let timeout = options_timeout(options.public_key.timeout);
        let origin = self.origin.clone();
        self.run(timeout, move |authn| authn.do_registration(origin, options))
    }

    fn assert(&mut self, options: RequestChallengeResponse) -> Result<PublicKeyCredential> {
        let timeout = options_timeout(options.public_key.timeout);
        let origin = self.origin.clone();
        self.run(timeout, move |authn| {
            authn.do_authentication(origin, options)
        })
    }
}

fn prompt_name(origin: &Origin) -> String {
    match origin {
        Origin::Usb => "FIDO2 key".into(),
        Origin::DemoFile(_) | Origin::DemoMemory => {
            "DEMO FIDO2 key (software, not hardware)".into()
        }
    }
}

fn identity(origin: &Origin, info: &GetInfoResponse) -> DeviceIdentity {
    let mut details = Vec::new();
    if let Some(aaguid) = info.aaguid {
        details.push(format!("AAGUID {aaguid}"));
    }
    if !info.versions.is_empty() {
        details.push(info.versions.iter().cloned().collect::<Vec<_>>().join(" "));
    }
    let details = details.join(", ");
    match origin {
        Origin::Usb => DeviceIdentity {
            kind: "fido2".into(),
            description: if details.is_empty() {
                "FIDO2 key (USB)".into()
            } else {
                format!("FIDO2 key (USB; {details})")
            },
            serial: None,
            demo: false,
        },
        Origin::DemoFile(path) => DeviceIdentity {
            kind: "fido2".into(),
            description: format!("{DEMO_FIDO2_DESCRIPTION} (file {})", path.display()),
            serial: None,
            demo: true,
        },
        Origin::DemoMemory => DeviceIdentity {
            kind: "fido2".into(),
            description: format!("{DEMO_FIDO2_DESCRIPTION} (in memory)"),
            serial: None,
            demo: true,
        },
    }
}

/// The client's and the key's errors as the person should read them (see the module docs).
fn map_client_error(e: WebauthnCError, retries: Option<u32>) -> Error {
    use CtapError as C;
    match e {
        WebauthnCError::Ctap(C::Ctap2PinInvalid) => Error::WrongPin { retries },
        WebauthnCError::Ctap(C::Ctap2PinBlocked) => Error::PinBlocked("FIDO2 key"),
        WebauthnCError::Ctap(C::Ctap2PinAuthBlocked) => Error::Device(format!(
            "three wrong PINs in a row: the FIDO2 key takes no more PINs until it is unplugged and \
             plugged back in{}; nothing was done",
            retries
                .map(|n| format!(" ({n} tries left before it locks for good)"))
                .unwrap_or_default()
        )),
        WebauthnCError::Ctap(
            C::Ctap2UserActionTimeout | C::Ctap2ActionTimeout | C::Ctap2KeepAliveCancel,
        ) => Error::NoTouch,
        WebauthnCError::Ctap(C::Ctap2OperationDenied) => {
            Error::Device("the FIDO2 key refused the operation; nothing was done".into())
        }
        WebauthnCError::Cancelled => Error::PinRequired,
        WebauthnCError::UserVerificationRequired
        | WebauthnCError::Ctap(C::Ctap2PinNotSet | C::Ctap2PUATRequired) => {
            Error::Device(NO_PIN_MESSAGE.into())
        }
        WebauthnCError::Ctap(C::Ctap2PinPolicyViolation)
        | WebauthnCError::PinTooShort
        | WebauthnCError::PinTooLong
        | WebauthnCError::PinContainsNull => Error::Device(
            "that is not a valid FIDO2 PIN (4 to 63 characters, as set on the key); nothing was done"
                .into(),
        ),
        WebauthnCError::Ctap(C::Ctap2NoCredentials) => Error::Device(
            "this FIDO2 key holds none of the credentials enrolled for this custodian: use the key \
             that was enrolled"
                .into(),
        ),
        WebauthnCError::Ctap(C::Ctap2CredentialExcluded) => Error::Device(
            "this FIDO2 key is already enrolled for this custodian; nothing was done".into(),
        ),
        WebauthnCError::NoHidDevices | WebauthnCError::NoSelectedToken => {
            Error::NoDevice("FIDO2 key")
        }
        other => Error::Device(format!("FIDO2 key: {other}")),
    }
}

// ---------------------------------------------------------------------------------------------
// The demo twin.

fn check_new_pin(pin: &Pin) -> Result<()> {
    let p = pin.expose();
    if p.chars().count() < 4 || p.len() > 63 || p.contains('\0') {
        return Err(Error::Device(
            "a FIDO2 PIN has 4 to 63 characters (and no NUL): choose another".into(),
        ));
    }
    Ok(())
}

/// Creates a demo FIDO2 key (the software CTAP2 twin) in `path` with `pin` set, as a new owner-only
/// file; refuses to overwrite an existing file. The file holds the key's private keys in clear: it
/// is a demo, not a security device.
pub fn create_demo_key(path: &Path, pin: &Pin) -> Result<()> {
    check_new_pin(pin)?;
    match SoftCtap2Device::create_file(path, Config::with_pin(pin.expose())) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Device(format!(
            "{} already exists: refusing to overwrite a demo key file",
            path.display()
        ))),
        Err(e) => Err(Error::Io {
            path: path.display().to_string(),
            source: e,
        }),
    }
}

/// Opens the demo FIDO2 key in `path`. Its state (credentials, counter, PIN retries) is written back
/// after every command that changes it. Touches are approved at once, after `prompt.touch` was
/// called; the PIN is asked through `prompt` like a real key's.
pub fn open_demo(path: &Path, prompt: Arc<dyn Prompt>) -> Result<Ctap2Key<SoftCtap2Device>> {
    let dev = SoftCtap2Device::open_file(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => Error::Device(format!(
            "{} is not a usable demo FIDO2 key file: {e}",
            path.display()
        )),
        _ => Error::Io {
            path: path.display().to_string(),
            source: e,
        },
    })?;
    Ctap2Key::open(dev, prompt, Origin::DemoFile(path.to_path_buf()))
}

impl Ctap2Key<SoftCtap2Device> {
    /// A client on an in-memory twin (tests, and shells that want a throw-away demo key). The
    /// identity is always a demo one.
    pub fn from_twin(device: SoftCtap2Device, prompt: Arc<dyn Prompt>) -> Result<Self> {
        let origin = match device.file() {
            Some(path) => Origin::DemoFile(path),
            None => Origin::DemoMemory,
        };
        Ctap2Key::open(device, prompt, origin)
    }
}

/// How long the person has to touch one of several keys.
const SELECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Several keys: ask for a touch on all of them (CTAP 2.1 authenticatorSelection); the first
/// touched is the one, the others are told to stop waiting. Used by [`open_usb`] when several keys
/// are plugged in (never run on hardware); tested with twins.
pub fn select_key<T: Token + Send + 'static>(tokens: Vec<T>, prompt: Arc<dyn Prompt>) -> Result<T> {
    use futures::stream::{FuturesUnordered, StreamExt};

    let runtime = Runtime::new()?;
    let links: Vec<Arc<Link<T>>> = tokens.into_iter().map(|t| Arc::new(Link::new(t))).collect();
    let worker_links = links.clone();
    let worker_prompt = prompt.clone();
    let chosen = on_worker(
        runtime.handle()?,
        SELECTION_TIMEOUT + OPEN_TIMEOUT,
        move || {
            let ui = PromptUi::new(
                worker_prompt,
                "the FIDO2 key you want to use (several are plugged in)",
            );
            futures::executor::block_on(async {
                let mut authenticators = Vec::new();
                for (i, link) in worker_links.iter().enumerate() {
                    if let Some(a) =
                        CtapAuthenticator::new(Shared { link: link.clone() }, &ui).await
                    {
                        authenticators.push((i, a));
                    }
                }
                let mut tasks: FuturesUnordered<_> = authenticators
                    .iter_mut()
                    .map(|(i, a)| async move { a.selection().await.map(|()| *i) })
                    .collect();
                let first = tokio::time::timeout(SELECTION_TIMEOUT, async {
                    while let Some(r) = tasks.next().await {
                        if let Ok(i) = r {
                            return Some(i);
                        }
                    }
                    None
                })
                .await
                .ok()
                .flatten();
                drop(tasks);
                // Stop the other keys blinking.
                for (i, link) in worker_links.iter().enumerate() {
                    if Some(i) != first {
                        let _ = link.token.lock().await.cancel().await;
                    }
                }
                first
            })
        },
    )?;
    prompt.done();
    let index = match chosen {
        Outcome::Done(Some(i)) => i,
        Outcome::Done(None) | Outcome::TimedOut => return Err(Error::NoTouch),
        Outcome::Crashed => return Err(crashed_error()),
    };
    let link = links.into_iter().nth(index).ok_or(Error::NoTouch)?;
    let link = Arc::try_unwrap(link).map_err(|_| stuck_error())?;
    Ok(link.token.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Real keys over USB.

#[cfg(feature = "usb")]
pub use usb::open_usb;

#[cfg(feature = "usb")]
mod usb {
    use super::*;
    use webauthn_authenticator_rs::transport::Transport;
    use webauthn_authenticator_rs::usb::{USBToken, USBTransport};

    /// How long listing the USB FIDO devices may take.
    const ENUMERATE_TIMEOUT: Duration = Duration::from_secs(5);

    /// Opens the FIDO2 key plugged in over USB. With none, [`Error::NoDevice`]`("FIDO2 key")` at once
    /// (hidraw devices that cannot be opened, e.g. for lack of udev rules, are not seen either).
    /// With several, the person is asked to touch the one to use (CTAP 2.1 selection).
    ///
    /// Not yet run against a real key: this machine has no USB. The single-key path is the crate's
    /// own USB transport under the same client code the twin tests exercise; the several-keys path
    /// ([`select_key`]) runs against twins in the tests, never over USB. See docs/hardware-checklist.md.
    pub fn open_usb(prompt: Arc<dyn Prompt>) -> Result<Ctap2Key<USBToken>> {
        let runtime = Runtime::new()?;
        let handle = runtime.handle()?;
        let tokens =
            match on_worker(handle.clone(), ENUMERATE_TIMEOUT, move || {
                futures::executor::block_on(async {
                    let transport = USBTransport::new().await?;
                    transport.tokens().await
                })
            })? {
                Outcome::Done(Ok(tokens)) => tokens,
                Outcome::Done(Err(WebauthnCError::NoHidDevices)) => {
                    return Err(Error::NoDevice("FIDO2 key"))
                }
                Outcome::Done(Err(e)) => {
                    return Err(Error::Device(format!(
                        "cannot list the USB FIDO2 keys: {e}"
                    )))
                }
                Outcome::TimedOut => return Err(Error::Device(
                    "listing the USB FIDO2 keys took too long: unplug them, plug one back in and \
                     try again"
                        .into(),
                )),
                Outcome::Crashed => return Err(crashed_error()),
            };
        drop(runtime);
        match tokens.len() {
            0 => Err(Error::NoDevice("FIDO2 key")),
            1 => {
                let token = tokens
                    .into_iter()
                    .next()
                    .ok_or(Error::NoDevice("FIDO2 key"))?;
                Ctap2Key::open(token, prompt, Origin::Usb)
            }
            _ => {
                let token = select_key(tokens, prompt.clone())?;
                Ctap2Key::open(token, prompt, Origin::Usb)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_can_wait_on_tokio_timers() {
        // The USB transport sleeps on tokio timers between keepalives; the worker thread runs under
        // futures' executor inside our runtime's context, as the client does.
        let rt = Runtime::new().expect("runtime");
        let started = std::time::Instant::now();
        let outcome = on_worker(rt.handle().expect("handle"), Duration::from_secs(5), || {
            futures::executor::block_on(tokio::time::sleep(Duration::from_millis(50)));
            7
        })
        .expect("worker");
        assert!(matches!(outcome, Outcome::Done(7)));
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn the_watchdog_gives_up_on_a_stuck_worker() {
        let rt = Runtime::new().expect("runtime");
        let started = std::time::Instant::now();
        let outcome = on_worker(
            rt.handle().expect("handle"),
            Duration::from_millis(100),
            || {
                std::thread::sleep(Duration::from_secs(2));
            },
        )
        .expect("worker");
        assert!(matches!(outcome, Outcome::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_panicking_worker_is_reported_not_propagated() {
        let rt = Runtime::new().expect("runtime");
        let outcome: Outcome<()> =
            on_worker(rt.handle().expect("handle"), Duration::from_secs(5), || {
                panic!("client assertion")
            })
            .expect("worker");
        assert!(matches!(outcome, Outcome::Crashed));
    }

    #[test]
    fn runtime_can_be_dropped_inside_an_async_context() {
        let outer = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("outer");
        outer.block_on(async {
            let rt = Runtime::new().expect("runtime");
            drop(rt);
        });
    }

    #[test]
    fn retries_are_read_from_get_pin_retries_answers() {
        let answer = serde_cbor_2::to_vec(&Value::Map(std::collections::BTreeMap::from([(
            Value::Integer(3),
            Value::Integer(5),
        )])))
        .expect("cbor");
        assert_eq!(parse_retries(&answer), Some(5));
        assert_eq!(parse_retries(b"\xa0"), None);
        assert_eq!(parse_retries(b"garbage"), None);

        let mut cmd = vec![CMD_CLIENT_PIN];
        cmd.extend(
            serde_cbor_2::to_vec(&Value::Map(std::collections::BTreeMap::from([
                (Value::Integer(1), Value::Integer(2)),
                (Value::Integer(2), Value::Integer(9)),
            ])))
            .expect("cbor"),
        );
        assert!(matches!(
            client_pin_request(&cmd),
            Some((Some(Value::Integer(2)), 9))
        ));
        cmd[0] = 0x01;
        assert!(client_pin_request(&cmd).is_none());
    }

    #[test]
    fn watchdog_time_follows_the_options() {
        assert_eq!(options_timeout(Some(60_000)), Duration::from_secs(75));
        assert_eq!(options_timeout(None), Duration::from_secs(75));
        assert_eq!(options_timeout(Some(u32::MAX)), WATCHDOG_MAX);
    }
}
