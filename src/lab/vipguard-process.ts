// vipguard as a real child process, for lab tests, benchmarks and the demo (so kill -9 means kill -9).
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT } from '../common/paths';
import { readTokenFile } from '../common/token-file';

import { stringify } from 'yaml';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Tree = { [k: string]: unknown };

function merge(a: Tree, b: Tree): Tree {
  const out: Tree = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)
      ? merge(cur as Tree, v as Tree) : v;
  }
  return out;
}

/**
 * A vipguard.yaml for the lab: one watched service, no collector to export to, endpoints on free loopback
 * ports, state in the process's own directory ($DIR), and whatever `overrides` add or change (merged deeply).
 */
export function labConfig(service: { address: string; port: number; name?: string }, overrides: Tree = {}): string {
  const base: Tree = {
    services: [{ name: service.name ?? 'web', address: service.address, port: service.port }],
    receiver: { export: { enabled: false }, prometheus: { enabled: false } },
    actuator: { listen: '127.0.0.1:0', otlpListen: '127.0.0.1:0', stateFile: '$DIR/state.json' },
  };
  return stringify(merge(base, overrides));
}

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
export async function startVipguard(yaml: string, opts: { dir?: string; args?: string[]; readyTimeoutMs?: number; configPath?: string; command?: string[] } = {}): Promise<VipguardProcess> {
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'vg-'));
  const configPath = opts.configPath ?? path.join(dir, 'vipguard.yaml');
  fs.writeFileSync(configPath, yaml.replace(/\$DIR/g, dir));
  // `command`: another vipguard than this tree's (the installed package's /usr/bin/vipguard).
  const [cmd, ...argv] = opts.command ?? [process.execPath, path.join(REPO_ROOT, 'dist/src/cli/main.js')];
  const proc = spawn(cmd, [...argv, 'run', '--config', configPath, ...(opts.args ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const onData = (b: Buffer) => {
    for (const l of b.toString().split('\n')) if (l) lines.push(l);
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 90_000);
  let httpPort = 0;
  // `--only receiver` has no HTTP endpoint (httpPort stays 0); `--only actuator` no tracing line.
  const only = (opts.args ?? [])[(opts.args ?? []).indexOf('--only') + 1];
  let ready = false;
  while (Date.now() < deadline) {
    const m = lines.map((l) => /alerts on https?:\/\/\S+ \(port (\d+)\)/.exec(l)).find(Boolean);
    const recv = lines.some((l) => /receiver: tracing/.test(l)) || only === 'actuator';
    if ((m || only === 'receiver') && recv) { httpPort = m ? Number(m[1]) : 0; ready = true; break; }
    if (proc.exitCode !== null) throw new Error(`vipguard exited ${proc.exitCode}:\n${lines.join('\n')}`);
    await sleep(50);
  }
  if (!ready) {
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

/**
 * The Authorization header for a vipguard started on labConfig(): its actuator generated its token beside the state
 * file ($DIR/token) at start. None when there is no such file (a receiver-only process).
 */
export function authHeader(dir: string): Record<string, string> {
  const file = path.join(dir, 'token');
  return fs.existsSync(file) ? { authorization: `Bearer ${readTokenFile(file)}` } : {};
}

export async function vgStatus(vg: VipguardProcess): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const get = () => fetch(`http://127.0.0.1:${vg.httpPort}/api/vipguard/status`, { headers: authHeader(vg.dir), signal: AbortSignal.timeout(20_000) });
  // fetch reuses a pooled keep-alive connection; when the server's keep-alive timeout closes it at the moment the
  // request goes out, the request fails with "other side closed" (seen in the lab on 5.10, ~5 s after an earlier
  // request). A status GET is idempotent: once more on a fresh connection.
  const r = await get().catch((e: Error & { cause?: { code?: string; name?: string } }) => {
    if (e.cause?.name === 'SocketError' || e.cause?.code === 'ECONNRESET') return get();
    throw e;
  });
  return r.json();
}

