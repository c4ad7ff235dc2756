//! Who may do what: roles, the permission matrix, the approval rules and separation of duties.
//!
//! Everything here is enforced by the vault (core), never only by a screen. The matrix is fixed in code;
//! the approval rules are data (sealed in the vault) and changing them is itself a sensitive operation.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A custodian's roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Manages keys, custodians and rules.
    Officer,
    /// Holds shares and approves requests.
    Custodian,
    /// Reads, verifies and exports the audit log.
    Auditor,
    /// Uses keys (encrypt, decrypt, sign).
    Operator,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Officer,
        Role::Custodian,
        Role::Auditor,
        Role::Operator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Officer => "officer",
            Role::Custodian => "custodian",
            Role::Auditor => "auditor",
            Role::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Result<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| Error::InvalidRole(s.into()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of operation the matrix and the rules speak about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OpKind {
    #[serde(rename = "key.create")]
    KeyCreate,
    #[serde(rename = "key.rotate")]
    KeyRotate,
    /// A lifecycle change other than compromised or destroyed.
    #[serde(rename = "key.set-state")]
    KeySetState,
    #[serde(rename = "key.compromise")]
    KeyCompromise,
    #[serde(rename = "key.destroy")]
    KeyDestroy,
    #[serde(rename = "key.policy")]
    KeyPolicy,
    #[serde(rename = "key.use")]
    KeyUse,
    #[serde(rename = "audit.export")]
    AuditExport,
    #[serde(rename = "custodian.add")]
    CustodianAdd,
    #[serde(rename = "custodian.roles")]
    CustodianRoles,
    #[serde(rename = "custodian.enroll")]
    CustodianEnroll,
    #[serde(rename = "custodian.revoke")]
    CustodianRevoke,
    #[serde(rename = "rules.change")]
    RulesChange,
    #[serde(rename = "vault.passphrase")]
    VaultPassphrase,
    #[serde(rename = "vault.require-piv")]
    VaultRequirePiv,
}

impl OpKind {
    pub const ALL: [OpKind; 15] = [
        OpKind::KeyCreate,
        OpKind::KeyRotate,
        OpKind::KeySetState,
        OpKind::KeyCompromise,
        OpKind::KeyDestroy,
        OpKind::KeyPolicy,
        OpKind::KeyUse,
        OpKind::AuditExport,
        OpKind::CustodianAdd,
        OpKind::CustodianRoles,
        OpKind::CustodianEnroll,
        OpKind::CustodianRevoke,
        OpKind::RulesChange,
        OpKind::VaultPassphrase,
        OpKind::VaultRequirePiv,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::KeyCreate => "key.create",
            OpKind::KeyRotate => "key.rotate",
            OpKind::KeySetState => "key.set-state",
            OpKind::KeyCompromise => "key.compromise",
            OpKind::KeyDestroy => "key.destroy",
            OpKind::KeyPolicy => "key.policy",
            OpKind::KeyUse => "key.use",
            OpKind::AuditExport => "audit.export",
            OpKind::CustodianAdd => "custodian.add",
            OpKind::CustodianRoles => "custodian.roles",
            OpKind::CustodianEnroll => "custodian.enroll",
            OpKind::CustodianRevoke => "custodian.revoke",
            OpKind::RulesChange => "rules.change",
            OpKind::VaultPassphrase => "vault.passphrase",
            OpKind::VaultRequirePiv => "vault.require-piv",
        }
    }

    pub fn parse(s: &str) -> Result<OpKind> {
        OpKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::InvalidOperation(s.into()))
    }

    /// The permission matrix: which roles may ask for this operation.
    pub fn requester_roles(self) -> &'static [Role] {
        match self {
            OpKind::KeyCreate
            | OpKind::KeyRotate
            | OpKind::KeySetState
            | OpKind::KeyCompromise
            | OpKind::KeyDestroy
            | OpKind::KeyPolicy
            | OpKind::CustodianAdd
            | OpKind::CustodianRoles
            | OpKind::CustodianRevoke
            | OpKind::RulesChange
            | OpKind::VaultPassphrase
            | OpKind::VaultRequirePiv => &[Role::Officer],
            // A custodian enrols their own keys; an officer may enrol anyone's.
            OpKind::CustodianEnroll => &[
                Role::Officer,
                Role::Custodian,
                Role::Auditor,
                Role::Operator,
            ],
            OpKind::KeyUse => &[Role::Operator],
            OpKind::AuditExport => &[Role::Auditor],
        }
    }

    /// Whether the requester must touch their own key (a fresh assertion bound to the operation).
    pub fn needs_presence(self) -> bool {
        !matches!(self, OpKind::KeyCreate | OpKind::KeyUse)
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many distinct approvers, with which roles, must touch their keys before an operation runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub approvals: u32,
    pub approver_roles: Vec<Role>,
}

impl Rule {
    fn new(approvals: u32) -> Rule {
        Rule {
            approvals,
            approver_roles: vec![Role::Officer, Role::Custodian],
        }
    }

    pub fn describe(&self) -> String {
        if self.approvals == 0 {
            return "no approval".into();
        }
        let roles: Vec<&str> = self.approver_roles.iter().map(|r| r.as_str()).collect();
        format!("{} approval(s) from {}", self.approvals, roles.join("|"))
    }
}

/// The rule set: one rule per operation kind. Serialized in a fixed order (a BTreeMap) so that its
/// sealed form is deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Off while the vault is being set up; once on, it is never switched off.
    pub enforced: bool,
    /// How long a pending request waits for approvals.
    pub request_ttl_secs: u64,
    pub rules: BTreeMap<OpKind, Rule>,
}

impl Default for Rules {
    /// Defaults: two approvers for destroy, role and rule changes; one for rotation-policy changes,
    /// enrolment and revocation; the requester's touch alone for the rest (a passphrase change carries a
    /// secret and cannot wait in a request).
    fn default() -> Rules {
        let rules = OpKind::ALL
            .into_iter()
            .map(|k| {
                let n = match k {
                    OpKind::KeyDestroy
                    | OpKind::CustodianAdd
                    | OpKind::CustodianRoles
                    | OpKind::RulesChange => 2,
                    OpKind::KeyPolicy | OpKind::CustodianEnroll | OpKind::CustodianRevoke => 1,
                    _ => 0,
                };
                (k, Rule::new(n))
            })
            .collect();
        Rules {
            enforced: false,
            request_ttl_secs: 24 * 3600,
            rules,
        }
    }
}

impl Rules {
    /// The rule for `kind`. A kind missing from a stored rule set fails safe: it takes the default,
    /// never "no check".
    pub fn rule(&self, kind: OpKind) -> Rule {
        self.rules
            .get(&kind)
            .cloned()
            .or_else(|| Rules::default().rules.remove(&kind))
            .unwrap_or_else(|| Rule::new(2))
    }

    /// Approvals needed now: none while the vault is being set up.
    pub fn approvals_needed(&self, kind: OpKind) -> Rule {
        let rule = self.rule(kind);
        if self.enforced {
            rule
        } else {
            Rule {
                approvals: 0,
                ..rule
            }
        }
    }
}

/// Roles one person may not combine.
pub const EXCLUSIVE_ROLES: [(Role, Role); 1] = [(Role::Officer, Role::Auditor)];

/// Separation of duties on a role set.
pub fn check_roles(name: &str, roles: &[Role]) -> Result<()> {
    if roles.is_empty() {
        return Err(Error::SeparationOfDuties(format!(
            "{name} needs at least one role"
        )));
    }
    for (a, b) in EXCLUSIVE_ROLES {
        if roles.contains(&a) && roles.contains(&b) {
            return Err(Error::SeparationOfDuties(format!(
                "{name} cannot be both {a} and {b}: the person who manages keys must not be the one who audits them"
            )));
        }
    }
    Ok(())
}

pub fn roles_string(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_two_for_destroy_roles_and_rules() {
        let r = Rules::default();
        assert_eq!(r.rule(OpKind::KeyDestroy).approvals, 2);
        assert_eq!(r.rule(OpKind::CustodianAdd).approvals, 2);
        assert_eq!(r.rule(OpKind::RulesChange).approvals, 2);
        assert_eq!(r.rule(OpKind::KeyPolicy).approvals, 1);
        assert_eq!(r.rule(OpKind::KeyRotate).approvals, 0);
        // Setup phase: no approvals yet.
        assert_eq!(r.approvals_needed(OpKind::KeyDestroy).approvals, 0);
    }

    #[test]
    fn a_missing_rule_fails_safe() {
        let mut r = Rules {
            enforced: true,
            ..Rules::default()
        };
        r.rules.clear();
        assert_eq!(r.approvals_needed(OpKind::KeyDestroy).approvals, 2);
    }

    #[test]
    fn officer_and_auditor_are_exclusive() {
        assert!(check_roles("a", &[Role::Officer, Role::Custodian]).is_ok());
        assert!(matches!(
            check_roles("a", &[Role::Officer, Role::Auditor]),
            Err(Error::SeparationOfDuties(_))
        ));
        assert!(check_roles("a", &[]).is_err());
    }

    #[test]
    fn names_round_trip() {
        for k in OpKind::ALL {
            assert_eq!(OpKind::parse(k.as_str()).unwrap(), k);
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()).unwrap(), r);
        }
        assert!(Role::parse("admin").is_err());
    }
}
