import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import KeyList from './KeyList.svelte';
import KeyDetail from './KeyDetail.svelte';
import CreateKey from './CreateKey.svelte';
import { app } from '../lib/app.svelte';
import { byId, byTestId, choose, render, type } from '../test/helpers';
import { detail, request, summary, vaultInfo } from '../test/fixtures';

let cleanup: (() => void) | undefined;
beforeEach(() => {
  app.vault = vaultInfo();
  app.screen = 'keys';
});
afterEach(() => {
  cleanup?.();
  cleanup = undefined;
  clearMocks();
});

describe('KeyList', () => {
  it('lists keys with state, active version and rotation badge', async () => {
    mockIPC((cmd) => {
      if (cmd === 'list_keys') {
        return [
          summary(),
          summary({ id: 'k2', name: 'signing', type: 'ed25519', active_version: 3, versions: 3, rotation_status: 'overdue' }),
          summary({ id: 'k3', name: 'archive', rotation_status: 'none', rotate_every_secs: null, rotation_due: null }),
        ];
      }
      throw new Error(cmd);
    });
    const r = render(KeyList, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelectorAll('#keys-table tbody tr').length).toBe(3));
    expect(byTestId(r.target, 'rotation-badge-payments').textContent).toBe('OK');
    expect(byTestId(r.target, 'rotation-badge-signing').textContent).toBe('Overdue');
    expect(byTestId(r.target, 'rotation-badge-signing').classList.contains('danger')).toBe(true);
    expect(byTestId(r.target, 'rotation-badge-archive').textContent).toBe('No policy');
    expect(byTestId(r.target, 'key-active-signing').textContent).toBe('v3');
    expect(byTestId(r.target, 'key-state-payments').textContent).toBe('Active');
    expect(byTestId(r.target, 'key-row-payments').textContent).toContain('every 90d');

    byTestId(r.target, 'key-link-signing').click();
    expect(app.screen).toBe('key-detail');
    expect(app.selectedKey).toBe('signing');
  });

  it('goes back to the unlock screen when the vault was locked meanwhile', async () => {
    mockIPC((cmd) => {
      if (cmd === 'list_keys') throw { kind: 'vault_locked', message: 'The vault is locked.' };
      if (cmd === 'app_status') return null;
      throw new Error(cmd);
    });
    const r = render(KeyList, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(app.screen).toBe('unlock'));
    expect(app.vault).toBeNull();
    expect(r.target.querySelector('#keys-error')).toBeNull();
  });
});

describe('CreateKey', () => {
  it('sends name, type and rotation, and shows a core error', async () => {
    const calls: unknown[] = [];
    mockIPC((cmd, args) => {
      calls.push(args);
      if ((args as { rotateEvery: string }).rotateEvery === '9x') {
        throw { kind: 'invalid_duration', message: 'Cannot read "9x" as a duration.' };
      }
      return detail({ name: 'payments' });
    });
    const r = render(CreateKey, {});
    cleanup = r.destroy;
    type(byId<HTMLInputElement>(r.target, 'key-name'), ' payments ');
    choose(byId<HTMLSelectElement>(r.target, 'key-type'), 'ed25519');
    type(byId<HTMLInputElement>(r.target, 'key-rotate-every'), '9x');
    byId(r.target, 'create-key-button').click();
    await vi.waitFor(() => expect(byId(r.target, 'create-key-error').textContent).toBe('Cannot read "9x" as a duration.'));
    type(byId<HTMLInputElement>(r.target, 'key-rotate-every'), '90d');
    byId(r.target, 'create-key-button').click();
    await vi.waitFor(() => expect(app.screen).toBe('key-detail'));
    expect(calls[1]).toEqual({ name: 'payments', keyType: 'ed25519', rotateEvery: '90d' });
    expect(app.selectedKey).toBe('payments');
  });
});

describe('KeyDetail', () => {
  it('shows versions, rotates, changes state with allowed states only, and destroys after confirmation', async () => {
    const calls: { cmd: string; args: unknown }[] = [];
    let current = detail({
      active_version: 1,
      versions: [{ version: 1, state: 'active', created: '2026-12-03T16:00:00Z', public_key: null, allowed_states: ['decrypt-only', 'compromised'] }],
    });
    mockIPC((cmd, args) => {
      calls.push({ cmd, args });
      if (cmd === 'rotate_key') current = detail();
      if (cmd === 'set_key_state') {
        current = detail();
        current.versions[0] = { ...current.versions[0]!, state: 'compromised', allowed_states: ['destroyed'] };
      }
      if (cmd === 'destroy_version') {
        current = detail();
        current.versions[0] = { ...current.versions[0]!, state: 'destroyed', allowed_states: [] };
      }
      // Reads return the key; operations return their outcome with the key as it is now.
      return cmd === 'key_detail' ? current : { done: `${cmd} ok`, key: current };
    });
    const r = render(KeyDetail, { name: 'payments' });
    cleanup = r.destroy;
    await vi.waitFor(() => expect(byTestId(r.target, 'version-state-1').textContent).toBe('Active'));
    expect(r.target.querySelector('[data-testid="destroy-1"]')).toBeNull();

    byId(r.target, 'rotate-button').click();
    await vi.waitFor(() => expect(byTestId(r.target, 'version-state-2').textContent).toBe('Active'));
    expect(byTestId(r.target, 'version-state-1').textContent).toBe('Decrypt-only');
    expect(byId(r.target, 'key-message').textContent).toContain('v2 is now active');

    const select = byTestId<HTMLSelectElement>(r.target, 'state-select-1');
    const options = [...select.options].map((o) => o.value);
    expect(options).toEqual(['', 'compromised']);
    choose(select, 'compromised');
    byTestId(r.target, 'state-apply-1').click();
    await vi.waitFor(() => expect(byTestId(r.target, 'version-state-1').textContent).toBe('Compromised'));
    expect(calls.find((c) => c.cmd === 'set_key_state')?.args).toEqual({ name: 'payments', version: 1, state: 'compromised' });

    byTestId(r.target, 'destroy-1').click();
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="destroy-confirm-1"]')).not.toBeNull());
    expect(calls.some((c) => c.cmd === 'destroy_version')).toBe(false);
    byTestId(r.target, 'destroy-confirm-1').click();
    await vi.waitFor(() => expect(byTestId(r.target, 'version-state-1').textContent).toBe('Destroyed'));
    expect(calls.find((c) => c.cmd === 'destroy_version')?.args).toEqual({ name: 'payments', version: 1 });
  });
});

describe('KeyDetail with custodians', () => {
  it('shows "pending approval" with the request id and the approvals still needed, and leaves the version as it was', async () => {
    const calls: string[] = [];
    mockIPC((cmd) => {
      calls.push(cmd);
      if (cmd === 'key_detail') return detail();
      if (cmd === 'destroy_version') return { pending: request({ id: 'abc123def456', needed: 2 }), key: detail() };
      if (cmd === 'custody_status' || cmd === 'list_custodians' || cmd === 'list_requests') return cmd === 'custody_status' ? null : [];
      throw new Error(cmd);
    });
    const r = render(KeyDetail, { name: 'payments' });
    cleanup = r.destroy;
    await vi.waitFor(() => expect(byTestId(r.target, 'version-state-1').textContent).toBe('Decrypt-only'));
    byTestId(r.target, 'destroy-1').click();
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="destroy-confirm-1"]')).not.toBeNull());
    byTestId(r.target, 'destroy-confirm-1').click();
    await vi.waitFor(() => expect(r.target.querySelector('#key-pending')).not.toBeNull());
    const note = byId(r.target, 'key-pending');
    expect(note.textContent).toContain('Pending approval: request abc123def456, needs 2 more approvals');
    expect(note.dataset.request).toBe('abc123def456');
    expect(r.target.querySelector('#key-message')).toBeNull();
    expect(byTestId(r.target, 'version-state-1').textContent).toBe('Decrypt-only');
    byId(r.target, 'key-pending-open').click();
    expect(app.screen).toBe('approvals');
  });

  it('shows a refused operation (no key enrolled for the acting custodian) as an error', async () => {
    mockIPC((cmd) => {
      if (cmd === 'key_detail') return detail();
      if (cmd === 'rotate_key') throw { kind: 'no_authenticator', message: 'olivia has no usable authenticator: enrol a FIDO2 key first' };
      throw new Error(cmd);
    });
    const r = render(KeyDetail, { name: 'payments' });
    cleanup = r.destroy;
    await vi.waitFor(() => expect(byTestId(r.target, 'version-state-2').textContent).toBe('Active'));
    byId(r.target, 'rotate-button').click();
    await vi.waitFor(() => expect(byId(r.target, 'key-error').textContent).toBe('Olivia has no usable authenticator: enrol a FIDO2 key first.'));
    expect(r.target.querySelector('#key-pending')).toBeNull();
  });
});
