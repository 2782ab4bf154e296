// Lab test harness: vipguard as a real process (so kill -9 means kill -9), a client load of real connects, and
// small readers of the kernel's IPVS table. Used by the actuator, fault and benchmark code inside the lab VM.
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT } from '../../src/common/paths';

export interface VipguardProcess {
  proc: ChildProcess;
  lines: string[];
  dir: string;
  configPath: string;
  httpPort: number;
  /** resolves when the process exits */
  exited: Promise<number | null>;
}

/** Writes the config into a fresh directory (state file there too) and starts `vipguard run` on it. */
export async function startVipguard(yaml: string, opts: { dir?: string; args?: string[]; readyTimeoutMs?: number } = {}): Promise<VipguardProcess> {
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'vg-'));
  const configPath = path.join(dir, 'vipguard.yaml');
  fs.writeFileSync(configPath, yaml.replace(/\$DIR/g, dir));
  const proc = spawn(process.execPath, [path.join(REPO_ROOT, 'dist/src/cli/main.js'), 'run', '--config', configPath, ...(opts.args ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const onData = (b: Buffer) => {
    for (const l of b.toString().split('\n')) if (l) lines.push(l);
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
  let httpPort = 0;
  while (Date.now() < deadline) {
    const m = lines.map((l) => /alerts on http:\/\/\S+ \(port (\d+)\)/.exec(l)).find(Boolean);
    const recv = lines.some((l) => /receiver: tracing/.test(l)) || (opts.args ?? []).includes('actuator');
    if (m && recv) { httpPort = Number(m[1]); break; }
    if (proc.exitCode !== null) throw new Error(`vipguard exited ${proc.exitCode}:\n${lines.join('\n')}`);
    await sleep(50);
  }
  if (!httpPort) {
    proc.kill('SIGKILL');
    throw new Error(`vipguard did not become ready:\n${lines.join('\n')}`);
  }
  return { proc, lines, dir, configPath, httpPort, exited };
}

export async function stopVipguard(vg: VipguardProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!vg || vg.proc.exitCode !== null) return;
  vg.proc.kill(signal);
  const t = setTimeout(() => vg.proc.kill('SIGKILL'), 15_000);
  await vg.exited;
  clearTimeout(t);
}

export async function vgStatus(vg: VipguardProcess): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = await fetch(`http://127.0.0.1:${vg.httpPort}/api/vipguard/status`, { signal: AbortSignal.timeout(5000) });
  return r.json();
}

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
