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

/** The YubiKey a vault is bound to: unlocking needs it (its PIN and a touch) as well as the passphrase. */
export interface PivFactor {
  serial: number;
  slot: number;
  custodian: string;
  card_public: string;
  ephemeral_public: string;
}

export interface LockedInfo {
  path: string;
  vault_id: string;
  schema_version: number;
  insecure_test_kdf: boolean;
  kdf: KdfInfo;
  audit_key_fingerprint: string;
  piv_required: PivFactor | null;
  /** Failed unlock attempts since the last unlock (an alert), and seconds before the next try. */
  failed_unlocks: number;
  wait_secs: number;
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
  /** Failed unlock attempts between the previous unlock and this one. */
  failed_unlocks: number;
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
  /** Started with --demo: keys are software twins. */
  demo: boolean;
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
  reason: 'user' | 'idle' | 'exit' | 'shares';
}

// ---- custody -------------------------------------------------------------------------------

export type Role = 'officer' | 'custodian' | 'auditor' | 'operator';
export const ROLES: readonly Role[] = ['officer', 'custodian', 'auditor', 'operator'];

export type OpKind =
  | 'key.create'
  | 'key.rotate'
  | 'key.set-state'
  | 'key.compromise'
  | 'key.destroy'
  | 'key.policy'
  | 'key.use'
  | 'audit.export'
  | 'custodian.add'
  | 'custodian.roles'
  | 'custodian.enroll'
  | 'custodian.revoke'
  | 'rules.change'
  | 'vault.passphrase'
  | 'vault.require-piv';

export interface DeviceIdentity {
  kind: string;
  description: string;
  serial: number | null;
  demo: boolean;
}

export interface AuthenticatorView {
  id: string;
  kind: 'fido2' | 'piv';
  device: DeviceIdentity;
  credential_id: string | null;
  counter: number | null;
  aaguid: string | null;
  attestation: string | null;
  piv_serial: number | null;
  piv_slot: string | null;
  public_key: string | null;
  enrolled: string;
  revoked: string | null;
}

export interface CustodianView {
  name: string;
  roles: Role[];
  created: string;
  authenticators: AuthenticatorView[];
}

export interface RuleView {
  operation: OpKind;
  requester_roles: Role[];
  presence: boolean;
  approvals: number;
  approver_roles: Role[];
}

export interface CustodyStatus {
  unguarded: boolean;
  enforced: boolean;
  demo: boolean;
  acting_as: string | null;
  rules: RuleView[];
  unmet: string[];
  request_ttl_secs: number;
}

export interface Evidence {
  custodian: string;
  authenticator: string;
  credential_id: string;
  counter: number;
  user_present: boolean;
  user_verified: boolean;
  challenge: string;
  time: string;
  demo: boolean;
}

export type RequestStatus = 'pending' | 'done' | 'failed' | 'expired';

export interface RequestView {
  id: string;
  operation: string;
  kind: OpKind;
  requester: string;
  approvals: Evidence[];
  needed: number;
  approver_roles: Role[];
  status: RequestStatus;
  created: string;
  expires: string;
  result: string | null;
}

/** What asking for an operation led to: it ran (`done`, its audit detail) or waits for approvals. */
export type Outcome = { done: string; pending?: undefined } | { pending: RequestView; done?: undefined };
export type KeyOutcome = Outcome & { key: KeyDetail };

// ---- hardware-key prompts (events) ----------------------------------------------------------

export interface PinRequest {
  id: number;
  device: string;
  custodian: string | null;
  /** "new": choose the PIN of a new DEMO key (asked twice). */
  purpose: 'enter' | 'new';
  min_len: number;
  max_len: number;
}

export interface TouchRequest {
  device: string;
  custodian: string | null;
}

// ---- quorum ceremonies (recovery escrow, rekey, drills, transcripts) --------------------------

/**
 * How a share reaches its holder: read off the screen, a printed card, or an encrypted share file
 * (age) that opens with the holder's YubiKey PIV key (`file`) or with a passphrase they choose.
 */
export type Medium = 'screen' | 'card' | 'file' | 'passphrase-file';
export const MEDIA: readonly Medium[] = ['screen', 'card', 'file', 'passphrase-file'];
export const MEDIUM_LABEL: Record<Medium, string> = {
  screen: 'screen',
  card: 'card',
  file: 'file (YubiKey)',
  'passphrase-file': 'file (passphrase)',
};
export function isFileMedium(m: Medium): boolean {
  return m === 'file' || m === 'passphrase-file';
}

/** One share of the escrow as the vault knows it: its commitment's fingerprint and drill state. */
export interface ShareStatus {
  index: number;
  custodian: string;
  fingerprint: string;
  last_drill: string | null;
  status: 'verified' | 'stale' | 'never';
  /** When the next drill is due (the policy's days after the last drill, or after the escrow). */
  due: string;
  overdue: boolean;
}

/** The current recovery escrow: the recovery key split `threshold` of `total`. */
export interface EscrowStatus {
  ceremony: string;
  threshold: number;
  total: number;
  created: string;
  /** The drill policy: each share is checked at least every this many days. */
  drill_every_days: number;
  /** Shares overdue for a drill. */
  overdue: number;
  shares: ShareStatus[];
}

export interface CeremonySummary {
  ceremony: string;
  kind: 'escrow' | 'rekey';
  time: string;
  steps: number;
  head: string;
}

export interface TranscriptStep {
  seq: number;
  time: string;
  actor: string;
  role: string;
  action: string;
  detail: string;
  /** The touch that initialled the step. */
  presence: Evidence | null;
  prev_hash: string;
  hash: string;
}

/** A ceremony's hash-chained steps, the head signed by the vault audit key. */
export interface Transcript {
  format: string;
  ceremony: string;
  kind: string;
  vault_id: string;
  audit_public: string;
  steps: TranscriptStep[];
  head: string;
  signature: string;
}

/** A share during the hand-out, without its secret. */
export interface HandOutView {
  custodian: string;
  index: number;
  medium: Medium;
  fingerprint: string;
  confirmed: boolean;
  /** For a share file: where it was written, once it was. */
  file: string | null;
}

export interface EscrowResult {
  ceremony: string;
  kind: 'escrow' | 'rekey';
  threshold: number;
  total: number;
  date: string;
  shares: HandOutView[];
  transcript: Transcript;
  /** The directory offered for share files (next to the vault). */
  share_dir: string;
}

/** SECRET: one share's words and QR. Kept in the showing component only, dropped on hide. */
export interface RevealedShare {
  custodian: string;
  index: number;
  medium: Medium;
  ceremony: string;
  threshold: number;
  total: number;
  date: string;
  fingerprint: string;
  words: string[];
  qr_text: string;
  /** A complete `<svg>` made by the backend from `qr_text`. */
  qr_svg: string;
}

/** A ceremony script step starting (event `custos://ceremony-step`). */
export interface CeremonyStepEvent {
  text: string;
}

/**
 * How a share is presented at recovery. Words are typed; a picture (of the QR code) or a share file
 * is read from the file the person chose and sent as bytes; Rust decodes, checks and keeps it.
 */
export type ShareSource =
  | { kind: 'words'; words: string }
  | { kind: 'picture'; name: string; bytes: number[] }
  | { kind: 'file'; name: string; bytes: number[]; passphrase: string | null };

/** A recovery share that passed its checks (words, ceremony, commitment). */
export interface RecoveryShareCheck {
  index: number;
  fingerprint: string;
  threshold: number;
  total: number;
  ceremony: string;
}
