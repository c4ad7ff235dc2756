import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { emit } from '@tauri-apps/api/event';
import DeviceDialog from './DeviceDialog.svelte';
import App from '../App.svelte';
import { app } from './app.svelte';
import { byId, render, type } from '../test/helpers';
import { custodian, custody, fido2, status, vaultInfo } from '../test/fixtures';
import type { PinRequest } from './types';

let cleanup: (() => void) | undefined;
beforeEach(() => {
  app.alert = null;
  app.custody = null;
  app.custodians = [];
  app.vault = null;
});
afterEach(() => {
  cleanup?.();
  cleanup = undefined;
  clearMocks();
});

function pinRequest(over: Partial<PinRequest> = {}): PinRequest {
  return { id: 7, device: 'DEMO FIDO2 key (software, not hardware)', custodian: 'carol', purpose: 'enter', min_len: 4, max_len: 63, ...over };
}

function answers() {
  const calls: { cmd: string; args: unknown }[] = [];
  mockIPC(
    (cmd, args) => {
      calls.push({ cmd, args });
      return null;
    },
    { shouldMockEvents: true },
  );
  return calls;
}

describe('DeviceDialog', () => {
  it('asks for the PIN on a pin-request, sends it once with submit_pin and clears it', async () => {
    const calls = answers();
    const r = render(DeviceDialog, { minTouchMs: 0 });
    cleanup = r.destroy;
    await new Promise((res) => setTimeout(res, 0));
    expect(r.target.querySelector('#device-dialog')).toBeNull();

    await emit('custos://pin-request', pinRequest());
    await vi.waitFor(() => expect(r.target.querySelector('#pin-dialog')).not.toBeNull());
    expect(r.target.textContent).toContain('Enter the PIN of carol’s key');
    expect(byId(r.target, 'pin-device').textContent).toBe('DEMO FIDO2 key (software, not hardware)');
    expect(r.target.querySelector('#pin-confirm')).toBeNull();
    const input = byId<HTMLInputElement>(r.target, 'pin-input');
    expect(input.type).toBe('password');
    type(input, '12');
    byId(r.target, 'pin-submit').click();
    await vi.waitFor(() => expect(byId(r.target, 'pin-error').textContent).toBe('The PIN has 4 to 63 characters.'));
    expect(calls).toHaveLength(0);

    type(byId<HTMLInputElement>(r.target, 'pin-input'), '1357');
    byId(r.target, 'pin-submit').click();
    await vi.waitFor(() => expect(calls).toEqual([{ cmd: 'submit_pin', args: { id: 7, pin: '1357' } }]));
    expect(r.target.querySelector('#pin-dialog')).toBeNull();
    expect(r.target.innerHTML).not.toContain('1357');
  });

  it('asks twice for the PIN of a new demo key and refuses a mismatch', async () => {
    const calls = answers();
    const r = render(DeviceDialog, { minTouchMs: 0 });
    cleanup = r.destroy;
    await new Promise((res) => setTimeout(res, 0));
    await emit('custos://pin-request', pinRequest({ id: 9, purpose: 'new', min_len: 6, max_len: 8, device: 'new DEMO software PIV key of carol' }));
    await vi.waitFor(() => expect(r.target.querySelector('#pin-confirm')).not.toBeNull());
    expect(r.target.textContent).toContain('Choose a PIN for the new key');
    expect(r.target.textContent).toContain('6–8 characters');
    type(byId<HTMLInputElement>(r.target, 'pin-input'), '24681357');
    type(byId<HTMLInputElement>(r.target, 'pin-confirm'), '24681358');
    byId(r.target, 'pin-submit').click();
    await vi.waitFor(() => expect(byId(r.target, 'pin-error').textContent).toBe('The two PINs do not match.'));
    expect(calls).toHaveLength(0);
    type(byId<HTMLInputElement>(r.target, 'pin-confirm'), '24681357');
    byId(r.target, 'pin-submit').click();
    await vi.waitFor(() => expect(calls).toEqual([{ cmd: 'submit_pin', args: { id: 9, pin: '24681357' } }]));
  });

  it('cancels with submit_pin(null); shows the touch prompt until prompt-done', async () => {
    const calls = answers();
    const r = render(DeviceDialog, { minTouchMs: 0 });
    cleanup = r.destroy;
    await new Promise((res) => setTimeout(res, 0));
    await emit('custos://pin-request', pinRequest({ id: 3 }));
    await vi.waitFor(() => expect(r.target.querySelector('#pin-cancel')).not.toBeNull());
    byId(r.target, 'pin-cancel').click();
    await vi.waitFor(() => expect(calls).toEqual([{ cmd: 'submit_pin', args: { id: 3, pin: null } }]));
    expect(r.target.querySelector('#device-dialog')).toBeNull();

    await emit('custos://touch', { device: 'FIDO2 key', custodian: 'dave' });
    await vi.waitFor(() => expect(r.target.querySelector('#touch-prompt')).not.toBeNull());
    expect(r.target.textContent).toContain('Touch dave’s key now');
    expect(byId(r.target, 'touch-device').textContent).toBe('FIDO2 key');
    await emit('custos://prompt-done', {});
    await vi.waitFor(() => expect(r.target.querySelector('#touch-prompt')).toBeNull());
  });

  it('keeps a touch prompt up for a minimum time, so an instant (demo) touch is seen', async () => {
    answers();
    const r = render(DeviceDialog, { minTouchMs: 300 });
    cleanup = r.destroy;
    await new Promise((res) => setTimeout(res, 0));
    await emit('custos://touch', { device: 'DEMO FIDO2 key', custodian: null });
    await emit('custos://prompt-done', {});
    await new Promise((res) => setTimeout(res, 100));
    expect(r.target.querySelector('#touch-prompt')).not.toBeNull();
    expect(r.target.textContent).toContain('Touch the key now');
    await vi.waitFor(() => expect(r.target.querySelector('#touch-prompt')).toBeNull(), { timeout: 2000 });
  });
});

describe('App: DEMO banner, acting as, alerts', () => {
  it('shows the DEMO banner when started with --demo, also on the unlock screen', async () => {
    mockIPC((cmd) => (cmd === 'app_status' ? status({ demo: true }) : null), { shouldMockEvents: true });
    const r = render(App, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('#unlock')).not.toBeNull());
    expect(byId(r.target, 'demo-banner').textContent?.trim()).toBe('DEMO — software keys, not hardware');
  });

  it('shows the DEMO banner for a demo vault without the flag, requires "acting as", and switches who acts', async () => {
    const calls: { cmd: string; args: unknown }[] = [];
    let acting: string | null = null;
    mockIPC(
      (cmd, args) => {
        calls.push({ cmd, args });
        if (cmd === 'app_status') return { ...status(), unlocked: true };
        if (cmd === 'vault_info') return vaultInfo();
        if (cmd === 'custody_status') return custody({ acting_as: acting, demo: true });
        if (cmd === 'list_custodians') return [custodian('olivia', ['officer'], [fido2()]), custodian('carol', ['custodian'])];
        if (cmd === 'list_requests') return [];
        if (cmd === 'list_keys') return [];
        if (cmd === 'act_as') {
          acting = (args as { name: string | null }).name;
          return custody({ acting_as: acting, demo: true });
        }
        return null;
      },
      { shouldMockEvents: true },
    );
    const r = render(App, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('#acting-as')).not.toBeNull());
    expect(r.target.querySelector('#demo-banner')).not.toBeNull();
    expect(byId(r.target, 'acting-required').textContent).toContain('choose who you are');
    const select = byId<HTMLSelectElement>(r.target, 'acting-as');
    expect([...select.options].map((o) => o.value)).toEqual(['', 'carol', 'olivia']); // oldest first, then by name
    select.value = 'carol';
    select.dispatchEvent(new Event('change', { bubbles: true }));
    await vi.waitFor(() => expect(calls.find((c) => c.cmd === 'act_as')?.args).toEqual({ name: 'carol' }));
    await vi.waitFor(() => expect(r.target.querySelector('#acting-required')).toBeNull());
    expect(app.actingAs).toBe('carol');
  });

  it('alerts on failed unlock attempts after unlocking, until dismissed', async () => {
    mockIPC(
      (cmd) => {
        if (cmd === 'app_status') return status({ locked_info: null });
        if (cmd === 'unlock') return vaultInfo({ failed_unlocks: 3 });
        if (cmd === 'custody_status') return custody({ unguarded: true, acting_as: null, demo: false });
        if (cmd === 'list_custodians' || cmd === 'list_requests' || cmd === 'list_keys') return [];
        return null;
      },
      { shouldMockEvents: true },
    );
    const r = render(App, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('#unlock-passphrase')).not.toBeNull());
    type(byId<HTMLInputElement>(r.target, 'unlock-passphrase'), 'the passphrase');
    byId(r.target, 'unlock-button').click();
    await vi.waitFor(() => expect(r.target.querySelector('#security-alert')).not.toBeNull());
    expect(byId(r.target, 'security-alert-message').textContent).toContain('3 failed unlock attempts since the last unlock');
    expect(r.target.querySelector('#demo-banner')).toBeNull();
    expect(r.target.querySelector('#acting-as')).toBeNull(); // no custodians: nobody needs to be chosen
    byId(r.target, 'security-alert-dismiss').click();
    await vi.waitFor(() => expect(r.target.querySelector('#security-alert')).toBeNull());
  });
});
