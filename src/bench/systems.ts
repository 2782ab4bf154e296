// The systems the failover scenarios compare, each started on the lab's topology (scripts/lab/topology.sh: VIP
// 10.99.0.1:80 over b1..b3) and stopped by PID:
//   ipvs                   the topology's IPVS service as is: nobody watches the backends
//   keepalived-default     Debian's keepalived 2.2.7, virtual_server with TCP_CHECK and every timer at its default
//   keepalived-aggressive  the same with delay_loop 1 s and connect_timeout 1 s
//   vipguard               `vipguard run` with a configuration naming only the service
// Each guards the topology's TCP service, or (Guard udp) its UDP DNS service (topology.sh --udp): keepalived then
// checks with DNS_CHECK, vipguard's service is `protocol: udp` with a DNS restore probe.
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

/** What a system guards: the topology's TCP service, or its UDP DNS service, checked by asking for `dnsName`. */
export type Guard = { protocol: 'tcp' } | { protocol: 'udp'; dnsName: string };
export const TCP_GUARD: Guard = { protocol: 'tcp' };

/** The guarded service's address and port, and the port its backends serve it on. */
export function guardedService(topo: Topology, guard: Guard): { host: string; port: number; backendPort: number } {
  if (guard.protocol === 'tcp') return { host: topo.vip.host, port: topo.vip.port, backendPort: topo.backends[0]?.port ?? 0 };
  const port = topo.status.udpPort;
  if (port === undefined) throw new Error('guarding the UDP service: the topology has none — build it with udpPort (topology.sh --udp)');
  return { host: topo.vip.host, port, backendPort: port };
}

/** Resolved keepalived 2.2.7 TCP_CHECK defaults (keepalived.conf(5)): what "defaults" means in the results. */
export const KEEPALIVED_DEFAULTS = { delayLoopS: 60, connectTimeoutS: 5, retry: 1, delayBeforeRetryS: 1, warmupS: 60 } as const;
/**
 * DNS_CHECK's own defaults (keepalived.conf(5)): retry 3 and delay_before_retry = delay_loop; the rest as above.
 * Seen in the lab (2.2.7): a server whose first check ever fails is removed at once, without those retries.
 */
export const KEEPALIVED_DNS_DEFAULTS = { delayLoopS: 60, connectTimeoutS: 5, retry: 3, delayBeforeRetryS: 60, warmupS: 60 } as const;

/** The timers a keepalived system runs with: its check's defaults, or delay_loop and connect_timeout at 1 s. */
export function keepalivedTimers(aggressive: boolean, guard: Guard = TCP_GUARD): { delayLoopS: number; connectTimeoutS: number; retry: number; delayBeforeRetryS: number } {
  const d = guard.protocol === 'udp' ? KEEPALIVED_DNS_DEFAULTS : KEEPALIVED_DEFAULTS;
  if (!aggressive) return d;
  // DNS_CHECK's delay_before_retry follows delay_loop, so it is 1 s too; TCP_CHECK's is 1 s anyway.
  return { delayLoopS: 1, connectTimeoutS: 1, retry: d.retry, delayBeforeRetryS: guard.protocol === 'udp' ? 1 : d.delayBeforeRetryS };
}

export function keepalivedConfig(topo: Topology, aggressive: boolean, guard: Guard = TCP_GUARD): string {
  const svc = guardedService(topo, guard);
  const timers = aggressive ? '  delay_loop 1\n' : '';
  const timeout = aggressive ? '      connect_timeout 1\n' : '';
  // DNS_CHECK asks its default (SOA of ".") unless told: the lab's dnsmasq answers only names under vipguard.test.
  const check = guard.protocol === 'udp'
    ? `    DNS_CHECK {\n      type A\n      name ${guard.dnsName}\n${timeout}    }\n`
    : `    TCP_CHECK {\n${timeout}    }\n`;
  const reals = topo.backends.map((b) => `  real_server ${b.ip} ${svc.backendPort} {
    weight 1
${check}  }
`).join('');
  return `# written by vipguard's benchmark (src/bench/systems.ts): health checks only, no VRRP
global_defs {
  router_id vipguard-bench
}
virtual_server ${svc.host} ${svc.port} {
${timers}  lvs_sched rr
  lvs_method NAT
  protocol ${guard.protocol.toUpperCase()}
${reals}}
`;
}

/** vipguard "at its defaults": only the service. Export and Prometheus are off (there is no collector in the lab)
 * and the endpoints take free ports; detection, rules, quarantine and reconcile are all the defaults. A UDP service
 * names its protocol and its restore probe (a DNS query for the name the backends answer), which have no default. */
export function vipguardDefaultConfig(topo: Topology, synTimeout = false, guard: Guard = TCP_GUARD): string {
  if (guard.protocol === 'udp') {
    const svc = guardedService(topo, guard);
    return labConfig({ address: svc.host, port: svc.port, name: 'dns' }, {
      services: [{ name: 'dns', address: svc.host, port: svc.port, protocol: 'udp', probe: { dns: guard.dnsName } }],
    });
  }
  return labConfig({ address: topo.vip.host, port: topo.vip.port }, synTimeout ? { actuator: { synTimeout: { enabled: true } } } : {});
}

/** ipvsadm's flag for a protocol's virtual service. */
const ipvsadmFlag = (guard: Guard) => (guard.protocol === 'udp' ? '-u' : '-t');

function ipvsServicePresent(vip: string, guard: Guard): boolean {
  try {
    return execFileSync('ipvsadm', ['-Ln', ipvsadmFlag(guard), vip], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).includes('->');
  } catch {
    return false;
  }
}

export async function startSystem(name: SystemName, topo: Topology, guard: Guard = TCP_GUARD): Promise<RunningSystem> {
  const svc = guardedService(topo, guard);
  const vip = `${guard.protocol}/${svc.host}:${svc.port}`;
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
      return startKeepalived(name, topo, guard);
    case 'vipguard':
    case 'vipguard-syntimeout':
      if (name === 'vipguard-syntimeout' && guard.protocol !== 'tcp') throw new Error('vipguard-syntimeout tunes TCP handshakes: it has nothing to do for a UDP service — leave it out of UDP scenarios');
      return startVipguardSystem(topo, name === 'vipguard-syntimeout', guard);
  }
}

async function startKeepalived(name: SystemName, topo: Topology, guard: Guard): Promise<RunningSystem> {
  const svc = guardedService(topo, guard);
  const vip = `${svc.host}:${svc.port}`;
  if (ipvsServicePresent(vip, guard)) execFileSync('ipvsadm', ['-D', ipvsadmFlag(guard), vip]);
  const dir = tempDir('vg-bench-keepalived-');
  const conf = path.join(dir, 'keepalived.conf');
  const text = keepalivedConfig(topo, name === 'keepalived-aggressive', guard);
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
      n = (execFileSync('ipvsadm', ['-Ln', ipvsadmFlag(guard), vip], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).match(/->\s+\d/g) ?? []).length;
    } catch { /* not there yet */ }
    if (n === topo.backends.length) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const checkersPid = () => { try { return Number(fs.readFileSync(path.join(dir, 'checkers.pid'), 'utf8').trim()); } catch { return 0; } };
  const t = keepalivedTimers(name === 'keepalived-aggressive', guard);
  const check = guard.protocol === 'udp' ? `DNS_CHECK (type A, name ${guard.dnsName})` : 'TCP_CHECK';
  const description = `keepalived ${guard.protocol}/${vip}: ${check} ${name === 'keepalived-aggressive' ? '' : 'at defaults — '}delay_loop ${t.delayLoopS} s, ` +
    `connect_timeout ${t.connectTimeoutS} s, retry ${t.retry}, delay_before_retry ${t.delayBeforeRetryS} s${name === 'keepalived-aggressive' ? ' (retry and delay_before_retry: the check\'s defaults)' : ''}, failed servers removed`;
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

async function startVipguardSystem(topo: Topology, synTimeout: boolean, guard: Guard): Promise<RunningSystem> {
  const vg: VipguardProc = await startVipguard(vipguardDefaultConfig(topo, synTimeout, guard));
  const svc = guardedService(topo, guard);
  return {
    name: synTimeout ? 'vipguard-syntimeout' : 'vipguard',
    description: (guard.protocol === 'udp'
      ? `vipguard run: service dns=udp/${svc.host}:${svc.port} with probe { dns: ${guard.dnsName} } only`
      : `vipguard run: service web=${svc.host}:${svc.port} only`) + ' (rules, deadlines, quarantine, reconcile at defaults; export off)' +
      (synTimeout ? '; actuator.synTimeout enabled' : ''),
    report: async () => {
      const st = await vipguardStatus(vg);
      // Decisions are parsed from the full log by the caller; here only what says how it ran.
      const notes = vg.proc.lines.filter((l) => /INACTIVE|SYN timeout|synTimeout|sock_ops|receiver: tracing|not traced/.test(l)).map((l) => l.replace(/^.*? vipguard: /, ''));
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
