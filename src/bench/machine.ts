// What the figures were measured on.
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import type { Machine } from './types';

export function machine(): Machine {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    kernel: os.release(),
    node: process.version,
    loadAvg: os.loadavg().map((x) => Math.round(x * 100) / 100),
    date: new Date().toISOString(),
  };
}

export const LAB_VM = 'qemu-system-x86_64 7.2, TCG (no KVM), single-threaded TCG, -cpu max, 2 vCPUs, 2 GiB, no NIC';

/** Which vipguard was measured: the commit and whether the tree had changes (read-only git), or $VIPGUARD_BENCH_REVISION. */
export function revision(root: string): string {
  if (process.env.VIPGUARD_BENCH_REVISION) return process.env.VIPGUARD_BENCH_REVISION;
  try {
    const git = (args: string[]) => execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const head = git(['rev-parse', '--short', 'HEAD']);
    return git(['status', '--porcelain', '--untracked-files=no']) ? `${head} with uncommitted changes` : head;
  } catch {
    return 'unknown (not a git checkout)';
  }
}
