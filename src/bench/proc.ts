// Processes the benchmarks start — vipguard (`vipguard run`, the real product process), keepalived — with their
// output kept, readiness awaited within a bound, and an end by their own PID (SIGTERM, then SIGKILL).
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT } from '../common/paths';
import { NODE_FLAGS } from '../common/node-flags';
import { authHeader } from '../lab/vipguard-process';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `cond` every `everyMs` until true or `timeoutMs` passed; returns whether it became true. */
export async function waitUntil(cond: () => boolean, timeoutMs: number, everyMs = 20): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (cond()) return true;
    if (performance.now() > deadline) return false;
    await sleep(everyMs);
  }
}

/** waitUntil for an async check, every `everyMs` (250 by default); a check that throws counts as false. */
export async function waitUntilAsync(cond: () => Promise<boolean>, timeoutMs: number, everyMs = 250): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await cond().catch(() => false)) return true;
    if (performance.now() > deadline) return false;
    await sleep(everyMs);
  }
}

export class Proc {
  readonly lines: string[] = [];
  readonly exited: Promise<number | null>;
  private code: number | null | undefined;

  constructor(readonly name: string, readonly child: ChildProcess) {
    const reader = () => {
      let partial = '';
      return (b: Buffer) => {
        const parts = (partial + b.toString()).split('\n');
        partial = parts.pop() ?? '';
        for (const l of parts) if (l) this.lines.push(l);
        if (this.lines.length > 5000) this.lines.splice(0, 1000);
      };
    };
    child.stdout?.on('data', reader());
    child.stderr?.on('data', reader());
    this.exited = new Promise((r) => child.on('exit', (c, sig) => { this.code = c ?? (sig ? 128 : null); r(this.code); }));
  }

  static start(name: string, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; stdin?: boolean } = {}): Proc {
    return new Proc(name, spawn(cmd, args, { stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'], env: opts.env ?? process.env }));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.code === undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits until a line matches; throws with the output when the process exits or the bound passes first. */
  async waitLine(re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    let m: RegExpExecArray | null = null;
    const ok = await waitUntil(() => {
      for (const l of this.lines) if ((m = re.exec(l))) return true;
      return !this.running;
    }, timeoutMs, 50);
    if (m) return m;
    const why = ok ? `exited (${this.code})` : `no line matching ${re} within ${timeoutMs} ms`;
    throw new Error(`${this.name}: ${why}:\n${this.lines.slice(-30).join('\n')}`);
  }

  /** SIGTERM by PID, SIGKILL after `graceMs`. */
  async stop(graceMs = 15_000): Promise<number | null> {
    if (!this.running) return this.code ?? null;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => { if (this.running) this.child.kill('SIGKILL'); }, graceMs);
    const c = await this.exited;
    clearTimeout(t);
    return c;
  }
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface VipguardProc {
  proc: Proc;
  httpPort?: number;
  otlpPort?: number;
  dir: string;
}

/** Starts `vipguard run --config <yaml> [--only part]` and waits until the part(s) say they are up. */
export async function startVipguard(yaml: string, opts: { only?: 'receiver' | 'actuator'; dir?: string; readyMs?: number; root?: string } = {}): Promise<VipguardProc> {
  const dir = opts.dir ?? tempDir('vg-bench-');
  const config = path.join(dir, opts.only ? `vipguard-${opts.only}.yaml` : 'vipguard.yaml');
  fs.writeFileSync(config, yaml.replace(/\$DIR/g, dir));
  // An earlier revision (bench --baseline) runs as it shipped: without this tree's launcher flags.
  const flags = opts.root && opts.root !== REPO_ROOT ? [] : NODE_FLAGS;
  const args = [...flags, path.join(opts.root ?? REPO_ROOT, 'dist/src/cli/main.js'), 'run', '--config', config, ...(opts.only ? ['--only', opts.only] : [])];
  const proc = Proc.start(`vipguard${opts.only ? ` --only ${opts.only}` : ''}`, process.execPath, args);
  const readyMs = opts.readyMs ?? 90_000;
  const out: VipguardProc = { proc, dir };
  try {
    if (opts.only !== 'receiver') {
      const m = await proc.waitLine(/alerts on http:\/\/\S+ \(port (\d+)\), OTLP rules on \S+ \(port (\d+)\)/, readyMs);
      out.httpPort = Number(m[1]);
      out.otlpPort = Number(m[2]);
    }
    if (opts.only !== 'actuator') await proc.waitLine(/receiver: tracing/, readyMs);
  } catch (e) {
    await proc.stop(2000);
    throw e;
  }
  return out;
}

/** GET /api/vipguard/status of a running actuator. */
export async function vipguardStatus(vg: VipguardProc): Promise<Record<string, unknown> | undefined> {
  if (!vg.httpPort) return undefined;
  try {
    const r = await fetch(`http://127.0.0.1:${vg.httpPort}/api/vipguard/status`, { headers: authHeader(vg.dir), signal: AbortSignal.timeout(10_000) });
    return (await r.json()) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
