// One UDP failover run inside the lab VM (issue 13): the failover scenario's structure (failover.ts) for DNS through
// the UDP VIP. A fresh topology with the UDP service (three dnsmasq backends on port 53), one system guarding it, the
// DNS load of src/lab/dns-load.ts — lookups from fresh sockets under the C library's policy, and long-lived flows —
// then b3 black-holed (nft drop: no answer) or its dnsmasq killed (ICMP port unreachable) for `failMs`, recovered,
// and watched until the system has put it back. The kernel is watched as for TCP: /proc/net/ip_vs for b3's weight
// (or absence: keepalived and vipguard both remove a failed UDP destination), /proc/net/ip_vs_conn for the client
// ports IPVS sent to it.
import * as fs from 'node:fs';
import { analyzeUdpFailover } from './analyze-udp';
import { parseVipguardLog } from './analyze';
import { awaitRestore, cpuMeter, DEAD, EXPIRE_NODEST, keepSystemLog, observeAfterRecoveryMs, restoreBoundMs, topologyUp } from './failover';
import { killListener, NftSession, restartListener } from './inject';
import { procKey } from './procfs';
import { sleep, waitUntil } from './proc';
import { guardedService, RunningSystem, startSystem, type Guard } from './systems';
import { UDP_LOAD, type SystemName, type UdpFailoverRun, type UdpScenario } from './types';
import { DestinationWatch } from './watch';
import { DnsLoad, LOOKUP_OUTCOMES, RESOLVER_POLICY } from '../lab/dns-load';
import { udpProbe } from '../actuator/udp-probe';
import { destinationIdOf } from '../actuator/kernel';

export const UDP_PORT = 53;
export const DNS_GUARD: Guard = { protocol: 'udp', dnsName: UDP_LOAD.name };

export interface UdpFailoverOptions {
  scenario: UdpScenario;
  system: SystemName;
  run: number;
  kernel: string;
  /** lookups per second */
  rate: number;
  failMs: number;
  /** load before the failure, ms */
  preMs?: number;
  logDir?: string;
  log: (line: string) => void;
}

/** Upper bound of one run's wall time, for the VM's timeout: as failover.ts's, with two tries per lookup to wait for. */
export function udpFailoverBudgetMs(system: SystemName, failMs: number): number {
  return 60_000 + 3000 + failMs + observeAfterRecoveryMs(system, DNS_GUARD) + restoreBoundMs(system, DNS_GUARD) + 1000 +
    RESOLVER_POLICY.timeoutMs * RESOLVER_POLICY.attempts;
}

export async function runUdpFailover(o: UdpFailoverOptions): Promise<UdpFailoverRun> {
  const preMs = o.preMs ?? 3000;
  const sysctlBefore = fs.readFileSync(EXPIRE_NODEST, 'utf8').trim();
  // Every system starts from the kernel's default (Debian: 0); vipguard sets 1 itself and gives it back on stop.
  fs.writeFileSync(EXPIRE_NODEST, '0');
  const { topo, clean } = await topologyUp(o.log, { udpPort: UDP_PORT });
  let sys: RunningSystem | undefined;
  let watch: DestinationWatch | undefined;
  let nft: NftSession | undefined;
  let load: DnsLoad | undefined;
  const notes: string[] = [clean];
  try {
    if (o.scenario === 'udp-blackout') nft = new NftSession();
    sys = await startSystem(o.system, topo, DNS_GUARD);
    const svc = guardedService(topo, DNS_GUARD);
    const dead = topo.backend(DEAD);
    const epoch = performance.now();
    watch = new DestinationWatch(procKey(svc.host, svc.port), procKey(dead.ip, svc.backendPort), epoch, { protocol: 'UDP' });
    const w = watch;
    if (!(await waitUntil(() => w.weight() === 1, 30_000, 100))) throw new Error(`${o.system}: ${DEAD} not in the UDP service at start (weight ${w.weight()})`);
    watch.start();
    load = new DnsLoad({
      host: svc.host, port: svc.port, name: UDP_LOAD.name, rate: o.rate, flows: UDP_LOAD.flows, flowEveryMs: UDP_LOAD.flowEveryMs,
      flowWaitMs: UDP_LOAD.flowWaitMs, epoch,
    });
    const cpu = cpuMeter(sys);
    await load.start();
    await sleep(preMs);

    const fail0 = watch.now();
    const failWall = Date.now();
    if (nft) {
      await nft.blackhole(dead.ip, true);
    } else {
      // Its listener goes too, so that the fixture's `backend b3 healthy` starts both again (it restarts nothing
      // while one of a backend's servers is alive). The TCP service is not under load here.
      await killListener(dead, 'dnsmasq');
      await killListener(dead, 'httpd');
    }
    const fail1 = watch.now();
    o.log(`${o.scenario} ${o.system} run ${o.run}: ${DEAD} ${nft ? 'black-holed' : 'refusing (dnsmasq killed)'} (took ${Math.round(fail1 - fail0)} ms)`);
    await sleep(Math.max(0, o.failMs - (fail1 - fail0)));
    const rec0 = watch.now();
    let rec1: number;
    if (nft) {
      await nft.blackhole(dead.ip, false);
      rec1 = watch.now();
    } else {
      // Asked directly, not through the VIP: no system under test sees these queries.
      const answers = async () => (await udpProbe(destinationIdOf({ address: dead.ip, port: svc.backendPort }), { kind: 'dns', name: UDP_LOAD.name }, 300)).ok;
      rec1 = await restartListener(topo, dead, () => w.now(), answers);
    }
    await awaitRestore(o, watch, fail0, DNS_GUARD);
    const { lookups, flows } = await load.stop();
    watch.stop();
    const { systemCpuPct, vmCpuPct } = cpu();
    const rep = await sys.report();
    keepSystemLog(o, sys);
    const decisions = o.system.startsWith('vipguard') ? parseVipguardLog(sys.log(), `${dead.ip}:${svc.backendPort}`, failWall) : undefined;
    const fig = analyzeUdpFailover({
      lookups, flows, kernel: watch.kernel, seen: watch.seen, fail0, fail1, rec0, rec1, rate: o.rate, backends: topo.backends.length, deadIp: dead.ip,
    });
    const rel = (t: number) => Math.round((t - fail0) * 10) / 10;
    const { dead: landed, notes: figNotes, ...figures } = fig;
    return {
      scenario: o.scenario, system: o.system, run: o.run, kernel: o.kernel,
      rateTarget: o.rate, rateAchieved: Math.round(load.achievedRate() * 10) / 10, maxLagMs: Math.round(load.maxLagMs),
      clientTimeoutMs: RESOLVER_POLICY.timeoutMs, attempts: RESOLVER_POLICY.attempts, failureMs: Math.round(rec0 - fail0),
      ...figures, systemCpuPct, vmCpuPct, injectMs: Math.round(fail1 - fail0), recoverMs: Math.round(rec1 - rec0),
      vipguardReaction: rep.reaction, vipguardDecisions: decisions, notes: [sys.description, ...notes, ...figNotes, ...rep.notes],
      timeline: lookups.map((l, i) => [rel(l.at), Math.round(l.ms * 10) / 10, LOOKUP_OUTCOMES.indexOf(l.outcome), landed[i] ? 1 : 0, l.tries]),
      kernelWeights: watch.kernel.map(([t, wt]) => [rel(t), wt]),
      recoveredAtMs: rel(rec1),
    };
  } finally {
    if (load) await load.stop().catch(() => undefined);
    watch?.stop();
    await nft?.close().catch(() => undefined);
    await sys?.stop().catch((e: Error) => o.log(`stopping ${o.system}: ${e.message}`));
    await topo.down().catch((e: Error) => o.log(`topology down: ${e.message}`));
    fs.writeFileSync(EXPIRE_NODEST, sysctlBefore);
  }
}
