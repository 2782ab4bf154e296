// The restart scenarios' pure pieces (issue 15): restore after a return, restores while down, time out of service,
// added latency, panic detection, and the rolling-restart and flapping tables. No kernel, no timing.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  analyzeRestarts, logShowsPanic, outOfServiceMs, restoreAfterReturn, restoresBetween, statusShowsPanic, weightAt, type Outage,
} from '../../src/bench/analyze-restarts';
import { parseVipguardLog, type RawConnect } from '../../src/bench/analyze';
import { fmtPanic, restartTable, restartTargets } from '../../src/bench/table-restarts';
import { renderMarkdown } from '../../src/bench/table';
import type { BenchResults, RestartRun } from '../../src/bench/types';

const out = (backend: string, killAt: number, downMs: number, backAfterMs: number): Outage =>
  ({ backend, killAt, down: killAt + 50, upAt: killAt + 50 + downMs, back: killAt + 50 + downMs + backAfterMs });

test('weightAt: in service before the first entry, then the last entry at or before t', () => {
  const k: [number, number][] = [[100, 0], [300, -1], [500, 1]];
  assert.equal(weightAt(k, 0), 1);
  assert.equal(weightAt(k, 100), 0);
  assert.equal(weightAt(k, 400), -1);
  assert.equal(weightAt(k, 900), 1);
  assert.equal(weightAt([], 5), 1);
});

test('restoresBetween and outOfServiceMs count only what lies inside the interval', () => {
  const k: [number, number][] = [[-100, 1], [100, 0], [300, 1], [500, -1], [800, 1], [1200, 0]];
  assert.deepEqual(restoresBetween(k, 0, 2000), [300, 800]);
  assert.deepEqual(restoresBetween(k, 400, 2000), [800]);
  assert.deepEqual(restoresBetween(k, 0, 800), [300], 'a restore at the end of the interval is not in it');
  assert.equal(outOfServiceMs(k, 0, 2000), 200 + 300 + 800);
  assert.equal(outOfServiceMs(k, 200, 600), 100 + 100, 'starts out of service at 200, back at 300, out again from 500');
  assert.equal(outOfServiceMs([], 0, 1000), 0);
});

test('restoreAfterReturn: from accepting again to in service for good; never taken out; back before its return; never back', () => {
  const o = out('b1', 0, 3000, 250); // back at 3300
  assert.equal(restoreAfterReturn([[200, 0], [4100, 1]], o, 20_000), 800);
  assert.equal(restoreAfterReturn([[-500, 1]], o, 20_000), null, 'never out of service: nothing to restore');
  assert.equal(restoreAfterReturn([[200, 0], [1500, 1]], o, 20_000), 0, 'put back while still down: 0, not negative');
  assert.equal(restoreAfterReturn([[200, 0]], o, 20_000), 'never');
  // keepalived: a check begun during the outage removes it after the return; in service for good only later
  assert.equal(restoreAfterReturn([[200, -1], [1200, 1], [3400, -1], [4500, 1]], o, 20_000), 1200);
  // the next outage of the same backend bounds what counts as "for good"
  assert.equal(restoreAfterReturn([[200, 0], [3700, 1], [6000, 0]], o, 5500), 400);
});

function rolling(): { connects: RawConnect[]; kernel: Record<string, [number, number][]>; outages: Outage[] } {
  const connects: RawConnect[] = [];
  for (let i = -30; i < 200; i++) {
    const at = i * 100;
    // baseline 10 ms; inside the window two refusals and two connects slowed to 1.01 s, the rest 12 ms
    const c: RawConnect = i === 5 || i === 55 ? { at, ms: 3, outcome: 'refused' } : i === 60 || i === 61 ? { at, ms: 1010, outcome: 'ok' } : { at, ms: at < 0 ? 10 : 12, outcome: 'ok' };
    connects.push(c);
  }
  return {
    connects,
    outages: [out('b1', 0, 3000, 250), out('b2', 5000, 3000, 250), out('b3', 10_000, 3000, 250)],
    kernel: {
      b1: [[-3000, 1], [300, 0], [4100, 1]],
      b2: [[-3000, 1]],
      b3: [[-3000, 1], [10_200, 0], [11_000, 1], [11_500, 0], [13_900, 1]],
    },
  };
}

test('rolling restart analysis: window figures, added latency against the baseline, per-backend restore and restores while down', () => {
  const f = analyzeRestarts({ ...rolling(), end: 19_900 });
  assert.equal(f.connects, 133, 'from the first kill (0) until the last return (13 300)');
  assert.equal(f.failed, 2);
  assert.equal(f.slow2s, 0);
  assert.equal(f.bad, 2);
  assert.equal(f.baselineMs, 10);
  assert.equal(f.addedP99Ms, 1000, 'the slowed connects: 1010 − 10');
  assert.deepEqual(f.backends.map((b) => [b.backend, b.restoreMs, b.restoredWhileDown, b.restores, b.outMs, b.outAtEnd]), [
    ['b1', [800], 0, 1, 3800, false],
    ['b2', [null], 0, 0, 0, false],
    ['b3', [600], 1, 2, 800 + 2400, false],
  ]);
  assert.deepEqual(f.notes, ['failed: +0.50 s refused after 3 ms; +5.50 s refused after 3 ms (from the first kill)'], 'the failures, in words');
});

test('flapping analysis: several outages of one backend, each restore bounded by the next outage; out at the end', () => {
  const outages = [out('b3', 0, 2000, 200), out('b3', 4250, 2000, 200), out('b3', 8500, 2000, 200)];
  // out at 300, back at 2600 (in the up phase); out again at 4400, restored into the failure at 5000, out at 5600;
  // out at 8600 and never back
  const kernel = { b3: [[-1000, 1], [300, 0], [2600, 1], [4400, 0], [5000, 1], [5600, 0], [6900, 1], [8600, 0]] as [number, number][] };
  const f = analyzeRestarts({ connects: [{ at: -500, ms: 5, outcome: 'ok' }, { at: 100, ms: 5000, outcome: 'timeout' }], kernel, outages, end: 20_000 });
  const b = f.backends[0];
  assert.deepEqual(b.restoreMs, [350, 400, 'never']);
  assert.equal(b.restoredWhileDown, 1);
  assert.equal(b.restores, 3);
  assert.equal(b.outMs, 2300 + 600 + 1300 + 11_400);
  assert.equal(b.outAtEnd, true);
  assert.equal(f.bad, 1);
  assert.equal(f.slow2s, 1);
  assert.match(f.notes.join('\n'), /b3 still out of service at the end/);
  assert.throws(() => analyzeRestarts({ connects: [], kernel: {}, outages: [], end: 0 }), /no outage/);
});

test('panic: from the status endpoint and from the log line the actuator writes', () => {
  assert.equal(statusShowsPanic({ services: [{ name: 'web', panic: false }, { name: 'api', panic: true }] }), true);
  assert.equal(statusShowsPanic({ services: [{ name: 'web', panic: false }] }), false);
  assert.equal(statusShowsPanic(undefined), false);
  assert.equal(statusShowsPanic({ services: 'x' }), false);
  assert.equal(logShowsPanic(['2026-12-05T22:00:00.000Z vipguard: panic in web: more destinations failing than the cap allows; releasing the oldest quarantine, 10.200.0.2:8080']), true);
  assert.equal(logShowsPanic(['2026-12-05T22:13:50.478Z vipguard: panic: 1 of 3 destinations of web in service already quarantined (cap 1, never all); refusing to quarantine 10.200.0.4:8080']), true);
  assert.equal(logShowsPanic(['2026-12-05T22:00:00.000Z vipguard: quarantine 10.200.0.2:8080 in web (level 0) until …']), false);
});

function run(over: Partial<RestartRun>): RestartRun {
  return {
    scenario: 'rolling', system: 'vipguard', run: 1, kernel: '6.1', rateTarget: 20, rateAchieved: 19.8, maxLagMs: 30, clientTimeoutMs: 10_000,
    connects: 266, failed: 3, slow2s: 0, bad: 3, p99Ms: 1020, baselineMs: 8, addedP99Ms: 1012, panic: false,
    backends: [
      { backend: 'b1', restoreMs: [640], restoredWhileDown: 0, restores: 1, outMs: 3900, outAtEnd: false },
      { backend: 'b2', restoreMs: [1250], restoredWhileDown: 0, restores: 1, outMs: 4100, outAtEnd: false },
      { backend: 'b3', restoreMs: [null], restoredWhileDown: 0, restores: 0, outMs: 0, outAtEnd: false },
    ],
    outages: [], systemCpuPct: 40, notes: [], timeline: [], kernelWeights: {}, ...over,
  };
}

test('rolling-restart and flapping tables, panic formatting, targets', () => {
  const runs = [run({}), run({ system: 'ipvs', panic: null, failed: 90, bad: 90, backends: [] }),
    run({ scenario: 'flapping', system: 'keepalived-aggressive', panic: null, bad: 17,
      backends: [{ backend: 'b3', restoreMs: [300, 420], restoredWhileDown: 2, restores: 8, outMs: 15_300, outAtEnd: false }],
      outages: [{ backend: 'b3', killAt: 0, down: 40, upAt: 2040, back: 2300 }] })];
  const t = restartTable(runs, 'rolling', '6.1')!;
  const lines = t.split('\n');
  assert.match(lines[0], /failed \| > 2 s \| p99 added connect latency \| panic seen \| b1 back in service after its return \| b2 back/);
  assert.equal(lines[2], '| bare IPVS | 1 | 20 | 266 | 90 | 0 | 1.01 s | — | — | — | — |');
  assert.equal(lines[3], '| vipguard, defaults | 1 | 20 | 266 | 3 | 0 | 1.01 s | no | 640 ms | 1.25 s | — |');
  const fl = restartTable(runs, 'flapping', '6.1')!.split('\n');
  assert.match(fl[0], /failed or > 2 s \| restored into a failure/);
  assert.equal(fl[2], '| keepalived TCP_CHECK, 1 s / 1 s | 1 | 20 | 266 | 17 | 2 | 8 | 15.3 s | 1 | — |');
  assert.equal(restartTable(runs, 'flapping', '5.10'), undefined);
  assert.equal(fmtPanic([run({ panic: true }), run({ panic: false }), run({ panic: false })]), 'yes in 1 of 3 runs');
  assert.equal(fmtPanic([run({ panic: true })]), 'yes');
  const v = restartTargets(runs);
  assert.deepEqual(v.map((x) => [x.target, x.measured, x.met]), [['0', '3', false], ['no', 'no', true], ['≤ 1 s', '640 ms / 945 ms / 1.25 s', false]]);
  const md = renderMarkdown({
    version: 1, started: '2026-12-05T22:00:00Z', revision: 'abc', problems: [], lab: [], failover: [], latency: [], overhead: [], capacity: [], restarts: runs,
    host: { cpu: 'x', cores: 2, kernel: '6.18', node: 'v20', loadAvg: [1, 1, 1], date: '' },
    options: { scenarios: ['rolling', 'flapping'], kernels: ['6.1'], systems: ['ipvs'], runs: 1, hostRuns: 1, rate: 20, failSec: 30, clientTimeoutMs: 10_000, latencySamples: 1, phaseSec: 5, stepSec: 5, capacityRates: [] },
  } satisfies BenchResults);
  assert.match(md, /## Rolling restart \(6\.1\)/);
  assert.match(md, /## Flapping backend \(6\.1\)/);
  assert.match(md, /MISSED \| \[6\.1\] rolling restart, vipguard, defaults: connects failed/);
});

test("vipguard's log as the quarantine-and-probe actuator writes it: panic releasing a quarantine, release after a probe", () => {
  const d = parseVipguardLog([
    '2026-12-05T22:00:00.000Z vipguard: quarantine 10.200.0.4:8080 in web (level 0) until 2026-12-05T22:00:01.000Z, then probed: rule handshake-failures',
    '2026-12-05T22:00:02.000Z vipguard: panic in web: more destinations failing than the cap allows; releasing the oldest quarantine, 10.200.0.4:8080',
    '2026-12-05T22:00:03.000Z vipguard: release 10.200.0.2:8080 in web: probe answered',
  ], '10.200.0.4:8080', Date.parse('2026-12-05T22:00:00.000Z'));
  assert.equal(d.quarantinedFailing, 1);
  assert.equal(d.panicRefusals, 1);
  assert.deepEqual(d.events, [[0, 'quarantine', 1], [2000, 'panic', 1], [3000, 'restore', 0]]);
});
