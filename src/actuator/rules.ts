// Embedded rules: "N handshake failures to one destination within T" over the receiver's vipguard.connect spans,
// evaluated as they stream in (OTLP from the collector, or in-process). A rule firing is an AlertSignal like any
// alert from Prometheus; the policy decides.
import type { FlatSpan } from '../otlp/model';
import type { RuleConfig } from '../config/config';

export interface RuleHit {
  rule: string;
  /** virtual service as the span names it */
  serviceAddress: string;
  servicePort: number;
  backendAddress: string;
  backendPort: number;
  failures: number;
  windowMs: number;
  /** wall-clock ms of the span that tripped the rule (its end: when the failure was known) */
  observedAt: number;
  outcome: string;
}

/** Span ids remembered for de-duplication: one failure must count once even if it arrives twice. */
const SEEN_SPANS = 20_000;

export class RuleEngine {
  /** rule|vip|backend -> failure times (ms), oldest first */
  private readonly windows = new Map<string, number[]>();
  /** recently counted span ids — the same span can arrive in-process and again through a collector */
  private readonly seen = new Set<string>();

  constructor(private rules: RuleConfig[]) {}

  setRules(rules: RuleConfig[]): void {
    this.rules = rules;
    this.windows.clear();
  }

  /**
   * Feeds spans; returns the rules that trip. Spans older than the rule's window (a backlog replayed after an
   * outage) count for nothing: a stale failure is not a reason to act now.
   */
  ingest(spans: FlatSpan[], now: number): RuleHit[] {
    const hits: RuleHit[] = [];
    for (const s of spans) {
      if (s.name !== 'vipguard.connect') continue;
      if (s.spanId) {
        const id = `${s.traceId}/${s.spanId}`;
        if (this.seen.has(id)) continue;
        this.seen.add(id);
        if (this.seen.size > SEEN_SPANS) this.seen.delete(this.seen.values().next().value as string);
      }
      const a = s.attributes;
      const outcome = a['vipguard.outcome'];
      const backend = a['network.peer.address'];
      const backendPort = a['network.peer.port'];
      const vip = a['server.address'];
      const vport = a['server.port'];
      if (typeof outcome !== 'string' || typeof backend !== 'string' || typeof vip !== 'string' ||
        typeof backendPort !== 'number' || typeof vport !== 'number') continue;
      const at = Math.min(now, Number(s.endNs / 1_000_000n));
      for (const r of this.rules) {
        if (!r.outcomes.includes(outcome as RuleConfig['outcomes'][number]) || now - at > r.windowMs) continue;
        const key = `${r.name}|${vip}|${vport}|${backend}|${backendPort}`;
        const w = this.windows.get(key) ?? [];
        w.push(at);
        while (w.length && now - w[0] > r.windowMs) w.shift();
        this.windows.set(key, w);
        if (w.length >= r.threshold) {
          hits.push({
            rule: r.name, serviceAddress: vip, servicePort: vport, backendAddress: backend, backendPort,
            failures: w.length, windowMs: r.windowMs, observedAt: at, outcome,
          });
        }
      }
    }
    return hits;
  }

  /** Forgets windows with nothing left in them (call now and then). */
  sweep(now: number): void {
    const longest = Math.max(0, ...this.rules.map((r) => r.windowMs));
    for (const [k, w] of this.windows) if (!w.length || now - w[w.length - 1] > longest) this.windows.delete(k);
  }
}
