// The host-kernel benchmarks (tracepoints only: this machine has no kprobes and no IPVS), natively on loopback.
//
// overhead  connect/close churn rate with the receiver detached vs attached, in one run, interleaved per run:
//           detached → attach (start the receiver) → attached, churn to an untraced port (the BPF programs run on
//           every state change and filter in the kernel) → attached, churn to the traced service → detach →
//           detached. Ratio = attached / mean of the two detached phases around it.
// capacity  stepped churn rates against one receiver: events ingested per second, events lost (ring buffer full),
//           receiver CPU per 10k events, events per CPU-second, RSS.
// Both run every receiver build asked (baseline.ts: an earlier revision, this tree at several span sampling ratios)
// in turn within each run, so builds are compared under the same load.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { CHURN_DEFAULTS, ChurnResult, ensureChurn, freePort, runChurn } from './churn';
import { bpfProgIds } from './procfs';
import { ReceiverCounters, ReceiverUnderTest } from './receiver-proc';
import { CountingSink } from './sink';
import type { CapacityStep, OverheadRun } from './types';
import type { ReceiverBuild } from './baseline';
import { REPO_ROOT } from '../common/paths';

type Log = (line: string) => void;

export function describeHostSetup(phaseSec: number, stepSec: number): string {
  return `churn: src/bench/churn.c (C, ${CHURN_DEFAULTS.clients} client threads + ${CHURN_DEFAULTS.acceptors} acceptor on 127.0.0.1; ` +
    'the server closes first, the client reads EOF and closes: 5 state events per connection on the client socket). ' +
    'Receiver: `vipguard run --only receiver` tracing the churn port, exporting OTLP/gRPC to a counting sink in the bench ' +
    `process (no decoding), Prometheus endpoint for its counters; CPU and RSS from /proc/PID. Phases ${phaseSec} s, steps ${stepSec} s.`;
}

const lostInKernel = (c: ReceiverCounters) => (c.lost.ring_buffer_full ?? 0) + (c.lost.handshake_map_full ?? 0);
const lostOnExport = (c: ReceiverCounters) => (c.lost.export_queue_full ?? 0) + (c.lost.export_failed ?? 0);

const BPF_STATS = '/proc/sys/kernel/bpf_stats_enabled';

/** Run count and run time of the receiver's BPF programs (kernel.bpf_stats_enabled must be on). */
export function bpfRunStats(ids: number[]): { runs: number; ns: number } {
  let runs = 0;
  let ns = 0;
  for (const id of ids) {
    try {
      const p = JSON.parse(execFileSync('bpftool', ['prog', 'show', 'id', String(id), '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
      runs += Number(p.run_cnt ?? 0);
      ns += Number(p.run_time_ns ?? 0);
    } catch { /* program gone */ }
  }
  return { runs, ns };
}

/** Turns on the kernel's per-program run-time accounting for the duration of fn, then restores the setting. */
async function withBpfStats<T>(fn: (on: boolean) => Promise<T>): Promise<T> {
  let before: string | undefined;
  try {
    before = fs.readFileSync(BPF_STATS, 'utf8').trim();
    fs.writeFileSync(BPF_STATS, '1');
  } catch {
    before = undefined;
  }
  try {
    return await fn(before !== undefined);
  } finally {
    if (before !== undefined) fs.writeFileSync(BPF_STATS, before);
  }
}

async function withSink<T>(fn: (sinkPort: number) => Promise<T>): Promise<T> {
  const sink = new CountingSink();
  const port = await sink.start();
  try {
    return await fn(port);
  } finally {
    await sink.stop();
  }
}

interface PhaseCost {
  churn: ChurnResult;
  /** receiver CPU, ms per second of churn */
  receiverCpu: number;
  /** BPF programs: runs and kernel time during the phase */
  bpf: { runs: number; ns: number; ms: number };
}

/** The two attached phases of an overhead run: untraced first, while the receiver is idle (the traced phase leaves
 * spans queued for export behind it), then traced. */
async function attachedPhases(rcv: ReceiverUnderTest, churn: (port: number) => Promise<ChurnResult>, ports: { traced: number; untraced: number }) {
  const ids = bpfProgIds(rcv.pid);
  const phase = async (port: number): Promise<PhaseCost> => {
    const s0 = rcv.stat();
    const b0 = bpfRunStats(ids);
    const t0 = performance.now();
    const r = await churn(port);
    const ms = performance.now() - t0;
    const b1 = bpfRunStats(ids);
    return { churn: r, receiverCpu: ((rcv.stat().cpuMs - s0.cpuMs) / ms) * 1000, bpf: { runs: b1.runs - b0.runs, ns: b1.ns - b0.ns, ms } };
  };
  return withBpfStats(async () => {
    const untraced = await phase(ports.untraced);
    const c1 = await rcv.counters();
    const own = process.cpuUsage();
    const traced = await phase(ports.traced);
    const sink = process.cpuUsage(own);
    const c2 = await rcv.settled();
    return {
      untraced, traced,
      sinkCpu: ((sink.user + sink.system) / 1000 / traced.bpf.ms) * 1000,
      lost: lostInKernel(c2) - lostInKernel(c1),
      dropped: lostOnExport(c2) - lostOnExport(c1),
    };
  });
}

function bpfFigures(u: PhaseCost, t: PhaseCost): OverheadRun['bpf'] {
  if (!u.bpf.runs || !t.bpf.runs) return undefined;
  const r1 = (x: number) => Math.round(x * 10) / 10;
  return {
    nsPerRunUntraced: Math.round(u.bpf.ns / u.bpf.runs), nsPerRunService: Math.round(t.bpf.ns / t.bpf.runs),
    runsPerConnUntraced: r1(u.bpf.runs / Math.max(1, u.churn.connects)), runsPerConnService: r1(t.bpf.runs / Math.max(1, t.churn.connects)),
    msPerSecUntraced: r1((u.bpf.ns / 1e6 / u.bpf.ms) * 1000), msPerSecService: r1((t.bpf.ns / 1e6 / t.bpf.ms) * 1000),
  };
}

export async function runOverhead(o: { runs: number; phaseSec: number; builds: ReceiverBuild[]; log: Log }): Promise<{ runs: OverheadRun[]; hooks: string[] }> {
  ensureChurn();
  const out: OverheadRun[] = [];
  let hooks: string[] = [];
  await withSink(async (sinkPort) => {
    const traced = await freePort();
    let untraced = await freePort();
    while (untraced === traced) untraced = await freePort();
    const churn = (port: number) => runChurn({ port, seconds: o.phaseSec });
    await churn(traced); // warm-up: page cache, TIME_WAIT steady state
    for (let run = 1; run <= o.runs; run++) for (const build of o.builds) {
      const d1 = await churn(traced);
      const rcv = await ReceiverUnderTest.start({ servicePort: traced, sinkPort, promPort: await freePort(), build });
      if (build.root === REPO_ROOT) hooks = rcv.hooks();
      let a: Awaited<ReturnType<typeof attachedPhases>>;
      try {
        await new Promise((r) => setTimeout(r, 1000));
        a = await attachedPhases(rcv, churn, { traced, untraced });
      } finally {
        await rcv.stop();
      }
      const d2 = await churn(traced);
      const base = (d1.rate + d2.rate) / 2;
      const r: OverheadRun = {
        run, build: build.label, detachedBefore: d1.rate, attachedService: a.traced.churn.rate, attachedUntraced: a.untraced.churn.rate, detachedAfter: d2.rate,
        ratioService: a.traced.churn.rate / base, ratioUntraced: a.untraced.churn.rate / base,
        receiverCpuService: Math.round(a.traced.receiverCpu), receiverCpuUntraced: Math.round(a.untraced.receiverCpu),
        sinkCpuService: Math.round(a.sinkCpu), lostService: a.lost, droppedService: a.dropped, bpf: bpfFigures(a.untraced, a.traced),
      };
      out.push(r);
      o.log(`overhead run ${run} (${build.label}): detached ${Math.round(d1.rate)}/${Math.round(d2.rate)} conn/s; attached, untraced ${Math.round(r.attachedUntraced)} ` +
        `(ratio ${r.ratioUntraced.toFixed(3)}, receiver ${r.receiverCpuUntraced} ms CPU/s); attached, traced ${Math.round(r.attachedService)} ` +
        `(ratio ${r.ratioService.toFixed(3)}, receiver ${r.receiverCpuService} ms CPU/s, sink ${r.sinkCpuService} ms CPU/s, ${r.lostService} events lost, ` +
        `${r.droppedService} spans dropped)` +
        (r.bpf ? `; BPF ${r.bpf.nsPerRunUntraced}/${r.bpf.nsPerRunService} ns per run, ${r.bpf.runsPerConnUntraced}/${r.bpf.runsPerConnService} runs per connection, ` +
          `${r.bpf.msPerSecUntraced}/${r.bpf.msPerSecService} ms kernel CPU per s (untraced/traced)` : ''));
    }
  });
  return { runs: out, hooks };
}

export async function runCapacity(o: { runs: number; stepSec: number; rates: number[]; builds: ReceiverBuild[]; log: Log }): Promise<CapacityStep[]> {
  ensureChurn();
  const out: CapacityStep[] = [];
  await withSink(async (sinkPort) => {
    const port = await freePort();
    for (let run = 1; run <= o.runs; run++) for (const build of o.builds) {
      const rcv = await ReceiverUnderTest.start({ servicePort: port, sinkPort, promPort: await freePort(), build });
      try {
        await new Promise((r) => setTimeout(r, 1000));
        for (const rate of o.rates) {
          const c0 = await rcv.settled();
          const s0 = rcv.stat();
          const own0 = process.cpuUsage();
          const ch = await runChurn({ port, seconds: o.stepSec, rate });
          const c1 = await rcv.settled();
          const s1 = rcv.stat();
          const own1 = process.cpuUsage(own0);
          const events = c1.events - c0.events;
          const cpuMs = s1.cpuMs - s0.cpuMs;
          const step: CapacityStep = {
            run, build: build.label, targetConnRate: rate, connRate: Math.round(ch.rate), eventRate: Math.round(events / ch.seconds), events,
            lost: lostInKernel(c1) - lostInKernel(c0), exportDropped: lostOnExport(c1) - lostOnExport(c0), cpuMs,
            sinkCpuMs: Math.round((own1.user + own1.system) / 1000),
            cpuPer10k: events ? Math.round((cpuMs / events) * 10_000 * 10) / 10 : NaN,
            eventsPerCoreSec: cpuMs ? Math.round(events / (cpuMs / 1000)) : NaN,
            rssMb: Math.round(s1.rssKb / 102.4) / 10, hwmMb: Math.round(s1.hwmKb / 102.4) / 10,
          };
          out.push(step);
          o.log(`capacity run ${run} (${build.label}): ${rate ? `${rate} conn/s` : 'unpaced'} → ${step.connRate} conn/s, ${step.eventRate} events/s ingested, ` +
            `${step.lost} lost, ${step.exportDropped} spans dropped, ${step.cpuPer10k} ms CPU/10k events, ${step.eventsPerCoreSec} events/CPU-s, RSS ${step.rssMb} MB`);
        }
      } finally {
        await rcv.stop();
      }
    }
  });
  return out;
}
