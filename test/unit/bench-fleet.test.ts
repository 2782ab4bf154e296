// The fleet benchmark's pure parts (issue 17): from every host's connects and its own IPVS table to the first failure
// anywhere, weight 0 per host and everywhere, which input took each host's b3 out, restore; the tables; --rate per host.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { analyzeFleet, firstAlertPost, firstQuarantine, type FleetClientObservations } from '../../src/bench/analyze-fleet';
import type { RawConnect } from '../../src/bench/analyze';
import { parseArgs } from '../../src/bench/cli';
import { fleetSystems } from '../../src/bench/lab-main';
import { renderMarkdown } from '../../src/bench/table';
import { fleetClientTable, fleetTable } from '../../src/bench/table-fleet';
import type { BenchResults, FleetRun, FleetSystem } from '../../src/bench/types';

const window = { fail0: 0, fail1: 20, rec0: 30_000, rec1: 30_010, rate: 1, backends: 3 };

/**
 * One host at 1 connect/s from `from` to 40 s, rr over three backends with b3 every third connect (port 100·k + i for
 * its i-th connect), until its table takes b3 out at `outAt`; b3's connects during the failure wait for the SYN
 * retransmit (rescued onto another backend at ~1 s, as with expire_nodest_conn=1) or, with `rescued` false, time out.
 */
function host(name: string, k: number, from: number, outAt: number | undefined, backAt: number | undefined, rescued = true): FleetClientObservations {
  const connects: RawConnect[] = [];
  const seen = new Map<number, number[]>();
  let rr = 0;
  for (let i = 0, at = from; at < 40_000; i++, at += 1000) {
    const port = 100 * k + i;
    const b3InService = outAt === undefined || at < outAt || (backAt !== undefined && at >= backAt);
    const toB3 = b3InService && rr++ % 3 === 2;
    if (!b3InService) rr = 0;
    const failing = at >= window.fail0 && at < window.rec1;
    if (toB3) seen.set(port, [at + 10]);
    connects.push(toB3 && failing
      ? (rescued ? { at, ms: 1010, outcome: 'ok', localPort: port } : { at, ms: 10_000, outcome: 'timeout', localPort: port })
      : { at, ms: 2, outcome: 'ok', localPort: port });
  }
  const kernel: [number, number][] = [[-20_000, 1]];
  if (outAt !== undefined) kernel.push([outAt, 0]);
  if (backAt !== undefined) kernel.push([backAt, 1]);
  return { name, connects, kernel, seen };
}

test('fleet analysis: first failure anywhere, weight 0 per host and everywhere, who took it out, restore', () => {
  // c1 reaches b3 first (at 1.5 s), and its own rule takes b3 out 400 ms later; c2 reaches it at 1.8 s and does the
  // same 300 ms later; c3's turn would come at 2.4 s, but the fleet alert takes b3 out of its table at 2.2 s.
  const c1 = host('c1', 1, -9_500, 1_900, 31_000);
  const c2 = host('c2', 2, -9_200, 2_100, 31_500);
  const c3 = host('c3', 3, -8_600, 2_200, 35_000);
  c1.quarantinedBy = 'local';
  c2.quarantinedBy = 'local';
  c3.quarantinedBy = 'fleet';
  const f = analyzeFleet({ ...window, clients: [c1, c2, c3] });
  assert.equal(f.firstFailureClient, 'c1');
  assert.equal(f.firstFailureMs, 1500);
  assert.deepEqual(f.clients.map((c) => c.weight0Ms), [400, 600, 700]);
  assert.equal(f.weight0FirstMs, 400);
  assert.equal(f.weight0EverywhereMs, 700);
  assert.deepEqual(f.clients.map((c) => c.quarantinedBy), ['local', 'local', 'fleet']);
  assert.equal(f.byFleet, 1);
  assert.deepEqual(f.clients.map((c) => c.restoreMs), [990, 1490, 4990]);
  assert.equal(f.restoreAllMs, 4990);
  // Every host's connects in [0, 30 s): 30 each; the b3 ones were rescued at ~1 s: slow, not failed, not > 2 s.
  assert.deepEqual(f.clients.map((c) => c.connects), [30, 30, 30]);
  assert.equal(f.connects, 90);
  assert.equal(f.failed, 0);
  assert.equal(f.slow2s, 0);
  assert.equal(f.bad, 0);
  assert.equal(f.landedOnDead, f.clients.reduce((a, c) => a + c.landedOnDead, 0));
  assert.deepEqual(f.clients.map((c) => c.landedOnDead), [1, 1, 0], 'c3 sent nothing to b3: the fleet took it out first');
  assert.equal(f.alertEverywhereMs, undefined, 'no fleet rule, no alert figures');
  assert.equal(f.clients[0].alertReceivedMs, undefined);
  assert.equal(f.dead.length, 3);
  assert.equal(f.dead[0].filter(Boolean).length, f.clients[0].landedOnDead);
});

test('fleet analysis: nobody takes b3 out (bare IPVS) — weight 0 never, everywhere never, nothing to restore', () => {
  const hosts = [host('c1', 1, -9_500, undefined, undefined, false), host('c2', 2, -9_200, undefined, undefined, false), host('c3', 3, -9_800, undefined, undefined, false)];
  const f = analyzeFleet({ ...window, clients: hosts });
  assert.deepEqual(f.clients.map((c) => c.weight0Ms), ['never', 'never', 'never']);
  assert.equal(f.weight0FirstMs, 'never');
  assert.equal(f.weight0EverywhereMs, 'never');
  assert.equal(f.restoreAllMs, null);
  assert.equal(f.byFleet, 0);
  // a third of each host's 30 connects went to b3 and timed out after 10 s
  assert.equal(f.failed, 30);
  assert.equal(f.slow2s, 30);
  assert.equal(f.bad, 30, 'each connect counted once though it both failed and took > 2 s');
});

test('fleet analysis: one host that never takes b3 out makes "everywhere" never; no failure at all leaves nothing to measure', () => {
  const f = analyzeFleet({ ...window, clients: [host('c1', 1, -9_500, 1_900, 31_000), host('c2', 2, -9_200, undefined, undefined)] });
  assert.equal(f.weight0EverywhereMs, 'never');
  assert.equal(typeof f.weight0FirstMs, 'number');
  const calm = host('c1', 1, -9_500, undefined, undefined);
  calm.connects = calm.connects.map((c) => ({ ...c, ms: 2, outcome: 'ok' }));
  calm.seen = new Map();
  const g = analyzeFleet({ ...window, clients: [calm] });
  assert.equal(g.firstFailureMs, null);
  assert.equal(g.weight0EverywhereMs, null);
  assert.match(g.notes.join('\n'), /nothing to measure/);
});

test('fleet analysis with the fleet rule: the alert applied per host and on every host, never when a host missed it', () => {
  const hosts = [host('c1', 1, -9_500, 1_900, 31_000), host('c2', 2, -9_200, 2_100, 31_500), host('c3', 3, -8_600, 2_200, 35_000)];
  hosts[0].alertAt = 2_300;
  hosts[1].alertAt = 2_250;
  hosts[2].alertAt = 2_150;
  const f = analyzeFleet({ ...window, clients: hosts });
  assert.deepEqual(f.clients.map((c) => c.alertReceivedMs), [800, 750, 650]);
  assert.equal(f.alertEverywhereMs, 800);
  hosts[1].alertAt = null;
  const g = analyzeFleet({ ...window, clients: hosts });
  assert.equal(g.clients[1].alertReceivedMs, 'never');
  assert.equal(g.alertEverywhereMs, 'never');
});

test('firstAlertPost: the first batch from the v2 endpoint that applied something, at or after the failure', () => {
  const lines = [
    '2026-12-06T10:00:00.000Z warn vipguard: actuator http: POST /api/v2/alerts from 10.201.1.1: 200, 1 alerts: 1 applied, 0 ignored (0 for unknown services), 0 refused',
    '2026-12-06T10:00:04.000Z warn vipguard: actuator http: POST /api/v2/alerts from 10.201.1.1: 409, 1 alerts: 0 applied, 0 ignored (0 for unknown services), 1 refused',
    '2026-12-06T10:00:05.000Z warn vipguard: actuator http: POST /api/v2/alerts from 10.201.1.1: 200, 2 alerts: 2 applied, 0 ignored (0 for unknown services), 0 refused',
  ];
  assert.equal(firstAlertPost(lines, Date.parse('2026-12-06T10:00:01.000Z')), Date.parse('2026-12-06T10:00:05.000Z'), 'a refused batch applied nothing');
  assert.equal(firstAlertPost(lines, 0), Date.parse('2026-12-06T10:00:00.000Z'));
  assert.equal(firstAlertPost(lines, Date.parse('2026-12-06T10:00:06.000Z')), undefined);
});

test('firstQuarantine: the first quarantine of b3 at or after the failure, by the fleet alert or the host\'s own rule', () => {
  const lines = [
    '2026-12-06T10:00:00.000Z info vipguard: quarantine 10.200.0.4:8080 in web (level 0) until 10:00:01, then probed: rule handshake-failures: 1 unanswered',
    '2026-12-06T10:00:05.000Z info vipguard: quarantine 10.200.0.3:8080 in web (level 0) until 10:00:06, then probed: alertmanager VipguardBackendDownFleetWide: x',
    '2026-12-06T10:00:06.000Z info vipguard: quarantine 10.200.0.4:8080 in web (level 0) until 10:00:07, then probed: alertmanager VipguardBackendDownFleetWide: 2 client hosts',
    '2026-12-06T10:00:07.000Z info vipguard: quarantine 10.200.0.4:8080 in web (level 1) until 10:00:09, then probed: rule handshake-failures: 1 unanswered',
  ];
  const since = Date.parse('2026-12-06T10:00:01.000Z');
  assert.deepEqual(firstQuarantine(lines, '10.200.0.4:8080', since, 'VipguardBackendDownFleetWide'), { atWallMs: Date.parse('2026-12-06T10:00:06.000Z'), by: 'fleet' });
  assert.deepEqual(firstQuarantine(lines, '10.200.0.4:8080', 0, 'VipguardBackendDownFleetWide')?.by, 'local');
  assert.equal(firstQuarantine(lines, '10.200.0.44:8080', 0, 'VipguardBackendDownFleetWide'), undefined, 'the address is matched whole');
  assert.equal(firstQuarantine(lines, '10.200.0.2:8080', 0, 'VipguardBackendDownFleetWide'), undefined);
});

function run(system: FleetSystem, n: number, everywhere: number | 'never', byFleet: number): FleetRun {
  const f = analyzeFleet({ ...window, clients: [host('c1', 1, -9_500, 1_900, 31_000), host('c2', 2, -9_200, 2_100, 31_500), host('c3', 3, -8_600, 2_200, 35_000)] });
  const { dead: _d, ...fig } = f;
  return {
    ...fig, weight0EverywhereMs: everywhere, byFleet, clients: fig.clients.map((c, i) => ({ ...c, quarantinedBy: i < 3 - byFleet ? 'local' : 'fleet' })),
    scenario: 'fleet', system, run: n, kernel: '6.1', rateTarget: 1, rateAchieved: 1, maxLagMs: 3, clientTimeoutMs: 10_000, warmupMs: 15_000,
    alertActiveMs: system === 'vipguard-fleet' ? 1500 : undefined, alertEverywhereMs: system === 'vipguard-fleet' ? 2500 : undefined, failureMs: 30_000, injectMs: 20, recoverMs: 10, systemCpuPct: 50, vmCpuPct: 90,
    notes: [], timeline: {}, kernelWeights: {}, recoveredAtMs: 30_010,
  };
}

test('fleet tables: a row per system (min / median / max over runs) and a row per system and host, mechanism per run', () => {
  const runs = [run('vipguard', 1, 2500, 0), run('vipguard', 2, 3000, 0), run('vipguard', 3, 2800, 0),
    run('vipguard-fleet', 1, 1800, 1), run('vipguard-fleet', 2, 2000, 1), run('vipguard-fleet', 3, 2100, 0)];
  const t = fleetTable(runs, '6.1')!;
  const lines = t.split('\n');
  assert.equal(lines.length, 4, 'header, rule, two systems');
  assert.match(lines[2], /^\| vipguard, each host alone \| 3 \|/);
  assert.match(lines[2], /2\.50 s \/ 2\.80 s \/ 3\.00 s/);
  assert.match(lines[3], /^\| vipguard \+ fleet rule/);
  assert.match(lines[3], /1\.80 s \/ 2\.00 s \/ 2\.10 s/);
  assert.match(lines[3], /\| 1\.50 s \/ 1\.50 s \/ 1\.50 s \| 2\.50 s \/ 2\.50 s \/ 2\.50 s \|/, 'alert active, applied on every host');
  assert.match(lines[2], /\| — \| — \|/, 'no alert figures without the fleet rule');
  assert.match(lines[3], /\| 0 \/ 1 \/ 1 \|/, 'hosts taken out by the fleet alert');
  assert.equal(fleetTable(runs, '5.10'), undefined);
  const ct = fleetClientTable(runs, '6.1')!;
  assert.equal(ct.split('\n').length, 2 + 6, 'two systems × three hosts');
  assert.match(ct, /\| vipguard \+ fleet rule \(central Prometheus\) \| c3 \|.*\| fleet, fleet, local \|/);
  const results = { version: 1, started: 'x', options: parseArgs(['--scenario', 'fleet']).options, revision: 'r', lab: [], failover: [], latency: [], overhead: [], capacity: [], problems: [],
    host: { cpu: 'c', cores: 2, kernel: 'k', node: 'n', loadAvg: [1], date: 'd' }, fleet: runs } as BenchResults;
  const md = renderMarkdown(results);
  assert.match(md, /## Fleet: one backend black-holed, three client hosts \(6\.1\)/);
  assert.match(md, /1 connect\/s from each host/);
  assert.match(md, /Per client host:/);
});

test('--rate is per client host in the fleet scenario, 1/s unless given; bare IPVS joins only when --systems names it', () => {
  const d = parseArgs(['--scenario', 'fleet']).options;
  assert.equal(d.fleetRate, 1);
  assert.equal(d.rate, 20, 'the other scenarios keep theirs');
  const r = parseArgs(['--scenario', 'fleet', '--rate', '2']).options;
  assert.equal(r.fleetRate, 2);
  assert.deepEqual(fleetSystems({ systems: ['vipguard'] }), ['vipguard', 'vipguard-fleet']);
  assert.deepEqual(fleetSystems({ systems: ['ipvs', 'vipguard'] }), ['ipvs', 'vipguard', 'vipguard-fleet']);
  assert.deepEqual(fleetSystems({}), ['ipvs', 'vipguard', 'vipguard-fleet'], 'the default systems have bare IPVS');
});
