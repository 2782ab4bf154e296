// The loopback churn generator of the host benchmarks: churn.c, compiled at bench time (cc -O2 -pthread) into
// build/bench/churn, and run for one phase at a time. Node cannot saturate the kernel's connect/close path on its
// own; two C client threads and one acceptor do (~12–16k connections/s on this kind of 2-core machine).
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from '../common/paths';
export { freePort } from '../common/ports';

export const CHURN_SOURCE = path.join(REPO_ROOT, 'src', 'bench', 'churn.c');
export const CHURN_BINARY = path.join(REPO_ROOT, 'build', 'bench', 'churn');

export interface ChurnResult {
  connects: number;
  errors: number;
  slow: number;
  seconds: number;
  rate: number;
}

export interface ChurnOptions {
  port: number;
  seconds: number;
  /** connections/s for the whole generator; 0 = as fast as it goes */
  rate?: number;
  clients?: number;
  acceptors?: number;
}

export const CHURN_DEFAULTS = { clients: 2, acceptors: 1 } as const;

/** Compiles churn.c when the binary is missing or older than the source. */
export function ensureChurn(): string {
  const stale = !fs.existsSync(CHURN_BINARY) || fs.statSync(CHURN_BINARY).mtimeMs < fs.statSync(CHURN_SOURCE).mtimeMs;
  if (stale) {
    fs.mkdirSync(path.dirname(CHURN_BINARY), { recursive: true });
    try {
      execFileSync('cc', ['-O2', '-Wall', '-pthread', '-o', CHURN_BINARY, CHURN_SOURCE], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const err = e as { stderr?: Buffer; message: string };
      throw new Error(`compiling ${CHURN_SOURCE}: ${err.stderr?.toString().trim() || err.message} — install a C compiler (scripts/provision.sh installs g++)`);
    }
  }
  return CHURN_BINARY;
}

export function parseChurnOutput(stdout: string): ChurnResult {
  const line = stdout.trim().split('\n').pop() ?? '';
  const r = JSON.parse(line) as ChurnResult;
  if (typeof r.connects !== 'number' || typeof r.seconds !== 'number') throw new Error(`churn: unexpected output ${JSON.stringify(line)}`);
  return r;
}

/** One churn phase; bounded by its own --seconds, and killed (by PID) if it overstays that by 30 s. */
export function runChurn(o: ChurnOptions): Promise<ChurnResult> {
  const bin = ensureChurn();
  const args = ['--port', String(o.port), '--seconds', String(o.seconds), '--rate', String(o.rate ?? 0),
    '--clients', String(o.clients ?? CHURN_DEFAULTS.clients), '--acceptors', String(o.acceptors ?? CHURN_DEFAULTS.acceptors)];
  return new Promise((resolve, reject) => {
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (b) => (out += b));
    p.stderr.on('data', (b) => (err += b));
    const t = setTimeout(() => p.kill('SIGKILL'), (o.seconds + 30) * 1000);
    p.on('exit', (code) => {
      clearTimeout(t);
      if (code !== 0) reject(new Error(`churn ${args.join(' ')} exited ${code}: ${err.trim()}`));
      else {
        try { resolve(parseChurnOutput(out)); } catch (e) { reject(e); }
      }
    });
  });
}

