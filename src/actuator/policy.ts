// The quarantine policy, as pure logic over an explicit monotonic clock: which destinations vipguard wants out of
// service, since when, at which backoff level, and what a signal or a probe result changes. No kernel here, and
// no cap either: the cap is an invariant of the *resulting table* (desired.ts), so it holds whichever path — a
// signal, a reload, a restart, someone else's edit — led there.
//
// A quarantine's life:
//   held      weight 0, for hold(level) = min(base * multiplier^level, max) — no probing yet;
//   probing   weight 0, the destination is probed directly every probeInterval (recovery.ts); `probeSuccesses`
//             answers in a row end the quarantine. A failed probe only waits for the next one: a backend still
//             down while out of service is not a reason to keep it out longer once it is back (issue 15: a 30 s
//             outage used to cost ~40 s of capacity through probe failures doubling the quarantine);
//   released  the owner's weight goes back (reconcile), the record stays for its backoff history.
// Backoff: a destination that fails again within decayAfter of its last release starts one level higher
// (flapping is kept out longer each time); each full decayAfter of health takes one level off.
import type { QuarantinePolicy } from '../config/config';
import type { SavedDestination } from './holdout';

export interface QuarantineRecord {
  service: string;
  destination: string;
  /** canonical IPVS service key (tcp/10.99.0.1:80): a record outliving its configuration can still be given back */
  serviceKey: string;
  level: number;
  /** quarantined now (held or probing) */
  active: boolean;
  /** monotonic ms the current (or last) quarantine started */
  since: number;
  /** monotonic ms the hold ends and probing starts */
  holdUntil: number;
  /** monotonic ms the last quarantine ended; undefined if never */
  lastEnded?: number;
  /** the owner's weight, given back when the quarantine ends (watched: the kernel's before vipguard set 0, or
   * whatever the owner set since — the owner wins) */
  restoreWeight: number;
  /** released, but the kernel has not been seen with the weight back yet */
  pendingRestore: boolean;
  /** held out by removal (UDP, holdout.ts): the destination as it was when vipguard removed it, to add it back */
  removedAs?: SavedDestination;
  /** consecutive successful probes in the current probing phase */
  probeOks: number;
  /** most recent reasons, newest last (bounded) */
  reasons: string[];
  /** which input started the current quarantine: only it (or a probe) ends it early */
  source?: string;
  alert?: string;
  /** backoff state before the current quarantine, so a false alarm can be taken back */
  prevLevel?: number;
  prevLastEnded?: number;
}

export const quarantined = (r: QuarantineRecord | undefined): boolean => !!r && r.active;
export const probing = (r: QuarantineRecord | undefined, now: number): boolean => !!r && quarantined(r) && r.holdUntil <= now;

export type FireResult =
  | { kind: 'quarantined' | 'extended'; record: QuarantineRecord }
  | { kind: 'unchanged'; record?: QuarantineRecord; why: string }
  | { kind: 'refused'; why: string; reason: 'cap' | 'rate' };

export interface Signal {
  service: string;
  serviceKey: string;
  destination: string;
  source: string;
  alert: string;
  reason: string;
}

export function holdMs(p: QuarantinePolicy, level: number): number {
  return Math.min(p.baseMs * Math.pow(p.multiplier, level), p.maxMs);
}

/** Most destinations of a service that may be out at once: the configured cap, and never all of those in service. */
export function capFor(p: QuarantinePolicy, inService: number): number {
  const raw = 'count' in p.maxQuarantined ? p.maxQuarantined.count : Math.floor((inService * p.maxQuarantined.percent) / 100);
  return Math.max(0, Math.min(raw, inService - 1));
}

/** Token bucket on the monotonic clock: `burst` actions at once, refilled at `perSecond`. */
export class RateLimiter {
  private tokens: number;
  private last: number;

  constructor(private readonly perSecond: number, private readonly burst: number, now: number) {
    this.tokens = burst;
    this.last = now;
  }

  take(now: number): boolean {
    // A monotonic clock never goes back; should a caller's ever do, refill nothing rather than a negative amount.
    this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, now - this.last) / 1000) * this.perSecond);
    this.last = Math.max(this.last, now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

const MAX_REASONS = 5;
const key = (service: string, destination: string) => `${service}|${destination}`;

export class QuarantineBook {
  private readonly records = new Map<string, QuarantineRecord>();

  constructor(records: QuarantineRecord[] = [], private readonly limiter?: RateLimiter) {
    for (const r of records) this.records.set(key(r.service, r.destination), copy(r));
  }

  get(service: string, destination: string): QuarantineRecord | undefined {
    return this.records.get(key(service, destination));
  }

  isQuarantined(service: string, destination: string): boolean {
    return quarantined(this.get(service, destination));
  }

  quarantinedIn(service: string): QuarantineRecord[] {
    return [...this.records.values()].filter((r) => r.service === service && quarantined(r));
  }

  all(): QuarantineRecord[] {
    return [...this.records.values()].map(copy);
  }

  /**
   * A failure signal for one destination. Idempotent while quarantined: extends the hold, never climbs a level.
   * `admit` is the cap check on the table as it would be (desired.ts): refused, nothing changes.
   */
  fire(sig: Signal, ctx: { policy: QuarantinePolicy; currentWeight: number; now: number; admit: () => string | undefined }): FireResult {
    const { policy, now } = ctx;
    const rec = this.get(sig.service, sig.destination);
    if (rec && quarantined(rec)) {
      const holdUntil = Math.max(rec.holdUntil, now + holdMs(policy, rec.level));
      const extended = holdUntil > rec.holdUntil;
      rec.holdUntil = holdUntil;
      rec.probeOks = 0;
      remember(rec, sig.reason);
      return extended ? { kind: 'extended', record: rec } : { kind: 'unchanged', record: rec, why: 'already quarantined' };
    }
    if (ctx.currentWeight === 0) {
      return { kind: 'unchanged', record: rec, why: 'weight is already 0 (drained by its owner): nothing to quarantine' };
    }
    const overCap = ctx.admit();
    if (overCap) return { kind: 'refused', reason: 'cap', why: overCap };
    if (this.limiter && !this.limiter.take(now)) {
      return { kind: 'refused', reason: 'rate', why: 'quarantine rate limit reached (actuator.rateLimit)' };
    }
    const level = rec?.lastEnded !== undefined ? Math.max(0, rec.level + 1 - Math.floor((now - rec.lastEnded) / policy.decayAfterMs)) : 0;
    const next: QuarantineRecord = {
      service: sig.service, destination: sig.destination, serviceKey: sig.serviceKey, level, active: true, since: now,
      holdUntil: now + holdMs(policy, level), lastEnded: rec?.lastEnded, restoreWeight: ctx.currentWeight,
      pendingRestore: false, probeOks: 0, reasons: rec?.reasons ?? [], source: sig.source, alert: sig.alert,
      removedAs: rec?.removedAs, // released but not yet added back: still removed
      prevLevel: rec?.level, prevLastEnded: rec?.lastEnded,
    };
    remember(next, sig.reason);
    this.records.set(key(sig.service, sig.destination), next);
    return { kind: 'quarantined', record: next };
  }

  /**
   * A resolved alert ends the hold now — only if the same input (source and alert name) started the quarantine:
   * one source's "resolved" must not end what another saw failing. Probing still decides the restore.
   */
  resolve(service: string, destination: string, by: { source: string; alert: string }, now: number): QuarantineRecord | undefined {
    const rec = this.get(service, destination);
    if (!rec || !quarantined(rec) || rec.source !== by.source || rec.alert !== by.alert) return undefined;
    rec.holdUntil = Math.min(rec.holdUntil, now);
    return rec;
  }

  /** Quarantines whose hold is over: to be probed. */
  probing(now: number): QuarantineRecord[] {
    return [...this.records.values()].filter((r) => probing(r, now)).map(copy);
  }

  /** The earliest hold end still ahead, for the scheduler's timer. */
  nextHoldEnd(now: number): number | undefined {
    const ends = [...this.records.values()].filter((r) => quarantined(r) && r.holdUntil > now).map((r) => r.holdUntil);
    return ends.length ? Math.min(...ends) : undefined;
  }

  /** A probe result; `needed` answers in a row release the destination. Returns whether it was released. */
  probed(service: string, destination: string, ok: boolean, needed: number, now: number): boolean {
    const rec = this.get(service, destination);
    if (!rec || !quarantined(rec) || rec.holdUntil > now) return false;
    rec.probeOks = ok ? rec.probeOks + 1 : 0;
    if (rec.probeOks < needed) return false;
    this.release(service, destination, now, `probe answered ${needed}×`);
    return true;
  }

  /** The quarantine ends now; the owner's weight goes back at the next reconcile. */
  release(service: string, destination: string, now: number, reason?: string): void {
    const rec = this.get(service, destination);
    if (!rec || !quarantined(rec)) return;
    rec.active = false;
    rec.probeOks = 0;
    rec.lastEnded = now;
    rec.pendingRestore = true;
    if (reason) remember(rec, reason);
  }

  /**
   * The destination answered after all (a handshake declared unanswered at its deadline completed late): it is
   * slow, not dead. Ends a quarantine the embedded rules started, and takes back the backoff step it cost.
   */
  falseAlarm(service: string, destination: string, reason: string): QuarantineRecord | undefined {
    const rec = this.get(service, destination);
    if (!rec || !quarantined(rec) || rec.source !== 'rule') return undefined;
    rec.active = false;
    rec.probeOks = 0;
    rec.pendingRestore = true;
    rec.level = rec.prevLevel ?? 0;
    rec.lastEnded = rec.prevLastEnded;
    remember(rec, reason);
    return rec;
  }

  /** The owner changed the weight of a destination vipguard holds at 0: that is the weight to give back. */
  ownerWeight(service: string, destination: string, weight: number): void {
    const rec = this.get(service, destination);
    if (rec && (quarantined(rec) || rec.pendingRestore)) rec.restoreWeight = weight;
  }

  /** The reconciler saw the weight back (or nothing left to give back): the restore is done. */
  restored(service: string, destination: string): void {
    const rec = this.get(service, destination);
    if (rec) {
      rec.pendingRestore = false;
      rec.removedAs = undefined;
    }
  }

  /** What a destination was before vipguard removes it (written ahead of the removal, like every quarantine). */
  removing(service: string, destination: string, saved: SavedDestination): void {
    const rec = this.get(service, destination);
    if (rec) rec.removedAs = { ...saved, tunnel: saved.tunnel && { ...saved.tunnel } };
  }

  /** Takes records out of the book (ownership ended): the caller gives back what they hold. */
  take(pick: (r: QuarantineRecord) => boolean): QuarantineRecord[] {
    const out: QuarantineRecord[] = [];
    for (const [k, r] of this.records) {
      if (pick(r)) {
        this.records.delete(k);
        out.push(r);
      }
    }
    return out;
  }

  /** Drops records of destinations healthy long enough to have decayed to level 0: memory stays bounded. */
  prune(policyOf: (service: string) => QuarantinePolicy | undefined, now: number): void {
    for (const [k, r] of this.records) {
      if (quarantined(r) || r.pendingRestore) continue;
      const p = policyOf(r.service);
      if (!p || r.lastEnded === undefined || now - r.lastEnded > p.decayAfterMs * (r.level + 1)) this.records.delete(k);
    }
  }
}

function copy(r: QuarantineRecord): QuarantineRecord {
  return { ...r, reasons: [...r.reasons], removedAs: r.removedAs && { ...r.removedAs } };
}

function remember(r: QuarantineRecord, reason: string): void {
  if (r.reasons[r.reasons.length - 1] !== reason) r.reasons.push(reason);
  if (r.reasons.length > MAX_REASONS) r.reasons.splice(0, r.reasons.length - MAX_REASONS);
}
