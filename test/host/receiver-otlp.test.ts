// Host kernel (tracepoints only): real loopback connections -> receiver -> OTLP/gRPC -> a real gRPC server
// decoding with the official proto definitions. Checks values, and that only declared telemetry is emitted.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { Receiver } from '../../src/receiver/receiver';
import { ReceiverTelemetry } from '../../src/receiver/telemetry';
import { DEFAULT_EXPORT, metricExporter, encodedTraceExporter } from '../../src/telemetry/export';
import { OtlpServer } from '../../src/otlp/server';
import { FlatPoint, FlatSpan, flattenMetrics, flattenSpans } from '../../src/otlp/model';
import { ATTRIBUTES, METRICS, SPANS } from '../../src/telemetry/metadata';
import { requireRoot, waitFor } from '../helpers';
import { SCHEMA_URL, serviceInstanceId } from '../../src/telemetry/resource';
import { packageVersion } from '../../src/common/paths';

test('connections to a service arrive over OTLP as spans and metrics with the declared attributes', { skip: requireRoot() }, async () => {
  const spans: FlatSpan[] = [];
  const points: FlatPoint[] = [];
  const otlp = new OtlpServer({
    listen: '127.0.0.1:0',
    onTraces: (r) => spans.push(...flattenSpans(r)),
    onMetrics: (r) => points.push(...flattenMetrics(r)),
  });
  const port = await otlp.start();
  const server = net.createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const svcPort = (server.address() as net.AddressInfo).port;
  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const refusedPort = (closed.address() as net.AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r())); // nothing listens there now: RST

  const cfg = { ...DEFAULT_EXPORT, endpoint: `127.0.0.1:${port}`, spanDelayMs: 50, metricIntervalMs: 300 };
  const telemetry = new ReceiverTelemetry({
    spanExporters: [encodedTraceExporter(cfg)], metricExporter: metricExporter(cfg), metricIntervalMs: cfg.metricIntervalMs,
    spanDelayMs: cfg.spanDelayMs, maxQueueSize: cfg.maxQueueSize, maxBatchSize: cfg.maxBatchSize,
  });
  let receiver: Receiver | undefined;
  try {
    receiver = new Receiver({
      services: [{ name: 'loop', address: '127.0.0.1', port: svcPort }, { name: 'gone', address: '127.0.0.1', port: refusedPort }],
      sinks: [telemetry],
    });
    const before = Date.now() * 1e6;
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolve, reject) => {
        const c = net.connect(svcPort, '127.0.0.1');
        c.on('error', reject).on('close', () => resolve()).resume();
      });
    }
    await new Promise<void>((resolve) => net.connect(refusedPort, '127.0.0.1').on('error', () => resolve()));
    await waitFor(() => spans.filter((s) => s.name === 'vipguard.connection').length >= 3 &&
      spans.some((s) => s.attributes['vipguard.outcome'] === 'refused'), 10_000, 'spans over OTLP');
    await waitFor(() => points.some((p) => p.metric === 'vipguard.connect.attempts' && p.attributes['vipguard.outcome'] === 'refused'), 10_000, 'metrics over OTLP');

    const connects = spans.filter((s) => s.name === 'vipguard.connect' && s.attributes['vipguard.service'] === 'loop');
    assert.equal(connects.length, 3);
    for (const s of connects) {
      assert.equal(s.attributes['server.address'], '127.0.0.1');
      assert.equal(s.attributes['server.port'], svcPort);
      assert.equal(s.attributes['vipguard.outcome'], 'established');
      assert.equal(s.attributes['network.transport'], 'tcp');
      assert.equal(s.attributes['network.type'], 'ipv4');
      assert.equal(s.attributes['network.peer.address'], undefined, 'no kprobe here: backend unknown, not guessed');
      assert.equal(s.resource['service.name'], 'vipguard-receiver');
      assert.equal(s.resource['service.version'], packageVersion());
      assert.equal(s.resource['service.instance.id'], serviceInstanceId('vipguard-receiver'), 'the instance id that survives restarts');
      assert.deepEqual(s.scope, { name: 'vipguard.receiver', version: packageVersion(), schemaUrl: SCHEMA_URL });
      assert.ok(Number(s.startNs) >= before - 1e9 && Number(s.startNs) <= Date.now() * 1e6, 'kernel time converted to wall clock');
      assert.ok(s.endNs >= s.startNs);
      assert.equal(s.statusCode, 0);
      const conn = spans.find((c) => c.name === 'vipguard.connection' && c.parentSpanId === s.spanId);
      assert.ok(conn, 'connection span is a child of its handshake');
      assert.equal(conn.traceId, s.traceId);
      assert.deepEqual(conn.links, [{ traceId: s.traceId, spanId: s.spanId }], 'and linked to it');
      assert.equal(conn.attributes['network.local.port'], s.attributes['network.local.port']);
    }
    const refused = spans.find((s) => s.attributes['vipguard.outcome'] === 'refused')!;
    assert.equal(refused.attributes['vipguard.service'], 'gone');
    assert.equal(refused.attributes['error.type'], 'refused');
    assert.equal(refused.statusCode, 2, 'STATUS_CODE_ERROR');

    // Everything emitted is declared in src/telemetry/metadata.ts, with the declared types.
    for (const s of spans) {
      assert.ok(s.name in SPANS, `undeclared span ${s.name}`);
      for (const [k, v] of Object.entries(s.attributes)) {
        const spec = (ATTRIBUTES as Record<string, { type: string; values?: readonly string[] }>)[k];
        assert.ok(spec, `undeclared attribute ${k} on ${s.name}`);
        if (spec.type === 'int') assert.ok(Number.isInteger(v), `${k}=${v} should be an int`);
        else if (spec.type === 'double') assert.equal(typeof v, 'number', `${k} should be a double`);
        else assert.equal(typeof v, spec.type, `${k} type`);
        if (spec.values) assert.ok(spec.values.includes(String(v)), `${k}=${v} not among ${spec.values.join(',')}`);
      }
    }
    for (const p of points) {
      const spec = (METRICS as Record<string, { unit: string; attributes: readonly string[] }>)[p.metric];
      assert.ok(spec, `undeclared metric ${p.metric}`);
      assert.equal(p.unit, spec.unit, `${p.metric} unit`);
      for (const k of Object.keys(p.attributes)) assert.ok(spec.attributes.includes(k), `${p.metric} has undeclared attribute ${k}`);
    }
    const est = points.filter((p) => p.metric === 'vipguard.connect.attempts' && p.attributes['vipguard.outcome'] === 'established');
    assert.equal(Math.max(...est.map((p) => p.value)), 3, 'three established attempts counted');
    const hist = points.filter((p) => p.metric === 'vipguard.connect.duration' && p.attributes['vipguard.service'] === 'loop');
    assert.equal(Math.max(...hist.map((p) => p.count ?? 0)), 3);
  } finally {
    receiver?.close();
    await telemetry.shutdown();
    await otlp.stop();
    server.close();
  }
});
