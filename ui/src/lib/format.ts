// Display helpers: durations, dates, sizes, key states.
import type { KeyState, Outcome, RequestView, Role, RotationStatus } from './types';

const UNITS: [string, number][] = [
  ['y', 365 * 86400],
  ['w', 7 * 86400],
  ['d', 86400],
  ['h', 3600],
  ['m', 60],
  ['s', 1],
];

/** 7776000 -> "90d"; uses the largest unit that divides exactly (the core's parse_duration syntax). */
export function formatDuration(secs: number | null | undefined): string {
  if (secs === null || secs === undefined) return '—';
  if (secs === 0) return '0s';
  for (const [unit, size] of UNITS) {
    if (secs % size === 0) return `${secs / size}${unit}`;
  }
  return `${secs}s`;
}

/** RFC 3339 UTC -> "2026-12-03 16:43 UTC" (unambiguous, no locale surprises). */
export function formatTime(rfc3339: string | null | undefined): string {
  if (!rfc3339) return '—';
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return rfc3339;
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} UTC`;
}

export function formatKib(kib: number): string {
  if (kib >= 1024 && kib % 1024 === 0) return `${kib / 1024} MiB`;
  if (kib >= 1024) return `${(kib / 1024).toFixed(1)} MiB`;
  return `${kib} KiB`;
}

export const STATE_LABEL: Record<KeyState, string> = {
  'pre-active': 'Pre-active',
  active: 'Active',
  'decrypt-only': 'Decrypt-only',
  compromised: 'Compromised',
  destroyed: 'Destroyed',
};

export const ROTATION_LABEL: Record<RotationStatus, string> = {
  none: 'No policy',
  ok: 'OK',
  due: 'Due',
  overdue: 'Overdue',
};

export function shortHash(hex: string, n = 12): string {
  return hex.length > n ? `${hex.slice(0, n)}…` : hex;
}

export const STRENGTH_LABEL = ['Very weak', 'Weak', 'Fair', 'Strong', 'Very strong'];

export function rolesText(roles: readonly Role[]): string {
  return roles.length === 0 ? '—' : roles.join(' or ');
}

/** Approvals still missing on a request. */
export function missingApprovals(r: RequestView): number {
  return Math.max(0, r.needed - r.approvals.length);
}

/** "Pending approval: request 3fa1…, needs 2 more approvals (officer or custodian)." */
export function pendingText(r: RequestView): string {
  const missing = missingApprovals(r);
  return `Pending approval: request ${r.id}, needs ${missing} more approval${missing === 1 ? '' : 's'} (${rolesText(r.approver_roles)}). Approvers choose themselves under “Acting as” and approve it in Approvals.`;
}

/** What to tell the person after an operation: `done` text, or the pending request. */
export function outcomeText(o: Outcome, done: (detail: string) => string): string {
  if (o.pending) return pendingText(o.pending);
  return done(o.done ?? '');
}
