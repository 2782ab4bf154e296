// One fleet run inside the lab VM (issue 17, docs/fleet.md): three client hosts (the topology's network namespaces
// c1–c3, each with its own IPVS table and VIP over the same three backends), each sending `rate` connects/s — a
// rate low enough that each host's own detection is slow: with rr over three backends a host reaches b3 once every
// three connects. After a warm-up long enough for the fleet rule's inputs, b3 is black-holed for `failMs` (one
// `nft -i` session, as the blackout scenario), then recovered, and watched until every host has it back.
//   ipvs            nobody watches the backends (only when --systems names it)
//   vipguard        one vipguard per host (src/lab/fleet.ts, exactly the fleet lab test's), embedded rules only
//   vipguard-fleet  the same plus the central Prometheus with docs/fleet.md's rule, delivering to all three
// The kernels are watched independently of every system: each host's /proc/PID/net/ip_vs every 25 ms and
// ip_vs_conn every 250 ms, through a `sleep` anchored in its namespace (no exec per poll; the same for every system).
import * as fs from 'node:fs';
import { analyzeFleet, firstAlertPost, firstQuarantine, type FleetClientObservations } from './analyze-fleet';
import { outcomeIndex, parseVipguardLog } from './analyze';
import { cpuMeter, DEAD, topologyUp } from './failover';
import { NftSession } from './inject';
import { procKey } from './procfs';
import { Proc, sleep, waitUntil, waitUntilAsync } from './proc';
import { FLEET, type FleetRun, type FleetSystem } from './types';
import { DestinationWatch } from './watch';
import { getJson } from '../lab/daemon';
import { Fleet, FLEET_ALERT, FLEET_LAB_INTERVALS } from '../lab/fleet';
import { Load } from '../lab/load';

export interface FleetOptions {
  system: FleetSystem;
  run: number;
  kernel: string;
  /** connects per second per client host */
  rate: number;
  failMs: number;
  clientTimeoutMs: number;
  logDir?: string;
  log: (line: string) => void;
}

/**
 * Load before the failure. The fleet rule counts a host against b3 only once its `increase()` over the outcome
 * series has two samples and the host has tried b3 in the window (docs/fleet.md): at 1/s over three backends every
 * host reaches b3 every 3 s, so 15 s gives each several tries and Prometheus (1 s scrapes) a dozen samples. Both
 * vipguard systems get the same; vipguard-fleet also waits (bounded) until the rule counts all three hosts on b3.
 */
export const FLEET_WARMUP_MS = 15_000;
const RULE_READY_BOUND_MS = 60_000;
/** After recovery: how long to wait for every host to have b3 back (the fleet alert stays firing for its window, 1 m). */
const RESTORE_BOUND_MS: Record<FleetSystem, number> = { ipvs: 0, vipguard: 60_000, 'vipguard-fleet': 150_000 };

/** Upper bound of one run's wall time, for the VM's timeout. */
export function fleetBudgetMs(system: FleetSystem, failMs: number, clientTimeoutMs: number): number {
  const start = system === 'ipvs' ? 60_000 : 3 * 150_000 + (system === 'vipguard-fleet' ? 180_000 : 0); // topology; vipguards, Prometheus
  return start + FLEET_WARMUP_MS + (system === 'vipguard-fleet' ? RULE_READY_BOUND_MS : 0) + failMs + 2000 + RESTORE_BOUND_MS[system] + clientTimeoutMs + 30_000;
}

/** A process parked in a client host's namespace, whose /proc/PID/net shows that host's IPVS tables to the watch. */
function anchor(netns: string): Proc {
  return Proc.start(`anchor ${netns}`, 'nsenter', [`--net=/run/netns/${netns}`, 'sleep', '3600']);
}

export async function runFleet(o: FleetOptions): Promise<FleetRun> {
  const { topo, clean } = await topologyUp(o.log, { clients: FLEET.clients });
  let fleet: Fleet | undefined;
  let nft: NftSession | undefined;
  const anchors: Proc[] = [];
  const watches: DestinationWatch[] = [];
  const loads: Load[] = [];
  const notes: string[] = [clean];
  try {
    nft = new NftSession();
    if (topo.clients.length !== FLEET.clients) throw new Error(`fleet: the topology has ${topo.clients.length} client hosts, not ${FLEET.clients}`);
    for (const c of topo.clients) anchors.push(anchor(c.netns));
    if (o.system !== 'ipvs') {
      fleet = new Fleet(topo);
      await fleet.startVipguards();
      if (o.system === 'vipguard-fleet') await fleet.startPrometheus(FLEET_LAB_INTERVALS);
    }
    const dead = topo.backend(DEAD);
    const epoch = performance.now();
    for (const [i, c] of topo.clients.entries()) {
      watches.push(new DestinationWatch(procKey(c.vip.host, c.vip.port), procKey(dead.ip, dead.port), epoch, { pid: anchors[i].pid, tableMs: 25 }));
    }
    if (!(await waitUntil(() => watches.every((w) => w.weight() === 1), 30_000, 100))) {
      throw new Error(`${o.system}: ${DEAD} not in service on every client host at start (${watches.map((w) => w.weight()).join(', ')})`);
    }
    for (const w of watches) w.start();
    const watch = watches[0];
    const pids = () => [...(fleet?.clients.map((x) => x.vg.proc.pid ?? -1) ?? []), fleet?.prom?.proc.pid ?? -1].filter((p) => p > 0);
    const cpu = cpuMeter({ pids });
    // Each host's table is fresh, so its rr starts at b1: hosts started together would meet b3 in the same second,
    // every round, and each detect it alone about as soon as the first. Started one connect interval apart, their
    // turns on b3 are spread evenly over the round (at 1/s: 1 s apart), as independent clients' are on average.
    for (const [i, c] of topo.clients.entries()) {
      if (i > 0) await sleep(1000 / o.rate);
      const load = new Load(c.vip.host, c.vip.port, o.rate, o.clientTimeoutMs, epoch).inNetns(c.netns);
      load.start();
      loads.push(load);
    }
    await sleep(FLEET_WARMUP_MS);
    if (fleet?.prom) {
      const f = fleet;
      const ready = await waitUntilAsync(async () => (await f.backendSeries('backend:vipguard_clients_connecting:count1m', dead.ip)) === String(FLEET.clients), RULE_READY_BOUND_MS);
      if (!ready) notes.push(`the fleet rule did not count all ${FLEET.clients} hosts on ${DEAD} within ${RULE_READY_BOUND_MS / 1000} s of warm-up more: failed on without it`);
    }
    const warmupMs = Math.round(watch.now());

    const fail0 = watch.now();
    const failWall = Date.now();
    await nft.blackhole(dead.ip, true);
    const fail1 = watch.now();
    o.log(`fleet ${o.system} run ${o.run}: ${DEAD} black-holed after ${(warmupMs / 1000).toFixed(1)} s of load (took ${Math.round(fail1 - fail0)} ms)`);
    await sleep(Math.max(0, o.failMs - (fail1 - fail0)));
    // While it is still failing: when the fleet alert became active at Prometheus (wall clock → the clients' clock).
    let alertActiveAt: number | undefined;
    if (fleet?.prom) {
      const alerts = (await getJson(`${fleet.promBase}/api/v1/alerts`).catch(() => undefined))?.data?.alerts as { labels: { alertname: string }; activeAt: string }[] | undefined;
      const a = alerts?.find((x) => x.labels.alertname === FLEET_ALERT);
      if (a) alertActiveAt = loads[0].fromWall(Date.parse(a.activeAt));
    }
    const rec0 = watch.now();
    await nft.blackhole(dead.ip, false);
    const rec1 = watch.now();
    await awaitFleetRestore(o, watches, fleet, fail0);
    const connects = await Promise.all(loads.map((l) => l.stop()));
    for (const w of watches) w.stop();
    const { systemCpuPct, vmCpuPct } = cpu();
    if (fleet && o.logDir) {
      fs.mkdirSync(o.logDir, { recursive: true });
      fs.writeFileSync(`${o.logDir}/fleet-${o.system}-run${o.run}.log`, fleetLog(fleet).join('\n') + '\n');
    }

    const destKey = `${dead.ip}:${dead.port}`;
    const alertAt = (i: number) => {
      if (!fleet?.prom) return undefined;
      const wall = firstAlertPost(fleet.clients[i].vg.lines, failWall);
      return wall === undefined ? null : loads[0].fromWall(wall);
    };
    const obs: FleetClientObservations[] = topo.clients.map((c, i) => ({
      name: c.name, connects: connects[i], kernel: watches[i].kernel, seen: watches[i].seen,
      quarantinedBy: fleet ? firstQuarantine(fleet.clients[i].vg.lines, destKey, failWall, FLEET_ALERT)?.by : undefined,
      alertAt: alertAt(i),
    }));
    if (fleet?.prom) notes.push(await scrapeHealth(fleet, Math.ceil((performance.now() - epoch) / 1000)));
    const { dead: landed, ...fig } = analyzeFleet({ clients: obs, fail0, fail1, rec0, rec1, rate: o.rate, backends: topo.backends.length });
    const rel = (t: number) => Math.round((t - fail0) * 10) / 10;
    const firstAt = fig.firstFailureMs === null ? undefined : fail0 + fig.firstFailureMs;
    const perClient = <T>(f: (i: number) => T) => Object.fromEntries(topo.clients.map((c, i) => [c.name, f(i)]));
    return {
      scenario: 'fleet', system: o.system, run: o.run, kernel: o.kernel,
      rateTarget: o.rate, rateAchieved: Math.round((loads.reduce((a, l) => a + l.achievedRate(), 0) / loads.length) * 100) / 100,
      maxLagMs: Math.round(Math.max(...loads.map((l) => l.maxLagMs))), clientTimeoutMs: o.clientTimeoutMs, warmupMs,
      prometheus: fleet?.prom ? { ...FLEET_LAB_INTERVALS } : undefined,
      alertActiveMs: o.system !== 'vipguard-fleet' ? undefined : alertActiveAt === undefined || firstAt === undefined ? null : Math.round(alertActiveAt - firstAt),
      failureMs: Math.round(rec0 - fail0), injectMs: Math.round(fail1 - fail0), recoverMs: Math.round(rec1 - rec0),
      systemCpuPct, vmCpuPct, ...fig, notes: [describe(o.system), ...notes, ...fig.notes],
      vipguardDecisions: fleet ? perClient((i) => parseVipguardLog(fleet!.clients[i].vg.lines, destKey, failWall)) : undefined,
      timeline: perClient((i) => connects[i].map((c, j) => [rel(c.at), Math.round(c.ms * 10) / 10, outcomeIndex(c.outcome), landed[i][j] ? 1 : 0] as [number, number, number, number])),
      kernelWeights: perClient((i) => watches[i].kernel.map(([t, w]) => [rel(t), w] as [number, number])),
      recoveredAtMs: rel(rec1),
    };
  } finally {
    await Promise.all(loads.map((l) => l.stop().catch(() => undefined)));
    for (const w of watches) w.stop();
    await nft?.close().catch(() => undefined);
    await fleet?.stop().catch((e: Error) => o.log(`stopping the fleet: ${e.message}`));
    await Promise.all(anchors.map((a) => a.stop(2000)));
    await topo.down().catch((e: Error) => o.log(`topology down: ${e.message}`));
  }
}

function describe(system: FleetSystem): string {
  const { scrapeS, evalS } = FLEET_LAB_INTERVALS;
  switch (system) {
    case 'ipvs': return `${FLEET.clients} client hosts, each its own IPVS service (rr, NAT) over b1..b3; nothing watches them`;
    case 'vipguard': return `${FLEET.clients} client hosts, one vipguard each (embedded rules at their defaults, receiver /metrics on, unscraped); no Prometheus`;
    case 'vipguard-fleet': return `${FLEET.clients} client hosts, one vipguard each, plus the central Prometheus 2.42 with docs/fleet.md's rule ` +
      `(scrape ${scrapeS} s, evaluation ${evalS} s, resend delay at its default 1 m) delivering to every vipguard's /api/v2/alerts`;
  }
}

/**
 * After recovery: watch 2 s more (a decision begun during the failure can still take b3 out), then, if any host took
 * it out, wait (bounded) until every host has it back — with the fleet rule also until the alert has resolved, since
 * a resend of the still-firing alert can quarantine it again (docs/fleet.md, "A backend back while the alert still
 * fires") — and 2 s more to see it stay.
 */
async function awaitFleetRestore(o: FleetOptions, watches: DestinationWatch[], fleet: Fleet | undefined, fail0: number): Promise<void> {
  await sleep(2000);
  if (!watches.some((w) => w.wentDownSince(fail0))) return;
  const deadline = performance.now() + RESTORE_BOUND_MS[o.system];
  const firing = async () => (fleet?.prom ? (await fleet.query(`ALERTS{alertname="${FLEET_ALERT}"}`).catch(() => [1])).length > 0 : false);
  const done = await waitUntilAsync(async () => watches.every((w) => (w.weight() ?? -1) > 0) && !(await firing()), RESTORE_BOUND_MS[o.system]);
  if (!done) o.log(`fleet ${o.system} run ${o.run}: ${DEAD} not back on every host (or the alert still firing) ${Math.round(RESTORE_BOUND_MS[o.system] / 1000)} s after recovery`);
  if (performance.now() < deadline) await sleep(2000);
}

/**
 * How many of Prometheus's scrapes of the receivers failed over the run (`up` = 0): with the lab's 1 s interval the
 * scrape timeout is 1 s too, and a mutual-TLS scrape of a busy guest can miss it, leaving the rule without a sample.
 */
async function scrapeHealth(fleet: Fleet, seconds: number): Promise<string> {
  const q = async (expr: string) => Number((await fleet.query(expr).catch(() => []))[0]?.value[1] ?? NaN);
  const total = await q(`sum(count_over_time(up{job="vipguard-receiver"}[${seconds}s]))`);
  const ok = await q(`sum(sum_over_time(up{job="vipguard-receiver"}[${seconds}s]))`);
  return `Prometheus scrapes of the receivers over the run: ${total}, failed ${total - ok}`;
}

/** Every vipguard's log and Prometheus's, one after another, for the run's record. */
function fleetLog(fleet: Fleet): string[] {
  return [
    ...fleet.clients.flatMap((x) => [`--- vipguard ${x.c.name}`, ...x.vg.lines]),
    ...(fleet.prom ? ['--- prometheus', ...fleet.prom.lines] : []),
  ];
}
