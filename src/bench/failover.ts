// One failover run inside the lab VM: a fresh topology (three healthy backends), one system guarding it, steady
// client load through the VIP, backend b3 black-holed (or its listener killed) for `failMs`, then recovered; the
// kernel's table and connection table watched throughout. Returns the figures and a compact timeline.
// The `far` scenario is the control: b3 is healthy but far away (FAR_DELAY_MS more RTT) from before the system
// starts, nothing fails, and a system that takes b3 out during the window has made a false quarantine.
// Injection and recovery avoid execs while the load runs (see inject.ts); `injectMs`/`recoverMs` record their cost.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { Topology } from '../lab/topology';
import { analyzeFailover, outcomeIndex, parseVipguardLog } from './analyze';
import { cleanSlate } from './clean';
import { killListener, NftSession, restartListener } from './inject';
import { Load } from '../lab/load';
import { cpuMsOf, parseCpuTotals, parseNetstat, procKey } from './procfs';
import { sleep, waitUntil } from './proc';
import { keepalivedTimers, RunningSystem, startSystem, TCP_GUARD, type Guard } from './systems';
import { FAR_DELAY_MS, type FailoverRun, type FailoverScenario, type SystemName } from './types';
import { DestinationWatch } from './watch';

export interface FailoverOptions {
  scenario: FailoverScenario;
  system: SystemName;
  run: number;
  kernel: string;
  rate: number;
  failMs: number;
  clientTimeoutMs: number;
  /** load before the failure, ms */
  preMs?: number;
  /** where to keep the system's own log of the run */
  logDir?: string;
  log: (line: string) => void;
}

export const DEAD = 'b3';
export const EXPIRE_NODEST = '/proc/sys/net/ipv4/vs/expire_nodest_conn';

/** How long to wait, after recovery, for the system to put the backend back. */
export function restoreBoundMs(system: SystemName, guard: Guard = TCP_GUARD): number {
  const k = keepalivedTimers(false, guard);
  switch (system) {
    case 'ipvs': return 0;
    case 'keepalived-default': return (k.delayLoopS + k.connectTimeoutS + k.delayBeforeRetryS + k.connectTimeoutS + 10) * 1000;
    case 'keepalived-aggressive': return 15_000;
    case 'vipguard': case 'vipguard-syntimeout': return 60_000;
  }
}

/** After recovery, how long to go on watching before deciding whether there is a restore to wait for. */
export function observeAfterRecoveryMs(system: SystemName, guard: Guard = TCP_GUARD): number {
  if (system !== 'keepalived-default') return 2000;
  const k = keepalivedTimers(false, guard);
  // A check in flight at the recovery fails at most connect_timeout later, and can remove the server then (a failed
  // first check did so at once, without retries, in the lab's DNS_CHECK runs); later retries come delay_before_retry
  // apart: TCP_CHECK's one retry (1 s later) can still fail, DNS_CHECK's come 60 s later, to a recovered server.
  return (k.delayBeforeRetryS > k.connectTimeoutS ? k.connectTimeoutS + 1 : 2 * k.connectTimeoutS + k.delayBeforeRetryS + 1) * 1000;
}

/** Upper bound of one run's wall time, for the VM's timeout. */
export function failoverBudgetMs(system: SystemName, failMs: number, clientTimeoutMs: number, guard: Guard = TCP_GUARD): number {
  return 60_000 + 3000 + failMs + observeAfterRecoveryMs(system, guard) + restoreBoundMs(system, guard) + 1000 + clientTimeoutMs;
}

/** From now until the returned function is called: the system's own CPU and the whole VM's, % of one CPU. */
export function cpuMeter(sys: Pick<RunningSystem, 'pids'>): () => { systemCpuPct: number; vmCpuPct: number } {
  const sys0 = cpuMsOf(sys.pids());
  const vm0 = parseCpuTotals(fs.readFileSync('/proc/stat', 'utf8'));
  const at = performance.now();
  return () => {
    const vm1 = parseCpuTotals(fs.readFileSync('/proc/stat', 'utf8'));
    const wallMs = performance.now() - at;
    return {
      systemCpuPct: Math.round(((cpuMsOf(sys.pids()) - sys0) / wallMs) * 1000) / 10,
      vmCpuPct: Math.round(((vm1.busy - vm0.busy) / Math.max(1, vm1.total - vm0.total)) * os.cpus().length * 1000) / 10,
    };
  };
}

/**
 * After recovery: go on watching a while (a check begun during the failure can still take the recovered backend
 * out), then, if the backend went out of service at all since `fail0`, wait (bounded) until it is back.
 */
export async function awaitRestore(o: { scenario: string; system: SystemName; run: number; log: (l: string) => void }, watch: DestinationWatch,
  fail0: number, guard: Guard = TCP_GUARD): Promise<void> {
  await sleep(observeAfterRecoveryMs(o.system, guard));
  if (!watch.wentDownSince(fail0)) return;
  const bound = restoreBoundMs(o.system, guard);
  const restored = await waitUntil(() => (watch.weight() ?? -1) > 0, bound, 50);
  if (!restored) o.log(`${o.scenario} ${o.system} run ${o.run}: ${DEAD} not back in service ${Math.round(bound / 1000)} s after the observation window`);
  await sleep(1000);
}

/** Keeps everything the system printed during a run beside the results, as evidence. */
export function keepSystemLog(o: { logDir?: string; scenario: string; system: SystemName; run: number }, sys: Pick<RunningSystem, 'log'>): void {
  if (!o.logDir) return;
  fs.mkdirSync(o.logDir, { recursive: true });
  fs.writeFileSync(`${o.logDir}/${o.scenario}-${o.system}-run${o.run}.log`, sys.log().join('\n') + '\n');
}

/**
 * A fresh topology of three healthy backends on a clean slate (clean.ts: no TIME_WAIT socket or IPVS connection
 * entry of an earlier run); one retry after clearing whatever a failed run left behind. `clean` is the run's note.
 */
export async function topologyUp(log: (l: string) => void, opts: { udpPort?: number; clients?: number } = {}): Promise<{ topo: Topology; clean: string }> {
  const clean = cleanSlate();
  log(clean);
  const up = () => Topology.up({ backends: ['healthy', 'healthy', 'healthy'], ipv6: false, udpPort: opts.udpPort, clients: opts.clients });
  try {
    return { topo: await up(), clean };
  } catch (e) {
    log(`topology up failed, clearing and retrying: ${(e as Error).message}`);
    await Topology.downAny().catch(() => undefined);
    return { topo: await up(), clean };
  }
}

export async function runFailover(o: FailoverOptions): Promise<FailoverRun> {
  const preMs = o.preMs ?? 3000;
  const sysctlBefore = fs.readFileSync(EXPIRE_NODEST, 'utf8').trim();
  // Every system starts from the kernel's default (Debian: 0); vipguard sets 1 itself and gives it back on stop.
  fs.writeFileSync(EXPIRE_NODEST, '0');
  const { topo, clean } = await topologyUp(o.log);
  let sys: RunningSystem | undefined;
  let watch: DestinationWatch | undefined;
  let nft: NftSession | undefined;
  const notes: string[] = [clean];
  try {
    if (o.scenario === 'blackout') nft = new NftSession();
    if (o.scenario === 'far') await topo.set(DEAD, 'slow', FAR_DELAY_MS);
    sys = await startSystem(o.system, topo);
    const dead = topo.backend(DEAD);
    const epoch = performance.now();
    watch = new DestinationWatch(procKey(topo.vip.host, topo.vip.port), procKey(dead.ip, dead.port), epoch);
    const w = watch;
    if (!(await waitUntil(() => w.weight() === 1, 30_000, 100))) throw new Error(`${o.system}: ${DEAD} not in service at start (weight ${w.weight()})`);
    watch.start();
    const load = new Load(topo.vip.host, topo.vip.port, o.rate, o.clientTimeoutMs, epoch);
    const cpu = cpuMeter(sys);
    load.start();
    await sleep(preMs);

    const fail0 = watch.now();
    const failWall = Date.now();
    if (o.scenario === 'far') {
      // nothing fails: b3 stays far away for the whole window
    } else if (nft) {
      try {
        await nft.blackhole(dead.ip, true);
      } catch (e) {
        notes.push(`nft session failed (${(e as Error).message.split('\n')[0]}): injected through topology.sh instead`);
        await nft.close().catch(() => undefined);
        nft = undefined;
        await topo.set(DEAD, 'blackhole');
      }
    } else {
      await killListener(dead);
    }
    const fail1 = watch.now();
    const what = { blackout: 'black-holed', refusal: 'refusing', far: `answering ${FAR_DELAY_MS} ms late (healthy)` }[o.scenario];
    o.log(`${o.scenario} ${o.system} run ${o.run}: ${DEAD} ${what} (took ${Math.round(fail1 - fail0)} ms)`);
    await sleep(Math.max(0, o.failMs - (fail1 - fail0)));
    const rec0 = watch.now();
    let rec1: number;
    if (o.scenario === 'far') {
      rec1 = watch.now();
    } else if (nft) {
      await nft.blackhole(dead.ip, false);
      rec1 = watch.now();
    } else if (o.scenario === 'blackout') {
      await topo.set(DEAD, 'healthy');
      rec1 = watch.now();
    } else {
      rec1 = await restartListener(topo, dead, () => w.now());
    }
    // Keep watching a while: a check begun during the failure can still take the recovered backend out.
    await awaitRestore(o, watch, fail0);
    const connects = await load.stop();
    watch.stop();
    const { systemCpuPct, vmCpuPct } = cpu();
    const listenOverflows = parseNetstat(execFileSync('ip', ['netns', 'exec', 'vg-srv', 'cat', '/proc/net/netstat'], { encoding: 'utf8' }), 'TcpExt', 'ListenOverflows');
    const rep = await sys.report();
    keepSystemLog(o, sys);

    const decisions = o.system.startsWith('vipguard') ? parseVipguardLog(sys.log(), `${dead.ip}:${dead.port}`, failWall) : undefined;
    const fig = analyzeFailover({
      connects, kernel: watch.kernel, seen: watch.seen, fail0, fail1, rec0, rec1, rate: o.rate, backends: topo.backends.length,
    });
    const rel = (t: number) => Math.round((t - fail0) * 10) / 10;
    return {
      scenario: o.scenario, system: o.system, run: o.run, kernel: o.kernel,
      rateTarget: o.rate, rateAchieved: Math.round(load.achievedRate() * 10) / 10, maxLagMs: Math.round(load.maxLagMs),
      clientTimeoutMs: o.clientTimeoutMs, failureMs: Math.round(rec0 - fail0),
      connects: fig.connects, failed: fig.failed, slow2s: fig.slow2s, p50Ms: fig.p50Ms, p99Ms: fig.p99Ms,
      outsideBad: fig.outsideBad, landedOnDead: fig.landedOnDead, rescued: fig.rescued, rescuedP99Ms: fig.rescuedP99Ms, listenOverflows, systemCpuPct, vmCpuPct,
      stopKernelMs: fig.stopKernelMs, stopClientMs: fig.stopClientMs, restoreMs: fig.restoreMs,
      kernelTransitions: fig.kernelTransitions, injectMs: Math.round(fail1 - fail0), recoverMs: Math.round(rec1 - rec0),
      vipguardReaction: rep.reaction, vipguardDecisions: decisions, notes: [sys.description, ...notes, ...fig.notes, ...rep.notes],
      timeline: connects.map((c, i) => [rel(c.at), Math.round(c.ms * 10) / 10, outcomeIndex(c.outcome), fig.dead[i] ? 1 : 0]),
      kernelWeights: watch.kernel.map(([t, wt]) => [rel(t), wt]),
      recoveredAtMs: rel(rec1),
    };
  } finally {
    watch?.stop();
    await nft?.close().catch(() => undefined);
    await sys?.stop().catch((e: Error) => o.log(`stopping ${o.system}: ${e.message}`));
    await topo.down().catch((e: Error) => o.log(`topology down: ${e.message}`));
    fs.writeFileSync(EXPIRE_NODEST, sysctlBefore);
  }
}
