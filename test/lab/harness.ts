// Lab test harness: vipguard as a real process (so kill -9 means kill -9), a client load of real connects, and
// small readers of the kernel's IPVS table. Used by the actuator, fault and benchmark code inside the lab VM.
import { execFileSync } from 'node:child_process';
import * as net from 'node:net';

export { VipguardProcess, authHeader, startVipguard, stopVipguard, vgStatus } from '../../src/lab/vipguard-process';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Weights of a service's destinations as ipvsadm lists them (an independent reader of the kernel). */
export function ipvsWeights(vip: string, port: number): Record<string, number> {
  const out = execFileSync('ipvsadm', ['-Ln', '-t', `${vip}:${port}`], { encoding: 'utf8' });
  const w: Record<string, number> = {};
  for (const line of out.split('\n')) {
    const m = /->\s+(\S+)\s+\S+\s+(\d+)/.exec(line);
    if (m && m[1] !== 'RemoteAddress:Port') w[m[1]] = Number(m[2]);
  }
  return w;
}

export interface ConnectResult {
  /** ms since the load started */
  at: number;
  ms: number;
  outcome: 'ok' | 'refused' | 'timeout' | 'error';
  localPort?: number;
}

/** One connect with a deadline (the application's patience); closes right away. */
export function connectOnce(host: string, port: number, timeoutMs: number): Promise<Omit<ConnectResult, 'at'>> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const s = net.connect({ host, port });
    const done = (outcome: ConnectResult['outcome']) => {
      clearTimeout(timer);
      const localPort = s.localPort;
      s.destroy();
      resolve({ ms: performance.now() - t0, outcome, localPort });
    };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    s.once('connect', () => done('ok'));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code === 'ECONNREFUSED' ? 'refused' : 'error'));
  });
}

/** Steady client load: `rate` connects per second for `durationMs`, each with `timeoutMs` of patience. */
export class Load {
  readonly results: ConnectResult[] = [];
  private timer?: NodeJS.Timeout;
  private pending = new Set<Promise<void>>();
  private t0 = 0;

  constructor(private readonly host: string, private readonly port: number, private readonly rate: number, private readonly timeoutMs: number) {}

  start(): void {
    this.t0 = performance.now();
    const interval = 1000 / this.rate;
    let n = 0;
    this.timer = setInterval(() => {
      // Catch up if the event loop lagged (TCG): keep the rate, not the tick count.
      const due = Math.floor((performance.now() - this.t0) / interval);
      for (; n < due; n++) {
        const at = performance.now() - this.t0;
        const p = connectOnce(this.host, this.port, this.timeoutMs).then((r) => { this.results.push({ at, ...r }); });
        this.pending.add(p);
        void p.finally(() => this.pending.delete(p));
      }
    }, Math.max(5, interval / 2));
  }

  now(): number {
    return performance.now() - this.t0;
  }

  async stop(): Promise<ConnectResult[]> {
    clearInterval(this.timer);
    await Promise.all(this.pending);
    return this.results.sort((a, b) => a.at - b.at);
  }
}

export function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}
