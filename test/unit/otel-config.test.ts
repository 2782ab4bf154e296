// otel-config/: the collector sidecar configuration and its OpenTelemetry Operator form, checked by the real
// collector built from otel-config/otelcol/ (scripts/collector.sh): each file passes the collector's own
// `validate`, the distribution holds exactly the components the files use, and the wiring matches vipguard's own
// defaults. Without the binary these tests fail, naming the script that builds it.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse, stringify } from 'yaml';
import { REPO_ROOT } from '../../src/common/paths';
import { CONFIG_SCHEMA } from '../../src/config/schema';
import { parseConfig } from '../../src/config/config';
import { ComponentKind, builtComponents, collectorBinary, validateConfig } from '../../src/lab/collector';

const KINDS: ComponentKind[] = ['receivers', 'processors', 'exporters', 'connectors', 'extensions'];

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

const read = (rel: string): Doc => parse(fs.readFileSync(path.join(REPO_ROOT, rel), 'utf8'));
const typeOf = (id: string) => id.split('/')[0];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'otel-config-'));

/**
 * Writes a configuration to a file and asks the collector about it. The collector resolves `${file:…}` (the
 * actuator's token) while validating, so the shipped path is pointed at a token written here.
 */
async function validate(cfg: Doc, name: string): Promise<{ ok: boolean; output: string }> {
  const file = path.join(tmp, `${name}.yaml`);
  const token = path.join(tmp, 'token');
  fs.writeFileSync(token, '0123456789abcdef0123456789abcdef');
  fs.writeFileSync(file, stringify(cfg).replace(/\$\{file:\/var\/lib\/vipguard\/token\}/g, `\${file:${token}}`));
  return validateConfig(file);
}

/** The release otel-config/otelcol/go.mod pins (core otelcol module). */
const release = /^\s*go\.opentelemetry\.io\/collector\/otelcol v(\S+)$/m.exec(fs.readFileSync(path.join(REPO_ROOT, 'otel-config/otelcol/go.mod'), 'utf8'))![1];

const collector = read('otel-config/collector.yaml');
const operator = read('otel-config/kubernetes/sidecar.yaml');

/** Every collector configuration in otel-config/, by name: the file itself and the Operator resource's copy. */
const CONFIGS: Record<string, Doc> = { 'collector.yaml': collector, 'kubernetes/sidecar.yaml spec.config': operator.spec.config };

/** Component ids defined but in no pipeline (the collector accepts them silently; we want none). */
function unused(cfg: Doc): string[] {
  const used = new Set<string>([...(cfg.service?.extensions ?? [])]);
  for (const p of Object.values(cfg.service?.pipelines ?? {}) as Record<string, string[]>[]) {
    for (const role of ['receivers', 'processors', 'exporters']) for (const id of p[role] ?? []) used.add(id);
  }
  return KINDS.flatMap((k) => Object.keys(cfg[k] ?? {}).filter((id) => !used.has(id)).map((id) => `${k}.${id}`));
}

test('the collector binary of otel-config/otelcol/ is built (scripts/collector.sh)', () => {
  // Throws "… is not built …: run scripts/collector.sh" when missing: a failure, not a skip.
  assert.ok(fs.statSync(collectorBinary()).size > 1e6);
});

for (const [name, cfg] of Object.entries(CONFIGS)) {
  test(`${name}: the collector's own validate accepts it, and every component it defines is used`, async () => {
    const r = await validate(cfg, name.replace(/\W+/g, '-'));
    assert.ok(r.ok, `otelcol-vipguard validate rejected ${name}:\n${r.output}`);
    assert.deepEqual(unused(cfg), []);
  });
}

test('the distribution holds exactly the component types the configurations use', async () => {
  const used = Object.fromEntries(KINDS.map((k) => [k, [...new Set(Object.values(CONFIGS).flatMap((c) => Object.keys(c[k] ?? {}).map(typeOf)))].sort()]));
  assert.deepEqual(await builtComponents(), used);
});

test('validate is a real check: it rejects a misspelt type, field or reference', async () => {
  const cases: [string, (c: Doc) => void, RegExp][] = [
    ['type', (c) => { c.processors.memory_limitr = {}; }, /memory_limitr/],
    ['field', (c) => { c.exporters['otlp_grpc/actuator'].sending_queue.num_consumer = 4; }, /num_consumer/],
    ['reference', (c) => { c.service.pipelines.metrics.exporters.push('otlp_grpc/nowhere'); }, /otlp_grpc\/nowhere/],
    ['signal', (c) => { c.service.pipelines['traces/actuator'].exporters.push('prometheus_remote_write'); }, /prometheus_remote_write/],
  ];
  for (const [what, breakIt, says] of cases) {
    const bad = structuredClone(collector);
    breakIt(bad);
    const r = await validate(bad, `bad-${what}`);
    assert.equal(r.ok, false, `a misspelt ${what} passed validate`);
    assert.match(r.output, says);
  }
  const extra = structuredClone(collector);
  extra.exporters['otlp_grpc/unused'] = { endpoint: '127.0.0.1:1' };
  assert.deepEqual(unused(extra), ['exporters.otlp_grpc/unused']);
});

test('kubernetes/sidecar.yaml: an Operator sidecar carrying exactly collector.yaml', () => {
  assert.equal(operator.apiVersion, 'opentelemetry.io/v1beta1');
  assert.equal(operator.kind, 'OpenTelemetryCollector');
  assert.equal(operator.spec.mode, 'sidecar');
  assert.equal(operator.spec.image, `otel/opentelemetry-collector-contrib:${release}`, 'the release otel-config/otelcol/go.mod pins');
  assert.deepEqual(operator.spec.config, collector, 'spec.config is collector.yaml');
  const env = Object.fromEntries((operator.spec.env as { name: string; value: string }[]).map((e) => [e.name, e.value]));
  for (const m of JSON.stringify(collector).matchAll(/\$\{env:([A-Z_]+)(:-[^}]*)?\}/g)) {
    assert.ok(m[1] in env, `spec.env sets ${m[1]}, which the config reads`);
  }
  // The DaemonSet's pods name this collector in their injection annotation.
  const ds = fs.readFileSync(path.join(REPO_ROOT, 'deploy/kubernetes/daemonset.yaml'), 'utf8');
  assert.match(ds, new RegExp(`sidecar\\.opentelemetry\\.io/inject: "?${operator.metadata.name}"?`));
});

test('wiring: the receiver exports where the collector listens, the actuator listens where it exports', () => {
  const schema = CONFIG_SCHEMA.properties;
  // `${env:VIPGUARD_OTLP_LISTEN:-127.0.0.1:4317}`: its default is vipguard's, the Kubernetes sidecar sets its own.
  const listen = /^\$\{env:VIPGUARD_OTLP_LISTEN:-(\S+)\}$/.exec(collector.receivers.otlp.protocols.grpc.endpoint);
  assert.equal(listen?.[1], parseConfig('services: []\n', 'default', { env: {} }).receiver.export.endpoint);
  assert.equal(collector.exporters['otlp_grpc/actuator'].endpoint, schema.actuator.properties.otlpListen.default);
  assert.equal(collector.exporters['otlp_grpc/actuator'].tls.insecure, true, 'vipguard\'s OTLP endpoint is plaintext on loopback');
  assert.equal(collector.receivers.otlp.protocols.http, undefined, 'no OTLP/HTTP port opened for nothing');
});

test('actuator-tls.yaml: merged over collector.yaml by the collector itself, it sends to a remote actuator over TLS', async () => {
  const overlay = read('otel-config/actuator-tls.yaml');
  const base = path.join(tmp, 'base-for-overlay.yaml');
  const token = path.join(tmp, 'token');
  fs.writeFileSync(token, '0123456789abcdef0123456789abcdef');
  fs.writeFileSync(base, fs.readFileSync(path.join(REPO_ROOT, 'otel-config/collector.yaml'), 'utf8').replace(/\$\{file:\/var\/lib\/vipguard\/token\}/g, `\${file:${token}}`));
  const file = path.join(REPO_ROOT, 'otel-config/actuator-tls.yaml');
  const r = await validateConfig([base, file]);
  assert.ok(r.ok, `otelcol-vipguard validate rejected collector.yaml + actuator-tls.yaml:\n${r.output}`);
  // It changes the actuator exporter only, and turns TLS on with the actuator's CA.
  assert.deepEqual(Object.keys(overlay), ['exporters']);
  assert.deepEqual(Object.keys(overlay.exporters), ['otlp_grpc/actuator']);
  const e = overlay.exporters['otlp_grpc/actuator'];
  assert.equal(e.tls.insecure, false);
  assert.match(e.tls.ca_file, /\.pem$/);
  assert.equal(e.endpoint.replace(/\}$/, '').split(':').pop(), CONFIG_SCHEMA.properties.actuator.properties.otlpListen.default.split(':')[1], 'the actuator\'s OTLP port');
  // The collector really reads the overlay: a misspelt TLS field in it is refused.
  const bad = path.join(tmp, 'actuator-tls-bad.yaml');
  fs.writeFileSync(bad, fs.readFileSync(file, 'utf8').replace('ca_file:', 'ca_fil:'));
  const b = await validateConfig([base, bad]);
  assert.equal(b.ok, false);
  assert.match(b.output, /ca_fil/);
});

test('the actuator\'s path: its own traces pipeline, memory_limiter first, batching of at most a few ms', () => {
  const pipelines = collector.service.pipelines as Record<string, { receivers: string[]; processors: string[]; exporters: string[] }>;
  for (const [id, p] of Object.entries(pipelines)) assert.equal(p.processors[0], 'memory_limiter', `${id}: memory_limiter first`);
  const toActuator = Object.entries(pipelines).filter(([, p]) => p.exporters.includes('otlp_grpc/actuator'));
  assert.deepEqual(toActuator.map(([id]) => id), ['traces/actuator'], 'one traces pipeline feeds the actuator');
  assert.deepEqual(toActuator[0][1].exporters, ['otlp_grpc/actuator'], 'and nothing else, so a backend outage cannot hold it up');
  const ms = (d: string) => { const m = /^(\d+)(ms|s)$/.exec(d)!; return Number(m[1]) * (m[2] === 's' ? 1000 : 1); };
  for (const proc of toActuator[0][1].processors.filter((x) => typeOf(x) === 'batch')) {
    assert.ok(ms(collector.processors[proc].timeout) <= 10, `${proc} holds spans at most 10 ms, got ${collector.processors[proc].timeout}`);
  }
  const retry = collector.exporters['otlp_grpc/actuator'].retry_on_failure;
  assert.ok(ms(retry.max_elapsed_time) <= 10_000, 'stale failure signals are dropped after seconds, not retried for minutes');
});
