import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { flushSync } from 'svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { emit } from '@tauri-apps/api/event';
import CeremonyHome from './CeremonyHome.svelte';
import EscrowWizard from './EscrowWizard.svelte';
import TranscriptView from './TranscriptView.svelte';
import DrillShare from './DrillShare.svelte';
import RecoverVault from './RecoverVault.svelte';
import App from '../App.svelte';
import { app } from '../lib/app.svelte';
import { ipc } from '../lib/ipc';
import { choose, byId, byTestId, render, type } from '../test/helpers';
import { custodian, custody, evidence, fido2, status, vaultInfo } from '../test/fixtures';
import type {
  CustodianView,
  EscrowResult,
  EscrowStatus,
  HandOutView,
  Medium,
  RecoveryShareCheck,
  RevealedShare,
  ShareStatus,
  Strength,
  Transcript,
  TranscriptStep,
} from '../lib/types';
import { normalizeWords, planProblem, scriptSteps, touchText } from './ceremony';

// ---- fixtures ---------------------------------------------------------------------------------

const WORDS = [
  'harbor', 'pencil', 'meadow', 'copper', 'lantern', 'violin', 'garden', 'falcon', 'ribbon', 'saddle', 'timber', 'walnut',
  'oyster', 'marble', 'pepper', 'canyon', 'drift', 'ember', 'fossil', 'glacier', 'hollow', 'island', 'jungle', 'kettle',
  'ladder', 'mirror', 'nectar', 'orbit', 'puzzle', 'quartz', 'rocket', 'sunset', 'tunnel', 'umbrella',
];

function shareWords(index: number): string[] {
  // A different (rotated) list per share, so each share's words are recognisable.
  return WORDS.map((_, i) => WORDS[(i + index * 5) % WORDS.length] ?? 'x');
}

function share(over: Partial<ShareStatus> = {}): ShareStatus {
  return { index: 1, custodian: 'carol', fingerprint: 'fp-1111', last_drill: null, status: 'never', due: '2027-06-01T16:00:00Z', overdue: false, ...over };
}

function escrowStatus(over: Partial<EscrowStatus> = {}): EscrowStatus {
  return {
    ceremony: 'cer-2026-0001',
    threshold: 2,
    total: 3,
    created: '2026-12-03T16:00:00Z',
    drill_every_days: 180,
    overdue: 1,
    shares: [
      share({ index: 2, custodian: 'dave', fingerprint: 'fp-2222', last_drill: '2026-01-01T10:00:00Z', status: 'stale', due: '2026-06-30T10:00:00Z', overdue: true }),
      share({ index: 1, custodian: 'carol', fingerprint: 'fp-1111', last_drill: '2026-12-04T09:30:00Z', status: 'verified' }),
      share({ index: 3, custodian: 'erin', fingerprint: 'fp-3333', last_drill: null, status: 'never' }),
    ],
    ...over,
  };
}

function step(over: Partial<TranscriptStep> = {}): TranscriptStep {
  return {
    seq: 1,
    time: '2026-12-03T16:00:00Z',
    actor: 'olivia',
    role: 'administrator',
    action: 'ceremony.open',
    detail: 'escrow 2 of 3',
    presence: null,
    prev_hash: '00'.repeat(32),
    hash: 'aa'.repeat(32),
    ...over,
  };
}

function transcript(over: Partial<Transcript> = {}): Transcript {
  return {
    format: 'custos-ceremony-transcript/1',
    ceremony: 'cer-2026-0001',
    kind: 'escrow',
    vault_id: 'vid',
    audit_public: 'ed25519:4f6a',
    steps: [
      step({ seq: 1, presence: evidence('olivia', 41) }),
      step({ seq: 2, actor: 'wendy', role: 'witness', action: 'ceremony.confirm', detail: 'room and script confirmed', presence: { ...evidence('wendy', 7), user_verified: false } }),
      step({ seq: 3, actor: 'custos', role: 'system', action: 'escrow.split', detail: 'split 2 of 3, every share checked' }),
    ],
    head: 'cd'.repeat(32),
    signature: 'ef'.repeat(32),
    ...over,
  };
}

function handOut(index: number, name: string, medium: Medium, confirmed = false): HandOutView {
  return { custodian: name, index, medium, fingerprint: `fp-${index}${index}${index}${index}`, confirmed, file: null };
}

function escrowResult(shares: HandOutView[]): EscrowResult {
  return { ceremony: 'cer-2026-0001', kind: 'escrow', threshold: 2, total: shares.length, date: '2026-12-03T16:00:00Z', shares, transcript: transcript(), share_dir: '/home/olivia/vault.db.shares' };
}

function revealed(h: HandOutView): RevealedShare {
  return {
    custodian: h.custodian,
    index: h.index,
    medium: h.medium,
    ceremony: 'cer-2026-0001',
    threshold: 2,
    total: 3,
    date: '2026-12-03T16:00:00Z',
    fingerprint: h.fingerprint,
    words: shareWords(h.index),
    qr_text: 'MFRGGZDFMZTWQ2LK',
    qr_svg: `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 21 21" data-qr="share-${h.index}"><rect width="21" height="21" fill="#fff"/><path d="M0 0h7v7H0z"/></svg>`,
  };
}

function people(): CustodianView[] {
  return [
    custodian('olivia', ['officer'], [fido2()]),
    custodian('carol', ['custodian'], [fido2()]),
    custodian('dave', ['custodian'], [fido2()]),
    custodian('erin', ['custodian'], [fido2()]),
    custodian('wendy', ['auditor'], [fido2()]),
  ];
}

interface Call {
  cmd: string;
  args: unknown;
}

/** A backend answering the custody reads; `onCall` answers the rest (undefined: not handled). */
function backend(onCall: (cmd: string, args: Record<string, unknown>) => unknown, opts: { events?: boolean; custodians?: CustodianView[] } = {}): Call[] {
  const calls: Call[] = [];
  const list = opts.custodians ?? people();
  mockIPC(
    (cmd, args) => {
      const a = (args ?? {}) as Record<string, unknown>;
      if (!cmd.startsWith('plugin:event')) calls.push({ cmd, args: a });
      const answer = onCall(cmd, a);
      if (answer !== undefined) return answer;
      if (cmd === 'custody_status') return app.custody;
      if (cmd === 'list_custodians') return list;
      if (cmd === 'list_requests') return [];
      throw new Error(`unexpected ${cmd}`);
    },
    { shouldMockEvents: opts.events ?? false },
  );
  return calls;
}

function fill(el: HTMLInputElement | HTMLTextAreaElement, value: string) {
  el.value = value;
  el.dispatchEvent(new Event('input', { bubbles: true }));
  flushSync();
}

function click(el: HTMLElement) {
  el.click();
  flushSync();
}

const commands = (calls: Call[], cmd: string) => calls.filter((c) => c.cmd === cmd);

let cleanup: (() => void) | undefined;
beforeEach(() => {
  app.vault = vaultInfo();
  app.custody = custody({ acting_as: 'olivia', enforced: true });
  app.custodians = people();
  app.alert = null;
  app.inCeremony = false;
  app.selectedCeremony = null;
  app.screen = 'ceremonies';
});
afterEach(() => {
  cleanup?.();
  cleanup = undefined;
  clearMocks();
  vi.restoreAllMocks();
  document.body.classList.remove('custos-print');
});

// ---- pure helpers ---------------------------------------------------------------------------

describe('ceremony helpers', () => {
  it('compute the script and the plan problems', () => {
    const holders = [
      { name: 'carol', medium: 'screen' as const },
      { name: 'dave', medium: 'card' as const },
    ];
    expect(scriptSteps({ administrator: 'olivia', witness: 'wendy', threshold: 2, holders })).toEqual([
      'olivia (administrator) opens the ceremony (touch)',
      'wendy (witness) confirms the room and the script (touch)',
      'The recovery key is split 2 of 2 and every share is checked',
      'carol receives share #1 by screen (touch)',
      'dave receives share #2 by card (touch)',
      'wendy (witness) closes the ceremony (touch)',
    ]);
    const plan = { administrator: 'olivia', witness: 'wendy', threshold: 2, holders };
    expect(planProblem(plan, people())).toBeNull();
    expect(planProblem({ ...plan, threshold: 3 }, people())).toContain('cannot exceed');
    expect(planProblem({ ...plan, threshold: 1 }, people())).toContain('at least 2');
    expect(planProblem({ ...plan, threshold: null }, people())).toContain('whole number');
    expect(planProblem({ ...plan, holders: holders.slice(0, 1), threshold: 1 }, people())).toBe('Choose at least 2 holders.');
    expect(planProblem({ ...plan, witness: 'carol' }, people())).toBe('carol holds a share and cannot also be the witness.');
    expect(planProblem({ ...plan, witness: null }, people())).toBe('Choose a witness.');
    expect(planProblem({ ...plan, administrator: null }, people())).toContain('Acting as');
    const many = Array.from({ length: 33 }, (_, i) => ({ name: `c${i}`, medium: 'screen' as const }));
    expect(planProblem({ ...plan, holders: many }, people())).toBe('At most 32 holders (33 chosen).');
    expect(touchText(null)).toBe('—');
    expect(touchText({ ...evidence('carol', 12), demo: false })).toBe('carol · counter 12 · UP+UV');
    expect(normalizeWords('  Harbor\n pencil\t\tMEADOW ')).toBe('harbor pencil meadow');
  });

  it('send the ceremony commands with the names and argument shapes the Rust side takes', async () => {
    const calls = backend(() => null);
    await ipc.escrowStatus();
    await ipc.listCeremonies();
    await ipc.runEscrow(2, [{ name: 'carol', medium: 'screen' }, { name: 'dave', medium: 'card' }], 'wendy', 90);
    await ipc.revealShare(1);
    await ipc.confirmShare(1, 'harbor pencil');
    await ipc.finishHandout(false, [{ index: 2, serial: 'TEB-1' }], 'late start');
    await ipc.drillShare({ kind: 'words', words: 'harbor pencil' });
    await ipc.ceremonyTranscript('cer-1');
    await ipc.exportTranscript('cer-1');
    await ipc.writeShareFile(3, '/media/usb', 'their pass', 'their pass');
    await ipc.recordDeviation('cer-1', 3, 'printer jammed');
    await ipc.presentShare({ kind: 'words', words: 'harbor pencil' });
    await ipc.presentShare({ kind: 'file', name: 'bob.age', bytes: [1, 2], passphrase: null });
    await ipc.withdrawShare(2);
    await ipc.forgetPresentedShares();
    await ipc.recoverVault('new pass', 'new pass');
    expect(calls).toEqual([
      { cmd: 'escrow_status', args: {} },
      { cmd: 'list_ceremonies', args: {} },
      { cmd: 'run_escrow', args: { threshold: 2, holders: [{ name: 'carol', medium: 'screen' }, { name: 'dave', medium: 'card' }], witness: 'wendy', drillEveryDays: 90 } },
      { cmd: 'reveal_share', args: { index: 1 } },
      { cmd: 'confirm_share', args: { index: 1, words: 'harbor pencil' } },
      { cmd: 'finish_handout', args: { force: false, bag_serials: [{ index: 2, serial: 'TEB-1' }], note: 'late start' } },
      { cmd: 'drill_share', args: { source: { kind: 'words', words: 'harbor pencil' } } },
      { cmd: 'ceremony_transcript', args: { id: 'cer-1' } },
      { cmd: 'export_transcript', args: { id: 'cer-1' } },
      { cmd: 'write_share_file', args: { index: 3, dir: '/media/usb', passphrase: 'their pass', confirmation: 'their pass' } },
      { cmd: 'record_deviation', args: { ceremony: 'cer-1', step: 3, note: 'printer jammed' } },
      { cmd: 'present_share', args: { source: { kind: 'words', words: 'harbor pencil' } } },
      { cmd: 'present_share', args: { source: { kind: 'file', name: 'bob.age', bytes: [1, 2], passphrase: null } } },
      { cmd: 'withdraw_share', args: { index: 2 } },
      { cmd: 'forget_presented_shares', args: {} },
      { cmd: 'recover_vault', args: { passphrase: 'new pass', confirmation: 'new pass' } },
    ]);
  });
});

// ---- home ---------------------------------------------------------------------------------------

describe('CeremonyHome', () => {
  it('says when there is no escrow and offers a new one, without a drill', async () => {
    backend((cmd) => {
      if (cmd === 'escrow_status') return null;
      if (cmd === 'list_ceremonies') return [];
      return undefined;
    });
    const r = render(CeremonyHome, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('#no-escrow')).not.toBeNull());
    expect(byId(r.target, 'new-escrow').textContent?.trim()).toBe('New escrow');
    expect(r.target.querySelector('#drill-open')).toBeNull();
    expect(r.target.querySelector('#escrow-status')).toBeNull();
    expect(byId(r.target, 'no-ceremonies').textContent).toContain('No ceremony');
    expect(byId(r.target, 'escrow-explained').textContent).toContain('never stored');
    click(byId(r.target, 'new-escrow'));
    expect(app.screen).toBe('ceremony-escrow');
  });

  it('renders the escrow status with each share’s drill state, the rekey button and past ceremonies', async () => {
    backend((cmd) => {
      if (cmd === 'escrow_status') return escrowStatus();
      if (cmd === 'list_ceremonies') {
        return [
          { ceremony: 'cer-2026-0000', kind: 'escrow', time: '2026-06-01T10:00:00Z', steps: 7, head: 'ab'.repeat(32) },
          { ceremony: 'cer-2026-0001', kind: 'rekey', time: '2026-12-03T16:00:00Z', steps: 8, head: 'cd'.repeat(32) },
        ];
      }
      return undefined;
    });
    const r = render(CeremonyHome, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('#escrow-status')).not.toBeNull());
    const table = byId(r.target, 'escrow-status');
    expect(table.textContent).toContain('2 of 3');
    expect(table.textContent).toContain('2026-12-03 16:00:00 UTC');
    const rows = [...table.querySelectorAll('tbody tr')].map((tr) => tr.getAttribute('data-testid'));
    expect(rows).toEqual(['share-row-1', 'share-row-2', 'share-row-3']);
    expect(byTestId(r.target, 'share-row-1').textContent).toContain('carol');
    expect(byTestId(r.target, 'share-row-1').textContent).toContain('fp-1111');
    expect(byTestId(r.target, 'share-row-1').textContent).toContain('2026-12-04 09:30:00 UTC');
    expect(byTestId(r.target, 'share-row-3').textContent).toContain('never');
    expect(byTestId(r.target, 'share-status-1').textContent).toBe('verified');
    expect(byTestId(r.target, 'share-status-1').classList.contains('ok')).toBe(true);
    expect(byTestId(r.target, 'share-status-2').textContent).toBe('stale');
    expect(byTestId(r.target, 'share-status-2').classList.contains('warn')).toBe(true);
    expect(byTestId(r.target, 'share-status-3').textContent).toBe('never');
    expect(byTestId(r.target, 'share-status-3').classList.contains('badge')).toBe(true);
    expect(byTestId(r.target, 'escrow-drill-policy').textContent).toBe('drilled at least every 180 days');
    expect(byTestId(r.target, 'escrow-overdue').textContent).toBe('1 overdue');
    expect(byTestId(r.target, 'share-due-2').textContent).toBe('overdue since 2026-06-30 10:00:00 UTC');
    expect(byTestId(r.target, 'share-due-1').textContent).toBe('2027-06-01 16:00:00 UTC');
    expect(byId(r.target, 'new-escrow').textContent?.trim()).toBe('Rekey');
    expect(byId(r.target, 'rekey-explained').textContent).toContain('old shares stop working');
    expect(r.target.querySelector('#no-escrow')).toBeNull();
    const ceremonyRows = [...r.target.querySelectorAll('#ceremony-list tbody tr')].map((tr) => tr.getAttribute('data-testid'));
    expect(ceremonyRows).toEqual(['ceremony-row-cer-2026-0000', 'ceremony-row-cer-2026-0001']);
    expect(byTestId(r.target, 'ceremony-row-cer-2026-0001').textContent).toContain('rekey');

    click(byId(r.target, 'drill-open'));
    expect(app.screen).toBe('ceremony-drill');
    click(byTestId(r.target, 'transcript-open-cer-2026-0000'));
    expect(app.screen).toBe('ceremony-transcript');
    expect(app.selectedCeremony).toBe('cer-2026-0000');
  });
});

// ---- the escrow wizard -----------------------------------------------------------------------

async function openWizard(onCall: (cmd: string, args: Record<string, unknown>) => unknown, opts: { escrow?: EscrowStatus | null; custodians?: CustodianView[] } = {}) {
  const calls = backend(
    (cmd, args) => {
      if (cmd === 'escrow_status') return opts.escrow ?? null;
      return onCall(cmd, args);
    },
    { events: true, custodians: opts.custodians },
  );
  app.screen = 'ceremony-escrow';
  const r = render(EscrowWizard, {});
  cleanup = r.destroy;
  await vi.waitFor(() => expect(commands(calls, 'escrow_status')).toHaveLength(1));
  await vi.waitFor(() => expect(commands(calls, 'list_requests')).toHaveLength(1));
  flushSync();
  return { r, calls };
}

function plan(root: HTMLElement, holders: [string, Medium][], witness: string, threshold: string) {
  for (const [name, medium] of holders) {
    click(byTestId<HTMLInputElement>(root, `holder-check-${name}`));
    choose(byTestId<HTMLSelectElement>(root, `holder-medium-${name}`), medium);
  }
  choose(byId<HTMLSelectElement>(root, 'escrow-witness'), witness);
  fill(byId<HTMLInputElement>(root, 'escrow-threshold'), threshold);
}

const scriptOf = (root: HTMLElement) => [...byId(root, 'escrow-script').querySelectorAll('li')].map((li) => li.textContent?.trim());

describe('EscrowWizard set-up', () => {
  it('lists the custodian-role holders, the witnesses and a script that follows the plan', async () => {
    const { r } = await openWizard(() => undefined);
    expect(byId(r.target, 'escrow-admin').textContent).toContain('olivia');
    expect(r.target.querySelector('#escrow-admin-warning')).toBeNull();
    const holders = [...r.target.querySelectorAll('#escrow-holders tbody tr')].map((tr) => tr.getAttribute('data-testid'));
    expect(holders).toEqual(['holder-carol', 'holder-dave', 'holder-erin']);
    const options = [...byTestId<HTMLSelectElement>(r.target, 'holder-medium-carol').options].map((o) => o.value);
    expect(options).toEqual(['screen', 'card', 'file', 'passphrase-file']);
    const witnesses = [...byId<HTMLSelectElement>(r.target, 'escrow-witness').options].map((o) => o.value);
    expect(witnesses).toEqual(['', 'carol', 'dave', 'erin', 'wendy']);

    plan(r.target, [['carol', 'screen'], ['dave', 'card'], ['erin', 'screen']], 'wendy', '2');
    expect(scriptOf(r.target)).toEqual([
      'olivia (administrator) opens the ceremony (touch)',
      'wendy (witness) confirms the room and the script (touch)',
      'The recovery key is split 2 of 3 and every share is checked',
      'carol receives share #1 by screen (touch)',
      'dave receives share #2 by card (touch)',
      'erin receives share #3 by screen (touch)',
      'wendy (witness) closes the ceremony (touch)',
    ]);
    // Unticking a holder drops their step and renumbers the shares.
    click(byTestId<HTMLInputElement>(r.target, 'holder-check-carol'));
    expect(scriptOf(r.target)).toEqual([
      'olivia (administrator) opens the ceremony (touch)',
      'wendy (witness) confirms the room and the script (touch)',
      'The recovery key is split 2 of 2 and every share is checked',
      'dave receives share #1 by card (touch)',
      'erin receives share #2 by screen (touch)',
      'wendy (witness) closes the ceremony (touch)',
    ]);
    expect(byId(r.target, 'escrow-threshold-hint').textContent).toContain('N = 2');
  });

  it('refuses M > N, M < 2 and a holder as witness before any call', async () => {
    const { r, calls } = await openWizard(() => undefined);
    plan(r.target, [['carol', 'screen'], ['dave', 'screen']], 'wendy', '3');
    expect(byId(r.target, 'escrow-threshold-hint').classList.contains('bad')).toBe(true);
    click(byId(r.target, 'escrow-run'));
    expect(byId(r.target, 'escrow-error').textContent).toBe('The threshold M (3) cannot exceed the number of holders N (2).');
    expect(byId(r.target, 'escrow-error').getAttribute('role')).toBe('alert');

    fill(byId<HTMLInputElement>(r.target, 'escrow-threshold'), '1');
    click(byId(r.target, 'escrow-run'));
    expect(byId(r.target, 'escrow-error').textContent).toContain('at least 2');

    fill(byId<HTMLInputElement>(r.target, 'escrow-threshold'), '2');
    expect(byId(r.target, 'escrow-threshold-hint').classList.contains('bad')).toBe(false);
    choose(byId<HTMLSelectElement>(r.target, 'escrow-witness'), 'carol');
    expect(byId(r.target, 'escrow-witness-conflict').textContent).toContain('carol');
    click(byId(r.target, 'escrow-run'));
    expect(byId(r.target, 'escrow-error').textContent).toBe('carol holds a share and cannot also be the witness.');

    await new Promise((res) => setTimeout(res, 0));
    expect(commands(calls, 'run_escrow')).toHaveLength(0);
    expect(app.inCeremony).toBe(false);
  });

  it('warns that a non-officer administrator will be refused and shows the rekey warning', async () => {
    app.custody = custody({ acting_as: 'carol', enforced: true });
    const { r } = await openWizard(() => undefined, { escrow: escrowStatus({ drill_every_days: 30 }) });
    expect(byId(r.target, 'escrow-admin-warning').textContent).toContain('carol is not an officer');
    // A rekey offers the escrow's own drill policy.
    await vi.waitFor(() => expect(byId<HTMLInputElement>(r.target, 'escrow-drill-days').value).toBe('30'));
    expect(byId(r.target, 'escrow-rekey-warning').textContent).toContain('old shares stop working');
    expect(byId(r.target, 'escrow-run').textContent).toBe('Run the rekey');
    // carol administers, so she is not offered as witness.
    const witnesses = [...byId<HTMLSelectElement>(r.target, 'escrow-witness').options].map((o) => o.value);
    expect(witnesses).not.toContain('carol');
  });
});

describe('EscrowWizard run and hand-out', () => {
  const shares = () => [handOut(1, 'carol', 'screen'), handOut(2, 'dave', 'card'), handOut(3, 'erin', 'screen')];

  async function runToHandout(extra: (cmd: string, args: Record<string, unknown>) => unknown = () => undefined) {
    let finishRun: ((v: EscrowResult) => void) | undefined;
    const { r, calls } = await openWizard((cmd, args) => {
      if (cmd === 'run_escrow') return new Promise<EscrowResult>((resolve) => (finishRun = resolve));
      if (cmd === 'reveal_share') {
        const h = shares().find((s) => s.index === args.index);
        return h ? revealed(h) : undefined;
      }
      return extra(cmd, args);
    });
    plan(r.target, [['carol', 'screen'], ['dave', 'card'], ['erin', 'screen']], 'wendy', '2');
    click(byId(r.target, 'escrow-run'));
    await vi.waitFor(() => expect(finishRun).toBeDefined());
    return { r, calls, finish: (res: EscrowResult) => finishRun?.(res) };
  }

  it('runs with the chosen holders, media, witness and threshold, and lists each step as it starts', async () => {
    const { r, calls, finish } = await runToHandout();
    expect(commands(calls, 'run_escrow')[0]?.args).toEqual({
      threshold: 2,
      holders: [
        { name: 'carol', medium: 'screen' },
        { name: 'dave', medium: 'card' },
        { name: 'erin', medium: 'screen' },
      ],
      witness: 'wendy',
      drillEveryDays: 180,
    });
    expect(r.target.querySelector('#escrow-wizard')?.getAttribute('data-stage')).toBe('running');
    expect(app.inCeremony).toBe(true);
    await emit('custos://ceremony-step', { text: '1. olivia opens the ceremony. Touch your key.' });
    await emit('custos://ceremony-step', { text: '2. wendy confirms the room and the script. Touch your key.' });
    await vi.waitFor(() => expect(byId(r.target, 'escrow-progress').querySelectorAll('li')).toHaveLength(2));
    const items = [...byId(r.target, 'escrow-progress').querySelectorAll('li')].map((li) => li.textContent);
    expect(items).toEqual(['1. olivia opens the ceremony. Touch your key.', '2. wendy confirms the room and the script. Touch your key.']);

    finish(escrowResult(shares()));
    await vi.waitFor(() => expect(r.target.querySelector('#handout')).not.toBeNull());
    expect(byTestId(r.target, 'handout-1').textContent).toContain('carol');
    expect(byTestId(r.target, 'handout-1').textContent).toContain('fp-1111');
    expect(byTestId(r.target, 'handout-status-1').textContent).toBe('not confirmed');
    expect(byTestId(r.target, 'handout-status-2').textContent).toBe('card');
    expect(byTestId(r.target, 'reveal-3').textContent).toBe('Show share to erin');
    expect(r.target.querySelector('[data-testid="card-2"]')).not.toBeNull();
    expect(r.target.querySelector('[data-testid="card-1"]')).toBeNull();
    expect(app.inCeremony).toBe(true);
  });

  it('shows a failed run’s message and goes back to the set-up', async () => {
    const { r } = await openWizard((cmd) => {
      if (cmd === 'run_escrow') throw { kind: 'not_allowed', message: 'carol is not an officer: only an officer can administer a ceremony' };
      return undefined;
    });
    plan(r.target, [['carol', 'screen'], ['dave', 'screen']], 'wendy', '2');
    click(byId(r.target, 'escrow-run'));
    await vi.waitFor(() => expect(byId(r.target, 'escrow-error').textContent).toBe('Carol is not an officer: only an officer can administer a ceremony.'));
    expect(r.target.querySelector('#escrow-wizard')?.getAttribute('data-stage')).toBe('setup');
    expect(app.inCeremony).toBe(false);
  });

  it('reveals a share to its holder only while shown; hide removes the words from the DOM', async () => {
    const { r, calls, finish } = await runToHandout();
    finish(escrowResult(shares()));
    await vi.waitFor(() => expect(r.target.querySelector('#handout')).not.toBeNull());
    expect(r.target.querySelector('#share-reveal')).toBeNull();
    expect(r.target.innerHTML).not.toContain('lantern');

    click(byTestId(r.target, 'reveal-1'));
    await vi.waitFor(() => expect(r.target.querySelector('#share-reveal')).not.toBeNull());
    expect(commands(calls, 'reveal_share')[0]?.args).toEqual({ index: 1 });
    const words = [...byId(r.target, 'share-words').querySelectorAll('li')].map((li) => li.textContent);
    expect(words).toEqual(shareWords(1));
    expect(byId(r.target, 'share-words').tagName).toBe('OL');
    expect(byId(r.target, 'share-qr').querySelector('svg')?.getAttribute('data-qr')).toBe('share-1');
    expect(byId(r.target, 'share-reveal').textContent).toContain('fp-1111');
    expect(byId(r.target, 'share-reveal').textContent).toContain('Only carol looks at the screen now.');

    click(byId(r.target, 'share-hide'));
    expect(r.target.querySelector('#share-reveal')).toBeNull();
    for (const w of shareWords(1)) expect(r.target.innerHTML).not.toContain(w);
    expect(r.target.querySelector('svg')).toBeNull();
  });

  it('shows a confirm error, then marks the share confirmed and closes the panel', async () => {
    let attempt = 0;
    const { r, calls, finish } = await runToHandout((cmd, args) => {
      if (cmd === 'confirm_share') {
        attempt += 1;
        if (attempt === 1) throw { kind: 'bad_share', message: 'word 7 is wrong: the word there is "garden"' };
        return handOut(Number(args.index), 'carol', 'screen', true);
      }
      return undefined;
    });
    finish(escrowResult(shares()));
    await vi.waitFor(() => expect(r.target.querySelector('#handout')).not.toBeNull());
    click(byTestId(r.target, 'reveal-1'));
    await vi.waitFor(() => expect(r.target.querySelector('#confirm-words')).not.toBeNull());
    const typed = shareWords(1).join(' ');
    fill(byId<HTMLTextAreaElement>(r.target, 'confirm-words'), typed);
    click(byId(r.target, 'confirm-submit'));
    await vi.waitFor(() => expect(byId(r.target, 'confirm-error').textContent).toBe('Word 7 is wrong: the word there is "garden".'));
    expect(byTestId(r.target, 'handout-status-1').textContent).toBe('not confirmed');
    expect(r.target.querySelector('#share-reveal')).not.toBeNull();

    click(byId(r.target, 'confirm-submit'));
    await vi.waitFor(() => expect(byTestId(r.target, 'handout-status-1').textContent).toBe('confirmed'));
    expect(commands(calls, 'confirm_share').map((c) => c.args)).toEqual([
      { index: 1, words: typed },
      { index: 1, words: typed },
    ]);
    expect(r.target.querySelector('#share-reveal')).toBeNull();
    expect(byId(r.target, 'handout-message').textContent).toContain('Share #1 confirmed');
    expect(byId(r.target, 'handout-unconfirmed').textContent).toContain('#3 (erin)');
    expect(byId(r.target, 'handout-unconfirmed').textContent).not.toContain('#1 (carol)');
  });

  it('previews and prints a card share with everything the card carries', async () => {
    const print = vi.spyOn(window, 'print').mockImplementation(() => undefined);
    const { r, calls, finish } = await runToHandout();
    finish(escrowResult(shares()));
    await vi.waitFor(() => expect(r.target.querySelector('#handout')).not.toBeNull());
    click(byTestId(r.target, 'card-2'));
    await vi.waitFor(() => expect(r.target.querySelector('#share-card')).not.toBeNull());
    expect(commands(calls, 'reveal_share')[0]?.args).toEqual({ index: 2 });
    const card = byId(r.target, 'share-card');
    expect(card.classList.contains('print-area')).toBe(true);
    expect(byTestId(card, 'card-qr').querySelector('svg')?.getAttribute('data-qr')).toBe('share-2');
    expect([...byTestId(card, 'card-words').querySelectorAll('li')].map((li) => li.textContent)).toEqual(shareWords(2));
    expect(byTestId(card, 'card-ceremony').textContent).toBe('cer-2026-0001');
    expect(byTestId(card, 'card-custodian').textContent).toBe('dave');
    expect(byTestId(card, 'card-index').textContent).toBe('2');
    expect(byTestId(card, 'card-of').textContent).toBe('2 of 3');
    expect(byTestId(card, 'card-date').textContent).toBe('2026-12-03 16:00:00 UTC');
    const log = byTestId(card, 'card-custody-log');
    expect([...log.querySelectorAll('th')].map((th) => th.textContent)).toEqual(['Date', 'From', 'To', 'Bag serial', 'Signature']);
    expect(log.querySelectorAll('tbody tr')).toHaveLength(4);
    expect(card.textContent).toContain('Tamper-evident bag serial');
    expect(byTestId(card, 'card-warning').textContent).toContain('Whoever holds 2 of these cards holds the vault');
    expect(document.body.classList.contains('custos-print')).toBe(true);

    click(byId(r.target, 'card-print'));
    expect(print).toHaveBeenCalledTimes(1);
    click(byId(r.target, 'card-close'));
    expect(r.target.querySelector('#share-card')).toBeNull();
    expect(document.body.classList.contains('custos-print')).toBe(false);
    // The share stays on screen until hidden.
    click(byId(r.target, 'share-hide'));
    expect(r.target.innerHTML).not.toContain('data-qr');
  });

  it('finish refused → force → finish_handout with force:true, then the transcript', async () => {
    const { r, calls, finish } = await runToHandout((cmd, args) => {
      if (cmd === 'finish_handout') {
        if (args.force === true) return null;
        throw { kind: 'bad_share', message: 'share #1 (carol) and share #3 (erin) are not confirmed' };
      }
      return undefined;
    });
    finish(escrowResult(shares()));
    await vi.waitFor(() => expect(r.target.querySelector('#handout')).not.toBeNull());
    click(byTestId(r.target, 'reveal-1'));
    await vi.waitFor(() => expect(r.target.querySelector('#share-reveal')).not.toBeNull());
    expect(r.target.querySelector('#handout-finish-force')).toBeNull();

    click(byId(r.target, 'handout-finish'));
    await vi.waitFor(() => expect(byId(r.target, 'handout-error').textContent).toBe('Share #1 (carol) and share #3 (erin) are not confirmed.'));
    // Finishing hides what was on screen.
    expect(r.target.querySelector('#share-reveal')).toBeNull();
    expect(app.screen).toBe('ceremony-escrow');
    const force = byId(r.target, 'handout-finish-force');
    expect(force.textContent).toBe('Finish anyway; record the unconfirmed shares');
    // Only the card share has a bag serial field; the witness types it, and a note.
    expect(r.target.querySelector('[data-testid="bag-serial-1"]')).toBeNull();
    type(byTestId<HTMLInputElement>(r.target, 'bag-serial-2'), '  TEB-0042 ');
    type(byId<HTMLInputElement>(r.target, 'handout-note'), 'erin left early');
    click(force);
    await vi.waitFor(() => expect(app.screen).toBe('ceremony-transcript'));
    expect(commands(calls, 'finish_handout').map((c) => c.args)).toEqual([
      { force: false, bag_serials: [], note: null },
      { force: true, bag_serials: [{ index: 2, serial: 'TEB-0042' }], note: 'erin left early' },
    ]);
    expect(app.selectedCeremony).toBe('cer-2026-0001');
    expect(app.inCeremony).toBe(false);
  });

  it('writes a share file (with the holder’s passphrase) into the chosen directory, and records a deviation', async () => {
    const { r, calls, finish } = await runToHandout((cmd, args) => {
      if (cmd === 'write_share_file') {
        if (args.passphrase === 'short') throw { kind: 'weak_passphrase', message: 'This passphrase is too easy to guess (strength 0 of 4; at least 3 is required).' };
        return { ...handOut(Number(args.index), Number(args.index) === 2 ? 'dave' : 'erin', Number(args.index) === 2 ? 'file' : 'passphrase-file'), file: `${String(args.dir)}/cer-2026-0001-share-${String(args.index)}.age` };
      }
      if (cmd === 'record_deviation') {
        const t = transcript();
        return { ...t, steps: [...t.steps, step({ seq: 4, actor: 'wendy', role: 'witness', action: 'deviation', detail: `at step ${String(args.step)} (escrow.split, custos): ${String(args.note)}` })] };
      }
      return undefined;
    });
    finish(escrowResult([handOut(1, 'carol', 'screen'), handOut(2, 'dave', 'file'), handOut(3, 'erin', 'passphrase-file')]));
    await vi.waitFor(() => expect(r.target.querySelector('#handout')).not.toBeNull());
    // File shares are written, never shown.
    expect(r.target.querySelector('[data-testid="reveal-2"]')).toBeNull();
    expect(byTestId(r.target, 'handout-status-3').textContent).toBe('not written');
    expect(byId(r.target, 'handout-unconfirmed').textContent).toContain('Share file not written yet: #2 (dave), #3 (erin).');

    click(byTestId(r.target, 'write-3'));
    expect(byId<HTMLInputElement>(r.target, 'share-file-dir').value).toBe('/home/olivia/vault.db.shares');
    type(byId<HTMLInputElement>(r.target, 'share-file-dir'), '/media/erin-usb');
    type(byId<HTMLInputElement>(r.target, 'share-file-pass'), 'short');
    type(byId<HTMLInputElement>(r.target, 'share-file-pass-again'), 'short');
    click(byId(r.target, 'share-write-submit'));
    await vi.waitFor(() => expect(byId(r.target, 'share-write-error').textContent).toContain('too easy to guess'));
    type(byId<HTMLInputElement>(r.target, 'share-file-pass'), 'heron basalt midnight quarry');
    type(byId<HTMLInputElement>(r.target, 'share-file-pass-again'), 'heron basalt midnight quarry');
    click(byId(r.target, 'share-write-submit'));
    await vi.waitFor(() => expect(r.target.querySelector('#share-write')).toBeNull());
    expect(byId(r.target, 'handout-message').textContent).toBe('Share file of erin written to /media/erin-usb/cer-2026-0001-share-3.age.');
    expect(byTestId(r.target, 'handout-status-3').textContent).toBe('file written');
    // A YubiKey file asks no passphrase.
    click(byTestId(r.target, 'write-2'));
    expect(r.target.querySelector('#share-file-pass')).toBeNull();
    click(byId(r.target, 'share-write-submit'));
    await vi.waitFor(() => expect(byTestId(r.target, 'handout-status-2').textContent).toBe('file written'));
    expect(commands(calls, 'write_share_file').map((c) => c.args)).toEqual([
      { index: 3, dir: '/media/erin-usb', passphrase: 'short', confirmation: 'short' },
      { index: 3, dir: '/media/erin-usb', passphrase: 'heron basalt midnight quarry', confirmation: 'heron basalt midnight quarry' },
      { index: 2, dir: '/media/erin-usb', passphrase: null, confirmation: null },
    ]);

    // The witness notes a deviation against step 3.
    const submit = () => byId<HTMLButtonElement>(r.target, 'deviation-submit');
    expect(submit().disabled).toBe(true);
    choose(byId<HTMLSelectElement>(r.target, 'deviation-step'), '3');
    type(byId<HTMLInputElement>(r.target, 'deviation-note'), ' the split was run twice ');
    expect(submit().disabled).toBe(false);
    click(submit());
    await vi.waitFor(() => expect(r.target.querySelector('#deviation-list')).not.toBeNull());
    expect(byId(r.target, 'deviation-list').textContent).toContain('Step 4 (wendy): at step 3 (escrow.split, custos): the split was run twice');
    expect(commands(calls, 'record_deviation').map((c) => c.args)).toEqual([{ ceremony: 'cer-2026-0001', step: 3, note: 'the split was run twice' }]);
    expect(byId<HTMLTextAreaElement>(r.target, 'deviation-note').value).toBe('');
  });
});

// ---- transcript -------------------------------------------------------------------------------

describe('TranscriptView', () => {
  it('renders each step with its touch, the head and signature, exports and prints', async () => {
    const print = vi.spyOn(window, 'print').mockImplementation(() => undefined);
    const calls = backend((cmd) => {
      if (cmd === 'ceremony_transcript') return transcript();
      if (cmd === 'export_transcript') return '/tmp/v/ceremony-cer-2026-0001.json';
      return undefined;
    });
    const r = render(TranscriptView, { id: 'cer-2026-0001' });
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('#transcript')).not.toBeNull());
    expect(commands(calls, 'ceremony_transcript')[0]?.args).toEqual({ id: 'cer-2026-0001' });
    expect(byId(r.target, 'transcript-ceremony').textContent).toBe('cer-2026-0001');
    expect(byId(r.target, 'transcript-kind').textContent).toBe('escrow');
    expect(byId(r.target, 'transcript-vault').textContent).toBe('vid');
    expect(byId(r.target, 'transcript-audit-key').textContent).toBe('ed25519:4f6a');
    const rows = [...byId(r.target, 'transcript').querySelectorAll('tbody tr')].map((tr) => tr.getAttribute('data-testid'));
    expect(rows).toEqual(['transcript-step-1', 'transcript-step-2', 'transcript-step-3']);
    const second = byTestId(r.target, 'transcript-step-2');
    for (const text of ['wendy', 'witness', 'ceremony.confirm', 'room and script confirmed', '2026-12-03 16:00:00 UTC']) expect(second.textContent).toContain(text);
    expect(byTestId(r.target, 'transcript-touch-1').textContent).toBe('olivia · counter 41 · UP+UV · DEMO key');
    expect(byTestId(r.target, 'transcript-touch-2').textContent).toBe('wendy · counter 7 · UP · DEMO key');
    expect(byTestId(r.target, 'transcript-touch-3').textContent).toBe('—');
    expect(byId(r.target, 'transcript-head').textContent).toBe('cd'.repeat(32));
    expect(byId(r.target, 'transcript-signature').textContent).toBe('ef'.repeat(32));
    expect(byId(r.target, 'transcript-verify-hint').textContent).toContain('custos ceremony verify-transcript FILE --expect-key ab12');
    expect(document.body.classList.contains('custos-print')).toBe(true);

    click(byId(r.target, 'transcript-export'));
    await vi.waitFor(() => expect(byId(r.target, 'transcript-exported').textContent).toBe('/tmp/v/ceremony-cer-2026-0001.json'));
    expect(commands(calls, 'export_transcript')[0]?.args).toEqual({ id: 'cer-2026-0001' });
    expect(byId(r.target, 'transcript-verify-hint').textContent).toContain('verify-transcript /tmp/v/ceremony-cer-2026-0001.json --expect-key ab12');
    click(byId(r.target, 'transcript-print'));
    expect(print).toHaveBeenCalledTimes(1);
    click(byId(r.target, 'transcript-back'));
    expect(app.screen).toBe('ceremonies');
    r.destroy();
    cleanup = undefined;
    expect(document.body.classList.contains('custos-print')).toBe(false);
  });

  it('shows why a transcript cannot be read', async () => {
    backend((cmd) => {
      if (cmd === 'ceremony_transcript') throw { kind: 'not_found', message: 'no ceremony "nope"' };
      return undefined;
    });
    const r = render(TranscriptView, { id: 'nope' });
    cleanup = r.destroy;
    await vi.waitFor(() => expect(byId(r.target, 'transcript-error').textContent).toBe('No ceremony "nope".'));
    expect(r.target.querySelector('#transcript')).toBeNull();
  });

  it('lets the witness note a deviation found later; the new step shows and the old export is dropped', async () => {
    const calls = backend((cmd, args) => {
      if (cmd === 'ceremony_transcript') return transcript();
      if (cmd === 'export_transcript') return '/tmp/v/cer.json';
      if (cmd === 'record_deviation') {
        if (String(args.note).includes('refuse')) throw { kind: 'assertion_refused', message: 'wendy did not touch' };
        const t = transcript();
        return { ...t, steps: [...t.steps, step({ seq: 4, actor: 'wendy', role: 'witness', action: 'deviation', detail: `at step ${String(args.step)}: ${String(args.note)}` })] };
      }
      return undefined;
    });
    const r = render(TranscriptView, { id: 'cer-2026-0001' });
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('#transcript-deviation-open')).not.toBeNull());
    click(byId(r.target, 'transcript-export'));
    await vi.waitFor(() => expect(r.target.querySelector('#transcript-exported')).not.toBeNull());
    click(byId(r.target, 'transcript-deviation-open'));
    choose(byId<HTMLSelectElement>(r.target, 'deviation-step'), '2');
    type(byId<HTMLInputElement>(r.target, 'deviation-note'), 'please refuse');
    click(byId(r.target, 'deviation-submit'));
    await vi.waitFor(() => expect(byId(r.target, 'deviation-error').textContent).toBe('Wendy did not touch.'));
    type(byId<HTMLInputElement>(r.target, 'deviation-note'), 'bag TEB-0042 was found open');
    click(byId(r.target, 'deviation-submit'));
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="transcript-step-4"]')).not.toBeNull());
    expect(byTestId(r.target, 'transcript-step-4').textContent).toContain('at step 2: bag TEB-0042 was found open');
    expect(byId(r.target, 'transcript-noted').textContent).toContain('now step 4');
    expect(r.target.querySelector('#transcript-exported')).toBeNull();
    expect(r.target.querySelector('#deviation-form')).toBeNull();
    expect(commands(calls, 'record_deviation').map((c) => c.args)).toEqual([
      { ceremony: 'cer-2026-0001', step: 2, note: 'please refuse' },
      { ceremony: 'cer-2026-0001', step: 2, note: 'bag TEB-0042 was found open' },
    ]);
  });
});

// ---- drill ----------------------------------------------------------------------------------------

describe('DrillShare', () => {
  it('shows the result or the error and clears the words after each attempt', async () => {
    const calls = backend((cmd, args) => {
      if (cmd === 'drill_share') {
        const source = args.source as { kind: string; words?: string };
        if (String(source.words).includes('wrong')) throw { kind: 'bad_share', message: 'word 3 is not in the word list' };
        return share({ index: 2, custodian: 'dave', status: 'verified', last_drill: '2026-12-05T10:00:00Z' });
      }
      return undefined;
    });
    const r = render(DrillShare, {});
    cleanup = r.destroy;
    expect(r.target.textContent).toContain('Each custodian checks their own share alone; nothing is rebuilt or unlocked.');
    const area = () => byId<HTMLTextAreaElement>(r.target, 'drill-share-input');
    expect(byId<HTMLButtonElement>(r.target, 'drill-share-add').disabled).toBe(true);

    fill(area(), 'harbor pencil wrong');
    click(byId(r.target, 'drill-share-add'));
    await vi.waitFor(() => expect(byId(r.target, 'drill-share-error').textContent).toBe('Word 3 is not in the word list.'));
    expect(area().value).toBe('');
    expect(r.target.querySelector('#drill-result')).toBeNull();

    const typed = shareWords(2).join('\n');
    fill(area(), typed);
    click(byId(r.target, 'drill-share-add'));
    await vi.waitFor(() => expect(byId(r.target, 'drill-result').textContent).toBe('share #2 of dave: verified'));
    expect(r.target.querySelector('#drill-share-error')).toBeNull();
    expect(area().value).toBe('');

    // A holder with a share file drills with it (and its passphrase).
    click(byTestId(r.target, 'drill-via-file'));
    const input = byId<HTMLInputElement>(r.target, 'drill-file-input');
    Object.defineProperty(input, 'files', { value: [new File([new Uint8Array([7, 8])], 'erin.age')], configurable: true });
    input.dispatchEvent(new Event('change', { bubbles: true }));
    flushSync();
    fill(byId<HTMLInputElement>(r.target, 'drill-file-passphrase'), 'erin pass');
    click(byId(r.target, 'drill-share-add'));
    await vi.waitFor(() => expect(commands(calls, 'drill_share')).toHaveLength(3));
    expect(commands(calls, 'drill_share').map((c) => c.args)).toEqual([
      { source: { kind: 'words', words: 'harbor pencil wrong' } },
      { source: { kind: 'words', words: typed } },
      { source: { kind: 'file', name: 'erin.age', bytes: [7, 8], passphrase: 'erin pass' } },
    ]);
    expect(byId<HTMLInputElement>(r.target, 'drill-file-passphrase').value).toBe('');
  });
});

// ---- recovery ------------------------------------------------------------------------------------

function strength(score: number): Strength {
  return { score, guesses_log10: score * 4, feedback: { warning: null, suggestions: [] }, acceptable: score >= 3 };
}

function check(index: number, over: Partial<RecoveryShareCheck> = {}): RecoveryShareCheck {
  return { index, fingerprint: `fp-${index}${index}${index}${index}`, threshold: 2, total: 3, ceremony: 'cer-2026-0001', ...over };
}

/** The share index a test share's words stand for (the first word names the rotation). */
function indexOf(words: string): number {
  const first = normalizeWords(words).split(' ')[0];
  return [1, 2, 3, 4].find((i) => shareWords(i)[0] === first) ?? 0;
}

describe('RecoverVault', () => {
  it('checks each share on entry, refuses duplicates, and recovers with all shares into the keys screen', async () => {
    app.vault = null;
    app.custody = null;
    app.screen = 'recover';
    app.status = status();
    const presented = new Set<number>();
    const calls = backend((cmd, args) => {
      if (cmd === 'present_share') {
        const words = String((args.source as { words: string }).words);
        if (words.includes('wrong')) throw { kind: 'bad_share', message: 'the words entered: word 5 is wrong' };
        const index = words.startsWith('copy') ? 1 : indexOf(words);
        if (presented.has(index)) throw { kind: 'bad_share', message: `share #${index} is already entered: each share counts once` };
        presented.add(index);
        return check(index);
      }
      if (cmd === 'passphrase_strength') return strength(4);
      if (cmd === 'recover_vault') return vaultInfo();
      return undefined;
    });
    const r = render(RecoverVault, {});
    cleanup = r.destroy;
    const input = () => byId<HTMLTextAreaElement>(r.target, 'recover-share-input');
    const add = () => click(byId(r.target, 'recover-share-add'));
    expect(r.target.querySelector('#recover-passphrase')).toBeNull();

    const first = shareWords(1).join(' ');
    fill(input(), first);
    add();
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="recover-share-1"]')).not.toBeNull());
    expect(byTestId(r.target, 'recover-share-1').textContent).toContain('share #1');
    expect(byTestId(r.target, 'recover-share-1').textContent).toContain('fp-1111');
    expect(byId(r.target, 'recover-needed').textContent?.trim()).toBe('1 of 2 shares');
    expect(input().value).toBe('');
    expect(commands(calls, 'present_share').map((c) => c.args)).toEqual([{ source: { kind: 'words', words: first } }]);
    expect(byTestId(r.target, 'recover-share-from-1').textContent).toBe('words');

    // The same share again: Rust refuses it by index, and the window says so.
    fill(input(), 'copy of share one');
    add();
    await vi.waitFor(() => expect(byId(r.target, 'recover-share-error').textContent).toBe('Share #1 is already entered: each share counts once.'));
    expect(r.target.querySelector('[data-testid="recover-share-2"]')).toBeNull();

    // A bad share: the core's message names it.
    fill(input(), 'harbor wrong');
    add();
    await vi.waitFor(() => expect(byId(r.target, 'recover-share-error').textContent).toBe('The words entered: word 5 is wrong.'));
    expect(input().value, 'what was typed leaves the form').toBe('');
    expect(byId(r.target, 'recover-needed').textContent?.trim()).toBe('1 of 2 shares');

    const third = shareWords(3).join(' ');
    fill(input(), third);
    add();
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="recover-share-2"]')).not.toBeNull());
    expect(byTestId(r.target, 'recover-share-2').textContent).toContain('share #3');
    expect(byId(r.target, 'recover-needed').textContent?.trim()).toBe('2 of 2 shares');
    expect(r.target.querySelector('#recover-share-error')).toBeNull();

    const good = 'lantern quarry velvet ninety oboe';
    fill(byId<HTMLInputElement>(r.target, 'recover-passphrase'), good);
    await vi.waitFor(() => expect(byId(r.target, 'strength-label').textContent).toBe('Very strong'));
    expect(byId<HTMLButtonElement>(r.target, 'recover-submit').disabled).toBe(true);
    fill(byId<HTMLInputElement>(r.target, 'recover-confirm'), good);
    expect(byId<HTMLButtonElement>(r.target, 'recover-submit').disabled).toBe(false);
    click(byId(r.target, 'recover-submit'));
    await vi.waitFor(() => expect(app.screen).toBe('keys'));
    expect(commands(calls, 'recover_vault').map((c) => c.args)).toEqual([{ passphrase: good, confirmation: good }]);
    expect(app.vault).toMatchObject({ vault_id: 'vid' });
    expect(app.unlocked).toBe(true);
  });

  it('reads a QR picture and a share file and sends their bytes (and a file passphrase) to Rust', async () => {
    app.vault = null;
    app.screen = 'recover';
    app.status = status();
    const calls = backend((cmd, args) => {
      if (cmd === 'present_share') {
        const source = args.source as { kind: string; name: string };
        if (source.name === 'blank.png') throw { kind: 'bad_share', message: 'share picture blank.png: no QR code found in the picture' };
        return check(source.kind === 'picture' ? 2 : 3);
      }
      return undefined;
    });
    const r = render(RecoverVault, {});
    cleanup = r.destroy;
    const pick = (id: string, file: File) => {
      const input = byId<HTMLInputElement>(r.target, id);
      Object.defineProperty(input, 'files', { value: [file], configurable: true });
      input.dispatchEvent(new Event('change', { bubbles: true }));
      flushSync();
    };
    click(byTestId(r.target, 'recover-via-picture'));
    expect(r.target.querySelector('#recover-share-input')).toBeNull();
    expect(byId<HTMLButtonElement>(r.target, 'recover-share-add').disabled).toBe(true);
    pick('recover-picture-input', new File([new Uint8Array([0x89, 0x50, 0x4e, 0x47])], 'blank.png', { type: 'image/png' }));
    click(byId(r.target, 'recover-share-add'));
    await vi.waitFor(() => expect(byId(r.target, 'recover-share-error').textContent).toBe('Share picture blank.png: no QR code found in the picture.'));
    pick('recover-picture-input', new File([new Uint8Array([1, 2, 3])], 'erin.png', { type: 'image/png' }));
    click(byId(r.target, 'recover-share-add'));
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="recover-share-1"]')).not.toBeNull());
    expect(byTestId(r.target, 'recover-share-from-1').textContent).toBe('picture erin.png');

    click(byTestId(r.target, 'recover-via-file'));
    pick('recover-file-input', new File([new TextEncoder().encode('-----BEGIN AGE')], 'carol.age'));
    fill(byId<HTMLInputElement>(r.target, 'recover-file-passphrase'), 'heron basalt');
    click(byId(r.target, 'recover-share-add'));
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="recover-share-2"]')).not.toBeNull());
    expect(byTestId(r.target, 'recover-share-from-2').textContent).toBe('file carol.age');
    expect(byId<HTMLInputElement>(r.target, 'recover-file-passphrase').value, 'the file passphrase leaves the form').toBe('');
    expect(commands(calls, 'present_share').map((c) => c.args)).toEqual([
      { source: { kind: 'picture', name: 'blank.png', bytes: [0x89, 0x50, 0x4e, 0x47] } },
      { source: { kind: 'picture', name: 'erin.png', bytes: [1, 2, 3] } },
      { source: { kind: 'file', name: 'carol.age', bytes: Array.from(new TextEncoder().encode('-----BEGIN AGE')), passphrase: 'heron basalt' } },
    ]);
    expect(byId(r.target, 'recover-needed').textContent?.trim()).toBe('2 of 2 shares');
    r.destroy();
    cleanup = () => undefined;
    expect(commands(calls, 'forget_presented_shares').length, 'on arrival and on leaving').toBe(2);
  });

  it('shows a refused recovery, lets a share be removed, and drops everything on the way back', async () => {
    app.vault = null;
    app.screen = 'recover';
    app.status = status();
    const calls = backend((cmd, args) => {
      if (cmd === 'present_share') return check(indexOf(String((args.source as { words: string }).words)));
      if (cmd === 'withdraw_share') return [1];
      if (cmd === 'passphrase_strength') return strength(4);
      if (cmd === 'recover_vault') throw { kind: 'bad_share', message: 'share #2 does not match the recovery key digest' };
      return undefined;
    });
    const r = render(RecoverVault, {});
    cleanup = r.destroy;
    for (const i of [1, 2]) {
      fill(byId<HTMLTextAreaElement>(r.target, 'recover-share-input'), shareWords(i).join(' '));
      click(byId(r.target, 'recover-share-add'));
      await vi.waitFor(() => expect(r.target.querySelector(`[data-testid="recover-share-${i}"]`)).not.toBeNull());
    }
    const good = 'lantern quarry velvet ninety oboe';
    fill(byId<HTMLInputElement>(r.target, 'recover-passphrase'), good);
    fill(byId<HTMLInputElement>(r.target, 'recover-confirm'), good);
    await vi.waitFor(() => expect(byId<HTMLButtonElement>(r.target, 'recover-submit').disabled).toBe(false));
    click(byId(r.target, 'recover-submit'));
    await vi.waitFor(() => expect(byId(r.target, 'recover-error').textContent).toBe('Share #2 does not match the recovery key digest.'));
    expect(app.screen).toBe('recover');

    click(byTestId(r.target, 'recover-share-remove-2'));
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="recover-share-2"]')).toBeNull());
    expect(commands(calls, 'withdraw_share').map((c) => c.args)).toEqual([{ index: 2 }]);
    expect(byId(r.target, 'recover-needed').textContent?.trim()).toBe('1 of 2 shares');
    expect(r.target.querySelector('#recover-passphrase')).toBeNull();

    click(byId(r.target, 'recover-back'));
    expect(app.screen).toBe('unlock');
  });

  it('is reached from the unlock screen, and after recovery the window is unlocked on the keys screen', async () => {
    app.vault = null;
    app.custody = null;
    mockIPC(
      (cmd, args) => {
        const a = (args ?? {}) as Record<string, unknown>;
        if (cmd === 'app_status') return status();
        if (cmd === 'present_share') return check(indexOf(String((a.source as { words: string }).words)));
        if (cmd === 'passphrase_strength') return strength(4);
        if (cmd === 'recover_vault') return vaultInfo();
        if (cmd === 'list_keys') return [];
        if (cmd === 'custody_status') return custody({ acting_as: 'olivia' });
        if (cmd === 'list_custodians') return people();
        if (cmd === 'list_requests') return [];
        if (cmd === 'escrow_status') return null;
        if (cmd === 'list_ceremonies') return [];
        return null;
      },
      { shouldMockEvents: true },
    );
    const r = render(App, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('#recover-open')).not.toBeNull());
    expect(byId(r.target, 'recover-open').textContent).toContain('Lost the passphrase or the YubiKey? Recover with custodians’ shares');
    click(byId(r.target, 'recover-open'));
    expect(r.target.querySelector('#recover')).not.toBeNull();
    for (const [n, i] of [[1, 2], [2, 3]] as const) {
      fill(byId<HTMLTextAreaElement>(r.target, 'recover-share-input'), shareWords(i).join(' '));
      click(byId(r.target, 'recover-share-add'));
      await vi.waitFor(() => expect(byTestId(r.target, `recover-share-${n}`).textContent).toContain(`share #${i}`));
    }
    const good = 'lantern quarry velvet ninety oboe';
    fill(byId<HTMLInputElement>(r.target, 'recover-passphrase'), good);
    fill(byId<HTMLInputElement>(r.target, 'recover-confirm'), good);
    await vi.waitFor(() => expect(byId<HTMLButtonElement>(r.target, 'recover-submit').disabled).toBe(false));
    click(byId(r.target, 'recover-submit'));
    await vi.waitFor(() => expect(r.target.querySelector('#keys-empty')).not.toBeNull());
    expect(r.target.querySelector('#lock-button')).not.toBeNull();

    // Ceremonies sits between Approvals and Audit log.
    const nav = [...r.target.querySelectorAll('nav .navbtn')].map((b) => b.id);
    expect(nav.slice(-3)).toEqual(['nav-approvals', 'nav-ceremonies', 'nav-audit']);
    click(byId(r.target, 'nav-ceremonies'));
    await vi.waitFor(() => expect(r.target.querySelector('#no-escrow')).not.toBeNull());
    expect(byId(r.target, 'nav-ceremonies').classList.contains('current')).toBe(true);
  });
});
