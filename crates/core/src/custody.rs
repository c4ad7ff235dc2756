//! Custodians, their authenticators, the presence gate and the two-person rule.
//!
//! A vault with no custodian behaves like the foundation: whoever holds the passphrase acts (the window
//! and `custodian list` say so). Once a custodian exists, every mutation names its requester (`--as`),
//! the permission matrix applies, sensitive operations need the requester's fresh FIDO2 assertion bound
//! to the operation, and — once the officer activates the rules — the approvals the rule asks for.

use std::path::PathBuf;

use rusqlite::{params, Connection, Transaction};
use serde::{Deserialize, Serialize};
use webauthn_rs_core::proto::Credential;

use crate::audit::{Draft, Outcome};
use crate::clock::{now, rfc3339, Timestamp};
use crate::error::{Error, Result};
use crate::hardware::{DeviceIdentity, Fido2Client, Pin, PivCard, PIV_RETIRED_SLOTS};
use crate::keys::KeyState;
use crate::policy::{check_roles, roles_string, OpKind, Role, Rule, Rules};
use crate::presence::{aaguid_of, attestation_of, bound_challenge, RelyingParty};
use crate::seal::Purpose;
use crate::secret::random_bytes;
use crate::vault::{begin, Ctx, Vault};

/// One authenticator of a custodian, as stored (sealed).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthenticatorRecord {
    /// Random id, hex (short handle for revoke).
    pub id: String,
    pub device: DeviceIdentity,
    pub kind: AuthenticatorKind,
    pub enrolled: Timestamp,
    pub revoked: Option<Timestamp>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) enum AuthenticatorKind {
    Fido2 {
        /// The webauthn-rs credential: id, public key, sign counter, attestation.
        credential: Box<Credential>,
        aaguid: Option<String>,
        attestation: String,
    },
    Piv {
        serial: u32,
        slot: u8,
        /// SEC1 uncompressed P-256 public key, hex.
        public_key: String,
    },
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustodianRecord {
    pub name: String,
    pub roles: Vec<Role>,
    pub created: Timestamp,
    pub authenticators: Vec<AuthenticatorRecord>,
}

impl CustodianRecord {
    fn active(&self) -> impl Iterator<Item = &AuthenticatorRecord> {
        self.authenticators.iter().filter(|a| a.revoked.is_none())
    }
    /// The devices of this custodian's active FIDO2 keys.
    pub(crate) fn fido2_devices(&self) -> Vec<DeviceIdentity> {
        self.active()
            .filter(|a| matches!(a.kind, AuthenticatorKind::Fido2 { .. }))
            .map(|a| a.device.clone())
            .collect()
    }
    /// The SEC1 public keys of this custodian's active YubiKey PIV keys.
    pub(crate) fn piv_public_keys(&self) -> Vec<Vec<u8>> {
        self.active()
            .filter_map(|a| match &a.kind {
                AuthenticatorKind::Piv { public_key, .. } => hex::decode(public_key).ok(),
                AuthenticatorKind::Fido2 { .. } => None,
            })
            .collect()
    }
    fn fido2_credentials(&self) -> Vec<Credential> {
        self.active()
            .filter_map(|a| match &a.kind {
                AuthenticatorKind::Fido2 { credential, .. } => Some((**credential).clone()),
                AuthenticatorKind::Piv { .. } => None,
            })
            .collect()
    }
    fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
    fn enrolled(&self) -> bool {
        self.active().next().is_some()
    }
}

pub(crate) struct CustodianRow {
    pub id: [u8; 16],
    pub record: CustodianRecord,
}

/// An operation that may need presence and approvals. Serialized into requests and challenges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Operation {
    KeyRotate {
        key: String,
    },
    KeySetState {
        key: String,
        version: u32,
        state: KeyState,
    },
    KeyPolicy {
        key: String,
        rotate_every_secs: Option<u64>,
    },
    AuditExport {
        path: PathBuf,
    },
    CustodianAdd {
        name: String,
        roles: Vec<Role>,
    },
    CustodianRevoke {
        name: String,
        authenticator: String,
    },
    /// Replace a custodian's roles.
    CustodianRoles {
        name: String,
        roles: Vec<Role>,
    },
    /// A key already registered at request time; it becomes usable when the rule is met.
    CustodianEnroll {
        name: String,
        authenticator: String,
        device: String,
    },
    RulesSet {
        kind: OpKind,
        rule: Rule,
    },
    RulesActivate,
}

impl Operation {
    pub fn kind(&self) -> OpKind {
        match self {
            Operation::KeyRotate { .. } => OpKind::KeyRotate,
            Operation::KeySetState { state, .. } => match state {
                KeyState::Destroyed => OpKind::KeyDestroy,
                KeyState::Compromised => OpKind::KeyCompromise,
                _ => OpKind::KeySetState,
            },
            Operation::KeyPolicy { .. } => OpKind::KeyPolicy,
            Operation::AuditExport { .. } => OpKind::AuditExport,
            Operation::CustodianAdd { .. } => OpKind::CustodianAdd,
            Operation::CustodianRevoke { .. } => OpKind::CustodianRevoke,
            Operation::CustodianRoles { .. } => OpKind::CustodianRoles,
            Operation::CustodianEnroll { .. } => OpKind::CustodianEnroll,
            Operation::RulesSet { .. } | Operation::RulesActivate => OpKind::RulesChange,
        }
    }

    /// The custodian an operation is about, who therefore cannot approve it.
    pub fn subject(&self) -> Option<&str> {
        match self {
            Operation::CustodianAdd { name, .. }
            | Operation::CustodianRoles { name, .. }
            | Operation::CustodianRevoke { name, .. }
            | Operation::CustodianEnroll { name, .. } => Some(name),
            _ => None,
        }
    }

    /// For a person: "key.destroy payroll v1".
    pub fn describe(&self) -> String {
        let k = self.kind();
        match self {
            Operation::KeyRotate { key } => format!("{k} {key}"),
            Operation::KeySetState {
                key,
                version,
                state,
            } => {
                format!("{k} {key} v{version} -> {}", state.as_str())
            }
            Operation::KeyPolicy {
                key,
                rotate_every_secs,
            } => match rotate_every_secs {
                Some(s) => format!(
                    "{k} {key} every {}",
                    crate::keys::format_duration(std::time::Duration::from_secs(*s))
                ),
                None => format!("{k} {key} none"),
            },
            Operation::AuditExport { path } => format!("{k} to {}", path.display()),
            Operation::CustodianAdd { name, roles } | Operation::CustodianRoles { name, roles } => {
                format!("{k} {name} as {}", roles_string(roles))
            }
            Operation::CustodianRevoke {
                name,
                authenticator,
            } => format!("{k} {name} authenticator {authenticator}"),
            Operation::CustodianEnroll {
                name,
                authenticator,
                device,
            } => format!("{k} {name} authenticator {authenticator} ({device})"),
            Operation::RulesSet { kind, rule } => format!("{k}: {kind} needs {}", rule.describe()),
            Operation::RulesActivate => format!("{k}: activate the two-person rule"),
        }
    }
}

/// One touch: who, with which credential, at which counter, for which challenge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    pub custodian: String,
    pub authenticator: String,
    pub credential_id: String,
    pub counter: u32,
    pub user_present: bool,
    pub user_verified: bool,
    pub challenge: String,
    pub time: String,
    pub demo: bool,
}

impl Evidence {
    pub(crate) fn audit_text(&self) -> String {
        format!(
            "{} [cred {} counter {} UP{}{}]",
            self.custodian,
            &self.credential_id[..self.credential_id.len().min(16)],
            self.counter,
            if self.user_verified { "+UV" } else { "" },
            if self.demo { " DEMO key" } else { "" }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestStatus {
    Pending,
    Done,
    Failed,
    Expired,
}

impl RequestStatus {
    fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Done => "done",
            RequestStatus::Failed => "failed",
            RequestStatus::Expired => "expired",
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestRecord {
    pub operation: Operation,
    pub requester: String,
    pub requester_evidence: Option<Evidence>,
    pub rule: Rule,
    pub created: Timestamp,
    pub expires: Timestamp,
    pub approvals: Vec<Evidence>,
    pub status: RequestStatus,
    pub result: Option<String>,
    /// For an enrolment: the registered authenticator waiting for approval.
    pub authenticator: Option<AuthenticatorRecord>,
}

/// A request as listed (`approvals list --json`).
#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    pub id: String,
    pub operation: String,
    pub kind: OpKind,
    pub requester: String,
    pub approvals: Vec<Evidence>,
    pub needed: u32,
    pub approver_roles: Vec<Role>,
    pub status: RequestStatus,
    pub created: String,
    pub expires: String,
    pub result: Option<String>,
}

/// A custodian as listed.
#[derive(Debug, Clone, Serialize)]
pub struct CustodianView {
    pub name: String,
    pub roles: Vec<Role>,
    pub created: String,
    pub authenticators: Vec<AuthenticatorView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuthenticatorView {
    pub id: String,
    /// "fido2" or "piv".
    pub kind: String,
    pub device: DeviceIdentity,
    pub credential_id: Option<String>,
    pub counter: Option<u32>,
    pub aaguid: Option<String>,
    pub attestation: Option<String>,
    pub piv_serial: Option<u32>,
    pub piv_slot: Option<String>,
    pub public_key: Option<String>,
    pub enrolled: String,
    pub revoked: Option<String>,
}

/// The vault's custody state, for the roles-and-rules screen and `rules list`.
#[derive(Debug, Clone, Serialize)]
pub struct CustodyStatus {
    /// No custodian yet: whoever holds the passphrase acts.
    pub unguarded: bool,
    /// The two-person rule is active (one-way).
    pub enforced: bool,
    /// Software twins are enrolled: a demo vault, never production.
    pub demo: bool,
    pub acting_as: Option<String>,
    pub rules: Vec<RuleView>,
    /// Rules the enrolled custodians cannot meet today (activation is refused while any remain).
    pub unmet: Vec<String>,
    pub request_ttl_secs: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    pub operation: OpKind,
    pub requester_roles: Vec<Role>,
    pub presence: bool,
    pub approvals: u32,
    pub approver_roles: Vec<Role>,
}

/// What asking for an operation led to.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Performed {
    /// It ran; the text is its audit detail.
    Done { detail: String },
    /// It waits for approvals.
    Pending { request: RequestView },
}

fn view_of(id: &[u8; 16], r: &RequestRecord) -> RequestView {
    RequestView {
        id: hex::encode(&id[..6]),
        operation: r.operation.describe(),
        kind: r.operation.kind(),
        requester: r.requester.clone(),
        approvals: r.approvals.clone(),
        needed: r.rule.approvals,
        approver_roles: r.rule.approver_roles.clone(),
        status: r.status,
        created: rfc3339(r.created),
        expires: rfc3339(r.expires),
        result: r.result.clone(),
    }
}

fn authenticator_view(a: &AuthenticatorRecord) -> AuthenticatorView {
    let mut v = AuthenticatorView {
        id: a.id.clone(),
        kind: String::new(),
        device: a.device.clone(),
        credential_id: None,
        counter: None,
        aaguid: None,
        attestation: None,
        piv_serial: None,
        piv_slot: None,
        public_key: None,
        enrolled: rfc3339(a.enrolled),
        revoked: a.revoked.map(rfc3339),
    };
    match &a.kind {
        AuthenticatorKind::Fido2 {
            credential,
            aaguid,
            attestation,
        } => {
            v.kind = "fido2".into();
            v.credential_id = Some(hex::encode(&credential.cred_id));
            v.counter = Some(credential.counter);
            v.aaguid = aaguid.clone();
            v.attestation = Some(attestation.clone());
        }
        AuthenticatorKind::Piv {
            serial,
            slot,
            public_key,
        } => {
            v.kind = "piv".into();
            v.piv_serial = Some(*serial);
            v.piv_slot = Some(format!("{slot:02x}"));
            v.public_key = Some(public_key.clone());
        }
    }
    v
}

// ---- storage -------------------------------------------------------------------------------

/// The sealed rows of `table` (`id`, `record`), opened.
fn load_sealed<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    ctx: &Ctx,
    table: &str,
    purpose: Purpose,
) -> Result<Vec<([u8; 16], T)>> {
    let mut stmt = conn.prepare(&format!("SELECT id, record FROM {table} ORDER BY id"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, sealed)| {
            let id: [u8; 16] = id
                .try_into()
                .map_err(|_| Error::Tampered(format!("a row of {table} has a malformed id")))?;
            Ok((id, ctx.open_json(purpose, &id, 0, &sealed)?))
        })
        .collect()
}

/// Insert or replace a sealed row of `table`.
fn write_sealed<T: Serialize>(
    tx: &Transaction<'_>,
    ctx: &Ctx,
    table: &str,
    purpose: Purpose,
    id: &[u8; 16],
    value: &T,
) -> Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO {table} (id, record) VALUES (?1, ?2)
             ON CONFLICT(id) DO UPDATE SET record = excluded.record"
        ),
        params![&id[..], ctx.seal_json(purpose, id, 0, value)?],
    )?;
    Ok(())
}

pub(crate) fn load_custodians(conn: &Connection, ctx: &Ctx) -> Result<Vec<CustodianRow>> {
    Ok(load_sealed(conn, ctx, "custodians", Purpose::Custodian)?
        .into_iter()
        .map(|(id, record)| CustodianRow { id, record })
        .collect())
}

fn find_custodian(conn: &Connection, ctx: &Ctx, name: &str) -> Result<CustodianRow> {
    load_custodians(conn, ctx)?
        .into_iter()
        .find(|c| c.record.name == name)
        .ok_or_else(|| Error::NoSuchCustodian(name.into()))
}

fn write_custodian(tx: &Transaction<'_>, ctx: &Ctx, c: &CustodianRow) -> Result<()> {
    write_sealed(tx, ctx, "custodians", Purpose::Custodian, &c.id, &c.record)
}

pub(crate) fn load_rules(conn: &Connection, ctx: &Ctx) -> Result<Rules> {
    match crate::store::get_meta(conn, "rules")? {
        None => Ok(Rules::default()),
        Some(sealed) => ctx.open_json(Purpose::Rules, &[0u8; 16], 0, &sealed),
    }
}

fn write_rules(tx: &Transaction<'_>, ctx: &Ctx, rules: &Rules) -> Result<()> {
    crate::store::set_meta(
        tx,
        "rules",
        &ctx.seal_json(Purpose::Rules, &[0u8; 16], 0, rules)?,
    )
}

fn load_requests(conn: &Connection, ctx: &Ctx) -> Result<Vec<([u8; 16], RequestRecord)>> {
    let mut out: Vec<([u8; 16], RequestRecord)> =
        load_sealed(conn, ctx, "requests", Purpose::Request)?;
    out.sort_by_key(|(_, r)| r.created);
    Ok(out)
}

fn write_request(tx: &Transaction<'_>, ctx: &Ctx, id: &[u8; 16], r: &RequestRecord) -> Result<()> {
    write_sealed(tx, ctx, "requests", Purpose::Request, id, r)
}

/// Whether software twins were enrolled (sealed flag, one-way).
fn is_demo(conn: &Connection) -> Result<bool> {
    Ok(crate::store::get_meta(conn, "demo")?.is_some())
}

/// The demo flag must agree with the device: a production vault refuses twins, a demo vault refuses
/// hardware (it is not protected like production and must not be mistaken for it).
fn check_demo(conn: &Connection, device: &DeviceIdentity, has_custodians: bool) -> Result<()> {
    let demo = is_demo(conn)?;
    if device.demo && !demo && has_custodians {
        return Err(Error::DemoMismatch(
            "this vault uses real hardware keys: a DEMO software key cannot be enrolled in it"
                .into(),
        ));
    }
    if !device.demo && demo {
        return Err(Error::DemoMismatch(
            "this is a DEMO vault (software keys): enrol real hardware keys in a new vault, never in a demo one".into(),
        ));
    }
    Ok(())
}

// ---- the vault's custody API -----------------------------------------------------------------

impl Vault {
    /// Name the acting custodian for this session (`--as NAME`). `None` acts without a name, which only
    /// a vault without custodians allows for mutations.
    pub fn act_as(&mut self, name: Option<&str>) -> Result<()> {
        match name {
            None => {
                self.acting = None;
            }
            Some(n) => {
                let c = find_custodian(&self.conn, &self.ctx, n)?;
                self.acting = Some(c.record.name.clone());
                self.ctx.actor = c.record.name;
            }
        }
        Ok(())
    }

    pub fn acting_as(&self) -> Option<&str> {
        self.acting.as_deref()
    }

    pub fn custodians(&self) -> Result<Vec<CustodianView>> {
        Ok(load_custodians(&self.conn, &self.ctx)?
            .into_iter()
            .map(|c| CustodianView {
                name: c.record.name.clone(),
                roles: c.record.roles.clone(),
                created: rfc3339(c.record.created),
                authenticators: c
                    .record
                    .authenticators
                    .iter()
                    .map(authenticator_view)
                    .collect(),
            })
            .collect())
    }

    pub fn custody_status(&self) -> Result<CustodyStatus> {
        let rules = load_rules(&self.conn, &self.ctx)?;
        let custodians = load_custodians(&self.conn, &self.ctx)?;
        Ok(CustodyStatus {
            unguarded: custodians.is_empty(),
            enforced: rules.enforced,
            demo: is_demo(&self.conn)?,
            acting_as: self.acting.clone(),
            rules: OpKind::ALL
                .into_iter()
                .map(|k| {
                    let r = rules.rule(k);
                    RuleView {
                        operation: k,
                        requester_roles: k.requester_roles().to_vec(),
                        presence: k.needs_presence(),
                        approvals: r.approvals,
                        approver_roles: r.approver_roles,
                    }
                })
                .collect(),
            unmet: unmet_rules(&rules, &custodians),
            request_ttl_secs: rules.request_ttl_secs,
        })
    }

    /// Whether custody applies: at least one custodian exists.
    fn guarded(&self) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM custodians", [], |r| {
                r.get::<_, i64>(0)
            })?
            > 0)
    }

    /// The permission check every mutation starts with. In a guarded vault the requester must be named
    /// and hold a role the matrix allows; an operation that needs presence must come through
    /// [`Vault::perform`] (which grants exactly that kind once, after the touch).
    pub(crate) fn authorize(&mut self, kind: OpKind) -> Result<()> {
        let granted = self.granted.take();
        if !self.guarded()? {
            return Ok(());
        }
        let me = self.requester()?;
        check_requester_role(&me.record, kind)?;
        if kind.needs_presence() && granted != Some(kind) {
            return Err(Error::AssertionRefused(format!(
                "{kind} needs {}'s touch: use the operation's command or screen, which asks for it",
                me.record.name
            )));
        }
        Ok(())
    }

    fn requester(&self) -> Result<CustodianRow> {
        let name = self.acting.as_deref().ok_or(Error::IdentityRequired)?;
        find_custodian(&self.conn, &self.ctx, name)
    }

    /// Ask for an operation as the acting custodian: checks the role, takes the requester's touch
    /// (`device`) when the operation needs presence, then runs it — or, when the rule asks for
    /// approvals, records a pending request and returns it.
    pub fn perform(
        &mut self,
        op: Operation,
        device: Option<&mut dyn Fido2Client>,
    ) -> Result<Performed> {
        let kind = op.kind();
        self.refusal_recorded = false;
        let result = self.perform_inner(&op, device);
        if let Err(e) = &result {
            if !self.refusal_recorded {
                self.record_refusal(kind.as_str(), (None, None), e);
            }
        }
        result
    }

    fn perform_inner(
        &mut self,
        op: &Operation,
        device: Option<&mut dyn Fido2Client>,
    ) -> Result<Performed> {
        let kind = op.kind();
        if !self.guarded()? {
            return self.execute(op, None, &[], None);
        }
        let me = self.requester()?;
        check_requester_role(&me.record, kind)?;
        self.precheck(op)?;
        let nonce: [u8; 16] = random_bytes()?;
        let evidence = if kind.needs_presence() {
            let purpose = purpose_bytes("request", &nonce, &me.record.name, op)?;
            Some(self.presence(&me, &purpose, device)?)
        } else {
            None
        };
        self.run_or_request(op.clone(), me.record.name, evidence, None)
    }

    /// Run `op` now if its rule needs no approval, else record a pending request.
    fn run_or_request(
        &mut self,
        op: Operation,
        requester: String,
        evidence: Option<Evidence>,
        authenticator: Option<AuthenticatorRecord>,
    ) -> Result<Performed> {
        let rules = load_rules(&self.conn, &self.ctx)?;
        let rule = rules.approvals_needed(op.kind());
        if rule.approvals == 0 {
            return self.execute(&op, evidence.as_ref(), &[], authenticator);
        }
        let request_id: [u8; 16] = random_bytes()?;
        let created = now();
        let record = RequestRecord {
            requester_evidence: evidence,
            rule,
            created,
            expires: created + rules.request_ttl_secs as i64,
            approvals: Vec::new(),
            status: RequestStatus::Pending,
            result: None,
            authenticator,
            operation: op,
            requester,
        };
        let view = view_of(&request_id, &record);
        let (conn, ctx) = (&mut self.conn, &self.ctx);
        let tx = begin(conn, ctx)?;
        write_request(&tx, ctx, &request_id, &record)?;
        ctx.append(
            &tx,
            ctx.draft(
                "request.create",
                None,
                None,
                format!(
                    "request {}: {}; needs {}; requested by {}",
                    view.id,
                    record.operation.describe(),
                    record.rule.describe(),
                    record
                        .requester_evidence
                        .as_ref()
                        .map_or(record.requester.clone(), Evidence::audit_text)
                ),
            ),
        )?;
        tx.commit()?;
        Ok(Performed::Pending { request: view })
    }

    /// The requester's touch for an operation that is not an [`Operation`] (changing the passphrase,
    /// re-calibrating the KDF, binding the vault to a PIV card): grants that kind once. Refused when
    /// the rule asks for approvals. A vault without custodians needs no touch.
    pub fn touch_for(&mut self, kind: OpKind, device: Option<&mut dyn Fido2Client>) -> Result<()> {
        let result = (|| {
            if !self.guarded()? {
                return Ok(());
            }
            let me = self.requester()?;
            check_requester_role(&me.record, kind)?;
            let rule = load_rules(&self.conn, &self.ctx)?.approvals_needed(kind);
            if rule.approvals > 0 {
                return Err(Error::RuleUnmeetable(format!(
                    "{kind} needs {} and cannot wait in a request (it carries a secret): set its rule to 0 approvals with a rules change, which itself needs approval",
                    rule.describe()
                )));
            }
            let nonce: [u8; 16] = random_bytes()?;
            let purpose = purpose_bytes_raw(kind.as_str(), &nonce, &me.record.name)?;
            let e = self.presence(&me, &purpose, device)?;
            self.ctx.evidence = Some(format!("; requested by {}", e.audit_text()));
            self.granted = Some(kind);
            Ok(())
        })();
        if let Err(e) = &result {
            self.record_refusal(kind.as_str(), (None, None), e);
        }
        result
    }

    /// Checks that make a request pointless, done before anyone touches a key.
    fn precheck(&self, op: &Operation) -> Result<()> {
        match op {
            Operation::CustodianAdd { name, roles } => {
                crate::keys::validate_name(name)?;
                check_roles(name, roles)?;
                if find_custodian(&self.conn, &self.ctx, name).is_ok() {
                    return Err(Error::CustodianExists(name.clone()));
                }
            }
            Operation::KeySetState {
                key,
                version,
                state,
            } => {
                // Refuse an illegal transition before anyone touches a key for it.
                let d = self.key_detail(key)?;
                let v = d
                    .versions
                    .iter()
                    .find(|v| v.version == *version)
                    .ok_or_else(|| Error::NoSuchVersion {
                        name: key.clone(),
                        version: *version,
                    })?;
                if !v.state.can_become(*state) {
                    return Err(Error::IllegalTransition {
                        name: key.clone(),
                        version: *version,
                        from: v.state.as_str(),
                        to: state.as_str(),
                        allowed: crate::keys::describe_allowed(v.state),
                    });
                }
            }
            Operation::KeyRotate { key } | Operation::KeyPolicy { key, .. } => {
                self.key_detail(key)?;
            }
            Operation::CustodianRevoke {
                name,
                authenticator,
            } => {
                let c = find_custodian(&self.conn, &self.ctx, name)?;
                check_revocable(&self.conn, &self.ctx, &c, authenticator)?;
            }
            Operation::CustodianRoles { name, roles } => {
                check_roles(name, roles)?;
                let mut all = load_custodians(&self.conn, &self.ctx)?;
                check_new_roles(&mut all, name, roles, &load_rules(&self.conn, &self.ctx)?)?;
            }
            Operation::RulesActivate => {
                let custodians = load_custodians(&self.conn, &self.ctx)?;
                let unmet = unmet_rules(&load_rules(&self.conn, &self.ctx)?, &custodians);
                if !unmet.is_empty() {
                    return Err(Error::RuleUnmeetable(format!(
                        "the two-person rule cannot be activated yet: {}",
                        unmet.join("; ")
                    )));
                }
            }
            Operation::RulesSet { rule, .. } => {
                if rule.approvals > 0 && rule.approver_roles.is_empty() {
                    return Err(Error::RuleUnmeetable(
                        "a rule that needs approvals must name the approvers' roles".into(),
                    ));
                }
            }
            Operation::AuditExport { .. } | Operation::CustodianEnroll { .. } => {}
        }
        Ok(())
    }

    /// The pending and past requests (expired ones are marked so on the way).
    pub fn requests(&mut self) -> Result<Vec<RequestView>> {
        self.expire_requests()?;
        Ok(load_requests(&self.conn, &self.ctx)?
            .iter()
            .map(|(id, r)| view_of(id, r))
            .collect())
    }

    fn expire_requests(&mut self) -> Result<()> {
        let t = now();
        let expired: Vec<_> = load_requests(&self.conn, &self.ctx)?
            .into_iter()
            .filter(|(_, r)| r.status == RequestStatus::Pending && r.expires <= t)
            .collect();
        if expired.is_empty() {
            return Ok(());
        }
        let (conn, ctx) = (&mut self.conn, &self.ctx);
        let tx = begin(conn, ctx)?;
        for (id, mut r) in expired {
            r.status = RequestStatus::Expired;
            write_request(&tx, ctx, &id, &r)?;
            ctx.append(
                &tx,
                Draft {
                    outcome: Outcome::Failed,
                    ..ctx.draft(
                        "request.expire",
                        None,
                        None,
                        format!(
                            "request {}: {}",
                            hex::encode(&id[..6]),
                            r.operation.describe()
                        ),
                    )
                },
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Approve a pending request as the acting custodian, with their touch. When the rule is met the
    /// operation runs.
    pub fn approve(&mut self, request: &str, device: &mut dyn Fido2Client) -> Result<Performed> {
        self.refusal_recorded = false;
        let result = self.approve_inner(request, device);
        if let Err(e) = &result {
            if !self.refusal_recorded {
                self.record_refusal("request.approve", (None, None), e);
            }
        }
        result
    }

    fn approve_inner(&mut self, request: &str, device: &mut dyn Fido2Client) -> Result<Performed> {
        self.expire_requests()?;
        let (id, mut record) = load_requests(&self.conn, &self.ctx)?
            .into_iter()
            .find(|(id, _)| hex::encode(&id[..6]) == request.to_ascii_lowercase())
            .ok_or_else(|| Error::NoSuchRequest(request.into()))?;
        let short = hex::encode(&id[..6]);
        match record.status {
            RequestStatus::Pending => {}
            RequestStatus::Expired => return Err(Error::RequestExpired(short)),
            s => return Err(Error::RequestClosed(short, s.as_str())),
        }
        let me = self.requester()?;
        if me.record.name == record.requester {
            return Err(Error::SeparationOfDuties(format!(
                "{} asked for this operation and cannot approve it: another custodian must",
                me.record.name
            )));
        }
        if record.operation.subject() == Some(me.record.name.as_str()) {
            return Err(Error::SeparationOfDuties(format!(
                "{} cannot approve an operation on their own roles or keys: another custodian must",
                me.record.name
            )));
        }
        if record
            .approvals
            .iter()
            .any(|a| a.custodian == me.record.name)
        {
            return Err(Error::SeparationOfDuties(format!(
                "{} has already approved request {short}: each approver counts once",
                me.record.name
            )));
        }
        if !record.rule.approver_roles.iter().any(|r| me.record.has(*r)) {
            return Err(Error::RoleNotAllowed {
                who: me.record.name.clone(),
                operation: format!("approve {}", record.operation.kind()),
                needed: roles_string(&record.rule.approver_roles),
                has: roles_string(&me.record.roles),
            });
        }
        let purpose = purpose_bytes("approve", &id, &me.record.name, &record.operation)?;
        let evidence = self.presence(&me, &purpose, Some(device))?;
        record.approvals.push(evidence.clone());
        let met = record.approvals.len() as u32 >= record.rule.approvals;
        {
            let (conn, ctx) = (&mut self.conn, &self.ctx);
            let tx = begin(conn, ctx)?;
            write_request(&tx, ctx, &id, &record)?;
            ctx.append(
                &tx,
                ctx.draft(
                    "request.approve",
                    None,
                    None,
                    format!(
                        "request {short}: {}; approval {} of {} by {}",
                        record.operation.describe(),
                        record.approvals.len(),
                        record.rule.approvals,
                        evidence.audit_text()
                    ),
                ),
            )?;
            tx.commit()?;
        }
        if !met {
            return Ok(Performed::Pending {
                request: view_of(&id, &record),
            });
        }
        // The operation runs in the requester's name, with every touch in its audit entry.
        let saved_actor = std::mem::replace(&mut self.ctx.actor, record.requester.clone());
        let saved_acting = self.acting.replace(record.requester.clone());
        let outcome = self.execute(
            &record.operation,
            record.requester_evidence.as_ref(),
            &record.approvals,
            record.authenticator.clone(),
        );
        self.ctx.actor = saved_actor;
        self.acting = saved_acting;
        record.status = if outcome.is_ok() {
            RequestStatus::Done
        } else {
            RequestStatus::Failed
        };
        record.result = Some(match &outcome {
            Ok(Performed::Done { detail }) => detail.clone(),
            Ok(Performed::Pending { .. }) => String::new(),
            Err(e) => e.to_string(),
        });
        let (conn, ctx) = (&mut self.conn, &self.ctx);
        let tx = begin(conn, ctx)?;
        write_request(&tx, ctx, &id, &record)?;
        ctx.append(
            &tx,
            Draft {
                outcome: if outcome.is_ok() {
                    Outcome::Ok
                } else {
                    Outcome::Failed
                },
                ..ctx.draft(
                    "request.close",
                    None,
                    None,
                    format!("request {short}: {}", record.status.as_str()),
                )
            },
        )?;
        tx.commit()?;
        outcome
    }

    /// Take a touch from `who`'s key for `purpose`, verify it, and record the new counter.
    pub(crate) fn presence(
        &mut self,
        who: &CustodianRow,
        purpose: &[u8],
        device: Option<&mut dyn Fido2Client>,
    ) -> Result<Evidence> {
        let device = device.ok_or_else(|| {
            Error::AssertionRefused(format!(
                "this operation needs {}'s touch and no key was offered",
                who.record.name
            ))
        })?;
        let credentials = who.record.fido2_credentials();
        if credentials.is_empty() {
            return Err(Error::NoAuthenticator(who.record.name.clone()));
        }
        let identity = device.identity();
        check_demo(&self.conn, &identity, true)?;
        self.check_backoff(&pin_scope(&who.record.name))?;
        let rp = RelyingParty::new()?;
        let challenge = bound_challenge(&self.ctx.vault_id, purpose)?;
        let c = rp.start_assertion(credentials, &challenge)?;
        let (options, state) = c.options;
        let pkc = match device.assert(options) {
            Ok(p) => p,
            Err(e) => {
                if matches!(e, Error::WrongPin { .. } | Error::PinBlocked(_)) {
                    self.note_failure(&pin_scope(&who.record.name), "presence.pin", &e);
                }
                return Err(e);
            }
        };
        self.clear_failures(&pin_scope(&who.record.name))?;
        let verified = match rp.finish_assertion(&pkc, &state) {
            Ok(v) => v,
            Err(Some(e)) => return Err(e),
            Err(None) => {
                let raw: &[u8] = pkc.response.authenticator_data.as_ref();
                let presented = raw
                    .get(33..37)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                let (cred, stored) = who
                    .record
                    .fido2_credentials()
                    .into_iter()
                    .find(|c| c.cred_id.as_slice() == pkc.raw_id.as_slice())
                    .map_or((hex::encode(pkc.raw_id.as_slice()), 0), |c| {
                        (hex::encode(&c.cred_id), c.counter)
                    });
                let e = Error::PossibleClone {
                    custodian: who.record.name.clone(),
                    credential: cred.clone(),
                    presented,
                    stored,
                };
                self.suspend_credential(&who.record.name, &cred, &e);
                return Err(e);
            }
        };
        // Record the counter (monotonic) and the touch.
        let mut row = find_custodian(&self.conn, &self.ctx, &who.record.name)?;
        let mut auth_id = String::new();
        for a in row.record.authenticators.iter_mut() {
            if let AuthenticatorKind::Fido2 { credential, .. } = &mut a.kind {
                if credential.cred_id == verified.credential_id {
                    credential.counter = credential.counter.max(verified.counter);
                    auth_id = a.id.clone();
                }
            }
        }
        let evidence = Evidence {
            custodian: who.record.name.clone(),
            authenticator: auth_id,
            credential_id: hex::encode(&verified.credential_id),
            counter: verified.counter,
            user_present: true,
            user_verified: verified.user_verified,
            challenge: c.challenge_hex,
            time: rfc3339(now()),
            demo: identity.demo,
        };
        // The counter is recorded at once (with the touch in the audit log), whatever becomes of the
        // operation: a replay of this assertion would meet a counter it does not exceed.
        let (conn, ctx) = (&mut self.conn, &self.ctx);
        let tx = begin(conn, ctx)?;
        write_custodian(&tx, ctx, &row)?;
        ctx.append(
            &tx,
            ctx.draft(
                "presence.verify",
                None,
                None,
                format!(
                    "{} challenge {}",
                    evidence.audit_text(),
                    &evidence.challenge[..16]
                ),
            ),
        )?;
        tx.commit()?;
        Ok(evidence)
    }

    /// Run an operation whose presence and approvals are satisfied, with the evidence in its audit entry.
    fn execute(
        &mut self,
        op: &Operation,
        requester: Option<&Evidence>,
        approvals: &[Evidence],
        authenticator: Option<AuthenticatorRecord>,
    ) -> Result<Performed> {
        let mut evidence = String::new();
        if let Some(e) = requester {
            evidence.push_str(&format!("; requested by {}", e.audit_text()));
        }
        if !approvals.is_empty() {
            let list: Vec<String> = approvals.iter().map(Evidence::audit_text).collect();
            evidence.push_str(&format!("; approved by {}", list.join(", ")));
        }
        self.ctx.evidence = (!evidence.is_empty()).then_some(evidence);
        self.granted = Some(op.kind());
        let result = self.execute_inner(op, authenticator);
        self.ctx.evidence = None;
        self.granted = None;
        result.map(|detail| Performed::Done { detail })
    }

    fn execute_inner(
        &mut self,
        op: &Operation,
        authenticator: Option<AuthenticatorRecord>,
    ) -> Result<String> {
        match op {
            Operation::KeyRotate { key } => {
                let d = self.rotate_key(key)?;
                Ok(format!("{key} rotated to version {}", d.versions.len()))
            }
            Operation::KeySetState {
                key,
                version,
                state,
            } => {
                self.set_state(key, *version, *state)?;
                Ok(format!("{key} v{version} is now {}", state.as_str()))
            }
            Operation::KeyPolicy {
                key,
                rotate_every_secs,
            } => {
                self.set_rotation_policy(
                    key,
                    rotate_every_secs.map(std::time::Duration::from_secs),
                )?;
                Ok(op.describe())
            }
            Operation::AuditExport { path } => {
                let n = self.audit_export(path)?;
                Ok(format!("{n} entries exported to {}", path.display()))
            }
            Operation::CustodianAdd { name, roles } => {
                self.add_custodian_now(name, roles)?;
                Ok(op.describe())
            }
            Operation::CustodianRevoke {
                name,
                authenticator,
            } => {
                self.revoke_now(name, authenticator)?;
                Ok(op.describe())
            }
            Operation::CustodianRoles { name, roles } => {
                self.set_roles_now(name, roles)?;
                Ok(op.describe())
            }
            Operation::CustodianEnroll { name, .. } => {
                let record = authenticator.ok_or_else(|| {
                    Error::Internal("an enrolment request without its authenticator".into())
                })?;
                self.add_authenticator_now(name, record)?;
                Ok(op.describe())
            }
            Operation::RulesSet { kind, rule } => {
                let (kind, rule) = (*kind, rule.clone());
                self.change_rules(op, move |r| {
                    r.rules.insert(kind, rule);
                })?;
                Ok(op.describe())
            }
            Operation::RulesActivate => {
                self.change_rules(op, |r| r.enforced = true)?;
                Ok("the two-person rule is active".into())
            }
        }
    }

    fn add_custodian_now(&mut self, name: &str, roles: &[Role]) -> Result<()> {
        self.authorize(OpKind::CustodianAdd)?;
        crate::keys::validate_name(name)?;
        let mut roles = roles.to_vec();
        roles.sort();
        roles.dedup();
        check_roles(name, &roles)?;
        let (conn, ctx) = (&mut self.conn, &self.ctx);
        let tx = begin(conn, ctx)?;
        let existing = load_custodians(&tx, ctx)?;
        if existing.iter().any(|c| c.record.name == name) {
            return Err(Error::CustodianExists(name.into()));
        }
        if existing.is_empty() && !roles.contains(&Role::Officer) {
            return Err(Error::SeparationOfDuties(
                "the first custodian must be an officer: someone must be able to manage custodians"
                    .into(),
            ));
        }
        let row = CustodianRow {
            id: random_bytes()?,
            record: CustodianRecord {
                name: name.into(),
                roles: roles.clone(),
                created: now(),
                authenticators: Vec::new(),
            },
        };
        write_custodian(&tx, ctx, &row)?;
        ctx.append(
            &tx,
            ctx.draft(
                "custodian.add",
                None,
                None,
                format!("{name} as {}", roles_string(&roles)),
            ),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Add a custodian. In a vault without custodians this is how it starts (the first must be an
    /// officer); afterwards it follows the `custodian.add` rule.
    pub fn add_custodian(
        &mut self,
        name: &str,
        roles: &[Role],
        device: Option<&mut dyn Fido2Client>,
    ) -> Result<Performed> {
        self.perform(
            Operation::CustodianAdd {
                name: name.into(),
                roles: roles.to_vec(),
            },
            device,
        )
    }

    fn set_roles_now(&mut self, name: &str, roles: &[Role]) -> Result<()> {
        self.authorize(OpKind::CustodianRoles)?;
        let mut roles = roles.to_vec();
        roles.sort();
        roles.dedup();
        check_roles(name, &roles)?;
        let (conn, ctx) = (&mut self.conn, &self.ctx);
        let tx = begin(conn, ctx)?;
        let mut all = load_custodians(&tx, ctx)?;
        let rules = load_rules(&tx, ctx)?;
        let before = check_new_roles(&mut all, name, &roles, &rules)?;
        let c = all
            .iter()
            .find(|c| c.record.name == name)
            .ok_or_else(|| Error::NoSuchCustodian(name.into()))?;
        write_custodian(&tx, ctx, c)?;
        ctx.append(
            &tx,
            ctx.draft(
                "custodian.roles",
                None,
                None,
                format!(
                    "{name}: {} -> {}",
                    roles_string(&before),
                    roles_string(&roles)
                ),
            ),
        )?;
        tx.commit()?;
        Ok(())
    }

    fn revoke_now(&mut self, name: &str, authenticator: &str) -> Result<()> {
        self.authorize(OpKind::CustodianRevoke)?;
        let (conn, ctx) = (&mut self.conn, &self.ctx);
        let tx = begin(conn, ctx)?;
        let mut c = find_custodian(&tx, ctx, name)?;
        let idx = check_revocable(&tx, ctx, &c, authenticator)?;
        c.record.authenticators[idx].revoked = Some(now());
        write_custodian(&tx, ctx, &c)?;
        ctx.append(
            &tx,
            ctx.draft(
                "custodian.revoke",
                None,
                None,
                format!("{name}: authenticator {authenticator}"),
            ),
        )?;
        tx.commit()?;
        Ok(())
    }

    fn change_rules(&mut self, op: &Operation, f: impl FnOnce(&mut Rules)) -> Result<()> {
        self.authorize(OpKind::RulesChange)?;
        let (conn, ctx) = (&mut self.conn, &self.ctx);
        let tx = begin(conn, ctx)?;
        let mut rules = load_rules(&tx, ctx)?;
        f(&mut rules);
        if rules.enforced {
            let unmet = unmet_rules(&rules, &load_custodians(&tx, ctx)?);
            if !unmet.is_empty() {
                return Err(Error::RuleUnmeetable(format!(
                    "refused: the custodians could no longer meet the rules: {}",
                    unmet.join("; ")
                )));
            }
        }
        write_rules(&tx, ctx, &rules)?;
        ctx.append(&tx, ctx.draft("rules.change", None, None, op.describe()))?;
        tx.commit()?;
        Ok(())
    }

    /// Enrol a FIDO2 key for `name`: the new key makes a credential (its touch and PIN prove it is
    /// there); in a guarded vault the requester (the custodian themselves or an officer) also touches
    /// their own key, except for a custodian's very first key. Follows the `custodian.enroll` rule
    /// (pending when approvals are needed; the credential waits in the request).
    pub fn enroll_fido2(
        &mut self,
        name: &str,
        new_key: &mut dyn Fido2Client,
        requester_key: Option<&mut dyn Fido2Client>,
    ) -> Result<Performed> {
        self.refusal_recorded = false;
        let result = self.enroll_fido2_inner(name, new_key, requester_key);
        if let Err(e) = &result {
            if !self.refusal_recorded {
                self.record_refusal("custodian.enroll", (None, None), e);
            }
        }
        result
    }

    fn enroll_fido2_inner(
        &mut self,
        name: &str,
        new_key: &mut dyn Fido2Client,
        requester_key: Option<&mut dyn Fido2Client>,
    ) -> Result<Performed> {
        let target = find_custodian(&self.conn, &self.ctx, name)?;
        let identity = new_key.identity();
        check_demo(&self.conn, &identity, !self.only_unenrolled()?)?;
        self.enrolment_gate(&target, requester_key)?;
        let exclude = target
            .record
            .fido2_credentials()
            .into_iter()
            .map(|c| c.cred_id)
            .collect();
        let rp = RelyingParty::new()?;
        let purpose = purpose_bytes_raw("enroll", &target.id, name)?;
        let challenge = bound_challenge(&self.ctx.vault_id, &purpose)?;
        let c = rp.start_registration(&target.id, name, exclude, &challenge)?;
        let (options, state) = c.options;
        let reg = new_key.register(options)?;
        let credential = rp.finish_registration(&reg, &state)?;
        let record = AuthenticatorRecord {
            id: hex::encode(random_bytes::<4>()?),
            device: identity,
            kind: AuthenticatorKind::Fido2 {
                aaguid: aaguid_of(&credential, &reg),
                attestation: attestation_of(&credential),
                credential: Box::new(credential),
            },
            enrolled: now(),
            revoked: None,
        };
        self.store_authenticator(&target.record.name, record)
    }

    /// Enrol a PIV card for `name`: refuse factory credentials, generate a P-256 key on the card in a
    /// retired slot (PIN once, touch always) and record serial, slot and public key.
    pub fn enroll_piv(
        &mut self,
        name: &str,
        card: &mut dyn PivCard,
        slot: u8,
        pin: &Pin,
        requester_key: Option<&mut dyn Fido2Client>,
    ) -> Result<Performed> {
        let result = (|| {
            let target = find_custodian(&self.conn, &self.ctx, name)?;
            if !PIV_RETIRED_SLOTS.contains(&slot) {
                return Err(Error::Device(format!(
                    "slot {slot:02x} is not a retired slot: use 82 to 95"
                )));
            }
            let identity = card.identity();
            check_demo(&self.conn, &identity, !self.only_unenrolled()?)?;
            self.enrolment_gate(&target, requester_key)?;
            card.check_not_default()?;
            let public = card.generate_p256(slot, pin)?;
            let warning = card.take_warning();
            p256::PublicKey::from_sec1_bytes(&public).map_err(|_| {
                Error::Device("the card returned a malformed P-256 public key".into())
            })?;
            let record = AuthenticatorRecord {
                id: hex::encode(random_bytes::<4>()?),
                kind: AuthenticatorKind::Piv {
                    serial: card.serial(),
                    slot,
                    public_key: hex::encode(&public),
                },
                device: identity,
                enrolled: now(),
                revoked: None,
            };
            let done = self.store_authenticator(&target.record.name, record)?;
            Ok(match (done, warning) {
                (Performed::Done { detail }, Some(w)) => Performed::Done {
                    detail: format!("{detail}; WARNING: {w}"),
                },
                (other, _) => other,
            })
        })();
        if let Err(e) = &result {
            self.record_refusal("custodian.enroll", (None, None), e);
        }
        result
    }

    /// True while no custodian has an authenticator (the very first enrolment).
    fn only_unenrolled(&self) -> Result<bool> {
        Ok(load_custodians(&self.conn, &self.ctx)?
            .iter()
            .all(|c| !c.record.enrolled()))
    }

    /// Who may enrol for `target`, and the requester's touch.
    fn enrolment_gate(
        &mut self,
        target: &CustodianRow,
        requester_key: Option<&mut dyn Fido2Client>,
    ) -> Result<()> {
        let me = self.requester()?;
        let for_self = me.record.name == target.record.name;
        if !for_self && !me.record.has(Role::Officer) {
            return Err(Error::RoleNotAllowed {
                who: me.record.name.clone(),
                operation: format!("enrol a key for {}", target.record.name),
                needed: "officer (or the custodian themselves)".into(),
                has: roles_string(&me.record.roles),
            });
        }
        if me.record.enrolled() {
            let purpose = purpose_bytes_raw("enroll-request", &target.id, &me.record.name)?;
            let e = self.presence(&me, &purpose, requester_key)?;
            self.enrol_evidence = Some(e);
        } else if for_self && !target.record.enrolled() {
            // A custodian's very first key: its own registration (touch + PIN) is the presence.
            self.enrol_evidence = None;
        } else {
            return Err(Error::NoAuthenticator(me.record.name.clone()));
        }
        Ok(())
    }

    fn store_authenticator(
        &mut self,
        name: &str,
        record: AuthenticatorRecord,
    ) -> Result<Performed> {
        let evidence = self.enrol_evidence.take();
        let requester = self.acting.clone().ok_or(Error::IdentityRequired)?;
        let op = Operation::CustodianEnroll {
            name: name.into(),
            authenticator: record.id.clone(),
            device: record.device.description.clone(),
        };
        self.run_or_request(op, requester, evidence, Some(record))
    }

    fn add_authenticator_now(&mut self, name: &str, record: AuthenticatorRecord) -> Result<()> {
        let what = format!(
            "{name}: {} {} ({})",
            match record.kind {
                AuthenticatorKind::Fido2 { .. } => "FIDO2",
                AuthenticatorKind::Piv { .. } => "PIV",
            },
            record.id,
            record.device.description,
        );
        let demo = record.device.demo;
        let (conn, ctx) = (&mut self.conn, &self.ctx);
        let tx = begin(conn, ctx)?;
        let mut c = find_custodian(&tx, ctx, name)?;
        c.record.authenticators.push(record);
        write_custodian(&tx, ctx, &c)?;
        if demo && !is_demo(&tx)? {
            crate::store::set_meta(&tx, "demo", b"1")?;
        }
        ctx.append(&tx, ctx.draft("custodian.enroll", None, None, what))?;
        tx.commit()?;
        Ok(())
    }

    /// A credential that presented a counter which did not grow is suspended (marked revoked) in the
    /// same transaction as the alert: a clone must not get through later with a higher counter.
    fn suspend_credential(&mut self, name: &str, credential_hex: &str, e: &Error) {
        let (conn, ctx) = (&mut self.conn, &self.ctx);
        let result = (|| -> Result<()> {
            let tx = begin(conn, ctx)?;
            let mut c = find_custodian(&tx, ctx, name)?;
            for a in c.record.authenticators.iter_mut() {
                if let AuthenticatorKind::Fido2 { credential, .. } = &a.kind {
                    if hex::encode(&credential.cred_id) == credential_hex && a.revoked.is_none() {
                        a.revoked = Some(now());
                    }
                }
            }
            write_custodian(&tx, ctx, &c)?;
            ctx.append(
                &tx,
                Draft {
                    outcome: Outcome::Failed,
                    ..ctx.draft("presence.clone-alert", None, None, e.to_string())
                },
            )?;
            tx.commit()?;
            Ok(())
        })();
        if result.is_err() {
            self.alert("presence.clone-alert", e);
        }
    }

    /// Record a security alert (not a refusal of the person's request: a signal to investigate).
    fn alert(&mut self, action: &str, e: &Error) {
        let (conn, ctx) = (&mut self.conn, &self.ctx);
        let result = (|| -> Result<()> {
            let tx = begin(conn, ctx)?;
            ctx.append(
                &tx,
                Draft {
                    outcome: Outcome::Failed,
                    ..ctx.draft(action, None, None, e.to_string())
                },
            )?;
            tx.commit()?;
            Ok(())
        })();
        let _ = result;
    }

    fn note_failure(&mut self, scope: &str, action: &str, e: &Error) {
        let _ = crate::backoff::record_failure(&self.conn, scope);
        self.alert(action, e);
    }

    fn clear_failures(&mut self, scope: &str) -> Result<()> {
        crate::backoff::clear(&self.conn, scope)
    }

    fn check_backoff(&self, scope: &str) -> Result<()> {
        crate::backoff::check(&self.conn, scope)
    }
}

/// The slot and public key of `custodian`'s active PIV authenticator on the card with `serial`.
pub(crate) fn piv_of(
    conn: &Connection,
    ctx: &Ctx,
    custodian: &str,
    serial: u32,
) -> Result<(u8, String)> {
    let c = find_custodian(conn, ctx, custodian)?;
    let found = c
        .record
        .active()
        .find_map(|a| match &a.kind {
            AuthenticatorKind::Piv {
                serial: s,
                slot,
                public_key,
            } if *s == serial => Some((*slot, public_key.clone())),
            _ => None,
        })
        .ok_or_else(|| {
            Error::Device(format!(
                "{custodian} has no enrolled PIV key on the YubiKey with serial {serial}: enrol it first (custodian enroll {custodian} --piv)"
            ))
        });
    found
}

fn pin_scope(name: &str) -> String {
    format!("pin:{name}")
}

fn check_requester_role(me: &CustodianRecord, kind: OpKind) -> Result<()> {
    let allowed = kind.requester_roles();
    if allowed.iter().any(|r| me.has(*r)) {
        return Ok(());
    }
    Err(Error::RoleNotAllowed {
        who: me.name.clone(),
        operation: kind.as_str().into(),
        needed: roles_string(allowed),
        has: roles_string(&me.roles),
    })
}

/// Apply new roles to `name` in `all` if that keeps an enrolled officer and (when the rules are
/// enforced) keeps every rule meetable; returns the old roles.
fn check_new_roles(
    all: &mut [CustodianRow],
    name: &str,
    roles: &[Role],
    rules: &Rules,
) -> Result<Vec<Role>> {
    let enrolled_officer = |all: &[CustodianRow]| {
        all.iter()
            .any(|c| c.record.has(Role::Officer) && c.record.enrolled())
    };
    let had = enrolled_officer(all);
    let c = all
        .iter_mut()
        .find(|c| c.record.name == name)
        .ok_or_else(|| Error::NoSuchCustodian(name.into()))?;
    let before = std::mem::replace(&mut c.record.roles, roles.to_vec());
    let any_officer = all.iter().any(|c| c.record.has(Role::Officer));
    if !any_officer || (had && !enrolled_officer(all)) {
        return Err(Error::SeparationOfDuties(format!(
            "{name} is the last officer with a key: another officer must be enrolled first"
        )));
    }
    if rules.enforced {
        let unmet = unmet_rules(rules, all);
        if !unmet.is_empty() {
            return Err(Error::RuleUnmeetable(format!(
                "refused: with these roles the custodians could no longer meet the rules: {}",
                unmet.join("; ")
            )));
        }
    }
    Ok(before)
}

/// Which authenticator to revoke, if revoking it is allowed: the last authenticator of the last
/// enrolled officer can never be removed.
fn check_revocable(
    conn: &Connection,
    ctx: &Ctx,
    c: &CustodianRow,
    authenticator: &str,
) -> Result<usize> {
    let idx = c
        .record
        .authenticators
        .iter()
        .position(|a| a.id == authenticator && a.revoked.is_none())
        .ok_or_else(|| {
            Error::Device(format!(
                "{} has no active authenticator {authenticator}: check `custodian list`",
                c.record.name
            ))
        })?;
    let fido2_left = c
        .record
        .active()
        .filter(|a| a.id != authenticator && matches!(a.kind, AuthenticatorKind::Fido2 { .. }))
        .count();
    if c.record.has(Role::Officer) && fido2_left == 0 {
        let other_officers = load_custodians(conn, ctx)?
            .iter()
            .filter(|o| o.id != c.id && o.record.has(Role::Officer))
            .any(|o| !o.record.fido2_credentials().is_empty());
        if !other_officers {
            return Err(Error::SeparationOfDuties(format!(
                "this is the last key of the last officer ({}): enrol a replacement first",
                c.record.name
            )));
        }
    }
    Ok(idx)
}

/// The rules the enrolled custodians cannot meet: for each kind that needs approvals, every person who
/// may request it must find enough other enrolled custodians with an approver role.
fn unmet_rules(rules: &Rules, custodians: &[CustodianRow]) -> Vec<String> {
    let enrolled: Vec<&CustodianRecord> = custodians
        .iter()
        .map(|c| &c.record)
        .filter(|c| !c.fido2_credentials().is_empty())
        .collect();
    let mut out = Vec::new();
    for kind in OpKind::ALL {
        let rule = rules.rule(kind);
        if rule.approvals == 0 {
            continue;
        }
        let approvers = enrolled
            .iter()
            .filter(|c| rule.approver_roles.iter().any(|r| c.has(*r)))
            .count() as u32;
        let requester_is_approver = enrolled.iter().any(|c| {
            kind.requester_roles().iter().any(|r| c.has(*r))
                && rule.approver_roles.iter().any(|r| c.has(*r))
        });
        let available = approvers.saturating_sub(requester_is_approver as u32);
        if available < rule.approvals {
            out.push(format!(
                "{kind} needs {} besides the requester, {available} enrolled",
                rule.describe()
            ));
        }
    }
    out
}

fn purpose_bytes(what: &str, id: &[u8; 16], who: &str, op: &Operation) -> Result<Vec<u8>> {
    let op = serde_json::to_vec(op).map_err(|e| Error::Internal(e.to_string()))?;
    let mut out = purpose_bytes_raw(what, id, who)?;
    out.extend_from_slice(&(op.len() as u64).to_be_bytes());
    out.extend_from_slice(&op);
    Ok(out)
}

fn purpose_bytes_raw(what: &str, id: &[u8], who: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for part in [what.as_bytes(), id, who.as_bytes()] {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part);
    }
    Ok(out)
}
