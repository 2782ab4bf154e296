// Steady client load for the lab's tests and benchmarks: `rate` connects per second to one address, each with the
// patience of a real client (`timeoutMs`), closed as soon as it connects. Every connect records when it started, how
// long it took, how it ended and its local port (so the kernel's IPVS connection table can tell which backend it
// went to). The connects are made by connload.c (build/connload): under TCG, Node's own connects cost the guest as
// much CPU as vipguard and delayed its reaction by seconds.
import { ChildProcess, spawn } from 'node:child_process';
import * as net from 'node:net';
import { constants } from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT } from '../common/paths';

export const CONNLOAD_BINARY = path.join(REPO_ROOT, 'build', 'connload');

/** How one client connect ended. */
export const OUTCOMES = ['ok', 'refused', 'timeout', 'error'] as const;
export type ConnectOutcome = (typeof OUTCOMES)[number];

export interface Connect {
  /** ms since the load's epoch (performance.now() - epoch) */
  at: number;
  ms: number;
  outcome: ConnectOutcome;
  localPort?: number;
  /** for 'error': what the socket said (ECONNRESET, EHOSTUNREACH, …) */
  errno?: string;
}

/** One connect from Node, for the few a test makes one at a time (a load uses connload). */
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

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/** performance.now() and CLOCK_MONOTONIC differ by a constant: both are libuv's hrtime. */
function monoToPerf(monoNs: bigint): number {
  return Number(monoNs - process.hrtime.bigint()) / 1e6 + performance.now();
}

export class Load {
  readonly results: Connect[] = [];
  started = 0;
  /** worst lateness of a connect against its schedule, ms */
  maxLagMs = 0;
  private proc?: ChildProcess;
  private exited?: Promise<void>;
  private startedAt = 0;
  private stoppedAt = 0;
  private epoch: number;
  private rest = '';
  private stderr = '';
  private malformed?: string;
  private netns?: string;

  /** `epoch`: the performance.now() that `at` counts from; by default the moment start() is called. */
  constructor(private readonly host: string, private readonly port: number, private readonly rate: number,
    private readonly timeoutMs: number, epoch?: number) {
    if (!(rate > 0 && rate <= 1000)) throw new Error(`Load: rate must be within 0..1000 connects/s, got ${rate}`);
    if (!(timeoutMs > 0 && timeoutMs <= 600_000)) throw new Error(`Load: timeoutMs must be within 0..600000, got ${timeoutMs}`);
    this.epoch = epoch ?? NaN;
  }

  /**
   * The connects come from network namespace `name` (/run/netns/NAME: a client host of the topology) rather than
   * ours. nsenter switches the network namespace only — `ip netns exec` would also remount /sys — and execs connload.
   */
  inNetns(name: string): this {
    if (this.proc) throw new Error('Load: inNetns() after start()');
    this.netns = name;
    return this;
  }

  start(): void {
    if (this.proc) throw new Error('Load: already started');
    this.startedAt = performance.now();
    if (Number.isNaN(this.epoch)) this.epoch = this.startedAt;
    const argv = [CONNLOAD_BINARY, '--addr', this.host, '--port', String(this.port), '--rate', String(this.rate), '--timeout', String(this.timeoutMs)];
    if (this.netns) argv.unshift('nsenter', `--net=/run/netns/${this.netns}`);
    const proc = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc = proc;
    proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => this.lines(chunk));
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => { this.stderr = (this.stderr + chunk).slice(-2000); });
    this.exited = new Promise((resolve, reject) => {
      proc.once('error', (e) => reject(new Error(`Load: starting ${CONNLOAD_BINARY}: ${e.message} (npm run build compiles it)`)));
      proc.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`Load: connload exited ${code}: ${this.stderr.trim()}`))));
    });
    this.exited.catch(() => {}); // reported by stop()
  }

  /** ms since the epoch, on the same clock as the results' `at` */
  now(): number {
    return performance.now() - this.epoch;
  }

  /** A wall-clock time (a log line's timestamp, Date.now()) on the results' clock. */
  fromWall(wallMs: number): number {
    return wallMs - performance.timeOrigin - this.epoch;
  }

  /** Stops starting connects and waits for those in flight (bounded by their own timeout). */
  async stop(): Promise<Connect[]> {
    if (!this.proc) return [];
    this.stoppedAt = performance.now();
    this.proc.stdin!.end();
    await this.exited;
    if (this.malformed) throw new Error(`Load: unexpected line from connload: '${this.malformed}'`);
    return this.results.sort((a, b) => a.at - b.at);
  }

  /** Connects started per second between start() and stop(). */
  achievedRate(): number {
    const s = ((this.stoppedAt || performance.now()) - this.startedAt) / 1000;
    return s > 0 ? this.started / s : 0;
  }

  private lines(chunk: string): void {
    const parts = (this.rest + chunk).split('\n');
    this.rest = parts.pop() ?? '';
    for (const line of parts) {
      const f = line.split(' ');
      if (f[0] === 'end') {
        this.started = Number(f[1]);
        this.maxLagMs = Number(f[2]) / 1e6;
        continue;
      }
      const outcome = f[2] as ConnectOutcome;
      if (f.length !== 5 || !OUTCOMES.includes(outcome)) {
        this.malformed ??= line;
        continue;
      }
      const port = Number(f[3]);
      const r: Connect = { at: monoToPerf(BigInt(f[0])) - this.epoch, ms: Number(f[1]) / 1e6, outcome, localPort: port || undefined };
      if (outcome === 'error') r.errno = ERRNO_NAMES.get(Number(f[4])) ?? `errno ${f[4]}`;
      this.results.push(r);
    }
  }
}
