// Embedded rules: "N handshake failures to one destination within T" over the receiver's vipguard.connect spans,
// evaluated as they stream in (OTLP from the collector, or in-process). A rule firing is a signal like any alert
// from Prometheus; the policy decides. The intake hands over only attempts already resolved to a configured
// service and a destination vipguard owns, so every window here is keyed by configuration, never by whatever a
// span claims — and windows of services that go are dropped (`retain`).
import type { RuleConfig } from '../config/config';
import { ConnectAttempt, describeAttempt } from '../telemetry/connect-span';

export interface OwnedAttempt {
  attempt: ConnectAttempt;
  /** configured service name and canonical destination key */
  service: string;
  destination: string;
}

export interface RuleHit {
  rule: string;
  service: string;
  destination: string;
  failures: number;
  windowMs: number;
  /** wall-clock ms of the attempt that tripped the rule (its end: when the failure was known) */
  observedAt: number;
  outcome: string;
  /** the attempt that tripped the rule, in words (describeAttempt) */
  last: string;
}

/** Span ids remembered for de-duplication: one failure must count once even if it arrives twice. */
const SEEN_SPANS = 20_000;

export class RuleEngine {
  /** rule|service|destination -> failure times (wall ms: span times are wall), oldest first */
  private readonly windows = new Map<string, number[]>();
  /** recently counted span ids — the same span can arrive in-process and again through a collector */
  private readonly seen = new Set<string>();

  constructor(private rules: RuleConfig[]) {}

  setRules(rules: RuleConfig[]): void {
    this.rules = rules;
    this.windows.clear();
  }

  /** Drops the windows of services no longer configured. */
  retain(services: Set<string>): void {
    for (const k of this.windows.keys()) if (!services.has(k.split('|')[1])) this.windows.delete(k);
  }

  get size(): number {
    return this.windows.size;
  }

  /**
   * Feeds attempts; returns the rules that trip. Attempts older than the rule's window (a backlog replayed after
   * an outage) count for nothing: a stale failure is not a reason to act now.
   */
  ingest(attempts: OwnedAttempt[], nowWall: number): RuleHit[] {
    const hits: RuleHit[] = [];
    for (const { attempt: a, service, destination } of attempts) {
      if (a.id) {
        if (this.seen.has(a.id)) continue;
        this.seen.add(a.id);
        if (this.seen.size > SEEN_SPANS) this.seen.delete(this.seen.values().next().value as string);
      }
      const at = Math.min(nowWall, a.endMs);
      for (const r of this.rules) {
        if (!r.outcomes.includes(a.outcome as RuleConfig['outcomes'][number]) || nowWall - at > r.windowMs) continue;
        const key = `${r.name}|${service}|${destination}`;
        const w = this.windows.get(key) ?? [];
        w.push(at);
        while (w.length && nowWall - w[0] > r.windowMs) w.shift();
        this.windows.set(key, w);
        if (w.length >= r.threshold) {
          hits.push({ rule: r.name, service, destination, failures: w.length, windowMs: r.windowMs, observedAt: at, outcome: a.outcome, last: describeAttempt(a) });
        }
      }
    }
    return hits;
  }

  /** Forgets windows with nothing recent left in them. */
  sweep(nowWall: number): void {
    const longest = Math.max(0, ...this.rules.map((r) => r.windowMs));
    for (const [k, w] of this.windows) if (!w.length || nowWall - w[w.length - 1] > longest) this.windows.delete(k);
  }
}
