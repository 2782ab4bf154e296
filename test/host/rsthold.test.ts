// Host kernel (no IPVS): the hold-back program loads and attaches beside the receiver's RST observer, and acts only
// within its bounds — a refused loopback connect to a configured port is held only while that service is said to
// have >= 2 destinations in service, at most once per connect, not at all for an unconfigured port, and not again
// right after a held connect was refused anyway. The receiver reports every refusal once, held or not.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { AggregationTemporality, DataPoint, InMemoryMetricExporter } from '@opentelemetry/sdk-metrics';
import { RefusalHold } from '../../src/actuator/rsthold';
import { ActuatorTelemetry } from '../../src/actuator/telemetry';
import { parseService } from '../../src/actuator/ipvs/identity';
import { Receiver } from '../../src/receiver/receiver';
import { Attempt } from '../../src/receiver/lifecycle';
import { requireRoot, waitFor } from '../helpers';
import { lineLogger } from '../../src/common/log';

/** A loopback port nobody listens on: the kernel answers its SYNs with RST. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function connect(port: number): Promise<{ ms: number; code?: string; localPort?: number }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const s = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => { s.destroy(); resolve({ ms: performance.now() - t0, code: 'TIMEOUT' }); }, 5000);
    s.once('connect', () => { clearTimeout(timer); const localPort = s.localPort; s.destroy(); resolve({ ms: performance.now() - t0, localPort }); });
    s.once('error', (e: NodeJS.ErrnoException) => { clearTimeout(timer); resolve({ ms: performance.now() - t0, code: e.code }); });
  });
}

test('refusals are held once per connect, only for configured services with >= 2 in service', { skip: requireRoot() }, async () => {
  const guarded = await closedPort();
  const other = await closedPort();
  const service = parseService(`tcp/127.0.0.1:${guarded}`);
  const attempts: Attempt[] = [];
  const receiver = new Receiver({
    services: [{ name: 'guarded', address: '127.0.0.1', port: guarded }, { name: 'other', address: '127.0.0.1', port: other }],
    deadline: false,
    sinks: [{ attemptEnded: (a) => attempts.push(a), connectionStarted: () => {}, connectionEnded: () => {} }],
  });
  const lines: string[] = [];
  const hold = new RefusalHold({ failOpenMs: 3000 }, lineLogger((l) => lines.push(l)));
  try {
    const observer = receiver.hooks.find((h) => h.program === 'vg_rst_in');
    assert.equal(observer?.active, true, `receiver's RST observer attached: ${observer?.reason}`);
    const st = hold.start([service]);
    assert.equal(st.active, true, st.reason);
    assert.match(lines.join('\n'), /holdRefusals: active on cgroup \S+: .*TCP 127\.0\.0\.1:\d+/);
    assert.deepEqual(st.services, [{ service: `tcp/127.0.0.1:${guarded}`, inService: 0, holding: false }]);

    // Fewer than 2 in service (the start): refused at once, reported once.
    const few = await connect(guarded);
    assert.equal(few.code, 'ECONNREFUSED');
    assert.ok(few.ms < 100, `refused at once with nothing in service, took ${few.ms.toFixed(0)} ms`);

    // An unconfigured port is never held, whatever the counts.
    hold.setInService([{ service, inService: 3 }]);
    const unconfigured = await connect(other);
    assert.equal(unconfigured.code, 'ECONNREFUSED');
    assert.ok(unconfigured.ms < 100, `unconfigured port refused at once, took ${unconfigured.ms.toFixed(0)} ms`);

    // >= 2 in service: the first RST is held, the socket retransmits its SYN at the kernel's 1 s RTO, and — no other
    // destination here — the second RST of the same connect reaches the application.
    const held = await connect(guarded);
    assert.equal(held.code, 'ECONNREFUSED');
    assert.ok(held.ms > 900 && held.ms < 2000, `held once: refused after one SYN RTO (~1 s), took ${held.ms.toFixed(0)} ms`);

    // Right after a held connect was refused again, the service's refusals pass for failOpenMs.
    const failing = await connect(guarded);
    assert.equal(failing.code, 'ECONNREFUSED');
    assert.ok(failing.ms < 100, `refused at once after a failed rescue, took ${failing.ms.toFixed(0)} ms`);

    const c = hold.counters()!;
    console.log(`loopback refusals: ${few.ms.toFixed(1)} ms (0 in service), ${unconfigured.ms.toFixed(1)} ms (unconfigured), ` +
      `${held.ms.toFixed(0)} ms (held once), ${failing.ms.toFixed(1)} ms (after a failed rescue); counters ${JSON.stringify(c)}`);
    assert.deepEqual(c, { refusals: 4, held: 1, passedAgain: 1, passedFewInService: 1, passedRescueFailed: 1, passedNoMemory: 0 });

    // The same counters reach the actuator's metrics as vipguard.actuator.refusals, one point per vipguard.hold.
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const telemetry = new ActuatorTelemetry({
      metricExporter: exporter, metricIntervalMs: 60_000, spanDelayMs: 1000, snapshot: () => [], refusals: () => hold.counters(),
    });
    await telemetry.flushMetrics();
    await telemetry.shutdown();
    const points = exporter.getMetrics().flatMap((r) => r.scopeMetrics).flatMap((s) => s.metrics)
      .filter((m) => m.descriptor.name === 'vipguard.actuator.refusals').slice(0, 1).flatMap((m) => m.dataPoints as DataPoint<number>[]);
    assert.deepEqual(Object.fromEntries(points.map((p) => [p.attributes['vipguard.hold'], p.value])),
      { held: 1, passed_again: 1, passed_few_in_service: 1, passed_rescue_failed: 1, passed_no_memory: 0 });

    // The receiver saw every refusal, once each, the held one included (attempt 0, and attempt 1 for its retransmit).
    receiver.drain();
    await waitFor(() => attempts.filter((a) => a.outcome === 'refused').length >= 5, 2000, 'five refused attempts');
    const refused = attempts.filter((a) => a.outcome === 'refused');
    const byService = (name: string) => refused.filter((a) => a.socket.service === name).map((a) => a.index);
    assert.deepEqual(byService('other'), [0]);
    assert.deepEqual(byService('guarded'), [0, 0, 1, 0], `guarded: refused attempts by index ${JSON.stringify(byService('guarded'))}`);
    assert.equal(attempts.length, refused.length, `only refusals: ${JSON.stringify(attempts.map((a) => a.outcome))}`);
  } finally {
    hold.close();
    receiver.close();
  }
});
