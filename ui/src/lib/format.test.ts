import { describe, expect, it } from 'vitest';
import { formatDuration, formatKib, formatTime, missingApprovals, outcomeText, pendingText, shortHash } from './format';
import { evidence, request } from '../test/fixtures';

describe('format', () => {
  it('prints durations in the syntax the core parses back', () => {
    expect(formatDuration(90 * 86400)).toBe('90d');
    expect(formatDuration(14 * 86400)).toBe('2w');
    expect(formatDuration(365 * 86400)).toBe('1y');
    expect(formatDuration(12 * 3600)).toBe('12h');
    expect(formatDuration(45)).toBe('45s');
    expect(formatDuration(null)).toBe('—');
  });

  it('prints times in UTC without locale', () => {
    expect(formatTime('2026-12-03T16:43:05Z')).toBe('2026-12-03 16:43:05 UTC');
    expect(formatTime('2026-12-03T17:43:05+01:00')).toBe('2026-12-03 16:43:05 UTC');
    expect(formatTime('not a date')).toBe('not a date');
    expect(formatTime(null)).toBe('—');
  });

  it('prints sizes and hashes', () => {
    expect(formatKib(262144)).toBe('256 MiB');
    expect(formatKib(512)).toBe('512 KiB');
    expect(shortHash('0123456789abcdef', 8)).toBe('01234567…');
    expect(shortHash('abc', 8)).toBe('abc');
  });

  it('describes a pending request by id and the approvals still missing', () => {
    const r = request({ id: 'abcdef012345', needed: 2, approvals: [evidence('carol')] });
    expect(missingApprovals(r)).toBe(1);
    expect(pendingText(r)).toMatch(/^Pending approval: request abcdef012345, needs 1 more approval \(officer or custodian\)\./);
    expect(outcomeText({ pending: r }, () => 'x')).toBe(pendingText(r));
    expect(outcomeText({ done: 'payroll rotated to version 2' }, (d) => `Done: ${d}`)).toBe('Done: payroll rotated to version 2');
    expect(missingApprovals(request({ needed: 1, approvals: [evidence('a'), evidence('b')] }))).toBe(0);
  });
});
