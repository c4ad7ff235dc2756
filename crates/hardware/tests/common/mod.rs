//! Shared test helpers: a scripted [`Prompt`] and the vault's relying party, built as custos-core
//! builds it (webauthn-rs-core 0.6, UV required, ES256, direct attestation).
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use custos_core::hardware::{Pin, ORIGIN, RP_ID};
use custos_hardware::Prompt;
use url::Url;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AuthenticationResult, AuthenticationState, COSEAlgorithm,
    CreationChallengeResponse, Credential, PublicKeyCredential, RegisterPublicKeyCredential,
    RegistrationState, RequestChallengeResponse, UserVerificationPolicy,
};
use webauthn_rs_core::WebauthnCore;

/// A person who types a fixed PIN (or cancels) and touches when asked; counts the prompts.
#[derive(Default)]
pub struct ScriptedPrompt {
    pin: Mutex<Option<String>>,
    pub pins: AtomicU32,
    pub touches: AtomicU32,
    pub dones: AtomicU32,
    pub devices: Mutex<Vec<String>>,
}

impl ScriptedPrompt {
    pub fn with_pin(pin: &str) -> std::sync::Arc<Self> {
        let p = Self::default();
        p.set_pin(Some(pin));
        std::sync::Arc::new(p)
    }

    pub fn set_pin(&self, pin: Option<&str>) {
        *self.pin.lock().unwrap_or_else(|e| e.into_inner()) = pin.map(str::to_owned);
    }

    pub fn pins(&self) -> u32 {
        self.pins.load(Ordering::SeqCst)
    }

    pub fn touches(&self) -> u32 {
        self.touches.load(Ordering::SeqCst)
    }

    pub fn dones(&self) -> u32 {
        self.dones.load(Ordering::SeqCst)
    }
}

impl Prompt for ScriptedPrompt {
    fn pin(&self, device: &str) -> Option<Pin> {
        self.pins.fetch_add(1, Ordering::SeqCst);
        self.devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(device.to_owned());
        self.pin
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .map(Pin::new)
    }

    fn touch(&self, device: &str) {
        self.touches.fetch_add(1, Ordering::SeqCst);
        self.devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(device.to_owned());
    }

    fn done(&self) {
        self.dones.fetch_add(1, Ordering::SeqCst);
    }
}

/// The vault's relying party, as custos-core's presence module builds it.
pub struct Rp(WebauthnCore);

impl Rp {
    pub fn new() -> Self {
        Rp(WebauthnCore::new_unsafe_experts_only(
            "Custos",
            RP_ID,
            vec![Url::parse(ORIGIN).expect("origin")],
            Duration::from_secs(60),
            None,
            None,
        ))
    }

    pub fn start_registration(&self, name: &str) -> (CreationChallengeResponse, RegistrationState) {
        let builder = self
            .0
            .new_challenge_register_builder(name.as_bytes(), name, name)
            .expect("builder")
            .attestation(AttestationConveyancePreference::Direct)
            .user_verification_policy(UserVerificationPolicy::Required)
            .credential_algorithms(vec![COSEAlgorithm::ES256]);
        self.0
            .generate_challenge_register(builder)
            .expect("challenge")
    }

    pub fn finish_registration(
        &self,
        reg: &RegisterPublicKeyCredential,
        state: &RegistrationState,
    ) -> Credential {
        self.0
            .register_credential(reg, state, None)
            .expect("the RP accepts the registration")
    }

    pub fn start_assertion(
        &self,
        cred: &Credential,
    ) -> (RequestChallengeResponse, AuthenticationState) {
        let builder = self
            .0
            .new_challenge_authenticate_builder(
                vec![cred.clone()],
                Some(UserVerificationPolicy::Required),
            )
            .expect("builder");
        self.0
            .generate_challenge_authenticate(builder)
            .expect("challenge")
    }

    pub fn finish_assertion(
        &self,
        pkc: &PublicKeyCredential,
        state: &AuthenticationState,
    ) -> AuthenticationResult {
        self.0
            .authenticate_credential(pkc, state)
            .expect("the RP accepts the assertion")
    }
}
