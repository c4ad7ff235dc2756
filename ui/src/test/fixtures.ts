import type { AppStatus, KeyDetail, KeySummary, VaultInfo } from '../lib/types';

export const kdf = { algorithm: 'argon2id', memory_kib: 262144, iterations: 3, parallelism: 2, salt_len: 16 };

export function status(over: Partial<AppStatus> = {}): AppStatus {
  return {
    vault_path: '/tmp/v/vault.db',
    exists: true,
    unlocked: false,
    locked_info: { path: '/tmp/v/vault.db', vault_id: 'vid', schema_version: 1, insecure_test_kdf: false, kdf, audit_key_fingerprint: 'ab12' },
    peek_error: null,
    test_kdf_allowed: false,
    idle_lock_secs: 300,
    min_passphrase_score: 3,
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
