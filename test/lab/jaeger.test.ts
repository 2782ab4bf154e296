// A real trace backend at the end of the shipped pipeline, inside the lab VM on real IPVS: `vipguard run` (receiver
// and actuator in one process) exports to the real collector (otel-config/collector.yaml, its loopback ports moved),
// whose traces/backends pipeline sends to Jaeger v2 (scripts/jaeger.sh) over TLS — the shipped exporter insists on
// TLS (`insecure: false`), so Jaeger's OTLP receiver gets a test-time certificate (test/certs.ts) and an overlay,
// passed as a second --config the way otel-config/actuator-tls.yaml is, adds only the CA to trust. b3 is black-holed
// under load and quarantined; then Jaeger's own query API must find, by network.peer.address, the unanswered attempts
// on b3, the retry of the same socket that was established on another backend (linked to them), and the connection
// it opened. Asking the same of b1, which never failed, finds no unanswered attempt: the search can come back empty.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Topology } from '../../src/lab/topology';
import { CollectorProcess, SidecarPorts, collectorBinary, sidecarConfig, startCollector, stopCollector } from '../../src/lab/collector';
import { JaegerProcess, JaegerSpan, findTraces, getTraceOtlp, jaegerBinary, jaegerServices, rescueIn, startJaeger, stopJaeger } from '../../src/lab/jaeger';
import { labConfig } from '../../src/lab/vipguard-process';
import { freePort } from '../../src/common/ports';
import { makePki, Pki } from '../certs';
import { Load, ipvsWeights, sleep, startVipguard, stopVipguard, VipguardProcess } from './harness';
import { waitFor } from '../helpers';

const KERNEL = process.env.VIPGUARD_LAB_KERNEL;
// On 6.1 only (VIPGUARD_LAB_JAEGER_ALL=1 runs it on any lab kernel): Jaeger and the collector are userspace, and
// what depends on the kernel here — the receiver's spans per attempt, the rescue at the SYN retransmit, their chain
// through the collector — is tested on 5.10, 6.1 and 6.12 by receiver.test.ts and collector.test.ts. The file costs
// ~50 s of a lab VM (measured on all three, otel-config/README.md), which CI's budget spends better elsewhere.
const JAEGER_KERNEL = '6.1';
const SKIP = !KERNEL || KERNEL === 'host' ? 'needs IPVS: runs inside the lab VM'
  : KERNEL !== JAEGER_KERNEL && process.env.VIPGUARD_LAB_JAEGER_ALL !== '1' ? `runs on ${JAEGER_KERNEL} only (the other kernels add nothing Jaeger depends on)`
    : false;
const SERVICE = 'vipguard-receiver';

describe('spans in a real trace backend: Jaeger v2 behind the collector', { skip: SKIP }, () => {
  let topo: Topology;
  let pki: Pki | undefined;
  let jaeger: JaegerProcess | undefined;
  let vg: VipguardProcess | undefined;
  let collector: CollectorProcess | undefined;
  const t0 = Date.now();
  const key = (name: string) => `${topo.backend(name).ip}:${topo.backend(name).port}`;

  before(async () => {
    collectorBinary(); // each fails first, naming its build script, when the binary was not built
    jaegerBinary();
    pki = makePki();
    topo = await Topology.up({ backends: ['healthy', 'healthy', 'healthy'], ipv6: false });
    const ports: SidecarPorts = { otlp: await freePort(), actuator: await freePort(), telemetry: await freePort() };
    // Side by side (each takes seconds to start under TCG), both settled before going on, so that after() stops the
    // one that started when the other failed.
    const started = await Promise.allSettled([
      startJaeger({ tls: pki.server }).then((j) => (jaeger = j)),
      startVipguard(labConfig({ address: topo.vip.host, port: topo.vip.port }, {
        receiver: { export: { enabled: true, endpoint: `127.0.0.1:${ports.otlp}` } },
        actuator: { otlpListen: `127.0.0.1:${ports.actuator}`, quarantine: { base: '60s' } },
      })).then((v) => (vg = v)),
    ]);
    for (const r of started) if (r.status === 'rejected') throw r.reason;
    const dead = await freePort(); // the metrics backend: nothing listens, nothing leaves the VM
    collector = await startCollector(sidecarConfig(ports, path.join(vg!.dir, 'token')), {
      env: { VIPGUARD_TRACES_ENDPOINT: `127.0.0.1:${jaeger!.ports.otlp}`, VIPGUARD_REMOTE_WRITE_URL: `http://127.0.0.1:${dead}/api/v1/write` },
      overlays: [`exporters:\n  otlp_grpc/traces:\n    tls:\n      ca_file: ${pki.ca}\n`],
    });
    console.log(`[${KERNEL}] jaeger: Jaeger, vipguard and the collector ready ${Date.now() - t0} ms after the test began`);
  });

  after(async () => {
    if (process.env.VIPGUARD_TEST_DEBUG) {
      console.log(`--- collector:\n${collector?.lines.slice(-30).join('\n')}\n--- jaeger:\n${jaeger?.lines.slice(-30).join('\n')}`);
    }
    await stopCollector(collector);
    await Promise.all([stopVipguard(vg), stopJaeger(jaeger)]);
    pki?.cleanup();
    await topo?.down();
  });

  test('Jaeger\'s query API finds b3\'s unanswered attempts, the retry that rescued them and the connection it opened', async () => {
    const b3 = topo.backend('b3');
    const load = new Load(topo.vip.host, topo.vip.port, 6, 5000);
    load.start();
    try {
      await sleep(3000); // handshakes to every backend, so each backend's deadline is learnt
      await topo.set('b3', 'blackhole');
      await waitFor(() => ipvsWeights(topo.vip.host, topo.vip.port)[key('b3')] === 0, 20_000, 'b3 quarantined');
      await sleep(2500); // the connects pending on b3 complete at their SYN retransmit, on another backend
    } finally {
      await load.stop();
    }
    await topo.set('b3', 'healthy');
    const failed = load.results.filter((r) => r.outcome !== 'ok');

    // The backends pipeline batches for 5 s: poll Jaeger (bounded) until a rescue is there.
    const queried = Date.now();
    let unanswered: JaegerSpan[][] = [];
    let rescue: ReturnType<typeof rescueIn>;
    while (Date.now() - queried < 30_000) {
      unanswered = await findTraces(jaeger!.queryUrl, { service: SERVICE, tags: { 'network.peer.address': b3.ip, 'vipguard.outcome': 'unanswered' } });
      rescue = unanswered.map((t) => rescueIn(t, b3.ip)).find((r) => r?.connection);
      if (rescue) break;
      await sleep(1000);
    }
    const services = await jaegerServices(jaeger!.queryUrl);
    const complaints = collector!.lines.filter((l) => /\t(warn|error)\t/i.test(l) && !l.includes('/api/v1/write'));
    console.log(`[${KERNEL}] jaeger: ${load.results.length} connects (${failed.length} failed); in Jaeger ${Date.now() - queried} ms after the load: ` +
      `services ${JSON.stringify(services)}; ${unanswered.length} traces with an unanswered attempt on b3 (${b3.ip})` +
      (rescue ? `; one rescue: ${rescue.path.map((s) => `${s.tags['vipguard.outcome']}@${s.tags['network.peer.address']}`).join(' -> ')}, then ${rescue.connection?.name}` : '') +
      (complaints.length ? `; collector warnings:\n${complaints.slice(-5).join('\n')}` : ''));

    assert.ok(services.includes(SERVICE), `Jaeger knows the receiver's service: ${JSON.stringify(services)}`);
    assert.ok(unanswered.length > 0, `Jaeger finds traces with unanswered attempts on b3 (${b3.ip})`);
    for (const trace of unanswered) {
      const hits = trace.filter((s) => s.tags['network.peer.address'] === b3.ip && s.tags['vipguard.outcome'] === 'unanswered');
      assert.ok(hits.length > 0, `each trace found holds a matching span: ${JSON.stringify(trace)}`);
      for (const s of hits) {
        assert.equal(s.name, 'vipguard.connect');
        assert.equal(s.service, SERVICE);
        assert.equal(s.tags['vipguard.service'], 'web');
        assert.equal(s.tags['server.address'], topo.vip.host);
        assert.equal(s.tags['error.type'], 'unanswered');
      }
    }
    assert.ok(rescue, `a trace holds the rescue: an attempt established on another backend, referring back to the unanswered one on b3:\n` +
      JSON.stringify(unanswered.slice(0, 3), null, 1));
    const { unanswered: dead, established, connection } = rescue;
    assert.ok(established.startUs > dead.startUs, 'the rescued attempt began after the unanswered one');
    assert.equal(established.traceId, dead.traceId, 'one trace per socket');
    assert.ok(['b1', 'b2'].some((n) => topo.backend(n).ip === established.tags['network.peer.address']), `established on b1 or b2: ${established.tags['network.peer.address']}`);
    assert.ok(Number(established.tags['vipguard.attempt']) > Number(dead.tags['vipguard.attempt']), 'a later attempt of the same connect');
    // The attempt before it is both its parent and its link. Jaeger's classic model folds the two into one
    // FOLLOWS_FROM reference; its api_v3 gateway returns the trace as OTLP, where they are apart.
    const prev = rescue.path[rescue.path.length - 2];
    const otlp = await getTraceOtlp(jaeger!.queryUrl, established.traceId);
    const est = otlp.find((s) => s.spanId === established.spanId);
    assert.ok(est, `api_v3 returns the same trace: ${JSON.stringify(otlp)}`);
    assert.equal(est.parentSpanId, prev.spanId, 'the rescued attempt is the child of the attempt before it');
    assert.deepEqual(est.links, [prev.spanId], 'and linked to it');
    assert.ok(connection, 'the connection the rescue established is in the trace');
    assert.equal(connection.tags['network.peer.address'], established.tags['network.peer.address']);
  });

  test('the search can come back empty: b1 never failed, so Jaeger finds no unanswered attempt there', async () => {
    const b1 = topo.backend('b1');
    const none = await findTraces(jaeger!.queryUrl, { service: SERVICE, tags: { 'network.peer.address': b1.ip, 'vipguard.outcome': 'unanswered' } });
    assert.deepEqual(none.map((t) => t.map((s) => s.spanId)), [], 'no unanswered attempt on b1');
    // …while b1's established handshakes are there, so the empty answer is the filter's, not an empty store.
    const ok = await findTraces(jaeger!.queryUrl, { service: SERVICE, tags: { 'network.peer.address': b1.ip, 'vipguard.outcome': 'established' }, limit: 5 });
    assert.ok(ok.length > 0, 'b1\'s established attempts are found by the same search');
    console.log(`[${KERNEL}] jaeger: b1 unanswered 0 traces, established ${ok.length} (limit 5); the file took ${Date.now() - t0} ms`);
  });
});
