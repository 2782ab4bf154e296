// The actuator's decisions and reconcile loop against an in-memory IPVS table (a fake: the real kernel is in
// test/lab). Checks quarantine, restore with probe, backoff, cap, ownership, external edits and restarts.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Actuator } from '../../src/actuator/actuator';
import { parseConfig } from '../../src/config/config';
import { DestinationId, ServiceId, destinationKey } from '../../src/actuator/ipvs/identity';
import { FakeClock, FakeIpvs } from './fakes';
import type { FlatSpan } from '../../src/otlp/model';
import type { QuarantineRecord } from '../../src/actuator/policy';

const v4 = (address: string, port: number): DestinationId => ({ family: 4, address, port });
const SVC: ServiceId = { kind: 'address', protocol: 'tcp', family: 4, address: '10.99.0.1', port: 80 };
const OTHER: ServiceId = { kind: 'address', protocol: 'tcp', family: 4, address: '10.99.0.9', port: 80 };

function setup(yaml: string, opts: { probe?: boolean; records?: QuarantineRecord[] } = {}) {
  const ipvs = new FakeIpvs();
  ipvs.add(SVC, [[v4('10.200.0.2', 80), 1], [v4('10.200.0.3', 80), 1], [v4('10.200.0.4', 80), 3]]);
  ipvs.add(OTHER, [[v4('10.200.0.9', 80), 5]]);
  const clock = new FakeClock();
  const saved: QuarantineRecord[][] = [];
  const config = parseConfig(yaml);
  const probe = { ok: opts.probe ?? true, calls: 0 };
  const act = new Actuator(config, {
    ipvs, clock, probe: async () => { probe.calls++; return probe.ok; }, saveState: (r) => saved.push(r),
    initialRecords: opts.records,
  });
  /** time passes: the scheduler looks at its timers, probes answer, the reconcile runs */
  const pass = async (ms: number) => {
    clock.advance(ms);
    act.tick();
    await act.idle();
    await act.reconcile();
  };
  return { ipvs, clock, act, saved, probe, pass };
}

const WATCHED = `
services:
  - name: web
    address: 10.99.0.1
    port: 80
actuator:
  quarantine: { base: 10s, max: 1m }
`;

const span = (backend: string, outcome: string, endMs: number): FlatSpan => ({
  name: 'vipguard.connect', traceId: '', spanId: '', parentSpanId: '', kind: 3, startNs: 0n, endNs: BigInt(endMs) * 1_000_000n,
  attributes: { 'vipguard.outcome': outcome, 'server.address': '10.99.0.1', 'server.port': 80, 'network.peer.address': backend, 'network.peer.port': 80 },
  resource: {}, statusCode: 2, links: [],
});

test('a failed handshake span quarantines its backend; after the hold a probe answers and the old weight is back', async () => {
  const { ipvs, clock, act, saved, pass, probe } = setup(WATCHED);
  await act.start();
  act.ingestSpans([span('10.200.0.4', 'established', clock.wall()), span('10.200.0.4', 'unanswered', clock.wall())]);
  await act.reconcile();
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.4:80'), 0);
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.2:80'), 1, 'healthy untouched');
  assert.ok(saved.length > 0, 'state persisted');
  await pass(9_999);
  assert.equal(probe.calls, 0, 'no probe during the hold');
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.4:80'), 0);
  await pass(2);
  assert.equal(probe.calls, 1);
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.4:80'), 3, 'restored to the weight it had');
  await act.stop({ restore: false });
});

test('a new quarantine reaches the kernel at once, even while a reconcile is listing (retransmits are due)', async () => {
  const { ipvs, clock, act } = setup(WATCHED);
  const changes: string[] = [];
  act.setEvents({ change: (c, err, ctx) => changes.push(`${c.op} ${destinationKey((c as { destination: DestinationId }).destination)} ${err ? 'failed' : 'ok'} signal ${ctx.signalAt}`) });
  await act.start();
  // A periodic reconcile stuck in its listing (a slow kernel, a busy process).
  let release!: () => void;
  const listed = ipvs.listDestinations.bind(ipvs);
  ipvs.listDestinations = async (s: ServiceId) => { await new Promise<void>((r) => { release = r; }); return listed(s); };
  const running = act.reconcile();
  act.ingestSpans([span('10.200.0.4', 'unanswered', clock.wall() - 5)]);
  await new Promise((r) => setImmediate(r));
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.4:80'), 0, 'weight 0 without waiting for the listing');
  assert.deepEqual(changes, [`edit-destination 10.200.0.4:80 ok signal ${clock.wall() - 5}`], 'reported once, with the signal time');
  ipvs.listDestinations = listed;
  release();
  await running;
  await act.reconcile();
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.4:80'), 0);
  assert.equal(changes.length, 1, 'the reconcile after it finds nothing left to do');
  await act.stop({ restore: false });
});

const late = (backend: string, endMs: number, ms: number): FlatSpan => {
  const s = span(backend, 'established', endMs);
  return { ...s, statusCode: 0, attributes: { ...s.attributes, 'vipguard.handshake.late': true, 'vipguard.handshake.duration': ms / 1000 } };
};

test('a late answer from a quarantined destination gives it back at once: slow, not dead', async () => {
  const { ipvs, clock, act } = setup(WATCHED);
  await act.start();
  act.ingestSpans([span('10.200.0.4', 'unanswered', clock.wall())]);
  await act.reconcile();
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.4:80'), 0);
  clock.advance(150);
  act.ingestSpans([late('10.200.0.4', clock.wall(), 350)]);
  await act.reconcile();
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.4:80'), 3, 'its weight is back');
  assert.equal(act.quarantines().filter((q) => q.active).length, 0);
  await act.stop({ restore: false });
});

test('the late answer in the same batch as the unanswered attempt: no quarantine is left behind', async () => {
  // The receiver's deadline timer reports the attempt unanswered and the answer comes in before that urgent span
  // is exported: both go out in one batch, the answer after the attempt it answers.
  const { ipvs, clock, act } = setup(WATCHED);
  await act.start();
  act.ingestSpans([span('10.200.0.4', 'unanswered', clock.wall()), late('10.200.0.4', clock.wall() + 3, 203)]);
  await act.reconcile();
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.4:80'), 3);
  assert.equal(act.quarantines().filter((q) => q.active).length, 0);
  await act.stop({ restore: false });
});

test('probe, then restore: a destination still down stays out, at the same level, and is back at its first answer', async () => {
  const { ipvs, clock, act, probe, pass } = setup(WATCHED, { probe: false });
  await act.start();
  act.ingestSpans([span('10.200.0.3', 'refused', clock.wall())]);
  await act.reconcile();
  for (let i = 0; i < 4; i++) await pass(i === 0 ? 10_001 : 500);
  assert.equal(probe.calls, 4, 'probed every probeInterval after the hold');
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.3:80'), 0, 'never put back in service to find out');
  assert.equal(act.quarantines()[0].level, 0, 'still down while out is not a repeat offence');
  probe.ok = true;
  await pass(500);
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.3:80'), 1);
  await act.stop({ restore: false });
});

test('stale spans (a replayed backlog) and unowned or unknown targets do nothing', async () => {
  const { ipvs, clock, act } = setup(WATCHED);
  await act.start();
  act.ingestSpans([span('10.200.0.4', 'unanswered', clock.wall() - 60_000), span('10.200.0.77', 'unanswered', clock.wall())]);
  await act.reconcile();
  assert.deepEqual(ipvs.calls, []);
  assert.equal(act.resolveTarget({ vipguard_service: 'web', backend: '10.200.0.9:80' }).ok, false);
  assert.equal(act.resolveTarget({ vipguard_service: 'nope', backend: '10.200.0.4:80' }).ok, false);
  const r = act.resolveTarget({ vipguard_service: 'web', network_peer_address: '10.200.0.4', network_peer_port: '80' });
  assert.ok(r.ok);
  await act.stop({ restore: false });
});

test('the owner wins: its edit while quarantined is the weight given back; other services stay as they are', async () => {
  const { ipvs, clock, act, pass } = setup(WATCHED);
  await act.start();
  act.ingestSpans([span('10.200.0.2', 'unanswered', clock.wall())]);
  await act.reconcile();
  ipvs.setWeight('tcp/10.99.0.1:80', '10.200.0.2:80', 7); // its owner (keepalived, kube-proxy, an operator)
  await act.reconcile();
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.2:80'), 0, 'still quarantined');
  assert.equal(ipvs.weight('tcp/10.99.0.9:80', '10.200.0.9:80'), 5);
  assert.ok(!ipvs.calls.some((c) => c.includes('10.200.0.9')));
  await pass(10_001);
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.2:80'), 7, 'the owner\'s weight, not the one before the quarantine');
  await act.stop({ restore: false });
});

test('every backend failing: the cap holds and the service reports panic', async () => {
  const { ipvs, clock, act } = setup(WATCHED);
  await act.start();
  act.ingestSpans(['10.200.0.2', '10.200.0.3', '10.200.0.4'].map((b) => span(b, 'unanswered', clock.wall())));
  await act.reconcile();
  const weights = ['10.200.0.2:80', '10.200.0.3:80', '10.200.0.4:80'].map((d) => ipvs.weight('tcp/10.99.0.1:80', d));
  assert.equal(weights.filter((w) => w === 0).length, 1, '50% of 3 rounds down to 1');
  const st = act.status() as { services: { panic: boolean }[] };
  assert.equal(st.services[0].panic, true);
  await act.stop({ restore: false });
});

test('restart after kill -9: quarantine state reconciles (restored if expired, kept if not)', async () => {
  const first = setup(WATCHED);
  await first.act.start();
  first.act.ingestSpans([span('10.200.0.4', 'unanswered', first.clock.wall())]);
  await first.act.reconcile();
  const records = first.saved[first.saved.length - 1];
  // no stop(): the process died. A new one starts with the saved state, while still quarantined …
  const again = setup(WATCHED, { records });
  again.ipvs.services = first.ipvs.services;
  again.clock.t = first.clock.t + 2_000;
  await again.act.start();
  assert.equal(again.ipvs.weight('tcp/10.99.0.1:80', '10.200.0.4:80'), 0);
  // … and once it is over, the weight comes back.
  await again.pass(10_000);
  assert.equal(again.ipvs.weight('tcp/10.99.0.1:80', '10.200.0.4:80'), 3);
  await again.act.stop({ restore: false });
});

test('graceful stop leaves the table as configured; a restart puts the quarantine back', async () => {
  const { ipvs, clock, act, saved } = setup(WATCHED);
  await act.start();
  act.ingestSpans([span('10.200.0.4', 'unanswered', clock.wall())]);
  await act.reconcile();
  await act.stop({ restore: true });
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.4:80'), 3);
  const records = saved[saved.length - 1];
  assert.ok(records.some((r) => r.destination === '10.200.0.4:80' && r.active), 'the state file still has it');
  const again = setup(WATCHED, { records });
  again.ipvs.services = ipvs.services;
  again.clock.t = clock.t + 1000;
  await again.act.start();
  assert.equal(again.ipvs.weight('tcp/10.99.0.1:80', '10.200.0.4:80'), 0);
  await again.act.stop({ restore: false });
});

test('a stop for a restart (handover) keeps weight 0 and the record; a destination the configuration dropped is given back even then', async () => {
  const yaml = (destinations: string) => `
services:
  - name: web
    address: 10.99.0.1
    port: 80
    manage: false
    destinations: [${destinations}]
actuator:
  quarantine: { base: 10s, max: 1m, maxQuarantined: 2 }
`;
  const { ipvs, clock, act, saved } = setup(yaml('{ address: 10.200.0.3, port: 80 }, { address: 10.200.0.4, port: 80 }'));
  await act.start();
  act.ingestSpans([span('10.200.0.4', 'unanswered', clock.wall()), span('10.200.0.3', 'unanswered', clock.wall())]);
  await act.reconcile();
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.3:80'), 0);
  act.setConfig(parseConfig(yaml('{ address: 10.200.0.4, port: 80 }'))); // .3 leaves the configuration while quarantined
  assert.equal(await act.stop({ restore: false }), 1, 'one destination held at 0');
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.4:80'), 0, 'the quarantine stays in the kernel for the next start');
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.3:80'), 1, 'the orphan is given back (by the reconcile the new configuration started): no record would remember it');
  const records = saved[saved.length - 1];
  assert.deepEqual(records.filter((r) => r.active).map((r) => r.destination), ['10.200.0.4:80'], 'the state file has the quarantine');
  const again = setup(WATCHED, { records });
  again.ipvs.services = ipvs.services;
  again.clock.t = clock.t + 1000;
  await again.act.start();
  assert.equal(again.ipvs.weight('tcp/10.99.0.1:80', '10.200.0.4:80'), 0, 'the next start takes it over');
  await again.act.stop({ restore: true });
  assert.equal(again.ipvs.weight('tcp/10.99.0.1:80', '10.200.0.4:80'), 3, 'and its own stop gives the weight back');
});

test('managed service: created as written, extra destinations removed, quarantine within it', async () => {
  const { ipvs, act, pass } = setup(`
services:
  - name: api
    address: 10.99.0.2
    port: 8080
    scheduler: wrr
    destinations:
      - { address: 10.200.0.2, port: 8080, weight: 2 }
      - { address: 10.200.0.3, port: 8080 }
`);
  await act.start();
  assert.equal(ipvs.services.get('tcp/10.99.0.2:8080')?.service.scheduler, 'wrr');
  assert.equal(ipvs.weight('tcp/10.99.0.2:8080', '10.200.0.2:8080'), 2);
  const svc: ServiceId = { kind: 'address', protocol: 'tcp', family: 4, address: '10.99.0.2', port: 8080 };
  await ipvs.addDestination(svc, v4('10.200.0.8', 8080), { weight: 1, forward: 'nat' });
  const r = act.resolveTarget({ vipguard_service: 'api', backend: '10.200.0.2:8080' });
  assert.ok(r.ok);
  if (r.ok) act.submit({ source: 'alertmanager', name: 'Down', service: r.service, serviceId: r.serviceId, destination: r.destination, state: 'firing', fingerprint: 'x', reason: 'test' });
  await act.reconcile();
  assert.equal(ipvs.weight('tcp/10.99.0.2:8080', '10.200.0.8:8080'), undefined, 'not in the config: removed');
  assert.equal(ipvs.weight('tcp/10.99.0.2:8080', '10.200.0.2:8080'), 0);
  await pass(1_001);
  assert.equal(ipvs.weight('tcp/10.99.0.2:8080', '10.200.0.2:8080'), 2, 'config weight back');
  await act.stop({ restore: false });
});

test('the same span arriving twice (in-process and through a collector) counts once', async () => {
  const { act, clock, ipvs } = setup(WATCHED.replace('actuator:', 'actuator:\n  rules: [{ name: two, outcomes: [unanswered], threshold: 2, window: 10s }]'));
  await act.start();
  const s = { ...span('10.200.0.4', 'unanswered', clock.wall()), traceId: 'aa', spanId: 'bb' };
  act.ingestSpans([s]);
  act.ingestSpans([s]);
  await act.reconcile();
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.4:80'), 3, 'one failure, threshold two: no quarantine');
  act.ingestSpans([{ ...s, spanId: 'cc' }]);
  await act.reconcile();
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.4:80'), 0);
  await act.stop({ restore: false });
});

test('a watched destination deleted while quarantined and re-added after its quarantine keeps the weight it was re-added with', async () => {
  const { ipvs, clock, act, pass } = setup(WATCHED);
  await act.start();
  act.ingestSpans([span('10.200.0.3', 'refused', clock.wall())]);
  await act.reconcile();
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.3:80'), 0);
  await ipvs.removeDestination(SVC, v4('10.200.0.3', 80)); // its owner deletes it
  await act.reconcile();
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.3:80'), undefined, 'a watched destination is not re-added');
  await pass(10_001); // the quarantine ends (probe answers) while the destination is gone
  await ipvs.addDestination(SVC, v4('10.200.0.3', 80), { weight: 5, forward: 'nat' }); // and re-added
  await act.reconcile();
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.3:80'), 5, 'the owner\'s weight, not the one it had before its quarantine');
  await act.stop({ restore: false });
});

test('a probe that never settles does not stall recovery: it counts as failed after its timeout', async () => {
  const ipvs = new FakeIpvs();
  ipvs.add(SVC, [[v4('10.200.0.2', 80), 1], [v4('10.200.0.3', 80), 1], [v4('10.200.0.4', 80), 3]]);
  const clock = new FakeClock();
  let calls = 0;
  let answer = false;
  const act = new Actuator(parseConfig(WATCHED.replace('{ base: 10s, max: 1m }', '{ base: 1s, max: 1m, probeTimeout: 10ms }')), {
    ipvs, clock, probe: () => { calls++; return answer ? Promise.resolve(true) : new Promise<boolean>(() => {}); },
  });
  await act.start();
  act.ingestSpans([span('10.200.0.4', 'unanswered', clock.wall())]);
  await act.reconcile();
  clock.advance(1_001);
  act.tick();
  assert.equal(calls, 1);
  await new Promise((r) => setTimeout(r, 400)); // the guard: probeTimeout + 250 ms of real time
  answer = true;
  clock.advance(500);
  act.tick();
  await act.idle();
  await act.reconcile();
  assert.equal(calls, 2, 'the next probe went out');
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.4:80'), 3);
  await act.stop({ restore: false });
});

test('a TCP and a UDP service on one address and port are kept apart: spans by network.transport, alerts by network_transport', async () => {
  const { ipvs, clock, act } = setup(`
services:
  - { name: web, address: 10.99.0.1, port: 80 }
  - { name: dns, address: 10.99.0.1, port: 80, protocol: udp, probe: { dns: example.org } }
actuator:
  quarantine: { base: 10s, max: 1m }
`);
  const UDP: ServiceId = { ...SVC, protocol: 'udp' };
  ipvs.add(UDP, [[v4('10.200.0.2', 80), 1], [v4('10.200.0.3', 80), 1], [v4('10.200.0.4', 80), 3]]);
  await act.start();
  const ambiguous = act.resolveTarget({ server_address: '10.99.0.1', server_port: '80', backend: '10.200.0.4:80' });
  assert.ok(!ambiguous.ok && ambiguous.refusal === 'bad-target' && /web \(tcp\) and dns \(udp\).*network_transport/.test(ambiguous.error), JSON.stringify(ambiguous));
  const udp = act.resolveTarget({ server_address: '10.99.0.1', server_port: '80', network_transport: 'udp', backend: '10.200.0.4:80' });
  assert.ok(udp.ok && udp.service === 'dns', JSON.stringify(udp));
  // A UDP span names the UDP service only: its destination is removed (held out), the TCP service's is untouched.
  const s = span('10.200.0.4', 'unanswered', clock.wall());
  act.ingestSpans([{ ...s, attributes: { ...s.attributes, 'network.transport': 'udp' } }]);
  await act.idle();
  await act.reconcile();
  assert.equal(ipvs.weight('udp/10.99.0.1:80', '10.200.0.4:80'), undefined, 'the UDP destination removed');
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.4:80'), 3, 'the TCP one untouched');
  assert.deepEqual(act.quarantines().map((r) => [r.service, r.destination, r.removedAs?.weight]), [['dns', '10.200.0.4:80', 3]]);
  // A span without network.transport is TCP's (the receiver's spans before UDP existed).
  act.ingestSpans([span('10.200.0.3', 'unanswered', clock.wall())]);
  await act.idle();
  await act.reconcile();
  assert.equal(ipvs.weight('tcp/10.99.0.1:80', '10.200.0.3:80'), 0);
  assert.equal(ipvs.weight('udp/10.99.0.1:80', '10.200.0.3:80'), 1);
});
