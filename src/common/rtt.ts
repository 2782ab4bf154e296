// Handshake round-trip times per backend, and the deadline they imply: how long a SYN may go unanswered before
// it counts as a failure. Learned, not configured, because clients and backends may be far apart: a backend
// 150 ms away must not be declared dead at 100 ms, and one 0.2 ms away should not get a second's grace.
export interface DeadlinePolicy {
  /** deadline = multiplier × the backend's RTT percentile, clamped to [floorMs, ceilingMs] */
  multiplier: number;
  percentile: number;
  floorMs: number;
  ceilingMs: number;
  /** samples kept per backend, and needed before a backend's own figure is trusted (else the service's) */
  samples: number;
  minSamples: number;
}

export const DEFAULT_DEADLINE: DeadlinePolicy = {
  multiplier: 4, percentile: 0.99, floorMs: 200, ceilingMs: 700, samples: 256, minSamples: 16,
};

class Ring {
  private readonly xs: number[] = [];
  private next = 0;
  private sorted?: number[];

  constructor(private readonly size: number) {}

  push(x: number): void {
    if (this.xs.length < this.size) this.xs.push(x);
    else this.xs[this.next] = x;
    this.next = (this.next + 1) % this.size;
    this.sorted = undefined;
  }

  get length(): number {
    return this.xs.length;
  }

  quantile(p: number): number {
    this.sorted ??= [...this.xs].sort((a, b) => a - b);
    return this.sorted[Math.min(this.sorted.length - 1, Math.floor(p * this.sorted.length))];
  }
}

export class RttTracker {
  private readonly byBackend = new Map<string, Ring>();
  private readonly byService = new Map<string, Set<string>>();

  constructor(private policy: DeadlinePolicy = DEFAULT_DEADLINE) {}

  setPolicy(p: DeadlinePolicy): void {
    this.policy = p;
  }

  /** Forgets the services not in `names` (a reload removed them): memory stays bounded by configuration. */
  retain(names: Set<string>): void {
    for (const [service, keys] of this.byService) {
      if (names.has(service)) continue;
      for (const k of keys) this.byBackend.delete(k);
      this.byService.delete(service);
    }
  }

  /** One answered handshake (SYN to SYN-ACK) of `service` through `backend`, in milliseconds. */
  observe(service: string, backend: string, ms: number): void {
    const key = `${service}|${backend}`;
    let r = this.byBackend.get(key);
    if (!r) {
      r = new Ring(this.policy.samples);
      this.byBackend.set(key, r);
      if (!this.byService.has(service)) this.byService.set(service, new Set());
      this.byService.get(service)!.add(key);
    }
    r.push(ms);
  }

  /** The backend's RTT percentile if it has enough samples, else the slowest of the service's backends that do. */
  rttMs(service: string, backend?: string): number | undefined {
    const own = backend ? this.byBackend.get(`${service}|${backend}`) : undefined;
    if (own && own.length >= this.policy.minSamples) return own.quantile(this.policy.percentile);
    let worst: number | undefined;
    for (const key of this.byService.get(service) ?? []) {
      const r = this.byBackend.get(key)!;
      if (r.length >= this.policy.minSamples) worst = Math.max(worst ?? 0, r.quantile(this.policy.percentile));
    }
    return worst;
  }

  /**
   * How long a SYN to `backend` may wait. A backend still being learnt gets the ceiling: judging it by its faster
   * siblings would call a far-away backend dead before it had a chance to answer.
   */
  deadlineMs(service: string, backend?: string): number {
    const p = this.policy;
    const own = backend ? this.byBackend.get(`${service}|${backend}`) : undefined;
    if (backend && (!own || own.length < p.minSamples)) return p.ceilingMs;
    const rtt = this.rttMs(service, backend);
    if (rtt === undefined) return p.ceilingMs; // nothing learnt yet: the most patient verdict
    return Math.min(p.ceilingMs, Math.max(p.floorMs, p.multiplier * rtt));
  }

  /**
   * The service's deadline for whichever backend IPVS will pick (the SYN timeout is set before it picks): the
   * slowest backend decides, and while any backend that has answered is still being learnt, the ceiling.
   */
  serviceDeadlineMs(service: string): number {
    const p = this.policy;
    for (const key of this.byService.get(service) ?? []) {
      const n = this.byBackend.get(key)!.length;
      if (n > 0 && n < p.minSamples) return p.ceilingMs;
    }
    return this.deadlineMs(service);
  }
}
