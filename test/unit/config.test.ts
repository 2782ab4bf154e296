// Configuration: defaults that work, and precise errors (where in the file, what was expected, what was there).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ConfigError, parseConfig } from '../../src/config/config';

const minimal = 'services:\n  - name: web\n    address: 10.99.0.1\n    port: 80\n';

function problems(yaml: string): string[] {
  try {
    parseConfig(yaml, 'vipguard.yaml');
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
    return e.issues.map((i) => `${i.where ?? '-'} ${i.path}: ${i.message}`);
  }
  assert.fail('expected the config to be refused');
}

test('a minimal file gets working defaults', () => {
  const c = parseConfig(minimal);
  assert.equal(c.services[0].manage, false, 'no destinations: watched, not managed');
  assert.equal(c.services[0].protocol, 'tcp');
  assert.equal(c.receiver.export.endpoint, '127.0.0.1:4317');
  assert.equal(c.actuator.listen, '127.0.0.1:9095');
  assert.equal(c.actuator.expireNodestConn, true);
  assert.deepEqual(c.actuator.rules.map((r) => [r.name, r.threshold, r.windowMs]), [['handshake-failures', 1, 10_000]]);
  assert.deepEqual(c.services[0].quarantine, c.actuator.quarantine);
  assert.equal(c.actuator.quarantine.baseMs, 1_000, 'a short hold: probes decide when it ends');
  assert.equal(c.actuator.quarantine.probeIntervalMs, 500);
  assert.equal(c.actuator.quarantine.probeSuccesses, 1);
});

test('per-service quarantine overrides inherit the rest', () => {
  const c = parseConfig(minimal + '    quarantine:\n      base: 2s\n      maxQuarantined: 1\nactuator:\n  quarantine:\n    max: 90s\n');
  assert.equal(c.services[0].quarantine.baseMs, 2000);
  assert.equal(c.services[0].quarantine.maxMs, 90_000, 'inherited from actuator.quarantine');
  assert.deepEqual(c.services[0].quarantine.maxQuarantined, { count: 1 });
});

test('managed services and IPv6 addresses are normalized', () => {
  const c = parseConfig(`services:
  - name: api
    address: "fd00:99:0::0001"
    port: 8080
    destinations:
      - { address: "fd00:200::0002", port: 8080, weight: 3 }
`);
  assert.equal(c.services[0].manage, true);
  assert.equal(c.services[0].address, 'fd00:99::1');
  assert.deepEqual(c.services[0].destinations, [{ address: 'fd00:200::2', port: 8080, weight: 3, forward: 'masq' }]);
});

test('schema errors point at line:column with what was expected and what was found', () => {
  assert.deepEqual(problems(`services:
  - name: web
    address: 10.99.0.300
    port: 70000
    colour: blue
actuator:
  quarantine:
    base: 10 seconds
`), [
    '3:14 services[0].address: expected an IPv4 or IPv6 address, got "10.99.0.300"',
    '4:11 services[0].port: must be <= 65535, got 70000',
    '5:5 services[0].colour: unknown setting (check its spelling and indentation)',
    '8:11 actuator.quarantine.base: expected a duration like 500ms, 10s, 5m, 1h, got "10 seconds"',
  ]);
});

test('what the schema cannot say is checked too', () => {
  assert.deepEqual(problems(`services:
  - { name: web, address: 10.99.0.1, port: 80 }
  - { name: web, address: 10.99.0.1, port: 80 }
  - { name: api, address: 10.99.0.2, port: 80, manage: true }
actuator:
  listen: 0.0.0.0:9095
  allowLoopbackWithoutToken: true
`), [
    '3:13 services[1].name: duplicate service name \'web\' (also services[0])',
    '3:27 services[1].address: tcp/10.99.0.1:80 is already services[0]',
    '4:5 services[2].destinations: a managed service (manage: true) needs at least one destination',
    '6:11 actuator.listen: 0.0.0.0:9095 is not loopback: allowLoopbackWithoutToken applies to loopback only — drop it (a token is then required) or listen on 127.0.0.1',
    '6:11 actuator.listen: 0.0.0.0:9095 is not loopback and has no TLS: expected actuator.tls (certFile, keyFile, optional clientCAFile) — the bearer token would cross the network in clear — or allowPlaintextBeyondLoopback: true on an already encrypted network',
  ]);
});

test('UDP services: next to a TCP one on the same address and port, with a restore probe, and expire_nodest_conn', () => {
  const c = parseConfig(`services:
  - { name: web, address: 10.99.0.1, port: 53 }
  - { name: dns, address: 10.99.0.1, port: 53, protocol: udp, probe: { dns: example.org } }
  - { name: logs, address: 10.99.0.1, port: 514, protocol: udp, probe: { payload: "hex:00 01", expect: ok } }
  - { name: quiet, address: 10.99.0.1, port: 9999, protocol: udp, quarantine: { probeBeforeRestore: false } }
`);
  assert.deepEqual(c.services.map((s) => [s.name, s.protocol, s.probe?.kind]), [['web', 'tcp', undefined], ['dns', 'udp', 'dns'], ['logs', 'udp', 'payload'], ['quiet', 'udp', undefined]]);
  assert.deepEqual(problems(`services:
  - { name: dns, address: 10.99.0.1, port: 53, protocol: udp }
  - { name: dns2, address: 10.99.0.1, port: 53, protocol: udp, probe: { silence: true } }
  - { name: web, address: 10.99.0.1, port: 80, probe: { dns: example.org } }
  - { name: bad, address: 10.99.0.2, port: 53, protocol: udp, probe: { dns: example.org, silence: true } }
actuator: { expireNodestConn: false }
`), [
    '2:5 services[0].probe: a UDP service needs a restore probe — {dns: <name>} for DNS (any answer counts), {payload: <bytes>, expect: <bytes>}, or {silence: true} (the weakest: no ICMP error) — or quarantine.probeBeforeRestore: false',
    '2:58 services[0].protocol: a UDP service needs actuator.expireNodestConn: true — a UDP destination is quarantined by removing it, and without expire_nodest_conn its flows would be black-holed instead of moved',
    '3:28 services[1].address: udp/10.99.0.1:53 is already services[0]',
    '3:59 services[1].protocol: a UDP service needs actuator.expireNodestConn: true — a UDP destination is quarantined by removing it, and without expire_nodest_conn its flows would be black-holed instead of moved',
    '4:55 services[2].probe: probe is for UDP services; a TCP destination is probed with a connect',
    '5:58 services[3].protocol: a UDP service needs actuator.expireNodestConn: true — a UDP destination is quarantined by removing it, and without expire_nodest_conn its flows would be black-holed instead of moved',
    '5:70 services[3].probe: UDP probe has "dns" and "silence", only one may be given: expected {dns: <host name>}, {payload: <bytes>, expect?: <bytes>} or {silence: true}, where <bytes> is text or hex:<pairs of hex digits>',
  ]);
});

test('the token: a file beside the state file by default, loopback without one only on request, generic alert labels only when listed', () => {
  const c = parseConfig('services: [{ name: web, address: 10.99.0.1, port: 80 }]\nactuator: { stateFile: /srv/vg/state.json }\n');
  assert.equal(c.actuator.tokenFile, '/srv/vg/token');
  assert.equal(c.actuator.allowLoopbackWithoutToken, false);
  assert.deepEqual(c.actuator.alertLabels, { service: [], destination: [] });
  const d = parseConfig('services: [{ name: web, address: 10.99.0.1, port: 80 }]\nactuator: { listen: 0.0.0.0:9095, allowPlaintextBeyondLoopback: true, alertLabels: { destination: [backend] } }\n');
  assert.equal(d.actuator.tokenFile, '/var/lib/vipguard/token', 'beyond loopback is fine: a token is always required unless opted out (TLS: tls.test.ts)');
  assert.deepEqual(d.actuator.alertLabels, { service: [], destination: ['backend'] });
  assert.deepEqual(problems('services: [{ name: web, address: 10.99.0.1, port: 80 }]\nactuator: { alertLabels: { service: [\'a b\'] } }\n').map((p) => p.replace(/^\S+ /, '')),
    ['actuator.alertLabels.service[0]: expected a Prometheus label name (letters, digits and _, not starting with a digit), got "a b"']);
});

test('YAML syntax errors and a missing services list', () => {
  assert.match(problems('services: [\n')[0], /^\d+:\d+ : YAML:/);
  assert.deepEqual(problems('receiver: {}\n'), ['1:1 services: missing (required)']);
  assert.deepEqual(problems(''), ['- services: missing (required)']);
});

test('the standard OTEL_EXPORTER_OTLP_* variables: under what the file writes, with a clear error when malformed', () => {
  const exp = (yaml: string, env: NodeJS.ProcessEnv) => parseConfig(`services: []\n${yaml}`, 'x', { env }).receiver.export;
  assert.deepEqual(exp('', {}), { ...exp('', {}), endpoint: '127.0.0.1:4317', insecure: true }, 'no variables: the sidecar on loopback');
  const https = exp('', { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://collector.example:4317', OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=a%20b, Api-Key=k1' });
  assert.deepEqual([https.endpoint, https.insecure, https.headers], ['collector.example:4317', false, { 'x-tenant': 'a b', 'api-key': 'k1' }]);
  const http = exp('', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://[::1]' });
  assert.deepEqual([http.endpoint, http.insecure], ['[::1]:4317', true], 'http:// is plaintext; the port defaults to 4317');
  const written = exp('receiver: { export: { endpoint: 127.0.0.1:14317, headers: { api-key: file } } }',
    { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://collector.example:4317', OTEL_EXPORTER_OTLP_HEADERS: 'api-key=env,x-more=1' });
  assert.deepEqual([written.endpoint, written.insecure, written.headers], ['127.0.0.1:14317', true, { 'api-key': 'file', 'x-more': '1' }], 'the file wins, key by key');
  assert.equal(exp('', { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://c.example:4317', OTEL_EXPORTER_OTLP_INSECURE: 'true' }).insecure, false, 'the URL\'s scheme decides before INSECURE');
  assert.equal(exp('', { OTEL_EXPORTER_OTLP_INSECURE: 'false' }).insecure, false);
  const bad = (env: NodeJS.ProcessEnv, yaml = '') => {
    try { parseConfig(`services: []\n${yaml}`, 'x', { env }); } catch (e) { return (e as ConfigError).issues.map((i) => `${i.path}: ${i.message}`); }
    return [];
  };
  assert.deepEqual(bad({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4317' }), [
    'receiver.export.endpoint: OTEL_EXPORTER_OTLP_ENDPOINT="collector:4317" is not an OTLP/gRPC endpoint URL: expected http://HOST:PORT (plaintext) or https://HOST:PORT (TLS) — or write receiver.export.endpoint in the file',
  ]);
  assert.deepEqual(bad({ OTEL_EXPORTER_OTLP_HEADERS: 'ok=1,broken' }), [
    'receiver.export.headers: OTEL_EXPORTER_OTLP_HEADERS: "broken" is not key=value (expected key=value pairs separated by commas, values URL-encoded)',
  ]);
  // A token sent in clear beyond loopback because of a variable is refused like one written in the file.
  assert.match(bad({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector.example:4317' }, 'receiver: { export: { tokenFile: /run/t } }').join('\n'),
    /^receiver\.export\.endpoint: collector\.example:4317 is not loopback and the export is plaintext/);
});
