//! A software CTAP2 authenticator for tests: a "hardware twin" of a FIDO2 security key.
//!
//! **This is a TEST FIXTURE and a DEMO key, never a security device.** It has no secure element and
//! no real button; its keys live in process memory or, for the `--demo` key of Custos, in a JSON file
//! that holds the private keys in clear ([`persist`]). Custos uses it only behind
//! `custos-hardware`'s demo constructors, which mark every identity as a demo
//! (`DeviceIdentity::demo`); it must never guard a real custodian.
//!
//! # What it is
//!
//! [`SoftCtap2Device`] implements [`webauthn_authenticator_rs::transport::Token`], the trait that the
//! USB, NFC and BLE transports of `webauthn-authenticator-rs` implement. A test hands it to
//! [`webauthn_authenticator_rs::ctap2::CtapAuthenticator::new`], so the crate's real CTAP2 client
//! code runs unchanged: getInfo parsing and version selection, the PIN/UV auth protocols 1 and 2,
//! the CTAP 2.1 permissions token, selection, makeCredential and getAssertion. Only the transport
//! framing (CTAPHID packets, channels, keepalives) is skipped: `transmit_raw` receives the command
//! byte + CBOR that a USB key would receive and returns the CBOR that it would return (without the
//! status byte; a non-zero status becomes `WebauthnCError::Ctap(CtapError::…)`, as the USB transport
//! reports it).
//!
//! Requests are parsed with the crate's own `MakeCredentialRequest` / `GetAssertionRequest` parsers
//! and answered with its `GetInfoResponse` / `MakeCredentialResponse` / `GetAssertionResponse`
//! encoders. Those parsers drop the options and the PIN/UV fields, and `MakeCredentialRequest`'s
//! parser silently turns an excludeList whose ids are CBOR byte strings (what the crate's own client
//! sends) into an empty list (seen with 0.6.2); this twin reads those fields itself. clientPIN has no
//! public parser or response encoder and is handled on `serde_cbor_2::Value` maps.
//!
//! # Implemented
//!
//! - `authenticatorGetInfo` (0x04): versions `FIDO_2_0` and `FIDO_2_1`, a fixed AAGUID, options
//!   `rk=false`, `up=true`, `plat=false`, `clientPin` (true / false as configured), `pinUvAuthToken`
//!   (configurable, so that the client takes either the CTAP 2.1 permissions path or the legacy
//!   getPinToken path), `pinUvAuthProtocols` (default `[2, 1]`; the client uses the first it knows),
//!   transports `["usb"]`, algorithm ES256.
//! - `authenticatorMakeCredential` (0x01): ES256 (P-256) only, non-discoverable credentials, packed
//!   **self**-attestation (no attestation certificate), excludeList, PIN/UV auth param checks
//!   (`PUAT_REQUIRED` when a PIN is set and none is given, permission and RP-ID binding of the token),
//!   the CTAP 2.1 "zero-length pinUvAuthParam" touch probe.
//! - `authenticatorGetAssertion` (0x02): allowList lookup, `up=false` silent assertions, one global
//!   signature counter incremented on every makeCredential and getAssertion (as on a YubiKey 5).
//! - `authenticatorClientPIN` (0x06), protocols 1 and 2: getPinRetries, getKeyAgreement, setPIN,
//!   changePIN, getPinToken, getPinUvAuthTokenUsingPinWithPermissions (mc / ga permissions only).
//!   8 retries; a wrong PIN decrements them and answers `PIN_INVALID`; three wrong PINs in a row answer
//!   `PIN_AUTH_BLOCKED` until a "power cycle" ([`SoftCtap2Device::power_cycle`]); 0 retries answers
//!   `PIN_BLOCKED` until reset.
//! - `authenticatorReset` (0x07) and `authenticatorSelection` (0x0B), both asking for a touch.
//! - User presence: every operation that needs it calls `UiCallback::request_touch()` (the hook the
//!   USB transport calls on a "user presence needed" keepalive) and then consults the [`Presence`] knob.
//!
//! # Not implemented
//!
//! - No CTAPHID framing, channels, keepalives, CTAPHID_CANCEL or WINK; no U2F / CTAP1 commands.
//! - No extensions at all (no hmac-secret, credProtect, credBlob, largeBlob, minPinLength). The
//!   webauthn-authenticator-rs request structs do not carry extensions anyway.
//! - No discoverable (resident) credentials, no credential management, no authenticatorConfig, no
//!   enterprise attestation, no built-in UV (fingerprint), no getNextAssertion.
//! - No attestation certificate: packed self-attestation only, so attestation CA checks cannot pass.
//! - Persistence is optional and plain: [`SoftCtap2Device::create_file`] / [`SoftCtap2Device::open_file`]
//!   keep the credentials, PIN hash, PIN retries, signature counter and AAGUID in a JSON file, written
//!   after every command that changed them (temporary file + rename, mode 0600). Opening the file is a
//!   power cycle: a fresh key-agreement key, no PIN token, the "three wrong PINs in a row" block lifted.
//!   Two processes using one file at the same time are not coordinated (the last write wins).
//!
//! # How it differs from a real YubiKey 5
//!
//! - A YubiKey advertises `rk=true`, `credMgmt`, `largeBlobs`, `hmac-secret`, `credProtect` etc. and
//!   ships a batch attestation certificate chained to Yubico's root; this twin does none of that.
//! - Real keys wait up to ~30 s for a touch while sending keepalives; here the outcome of a presence
//!   request is decided by [`Presence`] and the "no touch" case times out after
//!   [`Config::touch_timeout`] (short by default so that tests stay fast).
//! - Status codes follow the CTAP 2.1 specification as read by this crate's author; where a YubiKey
//!   answers differently, the hardware is right. Compare against real hardware before relying on an
//!   exact error code.
//! - The credential ID is a random handle into process memory, not a wrapped key.
//!
//! # Sharing state with the test
//!
//! `CtapAuthenticator::new` takes the token by value. [`SoftCtap2Device`] is a cheap handle: clone it,
//! hand one clone to the client and keep the other to inspect or change the device (retries, counter,
//! presence) while the client holds the first.

pub mod persist;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::{PublicKey, SecretKey};
use serde_cbor_2::Value;
use sha2::{Digest, Sha256};
use webauthn_authenticator_rs::ctap2::commands::{
    GetAssertionRequest, GetAssertionResponse, GetInfoResponse, MakeCredentialRequest,
    MakeCredentialResponse,
};
use webauthn_authenticator_rs::error::{CtapError, WebauthnCError};
use webauthn_authenticator_rs::transport::Token;
use webauthn_authenticator_rs::types::EnrollSampleStatus;
use webauthn_authenticator_rs::ui::UiCallback;
use webauthn_rs_proto::{AuthenticatorTransport, PublicKeyCredentialDescriptor};

/// The AAGUID this twin reports. Deliberately not a registered vendor AAGUID.
pub const AAGUID: [u8; 16] = *b"custos-ctap2twin";

/// PIN retries after a successful PIN entry (the CTAP 2.1 maximum, as on a YubiKey).
pub const MAX_PIN_RETRIES: u8 = 8;

const CMD_MAKE_CREDENTIAL: u8 = 0x01;
const CMD_GET_ASSERTION: u8 = 0x02;
const CMD_GET_INFO: u8 = 0x04;
const CMD_CLIENT_PIN: u8 = 0x06;
const CMD_RESET: u8 = 0x07;
const CMD_SELECTION: u8 = 0x0B;

const PERM_MC: u8 = 0x01;
const PERM_GA: u8 = 0x02;

const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_AT: u8 = 0x40;

const COSE_ES256: i128 = -7;

/// What the simulated user does when the key asks for a touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The user touches the key at once.
    Touch,
    /// The user never touches it: after [`Config::touch_timeout`] the key answers
    /// `CTAP2_ERR_USER_ACTION_TIMEOUT` (0x2F), as a real key does after its own timeout.
    NoTouch,
    /// The request is refused: the key answers `CTAP2_ERR_OPERATION_DENIED` (0x27).
    Deny,
}

/// How a [`SoftCtap2Device`] starts.
#[derive(Debug, Clone)]
pub struct Config {
    /// The PIN already set on the key, or `None` for a key fresh out of the box.
    pub pin: Option<String>,
    /// `pinUvAuthProtocols` in getInfo, in order of preference. The client takes the first it knows.
    pub pin_protocols: Vec<u32>,
    /// The `pinUvAuthToken` option: `true` makes the client use
    /// getPinUvAuthTokenUsingPinWithPermissions (CTAP 2.1), `false` the legacy getPinToken.
    pub pin_uv_auth_token: bool,
    /// What the user does when asked for a touch.
    pub presence: Presence,
    /// How long a [`Presence::NoTouch`] request waits before timing out.
    pub touch_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            pin: None,
            pin_protocols: vec![2, 1],
            pin_uv_auth_token: true,
            presence: Presence::Touch,
            touch_timeout: Duration::from_millis(50),
        }
    }
}

impl Config {
    /// A key with this PIN set.
    pub fn with_pin(pin: &str) -> Self {
        Self {
            pin: Some(pin.to_owned()),
            ..Self::default()
        }
    }
}

struct Credential {
    id: Vec<u8>,
    rp_id_hash: [u8; 32],
    key: SigningKey,
}

struct PinToken {
    protocol: u32,
    permissions: u8,
    rp_id: Option<String>,
}

struct State {
    config: Config,
    pin_hash: Option<[u8; 16]>,
    pin_retries: u8,
    consecutive_mismatches: u8,
    key_agreement: SecretKey,
    pin_token: [u8; 32],
    token: Option<PinToken>,
    sign_count: u32,
    credentials: Vec<Credential>,
    touch_requests: u32,
    aaguid: [u8; 16],
    /// The file the persistent part of the state is written to, if any.
    file: Option<PathBuf>,
}

/// A software CTAP2 authenticator. Clones share one device (see the crate docs).
#[derive(Clone)]
pub struct SoftCtap2Device {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for SoftCtap2Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftCtap2Device").finish_non_exhaustive()
    }
}

type CtapResult<T> = Result<T, CtapError>;

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random source failed");
    b
}

fn random_secret_key() -> SecretKey {
    loop {
        if let Ok(k) = SecretKey::from_slice(&random_bytes::<32>()) {
            return k;
        }
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn pin_hash(pin: &str) -> [u8; 16] {
    let mut h = [0u8; 16];
    h.copy_from_slice(&sha256(pin.as_bytes())[..16]);
    h
}

/// Uncompressed x and y of a P-256 public key.
fn xy(pk: &PublicKey) -> (Vec<u8>, Vec<u8>) {
    let p = pk.to_sec1_point(false);
    let b = p.as_bytes();
    (b[1..33].to_vec(), b[33..65].to_vec())
}

fn cose_es256(pk: &PublicKey, alg: i128) -> Value {
    let (x, y) = xy(pk);
    Value::Map(BTreeMap::from([
        (Value::Integer(1), Value::Integer(2)), // kty: EC2
        (Value::Integer(3), Value::Integer(alg)),
        (Value::Integer(-1), Value::Integer(1)), // crv: P-256
        (Value::Integer(-2), Value::Bytes(x)),
        (Value::Integer(-3), Value::Bytes(y)),
    ]))
}

fn parse_cose_p256(v: Value) -> CtapResult<PublicKey> {
    let Value::Map(mut m) = v else {
        return Err(CtapError::Ctap2CborUnexpectedType);
    };
    let x = m.remove(&Value::Integer(-2));
    let y = m.remove(&Value::Integer(-3));
    let (Some(Value::Bytes(x)), Some(Value::Bytes(y))) = (x, y) else {
        return Err(CtapError::Ctap2MissingParameter);
    };
    if x.len() != 32 || y.len() != 32 {
        return Err(CtapError::Ctap1InvalidParameter);
    }
    let mut sec1 = Vec::with_capacity(65);
    sec1.push(0x04);
    sec1.extend_from_slice(&x);
    sec1.extend_from_slice(&y);
    PublicKey::from_sec1_bytes(&sec1).map_err(|_| CtapError::Ctap1InvalidParameter)
}

fn encode(map: BTreeMap<u32, Value>) -> CtapResult<Vec<u8>> {
    serde_cbor_2::to_vec(&map).map_err(|_| CtapError::Ctap1Unspecified)
}

fn take_bytes(m: &mut BTreeMap<u32, Value>, k: u32) -> CtapResult<Option<Vec<u8>>> {
    match m.remove(&k) {
        None => Ok(None),
        Some(Value::Bytes(b)) => Ok(Some(b)),
        Some(_) => Err(CtapError::Ctap2CborUnexpectedType),
    }
}

fn take_u32(m: &mut BTreeMap<u32, Value>, k: u32) -> CtapResult<Option<u32>> {
    match m.remove(&k) {
        None => Ok(None),
        Some(Value::Integer(i)) => u32::try_from(i)
            .map(Some)
            .map_err(|_| CtapError::Ctap1InvalidParameter),
        Some(_) => Err(CtapError::Ctap2CborUnexpectedType),
    }
}

/// The ids of a CTAP credential-descriptor list (`[{"type": "public-key", "id": bytes}, ...]`).
fn take_credential_ids(m: &mut BTreeMap<u32, Value>, k: u32) -> CtapResult<Vec<Vec<u8>>> {
    let Some(list) = m.remove(&k) else {
        return Ok(Vec::new());
    };
    let Value::Array(list) = list else {
        return Err(CtapError::Ctap2CborUnexpectedType);
    };
    list.into_iter()
        .map(|d| {
            let Value::Map(mut d) = d else {
                return Err(CtapError::Ctap2CborUnexpectedType);
            };
            match d.remove(&Value::Text("id".into())) {
                Some(Value::Bytes(id)) => Ok(id),
                Some(_) => Err(CtapError::Ctap2CborUnexpectedType),
                None => Err(CtapError::Ctap2MissingParameter),
            }
        })
        .collect()
}

fn take_options(m: &mut BTreeMap<u32, Value>, k: u32) -> CtapResult<BTreeMap<String, bool>> {
    match m.remove(&k) {
        None => Ok(BTreeMap::new()),
        Some(Value::Map(o)) => o
            .into_iter()
            .map(|(k, v)| match (k, v) {
                (Value::Text(k), Value::Bool(v)) => Ok((k, v)),
                _ => Err(CtapError::Ctap2CborUnexpectedType),
            })
            .collect(),
        Some(_) => Err(CtapError::Ctap2CborUnexpectedType),
    }
}

// --- PIN/UV auth protocols 1 and 2 (CTAP 2.1 §6.5.6, §6.5.7), authenticator side ---

fn kdf(protocol: u32, z: &[u8]) -> Vec<u8> {
    if protocol == 1 {
        return sha256(z).to_vec();
    }
    let hk = hkdf::Hkdf::<Sha256>::new(Some(&[0u8; 32]), z);
    let mut out = vec![0u8; 64];
    hk.expand(b"CTAP2 HMAC key", &mut out[..32])
        .expect("32 bytes is a valid HKDF-SHA-256 length");
    hk.expand(b"CTAP2 AES key", &mut out[32..])
        .expect("32 bytes is a valid HKDF-SHA-256 length");
    out
}

fn aes_cbc_encrypt(key: &[u8], iv: &[u8; 16], pt: &[u8]) -> Vec<u8> {
    use cbc::cipher::{block_padding::NoPadding, BlockModeEncrypt, KeyIvInit};
    cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv)
        .expect("AES-256 key and IV lengths")
        .encrypt_padded_vec::<NoPadding>(pt)
}

fn aes_cbc_decrypt(key: &[u8], iv: &[u8], ct: &[u8]) -> CtapResult<Vec<u8>> {
    use cbc::cipher::{block_padding::NoPadding, BlockModeDecrypt, KeyIvInit};
    if ct.is_empty() || !ct.len().is_multiple_of(16) {
        return Err(CtapError::Ctap1InvalidParameter);
    }
    cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
        .map_err(|_| CtapError::Ctap1InvalidParameter)?
        .decrypt_padded_vec::<NoPadding>(ct)
        .map_err(|_| CtapError::Ctap1InvalidParameter)
}

fn proto_encrypt(protocol: u32, shared: &[u8], pt: &[u8]) -> Vec<u8> {
    if protocol == 1 {
        aes_cbc_encrypt(shared, &[0u8; 16], pt)
    } else {
        let iv = random_bytes::<16>();
        let mut out = iv.to_vec();
        out.extend(aes_cbc_encrypt(&shared[32..], &iv, pt));
        out
    }
}

fn proto_decrypt(protocol: u32, shared: &[u8], ct: &[u8]) -> CtapResult<Vec<u8>> {
    if protocol == 1 {
        aes_cbc_decrypt(shared, &[0u8; 16], ct)
    } else {
        if ct.len() < 16 {
            return Err(CtapError::Ctap1InvalidParameter);
        }
        let (iv, ct) = ct.split_at(16);
        aes_cbc_decrypt(&shared[32..], iv, ct)
    }
}

/// `verify(key, message, signature)`: protocol 1 compares the first 16 bytes of the HMAC, protocol 2
/// all 32 (with the HMAC half of the key).
fn proto_verify(protocol: u32, key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    use hmac::{KeyInit, Mac};
    let key = if protocol == 1 { key } else { &key[..32] };
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(message);
    let tag = mac.finalize().into_bytes();
    let expected: &[u8] = if protocol == 1 { &tag[..16] } else { &tag[..] };
    // Constant time is not a concern for a test fixture, but it costs nothing.
    expected.len() == signature.len()
        && expected
            .iter()
            .zip(signature)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

impl State {
    fn new(config: Config) -> Self {
        let pin_hash = config.pin.as_deref().map(pin_hash);
        Self {
            config,
            pin_hash,
            pin_retries: MAX_PIN_RETRIES,
            consecutive_mismatches: 0,
            key_agreement: random_secret_key(),
            pin_token: random_bytes(),
            token: None,
            sign_count: 0,
            credentials: Vec::new(),
            touch_requests: 0,
            aaguid: AAGUID,
            file: None,
        }
    }

    /// What the file holds, to tell whether a command changed it.
    fn persistent_fingerprint(&self) -> (Option<[u8; 16]>, u8, u32, usize, Option<Vec<u8>>) {
        (
            self.pin_hash,
            self.pin_retries,
            self.sign_count,
            self.credentials.len(),
            self.credentials.last().map(|c| c.id.clone()),
        )
    }

    fn to_file_state(&self) -> persist::FileState {
        persist::FileState {
            format: persist::FORMAT.to_owned(),
            notice: persist::FileState::notice(),
            aaguid: hex::encode(self.aaguid),
            pin_hash: self.pin_hash.map(hex::encode),
            pin_retries: self.pin_retries,
            sign_count: self.sign_count,
            pin_protocols: self.config.pin_protocols.clone(),
            pin_uv_auth_token: self.config.pin_uv_auth_token,
            credentials: self
                .credentials
                .iter()
                .map(|c| persist::FileCredential {
                    id: hex::encode(&c.id),
                    rp_id_hash: hex::encode(c.rp_id_hash),
                    private_key: hex::encode(c.key.to_bytes()),
                })
                .collect(),
        }
    }

    fn from_file_state(f: &persist::FileState, file: &Path) -> io::Result<Self> {
        if f.pin_retries > MAX_PIN_RETRIES {
            return Err(persist::invalid("PIN retry counter"));
        }
        if f.pin_protocols.is_empty() || f.pin_protocols.iter().any(|p| *p != 1 && *p != 2) {
            return Err(persist::invalid("PIN/UV auth protocol list"));
        }
        let config = Config {
            pin: None,
            pin_protocols: f.pin_protocols.clone(),
            pin_uv_auth_token: f.pin_uv_auth_token,
            ..Config::default()
        };
        let mut state = State::new(config);
        state.aaguid = persist::unhex::<16>(&f.aaguid, "AAGUID")?;
        state.pin_hash = match &f.pin_hash {
            Some(h) => Some(persist::unhex::<16>(h, "PIN hash")?),
            None => None,
        };
        state.pin_retries = f.pin_retries;
        state.sign_count = f.sign_count;
        for c in &f.credentials {
            let id = hex::decode(&c.id).map_err(|_| persist::invalid("credential id"))?;
            if id.is_empty() || id.len() > 1023 {
                return Err(persist::invalid("credential id"));
            }
            let secret = zeroize::Zeroizing::new(persist::unhex::<32>(
                &c.private_key,
                "credential private key",
            )?);
            let key = SecretKey::from_slice(secret.as_slice())
                .map_err(|_| persist::invalid("credential private key"))?;
            state.credentials.push(Credential {
                id,
                rp_id_hash: persist::unhex::<32>(&c.rp_id_hash, "credential RP id hash")?,
                key: SigningKey::from(key),
            });
        }
        state.file = Some(file.to_path_buf());
        Ok(state)
    }

    fn save(&self) -> io::Result<()> {
        match &self.file {
            Some(path) => persist::replace(path, &self.to_file_state().to_json()?),
            None => Ok(()),
        }
    }

    fn user_presence<U: UiCallback>(&mut self, ui: &U) -> CtapResult<()> {
        self.touch_requests += 1;
        ui.request_touch();
        match self.config.presence {
            Presence::Touch => Ok(()),
            Presence::NoTouch => {
                std::thread::sleep(self.config.touch_timeout);
                Err(CtapError::Ctap2UserActionTimeout)
            }
            Presence::Deny => Err(CtapError::Ctap2OperationDenied),
        }
    }

    fn check_protocol(&self, protocol: Option<u32>) -> CtapResult<u32> {
        let p = protocol.ok_or(CtapError::Ctap2MissingParameter)?;
        if self.config.pin_protocols.contains(&p) {
            Ok(p)
        } else {
            Err(CtapError::Ctap1InvalidParameter)
        }
    }

    fn get_info(&self) -> CtapResult<Vec<u8>> {
        let mut options = BTreeMap::from([
            ("rk".to_owned(), false),
            ("up".to_owned(), true),
            ("plat".to_owned(), false),
            ("clientPin".to_owned(), self.pin_hash.is_some()),
        ]);
        if self.config.pin_uv_auth_token {
            options.insert("pinUvAuthToken".to_owned(), true);
        }
        let info = GetInfoResponse {
            versions: ["FIDO_2_0", "FIDO_2_1"].map(String::from).into(),
            aaguid: Some(uuid_from(self.aaguid)),
            options: Some(options),
            max_msg_size: Some(1200),
            pin_protocols: Some(self.config.pin_protocols.clone()),
            transports: Some(vec!["usb".to_owned()]),
            algorithms: Some(Value::Array(vec![Value::Map(BTreeMap::from([
                (Value::Text("alg".into()), Value::Integer(COSE_ES256)),
                (Value::Text("type".into()), Value::Text("public-key".into())),
            ]))])),
            min_pin_length: Some(4),
            ..Default::default()
        };
        encode(info.into())
    }

    /// Checks pinUvAuthParam against the current pinUvAuthToken (CTAP 2.1 §6.1.2 step 11, §6.2.2 step 9).
    fn check_pin_uv_auth(
        &self,
        protocol: Option<u32>,
        param: &[u8],
        client_data_hash: &[u8],
        permission: u8,
        rp_id: &str,
    ) -> CtapResult<()> {
        let protocol = self.check_protocol(protocol)?;
        let token = self.token.as_ref().ok_or(CtapError::Ctap2PinAuthInvalid)?;
        if token.protocol != protocol
            || !proto_verify(protocol, &self.pin_token, client_data_hash, param)
        {
            return Err(CtapError::Ctap2PinAuthInvalid);
        }
        if token.permissions & permission == 0 {
            return Err(CtapError::Ctap2UnauthorizedPermission);
        }
        if token.rp_id.as_deref().is_some_and(|r| r != rp_id) {
            return Err(CtapError::Ctap2UnauthorizedPermission);
        }
        Ok(())
    }

    /// A zero-length pinUvAuthParam is the "which key is this?" probe (CTAP 2.1 §6.1.2 step 1):
    /// ask for a touch, then answer with the PIN state.
    fn touch_probe<U: UiCallback>(&mut self, ui: &U) -> CtapError {
        if let Err(e) = self.user_presence(ui) {
            return e;
        }
        if self.pin_hash.is_some() {
            CtapError::Ctap2PinInvalid
        } else {
            CtapError::Ctap2PinNotSet
        }
    }

    fn make_credential<U: UiCallback>(
        &mut self,
        mut raw: BTreeMap<u32, Value>,
        ui: &U,
    ) -> CtapResult<Vec<u8>> {
        // The crate's parser drops options (0x07) and the PIN/UV fields (0x08, 0x09), and silently
        // turns an excludeList (0x05) with CBOR byte-string ids into an empty list: read those here.
        let exclude_ids = take_credential_ids(&mut raw, 0x05)?;
        let options = take_options(&mut raw, 0x07)?;
        let param = take_bytes(&mut raw, 0x08)?;
        let protocol = take_u32(&mut raw, 0x09)?;
        let req =
            MakeCredentialRequest::try_from(raw).map_err(|_| CtapError::Ctap2MissingParameter)?;

        // Zero-length pinUvAuthParam: "which key is this?" probe (CTAP 2.1 §6.1.2 step 1).
        if param.as_ref().is_some_and(|p| p.is_empty()) {
            return Err(self.touch_probe(ui));
        }
        if !req
            .pub_key_cred_params
            .iter()
            .any(|p| p.type_ == "public-key" && p.alg == COSE_ES256 as i64)
        {
            return Err(CtapError::Ctap2UnsupportedAlgorithm);
        }
        if options.get("rk") == Some(&true) {
            return Err(CtapError::Ctap2UnsupportedOption);
        }
        if options.get("uv") == Some(&true) || options.get("up") == Some(&false) {
            return Err(CtapError::Ctap2InvalidOption);
        }
        let mut flags = FLAG_UP | FLAG_AT;
        match &param {
            Some(param) => {
                self.check_pin_uv_auth(
                    protocol,
                    param,
                    &req.client_data_hash,
                    PERM_MC,
                    &req.rp.id,
                )?;
                flags |= FLAG_UV;
            }
            // clientPin set, makeCredUvNotRqd absent: a PIN/UV token is required.
            None if self.pin_hash.is_some() => return Err(CtapError::Ctap2PUATRequired),
            None => {}
        }

        let rp_id_hash = sha256(req.rp.id.as_bytes());
        if exclude_ids.iter().any(|id| {
            self.credentials
                .iter()
                .any(|c| &c.id == id && c.rp_id_hash == rp_id_hash)
        }) {
            self.user_presence(ui)?;
            return Err(CtapError::Ctap2CredentialExcluded);
        }

        self.user_presence(ui)?;

        let key = SigningKey::from(random_secret_key());
        let cred_id = random_bytes::<32>().to_vec();
        self.sign_count = self.sign_count.wrapping_add(1);

        let public = PublicKey::from(key.verifying_key());
        let cose = serde_cbor_2::to_vec(&cose_es256(&public, COSE_ES256))
            .map_err(|_| CtapError::Ctap1Unspecified)?;
        let mut auth_data = Vec::with_capacity(37 + 18 + cred_id.len() + cose.len());
        auth_data.extend_from_slice(&rp_id_hash);
        auth_data.push(flags);
        auth_data.extend_from_slice(&self.sign_count.to_be_bytes());
        auth_data.extend_from_slice(&self.aaguid);
        auth_data.extend_from_slice(&(cred_id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&cred_id);
        auth_data.extend_from_slice(&cose);

        // Packed self-attestation: signed by the credential key itself, no x5c.
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&req.client_data_hash);
        let sig: DerSignature = key.sign(&signed);
        let att_stmt = Value::Map(BTreeMap::from([
            (Value::Text("alg".into()), Value::Integer(COSE_ES256)),
            (
                Value::Text("sig".into()),
                Value::Bytes(sig.as_bytes().to_vec()),
            ),
        ]));

        self.credentials.push(Credential {
            id: cred_id,
            rp_id_hash,
            key,
        });

        encode(
            MakeCredentialResponse {
                fmt: Some("packed".to_owned()),
                auth_data: Some(Value::Bytes(auth_data)),
                att_stmt: Some(att_stmt),
                ..Default::default()
            }
            .into(),
        )
    }

    fn get_assertion<U: UiCallback>(
        &mut self,
        mut raw: BTreeMap<u32, Value>,
        ui: &U,
    ) -> CtapResult<Vec<u8>> {
        // The crate's parser drops options (0x05) and the PIN/UV fields (0x06, 0x07): read those here.
        let options = take_options(&mut raw, 0x05)?;
        let param = take_bytes(&mut raw, 0x06)?;
        let protocol = take_u32(&mut raw, 0x07)?;
        let req =
            GetAssertionRequest::try_from(raw).map_err(|_| CtapError::Ctap2MissingParameter)?;

        if param.as_ref().is_some_and(|p| p.is_empty()) {
            return Err(self.touch_probe(ui));
        }
        if options.contains_key("rk") || options.get("uv") == Some(&true) {
            return Err(CtapError::Ctap2InvalidOption);
        }
        let up = options.get("up").copied().unwrap_or(true);
        let mut flags = 0;
        if let Some(param) = &param {
            self.check_pin_uv_auth(protocol, param, &req.client_data_hash, PERM_GA, &req.rp_id)?;
            flags |= FLAG_UV;
        }

        let rp_id_hash = sha256(req.rp_id.as_bytes());
        let index = req
            .allow_list
            .iter()
            .find_map(|d| {
                self.credentials
                    .iter()
                    .position(|c| c.id == d.id && c.rp_id_hash == rp_id_hash)
            })
            .ok_or(CtapError::Ctap2NoCredentials)?;

        if up {
            self.user_presence(ui)?;
            flags |= FLAG_UP;
        }

        self.sign_count = self.sign_count.wrapping_add(1);
        let mut auth_data = Vec::with_capacity(37);
        auth_data.extend_from_slice(&rp_id_hash);
        auth_data.push(flags);
        auth_data.extend_from_slice(&self.sign_count.to_be_bytes());

        let cred = &self.credentials[index];
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&req.client_data_hash);
        let sig: DerSignature = cred.key.sign(&signed);

        encode(
            GetAssertionResponse {
                credential: Some(PublicKeyCredentialDescriptor {
                    type_: "public-key".to_owned(),
                    id: cred.id.clone(),
                    transports: None,
                }),
                auth_data: Some(auth_data),
                signature: Some(sig.as_bytes().to_vec()),
                number_of_credentials: None,
                user_selected: None,
                large_blob_key: None,
            }
            .into(),
        )
    }

    fn regenerate_key_agreement(&mut self) {
        self.key_agreement = random_secret_key();
    }

    /// resetPinUvAuthToken: a fresh token invalidates every pinUvAuthParam made with the old one.
    fn reset_pin_token(&mut self) {
        self.pin_token = random_bytes();
        self.token = None;
    }

    fn shared_secret(&self, protocol: u32, platform_key: Option<Value>) -> CtapResult<Vec<u8>> {
        let peer = parse_cose_p256(platform_key.ok_or(CtapError::Ctap2MissingParameter)?)?;
        let z =
            p256::ecdh::diffie_hellman(self.key_agreement.to_nonzero_scalar(), peer.as_affine());
        Ok(kdf(protocol, z.raw_secret_bytes()))
    }

    /// Checks pinHashEnc against the stored PIN, counting retries (CTAP 2.1 §6.5.5.5 steps 3–6).
    fn verify_pin_hash(
        &mut self,
        protocol: u32,
        shared: &[u8],
        pin_hash_enc: Option<Vec<u8>>,
    ) -> CtapResult<()> {
        let stored = self.pin_hash.ok_or(CtapError::Ctap2PinNotSet)?;
        if self.pin_retries == 0 {
            return Err(CtapError::Ctap2PinBlocked);
        }
        if self.consecutive_mismatches >= 3 {
            return Err(CtapError::Ctap2PinAuthBlocked);
        }
        let enc = pin_hash_enc.ok_or(CtapError::Ctap2MissingParameter)?;
        self.pin_retries -= 1;
        let given = proto_decrypt(protocol, shared, &enc)?;
        if given.as_slice() != stored.as_slice() {
            self.regenerate_key_agreement();
            self.consecutive_mismatches += 1;
            return Err(if self.pin_retries == 0 {
                CtapError::Ctap2PinBlocked
            } else if self.consecutive_mismatches >= 3 {
                CtapError::Ctap2PinAuthBlocked
            } else {
                CtapError::Ctap2PinInvalid
            });
        }
        self.pin_retries = MAX_PIN_RETRIES;
        self.consecutive_mismatches = 0;
        Ok(())
    }

    /// Decrypts and checks a newPinEnc (64 bytes of PIN, zero padded) and returns the PIN's hash.
    fn decrypt_new_pin(
        &self,
        protocol: u32,
        shared: &[u8],
        new_pin_enc: &[u8],
    ) -> CtapResult<[u8; 16]> {
        let padded = proto_decrypt(protocol, shared, new_pin_enc)?;
        if padded.len() != 64 {
            return Err(CtapError::Ctap1InvalidParameter);
        }
        let len = padded.iter().position(|b| *b == 0).unwrap_or(64);
        let pin =
            std::str::from_utf8(&padded[..len]).map_err(|_| CtapError::Ctap2PinPolicyViolation)?;
        if pin.chars().count() < 4 || len > 63 {
            return Err(CtapError::Ctap2PinPolicyViolation);
        }
        Ok(pin_hash(pin))
    }

    fn client_pin(&mut self, mut raw: BTreeMap<u32, Value>) -> CtapResult<Vec<u8>> {
        let protocol = take_u32(&mut raw, 0x01)?;
        let sub = take_u32(&mut raw, 0x02)?.ok_or(CtapError::Ctap2MissingParameter)?;
        let platform_key = raw.remove(&0x03);
        let param = take_bytes(&mut raw, 0x04)?;
        let new_pin_enc = take_bytes(&mut raw, 0x05)?;
        let pin_hash_enc = take_bytes(&mut raw, 0x06)?;
        let permissions = take_u32(&mut raw, 0x09)?;
        let rp_id = match raw.remove(&0x0A) {
            None => None,
            Some(Value::Text(t)) => Some(t),
            Some(_) => return Err(CtapError::Ctap2CborUnexpectedType),
        };

        match sub {
            // getPinRetries
            0x01 => encode(BTreeMap::from([
                (0x03, Value::Integer(self.pin_retries.into())),
                (0x04, Value::Bool(false)),
            ])),
            // getKeyAgreement
            0x02 => {
                self.check_protocol(protocol)?;
                let pk = self.key_agreement.public_key();
                // alg -25: ECDH-ES+HKDF-256, the value CTAP mandates here whatever the protocol.
                encode(BTreeMap::from([(0x01, cose_es256(&pk, -25))]))
            }
            // setPIN
            0x03 => {
                let protocol = self.check_protocol(protocol)?;
                let (Some(param), Some(new_pin_enc)) = (param, new_pin_enc) else {
                    return Err(CtapError::Ctap2MissingParameter);
                };
                if self.pin_hash.is_some() {
                    return Err(CtapError::Ctap2NotAllowed);
                }
                let shared = self.shared_secret(protocol, platform_key)?;
                if !proto_verify(protocol, &shared, &new_pin_enc, &param) {
                    return Err(CtapError::Ctap2PinAuthInvalid);
                }
                self.pin_hash = Some(self.decrypt_new_pin(protocol, &shared, &new_pin_enc)?);
                self.pin_retries = MAX_PIN_RETRIES;
                Ok(Vec::new())
            }
            // changePIN
            0x04 => {
                let protocol = self.check_protocol(protocol)?;
                let (Some(param), Some(new_pin_enc), Some(enc)) =
                    (param, new_pin_enc, pin_hash_enc.clone())
                else {
                    return Err(CtapError::Ctap2MissingParameter);
                };
                if self.pin_retries == 0 {
                    return Err(CtapError::Ctap2PinBlocked);
                }
                let shared = self.shared_secret(protocol, platform_key)?;
                let mut message = new_pin_enc.clone();
                message.extend_from_slice(&enc);
                if !proto_verify(protocol, &shared, &message, &param) {
                    return Err(CtapError::Ctap2PinAuthInvalid);
                }
                self.verify_pin_hash(protocol, &shared, pin_hash_enc)?;
                self.pin_hash = Some(self.decrypt_new_pin(protocol, &shared, &new_pin_enc)?);
                self.reset_pin_token();
                Ok(Vec::new())
            }
            // getPinToken (legacy: mc + ga, no RP binding) and
            // getPinUvAuthTokenUsingPinWithPermissions (CTAP 2.1)
            0x05 | 0x09 => {
                let protocol = self.check_protocol(protocol)?;
                let (permissions, rp_id) = if sub == 0x05 {
                    if permissions.is_some() || rp_id.is_some() {
                        return Err(CtapError::Ctap1InvalidParameter);
                    }
                    (PERM_MC | PERM_GA, None)
                } else {
                    let p = permissions.ok_or(CtapError::Ctap2MissingParameter)?;
                    if p == 0 {
                        return Err(CtapError::Ctap1InvalidParameter);
                    }
                    if p & !(u32::from(PERM_MC | PERM_GA)) != 0 {
                        // credMgmt, bioEnroll, largeBlobWrite, authnrCfg: not offered by this key.
                        return Err(CtapError::Ctap2UnauthorizedPermission);
                    }
                    if rp_id.is_none() {
                        return Err(CtapError::Ctap2MissingParameter);
                    }
                    (p as u8, rp_id)
                };
                if !self.config.pin_uv_auth_token && sub == 0x09 {
                    return Err(CtapError::Ctap2InvalidSubcommand);
                }
                if self.pin_hash.is_none() {
                    return Err(CtapError::Ctap2PinNotSet);
                }
                let shared = self.shared_secret(protocol, platform_key)?;
                self.verify_pin_hash(protocol, &shared, pin_hash_enc)?;
                self.reset_pin_token();
                self.token = Some(PinToken {
                    protocol,
                    permissions,
                    rp_id,
                });
                let enc = proto_encrypt(protocol, &shared, &self.pin_token);
                encode(BTreeMap::from([(0x02, Value::Bytes(enc))]))
            }
            _ => Err(CtapError::Ctap2InvalidSubcommand),
        }
    }

    fn dispatch<U: UiCallback>(&mut self, cmd: &[u8], ui: &U) -> CtapResult<Vec<u8>> {
        let (&code, body) = cmd.split_first().ok_or(CtapError::Ctap1InvalidLength)?;
        let parse = || -> CtapResult<BTreeMap<u32, Value>> {
            if body.is_empty() {
                return Ok(BTreeMap::new());
            }
            let Value::Map(m) =
                serde_cbor_2::from_slice(body).map_err(|_| CtapError::Ctap2InvalidCBOR)?
            else {
                return Err(CtapError::Ctap2CborUnexpectedType);
            };
            m.into_iter()
                .map(|(k, v)| match k {
                    Value::Integer(i) => u32::try_from(i)
                        .map(|k| (k, v))
                        .map_err(|_| CtapError::Ctap2CborUnexpectedType),
                    _ => Err(CtapError::Ctap2CborUnexpectedType),
                })
                .collect()
        };
        match code {
            CMD_GET_INFO => self.get_info(),
            CMD_MAKE_CREDENTIAL => {
                let raw = parse()?;
                self.make_credential(raw, ui)
            }
            CMD_GET_ASSERTION => {
                let raw = parse()?;
                self.get_assertion(raw, ui)
            }
            CMD_CLIENT_PIN => {
                let raw = parse()?;
                self.client_pin(raw)
            }
            CMD_RESET => {
                self.user_presence(ui)?;
                let config = Config {
                    pin: None,
                    ..self.config.clone()
                };
                let touch_requests = self.touch_requests;
                let aaguid = self.aaguid;
                let file = self.file.take();
                *self = State::new(config);
                self.touch_requests = touch_requests;
                self.aaguid = aaguid;
                self.file = file;
                Ok(Vec::new())
            }
            CMD_SELECTION => self.user_presence(ui).map(|()| Vec::new()),
            _ => Err(CtapError::Ctap1InvalidCommand),
        }
    }
}

fn uuid_from(bytes: [u8; 16]) -> uuid::Uuid {
    uuid::Uuid::from_bytes(bytes)
}

impl SoftCtap2Device {
    /// A new device in the given state.
    pub fn new(config: Config) -> Self {
        Self {
            state: Arc::new(Mutex::new(State::new(config))),
        }
    }

    /// A new device whose persistent state lives in `path` (a new file, mode 0600; an existing file is
    /// never overwritten: [`io::ErrorKind::AlreadyExists`]). See [`persist`] for what the file holds
    /// — in clear.
    pub fn create_file(path: &Path, config: Config) -> io::Result<Self> {
        let mut state = State::new(config);
        // Only the PIN's hash is kept; the clear PIN in the config is not needed any more.
        state.config.pin = None;
        state.file = Some(path.to_path_buf());
        persist::write_new(path, &state.to_file_state().to_json()?)?;
        Ok(Self {
            state: Arc::new(Mutex::new(state)),
        })
    }

    /// The device saved in `path` by [`SoftCtap2Device::create_file`], freshly "plugged in". Every
    /// command that changes the persistent state writes it back.
    pub fn open_file(path: &Path) -> io::Result<Self> {
        let bytes = persist::read(path)?;
        let file_state = persist::FileState::from_json(path, &bytes)?;
        Ok(Self {
            state: Arc::new(Mutex::new(State::from_file_state(&file_state, path)?)),
        })
    }

    /// The file this device is saved in, if any.
    pub fn file(&self) -> Option<PathBuf> {
        self.lock().file.clone()
    }

    /// The AAGUID the device reports.
    pub fn aaguid(&self) -> [u8; 16] {
        self.lock().aaguid
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic inside a test while holding the lock must not hide the original failure.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes what the simulated user does on the next presence requests.
    pub fn set_presence(&self, presence: Presence) {
        self.lock().config.presence = presence;
    }

    /// PIN retries left (what getPinRetries answers).
    pub fn pin_retries(&self) -> u8 {
        self.lock().pin_retries
    }

    /// Whether a PIN is set.
    pub fn pin_is_set(&self) -> bool {
        self.lock().pin_hash.is_some()
    }

    /// The global signature counter: the value in the last authenticator data produced.
    pub fn sign_count(&self) -> u32 {
        self.lock().sign_count
    }

    /// Sets the signature counter, e.g. back to an older value to imitate a cloned key.
    pub fn set_sign_count(&self, value: u32) {
        self.lock().sign_count = value;
    }

    /// How many times the key has asked for a touch.
    pub fn touch_requests(&self) -> u32 {
        self.lock().touch_requests
    }

    /// Number of credentials the key holds.
    pub fn credential_count(&self) -> usize {
        self.lock().credentials.len()
    }

    /// Unplug and replug: new key-agreement key, pinUvAuthToken discarded, the "3 wrong PINs in a row"
    /// block lifted. Credentials, PIN, retries and counter survive (they are "in flash").
    pub fn power_cycle(&self) {
        let mut s = self.lock();
        s.regenerate_key_agreement();
        s.reset_pin_token();
        s.consecutive_mismatches = 0;
    }
}

#[async_trait]
impl Token for SoftCtap2Device {
    type Id = &'static str;

    fn get_transport(&self) -> AuthenticatorTransport {
        // It stands in for a USB key.
        AuthenticatorTransport::Usb
    }

    async fn transmit_raw<U>(&mut self, cmd: &[u8], ui: &U) -> Result<Vec<u8>, WebauthnCError>
    where
        U: UiCallback,
    {
        let mut state = self.lock();
        let before = state.persistent_fingerprint();
        let result = state.dispatch(cmd, ui);
        // Like flash on a real key: a decremented retry counter is written even when the command
        // fails. A state that cannot be written fails the command (a credential that would be lost
        // must not be handed out).
        if state.file.is_some() && state.persistent_fingerprint() != before {
            state
                .save()
                .map_err(|e| WebauthnCError::IoError(format!("saving the twin state: {e}")))?;
        }
        result.map_err(WebauthnCError::Ctap)
    }

    async fn cancel(&mut self) -> Result<(), WebauthnCError> {
        Ok(())
    }

    async fn init(&mut self) -> Result<(), WebauthnCError> {
        Ok(())
    }

    async fn close(&mut self) -> Result<(), WebauthnCError> {
        Ok(())
    }
}

/// A [`UiCallback`] for tests: answers PIN requests with a fixed PIN (or cancels when it has none)
/// and counts the calls.
#[derive(Debug, Default)]
pub struct TestUi {
    pin: Mutex<Option<String>>,
    pin_requests: std::sync::atomic::AtomicU32,
    touch_prompts: std::sync::atomic::AtomicU32,
}

impl TestUi {
    /// A UI whose user types `pin` when asked.
    pub fn with_pin(pin: &str) -> Self {
        let ui = Self::default();
        ui.set_pin(Some(pin));
        ui
    }

    /// Changes what the user types next (`None`: the user cancels the PIN prompt).
    pub fn set_pin(&self, pin: Option<&str>) {
        *self.pin.lock().unwrap_or_else(|e| e.into_inner()) = pin.map(str::to_owned);
    }

    /// How many times the client asked for the PIN.
    pub fn pin_requests(&self) -> u32 {
        self.pin_requests.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many times the "touch your key" prompt was shown.
    pub fn touch_prompts(&self) -> u32 {
        self.touch_prompts.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl UiCallback for TestUi {
    fn request_pin(&self) -> Option<String> {
        self.pin_requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.pin.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn request_touch(&self) {
        self.touch_prompts
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn processing(&self) {}

    fn fingerprint_enrollment_feedback(&self, _: u32, _: Option<EnrollSampleStatus>) {}

    fn cable_qr_code(&self, _: webauthn_authenticator_rs::types::CableRequestType, _: String) {}

    fn dismiss_qr_code(&self) {}

    fn cable_status_update(&self, _: webauthn_authenticator_rs::types::CableState) {}
}
