// Inside the lab VM (started by src/bench/cli.ts through runInLab): every lab scenario, every system, every run,
// interleaved — for run in runs: for scenario: for system — so slow drifts of the machine hit all systems alike.
// Results go to $VIPGUARD_LAB_OUT/lab.json, rewritten after each measurement so a timeout keeps what was done.
//
//   node dist/src/bench/lab-main.js '<json: LabPlan>'
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runFailover } from './failover';
import { runLatency } from './latency';
import { runRestarts } from './restarts';
import { runUdpFailover } from './udp-failover';
import { runFleet } from './fleet';
import { FLEET, FLEET_SYSTEMS, LATENCY_MODES, RESTART_SCENARIOS, SYSTEMS, TCP_ONLY_SYSTEMS, UDP_SCENARIOS, type FailoverScenario, type FleetSystem, type LabOutput, type RestartScenario, type SystemName, type UdpScenario } from './types';

export interface LabPlan {
  scenarios: (FailoverScenario | RestartScenario | UdpScenario | 'fleet' | 'latency')[];
  systems?: SystemName[];
  runs: number;
  rate: number;
  /** connects/s per client host in the fleet scenario */
  fleetRate?: number;
  failMs: number;
  clientTimeoutMs: number;
  latencySamples: number;
}

async function main(): Promise<number> {
  const plan = JSON.parse(process.argv[2] ?? '') as LabPlan;
  const outDir = process.env.VIPGUARD_LAB_OUT ?? os.tmpdir();
  const kernel = process.env.VIPGUARD_LAB_KERNEL ?? 'host';
  const out: LabOutput = {
    kernel, release: os.release(), cpu: os.cpus()[0]?.model ?? '?', cores: os.cpus().length,
    failover: [], restarts: [], udp: [], fleet: [], latency: [], problems: [], done: false,
  };
  const save = () => fs.writeFileSync(path.join(outDir, 'lab.json'), JSON.stringify(out));
  const log = (l: string) => process.stdout.write(`bench: ${l}\n`);
  save();
  const systems = plan.systems?.length ? plan.systems : [...SYSTEMS];
  for (let run = 1; run <= plan.runs; run++) {
    for (const scenario of plan.scenarios) {
      if (scenario === 'latency') {
        for (const mode of LATENCY_MODES) {
          try {
            out.latency.push(await runLatency({ mode, run, kernel, samples: plan.latencySamples, log }));
          } catch (e) {
            out.problems.push(`latency ${mode} run ${run}: ${(e as Error).message}`);
            log(`FAILED latency ${mode} run ${run}: ${(e as Error).message}`);
          }
          save();
        }
        continue;
      }
      if (scenario === 'fleet') {
        for (const system of fleetSystems(plan)) {
          try {
            const r = await runFleet({ system, run, kernel, rate: plan.fleetRate ?? FLEET.defaultRate, failMs: plan.failMs, clientTimeoutMs: plan.clientTimeoutMs, log, logDir: path.join(outDir, 'logs') });
            out.fleet!.push(r);
            log(`fleet ${system} run ${run}: ${r.connects} connects at ${r.rateAchieved}/s per host, ${r.failed} failed, ${r.slow2s} > 2 s, ` +
              `first failure on ${r.firstFailureClient ?? '—'} at +${fmt(r.firstFailureMs)}; weight 0 ` +
              r.clients.map((c) => `${c.name} ${fmt(c.weight0Ms)} (${c.quarantinedBy ?? '—'})`).join(', ') +
              `; everywhere ${fmt(r.weight0EverywhereMs)}${r.alertActiveMs !== undefined ? `, alert active ${fmt(r.alertActiveMs)}, applied everywhere ${fmt(r.alertEverywhereMs ?? null)}` : ''}; ` +
              `restore ${r.clients.map((c) => fmt(c.restoreMs)).join(' / ')}; CPU systems ${r.systemCpuPct}% VM ${r.vmCpuPct}%, client lag ≤ ${r.maxLagMs} ms`);
          } catch (e) {
            out.problems.push(`fleet ${system} run ${run}: ${(e as Error).message}`);
            log(`FAILED fleet ${system} run ${run}: ${(e as Error).message}`);
          }
          save();
        }
        continue;
      }
      if ((UDP_SCENARIOS as readonly string[]).includes(scenario)) {
        for (const system of systems.filter((s) => !TCP_ONLY_SYSTEMS.includes(s))) {
          try {
            const r = await runUdpFailover({ scenario: scenario as UdpScenario, system, run, kernel, rate: plan.rate, failMs: plan.failMs, log, logDir: path.join(outDir, 'logs') });
            out.udp!.push(r);
            log(`${scenario} ${system} run ${run}: ${r.lookups} lookups at ${r.rateAchieved}/s, ${r.failed} failed, ${r.slow2s} > 2 s, ` +
              `p99 ${Math.round(r.p99Ms)} ms, stop ${fmt(r.stopKernelMs)} (kernel) / ${fmt(r.stopClientMs)} (client), restore ${fmt(r.restoreMs)}; ` +
              `long-lived flows on b3 ${r.flowsOnDead}, moved ${r.flowsMoved} (${r.flowMoveMs.map((x) => fmt(x)).join(', ') || '—'}), ` +
              `their queries failed ${r.flowQueriesFailed}/${r.flowQueries}; CPU ${r.system} ${r.systemCpuPct}% VM ${r.vmCpuPct}%, client lag ≤ ${r.maxLagMs} ms`);
          } catch (e) {
            out.problems.push(`${scenario} ${system} run ${run}: ${(e as Error).message}`);
            log(`FAILED ${scenario} ${system} run ${run}: ${(e as Error).message}`);
          }
          save();
        }
        continue;
      }
      if ((RESTART_SCENARIOS as readonly string[]).includes(scenario)) {
        for (const system of systems) {
          try {
            const r = await runRestarts({ scenario: scenario as RestartScenario, system, run, kernel, rate: plan.rate, clientTimeoutMs: plan.clientTimeoutMs, log, logDir: path.join(outDir, 'logs') });
            out.restarts.push(r);
            log(`${scenario} ${system} run ${run}: ${r.connects} connects at ${r.rateAchieved}/s, ${r.failed} failed, ${r.slow2s} > 2 s, ` +
              `added p99 ${Math.round(r.addedP99Ms)} ms, panic ${r.panic ?? '—'}; ` +
              r.backends.map((b) => `${b.backend} back ${b.restoreMs.map((x) => fmt(x)).join(', ')}, restored while down ${b.restoredWhileDown}, out ${b.outMs} ms`).join('; '));
          } catch (e) {
            out.problems.push(`${scenario} ${system} run ${run}: ${(e as Error).message}`);
            log(`FAILED ${scenario} ${system} run ${run}: ${(e as Error).message}`);
          }
          save();
        }
        continue;
      }
      for (const system of systems) {
        try {
          const r = await runFailover({
            scenario: scenario as FailoverScenario, system, run, kernel, rate: plan.rate, failMs: plan.failMs, clientTimeoutMs: plan.clientTimeoutMs, log,
            logDir: path.join(outDir, 'logs'),
          });
          out.failover.push(r);
          log(`${scenario} ${system} run ${run}: ${r.connects} connects at ${r.rateAchieved}/s, ${r.failed} failed, ${r.slow2s} > 2 s, ` +
            `p99 ${Math.round(r.p99Ms)} ms, stop ${fmt(r.stopKernelMs)} (kernel) / ${fmt(r.stopClientMs)} (client), restore ${fmt(r.restoreMs)}; ` +
            `CPU ${r.system} ${r.systemCpuPct}% VM ${r.vmCpuPct}%, client lag ≤ ${r.maxLagMs} ms, listen overflows ${r.listenOverflows}`);
        } catch (e) {
          out.problems.push(`${scenario} ${system} run ${run}: ${(e as Error).message}`);
          log(`FAILED ${scenario} ${system} run ${run}: ${(e as Error).message}`);
        }
        save();
      }
    }
  }
  out.done = true;
  save();
  return out.problems.length ? 1 : 0;
}

/** The fleet scenario compares vipguard alone with vipguard and the fleet rule; bare IPVS too when --systems names it. */
export function fleetSystems(plan: Pick<LabPlan, 'systems'>): FleetSystem[] {
  return FLEET_SYSTEMS.filter((s) => s !== 'ipvs' || (plan.systems ?? SYSTEMS).includes('ipvs'));
}

function fmt(v: number | 'never' | null): string {
  return v === null ? '—' : v === 'never' ? 'never' : `${Math.round(v)} ms`;
}

if (require.main === module) {
  main().then((c) => { process.exitCode = c; }, (e: Error) => {
    process.stderr.write(`bench (lab): ${e.stack ?? e.message}\n`);
    process.exitCode = 1;
  });
}
