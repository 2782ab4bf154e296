// Steady client load for the lab benchmarks: `rate` connects per second to one address, each with the patience of
// a real client (`timeoutMs`), closed as soon as it connects. Every connect records when it started, how long it
// took, how it ended and its local port (so the kernel's IPVS connection table can tell which backend it went to).
import * as net from 'node:net';
import type { ConnectOutcome } from './types';

export interface Connect {
  /** ms since the load's epoch (performance.now() - epoch) */
  at: number;
  ms: number;
  outcome: ConnectOutcome;
  localPort?: number;
}

export function connectOnce(host: string, port: number, timeoutMs: number, epoch = 0): Promise<Connect> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const s = net.connect({ host, port });
    let localPort: number | undefined;
    // The port exists once connect() has bound the socket: read it on the next tick, before any outcome.
    process.nextTick(() => { localPort = s.localPort ?? localPort; });
    const done = (outcome: ConnectOutcome) => {
      clearTimeout(timer);
      localPort = s.localPort ?? localPort;
      s.destroy();
      resolve({ at: t0 - epoch, ms: performance.now() - t0, outcome, localPort });
    };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    s.once('connect', () => done('ok'));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code === 'ECONNREFUSED' ? 'refused' : 'error'));
  });
}

export class Load {
  readonly results: Connect[] = [];
  started = 0;
  /** worst lateness of a connect against its schedule, ms */
  maxLagMs = 0;
  private timer?: NodeJS.Timeout;
  private readonly pending = new Set<Promise<void>>();
  private startedAt = 0;
  private stoppedAt = 0;

  constructor(private readonly host: string, private readonly port: number, private readonly rate: number,
    private readonly timeoutMs: number, private readonly epoch: number) {
    if (!(rate > 0 && rate <= 1000)) throw new Error(`Load: rate must be within 0..1000 connects/s, got ${rate}`);
  }

  start(): void {
    this.startedAt = performance.now();
    const interval = 1000 / this.rate;
    this.timer = setInterval(() => {
      // Catch up when the event loop lagged (TCG): keep the rate, and record how late we were.
      const now = performance.now();
      const due = Math.floor((now - this.startedAt) / interval);
      for (; this.started < due; this.started++) {
        this.maxLagMs = Math.max(this.maxLagMs, now - (this.startedAt + this.started * interval));
        const p = connectOnce(this.host, this.port, this.timeoutMs, this.epoch).then((r) => { this.results.push(r); });
        this.pending.add(p);
        void p.finally(() => this.pending.delete(p));
      }
    }, Math.max(4, interval / 2));
  }

  /** Stops starting connects and waits for those in flight (bounded by their own timeout). */
  async stop(): Promise<Connect[]> {
    clearInterval(this.timer);
    this.stoppedAt = performance.now();
    await Promise.all(this.pending);
    return this.results.sort((a, b) => a.at - b.at);
  }

  /** Connects started per second between start() and stop(). */
  achievedRate(): number {
    const s = ((this.stoppedAt || performance.now()) - this.startedAt) / 1000;
    return s > 0 ? this.started / s : 0;
  }
}
