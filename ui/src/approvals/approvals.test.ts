import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import ApprovalList from './ApprovalList.svelte';
import { app } from '../lib/app.svelte';
import { byId, byTestId, render } from '../test/helpers';
import { custodian, custody, evidence, fido2, request, vaultInfo } from '../test/fixtures';
import type { RequestView } from '../lib/types';

let cleanup: (() => void) | undefined;
beforeEach(() => {
  app.vault = vaultInfo();
  app.screen = 'approvals';
  app.custodians = [custodian('olivia', ['officer'], [fido2()]), custodian('carol', ['custodian'], [fido2()]), custodian('dave', ['custodian'], [fido2()])];
  app.alert = null;
});
afterEach(() => {
  cleanup?.();
  cleanup = undefined;
  clearMocks();
});

describe('ApprovalList', () => {
  it('shows who asked, who approved and who is still needed; the requester cannot approve', async () => {
    app.custody = custody({ acting_as: 'olivia', enforced: true });
    mockIPC((cmd) => {
      if (cmd === 'list_requests') return [request({ approvals: [evidence('carol', 12)] })];
      throw new Error(cmd);
    });
    const r = render(ApprovalList, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="request-row-3fa1b2c3d4e5"]')).not.toBeNull());
    const row = byTestId(r.target, 'request-row-3fa1b2c3d4e5');
    expect(row.textContent).toContain('key.destroy payroll v1 -> destroyed');
    expect(row.textContent).toContain('olivia');
    expect(byTestId(r.target, 'request-approvers-3fa1b2c3d4e5').textContent).toContain('carol (counter 12, DEMO key)');
    expect(byTestId(r.target, 'request-missing-3fa1b2c3d4e5').textContent).toBe('1 of 2 (officer or custodian)');
    expect(row.textContent).toContain('2026-12-04 16:05:00 UTC');
    const approve = byTestId<HTMLButtonElement>(r.target, 'approve-3fa1b2c3d4e5');
    expect(approve.textContent?.trim()).toBe('Approve as olivia');
    expect(approve.disabled).toBe(true);
    expect(row.textContent).toContain('olivia asked for this and cannot approve it.');
    expect(app.pendingApprovals).toBe(1);
    expect(byId(r.target, 'history-empty').textContent).toContain('No request');
  });

  it('approves as the acting custodian: first pending, then done and in the history', async () => {
    app.custody = custody({ acting_as: 'carol', enforced: true });
    let current: RequestView = request();
    const calls: { cmd: string; args: unknown }[] = [];
    mockIPC((cmd, args) => {
      calls.push({ cmd, args });
      if (cmd === 'list_requests') return [current];
      if (cmd === 'approve_request') {
        const who = app.actingAs ?? '?';
        current = { ...current, approvals: [...current.approvals, evidence(who)] };
        if (current.approvals.length < current.needed) return { pending: current };
        current = { ...current, status: 'done', result: 'payroll v1 is now destroyed' };
        return { done: 'payroll v1 is now destroyed' };
      }
      if (cmd === 'custody_status') return app.custody;
      if (cmd === 'list_custodians') return app.custodians;
      throw new Error(cmd);
    });
    const r = render(ApprovalList, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="approve-3fa1b2c3d4e5"]')).not.toBeNull());
    byTestId(r.target, 'approve-3fa1b2c3d4e5').click();
    await vi.waitFor(() => expect(byId(r.target, 'approvals-message').textContent).toBe('Approved as carol. Request 3fa1b2c3d4e5 still needs 1 more approval (officer or custodian).'));
    expect(calls.find((c) => c.cmd === 'approve_request')?.args).toEqual({ id: '3fa1b2c3d4e5' });
    expect(byTestId<HTMLButtonElement>(r.target, 'approve-3fa1b2c3d4e5').disabled).toBe(true);
    expect(byTestId(r.target, 'request-row-3fa1b2c3d4e5').textContent).toContain('carol has already approved.');

    app.custody = custody({ acting_as: 'dave', enforced: true });
    await vi.waitFor(() => expect(byTestId<HTMLButtonElement>(r.target, 'approve-3fa1b2c3d4e5').disabled).toBe(false));
    expect(byTestId(r.target, 'approve-3fa1b2c3d4e5').textContent?.trim()).toBe('Approve as dave');
    byTestId(r.target, 'approve-3fa1b2c3d4e5').click();
    await vi.waitFor(() => expect(byTestId(r.target, 'request-status-3fa1b2c3d4e5').textContent).toBe('done'));
    expect(byId(r.target, 'approvals-message').textContent).toBe('Request 3fa1b2c3d4e5 approved and carried out: payroll v1 is now destroyed.');
    expect(byTestId(r.target, 'history-row-3fa1b2c3d4e5').textContent).toContain('carol, dave');
    expect(r.target.querySelector('#approvals-empty')).not.toBeNull();
    expect(app.pendingApprovals).toBe(0);
  });

  it('needs someone acting, and shows a wrong PIN as an alert', async () => {
    app.custody = custody({ acting_as: null, enforced: true });
    mockIPC((cmd) => {
      if (cmd === 'list_requests') return [request()];
      if (cmd === 'approve_request') throw { kind: 'wrong_pin', message: 'wrong PIN (2 tries left before the key locks): nothing was done' };
      throw new Error(cmd);
    });
    const r = render(ApprovalList, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="approve-3fa1b2c3d4e5"]')).not.toBeNull());
    expect(byTestId<HTMLButtonElement>(r.target, 'approve-3fa1b2c3d4e5').disabled).toBe(true);
    expect(byTestId(r.target, 'request-row-3fa1b2c3d4e5').textContent).toContain('Choose yourself under “Acting as” first.');

    app.custody = custody({ acting_as: 'dave', enforced: true });
    await vi.waitFor(() => expect(byTestId<HTMLButtonElement>(r.target, 'approve-3fa1b2c3d4e5').disabled).toBe(false));
    byTestId(r.target, 'approve-3fa1b2c3d4e5').click();
    await vi.waitFor(() => expect(byId(r.target, 'approvals-error').textContent).toBe('Wrong PIN (2 tries left before the key locks): nothing was done.'));
    expect(app.alert).toEqual({ kind: 'wrong_pin', message: 'Wrong PIN (2 tries left before the key locks): nothing was done.' });
  });

  it('lists expired and failed requests in the history', async () => {
    app.custody = custody();
    mockIPC((cmd) => {
      if (cmd === 'list_requests') {
        return [
          request({ id: 'aaaaaaaaaaaa', status: 'expired', created: '2026-12-01T10:00:00Z' }),
          request({ id: 'bbbbbbbbbbbb', status: 'failed', result: 'illegal transition', created: '2026-12-02T10:00:00Z' }),
        ];
      }
      throw new Error(cmd);
    });
    const r = render(ApprovalList, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('#history-table')).not.toBeNull());
    const rows = [...r.target.querySelectorAll('#history-table tbody tr')].map((tr) => tr.getAttribute('data-testid'));
    expect(rows).toEqual(['history-row-bbbbbbbbbbbb', 'history-row-aaaaaaaaaaaa']);
    expect(byTestId(r.target, 'request-status-aaaaaaaaaaaa').textContent).toBe('expired');
    expect(byTestId(r.target, 'history-row-bbbbbbbbbbbb').textContent).toContain('illegal transition');
    expect(r.target.querySelector('#approvals-empty')).not.toBeNull();
  });
});
