import { afterEach, describe, expect, it, vi } from 'vitest';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import AuditTimeline from './AuditTimeline.svelte';
import { app } from '../lib/app.svelte';
import { byId, render } from '../test/helpers';
import { vaultInfo } from '../test/fixtures';
import type { AuditEntry, AuditReport } from '../lib/types';

let cleanup: (() => void) | undefined;
afterEach(() => {
  cleanup?.();
  cleanup = undefined;
  clearMocks();
});

function entry(seq: number, action: string): AuditEntry {
  return {
    seq, time: '2026-12-03T16:00:00Z', action, actor: 'desktop:root', key_id: null, key_name: null,
    version: null, outcome: 'ok', detail: '', hash: `h${seq}`.padEnd(64, '0'), prev_hash: '', signed: true,
  };
}

describe('AuditTimeline', () => {
  it.each([
    [{ ok: true, entries: 3, signed_through: 3, unsigned_tail: 0, first_broken: null, message: 'audit chain OK: 3 entries' }, 'Chain intact', null, 'Audit chain OK: 3 entries.'],
    [{ ok: false, entries: 3, signed_through: 1, unsigned_tail: 0, first_broken: 2, message: 'entry 2 does not match its hash' }, 'Chain broken', '#2', 'Entry 2 does not match its hash.'],
  ] as [AuditReport, string, string | null, string][])('shows entries newest first and the verify report (%#)', async (report, headline, broken, shownMessage) => {
    app.vault = vaultInfo();
    mockIPC((cmd) => {
      if (cmd === 'audit_entries') return [entry(1, 'vault.init'), entry(2, 'key.create'), entry(3, 'key.rotate')];
      if (cmd === 'audit_verify') return report;
      throw new Error(cmd);
    });
    const r = render(AuditTimeline, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelectorAll('#audit-table tbody tr').length).toBe(3));
    const firstRow = r.target.querySelector('#audit-table tbody tr');
    expect(firstRow?.getAttribute('data-testid')).toBe('audit-row-3');

    byId(r.target, 'verify-chain-button').click();
    await vi.waitFor(() => expect(byId(r.target, 'verify-result').textContent).toBe(headline));
    expect(byId(r.target, 'verify-report').dataset.ok).toBe(String(report.ok));
    expect(byId(r.target, 'verify-message').textContent).toBe(shownMessage);
    if (broken) {
      expect(byId(r.target, 'verify-first-broken').textContent).toBe(broken);
      expect(r.target.querySelector('[data-testid="audit-row-2"]')?.classList.contains('broken')).toBe(true);
    }
  });
});
