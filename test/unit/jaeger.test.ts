// src/lab/jaeger.ts without a VM: how a rescue is read out of a trace as Jaeger's query API returns it (made-up
// traces in the shape of src/receiver/telemetry.ts's chains), and the configuration the lab and the demo give Jaeger,
// checked by Jaeger's own `validate` (the binary of scripts/jaeger.sh; without it this test fails, naming the script).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { JaegerSpan, jaegerBinary, jaegerConfig, rescueIn } from '../../src/lab/jaeger';

const DEAD = '10.200.0.4';
let n = 0;
function span(name: string, outcome: string | undefined, peer: string, parent?: JaegerSpan, extra: Record<string, string | number> = {}): JaegerSpan {
  n++;
  return {
    traceId: 't1', spanId: `s${n}`, name, startUs: n * 1000, durationUs: 100, service: 'vipguard-receiver',
    refs: parent ? [{ type: 'CHILD_OF', spanId: parent.spanId }, { type: 'FOLLOWS_FROM', spanId: parent.spanId }] : [],
    tags: { ...(outcome ? { 'vipguard.outcome': outcome } : {}), 'network.peer.address': peer, ...extra },
  };
}

test('a rescue: unanswered on the dead backend, then established elsewhere, then its connection', () => {
  const a1 = span('vipguard.connect', 'unanswered', DEAD, undefined, { 'vipguard.attempt': 1 });
  const a2 = span('vipguard.connect', 'established', '10.200.0.2', a1, { 'vipguard.attempt': 2 });
  const c = span('vipguard.connection', undefined, '10.200.0.2', a2);
  const r = rescueIn([c, a2, a1], DEAD);
  assert.ok(r);
  assert.equal(r.unanswered, a1);
  assert.equal(r.established, a2);
  assert.equal(r.connection, c);
  assert.deepEqual(r.path.map((s) => s.spanId), [a1.spanId, a2.spanId]);
});

test('two unanswered SYNs on the dead backend before the rescue: the walk goes back through both', () => {
  const a1 = span('vipguard.connect', 'unanswered', DEAD);
  const a2 = span('vipguard.connect', 'unanswered', DEAD, a1);
  const a3 = span('vipguard.connect', 'established', '10.200.0.3', a2);
  const r = rescueIn([a1, a2, a3], DEAD);
  assert.equal(r?.unanswered, a2);
  assert.equal(r?.connection, undefined, 'no connection span in this trace');
});

test('no rescue: an established handshake on the dead backend itself, a failure elsewhere, or no reference', () => {
  const a1 = span('vipguard.connect', 'unanswered', DEAD);
  assert.equal(rescueIn([a1, span('vipguard.connect', 'established', DEAD, a1)], DEAD), undefined, 'same backend is no rescue');
  const b1 = span('vipguard.connect', 'unanswered', '10.200.0.3');
  assert.equal(rescueIn([b1, span('vipguard.connect', 'established', '10.200.0.2', b1)], DEAD), undefined, 'another backend failed');
  assert.equal(rescueIn([a1, span('vipguard.connect', 'established', '10.200.0.2')], DEAD), undefined, 'unrelated spans of one trace');
});

test('a refusal rescued (holdRefusals) counts when asked for', () => {
  const a1 = span('vipguard.connect', 'refused', DEAD);
  const a2 = span('vipguard.connect', 'established', '10.200.0.2', a1);
  assert.equal(rescueIn([a1, a2], DEAD), undefined, 'not an unanswered attempt');
  assert.equal(rescueIn([a1, a2], DEAD, ['refused'])?.unanswered, a1);
});

test('Jaeger accepts the configuration the lab writes for it, and refuses a broken one', async () => {
  const bin = jaegerBinary();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jaeger-config-'));
  const validate = (yaml: string): Promise<{ ok: boolean; output: string }> => {
    const file = path.join(dir, 'jaeger.yaml');
    fs.writeFileSync(file, yaml);
    return new Promise((resolve) => execFile(bin, ['validate', '--config', file], { timeout: 60_000 },
      (err, stdout, stderr) => resolve({ ok: !err, output: `${stdout}${stderr}` })));
  };
  try {
    const ports = { otlp: 1, query: 2, queryGrpc: 3 };
    const plain = await validate(jaegerConfig(ports));
    assert.ok(plain.ok, plain.output);
    // validate reads no certificate; the TLS block must still be one Jaeger's OTLP receiver knows, and nop an exporter it has.
    const tls = await validate(jaegerConfig(ports, { tls: { cert: '/nonexistent.pem', key: '/nonexistent.key' }, discardMetrics: true }));
    assert.ok(tls.ok, tls.output);
    const broken = await validate(jaegerConfig(ports).replace('trace_storage: memory', 'trace_storage: memory\n    trace_storge: x'));
    assert.ok(!broken.ok, `a misspelt field is refused: ${broken.output}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
