// Shapes of what the Rust side returns (custos-core's serde JSON, snake_case).
// No type here carries key material: the core never returns any.

export type KeyType = 'symmetric-256' | 'ed25519' | 'x25519';
export type KeyState = 'pre-active' | 'active' | 'decrypt-only' | 'compromised' | 'destroyed';
export type RotationStatus = 'none' | 'ok' | 'due' | 'overdue';

export const KEY_TYPES: readonly KeyType[] = ['symmetric-256', 'ed25519', 'x25519'];

export interface KdfInfo {
  algorithm: string;
  memory_kib: number;
  iterations: number;
  parallelism: number;
  salt_len: number;
}

export interface LockedInfo {
  path: string;
  vault_id: string;
  schema_version: number;
  insecure_test_kdf: boolean;
  kdf: KdfInfo;
  audit_key_fingerprint: string;
}

export interface VaultInfo {
  path: string;
  vault_id: string;
  schema_version: number;
  keys: number;
  created: string;
  insecure_test_kdf: boolean;
  kdf: KdfInfo;
  audit_entries: number;
  audit_key_fingerprint: string;
  /** Set when the audit log failed its integrity check at unlock. */
  audit_warning: string | null;
}

export interface AppError {
  kind: string;
  message: string;
}

export interface AppStatus {
  vault_path: string;
  exists: boolean;
  unlocked: boolean;
  locked_info: LockedInfo | null;
  peek_error: AppError | null;
  test_kdf_allowed: boolean;
  idle_lock_secs: number;
  min_passphrase_score: number;
}

export interface Strength {
  score: number;
  guesses_log10: number;
  feedback: { warning: string | null; suggestions: string[] };
  acceptable: boolean;
}

export interface CalibrationProgress {
  step: number;
  of: number;
  message: string;
}

export interface KeySummary {
  id: string;
  name: string;
  type: KeyType;
  state: KeyState;
  active_version: number | null;
  versions: number;
  rotate_every_secs: number | null;
  rotation_due: string | null;
  rotation_status: RotationStatus;
}

export interface VersionInfo {
  version: number;
  state: KeyState;
  created: string;
  public_key: string | null;
  allowed_states: KeyState[];
}

export interface KeyDetail {
  id: string;
  name: string;
  type: KeyType;
  created: string;
  active_version: number | null;
  rotate_every_secs: number | null;
  rotation_due: string | null;
  rotation_status: RotationStatus;
  versions: VersionInfo[];
}

export interface AuditEntry {
  seq: number;
  time: string;
  action: string;
  actor: string;
  key_id: string | null;
  key_name: string | null;
  version: number | null;
  outcome: 'ok' | 'refused' | 'failed';
  detail: string;
  hash: string;
  prev_hash: string;
  signed: boolean;
}

export interface AuditReport {
  ok: boolean;
  vault_id: string;
  key_pinned: boolean;
  head_hash: string | null;
  audit_key_fingerprint: string;
  entries: number;
  signed_through: number | null;
  unsigned_tail: number;
  first_broken: number | null;
  message: string;
}

export interface LockedEvent {
  reason: 'user' | 'idle' | 'exit';
}
