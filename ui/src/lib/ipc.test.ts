import { afterEach, describe, expect, it } from 'vitest';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { IpcError, ipc, isLockedError, toIpcError } from './ipc';

afterEach(() => clearMocks());

describe('ipc wrappers', () => {
  it('send the Rust command names with camelCase arguments', async () => {
    const calls: { cmd: string; args: unknown }[] = [];
    mockIPC((cmd, args) => {
      calls.push({ cmd, args });
      return { name: 'k' };
    });
    await ipc.createKey('k', 'ed25519', '90d');
    await ipc.setKeyState('k', 2, 'compromised');
    await ipc.createVault({ passphrase: 'p', confirmation: 'p', targetMs: 300, insecureTestKdf: true });
    expect(calls[0]).toEqual({ cmd: 'create_key', args: { name: 'k', keyType: 'ed25519', rotateEvery: '90d' } });
    expect(calls[1]).toEqual({ cmd: 'set_key_state', args: { name: 'k', version: 2, state: 'compromised' } });
    expect(calls[2]).toEqual({
      cmd: 'create_vault',
      args: { passphrase: 'p', confirmation: 'p', targetMs: 300, insecureTestKdf: true },
    });
  });

  it('send the custody commands with the names and argument shapes the Rust side takes', async () => {
    const calls: { cmd: string; args: unknown }[] = [];
    mockIPC((cmd, args) => {
      calls.push({ cmd, args });
      return { done: 'ok' };
    });
    await ipc.addCustodian('carol', ['custodian']);
    await ipc.enrollKey('carol', 'piv', '83');
    await ipc.setRule('key.destroy', 2, ['officer', 'custodian']);
    await ipc.approveRequest('3fa1b2c3d4e5');
    await ipc.submitPin(4, '1357');
    await ipc.submitPin(5, null);
    await ipc.actAs(null);
    await ipc.revokeAuthenticator('carol', 'a1b2c3d4');
    expect(calls).toEqual([
      { cmd: 'add_custodian', args: { name: 'carol', roles: ['custodian'] } },
      { cmd: 'enroll_key', args: { name: 'carol', kind: 'piv', slot: '83' } },
      { cmd: 'set_rule', args: { operation: 'key.destroy', approvals: 2, approverRoles: ['officer', 'custodian'] } },
      { cmd: 'approve_request', args: { id: '3fa1b2c3d4e5' } },
      { cmd: 'submit_pin', args: { id: 4, pin: '1357' } },
      { cmd: 'submit_pin', args: { id: 5, pin: null } },
      { cmd: 'act_as', args: { name: null } },
      { cmd: 'revoke_authenticator', args: { name: 'carol', authenticator: 'a1b2c3d4' } },
    ]);
  });

  it('turn a backend {kind, message} rejection into an IpcError', async () => {
    mockIPC(() => {
      throw { kind: 'wrong_passphrase', message: 'Wrong passphrase for this vault.' };
    });
    const err = await ipc.unlock('nope').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IpcError);
    expect((err as IpcError).kind).toBe('wrong_passphrase');
    expect((err as IpcError).message).toBe('Wrong passphrase for this vault.');
  });

  it('show core messages as sentences', async () => {
    mockIPC(() => {
      throw { kind: 'wrong_passphrase', message: 'wrong passphrase: the vault was not unlocked (the failed attempt is in the audit log)' };
    });
    const err = (await ipc.unlock('nope').catch((e: unknown) => e)) as IpcError;
    expect(err.message).toBe('Wrong passphrase: the vault was not unlocked (the failed attempt is in the audit log)');
    expect(toIpcError({ kind: 'x', message: 'no key named "a"' }).message).toBe('No key named "a".');
  });

  it('recognise a locked vault', () => {
    expect(isLockedError(toIpcError({ kind: 'vault_locked', message: 'locked' }))).toBe(true);
    expect(isLockedError(toIpcError({ kind: 'not_found', message: 'x' }))).toBe(false);
    expect(toIpcError('plain text').kind).toBe('ipc');
  });
});
