//! `custos custodian …`, `custos approvals …`, `custos rules …`: thin commands over the vault's
//! custody API.

use clap::Subcommand;
use custos_core::policy::{OpKind, Role, Rule};
use custos_core::{CustodianView, Operation, Performed, RequestView};

use crate::devices;
use crate::{print_json, unlock, vault_path, Cli, CliResult, Failure};

#[derive(Subcommand)]
pub enum CustodianCmd {
    /// Add a custodian with one or more roles (officer, custodian, auditor, operator)
    Add {
        name: String,
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
    /// Custodians, roles and authenticators
    List,
    /// Enrol a FIDO2 key (touch + PIN) or a YubiKey PIV key (P-256 generated on the card)
    Enroll {
        name: String,
        #[arg(long, conflicts_with = "piv", required_unless_present = "piv")]
        fido2: bool,
        #[arg(long)]
        piv: bool,
        /// PIV retired slot, 82 to 95 (hex)
        #[arg(long, default_value = "82")]
        slot: String,
        /// PIV: the YubiKey's serial when several are plugged in
        #[arg(long)]
        serial: Option<u32>,
    },
    /// Revoke one authenticator of a custodian (id from `custodian list`)
    Revoke { name: String, authenticator: String },
    /// Replace a custodian's roles
    Roles {
        name: String,
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum ApprovalsCmd {
    /// Pending and past requests
    List,
    /// Approve a pending request as `--as NAME`, with a touch of their key
    Approve { id: String },
}

#[derive(Subcommand)]
pub enum RulesCmd {
    /// The permission matrix and approval rules
    List,
    /// Change how many approvals an operation needs (a sensitive operation itself)
    Set {
        operation: String,
        #[arg(long)]
        approvals: u32,
        #[arg(long = "approver-role")]
        approver_roles: Vec<String>,
    },
    /// Switch the two-person rule on (one-way; refused while the custodians cannot meet the rules)
    Activate,
}

fn roles(list: &[String]) -> CliResult<Vec<Role>> {
    Ok(list
        .iter()
        .map(|r| Role::parse(r))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Print what an operation led to; a pending request exits with status 3.
pub fn report(cli: &Cli, p: Performed) -> CliResult {
    match p {
        Performed::Done { detail } => {
            if cli.json {
                print_json(&serde_json::json!({ "result": "done", "detail": detail }))
            } else {
                println!("done: {detail}");
                Ok(())
            }
        }
        Performed::Pending { request } => Err(Failure::Pending(Box::new(request))),
    }
}

pub fn pending_message(r: &RequestView) -> String {
    format!(
        "pending approval: request {} ({}) needs {} approval(s) from {}; have {}. Approvers run: custos approvals approve {} --as NAME",
        r.id,
        r.operation,
        r.needed,
        r.approver_roles
            .iter()
            .map(|x| x.as_str())
            .collect::<Vec<_>>()
            .join("|"),
        r.approvals.len(),
        r.id
    )
}

/// The acting custodian's key, when the vault has custodians (else no touch is needed).
pub fn requester_key(
    cli: &Cli,
    v: &custos_core::Vault,
) -> CliResult<Option<Box<dyn custos_core::hardware::Fido2Client>>> {
    let status = v.custody_status()?;
    match (status.unguarded, v.acting_as()) {
        (true, _) | (false, None) => Ok(None),
        (false, Some(me)) => {
            let active = active_devices(v, me)?;
            if active.is_empty() {
                return Ok(None);
            }
            Ok(Some(devices::fido2_for(
                &vault_path(cli)?,
                me,
                cli.demo || status.demo,
                &active,
            )?))
        }
    }
}

pub fn perform(cli: &Cli, v: &mut custos_core::Vault, op: Operation) -> CliResult<Performed> {
    let mut key = requester_key(cli, v)?;
    Ok(v.perform(op, devices::borrow(&mut key))?)
}

fn print_custodians(list: &[CustodianView]) {
    if list.is_empty() {
        println!("no custodians: anyone with the passphrase can do everything. Add an officer: custos custodian add NAME --role officer");
    }
    for c in list {
        let roles: Vec<&str> = c.roles.iter().map(|r| r.as_str()).collect();
        println!("{} ({})", c.name, roles.join(", "));
        if c.authenticators.is_empty() {
            println!(
                "    no authenticator: enrol one with custos custodian enroll {} --fido2",
                c.name
            );
        }
        for a in &c.authenticators {
            let what = match a.kind.as_str() {
                "piv" => format!(
                    "PIV serial {} slot {}",
                    a.piv_serial.unwrap_or(0),
                    a.piv_slot.as_deref().unwrap_or("?")
                ),
                _ => format!(
                    "FIDO2 credential {}… counter {} aaguid {}",
                    a.credential_id
                        .as_deref()
                        .unwrap_or("")
                        .chars()
                        .take(16)
                        .collect::<String>(),
                    a.counter.unwrap_or(0),
                    a.aaguid.as_deref().unwrap_or("-")
                ),
            };
            println!(
                "    {} {} — {}{}",
                a.id,
                what,
                a.device.description,
                a.revoked
                    .as_ref()
                    .map_or(String::new(), |t| format!(" [REVOKED {t}]"))
            );
        }
    }
}

pub fn custodian_cmd(cli: &Cli, cmd: &CustodianCmd) -> CliResult {
    let mut v = unlock(cli)?;
    match cmd {
        CustodianCmd::Add { name, roles: r } => {
            let op = Operation::CustodianAdd {
                name: name.clone(),
                roles: roles(r)?,
            };
            let p = perform(cli, &mut v, op)?;
            report(cli, p)
        }
        CustodianCmd::List => {
            let list = v.custodians()?;
            if cli.json {
                print_json(&list)
            } else {
                print_custodians(&list);
                Ok(())
            }
        }
        CustodianCmd::Enroll {
            name,
            fido2: _,
            piv,
            slot,
            serial,
        } => {
            // A custodian enrolling their first key acts as themselves unless --as says otherwise.
            if v.acting_as().is_none() {
                v.act_as(Some(name))?;
            }
            let path = vault_path(cli)?;
            let demo = cli.demo || v.custody_status()?.demo;
            let me = v.acting_as().map(String::from);
            let mut requester = match me.as_deref() {
                Some(me) if me != name || has_key(&v, me)? => requester_key(cli, &v)?,
                _ => None,
            };
            let p = if *piv {
                let slot = u8::from_str_radix(slot, 16).map_err(|_| {
                    Failure::Usage(format!("slot {slot:?}: give a hex slot between 82 and 95"))
                })?;
                let mut card = devices::piv_for(&path, name, demo, *serial, true)?;
                let pin = devices::pin(&format!("PIV PIN of {name}'s YubiKey"))?;
                v.enroll_piv(
                    name,
                    card.as_mut(),
                    slot,
                    &pin,
                    devices::borrow(&mut requester),
                )?
            } else {
                let mut key = devices::new_fido2_for(&path, name, demo)?;
                v.enroll_fido2(name, key.as_mut(), devices::borrow(&mut requester))?
            };
            report(cli, p)
        }
        CustodianCmd::Roles { name, roles: r } => {
            let op = Operation::CustodianRoles {
                name: name.clone(),
                roles: roles(r)?,
            };
            let p = perform(cli, &mut v, op)?;
            report(cli, p)
        }
        CustodianCmd::Revoke {
            name,
            authenticator,
        } => {
            let op = Operation::CustodianRevoke {
                name: name.clone(),
                authenticator: authenticator.clone(),
            };
            let p = perform(cli, &mut v, op)?;
            report(cli, p)
        }
    }
}

/// The device descriptions of `name`'s active FIDO2 authenticators.
fn active_devices(v: &custos_core::Vault, name: &str) -> CliResult<Vec<String>> {
    Ok(v.custodians()?
        .into_iter()
        .filter(|c| c.name == name)
        .flat_map(|c| c.authenticators)
        .filter(|a| a.revoked.is_none() && a.kind == "fido2")
        .map(|a| a.device.description)
        .collect())
}

fn has_key(v: &custos_core::Vault, name: &str) -> CliResult<bool> {
    Ok(v.custodians()?
        .into_iter()
        .any(|c| c.name == name && c.authenticators.iter().any(|a| a.revoked.is_none())))
}

pub fn approvals_cmd(cli: &Cli, cmd: &ApprovalsCmd) -> CliResult {
    let mut v = unlock(cli)?;
    match cmd {
        ApprovalsCmd::List => {
            let list = v.requests()?;
            if cli.json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("no requests");
            }
            for r in list {
                let who: Vec<&str> = r.approvals.iter().map(|a| a.custodian.as_str()).collect();
                println!(
                    "{}  {:<8} {}  requested by {}  approvals {}/{} [{}]  expires {}",
                    r.id,
                    serde_json::to_value(r.status)
                        .ok()
                        .and_then(|s| s.as_str().map(String::from))
                        .unwrap_or_default(),
                    r.operation,
                    r.requester,
                    r.approvals.len(),
                    r.needed,
                    who.join(", "),
                    r.expires
                );
            }
            Ok(())
        }
        ApprovalsCmd::Approve { id } => {
            let me = v
                .acting_as()
                .map(String::from)
                .ok_or(custos_core::Error::IdentityRequired)?;
            let demo = cli.demo || v.custody_status()?.demo;
            let active = active_devices(&v, &me)?;
            let mut key = devices::fido2_for(&vault_path(cli)?, &me, demo, &active)?;
            let p = v.approve(id, key.as_mut())?;
            report(cli, p)
        }
    }
}

pub fn rules_cmd(cli: &Cli, cmd: &RulesCmd) -> CliResult {
    let mut v = unlock(cli)?;
    match cmd {
        RulesCmd::List => {
            let s = v.custody_status()?;
            if cli.json {
                return print_json(&s);
            }
            println!(
                "two-person rule: {}{}",
                if s.enforced {
                    "ACTIVE"
                } else {
                    "not active (setup)"
                },
                if s.demo {
                    "   [DEMO vault: software keys, not hardware]"
                } else {
                    ""
                }
            );
            println!(
                "{:<18} {:<26} {:<9} approvals",
                "operation", "may request", "touch"
            );
            for r in &s.rules {
                let req: Vec<&str> = r.requester_roles.iter().map(|x| x.as_str()).collect();
                let appr: Vec<&str> = r.approver_roles.iter().map(|x| x.as_str()).collect();
                println!(
                    "{:<18} {:<26} {:<9} {}",
                    r.operation.as_str(),
                    req.join(","),
                    if r.presence { "yes" } else { "no" },
                    if r.approvals == 0 {
                        "-".to_string()
                    } else {
                        format!("{} from {}", r.approvals, appr.join("|"))
                    }
                );
            }
            for u in &s.unmet {
                println!("cannot be met yet: {u}");
            }
            Ok(())
        }
        RulesCmd::Set {
            operation,
            approvals,
            approver_roles,
        } => {
            let approver_roles = if approver_roles.is_empty() {
                vec![Role::Officer, Role::Custodian]
            } else {
                roles(approver_roles)?
            };
            let op = Operation::RulesSet {
                kind: OpKind::parse(operation)?,
                rule: Rule {
                    approvals: *approvals,
                    approver_roles,
                },
            };
            let p = perform(cli, &mut v, op)?;
            report(cli, p)
        }
        RulesCmd::Activate => {
            let p = perform(cli, &mut v, Operation::RulesActivate)?;
            report(cli, p)
        }
    }
}
