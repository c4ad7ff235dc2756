//! Presence: FIDO2 registrations and assertions verified by webauthn-rs-core, Custos being its own
//! relying party, with challenges that bind the operation they authorize.
//!
//! webauthn-rs draws a random challenge; Custos replaces it with
//! `SHA-256(domain ‖ vault id ‖ purpose ‖ nonce)` where the purpose names the operation (kind, target,
//! requester, request id) and the nonce is fresh. The key signs clientDataJSON, which holds that
//! challenge, so an assertion made for one operation can never verify for another, and the single-use
//! state is dropped after one verification (a replay meets a different challenge).

use serde::{de::DeserializeOwned, Serialize};
use sha2::{Digest, Sha256};
use url::Url;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AttestationMetadata, AuthenticationState, COSEAlgorithm,
    CreationChallengeResponse, Credential, ParsedAttestationData, PublicKeyCredential,
    RegisterPublicKeyCredential, RegistrationState, RequestChallengeResponse,
    UserVerificationPolicy,
};
use webauthn_rs_core::WebauthnCore;

use crate::error::{Error, Result};
use crate::hardware::{ORIGIN, RP_ID};
use crate::secret::random_bytes;

const CHALLENGE_DOMAIN: &[u8] = b"custos-presence-v1\0";

/// How long a key has to answer.
const DEVICE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

pub(crate) struct RelyingParty {
    core: WebauthnCore,
}

/// A challenge in flight: the options for the key and the state that will verify its answer.
pub(crate) struct Challenge<S> {
    pub options: S,
    pub challenge_hex: String,
}

/// What a verified assertion proved.
pub(crate) struct Verified {
    pub credential_id: Vec<u8>,
    pub counter: u32,
    pub user_verified: bool,
}

/// `SHA-256(domain ‖ vault id ‖ len ‖ purpose ‖ nonce)`.
pub(crate) fn bound_challenge(vault_id: &[u8; 16], purpose: &[u8]) -> Result<[u8; 32]> {
    let nonce: [u8; 32] = random_bytes()?;
    let mut h = Sha256::new();
    h.update(CHALLENGE_DOMAIN);
    h.update(vault_id);
    h.update((purpose.len() as u64).to_be_bytes());
    h.update(purpose);
    h.update(nonce);
    Ok(h.finalize().into())
}

/// Put `challenge` into a webauthn-rs state (which keeps its challenge private) through its serde form.
fn with_challenge<S: Serialize + DeserializeOwned>(
    state: &S,
    encoded: &serde_json::Value,
) -> Result<S> {
    let mut v = serde_json::to_value(state).map_err(|e| Error::Internal(e.to_string()))?;
    match v.get_mut("challenge") {
        Some(c) => *c = encoded.clone(),
        None => return Err(Error::Internal("webauthn state has no challenge".into())),
    }
    serde_json::from_value(v).map_err(|e| Error::Internal(e.to_string()))
}

fn refused(e: WebauthnError) -> Error {
    Error::AssertionRefused(match e {
        WebauthnError::MismatchedChallenge => {
            "it was made for another operation or is a replay (challenge mismatch)".into()
        }
        WebauthnError::UserNotVerified => {
            "the key did not verify its PIN (user verification is required)".into()
        }
        WebauthnError::UserNotPresent => "the key was not touched (user presence missing)".into(),
        WebauthnError::CredentialNotFound => {
            "the key used a credential this custodian has not enrolled".into()
        }
        other => format!("verification failed ({other:?})"),
    })
}

impl RelyingParty {
    pub fn new() -> Result<RelyingParty> {
        let origin = Url::parse(ORIGIN).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(RelyingParty {
            core: WebauthnCore::new_unsafe_experts_only(
                "Custos",
                RP_ID,
                vec![origin],
                DEVICE_TIMEOUT,
                None,
                None,
            ),
        })
    }

    pub fn start_registration(
        &self,
        user_id: &[u8],
        name: &str,
        exclude: Vec<Vec<u8>>,
        challenge: &[u8; 32],
    ) -> Result<Challenge<(CreationChallengeResponse, RegistrationState)>> {
        let builder = self
            .core
            .new_challenge_register_builder(user_id, name, name)
            .map_err(|e| Error::Internal(format!("{e:?}")))?
            .attestation(AttestationConveyancePreference::Direct)
            .user_verification_policy(UserVerificationPolicy::Required)
            .credential_algorithms(vec![COSEAlgorithm::ES256])
            .exclude_credentials(Some(exclude));
        let (mut ccr, state) = self
            .core
            .generate_challenge_register(builder)
            .map_err(|e| Error::Internal(format!("{e:?}")))?;
        ccr.public_key.challenge = challenge.to_vec();
        let encoded = serde_json::to_value(&ccr)
            .ok()
            .and_then(|v| v.pointer("/publicKey/challenge").cloned())
            .ok_or_else(|| Error::Internal("cannot encode the challenge".into()))?;
        let state = with_challenge(&state, &encoded)?;
        Ok(Challenge {
            options: (ccr, state),
            challenge_hex: hex::encode(challenge),
        })
    }

    pub fn finish_registration(
        &self,
        reg: &RegisterPublicKeyCredential,
        state: &RegistrationState,
    ) -> Result<Credential> {
        self.core
            .register_credential(reg, state, None)
            .map_err(|e| match e {
                WebauthnError::UserNotVerified => Error::Device(
                    "this FIDO2 key has no PIN: Custos requires one on every key. Set it (e.g. `ykman fido access change-pin`) and enrol again".into(),
                ),
                other => refused(other),
            })
    }

    pub fn start_assertion(
        &self,
        credentials: Vec<Credential>,
        challenge: &[u8; 32],
    ) -> Result<Challenge<(RequestChallengeResponse, AuthenticationState)>> {
        let builder = self
            .core
            .new_challenge_authenticate_builder(credentials, Some(UserVerificationPolicy::Required))
            .map_err(|e| Error::Internal(format!("{e:?}")))?;
        let (mut rcr, state) = self
            .core
            .generate_challenge_authenticate(builder)
            .map_err(|e| Error::Internal(format!("{e:?}")))?;
        rcr.public_key.challenge = challenge.to_vec();
        let encoded = serde_json::to_value(&rcr)
            .ok()
            .and_then(|v| v.pointer("/publicKey/challenge").cloned())
            .ok_or_else(|| Error::Internal("cannot encode the challenge".into()))?;
        let state = with_challenge(&state, &encoded)?;
        Ok(Challenge {
            options: (rcr, state),
            challenge_hex: hex::encode(challenge),
        })
    }

    /// Verify an assertion. A counter that did not grow is [`Error::PossibleClone`]'s raw form:
    /// `Err(None)` here, for the caller to name the custodian.
    pub fn finish_assertion(
        &self,
        pkc: &PublicKeyCredential,
        state: &AuthenticationState,
    ) -> std::result::Result<Verified, Option<Error>> {
        match self.core.authenticate_credential(pkc, state) {
            Ok(r) => Ok(Verified {
                credential_id: r.cred_id().to_vec(),
                counter: r.counter(),
                user_verified: r.user_verified(),
            }),
            Err(WebauthnError::CredentialPossibleCompromise) => Err(None),
            Err(e) => Err(Some(refused(e))),
        }
    }
}

/// The AAGUID of a registered credential: from the attestation metadata when webauthn-rs extracted
/// it, else from the authenticator data of the attestation object (bytes 37..53 when the
/// attested-credential flag is set). An all-zero AAGUID (anonymous) counts as none.
pub(crate) fn aaguid_of(c: &Credential, reg: &RegisterPublicKeyCredential) -> Option<String> {
    if let AttestationMetadata::Packed { aaguid } | AttestationMetadata::Tpm { aaguid, .. } =
        &c.attestation.metadata
    {
        return Some(aaguid.to_string());
    }
    let auth_data = cbor_bytes_after(reg.response.attestation_object.as_ref(), b"\x68authData")?;
    if auth_data.get(32)? & 0x40 == 0 {
        return None;
    }
    let a = auth_data.get(37..53)?;
    if a.iter().all(|b| *b == 0) {
        return None;
    }
    let h = hex::encode(a);
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// The CBOR byte string that follows `key` (an encoded text-string key) in `cbor`.
fn cbor_bytes_after<'a>(cbor: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let at = cbor.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = cbor.get(at..)?;
    let (len, skip) = match *rest.first()? {
        b @ 0x40..=0x57 => ((b - 0x40) as usize, 1),
        0x58 => (*rest.get(1)? as usize, 2),
        0x59 => (
            u16::from_be_bytes([*rest.get(1)?, *rest.get(2)?]) as usize,
            3,
        ),
        _ => return None,
    };
    rest.get(skip..skip + len)
}

/// A short description of the attestation a credential came with.
pub(crate) fn attestation_of(c: &Credential) -> String {
    let kind = match &c.attestation.data {
        ParsedAttestationData::Basic(_) => "basic (certificate chain)",
        ParsedAttestationData::Self_ => "self",
        ParsedAttestationData::AttCa(_) => "attestation CA",
        ParsedAttestationData::AnonCa(_) => "anonymization CA",
        ParsedAttestationData::ECDAA => "ECDAA",
        ParsedAttestationData::None => "none",
        ParsedAttestationData::Uncertain => "uncertain",
    };
    format!("{:?} {kind}", c.attestation_format).to_lowercase()
}
