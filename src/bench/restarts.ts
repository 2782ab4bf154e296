// One restart run inside the lab VM (issue 15): a fresh topology, one system guarding it, steady client load through
// the VIP, and listeners killed (SYN → RST) and started again on a schedule:
//   rolling   b1, b2, b3 one after another, each down ROLLING.downMs, each kill ROLLING.everyMs after the previous
//   flapping  b3 down FLAPPING.downMs, up FLAPPING.upMs, in a loop for FLAPPING.forMs
// Down is timed from the kill's completion to the restart; up from the first accepted connect to the next kill, so
// a slow restart under TCG stretches the schedule instead of shortening a phase. Every backend's weight is watched
// in /proc/net/ip_vs; vipguard's panic from its status endpoint (polled) and its log.
import * as fs from 'node:fs';
import { analyzeRestarts, logShowsPanic, statusShowsPanic, type Outage } from './analyze-restarts';
import { outcomeIndex } from './analyze';
import { topologyUp } from './failover';
import { killListener, startListener } from './inject';
import { Load } from '../lab/load';
import { cpuMsOf, procKey } from './procfs';
import { sleep, waitUntil } from './proc';
import { RunningSystem, startSystem } from './systems';
import { FLAPPING, ROLLING, type RestartRun, type RestartScenario, type SystemName } from './types';
import { ServiceWatch } from './watch';

export interface RestartOptions {
  scenario: RestartScenario;
  system: SystemName;
  run: number;
  kernel: string;
  rate: number;
  clientTimeoutMs: number;
  logDir?: string;
  log: (line: string) => void;
}

const EXPIRE_NODEST = '/proc/sys/net/ipv4/vs/expire_nodest_conn';
const PRE_MS = 3000;
/** After the last return: long enough for a check begun during an outage to act, and for keepalived's 1 s check
 * or vipguard's 1 s hold + 0.5 s probe to put the backend back. */
const TAIL_MIN_MS = 3000;
/** …and at most this long waiting for every backend to be back (a flapping backend may be held at a high level). */
const TAIL_MAX_MS = 30_000;
const STATUS_EVERY_MS = 1000;

/** Upper bound of one run's wall time, for the VM's timeout. */
export function restartBudgetMs(scenario: RestartScenario, clientTimeoutMs: number): number {
  // System start and topology (≤ 60 s under TCG), the schedule with each restart allowed 10 s, the tail.
  const schedule = scenario === 'rolling'
    ? ROLLING.backends.length * (ROLLING.everyMs + 10_000)
    : FLAPPING.forMs + Math.ceil(FLAPPING.forMs / (FLAPPING.downMs + FLAPPING.upMs)) * 10_000;
  return 60_000 + PRE_MS + schedule + TAIL_MAX_MS + clientTimeoutMs + 5000;
}

export async function runRestarts(o: RestartOptions): Promise<RestartRun> {
  const sysctlBefore = fs.readFileSync(EXPIRE_NODEST, 'utf8').trim();
  fs.writeFileSync(EXPIRE_NODEST, '0'); // as in the failover runs: every system starts from the kernel's default
  const { topo, clean } = await topologyUp(o.log);
  let sys: RunningSystem | undefined;
  let watch: ServiceWatch | undefined;
  let polling = false;
  let statusPoll: Promise<void> | undefined;
  const notes: string[] = [clean];
  try {
    sys = await startSystem(o.system, topo);
    const keys = new Map(topo.backends.map((b) => [procKey(b.ip, b.port), b.name]));
    const epoch = performance.now();
    watch = new ServiceWatch(procKey(topo.vip.host, topo.vip.port), [...keys.keys()], epoch);
    const w = watch;
    if (!(await waitUntil(() => [...w.weights().values()].every((x) => x === 1), 30_000, 100))) {
      throw new Error(`${o.system}: not every backend in service at start (${[...w.weights()].map(([k, x]) => `${keys.get(k)} ${x}`).join(', ')})`);
    }
    watch.start();
    let panicSeen = false;
    const s = sys;
    if (s.status) {
      polling = true;
      statusPoll = (async () => {
        while (polling) {
          if (statusShowsPanic(await s.status!())) panicSeen = true;
          await sleep(STATUS_EVERY_MS);
        }
      })();
    }
    const load = new Load(topo.vip.host, topo.vip.port, o.rate, o.clientTimeoutMs, epoch);
    const cpu0 = { sys: cpuMsOf(sys.pids()), at: performance.now() };
    load.start();
    await sleep(PRE_MS);

    const outages: Outage[] = [];
    const t0 = w.now();
    const until = async (t: number) => { const d = t - w.now(); if (d > 0) await sleep(d); };
    const cycle = async (name: string, downMs: number): Promise<Outage> => {
      const b = topo.backend(name);
      const killAt = w.now();
      await killListener(b);
      const down = w.now();
      await until(down + downMs);
      const upAt = w.now();
      const back = await startListener(b, () => w.now());
      const out = { backend: name, killAt, down, upAt, back };
      outages.push(out);
      o.log(`${o.scenario} ${o.system} run ${o.run}: ${name} down ${Math.round(upAt - down)} ms (kill took ${Math.round(down - killAt)} ms), ` +
        `accepting ${Math.round(back - upAt)} ms after its restart began`);
      return out;
    };
    if (o.scenario === 'rolling') {
      for (const [i, name] of ROLLING.backends.entries()) {
        const planned = t0 + i * ROLLING.everyMs;
        if (w.now() > planned + 100) notes.push(`${name} killed ${Math.round(w.now() - planned)} ms late: the previous restart took that long`);
        await until(planned);
        await cycle(name, ROLLING.downMs);
      }
    } else {
      while (w.now() - t0 < FLAPPING.forMs) {
        const out = await cycle(FLAPPING.backend, FLAPPING.downMs);
        await until(out.back + FLAPPING.upMs);
      }
    }
    const last = Math.max(...outages.map((x) => x.back));
    await until(last + TAIL_MIN_MS);
    await waitUntil(() => [...w.weights().values()].every((x) => x > 0), Math.max(0, last + TAIL_MAX_MS - w.now()), 50);
    await sleep(500);
    const connects = await load.stop();
    const end = w.now();
    watch.stop();
    polling = false;
    await statusPoll;
    const systemCpuPct = Math.round(((cpuMsOf(sys.pids()) - cpu0.sys) / (performance.now() - cpu0.at)) * 1000) / 10;
    const log = sys.log();
    if (o.logDir) {
      fs.mkdirSync(o.logDir, { recursive: true });
      fs.writeFileSync(`${o.logDir}/${o.scenario}-${o.system}-run${o.run}.log`, log.join('\n') + '\n');
    }
    const byName: Record<string, [number, number][]> = {};
    for (const [k, list] of w.kernel) byName[keys.get(k)!] = list;
    const fig = analyzeRestarts({ connects, kernel: byName, outages, end });
    const rel = (t: number) => Math.round((t - t0) * 10) / 10;
    return {
      scenario: o.scenario, system: o.system, run: o.run, kernel: o.kernel,
      rateTarget: o.rate, rateAchieved: Math.round(load.achievedRate() * 10) / 10, maxLagMs: Math.round(load.maxLagMs), clientTimeoutMs: o.clientTimeoutMs,
      connects: fig.connects, failed: fig.failed, slow2s: fig.slow2s, bad: fig.bad, p99Ms: fig.p99Ms,
      baselineMs: fig.baselineMs, addedP99Ms: fig.addedP99Ms,
      panic: sys.status ? panicSeen || logShowsPanic(log) : null,
      backends: fig.backends,
      outages: outages.map((x) => ({ backend: x.backend, killAt: rel(x.killAt), down: rel(x.down), upAt: rel(x.upAt), back: rel(x.back) })),
      systemCpuPct, notes: [sys.description, ...notes, ...fig.notes],
      timeline: connects.map((c) => [rel(c.at), Math.round(c.ms * 10) / 10, outcomeIndex(c.outcome)]),
      kernelWeights: Object.fromEntries(Object.entries(byName).map(([n, l]) => [n, l.map(([t, x]) => [rel(t), x] as [number, number])])),
    };
  } finally {
    polling = false;
    watch?.stop();
    await statusPoll?.catch(() => undefined);
    await sys?.stop().catch((e: Error) => o.log(`stopping ${o.system}: ${e.message}`));
    await topo.down().catch((e: Error) => o.log(`topology down: ${e.message}`));
    fs.writeFileSync(EXPIRE_NODEST, sysctlBefore);
  }
}
