import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { flushSync } from 'svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { emit } from '@tauri-apps/api/event';
import Unlock from './Unlock.svelte';
import CreateVault from './CreateVault.svelte';
import App from '../App.svelte';
import { app } from '../lib/app.svelte';
import type { Strength, VaultInfo } from '../lib/types';
import { byId, render, type } from '../test/helpers';
import { lockedInfo, status, vaultInfo } from '../test/fixtures';

let cleanup: (() => void) | undefined;
beforeEach(() => {
  app.vault = null;
  app.notice = null;
  app.creatingTestVault = false;
});
afterEach(() => {
  cleanup?.();
  cleanup = undefined;
  clearMocks();
});

function strength(score: number): Strength {
  return { score, guesses_log10: score * 4, feedback: { warning: score < 3 ? 'Too common' : null, suggestions: [] }, acceptable: score >= 3 };
}

describe('Unlock', () => {
  it('shows the core error message on a wrong passphrase, then unlocks', async () => {
    app.status = status();
    app.screen = 'unlock';
    const seen: string[] = [];
    mockIPC((cmd, args) => {
      if (cmd !== 'unlock') throw new Error(`unexpected ${cmd}`);
      const pass = (args as { passphrase: string }).passphrase;
      seen.push(pass);
      if (pass !== 'right one') throw { kind: 'wrong_passphrase', message: 'Wrong passphrase: the vault was not unlocked.' };
      return vaultInfo();
    });
    const r = render(Unlock, {});
    cleanup = r.destroy;

    type(byId<HTMLInputElement>(r.target, 'unlock-passphrase'), 'wrong one');
    byId(r.target, 'unlock-button').click();
    await vi.waitFor(() => expect(byId(r.target, 'unlock-error').textContent).toBe('Wrong passphrase: the vault was not unlocked.'));
    expect(byId<HTMLInputElement>(r.target, 'unlock-passphrase').value).toBe('');
    expect(app.screen).toBe('unlock');

    type(byId<HTMLInputElement>(r.target, 'unlock-passphrase'), 'right one');
    byId(r.target, 'unlock-button').click();
    await vi.waitFor(() => expect(app.screen).toBe('keys'));
    expect(app.vault?.vault_id).toBe('vid');
    expect(seen).toEqual(['wrong one', 'right one']);
  });
});

describe('Unlock with custody', () => {
  it('says the vault needs the custodian\'s YubiKey, shows failed attempts and back-off, and refreshes them after a failure', async () => {
    const factor = { serial: 3912345678, slot: 0x82, custodian: 'olivia', card_public: '04', ephemeral_public: '04' };
    app.status = status({ locked_info: lockedInfo({ piv_required: factor, failed_unlocks: 2 }) });
    app.screen = 'unlock';
    app.alert = null;
    mockIPC((cmd) => {
      if (cmd === 'unlock') throw { kind: 'backed_off', message: 'too many failed attempts: wait 5 s before trying again' };
      if (cmd === 'app_status') return status({ locked_info: lockedInfo({ piv_required: factor, failed_unlocks: 3, wait_secs: 5 }) });
      throw new Error(`unexpected ${cmd}`);
    });
    const r = render(Unlock, {});
    cleanup = r.destroy;
    const piv = byId(r.target, 'unlock-piv-required').textContent ?? '';
    expect(piv).toContain('olivia');
    expect(piv).toContain('3912345678');
    expect(piv).toContain('slot 82');
    expect(byId(r.target, 'unlock-failed-alert').textContent).toContain('2 failed unlock attempts since the last unlock.');

    type(byId<HTMLInputElement>(r.target, 'unlock-passphrase'), 'again');
    byId(r.target, 'unlock-button').click();
    await vi.waitFor(() => expect(byId(r.target, 'unlock-failed-alert').textContent).toContain('3 failed unlock attempts'));
    expect(byId(r.target, 'unlock-failed-alert').textContent).toContain('wait 5 s before trying again');
    expect(byId(r.target, 'unlock-error').textContent).toBe('Too many failed attempts: wait 5 s before trying again.');
    expect(app.alert).toMatchObject({ kind: 'backed_off' });
  });
});

describe('CreateVault', () => {
  it('needs a strong, confirmed passphrase and shows calibration progress and parameters', async () => {
    app.status = status({ exists: false, locked_info: null, test_kdf_allowed: true });
    app.screen = 'create';
    let finish: ((v: VaultInfo) => void) | undefined;
    let createArgs: unknown;
    mockIPC(
      (cmd, args) => {
        if (cmd === 'passphrase_strength') {
          return strength((args as { passphrase: string }).passphrase.length > 20 ? 4 : 1);
        }
        if (cmd === 'create_vault') {
          createArgs = args;
          return new Promise<VaultInfo>((resolve) => (finish = resolve));
        }
        return null;
      },
      { shouldMockEvents: true },
    );
    const r = render(CreateVault, {});
    cleanup = r.destroy;
    const button = byId<HTMLButtonElement>(r.target, 'create-vault-button');

    type(byId<HTMLInputElement>(r.target, 'create-passphrase'), 'short');
    await vi.waitFor(() => expect(byId(r.target, 'strength-label').textContent).toBe('Weak'));
    type(byId<HTMLInputElement>(r.target, 'create-confirm'), 'short');
    expect(button.disabled).toBe(true);

    const good = 'lantern quarry velvet ninety oboe';
    type(byId<HTMLInputElement>(r.target, 'create-passphrase'), good);
    await vi.waitFor(() => expect(byId(r.target, 'strength-label').textContent).toBe('Very strong'));
    expect(byId(r.target, 'create-mismatch').textContent).toContain('do not match');
    expect(button.disabled).toBe(true);
    type(byId<HTMLInputElement>(r.target, 'create-confirm'), good);
    expect(button.disabled).toBe(false);

    byId<HTMLInputElement>(r.target, 'test-kdf').click();
    flushSync();
    expect(app.testVault).toBe(true);

    button.click();
    await vi.waitFor(() => expect(finish).toBeDefined());
    expect(createArgs).toEqual({ passphrase: good, confirmation: good, targetMs: 300, insecureTestKdf: true });

    await emit('calibration-progress', { step: 2, of: 5, message: 'trying 128 MiB' });
    await vi.waitFor(() => expect(byId(r.target, 'calibration-message').textContent).toContain('Step 2 of 5'));
    expect(byId<HTMLProgressElement>(r.target, 'calibration-progress').value).toBe(2);

    finish?.(vaultInfo({ insecure_test_kdf: true, kdf: { algorithm: 'argon2id', memory_kib: 131072, iterations: 4, parallelism: 2, salt_len: 16 } }));
    await vi.waitFor(() => expect(r.target.querySelector('#create-result')).not.toBeNull());
    expect(r.target.querySelector('[data-testid="kdf-memory"]')?.textContent).toBe('128 MiB');
    expect(r.target.querySelector('[data-testid="kdf-iterations"]')?.textContent).toBe('4');

    byId(r.target, 'create-continue').click();
    expect(app.screen).toBe('keys');
    expect(app.testVault).toBe(true);
  });
});

describe('App', () => {
  it('shows the TEST VAULT banner for a test vault and returns to unlock on vault-locked', async () => {
    const locked = status({ locked_info: lockedInfo({ insecure_test_kdf: true }) });
    mockIPC(
      (cmd) => {
        if (cmd === 'app_status') return { ...locked, unlocked: true };
        if (cmd === 'vault_info') return vaultInfo({ insecure_test_kdf: true });
        if (cmd === 'list_keys') return [];
        return null;
      },
      { shouldMockEvents: true },
    );
    const r = render(App, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('#keys-empty')).not.toBeNull());
    expect(byId(r.target, 'test-vault-banner').textContent?.trim()).toBe('TEST VAULT — insecure key derivation, not for real keys');
    expect(r.target.querySelector('#lock-button')).not.toBeNull();

    await emit('vault-locked', { reason: 'idle' });
    await vi.waitFor(() => expect(r.target.querySelector('#unlock')).not.toBeNull());
    expect(byId(r.target, 'lock-notice').textContent).toContain('5m without activity');
    expect(r.target.querySelector('#lock-button')).toBeNull();
    // Still a test vault while locked: the banner stays.
    expect(r.target.querySelector('#test-vault-banner')).not.toBeNull();

    // Recovery shares left on the recovery screen are forgotten after the idle time: back to unlock.
    app.screen = 'recover';
    await emit('vault-locked', { reason: 'shares' });
    await vi.waitFor(() => expect(r.target.querySelector('#unlock')).not.toBeNull());
    expect(byId(r.target, 'lock-notice').textContent).toContain('recovery shares entered were forgotten');
  });
});

describe('Audit integrity warning', () => {
  it('shows the core warning on every screen while unlocked, and nothing when the log is intact', async () => {
    let warning: string | null = 'audit log rolled back or altered: entry 9 is not the one the vault sealed';
    mockIPC(
      (cmd) => {
        if (cmd === 'app_status') return { ...status(), unlocked: true };
        if (cmd === 'vault_info') return vaultInfo({ audit_warning: warning });
        if (cmd === 'list_keys') return [];
        return null;
      },
      { shouldMockEvents: true },
    );
    let r = render(App, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('#keys-empty')).not.toBeNull());
    expect(byId(r.target, 'audit-integrity-banner').textContent).toContain('entry 9 is not the one the vault sealed');
    r.destroy();

    warning = null;
    app.vault = null;
    r = render(App, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('#keys-empty')).not.toBeNull());
    expect(r.target.querySelector('#audit-integrity-banner')).toBeNull();
  });
});
