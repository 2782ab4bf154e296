// Watches one IPVS destination from the kernel's side while a failover scenario runs: its weight (or absence) in
// /proc/net/ip_vs every `tableMs`, and which client ports IPVS sent to it, from /proc/net/ip_vs_conn every `connMs`.
// Times are performance.now() - epoch, the same clock the client load uses. IPVS is per network namespace: with
// `pid` the watch reads the tables of the namespace that process is in (/proc/PID/net/…), e.g. a client host's.
import * as fs from 'node:fs';
import { clientPortsTo, parseIpvsTable, type ProcProtocol } from './procfs';

export class DestinationWatch {
  /** [at, weight] on every change; weight -1 = destination absent (removed) */
  readonly kernel: [number, number][] = [];
  /** client port → when a connection from it to the destination was first seen (one entry per appearance) */
  readonly seen = new Map<number, number[]>();
  private present = new Set<number>();
  private tableTimer?: NodeJS.Timeout;
  private connTimer?: NodeJS.Timeout;

  constructor(private readonly serviceKey: string, private readonly destKey: string, readonly epoch: number,
    private readonly opts: { tableMs?: number; connMs?: number; protocol?: ProcProtocol; pid?: number } = {}) {}

  private proc(file: 'ip_vs' | 'ip_vs_conn'): string {
    return fs.readFileSync(this.opts.pid === undefined ? `/proc/net/${file}` : `/proc/${this.opts.pid}/net/${file}`, 'utf8');
  }

  now(): number {
    return performance.now() - this.epoch;
  }

  /** The destination's weight now: -1 when absent, undefined when the service itself is absent. */
  weight(): number | undefined {
    const dests = parseIpvsTable(this.proc('ip_vs'), this.opts.protocol).get(this.serviceKey);
    if (!dests) return undefined;
    return dests.find((d) => d.key === this.destKey)?.weight ?? -1;
  }

  start(): void {
    this.pollTable();
    this.pollConns();
    this.tableTimer = setInterval(() => this.pollTable(), this.opts.tableMs ?? 20);
    this.connTimer = setInterval(() => this.pollConns(), this.opts.connMs ?? 250);
  }

  stop(): void {
    clearInterval(this.tableTimer);
    clearInterval(this.connTimer);
  }

  private pollTable(): void {
    const w = this.weight() ?? -1;
    const last = this.kernel[this.kernel.length - 1];
    if (!last || last[1] !== w) this.kernel.push([this.now(), w]);
  }

  private pollConns(): void {
    const at = this.now();
    const ports = new Set(clientPortsTo(this.proc('ip_vs_conn'), this.destKey, this.opts.protocol));
    for (const p of ports) {
      if (this.present.has(p)) continue;
      const list = this.seen.get(p) ?? [];
      list.push(at);
      this.seen.set(p, list);
    }
    this.present = ports;
  }

  /** Whether the destination was out of service (weight 0 or absent) at any time since `t`. */
  wentDownSince(t: number): boolean {
    return this.stateAt(t) <= 0 || this.kernel.some(([at, w]) => at >= t && w <= 0);
  }

  /** Whether it has been in service (weight > 0) at some point since `t`. */
  upSince(t: number): boolean {
    return this.stateAt(t) > 0 || this.kernel.some(([at, w]) => at >= t && w > 0);
  }

  private stateAt(t: number): number {
    let w = 1;
    for (const [at, x] of this.kernel) if (at <= t) w = x;
    return w;
  }
}

/** Watches the weights of several destinations of one service with one read of /proc/net/ip_vs per poll. */
export class ServiceWatch {
  /** destination key → [at, weight] on every change; -1 = absent (or the service is) */
  readonly kernel = new Map<string, [number, number][]>();
  private timer?: NodeJS.Timeout;

  constructor(private readonly serviceKey: string, private readonly destKeys: string[], readonly epoch: number, private readonly tableMs = 20) {
    for (const k of destKeys) this.kernel.set(k, []);
  }

  now(): number {
    return performance.now() - this.epoch;
  }

  /** Every watched destination's weight now (-1 when it or the service is absent). */
  weights(): Map<string, number> {
    const dests = parseIpvsTable(fs.readFileSync('/proc/net/ip_vs', 'utf8')).get(this.serviceKey) ?? [];
    return new Map(this.destKeys.map((k) => [k, dests.find((d) => d.key === k)?.weight ?? -1]));
  }

  start(): void {
    this.poll();
    this.timer = setInterval(() => this.poll(), this.tableMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private poll(): void {
    const at = this.now();
    for (const [k, w] of this.weights()) {
      const list = this.kernel.get(k)!;
      const last = list[list.length - 1];
      if (!last || last[1] !== w) list.push([at, w]);
    }
  }
}
