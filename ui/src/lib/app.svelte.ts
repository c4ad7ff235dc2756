// Which screen is showing and what the window knows about the vault. One instance, shared by screens.
import { IpcError, ipc, isLockedError, toIpcError } from './ipc';
import { formatDuration } from './format';
import type { AppStatus, CustodianView, CustodyStatus, LockedEvent, VaultInfo } from './types';

export type Screen =
  | 'loading'
  | 'create'
  | 'unlock'
  | 'keys'
  | 'key-create'
  | 'key-detail'
  | 'custodians'
  | 'rules'
  | 'approvals'
  | 'audit'
  | 'ceremonies'
  | 'ceremony-escrow'
  | 'ceremony-transcript'
  | 'ceremony-drill'
  | 'recover'
  | 'fatal';

/** A security alert shown as a banner on every screen until dismissed. */
export interface SecurityAlert {
  kind: string;
  message: string;
}

/** Error kinds that are security signals, not just a refused request: they get the alert banner. */
export const ALERT_KINDS: readonly string[] = ['possible_clone', 'wrong_pin', 'pin_blocked', 'backed_off'];

export function failedUnlocksText(n: number): string {
  return n === 1 ? '1 failed unlock attempt since the last unlock' : `${n} failed unlock attempts since the last unlock`;
}

export class AppState {
  screen = $state<Screen>('loading');
  status = $state<AppStatus | null>(null);
  vault = $state<VaultInfo | null>(null);
  selectedKey = $state<string | null>(null);
  /** Shown on the unlock screen: why the vault got locked. */
  notice = $state<string | null>(null);
  /** The create screen's "insecure test KDF" box is ticked. */
  creatingTestVault = $state(false);
  fatal = $state<string | null>(null);
  /** Custody: who acts, the rules, the custodians, how many requests wait for approval. */
  custody = $state<CustodyStatus | null>(null);
  custodians = $state<CustodianView[]>([]);
  pendingApprovals = $state(0);
  alert = $state<SecurityAlert | null>(null);
  /** The ceremony whose transcript the transcript screen shows. */
  selectedCeremony = $state<string | null>(null);
  /**
   * An escrow ceremony runs or its hand-out is open: leaving the wizard would lose the hand-out, so
   * the navigation waits. (Only a flag: no share data lives here.)
   */
  inCeremony = $state(false);

  /** The red TEST VAULT banner shows on every screen while this is true. */
  get testVault(): boolean {
    if (this.vault) return this.vault.insecure_test_kdf;
    if (this.screen === 'create') return this.creatingTestVault;
    return this.status?.locked_info?.insecure_test_kdf ?? false;
  }

  /** The DEMO banner: the window runs with software keys, or the vault is a demo vault. */
  get demo(): boolean {
    return (this.status?.demo ?? false) || (this.custody?.demo ?? false);
  }

  get unlocked(): boolean {
    return this.vault !== null;
  }

  /** The vault has custodians: every operation is asked in someone's name. */
  get guarded(): boolean {
    return this.custody !== null && !this.custody.unguarded;
  }

  get actingAs(): string | null {
    return this.custody?.acting_as ?? null;
  }

  async init(): Promise<void> {
    try {
      const status = await ipc.appStatus();
      this.status = status;
      if (status.unlocked) {
        this.vault = await ipc.vaultInfo();
        this.screen = 'keys';
        await this.refreshCustody();
      } else if (status.exists) {
        this.screen = 'unlock';
      } else {
        this.screen = 'create';
      }
    } catch (err) {
      this.fatal = toIpcError(err).message;
      this.screen = 'fatal';
    }
  }

  unlockedWith(info: VaultInfo): void {
    this.vault = info;
    this.notice = null;
    this.selectedKey = null;
    this.selectedCeremony = null;
    this.inCeremony = false;
    this.screen = 'keys';
    if (info.failed_unlocks > 0) {
      this.alert = {
        kind: 'failed_unlocks',
        message: `${failedUnlocksText(info.failed_unlocks)}. If that was not you or a colleague, someone tried to open this vault: check the audit log.`,
      };
    }
    void this.refreshCustody();
  }

  /** Re-reads custody status, custodians and the number of pending requests. */
  async refreshCustody(): Promise<void> {
    try {
      this.custody = await ipc.custodyStatus();
      // Oldest first (the vault lists them in storage order).
      this.custodians = [...((await ipc.listCustodians()) ?? [])].sort((a, b) => a.created.localeCompare(b.created) || a.name.localeCompare(b.name));
      const requests = (await ipc.listRequests()) ?? [];
      this.pendingApprovals = requests.filter((r) => r.status === 'pending').length;
    } catch (err) {
      if (isLockedError(err)) void this.lockedBy('idle');
      // Otherwise keep what we had: the screens show their own errors.
    }
  }

  async actAs(name: string | null): Promise<string | null> {
    try {
      this.custody = await ipc.actAs(name);
      return null;
    } catch (err) {
      return this.errorMessage(err);
    }
  }

  /** The vault got locked (Lock button, idle time-out, or a command found it locked). */
  async lockedBy(reason: LockedEvent['reason']): Promise<void> {
    this.vault = null;
    this.selectedKey = null;
    this.selectedCeremony = null;
    this.inCeremony = false;
    this.custody = null;
    this.custodians = [];
    this.pendingApprovals = 0;
    if (reason === 'idle') {
      const secs = this.status?.idle_lock_secs;
      this.notice = secs
        ? `Locked automatically after ${formatDuration(secs)} without activity.`
        : 'Locked automatically after a period without activity.';
    } else if (reason === 'user') {
      this.notice = 'Vault locked.';
    } else if (reason === 'shares') {
      this.notice = 'The recovery shares entered were forgotten after a period without activity: enter them again.';
    }
    this.screen = 'unlock';
    await this.refreshStatus();
  }

  /** Re-reads what the file says without the passphrase (failed attempts, back-off, PIV binding). */
  async refreshStatus(): Promise<void> {
    try {
      this.status = await ipc.appStatus();
    } catch {
      // Keep the previous status: the unlock screen still works without it.
    }
  }

  async lock(): Promise<void> {
    try {
      await ipc.lock();
    } finally {
      await this.lockedBy('user');
    }
  }

  openKey(name: string): void {
    this.selectedKey = name;
    this.screen = 'key-detail';
  }

  openTranscript(ceremony: string): void {
    this.selectedCeremony = ceremony;
    this.screen = 'ceremony-transcript';
  }

  go(screen: Screen): void {
    this.screen = screen;
  }

  /** Raises the alert banner for errors that are security signals (wrong PIN, cloned key, back-off). */
  noteAlert(err: unknown): void {
    const e = toIpcError(err);
    if (ALERT_KINDS.includes(e.kind)) this.alert = { kind: e.kind, message: e.message };
  }

  /**
   * Turns a failed command into the message to show. A `vault_locked` error means the idle lock
   * fired: go to the unlock screen instead of showing an error.
   */
  errorMessage(err: unknown): string | null {
    if (isLockedError(err)) {
      void this.lockedBy('idle');
      return null;
    }
    this.noteAlert(err);
    return toIpcError(err).message;
  }
}

export const app = new AppState();
export { IpcError };
