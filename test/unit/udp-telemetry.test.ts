// UDP exchanges through the receiver's telemetry and the in-process OTLP path, read back by the rules' own parser
// (readConnectSpan): the contract the embedded rules act on. No kernel: exchanges are made by hand.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReceiverTelemetry } from '../../src/receiver/telemetry';
import { Exchange, UdpFlowInfo } from '../../src/receiver/udp-flows';
import { InProcessTraceExporter } from '../../src/telemetry/inprocess';
import { OtlpServer } from '../../src/otlp/server';
import { FlatSpan, flattenSpans } from '../../src/otlp/model';
import { readConnectSpan } from '../../src/telemetry/connect-span';
import { SPANS } from '../../src/telemetry/metadata';

const MS = 1_000_000n;
const flow: UdpFlowInfo = {
  sk: 0xffff888012345678n, service: 'dns', family: 4, src: { addr: '10.200.0.1', port: 40000 }, dst: { addr: '10.99.0.1', port: 53 },
  pid: 7, startNs: 1000n * MS,
};
const backend = { addr: '10.200.0.3', port: 53 };

test('failed UDP exchanges and late answers become vipguard.connect spans the rules read as UDP attempts; answered ones do not', async () => {
  const spans: FlatSpan[] = [];
  const otlp = new OtlpServer({ listen: '127.0.0.1:0', onTraces: (r) => spans.push(...flattenSpans(r)) });
  const telemetry = new ReceiverTelemetry({
    spanExporters: [new InProcessTraceExporter((b) => otlp.ingestTraces(b))],
    metricIntervalMs: 60_000, spanDelayMs: 10, maxQueueSize: 100, maxBatchSize: 10,
    clock: { toEpochNs: (ns: bigint) => ns },
  });
  try {
    const ex = (o: Partial<Exchange>): Exchange => ({ flow, backend, outcome: 'answered', count: 1, datagrams: 1, startNs: 2000n * MS, endNs: 2001n * MS, ...o });
    telemetry.exchange(ex({ count: 5, waits: 5, replyMs: 1 }));
    telemetry.exchange(ex({ outcome: 'unanswered', datagrams: 3, startNs: 2000n * MS, endNs: 2250n * MS }));
    telemetry.exchange(ex({ outcome: 'answered', late: true, waits: 1, replyMs: 300, startNs: 2000n * MS, endNs: 2300n * MS }));
    telemetry.exchange(ex({ outcome: 'refused', errno: 111, startNs: 3000n * MS, endNs: 3008n * MS }));
    await telemetry.flush();

    assert.equal(spans.length, 3, 'the unanswered, the late answer and the refusal; answered exchanges are only counted');
    for (const s of spans) {
      const declared = new Set<string>([...SPANS['vipguard.connect'].attributes, ...SPANS['vipguard.connect'].optional]);
      for (const k of Object.keys(s.attributes)) assert.ok(declared.has(k), `${k} is declared for vipguard.connect`);
      for (const k of SPANS['vipguard.connect'].attributes) assert.ok(k in s.attributes, `${k} is present`);
    }
    const read = spans.map((s) => readConnectSpan(s)!);
    assert.deepEqual(read.map((a) => [a.outcome, a.early, a.late, a.index]), [
      ['unanswered', true, false, 0], ['established', false, true, 1], ['refused', false, false, 1],
    ]);
    for (const a of read) {
      assert.deepEqual(a.service, { address: '10.99.0.1', port: 53, protocol: 'udp' });
      assert.equal(a.backend?.key, '10.200.0.3:53');
      assert.equal(a.localPort, 40000);
    }
    assert.equal(read[0].handshakeMs, 250);
    assert.equal(read[2].handshakeMs, 8);
    assert.equal(spans[0].attributes['vipguard.udp.datagrams'], 3);
    assert.equal(spans[0].statusCode, 2, 'ERROR');
    assert.equal(spans[1].statusCode, 0, 'a late answer is not an error');
    assert.equal(spans[1].parentSpanId, spans[0].spanId, 'a flow\'s spans chain');
    assert.equal(spans[2].traceId, spans[0].traceId);
    telemetry.flowEnded(flow);
  } finally {
    await telemetry.shutdown();
  }
});
