// Restart results → markdown (issue 15): the rolling-restart and flapping tables, and their targets. Every figure is
// min / median / max over runs. Pure (unit-tested).
import { markdownTable } from './markdown';
import { fmtMs, fmtNum, fmtSpread, Sample, spread } from './stats';
import { ALL_SYSTEMS, FLAPPING, ROLLING, SYSTEM_LABELS, type RestartRun, type RestartScenario } from './types';

const ms = (xs: Sample[]) => fmtSpread(spread(xs), fmtMs);
const num = (xs: Sample[]) => fmtSpread(spread(xs), (v) => fmtNum(v));

/** "no", "yes", or "yes in 1 of 3 runs"; "—" when the system has no panic to report (not vipguard). */
export function fmtPanic(rs: RestartRun[]): string {
  const known = rs.filter((r) => r.panic !== null);
  if (!known.length) return '—';
  const yes = known.filter((r) => r.panic).length;
  return yes === 0 ? 'no' : yes === known.length ? 'yes' : `yes in ${yes} of ${known.length} runs`;
}

/** One backend's restore over runs: every outage of it in every run pooled into one spread. */
function restoreOf(rs: RestartRun[], backend: string): string {
  return ms(rs.flatMap((r) => r.backends.find((b) => b.backend === backend)?.restoreMs ?? [null]));
}

export function restartTable(runs: RestartRun[], scenario: RestartScenario, kernel: string): string | undefined {
  const rows: string[][] = [];
  for (const system of ALL_SYSTEMS) {
    const rs = runs.filter((r) => r.scenario === scenario && r.system === system && r.kernel === kernel);
    if (!rs.length) continue;
    const f = (k: 'rateAchieved' | 'connects' | 'failed' | 'slow2s' | 'bad' | 'addedP99Ms' | 'systemCpuPct') => rs.map((r) => r[k]);
    const head = [SYSTEM_LABELS[system], String(rs.length), num(f('rateAchieved')), num(f('connects'))];
    if (scenario === 'rolling') {
      rows.push([...head, num(f('failed')), num(f('slow2s')), ms(f('addedP99Ms')), fmtPanic(rs), ...ROLLING.backends.map((b) => restoreOf(rs, b))]);
    } else {
      const b = (r: RestartRun) => r.backends.find((x) => x.backend === FLAPPING.backend);
      rows.push([...head, num(f('bad')), num(rs.map((r) => b(r)?.restoredWhileDown ?? null)), num(rs.map((r) => b(r)?.restores ?? null)),
        ms(rs.map((r) => b(r)?.outMs ?? null)), num(rs.map((r) => r.outages.length)), fmtPanic(rs)]);
    }
  }
  if (!rows.length) return undefined;
  const head = ['system', 'runs', 'connects/s achieved', 'connects during the restarts'];
  return scenario === 'rolling'
    ? markdownTable([...head, 'failed', '> 2 s', 'p99 added connect latency', 'panic seen', ...ROLLING.backends.map((b) => `${b} back in service after its return`)], rows)
    : markdownTable([...head, 'failed or > 2 s', `restored into a failure (${FLAPPING.backend} back in service while down)`, `${FLAPPING.backend} put back in service (times)`,
      `${FLAPPING.backend} out of service (total)`, 'outages', 'panic seen'], rows);
}

export function restartIntro(scenario: RestartScenario, rate: number, clientTimeoutMs: number): string {
  const load = `Client load: ${rate} connects/s through 10.99.0.1:80 (rr), each with a ${clientTimeoutMs / 1000} s timeout. `;
  return scenario === 'rolling'
    ? `Rolling restart: ${ROLLING.backends.join(', ')} restarted one after another — each listener killed (SYN → RST), down ` +
      `${ROLLING.downMs / 1000} s from the kill to its restart, the next one killed ${ROLLING.everyMs / 1000} s after the previous kill. ` + load +
      'Connects count from the first kill until the last backend accepts again. p99 added connect latency = p99 of (latency − median latency ' +
      'before the first kill), failures at the time they failed. panic seen = vipguard\'s status endpoint (polled every second) or its log said ' +
      'the service was in panic. "back in service after its return" = the listener accepting a direct connect again → its weight > 0 in the kernel ' +
      'for good (0 = it was back before that, — = never taken out).'
    : `Flapping: ${FLAPPING.backend}'s listener down ${FLAPPING.downMs / 1000} s (from its kill to its restart) and up ${FLAPPING.upMs / 1000} s ` +
      `(from accepting again to the next kill), for ${FLAPPING.forMs / 1000} s. ` + load +
      'failed or > 2 s count the connects from the first kill until the last return. "restored into a failure" = the kernel\'s weight went ' +
      `from 0 (or absent) to > 0 while ${FLAPPING.backend}'s listener was gone. Out of service = total time at weight 0 or absent from the first ` +
      'kill until every backend was back (or 30 s after the last return).';
}

export interface RestartVerdict { what: string; target: string; measured: string; met: boolean | undefined }

/** Issue 15's goals for vipguard (defaults and synTimeout on) in the restart scenarios. */
export function restartTargets(runs: RestartRun[]): RestartVerdict[] {
  const out: RestartVerdict[] = [];
  for (const k of [...new Set(runs.map((r) => r.kernel))]) {
    for (const system of ['vipguard', 'vipguard-syntimeout'] as const) {
      const rs = runs.filter((r) => r.kernel === k && r.system === system && r.scenario === 'rolling');
      if (!rs.length) continue;
      const label = SYSTEM_LABELS[system];
      out.push({ what: `[${k}] rolling restart, ${label}: connects failed (every run)`, target: '0', measured: num(rs.map((r) => r.failed)), met: rs.every((r) => r.failed === 0) });
      out.push({ what: `[${k}] rolling restart, ${label}: panic`, target: 'no', measured: fmtPanic(rs), met: rs.every((r) => r.panic === false) });
      const back = rs.flatMap((r) => r.backends.flatMap((b) => b.restoreMs));
      out.push({
        what: `[${k}] rolling restart, ${label}: every backend back in service after its return`, target: '≤ 1 s', measured: ms(back),
        met: back.every((v) => v === null || (typeof v === 'number' && v <= 1000)),
      });
    }
  }
  return out;
}
