// The resource and scope every span and metric carries (src/telemetry/resource.ts): the instance id's derivation
// against the RFC's own example, its stability, and the OpenTelemetry variables operators set.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { machineIdentity, scopeOf, serviceInstanceId, uuidV5, vipguardResource, SCHEMA_URL } from '../../src/telemetry/resource';
import { packageVersion } from '../../src/common/paths';

test('uuidV5 is RFC 9562 version 5: the RFC\'s example for www.example.com in the DNS namespace', () => {
  assert.equal(uuidV5('6ba7b810-9dad-11d1-80b4-00c04fd430c8', 'www.example.com'), '2ed6657d-e927-568b-95e1-2665a8aea6a2');
});

test('service.instance.id: the same for the same host and part across restarts, different between parts and hosts', () => {
  const id = 'f0e1d2c3b4a5968778695a4b3c2d1e0f';
  assert.equal(serviceInstanceId('vipguard-receiver', id), serviceInstanceId('vipguard-receiver', id));
  assert.notEqual(serviceInstanceId('vipguard-receiver', id), serviceInstanceId('vipguard-actuator', id));
  assert.notEqual(serviceInstanceId('vipguard-receiver', id), serviceInstanceId('vipguard-receiver', 'f0e1d2c3b4a5968778695a4b3c2d1e00'));
  assert.ok(!serviceInstanceId('vipguard-receiver', id).replace(/-/g, '').includes(id), 'the machine-id itself is not shown');
  assert.equal(machineIdentity((f) => (f === '/etc/machine-id' ? `${id}\n` : '')), id);
  assert.equal(machineIdentity((f) => { if (f === '/etc/machine-id') throw new Error('ENOENT'); return `${id}\n`; }), id, 'D-Bus\'s copy');
  assert.match(machineIdentity(() => 'uninitialized\n'), /^host:/, 'no usable machine-id: the host name');
});

test('the resource: name, version, a persistent instance id; OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME override', () => {
  const before = { a: process.env.OTEL_RESOURCE_ATTRIBUTES, s: process.env.OTEL_SERVICE_NAME };
  try {
    delete process.env.OTEL_RESOURCE_ATTRIBUTES;
    delete process.env.OTEL_SERVICE_NAME;
    const r = vipguardResource('receiver').attributes;
    assert.equal(r['service.name'], 'vipguard-receiver');
    assert.equal(r['service.version'], packageVersion());
    assert.equal(r['service.instance.id'], serviceInstanceId('vipguard-receiver'));
    assert.equal(r['process.pid'], process.pid);
    process.env.OTEL_RESOURCE_ATTRIBUTES = 'deployment.environment.name=prod,k8s.cluster.name=eu-1,service.name=from-attributes';
    const e = vipguardResource('actuator').attributes;
    assert.equal(e['deployment.environment.name'], 'prod');
    assert.equal(e['k8s.cluster.name'], 'eu-1');
    assert.equal(e['service.name'], 'from-attributes', 'the operator\'s attributes win over the defaults');
    process.env.OTEL_SERVICE_NAME = 'edge-guard';
    assert.equal(vipguardResource('actuator').attributes['service.name'], 'edge-guard', 'OTEL_SERVICE_NAME wins over both');
  } finally {
    for (const [k, v] of [['OTEL_RESOURCE_ATTRIBUTES', before.a], ['OTEL_SERVICE_NAME', before.s]] as const) {
      if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
  }
});

test('the scope: the part, vipguard\'s version and the semantic conventions\' schema', () => {
  assert.deepEqual(scopeOf('receiver'), { name: 'vipguard.receiver', version: packageVersion(), schemaUrl: SCHEMA_URL });
  assert.match(SCHEMA_URL, /^https:\/\/opentelemetry\.io\/schemas\/1\.\d+\.\d+$/);
});

test('every attribute outside vipguard.* is a name of the OpenTelemetry semantic conventions', async () => {
  const { ATTRIBUTES } = await import('../../src/telemetry/metadata');
  const stable = await import('@opentelemetry/semantic-conventions');
  const registry = await import('@opentelemetry/semantic-conventions/incubating');
  const names = (m: object) => new Set(Object.entries(m).filter(([k]) => k.startsWith('ATTR_')).map(([, v]) => v as string));
  const known = new Set([...names(stable), ...names(registry)]);
  const foreign = Object.keys(ATTRIBUTES).filter((k) => !k.startsWith('vipguard.'));
  assert.ok(foreign.length >= 10);
  assert.deepEqual(foreign.filter((k) => !known.has(k)), [], 'not in the conventions');
});

test('Prometheus names follow the OpenTelemetry compatibility rules: unit suffixes, _total on counters', async () => {
  const { prometheusName, prometheusBaseName } = await import('../../src/telemetry/prometheus');
  assert.equal(prometheusName('vipguard.connect.attempts'), 'vipguard_connect_attempts_total', 'a {annotation} unit adds nothing');
  assert.equal(prometheusName('vipguard.connect.duration'), 'vipguard_connect_duration_seconds', 'seconds, as the collector names it');
  assert.equal(prometheusName('vipguard.connection.active'), 'vipguard_connection_active', 'an up-down counter is a gauge: no _total');
  assert.equal(prometheusName('vipguard.connection.duration'), 'vipguard_connection_duration_seconds');
  assert.equal(prometheusName('vipguard.actuator.panic'), 'vipguard_actuator_panic');
  assert.equal(prometheusBaseName('vipguard.actuator.changes'), 'vipguard_actuator_changes');
});
