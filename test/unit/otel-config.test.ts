// otel-config/: the collector sidecar configuration and its OpenTelemetry Operator form, checked without a
// collector binary (none is reachable here — see otel-config/README.md): every component is a real component of
// the contrib distribution, used for a signal it supports; pipelines reference only defined components; every
// defined component is used; the wiring matches vipguard's own defaults.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';
import { REPO_ROOT } from '../../src/common/paths';
import { CONFIG_SCHEMA } from '../../src/config/schema';

type Kind = 'receivers' | 'processors' | 'exporters' | 'extensions' | 'connectors';
type Signal = 'traces' | 'metrics' | 'logs';

/**
 * Real Collector component types, by kind, with the signals each supports.
 *
 * Where this comes from (read 2026-11 through the code search of public repositories):
 *  - which components exist: open-telemetry/opentelemetry-collector-contrib cmd/otelcontribcol/builder-config.yaml
 *    at commit 009782ba4a78de7d4cad84c9d9d9826b178f010c (version 0.123.0-dev; core modules v0.124.0), the list
 *    the contrib distribution is built from;
 *  - each type name and its signals: that component's own metadata.yaml (`type:` and `status.stability`), in
 *    open-telemetry/opentelemetry-collector (otlp receiver/exporter, otlp_http, debug, batch, memory_limiter,
 *    zpages, forward) and open-telemetry/opentelemetry-collector-contrib (the rest).
 * This is a verified subset — the components our configs use plus the usual alternatives an operator would swap
 * in — not the whole distribution: a type that is not here is not necessarily unreal, only unchecked. Two types
 * were renamed after 0.123 and are listed under both names (metadata.yaml `deprecated_type`): otlphttp → otlp_http,
 * spanmetrics → span_metrics.
 */
const ALL: Signal[] = ['traces', 'metrics', 'logs'];
const KNOWN: Record<Kind, Record<string, Signal[]>> = {
  receivers: {
    otlp: ALL, // go.opentelemetry.io/collector/receiver/otlpreceiver
    prometheus: ['metrics'], // receiver/prometheusreceiver
  },
  processors: {
    memory_limiter: ALL, // go.opentelemetry.io/collector/processor/memorylimiterprocessor
    batch: ALL, // go.opentelemetry.io/collector/processor/batchprocessor
    attributes: ALL, // processor/attributesprocessor
    filter: ALL, // processor/filterprocessor
    k8sattributes: ALL, // processor/k8sattributesprocessor
    resource: ALL, // processor/resourceprocessor
    resourcedetection: ALL, // processor/resourcedetectionprocessor
    transform: ALL, // processor/transformprocessor
  },
  exporters: {
    otlp: ALL, // go.opentelemetry.io/collector/exporter/otlpexporter
    otlphttp: ALL, // go.opentelemetry.io/collector/exporter/otlphttpexporter (0.123 name)
    otlp_http: ALL, // the same, renamed later
    debug: ALL, // go.opentelemetry.io/collector/exporter/debugexporter
    prometheus: ['metrics'], // exporter/prometheusexporter
    prometheusremotewrite: ['metrics'], // exporter/prometheusremotewriteexporter
    loadbalancing: ['traces', 'logs'], // exporter/loadbalancingexporter
    file: ALL, // exporter/fileexporter
  },
  extensions: {
    health_check: [], // extension/healthcheckextension
    pprof: [], // extension/pprofextension
    zpages: [], // go.opentelemetry.io/collector/extension/zpagesextension
    file_storage: [], // extension/storage/filestorage
    bearertokenauth: [], // extension/bearertokenauthextension
  },
  connectors: {
    forward: ALL, // go.opentelemetry.io/collector/connector/forwardconnector (traces→traces, metrics→metrics, logs→logs)
    spanmetrics: ['traces'], // connector/spanmetricsconnector (0.123 name; traces in, metrics out)
    span_metrics: ['traces'],
  },
};
const KINDS = Object.keys(KNOWN) as Kind[];

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

const read = (rel: string): Doc => parse(fs.readFileSync(path.join(REPO_ROOT, rel), 'utf8'));
const typeOf = (id: string) => id.split('/')[0];
const signalOf = (pipeline: string) => pipeline.split('/')[0] as Signal;

/** Every problem with one collector configuration, as readable strings (empty: none). */
function problems(cfg: Doc): string[] {
  const out: string[] = [];
  for (const key of Object.keys(cfg)) {
    if (![...KINDS, 'service'].includes(key)) out.push(`unknown top-level section '${key}'`);
  }
  const defined = new Map<string, Set<string>>(KINDS.map((k) => [k, new Set(Object.keys(cfg[k] ?? {}))]));
  for (const kind of KINDS) {
    for (const id of defined.get(kind)!) {
      const [type, name, ...rest] = id.split('/');
      if (!(type in KNOWN[kind])) out.push(`${kind}.${id}: '${type}' is not a known ${kind.slice(0, -1)} type`);
      if (name === '' || rest.length) out.push(`${kind}.${id}: a component id is type or type/name`);
    }
  }
  const used = new Map<string, Set<string>>(KINDS.map((k) => [k, new Set<string>()]));
  const pipelines: Record<string, Record<string, string[]>> = cfg.service?.pipelines ?? {};
  if (!Object.keys(pipelines).length) out.push('service.pipelines is empty');
  for (const [pid, p] of Object.entries(pipelines)) {
    const signal = signalOf(pid);
    if (!['traces', 'metrics', 'logs'].includes(signal)) out.push(`pipeline ${pid}: unknown signal '${signal}'`);
    for (const key of Object.keys(p)) if (!['receivers', 'processors', 'exporters'].includes(key)) out.push(`pipeline ${pid}: unknown key '${key}'`);
    if (!p.receivers?.length) out.push(`pipeline ${pid}: no receivers`);
    if (!p.exporters?.length) out.push(`pipeline ${pid}: no exporters`);
    for (const role of ['receivers', 'processors', 'exporters'] as const) {
      for (const id of p[role] ?? []) {
        // A connector is an exporter of one pipeline and a receiver of another.
        const kind: Kind | undefined = defined.get(role)!.has(id) ? role : role !== 'processors' && defined.get('connectors')!.has(id) ? 'connectors' : undefined;
        if (!kind) { out.push(`pipeline ${pid}: ${role} '${id}' is not defined`); continue; }
        used.get(kind)!.add(id);
        const signals = KNOWN[kind][typeOf(id)];
        if (signals && !signals.includes(signal) && kind !== 'connectors') out.push(`pipeline ${pid}: ${id} does not support ${signal}`);
      }
    }
    if (new Set(p.processors ?? []).size !== (p.processors ?? []).length) out.push(`pipeline ${pid}: a processor twice`);
  }
  for (const id of cfg.service?.extensions ?? []) {
    if (!defined.get('extensions')!.has(id)) out.push(`service.extensions: '${id}' is not defined`);
    used.get('extensions')!.add(id);
  }
  for (const kind of KINDS) {
    for (const id of defined.get(kind)!) if (!used.get(kind)!.has(id)) out.push(`${kind}.${id} is defined but not used`);
  }
  return out;
}

const collector = read('otel-config/collector.yaml');
const operator = read('otel-config/kubernetes/sidecar.yaml');

test('collector.yaml: real components, defined where referenced, all used', () => {
  assert.deepEqual(problems(collector), []);
});

test('kubernetes/sidecar.yaml: an Operator sidecar carrying exactly collector.yaml', () => {
  assert.equal(operator.apiVersion, 'opentelemetry.io/v1beta1');
  assert.equal(operator.kind, 'OpenTelemetryCollector');
  assert.equal(operator.spec.mode, 'sidecar');
  assert.match(operator.spec.image, /^otel\/opentelemetry-collector-contrib:0\.123\.0$/, 'the distribution the component list was checked against');
  assert.deepEqual(operator.spec.config, collector, 'spec.config is collector.yaml');
  const env = Object.fromEntries((operator.spec.env as { name: string; value: string }[]).map((e) => [e.name, e.value]));
  for (const m of JSON.stringify(collector).matchAll(/\$\{env:([A-Z_]+)(:-[^}]*)?\}/g)) {
    assert.ok(m[1] in env, `spec.env sets ${m[1]}, which the config reads`);
  }
  // The DaemonSet's pods name this collector in their injection annotation.
  const ds = fs.readFileSync(path.join(REPO_ROOT, 'deploy/kubernetes/daemonset.yaml'), 'utf8');
  assert.match(ds, new RegExp(`sidecar\\.opentelemetry\\.io/inject: "?${operator.metadata.name}"?`));
});

test('the checker itself: it catches what it claims to', () => {
  const bad = structuredClone(collector);
  bad.processors.memory_limitr = {};
  bad.exporters['otlp/unused'] = { endpoint: 'x:1' };
  bad.service.pipelines.metrics.exporters.push('otlp/nowhere');
  bad.service.pipelines['traces/actuator'].exporters.push('prometheusremotewrite');
  bad.service.pipelines['logs/x'] = { receivers: ['otlp'], exporters: [] };
  assert.deepEqual(problems(bad).sort(), [
    "exporters.otlp/unused is defined but not used",
    "pipeline logs/x: no exporters",
    "pipeline metrics: exporters 'otlp/nowhere' is not defined",
    "pipeline traces/actuator: prometheusremotewrite does not support traces",
    "processors.memory_limitr is defined but not used",
    "processors.memory_limitr: 'memory_limitr' is not a known processor type",
  ]);
});

test('wiring: the receiver exports where the collector listens, the actuator listens where it exports', () => {
  const schema = CONFIG_SCHEMA.properties;
  assert.equal(collector.receivers.otlp.protocols.grpc.endpoint, schema.receiver.properties.export.properties.endpoint.default);
  assert.equal(collector.exporters['otlp/actuator'].endpoint, schema.actuator.properties.otlpListen.default);
  assert.equal(collector.exporters['otlp/actuator'].tls.insecure, true, 'vipguard\'s OTLP endpoint is plaintext on loopback');
  assert.equal(collector.receivers.otlp.protocols.http, undefined, 'no OTLP/HTTP port opened for nothing');
});

test('the actuator\'s path: its own traces pipeline, memory_limiter first, batching of at most a few ms', () => {
  const pipelines = collector.service.pipelines as Record<string, { receivers: string[]; processors: string[]; exporters: string[] }>;
  for (const [id, p] of Object.entries(pipelines)) assert.equal(p.processors[0], 'memory_limiter', `${id}: memory_limiter first`);
  const toActuator = Object.entries(pipelines).filter(([, p]) => p.exporters.includes('otlp/actuator'));
  assert.deepEqual(toActuator.map(([id]) => id), ['traces/actuator'], 'one traces pipeline feeds the actuator');
  assert.deepEqual(toActuator[0][1].exporters, ['otlp/actuator'], 'and nothing else, so a backend outage cannot hold it up');
  const ms = (d: string) => { const m = /^(\d+)(ms|s)$/.exec(d)!; return Number(m[1]) * (m[2] === 's' ? 1000 : 1); };
  for (const proc of toActuator[0][1].processors.filter((x) => typeOf(x) === 'batch')) {
    assert.ok(ms(collector.processors[proc].timeout) <= 10, `${proc} holds spans at most 10 ms, got ${collector.processors[proc].timeout}`);
  }
  const retry = collector.exporters['otlp/actuator'].retry_on_failure;
  assert.ok(ms(retry.max_elapsed_time) <= 10_000, 'stale failure signals are dropped after seconds, not retried for minutes');
});
