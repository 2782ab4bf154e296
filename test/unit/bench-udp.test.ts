// The UDP (DNS) benchmark's pure parts (issue 13): the /proc readers for UDP, the A record of an answer, the run
// analysis (lookups, long-lived flows, the kernel's view), the keepalived DNS_CHECK configuration, the table and the
// target judged on ratios within one run.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { analyzeFlows, analyzeUdpFailover, lookupLanded } from '../../src/bench/analyze-udp';
import { parseArgs } from '../../src/bench/cli';
import { observeAfterRecoveryMs, restoreBoundMs } from '../../src/bench/failover';
import { clientPortsTo, parseIpvsTable } from '../../src/bench/procfs';
import { keepalivedConfig, keepalivedTimers, vipguardDefaultConfig } from '../../src/bench/systems';
import { renderMarkdown } from '../../src/bench/table';
import { ratiosToKeepalived, udpTable, udpTargets } from '../../src/bench/table-udp';
import type { BenchResults, SystemName, UdpFailoverRun } from '../../src/bench/types';
import { answerAddress, type Lookup, type LongFlowRecord } from '../../src/lab/dns-load';
import { encodeDnsQuery } from '../../src/actuator/dns-message';

const DEAD = '10.200.0.4';

test('/proc/net/ip_vs and ip_vs_conn read per protocol: the UDP service and its flows apart from the TCP ones on the same VIP', () => {
  const table = `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  0A630001:0050 rr
  -> 0AC80004:1F90      Masq    1      0          0
UDP  0A630001:0035 rr
  -> 0AC80004:0035      Masq    1      0          2
  -> 0AC80003:0035      Masq    1      0          1
`;
  assert.deepEqual([...parseIpvsTable(table).keys()], ['0A630001:0050']);
  const udp = parseIpvsTable(table, 'UDP');
  assert.deepEqual([...udp.keys()], ['0A630001:0035']);
  assert.deepEqual(udp.get('0A630001:0035')!.map((d) => d.key), ['0AC80004:0035', '0AC80003:0035']);
  const conns = `Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
UDP 0AC80001 A1B2 0A630001 0035 0AC80004 0035 UDP             299
UDP 0AC80001 A1B3 0A630001 0035 0AC80003 0035 UDP             299
TCP 0AC80001 A1B4 0A630001 0035 0AC80004 0035 ESTABLISHED     899
`;
  assert.deepEqual(clientPortsTo(conns, '0AC80004:0035', 'UDP'), [0xa1b2]);
  assert.deepEqual(clientPortsTo(conns, '0AC80004:0035'), [0xa1b4], 'TCP by default');
});

test('answerAddress: the A record dnsmasq answers with, nothing from an answer without one', () => {
  const q = encodeDnsQuery('who.vipguard.test', 0x1234);
  const header = Buffer.from(q);
  header.writeUInt16BE(0x8180, 2); // QR, RD, RA
  header.writeUInt16BE(1, 6); // ANCOUNT
  // name (pointer to the question), type A, class IN, TTL 0, RDLENGTH 4, 10.200.0.4
  const rr = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 10, 200, 0, 4]);
  assert.equal(answerAddress(Buffer.concat([header, rr])), '10.200.0.4');
  const nx = Buffer.from(q);
  nx.writeUInt16BE(0x8183, 2);
  assert.equal(answerAddress(nx), undefined, 'NXDOMAIN: no record');
  const aaaa = Buffer.from(rr);
  aaaa.writeUInt16BE(28, 2);
  assert.equal(answerAddress(Buffer.concat([header, aaaa])), undefined, 'not an A record');
});

/**
 * 10 lookups/s for 10 s from t = -2 s, three backends in rr, b3 (DEAD) black-holed from 0 to 5 s; the kernel removes
 * it at 1.5 s and adds it back at 6 s. Lookups to b3 while failing time out twice (10 s, failed); the ones before
 * its removal are the failures. Ports are 1000 + i.
 */
function blackout(): { lookups: Lookup[]; seen: Map<number, number[]>; kernel: [number, number][] } {
  const seen = new Map<number, number[]>();
  const lookups: Lookup[] = [];
  const kernel: [number, number][] = [[-3000, 1], [1500, -1], [6000, 1]];
  let rr = 0;
  for (let i = 0; i < 100; i++) {
    const at = -2000 + i * 100;
    const inService = at < 1500 || at >= 6000;
    const backend = inService ? ['10.200.0.2', '10.200.0.3', DEAD][rr++ % 3] : ['10.200.0.2', '10.200.0.3'][rr++ % 2];
    const port = 1000 + i;
    if (backend === DEAD) seen.set(port, [at + 10]);
    const failing = backend === DEAD && at >= 0 && at < 5000;
    lookups.push(failing
      ? { at, ms: 10_000, outcome: 'timeout', ports: [port], tries: 2 }
      : { at, ms: 3, outcome: 'ok', ports: [port], tries: 1, answeredBy: backend });
  }
  return { lookups, seen, kernel };
}

const window = { fail0: 0, fail1: 20, rec0: 4900, rec1: 5000, rate: 10, backends: 3, deadIp: DEAD };

test('UDP analysis: failed and slow lookups, stop from the first failure (kernel and client), restore', () => {
  const b = blackout();
  const f = analyzeUdpFailover({ ...b, ...window, flows: [] });
  assert.equal(f.lookups, 50);
  // rr over three until 1.5 s: lookups at 0, 300 … 1200 hit b3 (rr index 20, 23, …), i.e. 5 of them.
  assert.equal(f.failed, 5);
  assert.equal(f.slow2s, 5);
  assert.equal(f.bad, 5);
  assert.equal(f.landedOnDead, 5);
  assert.equal(f.savedByRetry, 0);
  const firstFail = b.lookups.find((l) => l.outcome !== 'ok' && l.at >= 0)!;
  const lastFail = [...b.lookups].reverse().find((l) => l.outcome !== 'ok')!;
  assert.equal(f.stopKernelMs, 1500 - firstFail.at);
  assert.equal(f.stopClientMs, lastFail.at - firstFail.at);
  assert.equal(f.restoreMs, 6000 - 5000);
  assert.equal(f.kernelTransitions, 1);
  assert.equal(f.outsideBad, 0);
  assert.equal(f.dead.filter(Boolean).length, 5);
  assert.ok(f.notes.includes('failed lookups by how their last try ended: timeout 5'), f.notes.join('; '));
});

test('UDP analysis: the window runs until the backend serves again, not until its recovery began', () => {
  const lookups: Lookup[] = [
    { at: 100, ms: 10_000, outcome: 'timeout', ports: [1], tries: 2 },
    { at: 4950, ms: 5, outcome: 'error', errno: 'EPERM', ports: [2, 3], tries: 2 },
  ];
  const f = analyzeUdpFailover({ lookups, seen: new Map([[1, [110]], [2, [4960]]]), kernel: [[-1000, 1]], ...window, flows: [] });
  assert.equal(f.lookups, 2, 'the lookup between the start of the recovery (4900) and the backend serving (5000) counts');
  assert.equal(f.outsideBad, 0);
  assert.ok(f.notes.includes('failed lookups by how their last try ended: timeout 1, error EPERM 1'), f.notes.join('; '));
});

test('UDP analysis: a retry on a fresh socket that another backend answers is saved, and still the first failure', () => {
  const lookups: Lookup[] = [
    { at: -500, ms: 2, outcome: 'ok', ports: [10], tries: 1, answeredBy: DEAD },
    { at: 100, ms: 12, outcome: 'ok', ports: [11, 12], tries: 2, answeredBy: '10.200.0.2' },
    { at: 200, ms: 2, outcome: 'ok', ports: [13], tries: 1, answeredBy: '10.200.0.3' },
  ];
  const seen = new Map([[10, [-490]], [11, [105]]]);
  const f = analyzeUdpFailover({ lookups, seen, kernel: [[-1000, 1]], ...window, flows: [] });
  assert.equal(f.failed, 0);
  assert.equal(f.landedOnDead, 1);
  assert.equal(f.savedByRetry, 1);
  assert.equal(f.stopKernelMs, 'never', 'nobody took b3 out');
  assert.equal(f.stopClientMs, 0, 'the one lookup that went there was the first failure');
  assert.equal(lookupLanded(lookups[2], seen, DEAD), false);
  assert.equal(lookupLanded({ at: 0, ms: 1, outcome: 'timeout', ports: [], tries: 1 }, seen, DEAD), undefined);
});

test('UDP analysis: long-lived flows on the dead backend, moved or not, and how long after their first unanswered query', () => {
  const q = (at: number, by?: string) => (by ? { at, answeredAt: at + 2, answeredBy: by } : { at });
  const flows: LongFlowRecord[] = [
    // on b3, moved at 1250 after its first unanswered query at 0
    { localPort: 1, queries: [q(-250, DEAD), q(0), q(250), q(500), q(750), q(1000), q(1250, '10.200.0.2'), q(1500, '10.200.0.2')] },
    // on b3, never moved (bare IPVS, or removed with expire_nodest_conn=0)
    { localPort: 2, queries: [q(-250, DEAD), q(0), q(250), q(5250, DEAD)] },
    // on a healthy backend throughout
    { localPort: 3, queries: [q(-250, '10.200.0.3'), q(0, '10.200.0.3'), q(250, '10.200.0.3')] },
    // never answered before the failure: counted on no backend, with a note
    { localPort: 4, queries: [q(-250)] },
  ];
  const notes: string[] = [];
  const f = analyzeFlows({ flows, fail0: 0, rec0: 5000, deadIp: DEAD }, notes);
  assert.equal(f.flows, 4);
  assert.equal(f.flowsOnDead, 2);
  assert.equal(f.flowsMoved, 1);
  assert.deepEqual(f.flowMoveMs, [1250]);
  assert.equal(f.flowQueries, 7 + 2 + 2);
  assert.equal(f.flowQueriesFailed, 5 + 2);
  assert.ok(notes.some((n) => /1 long-lived flow\(s\) had no answer before the failure/.test(n)), notes.join('; '));
});

const topo = {
  vip: { host: '10.99.0.1', port: 80 }, status: { udpPort: 53 },
  backends: [1, 2, 3].map((n) => ({ name: `b${n}`, ip: `10.200.0.${n + 1}`, port: 8080 })),
} as never;
const DNS = { protocol: 'udp', dnsName: 'who.vipguard.test' } as const;

test('keepalived for the UDP service: protocol UDP on port 53, DNS_CHECK for an A record the backends answer; 1 s variant sets delay_loop and connect_timeout', () => {
  const d = keepalivedConfig(topo, false, DNS);
  assert.match(d, /virtual_server 10\.99\.0\.1 53 \{/);
  assert.match(d, /protocol UDP\n/);
  assert.match(d, /real_server 10\.200\.0\.4 53 \{/);
  assert.match(d, /DNS_CHECK \{\n\s+type A\n\s+name who\.vipguard\.test\n\s+\}/);
  assert.doesNotMatch(d, /delay_loop|connect_timeout|TCP_CHECK/);
  const a = keepalivedConfig(topo, true, DNS);
  assert.match(a, /delay_loop 1\n/);
  assert.match(a, /connect_timeout 1\n/);
  assert.deepEqual(keepalivedTimers(false, DNS), { delayLoopS: 60, connectTimeoutS: 5, retry: 3, delayBeforeRetryS: 60, warmupS: 60 });
  assert.deepEqual(keepalivedTimers(true, DNS), { delayLoopS: 1, connectTimeoutS: 1, retry: 3, delayBeforeRetryS: 1 });
  // The TCP observation window is unchanged; DNS_CHECK's retries come after the recovery, so a short one suffices.
  assert.equal(observeAfterRecoveryMs('keepalived-default'), 12_000);
  assert.equal(observeAfterRecoveryMs('keepalived-default', DNS), 6000);
  assert.equal(restoreBoundMs('keepalived-default', DNS), (60 + 5 + 60 + 5 + 10) * 1000);
});

test('keepalived -t accepts the benchmark\'s configurations (where keepalived is installed)', (t) => {
  const which = spawnSync('sh', ['-c', 'command -v keepalived'], { encoding: 'utf8' });
  if (which.status !== 0) return t.skip('no keepalived here');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-ka-test-'));
  try {
    for (const [name, text] of [['tcp', keepalivedConfig(topo, false)], ['tcp-1s', keepalivedConfig(topo, true)],
      ['dns', keepalivedConfig(topo, false, DNS)], ['dns-1s', keepalivedConfig(topo, true, DNS)]] as const) {
      const file = path.join(dir, `${name}.conf`);
      fs.writeFileSync(file, text);
      const r = spawnSync(which.stdout.trim(), ['-t', '-f', file, '-l', '-D'], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 0, `keepalived -t on the ${name} configuration: ${r.stdout}${r.stderr}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('vipguard for the UDP service: protocol udp with the DNS probe, nothing else set', () => {
  const y = vipguardDefaultConfig(topo, false, DNS);
  assert.match(y, /name: dns\n\s+address: 10\.99\.0\.1\n\s+port: 53\n\s+protocol: udp\n\s+probe:\n\s+dns: who\.vipguard\.test/);
  assert.doesNotMatch(y, /synTimeout|rules/);
});

test('bench CLI takes the UDP scenarios', () => {
  assert.deepEqual(parseArgs(['--scenario', 'udp-blackout,udp-refusal', '--fail-sec', '8']).options.scenarios, ['udp-blackout', 'udp-refusal']);
});

function udpRun(system: SystemName, run: number, o: Partial<UdpFailoverRun> = {}): UdpFailoverRun {
  return {
    scenario: 'udp-blackout', system, run, kernel: '6.1', rateTarget: 20, rateAchieved: 19.8, maxLagMs: 20, clientTimeoutMs: 5000, attempts: 2,
    failureMs: 30_000, injectMs: 100, recoverMs: 100, systemCpuPct: 1, vmCpuPct: 40, notes: [], timeline: [], kernelWeights: [], recoveredAtMs: 30_100,
    lookups: 600, failed: 200, slow2s: 200, bad: 200, p50Ms: 3, p99Ms: 10_000, outsideBad: 0, landedOnDead: 200, savedByRetry: 0,
    stopKernelMs: 'never', stopClientMs: 'never', restoreMs: null, kernelTransitions: 0,
    flows: 6, flowsOnDead: 2, flowsMoved: 0, flowMoveMs: [], flowQueries: 720, flowQueriesFailed: 240, ...o,
  };
}

test('UDP table and target: ratios to keepalived 1 s within the same run, stop ≤ 1 s', () => {
  const runs = [
    udpRun('ipvs', 1), udpRun('keepalived-aggressive', 1, { bad: 40, stopKernelMs: 6000 }), udpRun('vipguard', 1, { bad: 2, stopKernelMs: 400, flowsMoved: 2, flowMoveMs: [300, 500] }),
    udpRun('keepalived-aggressive', 2, { bad: 10, stopKernelMs: 5000 }), udpRun('vipguard', 2, { bad: 2, stopKernelMs: 1400 }),
  ];
  assert.deepEqual(ratiosToKeepalived(runs, 'vipguard', 'udp-blackout', '6.1'), [0.05, 0.2]);
  assert.deepEqual(ratiosToKeepalived(runs, 'ipvs', 'udp-blackout', '6.1'), [5]);
  const v = udpTargets(runs);
  assert.equal(v.length, 2);
  assert.equal(v[0].met, false, 'run 2 failed a fifth of what keepalived did');
  assert.match(v[0].measured, /1 of 2 runs within/);
  assert.equal(v[1].met, false, 'stop 1.4 s in run 2');
  assert.ok(udpTargets([udpRun('keepalived-aggressive', 1, { bad: 0 }), udpRun('vipguard', 1, { bad: 0, stopKernelMs: 300 })]).every((x) => x.met),
    'keepalived failing nothing: vipguard meets the ratio by failing nothing too');
  const t = udpTable(runs, 'udp-blackout', '6.1')!;
  assert.match(t, /keepalived DNS_CHECK, 1 s \/ 1 s/);
  assert.match(t, /\| vipguard, defaults \| 2 \|/);
  assert.match(t, /\| 2 \/ 2 \/ 2 \| 0 \/ 1 \/ 2 \| 500 ms \|/, 'flows on b3, moved (none in run 2), the slowest move (run 1)');
  assert.equal(udpTable(runs, 'udp-refusal', '6.1'), undefined);
  const r = {
    version: 1, started: '2026-12-06T12:00:00Z', revision: 'abc', options: parseArgs(['--scenario', 'udp-blackout']).options,
    host: { cpu: 'x', cores: 2, kernel: '6.18', node: 'v20', loadAvg: [0, 0, 0], date: '' }, lab: [], failover: [], restarts: [], udp: runs,
    latency: [], overhead: [], capacity: [], problems: [],
  } as BenchResults;
  const md = renderMarkdown(r);
  assert.match(md, /## UDP blackout, DNS \(6\.1\)/);
  assert.match(md, /MISSED \| \[6\.1\] udp-blackout: vipguard's failed or > 2 s lookups/);
});
