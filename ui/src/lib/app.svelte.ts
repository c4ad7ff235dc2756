// Which screen is showing and what the window knows about the vault. One instance, shared by screens.
import { IpcError, ipc, isLockedError, toIpcError } from './ipc';
import { formatDuration } from './format';
import type { AppStatus, LockedEvent, VaultInfo } from './types';

export type Screen =
  | 'loading'
  | 'create'
  | 'unlock'
  | 'keys'
  | 'key-create'
  | 'key-detail'
  | 'audit'
  | 'fatal';

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

  /** The red TEST VAULT banner shows on every screen while this is true. */
  get testVault(): boolean {
    if (this.vault) return this.vault.insecure_test_kdf;
    if (this.screen === 'create') return this.creatingTestVault;
    return this.status?.locked_info?.insecure_test_kdf ?? false;
  }

  get unlocked(): boolean {
    return this.vault !== null;
  }

  async init(): Promise<void> {
    try {
      const status = await ipc.appStatus();
      this.status = status;
      if (status.unlocked) {
        this.vault = await ipc.vaultInfo();
        this.screen = 'keys';
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
    this.screen = 'keys';
  }

  /** The vault got locked (Lock button, idle time-out, or a command found it locked). */
  async lockedBy(reason: LockedEvent['reason']): Promise<void> {
    this.vault = null;
    this.selectedKey = null;
    if (reason === 'idle') {
      const secs = this.status?.idle_lock_secs;
      this.notice = secs
        ? `Locked automatically after ${formatDuration(secs)} without activity.`
        : 'Locked automatically after a period without activity.';
    } else if (reason === 'user') {
      this.notice = 'Vault locked.';
    }
    this.screen = 'unlock';
    try {
      // Re-read what the file says without the passphrase (a new vault has no locked_info yet).
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

  go(screen: Screen): void {
    this.screen = screen;
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
    return toIpcError(err).message;
  }
}

export const app = new AppState();
export { IpcError };
