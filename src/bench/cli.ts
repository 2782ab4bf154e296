// npm run bench -- [--scenario blackout,refusal,far,rolling,flapping,udp-blackout,udp-refusal,fleet,overhead,capacity,latency] [--kernel 6.1[,5.10,6.12]] [--runs N]
//                  [--out results/] [--systems ipvs,keepalived-default,keepalived-aggressive,vipguard[,vipguard-syntimeout]]
//                  [--host-runs N] [--rate 20] [--fail-sec 30] [--client-timeout-sec 10] [--latency-samples 30]
//                  [--phase-sec 5] [--step-sec 5] [--capacity-rates 1000,2000,…,12000,0] [--baseline REV] [--span-sampling 1[,0.1]]
//                  [--from results.json]
//
// Host scenarios (overhead, capacity) run natively first, while this process has no VM of its own running; then one
// lab VM boot per kernel runs every lab scenario (blackout, refusal, far, rolling, flapping, udp-blackout, udp-refusal, fleet, latency), all systems and all runs inside
// (src/bench/lab-main.ts) and hands its JSON back through $VIPGUARD_LAB_OUT. Everything lands in
// <out>/<timestamp>/: results.json, results.md, SVG plots and the systems' logs; <out>/latest points there.
// --from re-renders the markdown and plots of an earlier results.json.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isLabKernel } from '../lab/kernels';
import { killAllVms, runInLab } from '../lab/runner';
import { REPO_ROOT } from '../common/paths';
import { describeHostSetup, runCapacity, runOverhead } from './host';
import { receiverBuilds, type ReceiverBuild } from './baseline';
import { LAB_VM, machine, revision } from './machine';
import { capacitySvg, failoverSvg, latencySvg } from './svg';
import { renderMarkdown } from './table';
import { failoverBudgetMs } from './failover';
import { latencyBudgetMs } from './latency';
import { restartBudgetMs } from './restarts';
import { udpFailoverBudgetMs } from './udp-failover';
import { fleetBudgetMs } from './fleet';
import { fleetSystems, type LabPlan } from './lab-main';
import { ALL_SYSTEMS, FAILOVER_SCENARIOS, FLEET, LAB_SCENARIOS, RESTART_SCENARIOS, SCENARIOS, SYSTEMS, TCP_ONLY_SYSTEMS, UDP_SCENARIOS, type BenchOptions, type BenchResults, type LabOutput, type Scenario, type SystemName } from './types';

const USAGE = `usage: npm run bench -- [--scenario ${SCENARIOS.join(',')}] [--kernel 6.1[,5.10,6.12]] [--runs N] [--out DIR]
         [--systems ${SYSTEMS.join(',')}[,vipguard-syntimeout]] [--host-runs N (default: --runs)]
         [--rate CONNECTS_PER_S (fleet: per client host, default 1)] [--fail-sec S] [--client-timeout-sec S] [--latency-samples N]
         [--phase-sec S] [--step-sec S] [--capacity-rates R1,R2,…(0 = unpaced)] [--baseline REV] [--span-sampling 1,0.1]
         [--from results.json]`;

export interface CliArgs {
  options: BenchOptions;
  out: string;
  from?: string;
}

export function parseArgs(argv: string[]): CliArgs {
  const o: BenchOptions = {
    scenarios: [...SCENARIOS], kernels: ['6.1'], systems: [...SYSTEMS], runs: 3, hostRuns: 0, rate: 20, fleetRate: FLEET.defaultRate, failSec: 30, clientTimeoutMs: 10_000,
    latencySamples: 30, phaseSec: 5, stepSec: 5, capacityRates: [1000, 2000, 4000, 6000, 8000, 10000, 12000, 0], spanSampling: [1],
  };
  let out = path.join(REPO_ROOT, 'results');
  let from: string | undefined;
  const positive = (name: string, v: string, max: number, integer = false) => {
    const n = Number(v);
    if (!(n > 0 && n <= max) || (integer && !Number.isInteger(n))) throw new Error(`${name} takes ${integer ? 'an integer' : 'a number'} within 1..${max}, got '${v}'\n${USAGE}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    switch (a) {
      case '--scenario': case '--scenarios':
        o.scenarios = value().split(',').map((s) => {
          if (!SCENARIOS.includes(s as Scenario)) throw new Error(`unknown scenario '${s}' — use ${SCENARIOS.join(', ')}`);
          return s as Scenario;
        });
        break;
      case '--kernel': case '--kernels':
        o.kernels = value().split(',').map((k) => {
          if (!isLabKernel(k)) throw new Error(`unknown lab kernel '${k}' — use 5.10, 6.1 or 6.12`);
          return k;
        });
        break;
      case '--system': case '--systems':
        o.systems = value().split(',').map((s) => {
          if (!ALL_SYSTEMS.includes(s as SystemName)) throw new Error(`unknown system '${s}' — use ${ALL_SYSTEMS.join(', ')}`);
          return s as SystemName;
        });
        break;
      case '--runs': o.runs = positive(a, value(), 100, true); break;
      case '--host-runs': o.hostRuns = positive(a, value(), 100, true); break;
      // In the fleet scenario --rate is per client host; there it defaults to 1/s (local detection at its slowest).
      case '--rate': o.rate = o.fleetRate = positive(a, value(), 200); break;
      case '--fail-sec': o.failSec = positive(a, value(), 600); break;
      case '--client-timeout-sec': o.clientTimeoutMs = positive(a, value(), 130) * 1000; break;
      case '--latency-samples': o.latencySamples = positive(a, value(), 1000, true); break;
      case '--phase-sec': o.phaseSec = positive(a, value(), 120); break;
      case '--step-sec': o.stepSec = positive(a, value(), 120); break;
      case '--capacity-rates':
        o.capacityRates = value().split(',').map((s) => {
          const n = Number(s);
          if (!(n >= 0 && n <= 1_000_000)) throw new Error(`--capacity-rates: '${s}' is not a rate (0 = unpaced)`);
          return n;
        });
        break;
      case '--baseline': o.baseline = value(); break;
      case '--span-sampling':
        o.spanSampling = value().split(',').map((s) => {
          const n = Number(s);
          if (!(n > 0 && n <= 1)) throw new Error(`--span-sampling: '${s}' is not a ratio within (0, 1]\n${USAGE}`);
          return n;
        });
        break;
      case '--out': out = path.resolve(value()); break;
      case '--from': from = path.resolve(value()); break;
      case '--help': case '-h': throw new Error(USAGE);
      default: throw new Error(`unknown argument '${a}'\n${USAGE}`);
    }
  }
  if (!o.hostRuns) o.hostRuns = o.runs;
  return { options: o, out, from };
}

function labTimeoutMs(o: BenchOptions, plan: LabPlan): number {
  let ms = 10 * 60_000;
  for (const s of plan.scenarios) {
    if (s === 'latency') ms += 2 * latencyBudgetMs(o.latencySamples) * o.runs;
    else if (s === 'fleet') for (const sys of fleetSystems(plan)) ms += fleetBudgetMs(sys, plan.failMs, plan.clientTimeoutMs) * o.runs;
    else if ((RESTART_SCENARIOS as readonly string[]).includes(s)) ms += restartBudgetMs(s as never, plan.clientTimeoutMs) * (plan.systems ?? SYSTEMS).length * o.runs;
    else if ((UDP_SCENARIOS as readonly string[]).includes(s)) {
      for (const sys of (plan.systems ?? SYSTEMS).filter((x) => !TCP_ONLY_SYSTEMS.includes(x))) ms += udpFailoverBudgetMs(sys, plan.failMs) * o.runs;
    }
    else for (const sys of plan.systems ?? SYSTEMS) ms += failoverBudgetMs(sys, plan.failMs, plan.clientTimeoutMs) * o.runs;
  }
  return ms;
}

/** Writes results.json, results.md and the plots into dir; returns the markdown. */
export function writeReport(r: BenchResults, dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'results.json'), JSON.stringify(r, null, 1));
  const svgs: string[] = [];
  const put = (name: string, body: string | undefined) => {
    if (!body) return;
    fs.writeFileSync(path.join(dir, name), body);
    svgs.push(name);
  };
  for (const k of [...new Set(r.failover.map((x) => x.kernel))]) {
    for (const s of FAILOVER_SCENARIOS) put(`${s}-${k}.svg`, failoverSvg(r.failover, s, k));
  }
  for (const k of [...new Set(r.latency.map((x) => x.kernel))]) put(`latency-${k}.svg`, latencySvg(r.latency, k));
  put('capacity.svg', capacitySvg(r.capacity.filter((s) => (s.build ?? 'current') === 'current')));
  const md = renderMarkdown(r, svgs);
  fs.writeFileSync(path.join(dir, 'results.md'), md);
  return md;
}

async function main(argv: string[]): Promise<number> {
  let args: CliArgs;
  try {
    args = parseArgs(argv);
  } catch (e) {
    console.error(`bench: ${(e as Error).message}`);
    return 2;
  }
  if (args.from) {
    const r = JSON.parse(fs.readFileSync(args.from, 'utf8')) as BenchResults;
    process.stdout.write(writeReport(r, path.dirname(args.from)) + '\n');
    return 0;
  }
  if (process.getuid?.() !== 0) {
    console.error('bench: needs root (BPF on the host, qemu and IPVS in the lab)');
    return 2;
  }
  const o = args.options;
  const stamp = new Date().toISOString().replace(/[:]/g, '').replace(/\.\d+Z$/, 'Z');
  const dir = path.join(args.out, stamp);
  fs.mkdirSync(dir, { recursive: true });
  const results: BenchResults = {
    version: 1, started: new Date().toISOString(), options: o, revision: revision(REPO_ROOT), host: machine(), lab: [],
    failover: [], restarts: [], udp: [], fleet: [], latency: [], overhead: [], capacity: [], problems: [],
  };
  const log = (l: string) => process.stdout.write(`bench: ${l}\n`);
  const save = () => fs.writeFileSync(path.join(dir, 'results.json'), JSON.stringify(results, null, 1));
  log(`results in ${dir}`);

  const host = o.scenarios.includes('overhead') || o.scenarios.includes('capacity');
  let builds: ReceiverBuild[] = [];
  if (host) {
    results.hostSetup = describeHostSetup(o.phaseSec, o.stepSec);
    try {
      builds = receiverBuilds(o, log);
      results.hostSetup += ` Receiver builds, in turn within each run: ${builds.map((b) => `${b.label}${b.root === REPO_ROOT ? '' : ` (${b.root})`}`).join('; ')}.`;
    } catch (e) {
      results.problems.push((e as Error).message);
      log((e as Error).message);
      builds = receiverBuilds({ spanSampling: o.spanSampling }, log);
    }
  }
  if (o.scenarios.includes('overhead')) {
    try {
      const r = await runOverhead({ runs: o.hostRuns, phaseSec: o.phaseSec, builds, log });
      results.overhead = r.runs;
      results.hostSetup += ` Receiver hooks: ${r.hooks.join('; ')}.`;
    } catch (e) {
      results.problems.push(`overhead: ${(e as Error).message}`);
      log(`overhead FAILED: ${(e as Error).message}`);
    }
    save();
  }
  if (o.scenarios.includes('capacity')) {
    try {
      results.capacity = await runCapacity({ runs: o.hostRuns, stepSec: o.stepSec, rates: o.capacityRates, builds, log });
    } catch (e) {
      results.problems.push(`capacity: ${(e as Error).message}`);
      log(`capacity FAILED: ${(e as Error).message}`);
    }
    save();
  }

  const labScenarios = o.scenarios.filter((s) => LAB_SCENARIOS.includes(s)) as LabPlan['scenarios'];
  if (labScenarios.length) {
    const plan: LabPlan = {
      scenarios: labScenarios, systems: o.systems, runs: o.runs, rate: o.rate, fleetRate: o.fleetRate, failMs: o.failSec * 1000,
      clientTimeoutMs: o.clientTimeoutMs, latencySamples: o.latencySamples,
    };
    for (const kernel of o.kernels) {
      const art = fs.mkdtempSync(path.join(os.tmpdir(), `vipguard-bench-${kernel}-`));
      try {
        const timeoutMs = labTimeoutMs(o, plan);
        log(`lab ${kernel}: one VM for ${labScenarios.join(', ')} × ${o.runs} run(s) (bound ${Math.round(timeoutMs / 60_000)} min)`);
        const r = await runInLab({
          kernel: kernel as never, timeoutMs, artifactsDir: art,
          command: [process.execPath, path.join(REPO_ROOT, 'dist/src/bench/lab-main.js'), JSON.stringify(plan)],
          onLine: (line, stream) => { if (stream !== 'kernel' || /BUG|WARNING|Oops|panic/.test(line)) process.stdout.write(`[${kernel}] ${line}\n`); },
        });
        results.lab.push({ kernel, release: r.release, vm: LAB_VM, bootMs: r.bootMs, wallMs: r.wallMs, exitCode: r.exitCode, timedOut: r.timedOut, error: r.error });
        const file = path.join(art, 'lab.json');
        if (fs.existsSync(file)) {
          const lab = JSON.parse(fs.readFileSync(file, 'utf8')) as LabOutput;
          results.failover.push(...lab.failover);
          (results.restarts ??= []).push(...(lab.restarts ?? []));
          (results.udp ??= []).push(...(lab.udp ?? []));
          (results.fleet ??= []).push(...(lab.fleet ?? []));
          results.latency.push(...lab.latency);
          results.problems.push(...lab.problems.map((p) => `[${kernel}] ${p}`));
          if (!lab.done) results.problems.push(`[${kernel}] the lab run did not finish (${r.timedOut ? 'timed out' : r.error ?? `exit ${r.exitCode}`}): partial results`);
        } else {
          results.problems.push(`[${kernel}] no results came back from the VM (${r.error ?? (r.timedOut ? 'timed out' : `exit ${r.exitCode}`)})`);
        }
        if (fs.existsSync(path.join(art, 'logs'))) fs.cpSync(path.join(art, 'logs'), path.join(dir, 'logs', kernel), { recursive: true });
      } catch (e) {
        results.problems.push(`[${kernel}] ${(e as Error).message}`);
      } finally {
        fs.rmSync(art, { recursive: true, force: true });
      }
      save();
    }
  }
  results.finished = new Date().toISOString();
  const md = writeReport(results, dir);
  const latest = path.join(args.out, 'latest');
  try {
    fs.rmSync(latest, { force: true });
    fs.symlinkSync(stamp, latest);
  } catch { /* a plain directory named latest: leave it */ }
  process.stdout.write(`\n${md}\n`);
  log(`written: ${dir}/results.{json,md} and plots`);
  return results.problems.length ? 1 : 0;
}

if (require.main === module) {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAllVms();
      console.error(`bench: ${sig}: stopped the VMs this run started`);
      process.exit(130);
    });
  }
  main(process.argv.slice(2)).then((c) => { process.exitCode = c; }, (e: Error) => {
    console.error(`bench: ${e.stack ?? e.message}`);
    process.exitCode = 1;
  });
}
