// UDP (DNS) failover results → markdown (issue 13): one table per scenario and kernel, every figure min / median /
// max over runs, and the target — vipguard fails at most a tenth of what keepalived at 1 s fails, with stop
// ≤ 1 s — judged on ratios taken within one run (same VM boot, same load, systems back to back). Pure (unit-tested).
import { markdownTable } from './markdown';
import { fmtMs, fmtNum, fmtSpread, type Sample, spread } from './stats';
import type { TargetVerdict } from './table';
import { ALL_SYSTEMS, UDP_LOAD, type SystemName, type UdpFailoverRun, type UdpScenario } from './types';
import { RESOLVER_POLICY } from '../lab/dns-load';

const ms = (xs: Sample[]) => fmtSpread(spread(xs), fmtMs);
const num = (xs: Sample[], d = 0) => fmtSpread(spread(xs), (v) => fmtNum(v, d));

export const UDP_SYSTEM_LABELS: Record<SystemName, string> = {
  ipvs: 'bare IPVS',
  'keepalived-default': 'keepalived DNS_CHECK, defaults',
  'keepalived-aggressive': 'keepalived DNS_CHECK, 1 s / 1 s',
  vipguard: 'vipguard, defaults',
  'vipguard-syntimeout': 'vipguard, synTimeout on',
};

/** The UDP target's ratio: vipguard's bad lookups over keepalived-1 s's in the same run. */
export const UDP_TARGET = { ratio: 0.1, stopMs: 1000 } as const;

export function udpIntro(scenario: UdpScenario, failSec: number, rate: number): string {
  const what = scenario === 'udp-blackout'
    ? `Backend b3's DNS server of three black-holed (nft drop inside the server namespace: no answer, no error) for ${failSec} s, then restored.`
    : `Backend b3's dnsmasq killed (a datagram to it draws ICMP port unreachable: ECONNREFUSED on the client's connected socket) for ${failSec} s, then restarted.`;
  return `${what} Load through the UDP VIP 10.99.0.1:53 (rr): ${rate} lookups/s, each from a fresh socket (a new IPVS flow) under the ` +
    `C library resolver's defaults — ${RESOLVER_POLICY.timeoutMs / 1000} s per try, ${RESOLVER_POLICY.attempts} tries, the retry on the same socket ` +
    '(same flow) after a timeout and on a fresh one after ECONNREFUSED — plus ' +
    `${UDP_LOAD.flows} long-lived connected flows asking every ${UDP_LOAD.flowEveryMs} ms (src/lab/dns-load.ts). ` +
    'Lookups are counted when started between injecting the failure and b3 serving again. saved by retry = lookups whose first try went to b3 ' +
    'and that the second try answered. stop = first failed try → b3 at weight 0 or removed (kernel: /proc/net/ip_vs every 20 ms) or → ' +
    'the start of the last lookup whose flow still went to b3 (client: its port in /proc/net/ip_vs_conn every 250 ms). Flows on b3 = ' +
    'long-lived flows whose last answer before the failure came from b3; moved = answered by another backend before recovery, timed ' +
    'from that flow\'s first unanswered query. restore = backend recovered (blackout: the drop removed; refusal: b3 answering a ' +
    'direct query) → b3 back in the service. vs keepalived 1 s = this system\'s failed-or-slow lookups ÷ keepalived 1 s\'s in the same run.';
}

/** Per run (same kernel and scenario): `system`'s failed-or-slow lookups over keepalived-aggressive's; null when that is 0. */
export function ratiosToKeepalived(runs: UdpFailoverRun[], system: SystemName, scenario: UdpScenario, kernel: string): (number | null)[] {
  const mine = runs.filter((r) => r.system === system && r.scenario === scenario && r.kernel === kernel);
  return mine.map((r) => {
    const k = runs.find((x) => x.system === 'keepalived-aggressive' && x.scenario === scenario && x.kernel === kernel && x.run === r.run);
    return k && k.bad > 0 ? Math.round((r.bad / k.bad) * 1000) / 1000 : null;
  });
}

export function udpTable(runs: UdpFailoverRun[], scenario: UdpScenario, kernel: string): string | undefined {
  const rows: string[][] = [];
  for (const system of ALL_SYSTEMS) {
    const rs = runs.filter((r) => r.scenario === scenario && r.system === system && r.kernel === kernel);
    if (!rs.length) continue;
    const f = (k: 'rateAchieved' | 'lookups' | 'failed' | 'slow2s' | 'bad' | 'p50Ms' | 'p99Ms' | 'savedByRetry' | 'stopKernelMs' | 'stopClientMs' |
      'restoreMs' | 'flowsOnDead' | 'flowsMoved' | 'flowQueriesFailed' | 'systemCpuPct') => rs.map((r) => r[k] as Sample);
    const slowestMove = rs.map((r) => (r.flowMoveMs.length ? Math.max(...r.flowMoveMs) : null));
    rows.push([UDP_SYSTEM_LABELS[system], String(rs.length), num(f('rateAchieved'), 1), num(f('lookups')), num(f('failed')), num(f('slow2s')),
      num(f('bad')), ms(f('p50Ms')), ms(f('p99Ms')), num(f('savedByRetry')), ms(f('stopKernelMs')), ms(f('stopClientMs')),
      num(f('flowsOnDead')), num(f('flowsMoved')), ms(slowestMove), num(f('flowQueriesFailed')), ms(f('restoreMs')),
      num(ratiosToKeepalived(runs, system, scenario, kernel), 3), fmtSpread(spread(f('systemCpuPct')), (v) => (typeof v === 'number' ? `${v.toFixed(0)}%` : fmtNum(v)))]);
  }
  if (!rows.length) return undefined;
  return markdownTable(['system', 'runs', 'lookups/s achieved', 'lookups while failing', 'failed', '> 2 s', 'failed or > 2 s', 'p50', 'p99',
    'saved by retry', 'stop (kernel)', 'stop (client)', 'long-lived flows on b3', 'of them moved', 'slowest move', 'long-lived queries unanswered',
    'restore (back in service after recovery)', 'vs keepalived 1 s', 'system CPU'], rows);
}

/** Issue 13's target per scenario and kernel: vipguard's failed-or-slow ≤ a tenth of keepalived 1 s's in every run, and stop ≤ 1 s. */
export function udpTargets(runs: UdpFailoverRun[]): TargetVerdict[] {
  const out: TargetVerdict[] = [];
  for (const k of [...new Set(runs.map((r) => r.kernel))]) {
    for (const scenario of ['udp-blackout', 'udp-refusal'] as const) {
      const vg = runs.filter((r) => r.kernel === k && r.scenario === scenario && r.system === 'vipguard');
      if (!vg.length) continue;
      const ratios = ratiosToKeepalived(runs, 'vipguard', scenario, k);
      // keepalived failing nothing leaves no ratio: vipguard meets the target only by failing nothing too.
      const ok = vg.filter((r, i) => (ratios[i] === null ? r.bad === 0 : ratios[i]! <= UDP_TARGET.ratio)).length;
      out.push({
        what: `[${k}] ${scenario}: vipguard's failed or > 2 s lookups ÷ keepalived DNS_CHECK 1 s's, same run (every run)`, target: `≤ ${UDP_TARGET.ratio}`,
        measured: `${num(ratios, 3)} (vipguard ${num(vg.map((r) => r.bad))}); ${ok} of ${vg.length} runs within`, met: ok === vg.length,
        why: ok < vg.length ? udpWhy(vg) : undefined,
      });
      const stop = vg.map((r) => r.stopKernelMs);
      const okStop = stop.filter((v) => typeof v === 'number' && v <= UDP_TARGET.stopMs).length;
      out.push({
        what: `[${k}] ${scenario}: vipguard first failure → no new flow to b3 (kernel, every run)`, target: `≤ ${UDP_TARGET.stopMs / 1000} s`,
        measured: `${ms(stop)}; ${okStop} of ${vg.length} runs within`, met: okStop === vg.length, why: okStop < vg.length ? udpWhy(vg) : undefined,
      });
    }
  }
  return out;
}

function udpWhy(vg: UdpFailoverRun[]): string {
  const quarantined = vg.filter((r) => (r.vipguardDecisions?.quarantinedFailing ?? 0) > 0).length;
  if (quarantined === 0) {
    // `vipguard run` says what its receiver traces: "receiver: tracing no TCP service" before it sensed UDP, "… not
    // traced on this kernel" where the kernel lacks the hooks.
    const untraced = vg.some((r) => r.notes.some((n) => /tracing no (TCP )?service|UDP services are not traced/.test(n)));
    return `vipguard never quarantined b3 in ${vg.length} run(s)` + (untraced ? ': its receiver traced no UDP service (the run notes say why)' : '');
  }
  return 'quarantined late or not in every run: see the run notes and vipguard\'s decisions in results.json';
}
