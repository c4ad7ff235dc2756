//! Custodians, their keys, roles and rules: list, status, "acting as", add, change roles, enrol
//! (FIDO2 / PIV), revoke, set a rule, activate the two-person rule. Everything is decided by the core; these commands
//! only open the right key (the acting custodian's, a new one) and report done or pending.

use custos_core::policy::{OpKind, Role, Rule};
use custos_core::{CustodianView, CustodyStatus, Operation, Performed};
use tauri::{AppHandle, Runtime, State};

use crate::commands::device::{dev, with_key, KeyOp, OpResult};
use crate::error::{AppError, AppResult};
use crate::session::Session;

fn roles(names: &[String]) -> AppResult<Vec<Role>> {
    names
        .iter()
        .map(|r| Role::parse(r.trim()).map_err(AppError::from))
        .collect()
}

#[tauri::command]
pub fn list_custodians(session: State<'_, Session>) -> AppResult<Vec<CustodianView>> {
    session.with_vault(|v| v.custodians())
}

#[tauri::command]
pub fn custody_status(session: State<'_, Session>) -> AppResult<CustodyStatus> {
    session.with_vault(|v| v.custody_status())
}

/// Choose who this window acts as (`None`: nobody). Every later operation is asked in their name
/// and needs their key.
#[tauri::command]
pub fn act_as(session: State<'_, Session>, name: Option<String>) -> AppResult<CustodyStatus> {
    let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    session.with_vault(|v| {
        v.act_as(name.as_deref())?;
        v.custody_status()
    })
}

/// Add a custodian with `roles`. The first one (an officer) starts custody; later ones need the
/// acting officer's touch and follow the `custodian.add` rule.
#[tauri::command]
pub async fn add_custodian<R: Runtime>(
    app: AppHandle<R>,
    name: String,
    roles: Vec<String>,
) -> AppResult<OpResult> {
    let roles = self::roles(&roles)?;
    let name = name.trim().to_owned();
    with_key(app, move |k| {
        Ok(k.perform(Operation::CustodianAdd { name, roles })?.into())
    })
    .await
}

/// Replace a custodian's roles (the `custodian.roles` rule: the officer's touch, and approvals once
/// the rules are enforced). The core never leaves the vault without an enrolled officer.
#[tauri::command]
pub async fn change_roles<R: Runtime>(
    app: AppHandle<R>,
    name: String,
    roles: Vec<String>,
) -> AppResult<OpResult> {
    let roles = self::roles(&roles)?;
    let name = name.trim().to_owned();
    with_key(app, move |k| {
        Ok(k.perform(Operation::CustodianRoles { name, roles })?.into())
    })
    .await
}

/// Enrol a key for `name`: `kind` "fido2" (a new FIDO2 key; in demo mode a new software key) or
/// "piv" (a P-256 key generated in PIV `slot`, hex 82-95, default 82). The acting custodian touches
/// their own key first when they have one.
#[tauri::command]
pub async fn enroll_key<R: Runtime>(
    app: AppHandle<R>,
    name: String,
    kind: String,
    slot: Option<String>,
) -> AppResult<OpResult> {
    let name = name.trim().to_owned();
    let slot = match slot.as_deref().map(str::trim) {
        None | Some("") => 0x82,
        Some(s) => u8::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|_| {
            AppError::new(
                "invalid_slot",
                format!("{s:?} is not a PIV slot: write two hex digits, 82 to 95"),
            )
        })?,
    };
    match kind.as_str() {
        "fido2" => {
            with_key(app, move |k| {
                check_enrolment(k, &name)?;
                let mut requester = k.acting_key_if_enrolled()?;
                let mut new = k.devices.new_fido2(&name)?;
                let result =
                    k.vault(|v| v.enroll_fido2(&name, new.device.as_mut(), dev(&mut requester)));
                finish_enrolment(result, new)
            })
            .await
        }
        "piv" => {
            with_key(app, move |k| {
                check_enrolment(k, &name)?;
                let mut requester = k.acting_key_if_enrolled()?;
                let mut card = k.devices.piv_for_enrolment(&name)?;
                let pin = card
                    .pin
                    .take()
                    .ok_or_else(|| AppError::internal("no PIN for the PIV key"))?;
                let result = k.vault(|v| {
                    v.enroll_piv(&name, card.device.as_mut(), slot, &pin, dev(&mut requester))
                });
                finish_enrolment(result, card)
            })
            .await
        }
        other => Err(AppError::new(
            "invalid_authenticator_kind",
            format!("{other:?} is not a kind of key Custos enrols: choose FIDO2 or PIV"),
        )),
    }
}

/// Before a new key is made (and its PIN asked for): the custodian exists and someone is acting.
fn check_enrolment<R: Runtime>(k: &KeyOp<'_, R>, name: &str) -> AppResult<()> {
    k.vault(|v| {
        if !v.custodians()?.iter().any(|c| c.name == name) {
            return Err(custos_core::Error::NoSuchCustodian(name.into()));
        }
        if v.acting_as().is_none() {
            return Err(custos_core::Error::IdentityRequired);
        }
        Ok(())
    })
}

/// A failed enrolment leaves no new demo key file behind.
fn finish_enrolment<T: ?Sized>(
    result: AppResult<Performed>,
    device: crate::devices::NewDevice<T>,
) -> AppResult<OpResult> {
    match result {
        Ok(p) => Ok(p.into()),
        Err(e) => {
            device.discard();
            Err(e)
        }
    }
}

/// Revoke one authenticator of a custodian (by its id).
#[tauri::command]
pub async fn revoke_authenticator<R: Runtime>(
    app: AppHandle<R>,
    name: String,
    authenticator: String,
) -> AppResult<OpResult> {
    with_key(app, move |k| {
        let op = Operation::CustodianRevoke {
            name,
            authenticator: authenticator.trim().to_owned(),
        };
        Ok(k.perform(op)?.into())
    })
    .await
}

/// Change the rule of one operation kind: how many approvals, from which roles.
#[tauri::command]
pub async fn set_rule<R: Runtime>(
    app: AppHandle<R>,
    operation: String,
    approvals: u32,
    approver_roles: Vec<String>,
) -> AppResult<OpResult> {
    let kind = OpKind::parse(operation.trim())?;
    let rule = Rule {
        approvals,
        approver_roles: roles(&approver_roles)?,
    };
    with_key(app, move |k| {
        Ok(k.perform(Operation::RulesSet { kind, rule })?.into())
    })
    .await
}

/// Switch the two-person rule on (once, for good).
#[tauri::command]
pub async fn activate_rules<R: Runtime>(app: AppHandle<R>) -> AppResult<OpResult> {
    with_key(app, move |k| {
        Ok(k.perform(Operation::RulesActivate)?.into())
    })
    .await
}
