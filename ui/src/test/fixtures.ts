import type {
  AppStatus,
  AuthenticatorView,
  CustodianView,
  CustodyStatus,
  Evidence,
  KeyDetail,
  KeySummary,
  LockedInfo,
  RequestView,
  RuleView,
  VaultInfo,
} from '../lib/types';

export const kdf = { algorithm: 'argon2id', memory_kib: 262144, iterations: 3, parallelism: 2, salt_len: 16 };

export function lockedInfo(over: Partial<LockedInfo> = {}): LockedInfo {
  return {
    path: '/tmp/v/vault.db',
    vault_id: 'vid',
    schema_version: 2,
    insecure_test_kdf: false,
    kdf,
    audit_key_fingerprint: 'ab12',
    piv_required: null,
    failed_unlocks: 0,
    wait_secs: 0,
    ...over,
  };
}

export function status(over: Partial<AppStatus> = {}): AppStatus {
  return {
    vault_path: '/tmp/v/vault.db',
    exists: true,
    unlocked: false,
    locked_info: lockedInfo(),
    peek_error: null,
    test_kdf_allowed: false,
    idle_lock_secs: 300,
    min_passphrase_score: 3,
    demo: false,
    ...over,
  };
}

export function vaultInfo(over: Partial<VaultInfo> = {}): VaultInfo {
  return {
    path: '/tmp/v/vault.db',
    vault_id: 'vid',
    schema_version: 1,
    keys: 0,
    created: '2026-12-03T16:00:00Z',
    insecure_test_kdf: false,
    kdf,
    audit_entries: 1,
    audit_key_fingerprint: 'ab12',
    audit_warning: null,
    failed_unlocks: 0,
    ...over,
  };
}

export function summary(over: Partial<KeySummary> = {}): KeySummary {
  return {
    id: 'k1',
    name: 'payments',
    type: 'symmetric-256',
    state: 'active',
    active_version: 1,
    versions: 1,
    rotate_every_secs: 7776000,
    rotation_due: '2027-03-03T16:00:00Z',
    rotation_status: 'ok',
    ...over,
  };
}

export function detail(over: Partial<KeyDetail> = {}): KeyDetail {
  return {
    id: 'k1',
    name: 'payments',
    type: 'symmetric-256',
    created: '2026-12-03T16:00:00Z',
    active_version: 2,
    rotate_every_secs: 7776000,
    rotation_due: '2027-03-03T16:00:00Z',
    rotation_status: 'ok',
    versions: [
      { version: 1, state: 'decrypt-only', created: '2026-12-03T16:00:00Z', public_key: null, allowed_states: ['compromised', 'destroyed'] },
      { version: 2, state: 'active', created: '2026-12-03T16:05:00Z', public_key: null, allowed_states: ['decrypt-only', 'compromised'] },
    ],
    ...over,
  };
}

export function fido2(over: Partial<AuthenticatorView> = {}): AuthenticatorView {
  return {
    id: 'a1b2c3d4',
    kind: 'fido2',
    device: { kind: 'fido2', description: 'DEMO software FIDO2 key — not hardware (file /tmp/k.json)', serial: null, demo: true },
    credential_id: '0123456789abcdef0123456789abcdef',
    counter: 3,
    aaguid: '00000000-0000-0000-0000-000000000000',
    attestation: 'packed self',
    piv_serial: null,
    piv_slot: null,
    public_key: null,
    enrolled: '2026-12-03T16:00:00Z',
    revoked: null,
    ...over,
  };
}

export function piv(over: Partial<AuthenticatorView> = {}): AuthenticatorView {
  return fido2({
    id: 'e5f6a7b8',
    kind: 'piv',
    device: { kind: 'piv', description: 'DEMO software PIV key — not hardware', serial: 3912345678, demo: true },
    credential_id: null,
    counter: null,
    aaguid: null,
    attestation: null,
    piv_serial: 3912345678,
    piv_slot: '82',
    public_key: '04ab',
    ...over,
  });
}

export function custodian(name: string, roles: CustodianView['roles'], authenticators: AuthenticatorView[] = []): CustodianView {
  return { name, roles, created: '2026-12-03T16:00:00Z', authenticators };
}

export function rule(over: Partial<RuleView> = {}): RuleView {
  return { operation: 'key.destroy', requester_roles: ['officer'], presence: true, approvals: 2, approver_roles: ['officer', 'custodian'], ...over };
}

export function custody(over: Partial<CustodyStatus> = {}): CustodyStatus {
  return {
    unguarded: false,
    enforced: false,
    demo: true,
    acting_as: 'olivia',
    rules: [rule(), rule({ operation: 'key.rotate', approvals: 0 }), rule({ operation: 'audit.export', requester_roles: ['auditor'], approvals: 0 })],
    unmet: [],
    request_ttl_secs: 86400,
    ...over,
  };
}

export function evidence(custodianName: string, counter = 5): Evidence {
  return {
    custodian: custodianName,
    authenticator: 'a1b2c3d4',
    credential_id: '0123456789abcdef',
    counter,
    user_present: true,
    user_verified: true,
    challenge: 'ff'.repeat(32),
    time: '2026-12-03T16:10:00Z',
    demo: true,
  };
}

export function request(over: Partial<RequestView> = {}): RequestView {
  return {
    id: '3fa1b2c3d4e5',
    operation: 'key.destroy payroll v1 -> destroyed',
    kind: 'key.destroy',
    requester: 'olivia',
    approvals: [],
    needed: 2,
    approver_roles: ['officer', 'custodian'],
    status: 'pending',
    created: '2026-12-03T16:05:00Z',
    expires: '2026-12-04T16:05:00Z',
    result: null,
    ...over,
  };
}
