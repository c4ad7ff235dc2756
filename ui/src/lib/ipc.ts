// Typed wrappers over Tauri's `invoke`. Every failure is turned into an IpcError carrying the
// backend's `{kind, message}`; the message is what the window shows.
import { invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import type {
  AppStatus,
  AuditEntry,
  AuditReport,
  CalibrationProgress,
  CeremonyStepEvent,
  CeremonySummary,
  CustodianView,
  CustodyStatus,
  EscrowResult,
  EscrowStatus,
  HandOutView,
  KeyDetail,
  KeyOutcome,
  KeyState,
  KeySummary,
  KeyType,
  LockedEvent,
  Medium,
  OpKind,
  Outcome,
  PinRequest,
  RecoveryShareCheck,
  ShareSource,
  RequestView,
  RevealedShare,
  Role,
  ShareStatus,
  Strength,
  TouchRequest,
  Transcript,
  VaultInfo,
} from './types';

export class IpcError extends Error {
  readonly kind: string;
  constructor(kind: string, message: string) {
    super(message);
    this.name = 'IpcError';
    this.kind = kind;
  }
}

/** The core writes messages as lower-case clauses ("wrong passphrase: …"); show them as sentences. */
export function asSentence(message: string): string {
  const text = message.trim();
  if (text === '') return text;
  const first = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?)]$/.test(first) ? first : `${first}.`;
}

export function toIpcError(err: unknown): IpcError {
  if (err instanceof IpcError) return err;
  if (err && typeof err === 'object' && 'kind' in err && 'message' in err) {
    const e = err as { kind: unknown; message: unknown };
    return new IpcError(String(e.kind), asSentence(String(e.message)));
  }
  if (err instanceof Error) return new IpcError('ipc', asSentence(err.message));
  return new IpcError('ipc', asSentence(String(err)));
}

/** A command failed because the vault is locked (idle time-out or Lock elsewhere). */
export function isLockedError(err: unknown): boolean {
  return err instanceof IpcError && err.kind === 'vault_locked';
}

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (err) {
    throw toIpcError(err);
  }
}

export const EVENT_VAULT_LOCKED = 'vault-locked';
export const EVENT_CALIBRATION_PROGRESS = 'calibration-progress';
export const EVENT_PIN_REQUEST = 'custos://pin-request';
export const EVENT_TOUCH = 'custos://touch';
export const EVENT_PROMPT_DONE = 'custos://prompt-done';
export const EVENT_CEREMONY_STEP = 'custos://ceremony-step';

export const ipc = {
  appStatus: () => call<AppStatus>('app_status'),
  passphraseStrength: (passphrase: string) => call<Strength>('passphrase_strength', { passphrase }),
  createVault: (opts: {
    passphrase: string;
    confirmation: string;
    targetMs?: number | null;
    insecureTestKdf: boolean;
  }) =>
    call<VaultInfo>('create_vault', {
      passphrase: opts.passphrase,
      confirmation: opts.confirmation,
      targetMs: opts.targetMs ?? null,
      insecureTestKdf: opts.insecureTestKdf,
    }),
  unlock: (passphrase: string) => call<VaultInfo>('unlock', { passphrase }),
  lock: () => call<void>('lock'),
  vaultInfo: () => call<VaultInfo>('vault_info'),

  listKeys: () => call<KeySummary[]>('list_keys'),
  createKey: (name: string, keyType: KeyType, rotateEvery: string | null) =>
    call<KeyDetail>('create_key', { name, keyType, rotateEvery }),
  keyDetail: (name: string) => call<KeyDetail>('key_detail', { name }),
  rotateKey: (name: string) => call<KeyOutcome>('rotate_key', { name }),
  setKeyState: (name: string, version: number, state: KeyState) =>
    call<KeyOutcome>('set_key_state', { name, version, state }),
  destroyVersion: (name: string, version: number) =>
    call<KeyOutcome>('destroy_version', { name, version }),
  setRotationPolicy: (name: string, every: string | null) =>
    call<KeyOutcome>('set_rotation_policy', { name, every }),

  auditEntries: () => call<AuditEntry[]>('audit_entries'),
  auditVerify: () => call<AuditReport>('audit_verify'),

  listCustodians: () => call<CustodianView[]>('list_custodians'),
  custodyStatus: () => call<CustodyStatus>('custody_status'),
  actAs: (name: string | null) => call<CustodyStatus>('act_as', { name }),
  addCustodian: (name: string, roles: Role[]) => call<Outcome>('add_custodian', { name, roles }),
  changeRoles: (name: string, roles: Role[]) => call<Outcome>('change_roles', { name, roles }),
  enrollKey: (name: string, kind: 'fido2' | 'piv', slot: string | null) =>
    call<Outcome>('enroll_key', { name, kind, slot }),
  revokeAuthenticator: (name: string, authenticator: string) =>
    call<Outcome>('revoke_authenticator', { name, authenticator }),
  setRule: (operation: OpKind, approvals: number, approverRoles: Role[]) =>
    call<Outcome>('set_rule', { operation, approvals, approverRoles }),
  activateRules: () => call<Outcome>('activate_rules'),

  listRequests: () => call<RequestView[]>('list_requests'),
  approveRequest: (id: string) => call<Outcome>('approve_request', { id }),

  escrowStatus: () => call<EscrowStatus | null>('escrow_status'),
  /** Oldest first. */
  listCeremonies: () => call<CeremonySummary[]>('list_ceremonies'),
  /** Runs the whole escrow (or rekey) script; each participant touches their key in turn. */
  runEscrow: (threshold: number, holders: { name: string; medium: Medium }[], witness: string, drillEveryDays: number) =>
    call<EscrowResult>('run_escrow', { threshold, holders, witness, drillEveryDays }),
  /** SECRET result: keep it in the showing component only. */
  revealShare: (index: number) => call<RevealedShare>('reveal_share', { index }),
  confirmShare: (index: number, words: string) => call<HandOutView>('confirm_share', { index, words }),
  /** The witness records the hand-out (touch): bag serials of the cards, a note on deviations. */
  finishHandout: (force: boolean, bagSerials: { index: number; serial: string }[], note: string | null) =>
    call<Transcript>('finish_handout', { force, bag_serials: bagSerials, note }),
  /** Writes a share file into `dir`; a passphrase-file share is locked with the holder's passphrase. */
  writeShareFile: (index: number, dir: string, passphrase: string | null, confirmation: string | null) =>
    call<HandOutView>('write_share_file', { index, dir, passphrase, confirmation }),
  /** The ceremony's witness notes a deviation at one step (touch); returns the transcript. */
  recordDeviation: (ceremony: string, step: number, note: string) =>
    call<Transcript>('record_deviation', { ceremony, step, note }),
  /** One share checked alone against its commitment (words, QR picture or share file). */
  drillShare: (source: ShareSource) => call<ShareStatus>('drill_share', { source }),
  ceremonyTranscript: (id: string) => call<Transcript>('ceremony_transcript', { id }),
  /** Writes the transcript as JSON next to the vault; returns the path. */
  exportTranscript: (id: string) => call<string>('export_transcript', { id }),
  /** Locked vault: one recovery share presented (words, QR picture, share file), checked and kept in Rust. */
  presentShare: (source: ShareSource) => call<RecoveryShareCheck>('present_share', { source }),
  /** Takes a presented share back; returns the indexes still presented. */
  withdrawShare: (index: number) => call<number[]>('withdraw_share', { index }),
  forgetPresentedShares: () => call<void>('forget_presented_shares'),
  /** Locked vault: the presented shares rebuild the recovery key; sets the new passphrase, leaves the vault unlocked. */
  recoverVault: (passphrase: string, confirmation: string) =>
    call<VaultInfo>('recover_vault', { passphrase, confirmation }),

  /** The PIN dialog's answer (null cancels). The PIN goes to Rust and nowhere else. */
  submitPin: (id: number, pin: string | null) => call<void>('submit_pin', { id, pin }),
};

export function onVaultLocked(cb: (ev: LockedEvent) => void): Promise<UnlistenFn> {
  return listen<LockedEvent>(EVENT_VAULT_LOCKED, (e) => cb(e.payload));
}

export function onCalibrationProgress(cb: (p: CalibrationProgress) => void): Promise<UnlistenFn> {
  return listen<CalibrationProgress>(EVENT_CALIBRATION_PROGRESS, (e) => cb(e.payload));
}

export function onPinRequest(cb: (r: PinRequest) => void): Promise<UnlistenFn> {
  return listen<PinRequest>(EVENT_PIN_REQUEST, (e) => cb(e.payload));
}

export function onTouch(cb: (t: TouchRequest) => void): Promise<UnlistenFn> {
  return listen<TouchRequest>(EVENT_TOUCH, (e) => cb(e.payload));
}

export function onCeremonyStep(cb: (s: CeremonyStepEvent) => void): Promise<UnlistenFn> {
  return listen<CeremonyStepEvent>(EVENT_CEREMONY_STEP, (e) => cb(e.payload));
}

export function onPromptDone(cb: () => void): Promise<UnlistenFn> {
  return listen(EVENT_PROMPT_DONE, () => cb());
}
