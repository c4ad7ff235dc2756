// What the ceremony screens compute themselves: the script preview, the plan checks, display text.
// Nothing here sees a share's words except `sameWords`, which only compares two strings.
import type { CustodianView, Evidence, Medium, ShareStatus } from '../lib/types';

export const MAX_SHARES = 32;

export interface EscrowPlan {
  administrator: string | null;
  witness: string | null;
  threshold: number | null;
  holders: { name: string; medium: Medium }[];
}

/** The steps the ceremony will run, in order, as the security officer reads them before Run. */
export function scriptSteps(plan: EscrowPlan): string[] {
  const admin = plan.administrator ?? 'the administrator';
  const witness = plan.witness ?? 'the witness';
  const n = plan.holders.length;
  const m = plan.threshold ?? 'M';
  const steps = [
    `${admin} (administrator) opens the ceremony (touch)`,
    `${witness} (witness) confirms the room and the script (touch)`,
    `The recovery key is split ${m} of ${n} and every share is checked`,
  ];
  plan.holders.forEach((h, i) => steps.push(`${h.name} receives share #${i + 1} by ${h.medium} (touch)`));
  steps.push(`${witness} (witness) closes the ceremony (touch)`);
  return steps;
}

/** Why the plan cannot run (checked before any call), or null. */
export function planProblem(plan: EscrowPlan, custodians: readonly CustodianView[]): string | null {
  if (!plan.administrator) return 'Choose yourself under “Acting as” first: the acting officer administers the ceremony.';
  const n = plan.holders.length;
  if (n < 2) return 'Choose at least 2 holders.';
  if (n > MAX_SHARES) return `At most ${MAX_SHARES} holders (${n} chosen).`;
  for (const h of plan.holders) {
    const c = custodians.find((x) => x.name === h.name);
    if (!c || !c.roles.includes('custodian')) return `${h.name} does not hold the custodian role and cannot hold a share.`;
  }
  const m = plan.threshold;
  if (m === null || !Number.isInteger(m)) return 'The threshold M must be a whole number.';
  if (m < 2) return `The threshold M must be at least 2 (it is ${m}): one share alone must never open the vault.`;
  if (m > n) return `The threshold M (${m}) cannot exceed the number of holders N (${n}).`;
  if (!plan.witness) return 'Choose a witness.';
  if (plan.witness === plan.administrator) return 'The administrator cannot also be the witness.';
  if (plan.holders.some((h) => h.name === plan.witness)) return `${plan.witness} holds a share and cannot also be the witness.`;
  return null;
}

export function shareTone(status: ShareStatus['status']): 'ok' | 'warn' | 'neutral' {
  return status === 'verified' ? 'ok' : status === 'stale' ? 'warn' : 'neutral';
}

/** "carol · counter 12 · UP+UV" (DEMO when a software key touched), or "—". */
export function touchText(p: Evidence | null): string {
  if (!p) return '—';
  const flags = [p.user_present ? 'UP' : null, p.user_verified ? 'UV' : null].filter((f) => f !== null).join('+') || 'no UP/UV';
  return `${p.custodian} · counter ${p.counter} · ${flags}${p.demo ? ' · DEMO key' : ''}`;
}

/** Words as typed (any spaces, newlines, case) reduced to one comparable form. */
export function normalizeWords(text: string): string {
  return text.trim().toLowerCase().split(/\s+/).filter((w) => w !== '').join(' ');
}

export function sameWords(a: string, b: string): boolean {
  return normalizeWords(a) === normalizeWords(b);
}
