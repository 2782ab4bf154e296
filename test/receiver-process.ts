// `vipguard run --only receiver` as a real child process, for the fault tests (test/host, test/lab): ready when it
// says what it traces. (src/lab/vipguard-process.ts waits for the actuator's endpoints, which this one has none of.)
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from '../src/common/paths';
import { waitFor } from './helpers';

export interface Child { proc: ChildProcess; lines: string[]; exited: Promise<number | null> }

export async function startReceiverProcess(configPath: string, readyTimeoutMs = 60_000): Promise<Child> {
  const proc = spawn(process.execPath, [path.join(REPO_ROOT, 'dist/src/cli/main.js'), 'run', '--config', configPath, '--only', 'receiver'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const onData = (b: Buffer) => { for (const l of b.toString().split('\n')) if (l) lines.push(l); };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<number | null>((r) => proc.on('exit', (c) => r(c)));
  try {
    await waitFor(() => lines.some((l) => /receiver: tracing/.test(l)) || proc.exitCode !== null, readyTimeoutMs, 'vipguard to start');
  } catch (e) {
    proc.kill('SIGKILL');
    throw new Error(`${(e as Error).message}:\n${lines.join('\n')}`);
  }
  if (proc.exitCode !== null) throw new Error(`vipguard exited ${proc.exitCode}:\n${lines.join('\n')}`);
  await new Promise((r) => setTimeout(r, 300)); // its SIGHUP handler is installed right after start() returns
  return { proc, lines, exited };
}

export async function stopChild(c: Child | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!c || c.proc.exitCode !== null || c.proc.signalCode !== null) return;
  c.proc.kill(signal);
  const t = setTimeout(() => c.proc.kill('SIGKILL'), 15_000);
  await c.exited;
  clearTimeout(t);
}

export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}
