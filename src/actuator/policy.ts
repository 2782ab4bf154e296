// The quarantine policy, as pure logic over an explicit clock: which destinations are quarantined, until when,
// at which backoff level, and what a new signal changes. No kernel here: the reconciler turns this book into
// weights. Everything in it is plain data, persisted as is (state.ts), so a restart resumes the same decisions.
//
//   duration(level) = min(base * multiplier^level, max)
//   a repeat offence within decayAfter of the last release goes one level up; each full decayAfter of health
//   since then takes one level off.
//   cap: per service at most maxQuarantined (count, or % of the destinations, rounded down), and never all —
//   a signal beyond the cap is refused and the service is in panic: when that many backends fail at once the
//   fault is likely the client's own network, and draining everything would only make it total.
import type { QuarantinePolicy } from '../config/config';

export interface QuarantineRecord {
  service: string;
  destination: string;
  /** backoff level of the current (or last) quarantine */
  level: number;
  /** epoch ms the current quarantine started, and ends; until is 0 when not quarantined */
  since: number;
  until: number;
  /** epoch ms the last quarantine ended; 0 if never */
  lastEnded: number;
  /** the weight to give back (watched services: what the kernel had before we set 0) */
  restoreWeight?: number;
  /** released, but the kernel has not been seen with the weight back yet */
  pendingRestore?: boolean;
  /** most recent reasons, newest last (bounded) */
  reasons: string[];
  /** which input started the current quarantine */
  source?: string;
  /** backoff state before the current quarantine, so a false alarm can be taken back */
  prevLevel?: number;
  prevLastEnded?: number;
}

export type FireResult =
  | { kind: 'quarantined' | 'extended'; record: QuarantineRecord }
  | { kind: 'unchanged'; record?: QuarantineRecord; why: string }
  | { kind: 'refused'; why: string; reason: 'cap' | 'rate' };

export interface FireContext {
  policy: QuarantinePolicy;
  /** destinations of the service vipguard owns that carry traffic when healthy */
  owned: number;
  /** the destination's weight in the kernel now */
  currentWeight: number;
  now: number;
  reason: string;
  source?: string;
}

export function durationMs(p: QuarantinePolicy, level: number): number {
  return Math.min(p.baseMs * Math.pow(p.multiplier, level), p.maxMs);
}

export function capFor(p: QuarantinePolicy, owned: number): number {
  const raw = 'count' in p.maxQuarantined ? p.maxQuarantined.count : Math.floor((owned * p.maxQuarantined.percent) / 100);
  return Math.max(0, Math.min(raw, owned - 1));
}

/** Token bucket: `burst` actions at once, refilled at `perSecond`. */
export class RateLimiter {
  private tokens: number;
  private last: number;

  constructor(private readonly perSecond: number, private readonly burst: number, now: number) {
    this.tokens = burst;
    this.last = now;
  }

  take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

const MAX_REASONS = 5;
const key = (service: string, destination: string) => `${service}|${destination}`;

export class QuarantineBook {
  private readonly records = new Map<string, QuarantineRecord>();
  private readonly panicUntil = new Map<string, number>();

  constructor(records: QuarantineRecord[] = [], private readonly limiter?: RateLimiter) {
    for (const r of records) this.records.set(key(r.service, r.destination), { ...r, reasons: [...r.reasons] });
  }

  get(service: string, destination: string): QuarantineRecord | undefined {
    return this.records.get(key(service, destination));
  }

  isQuarantined(service: string, destination: string, now: number): boolean {
    const r = this.get(service, destination);
    return !!r && r.until > now;
  }

  quarantinedIn(service: string, now: number): QuarantineRecord[] {
    return [...this.records.values()].filter((r) => r.service === service && r.until > now);
  }

  all(): QuarantineRecord[] {
    return [...this.records.values()].map((r) => ({ ...r, reasons: [...r.reasons] }));
  }

  inPanic(service: string, now: number): boolean {
    return (this.panicUntil.get(service) ?? 0) > now;
  }

  /** A failure signal for one destination. Idempotent while quarantined: extends, never climbs a level. */
  fire(service: string, destination: string, ctx: FireContext): FireResult {
    const { policy, now } = ctx;
    const rec = this.get(service, destination);
    if (rec && rec.until > now) {
      const until = Math.max(rec.until, now + durationMs(policy, rec.level));
      const extended = until > rec.until;
      rec.until = until;
      remember(rec, ctx.reason);
      return extended ? { kind: 'extended', record: rec } : { kind: 'unchanged', record: rec, why: 'already quarantined' };
    }
    if (ctx.currentWeight === 0) {
      return { kind: 'unchanged', record: rec, why: 'weight is already 0 (drained by someone else): nothing to quarantine' };
    }
    const cap = capFor(policy, ctx.owned);
    const active = this.quarantinedIn(service, now).length;
    if (active >= cap) {
      this.panicUntil.set(service, now + policy.baseMs);
      return {
        kind: 'refused', reason: 'cap',
        why: `panic: ${active} of ${ctx.owned} destinations of ${service} already quarantined (cap ${cap}); refusing to quarantine ${destination}`,
      };
    }
    if (this.limiter && !this.limiter.take(now)) {
      return { kind: 'refused', reason: 'rate', why: 'quarantine rate limit reached (actuator.rateLimit)' };
    }
    const level = rec && rec.lastEnded ? Math.max(0, rec.level + 1 - Math.floor((now - rec.lastEnded) / policy.decayAfterMs)) : 0;
    const next: QuarantineRecord = {
      service, destination, level, since: now, until: now + durationMs(policy, level),
      lastEnded: rec?.lastEnded ?? 0, restoreWeight: ctx.currentWeight, pendingRestore: false, reasons: rec?.reasons ?? [],
      source: ctx.source, prevLevel: rec?.level, prevLastEnded: rec?.lastEnded,
    };
    remember(next, ctx.reason);
    this.records.set(key(service, destination), next);
    return { kind: 'quarantined', record: next };
  }

  /** A resolved alert: end the quarantine, but not before it has lasted `base` (no flapping on noisy alerts). */
  resolve(service: string, destination: string, policy: QuarantinePolicy, now: number): QuarantineRecord | undefined {
    const rec = this.get(service, destination);
    if (!rec || rec.until <= now) return undefined;
    rec.until = Math.max(now, rec.since + policy.baseMs);
    return rec;
  }

  /** Quarantines whose time is up, to be probed and restored. */
  due(now: number): QuarantineRecord[] {
    return [...this.records.values()].filter((r) => r.until && r.until <= now);
  }

  /** The destination is healthy again: its quarantine ends now. */
  release(service: string, destination: string, now: number): void {
    const rec = this.get(service, destination);
    if (!rec || !rec.until) return;
    rec.since = 0;
    rec.until = 0;
    rec.lastEnded = now;
    rec.pendingRestore = true;
  }

  /**
   * The destination answered after all (a handshake declared unanswered at its deadline completed late): it is
   * slow, not dead. Ends the quarantine now and takes back the backoff step it cost.
   */
  falseAlarm(service: string, destination: string, now: number, reason: string): QuarantineRecord | undefined {
    const rec = this.get(service, destination);
    if (!rec || rec.until <= now) return undefined;
    rec.since = 0;
    rec.until = 0;
    rec.pendingRestore = true;
    if (rec.prevLevel === undefined) {
      rec.level = 0;
      rec.lastEnded = 0;
    } else {
      rec.level = rec.prevLevel;
      rec.lastEnded = rec.prevLastEnded ?? 0;
    }
    remember(rec, reason);
    return rec;
  }

  /** The reconciler saw the weight back in the kernel. */
  restored(service: string, destination: string): void {
    const rec = this.get(service, destination);
    if (rec) rec.pendingRestore = false;
  }

  /** A restore probe failed: quarantine again at the next level, bypassing cap and rate (it never left). */
  extendAfterFailedProbe(service: string, destination: string, policy: QuarantinePolicy, now: number, reason: string): QuarantineRecord | undefined {
    const rec = this.get(service, destination);
    if (!rec) return undefined;
    rec.level += 1;
    rec.since = now;
    rec.until = now + durationMs(policy, rec.level);
    remember(rec, reason);
    return rec;
  }

  /** Forgets destinations the configuration no longer names. */
  retain(keep: (service: string, destination: string) => boolean): QuarantineRecord[] {
    const dropped: QuarantineRecord[] = [];
    for (const [k, r] of this.records) {
      if (!keep(r.service, r.destination)) {
        this.records.delete(k);
        dropped.push(r);
      }
    }
    return dropped;
  }

  /** Drops records of destinations healthy long enough to have decayed to nothing. */
  prune(policyOf: (service: string) => QuarantinePolicy, now: number): void {
    for (const [k, r] of this.records) {
      if (r.until || r.pendingRestore) continue;
      const p = policyOf(r.service);
      if (now - r.lastEnded > p.decayAfterMs * (r.level + 2)) this.records.delete(k);
    }
  }
}

function remember(r: QuarantineRecord, reason: string): void {
  if (r.reasons[r.reasons.length - 1] !== reason) r.reasons.push(reason);
  if (r.reasons.length > MAX_REASONS) r.reasons.splice(0, r.reasons.length - MAX_REASONS);
}
