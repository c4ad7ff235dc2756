import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { flushSync } from 'svelte';
import CustodianList from './CustodianList.svelte';
import RulesView from './RulesView.svelte';
import { app } from '../lib/app.svelte';
import { byId, byTestId, render, type } from '../test/helpers';
import { custodian, custody, fido2, piv, vaultInfo } from '../test/fixtures';
import type { CustodianView, CustodyStatus } from '../lib/types';

let cleanup: (() => void) | undefined;
beforeEach(() => {
  app.vault = vaultInfo();
  app.screen = 'custodians';
  app.custody = null;
  app.custodians = [];
  app.alert = null;
});
afterEach(() => {
  cleanup?.();
  cleanup = undefined;
  clearMocks();
});

/** A backend with custodians and custody state that the test can change. */
function backend(state: { custodians: CustodianView[]; custody: CustodyStatus }, onCall: (cmd: string, args: unknown) => unknown = () => undefined) {
  const calls: { cmd: string; args: unknown }[] = [];
  mockIPC((cmd, args) => {
    calls.push({ cmd, args });
    const answer = onCall(cmd, args);
    if (answer !== undefined) return answer;
    if (cmd === 'custody_status') return state.custody;
    if (cmd === 'list_custodians') return state.custodians;
    if (cmd === 'list_requests') return [];
    throw new Error(`unexpected ${cmd}`);
  });
  return calls;
}

describe('CustodianList', () => {
  it('lists custodians with roles and every authenticator detail', async () => {
    backend({
      custody: custody(),
      custodians: [
        custodian('olivia', ['officer'], [fido2({ counter: 7 }), piv()]),
        custodian('carol', ['custodian'], [fido2({ id: 'deadbeef', revoked: '2026-12-03T17:00:00Z', aaguid: null })]),
        custodian('dave', ['custodian', 'operator']),
      ],
    });
    const r = render(CustodianList, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="custodian-card-dave"]')).not.toBeNull());
    expect(byTestId(r.target, 'custodian-roles-dave').textContent).toContain('custodian');
    expect(byTestId(r.target, 'custodian-roles-dave').textContent).toContain('operator');
    const olivia = byTestId(r.target, 'custodian-card-olivia');
    expect(olivia.textContent).toContain('acting');
    expect(byTestId(r.target, 'auth-counter-olivia-0').textContent).toBe('7');
    expect(byTestId(r.target, 'auth-credential-olivia-0').textContent).toBe('0123456789abcdef…');
    expect(byTestId(r.target, 'auth-row-olivia-0').textContent).toContain('AAGUID 00000000-0000-0000-0000-000000000000');
    expect(byTestId(r.target, 'auth-row-olivia-0').textContent).toContain('packed self');
    expect(byTestId(r.target, 'auth-row-olivia-0').textContent).toContain('DEMO software FIDO2 key');
    expect(byTestId(r.target, 'auth-card-olivia-1').textContent).toBe('serial 3912345678, slot 82');
    expect(byTestId(r.target, 'auth-row-carol-0').textContent).toContain('revoked');
    expect(byTestId(r.target, 'auth-row-carol-0').classList.contains('revoked')).toBe(true);
    expect(r.target.querySelector('[data-testid="revoke-deadbeef"]')).toBeNull();
    expect(byTestId(r.target, 'no-keys-dave').textContent).toContain('No key enrolled yet');
    expect(r.target.querySelector('#custody-unguarded')).toBeNull();
  });

  it('without custodians says anyone with the passphrase can do everything; the first must be an officer', async () => {
    const state = { custody: custody({ unguarded: true, acting_as: null }), custodians: [] as CustodianView[] };
    const calls = backend(state, (cmd) => {
      if (cmd === 'add_custodian') {
        state.custodians = [custodian('olivia', ['officer'])];
        state.custody = custody({ acting_as: null });
        return { done: 'custodian.add olivia as officer' };
      }
      return undefined;
    });
    const r = render(CustodianList, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('#custody-unguarded')).not.toBeNull());
    expect(byId(r.target, 'first-custodian-hint').textContent).toContain('must be an officer');
    const button = byId<HTMLButtonElement>(r.target, 'add-custodian-button');
    type(byId<HTMLInputElement>(r.target, 'custodian-name'), ' olivia ');
    expect(button.disabled).toBe(true); // no role yet
    byId<HTMLInputElement>(r.target, 'role-officer').click();
    await vi.waitFor(() => expect(button.disabled).toBe(false));
    button.click();
    await vi.waitFor(() => expect(byId(r.target, 'custodians-message').textContent).toContain('olivia added as officer'));
    expect(calls.find((c) => c.cmd === 'add_custodian')?.args).toEqual({ name: 'olivia', roles: ['officer'] });
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="custodian-card-olivia"]')).not.toBeNull());
    expect(r.target.querySelector('#custody-unguarded')).toBeNull();
    expect(app.guarded).toBe(true);
  });

  it('shows the core refusal (separation of duties) and a pending addition', async () => {
    let attempt = 0;
    backend({ custody: custody({ enforced: true }), custodians: [custodian('olivia', ['officer'], [fido2()])] }, (cmd) => {
      if (cmd !== 'add_custodian') return undefined;
      attempt++;
      if (attempt === 1) throw { kind: 'separation_of_duties', message: 'separation of duties: eve cannot be both officer and auditor' };
      return { pending: { id: 'aa11bb22cc33', operation: 'custodian.add eve as auditor', kind: 'custodian.add', requester: 'olivia', approvals: [], needed: 2, approver_roles: ['officer', 'custodian'], status: 'pending', created: '', expires: '', result: null } };
    });
    const r = render(CustodianList, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="custodian-card-olivia"]')).not.toBeNull());
    type(byId<HTMLInputElement>(r.target, 'custodian-name'), 'eve');
    byId<HTMLInputElement>(r.target, 'role-officer').click();
    byId<HTMLInputElement>(r.target, 'role-auditor').click();
    flushSync();
    byId(r.target, 'add-custodian-button').click();
    await vi.waitFor(() => expect(byId(r.target, 'add-custodian-error').textContent).toBe('Separation of duties: eve cannot be both officer and auditor.'));
    byId<HTMLInputElement>(r.target, 'role-officer').click();
    flushSync();
    byId(r.target, 'add-custodian-button').click();
    await vi.waitFor(() =>
      expect(byId(r.target, 'custodians-message').textContent).toBe(
        'Pending approval: request aa11bb22cc33, needs 2 more approvals (officer or custodian). Approvers choose themselves under “Acting as” and approve it in Approvals.',
      ),
    );
  });

  it('shows a warning that came with a PIV enrolment (the slot certificate not written)', async () => {
    backend({ custody: custody(), custodians: [custodian('olivia', ['officer'], [fido2()]), custodian('carol', ['custodian'])] }, (cmd) => {
      if (cmd === 'enroll_key') return { done: 'carol: PIV ab12cd34 (YubiKey PIV); WARNING: the key in slot 82 works, but its certificate was not written (no touch)' };
      return undefined;
    });
    const r = render(CustodianList, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="enrol-button-carol"]')).not.toBeNull());
    byTestId(r.target, 'enrol-button-carol').click();
    await vi.waitFor(() => expect(r.target.querySelector('#enrol-kind-piv')).not.toBeNull());
    byId<HTMLInputElement>(r.target, 'enrol-kind-piv').click();
    await vi.waitFor(() => expect(r.target.querySelector('#enrol-slot')).not.toBeNull());
    byId(r.target, 'enrol-submit').click();
    await vi.waitFor(() =>
      expect(byId(r.target, 'custodians-message').textContent).toBe(
        'PIV key enrolled for carol. WARNING: the key in slot 82 works, but its certificate was not written (no touch)',
      ),
    );
  });

  it('enrols a PIV key in a chosen slot, a FIDO2 key without a slot, and revokes after confirmation', async () => {
    const calls = backend({ custody: custody(), custodians: [custodian('olivia', ['officer'], [fido2()]), custodian('carol', ['custodian'])] }, (cmd) => {
      if (cmd === 'enroll_key' || cmd === 'revoke_authenticator') return { done: 'ok' };
      return undefined;
    });
    const r = render(CustodianList, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="enrol-button-carol"]')).not.toBeNull());
    byTestId(r.target, 'enrol-button-carol').click();
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="enrol-form-carol"]')).not.toBeNull());
    // One enrolment at a time.
    expect(byTestId<HTMLButtonElement>(r.target, 'enrol-button-olivia').disabled).toBe(true);
    expect(byTestId(r.target, 'enrol-form-carol').textContent).toContain('olivia touches their own key first');
    byId<HTMLInputElement>(r.target, 'enrol-kind-piv').click();
    await vi.waitFor(() => expect(r.target.querySelector('#enrol-slot')).not.toBeNull());
    type(byId<HTMLInputElement>(r.target, 'enrol-slot'), '83');
    byId(r.target, 'enrol-submit').click();
    await vi.waitFor(() => expect(byId(r.target, 'custodians-message').textContent).toBe('PIV key enrolled for carol.'));
    expect(calls.find((c) => c.cmd === 'enroll_key')?.args).toEqual({ name: 'carol', kind: 'piv', slot: '83' });

    byTestId(r.target, 'enrol-button-carol').click();
    await vi.waitFor(() => expect(r.target.querySelector('#enrol-submit')).not.toBeNull());
    byId(r.target, 'enrol-submit').click();
    await vi.waitFor(() => expect(calls.filter((c) => c.cmd === 'enroll_key')).toHaveLength(2));
    expect(calls.filter((c) => c.cmd === 'enroll_key')[1]?.args).toEqual({ name: 'carol', kind: 'fido2', slot: null });
    await vi.waitFor(() => expect(byId(r.target, 'custodians-message').textContent).toBe('FIDO2 key enrolled for carol.'));

    byTestId(r.target, 'revoke-a1b2c3d4').click();
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="revoke-confirm-a1b2c3d4"]')).not.toBeNull());
    expect(calls.some((c) => c.cmd === 'revoke_authenticator')).toBe(false);
    byTestId(r.target, 'revoke-confirm-a1b2c3d4').click();
    await vi.waitFor(() => expect(calls.find((c) => c.cmd === 'revoke_authenticator')?.args).toEqual({ name: 'olivia', authenticator: 'a1b2c3d4' }));
  });

  it('changes a custodian\'s roles; the core\'s refusal shows as an error', async () => {
    const state = { custody: custody({ enforced: true }), custodians: [custodian('olivia', ['officer'], [fido2()]), custodian('carol', ['custodian'])] };
    let attempt = 0;
    const calls = backend(state, (cmd, args) => {
      if (cmd !== 'change_roles') return undefined;
      attempt++;
      if (attempt === 1) throw { kind: 'separation_of_duties', message: 'separation of duties: carol cannot be both officer and auditor' };
      state.custodians = [custodian('olivia', ['officer'], [fido2()]), custodian('carol', (args as { roles: CustodianView['roles'] }).roles)];
      return { done: 'custodian.roles carol as custodian,operator' };
    });
    const r = render(CustodianList, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="roles-edit-carol"]')).not.toBeNull());
    byTestId(r.target, 'roles-edit-carol').click();
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="roles-form-carol"]')).not.toBeNull());
    expect(byTestId<HTMLInputElement>(r.target, 'roles-carol-custodian').checked).toBe(true);
    byTestId<HTMLInputElement>(r.target, 'roles-carol-officer').click();
    byTestId<HTMLInputElement>(r.target, 'roles-carol-auditor').click();
    flushSync();
    byTestId(r.target, 'roles-save-carol').click();
    await vi.waitFor(() => expect(byId(r.target, 'custodians-error').textContent).toBe('Separation of duties: carol cannot be both officer and auditor.'));
    byTestId<HTMLInputElement>(r.target, 'roles-carol-officer').click();
    byTestId<HTMLInputElement>(r.target, 'roles-carol-auditor').click();
    byTestId<HTMLInputElement>(r.target, 'roles-carol-operator').click();
    flushSync();
    byTestId(r.target, 'roles-save-carol').click();
    await vi.waitFor(() => expect(byId(r.target, 'custodians-message').textContent).toBe('carol is now custodian, operator.'));
    expect(calls.filter((c) => c.cmd === 'change_roles').map((c) => c.args)).toEqual([
      { name: 'carol', roles: ['officer', 'custodian', 'auditor'] },
      { name: 'carol', roles: ['custodian', 'operator'] },
    ]);
    await vi.waitFor(() => expect(byTestId(r.target, 'custodian-roles-carol').textContent).toContain('operator'));
  });

  it('raises the alert banner on a possible cloned key', async () => {
    backend({ custody: custody(), custodians: [custodian('carol', ['custodian'])] }, (cmd) => {
      if (cmd === 'enroll_key') throw { kind: 'possible_clone', message: 'possible cloned key: credential 01ab of olivia presented counter 3, but 9 was already seen' };
      return undefined;
    });
    const r = render(CustodianList, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="enrol-button-carol"]')).not.toBeNull());
    byTestId(r.target, 'enrol-button-carol').click();
    await vi.waitFor(() => expect(r.target.querySelector('#enrol-submit')).not.toBeNull());
    byId(r.target, 'enrol-submit').click();
    await vi.waitFor(() => expect(app.alert?.kind).toBe('possible_clone'));
    expect(app.alert?.message).toContain('presented counter 3');
    expect(byId(r.target, 'enrol-error').textContent).toContain('Possible cloned key');
  });
});

describe('RulesView', () => {
  it('shows the permission matrix and the setup state; unmet rules keep activation off', async () => {
    const state = { custody: custody({ unmet: ['key.destroy needs 2 approval(s) from officer|custodian besides the requester, 1 enrolled'] }), custodians: [] };
    backend(state);
    const r = render(RulesView, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('#rules-table')).not.toBeNull());
    expect(byId(r.target, 'rules-state').textContent).toBe('setup');
    const row = byTestId(r.target, 'rule-row-key.destroy');
    const cells = [...row.querySelectorAll('td')].map((td) => td.textContent?.trim());
    expect(cells.slice(0, 5)).toEqual(['key.destroy', 'officer', 'yes', '2 (once enforced)', 'officer or custodian']);
    expect(byTestId(r.target, 'rule-approvals-key.rotate').textContent?.trim()).toBe('none');
    expect(byId(r.target, 'rules-unmet').textContent).toContain('1 enrolled');
    expect(byId<HTMLButtonElement>(r.target, 'activate-rules-button').disabled).toBe(true);
  });

  it('activates the two-person rule and changes a rule', async () => {
    const state = { custody: custody(), custodians: [] };
    const calls = backend(state, (cmd) => {
      if (cmd === 'activate_rules') {
        state.custody = custody({ enforced: true });
        return { done: 'the two-person rule is active' };
      }
      if (cmd === 'set_rule') return { pending: { id: 'r1r2r3r4r5r6', operation: 'rules.change', kind: 'rules.change', requester: 'olivia', approvals: [], needed: 2, approver_roles: ['officer', 'custodian'], status: 'pending', created: '', expires: '', result: null } };
      return undefined;
    });
    const r = render(RulesView, {});
    cleanup = r.destroy;
    await vi.waitFor(() => expect(r.target.querySelector('#rules-met')).not.toBeNull());
    byId(r.target, 'activate-rules-button').click();
    await vi.waitFor(() => expect(byId(r.target, 'rules-state').textContent).toBe('enforced'));
    expect(byId(r.target, 'rules-message').textContent).toBe('The two-person rule is active.');
    expect(r.target.querySelector('#activate-rules-button')).toBeNull();

    byTestId(r.target, 'rule-edit-key.rotate').click();
    await vi.waitFor(() => expect(r.target.querySelector('[data-testid="rule-approvals-input"]')).not.toBeNull());
    type(byTestId<HTMLInputElement>(r.target, 'rule-approvals-input'), '1');
    const boxes = byTestId(r.target, 'rule-row-key.rotate').querySelectorAll<HTMLInputElement>('input[type="checkbox"]');
    boxes[1]!.click(); // custodian off (officer stays)
    byTestId(r.target, 'rule-save').click();
    await vi.waitFor(() => expect(calls.find((c) => c.cmd === 'set_rule')?.args).toEqual({ operation: 'key.rotate', approvals: 1, approverRoles: ['officer'] }));
    await vi.waitFor(() => expect(byId(r.target, 'rules-message').textContent).toContain('Pending approval: request r1r2r3r4r5r6'));
  });
});
