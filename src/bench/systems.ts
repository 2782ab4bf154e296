// The systems the failover scenarios compare, each started on the lab's topology (scripts/lab/topology.sh: VIP
// 10.99.0.1:80 over b1..b3) and stopped by PID:
//   ipvs                   the topology's IPVS service as is: nobody watches the backends
//   keepalived-default     Debian's keepalived 2.2.7, virtual_server with TCP_CHECK and every timer at its default
//   keepalived-aggressive  the same with delay_loop 1 s and connect_timeout 1 s
//   vipguard               `vipguard run` with a configuration naming only the service
// keepalived builds its own virtual server, so the topology's is removed first; topology.sh down removes whatever
// is left either way.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Topology } from '../lab/topology';
import { Proc, VipguardProc, startVipguard, tempDir, vipguardStatus } from './proc';
import type { SystemName } from './types';
import { labConfig } from '../lab/vipguard-process';

export interface RunningSystem {
  name: SystemName;
  /** the exact configuration, for the record */
  description: string;
  /** before stopping: what the system says about itself (vipguard: reaction times) */
  report(): Promise<{ reaction?: { n: number; p50?: number; p99?: number; max?: number }; notes: string[] }>;
  /** everything the system printed (kept with the results as evidence) */
  log(): string[];
  /** vipguard: GET /api/vipguard/status now (undefined when it did not answer); absent for the other systems */
  status?(): Promise<Record<string, unknown> | undefined>;
  /** its processes, for CPU accounting */
  pids(): number[];
  stop(): Promise<void>;
}

/** Resolved keepalived 2.2.7 TCP_CHECK defaults (keepalived.conf(5)): what "defaults" means in the results. */
export const KEEPALIVED_DEFAULTS = { delayLoopS: 60, connectTimeoutS: 5, retry: 1, delayBeforeRetryS: 1, warmupS: 60 } as const;

export function keepalivedConfig(topo: Topology, aggressive: boolean): string {
  const timers = aggressive ? '  delay_loop 1\n' : '';
  const check = aggressive ? '      connect_timeout 1\n' : '';
  const reals = topo.backends.map((b) => `  real_server ${b.ip} ${b.port} {
    weight 1
    TCP_CHECK {
${check}    }
  }
`).join('');
  return `# written by vipguard's benchmark (src/bench/systems.ts): health checks only, no VRRP
global_defs {
  router_id vipguard-bench
}
virtual_server ${topo.vip.host} ${topo.vip.port} {
${timers}  lvs_sched rr
  lvs_method NAT
  protocol TCP
${reals}}
`;
}

/** vipguard "at its defaults": only the service. Export and Prometheus are off (there is no collector in the lab)
 * and the endpoints take free ports; detection, rules, quarantine and reconcile are all the defaults. */
export function vipguardDefaultConfig(topo: Topology, synTimeout = false): string {
  return labConfig({ address: topo.vip.host, port: topo.vip.port }, synTimeout ? { actuator: { synTimeout: { enabled: true } } } : {});
}

function ipvsServicePresent(vip: string): boolean {
  try {
    return execFileSync('ipvsadm', ['-Ln', '-t', vip], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).includes('->');
  } catch {
    return false;
  }
}

export async function startSystem(name: SystemName, topo: Topology): Promise<RunningSystem> {
  const vip = `${topo.vip.host}:${topo.vip.port}`;
  switch (name) {
    case 'ipvs':
      return {
        name, description: `IPVS ${vip} rr, NAT, ${topo.backends.length} destinations of weight 1; nothing watches them`,
        report: async () => ({ notes: [] }),
        log: () => [],
        pids: () => [],
        stop: async () => {},
      };
    case 'keepalived-default':
    case 'keepalived-aggressive':
      return startKeepalived(name, topo);
    case 'vipguard':
    case 'vipguard-syntimeout':
      return startVipguardSystem(topo, name === 'vipguard-syntimeout');
  }
}

async function startKeepalived(name: SystemName, topo: Topology): Promise<RunningSystem> {
  const vip = `${topo.vip.host}:${topo.vip.port}`;
  if (ipvsServicePresent(vip)) execFileSync('ipvsadm', ['-D', '-t', vip]);
  const dir = tempDir('vg-bench-keepalived-');
  const conf = path.join(dir, 'keepalived.conf');
  const text = keepalivedConfig(topo, name === 'keepalived-aggressive');
  fs.writeFileSync(conf, text);
  // -n: stay in the foreground (its PID is the one we end); -C: health checkers only; -l -D: log to the console.
  const proc = Proc.start(name, 'keepalived', ['-n', '-C', '-l', '-D', '-G', '-f', conf,
    '-p', path.join(dir, 'keepalived.pid'), '-c', path.join(dir, 'checkers.pid')]);
  // Ready when the virtual server carries every real server (keepalived starts them up; alpha mode is off).
  const deadline = performance.now() + 30_000;
  while (performance.now() < deadline) {
    if (!proc.running) throw new Error(`keepalived exited at start:\n${proc.lines.slice(-20).join('\n')}`);
    let n = 0;
    try {
      n = (execFileSync('ipvsadm', ['-Ln', '-t', vip], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).match(/->\s+\d/g) ?? []).length;
    } catch { /* not there yet */ }
    if (n === topo.backends.length) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const checkersPid = () => { try { return Number(fs.readFileSync(path.join(dir, 'checkers.pid'), 'utf8').trim()); } catch { return 0; } };
  const d = KEEPALIVED_DEFAULTS;
  const description = name === 'keepalived-aggressive'
    ? `keepalived ${vip}: TCP_CHECK delay_loop 1 s, connect_timeout 1 s, retry ${d.retry}, delay_before_retry ${d.delayBeforeRetryS} s (defaults), failed servers removed`
    : `keepalived ${vip}: TCP_CHECK at defaults — delay_loop ${d.delayLoopS} s, connect_timeout ${d.connectTimeoutS} s, retry ${d.retry}, delay_before_retry ${d.delayBeforeRetryS} s, failed servers removed`;
  return {
    name, description,
    report: async () => ({ notes: proc.lines.filter((l) => /Removing service|Adding service/i.test(l)).slice(-6) }),
    log: () => [...proc.lines],
    pids: () => [proc.pid, checkersPid()].filter((p) => p > 0),
    stop: async () => {
      const child = checkersPid();
      await proc.stop(10_000);
      // The checker child normally leaves with its parent; if it did not, end it by the PID it wrote.
      if (child > 0) {
        try {
          if (fs.readFileSync(`/proc/${child}/cmdline`, 'utf8').includes('keepalived')) process.kill(child, 'SIGKILL');
        } catch { /* gone */ }
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startVipguardSystem(topo: Topology, synTimeout: boolean): Promise<RunningSystem> {
  const vg: VipguardProc = await startVipguard(vipguardDefaultConfig(topo, synTimeout));
  return {
    name: synTimeout ? 'vipguard-syntimeout' : 'vipguard',
    description: `vipguard run: service web=${topo.vip.host}:${topo.vip.port} only (rules, deadlines, quarantine, reconcile at defaults; export off)` +
      (synTimeout ? '; actuator.synTimeout enabled' : ''),
    report: async () => {
      const st = await vipguardStatus(vg);
      // Decisions are parsed from the full log by the caller; here only what says how it ran.
      const notes = vg.proc.lines.filter((l) => /INACTIVE|SYN timeout|synTimeout|sock_ops/.test(l)).map((l) => l.replace(/^.*? vipguard: /, ''));
      return { reaction: st?.reactionMs as { n: number; p50?: number; p99?: number; max?: number } | undefined, notes };
    },
    log: () => [...vg.proc.lines],
    status: () => vipguardStatus(vg),
    pids: () => [vg.proc.pid],
    stop: async () => {
      await vg.proc.stop();
      fs.rmSync(vg.dir, { recursive: true, force: true });
    },
  };
}
