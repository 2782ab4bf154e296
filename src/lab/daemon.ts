// Peer daemons the lab starts (Prometheus, Alertmanager, …) and the HTTP reads the tests and benchmarks make of them.
// Shared by the lab tests (test/lab/harness.ts re-exports them) and the fleet benchmark.
import { ChildProcess, spawn } from 'node:child_process';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A peer daemon we started: stopped by its PID only, SIGTERM then SIGKILL after 10 s. */
export class Daemon {
  readonly lines: string[] = [];
  private readonly exited: Promise<void>;

  constructor(readonly name: string, readonly proc: ChildProcess) {
    const onData = (b: Buffer) => { for (const l of b.toString().split('\n')) if (l) this.lines.push(l); };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    this.exited = new Promise((r) => proc.on('exit', () => r()));
  }

  static start(name: string, argv: string[]): Daemon {
    return new Daemon(name, spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  /** Polls GET url until 200, failing with the daemon's log if it exits or `ms` pass. */
  async ready(url: string, ms: number): Promise<number> {
    const t0 = Date.now();
    while (Date.now() - t0 < ms) {
      if (this.proc.exitCode !== null) throw new Error(`${this.name} exited ${this.proc.exitCode}:\n${this.lines.join('\n')}`);
      const ok = await fetch(url, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
      if (ok) return Date.now() - t0;
      await sleep(200);
    }
    throw new Error(`${this.name} not ready after ${ms} ms:\n${this.lines.slice(-20).join('\n')}`);
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }
}

export async function getJson(url: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return r.json();
}

/** An instant query against the Prometheus at `base` (http://127.0.0.1:PORT): its result vector, [] if none. */
export async function promQuery(base: string, q: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  return (await getJson(`${base}/api/v1/query?query=${encodeURIComponent(q)}`)).data?.result ?? [];
}
