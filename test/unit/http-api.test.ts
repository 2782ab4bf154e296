// The actuator's HTTP API over real HTTP on 127.0.0.1: Alertmanager v2 and webhook payloads as Prometheus and
// Alertmanager send them, the errors malformed ones get, and the server's guards (token, Host, size, media type,
// routes). The AlertTarget is a fake that records what it is handed: this is input handling, not policy.
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import * as net from 'node:net';
import { describe, it } from 'node:test';
import type { AlertSignal, AlertTarget, SignalVerdict } from '../../src/actuator/alerts';
import { destinationKey, parseDestination, parseService, serviceKey } from '../../src/actuator/ipvs/identity';
import { ActuatorHttpOptions, ActuatorHttpServer } from '../../src/actuator/http/server';
import { labelsFingerprint } from '../../src/actuator/http/fingerprint';
import { GO_ZERO_TIME_MS, parseRfc3339 } from '../../src/actuator/http/time';
import { formatEndpoint } from '../../src/common/addr';
import { SCHEMA_URL } from '../../src/telemetry/resource';
import { packageVersion } from '../../src/common/paths';

// ---- fixtures (http-fuzz.test.ts has its own copy of the fake target and client) ----

const SERVICES: Record<string, { id: string; dests: string[] }> = {
  web: { id: 'tcp/10.99.0.1:80', dests: ['10.200.0.2:80', '10.200.0.3:80'] },
  dns6: { id: 'udp/[fd00::1]:53', dests: ['[fd00::2]:53'] },
};

/** Resolves labels the way TARGET_LABELS documents; records every signal; answers with `verdict` when set. */
class FakeTarget implements AlertTarget {
  readonly signals: AlertSignal[] = [];
  readonly labelsSeen: Record<string, string>[] = [];
  verdict?: (s: AlertSignal) => SignalVerdict;
  throwOn?: string;

  resolveTarget(labels: Record<string, string>): ReturnType<AlertTarget['resolveTarget']> {
    this.labelsSeen.push(labels);
    if (this.throwOn !== undefined && labels.vipguard_service === this.throwOn) throw new Error('fake target bug');
    const svc = labels.vipguard_service ?? labels.service;
    if (svc === undefined) return { ok: false, refusal: 'bad-target', error: 'no service label' };
    const canonical = (() => { try { return serviceKey(parseService(svc)); } catch { return undefined; } })();
    const entry = Object.entries(SERVICES).find(([name, s]) => name === svc || s.id === canonical);
    if (!entry) return { ok: false, refusal: 'unknown-service', error: `unknown service ${JSON.stringify(svc)}` };
    const peer = labels.network_peer_address !== undefined && labels.network_peer_port !== undefined
      ? formatEndpoint(labels.network_peer_address, Number(labels.network_peer_port)) : undefined;
    const text = labels.backend ?? peer;
    if (text === undefined) return { ok: false, refusal: 'bad-target', error: 'no destination label' };
    try {
      const d = parseDestination(text);
      if (!entry[1].dests.includes(destinationKey(d))) return { ok: false, refusal: 'not-owned', error: `${text} is not owned by ${entry[0]}` };
      return { ok: true, service: entry[0], serviceId: parseService(entry[1].id), destination: d };
    } catch (e) {
      return { ok: false, refusal: 'bad-target', error: (e as Error).message };
    }
  }

  submit(s: AlertSignal): SignalVerdict {
    this.signals.push(s);
    if (this.verdict) return this.verdict(s);
    return s.state === 'firing'
      ? { accepted: true, action: 'quarantined', until: new Date(NOW + 30_000) }
      : { accepted: true, action: 'released' };
  }
}

interface Reply { status: number; headers: http.IncomingHttpHeaders; text: string; json: any } // eslint-disable-line @typescript-eslint/no-explicit-any

function request(port: number, o: { method?: string; path: string; body?: string | Buffer; headers?: Record<string, string>;
  contentType?: string | null; chunked?: boolean }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...o.headers };
    if (o.body !== undefined && o.contentType !== null) headers['content-type'] = o.contentType ?? 'application/json';
    if (o.body !== undefined && !o.chunked) headers['content-length'] = String(Buffer.byteLength(o.body));
    const req = http.request({ host: '127.0.0.1', port, path: o.path, method: o.method ?? (o.body === undefined ? 'GET' : 'POST'), headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.setTimeout(5000, () => req.destroy(new Error(`no answer to ${o.path} within 5 s`)));
    req.on('error', reject);
    if (o.body !== undefined && o.chunked) {
      const b = Buffer.from(o.body);
      for (let i = 0; i < b.length; i += 16384) req.write(b.subarray(i, i + 16384));
    } else if (o.body !== undefined) req.write(o.body);
    req.end();
  });
}

const NOW = Date.parse('2024-05-01T12:00:00Z');
const TOKEN = 'correct-horse-battery-staple-42';

async function withServer(opts: Partial<ActuatorHttpOptions>, fn: (port: number, t: FakeTarget, logs: string[], s: ActuatorHttpServer) => Promise<void>): Promise<void> {
  const target = new FakeTarget();
  const logs: string[] = [];
  const server = new ActuatorHttpServer({ listen: '127.0.0.1:0', target, status: () => ({ services: 2 }), log: (l) => logs.push(l), now: () => NOW, ...opts });
  const port = await server.start();
  try {
    await fn(port, target, logs, server);
  } finally {
    await server.stop();
  }
}

const webFiring = { alertname: 'VipguardBackendUnanswered', vipguard_service: 'web', vipguard_backend: '10.200.0.2:80', job: 'vipguard', severity: 'page' };

/** An alert as Prometheus 2.42's notifier marshals it (strfmt.DateTime: milliseconds, UTC). */
function promAlert(labels: Record<string, string>, endsAt = '2024-05-01T12:04:00.000Z') {
  return {
    annotations: { summary: `${labels.vipguard_backend ?? '?'} does not answer SYNs`, description: 'unanswered handshakes' },
    endsAt,
    startsAt: '2024-05-01T11:59:00.000Z',
    generatorURL: 'http://prometheus:9090/graph?g0.expr=sum+by+%28vipguard_service%29+%28x%29&g0.tab=1',
    labels,
  };
}

/** An alert as Alertmanager's webhook notifier writes it (RFC3339Nano; firing alerts of Prometheus carry endsAt). */
function amAlert(status: 'firing' | 'resolved', labels: Record<string, string>, endsAt = '0001-01-01T00:00:00Z') {
  return {
    status, labels, annotations: { summary: 'backend down' }, startsAt: '2024-05-01T11:59:00.123456789Z', endsAt,
    generatorURL: 'http://prometheus:9090/graph?g0.expr=x', fingerprint: labelsFingerprint(labels),
  };
}

function amMessage(alerts: ReturnType<typeof amAlert>[], extra: Record<string, unknown> = {}) {
  return {
    receiver: 'vipguard-actuators', status: alerts.some((a) => a.status === 'firing') ? 'firing' : 'resolved', alerts,
    groupLabels: { alertname: 'VipguardBackendUnanswered' }, commonLabels: { alertname: 'VipguardBackendUnanswered' },
    commonAnnotations: {}, externalURL: 'http://alertmanager:9093', version: '4',
    groupKey: '{}/{vipguard_service=~".+"}:{alertname="VipguardBackendUnanswered"}', truncatedAlerts: 0, ...extra,
  };
}

const v2 = (port: number, body: unknown) => request(port, { path: '/api/v2/alerts', body: typeof body === 'string' ? body : JSON.stringify(body) });
const hook = (port: number, body: unknown) => request(port, { path: '/webhook', body: typeof body === 'string' ? body : JSON.stringify(body) });

// ---- pure parts ----

describe('RFC 3339 times', () => {
  it('reads the forms senders write, to the millisecond', () => {
    const base = Date.UTC(2024, 4, 1, 12, 0, 0);
    assert.equal(parseRfc3339('2024-05-01T12:00:00Z'), base);
    assert.equal(parseRfc3339('2024-05-01T12:00:00.123Z'), base + 123);
    assert.equal(parseRfc3339('2024-05-01T12:00:00.123456789Z'), base + 123);
    assert.equal(parseRfc3339('2024-05-01t12:00:00z'), base);
    assert.equal(parseRfc3339('2024-05-01T14:30:00+02:30'), base);
    assert.equal(parseRfc3339('2024-05-01T07:00:00-05:00'), base);
    assert.equal(parseRfc3339('2024-02-29T00:00:00Z'), Date.UTC(2024, 1, 29));
    assert.equal(parseRfc3339('2000-02-29T00:00:00Z'), Date.UTC(2000, 1, 29));
    assert.equal(parseRfc3339('0001-01-01T00:00:00Z'), GO_ZERO_TIME_MS);
  });
  it('refuses what is not RFC 3339 or names no real instant', () => {
    for (const bad of ['2024-05-01 12:00:00Z', '2024-05-01T12:00:00', '2024-05-01T12:00Z', '2024-13-01T00:00:00Z',
      '2023-02-29T00:00:00Z', '1900-02-29T00:00:00Z', '2024-04-31T00:00:00Z', '2024-05-01T24:00:00Z',
      '2024-05-01T12:60:00Z', '2024-05-01T12:00:00.1234567890Z', '2024-05-01T12:00:00+0200', '2024-05-01T12:00:00+24:00',
      '1714564800', '', 'yesterday', '２０２４-05-01T12:00:00Z']) {
      assert.equal(parseRfc3339(bad), undefined, bad);
    }
  });
});

describe('alert fingerprints', () => {
  it('equal Alertmanager\'s (FNV-1a 64 over sorted labels)', () => {
    // From an Alertmanager webhook notification: its fingerprint for these labels.
    const labels = { alertname: 'Nacos Down', instance: 'localhost:8848', job: 'nacos', severity: 'emergency', target: 'nacos' };
    assert.equal(labelsFingerprint(labels), '451c9ca7ae1697e6');
  });
  it('match a BigInt reference on unicode and astral label names', () => {
    const reference = (labels: Record<string, string>) => {
      let h = 0xcbf29ce484222325n;
      const add = (b: number) => { h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn; };
      const names = Object.keys(labels).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      for (const n of names) { for (const b of Buffer.from(n)) add(b); add(0xff); for (const b of Buffer.from(labels[n])) add(b); add(0xff); }
      return h.toString(16).padStart(16, '0');
    };
    const cases: Record<string, string>[] = [{}, { a: '' }, { '\u{1F600}': 'x', '\uFFFD': 'y', z: '日本語' }, { backend: '[fd00::2]:53', alertname: 'é'.repeat(300) }];
    for (const c of cases) assert.equal(labelsFingerprint(c), reference(c), JSON.stringify(c));
  });
});

// ---- Alertmanager v2 API ----

describe('POST /api/v2/alerts (Alertmanager v2)', () => {
  it('applies a firing alert as Prometheus sends it and answers 200 with an empty body', () => withServer({}, async (port, t) => {
    const r = await v2(port, [promAlert(webFiring)]);
    assert.equal(r.status, 200);
    assert.equal(r.text, '');
    assert.equal(t.signals.length, 1);
    const s = t.signals[0];
    assert.deepEqual({ ...s, serviceId: serviceKey(s.serviceId), destination: destinationKey(s.destination) }, {
      source: 'alertmanager', name: 'VipguardBackendUnanswered', service: 'web', serviceId: 'tcp/10.99.0.1:80',
      destination: '10.200.0.2:80', state: 'firing', endsAt: new Date('2024-05-01T12:04:00.000Z'),
      fingerprint: labelsFingerprint(webFiring), reason: '10.200.0.2:80 does not answer SYNs',
    });
  }));

  it('applies a batch of 64 (Prometheus\' batch size) in order', () => withServer({}, async (port, t) => {
    const alerts = Array.from({ length: 64 }, (_, i) => promAlert({ ...webFiring, vipguard_backend: `10.200.0.${2 + (i % 2)}:80`, instance: `n${i}` }));
    assert.equal((await v2(port, alerts)).status, 200);
    assert.deepEqual(t.signals.map((s) => s.fingerprint), alerts.map((a) => labelsFingerprint(a.labels)));
  }));

  it('accepts vmalert\'s payload: RFC3339Nano with the local offset, no endsAt while firing', () => withServer({}, async (port, t) => {
    const body = '[{"startsAt":"2024-05-01T13:59:00.123456789+02:00","generatorURL":"http://vmalert:8880/vmalert/alert?group_id=1",'
      + '"labels": {"alertname":"VipguardBackendUnanswered", "vipguard_service":"web", "vipguard_backend":"10.200.0.3:80"},"annotations": {}}]';
    assert.equal((await v2(port, body)).status, 200);
    assert.deepEqual(t.signals.map((s) => [s.state, s.endsAt, s.reason]), [['firing', undefined, 'VipguardBackendUnanswered']]);
  }));

  it('tells firing from resolved by endsAt against the clock', () => withServer({}, async (port, t) => {
    const r = await v2(port, [
      promAlert(webFiring, '2024-05-01T11:59:30.000Z'), // past: resolved
      promAlert(webFiring, '2024-05-01T12:00:00.000Z'), // now: resolved (Alertmanager: ended once endsAt is not after now)
      promAlert(webFiring, '2024-05-01T12:00:00.001Z'), // future: firing
      { labels: webFiring }, // no endsAt: firing
      promAlert(webFiring, '0001-01-01T00:00:00.000Z'), // Go zero time: no endsAt
    ]);
    assert.equal(r.status, 200);
    assert.deepEqual(t.signals.map((s) => [s.state, s.endsAt?.toISOString()]), [
      ['resolved', '2024-05-01T11:59:30.000Z'], ['resolved', '2024-05-01T12:00:00.000Z'],
      ['firing', '2024-05-01T12:00:00.001Z'], ['firing', undefined], ['firing', undefined],
    ]);
  }));

  it('ignores alerts naming no target (Prometheus sends every alert) or an unknown service, refuses those it cannot resolve', () => withServer({}, async (port, t, logs, server) => {
    const r = await v2(port, [
      promAlert({ alertname: 'HighCPU', instance: 'db1:9100' }),
      promAlert(webFiring),
      promAlert({ ...webFiring, vipguard_service: 'mail' }),
      promAlert({ ...webFiring, vipguard_backend: '10.200.0.9:80' }),
      promAlert({ alertname: 'V6', vipguard_service: 'udp/[FD00::1]:53', network_peer_address: 'fd00::2', network_peer_port: '53' }, '2024-05-01T11:59:30Z'),
      promAlert({ alertname: 'Generic', service: 'web', backend: '10.200.0.3:80' }),
    ]);
    assert.equal(r.status, 200, 'partial success is a success: some alerts were applied');
    assert.deepEqual({ ...r.json, results: undefined }, { applied: 2, ignored: 3, unknownService: 1, refused: 1, results: undefined });
    assert.deepEqual(r.json.results.map((x: { outcome: string; reason?: string; status?: number }) => [x.outcome, x.reason, x.status]),
      [['ignored', 'unaddressed', undefined], ['applied', undefined, undefined], ['ignored', 'unknown-service', undefined],
        ['refused', 'not-owned', 422], ['applied', undefined, undefined], ['ignored', 'unaddressed', undefined]]);
    assert.equal(r.json.results[1].action, 'quarantined');
    assert.equal(r.json.results[1].until, new Date(NOW + 30_000).toISOString());
    assert.equal(r.json.results[4].destination, '[fd00::2]:53');
    assert.match(r.json.results[5].why, /generic labels such as service or backend count only when listed in actuator\.alertLabels/);
    assert.deepEqual(t.signals.map((s) => [s.service, destinationKey(s.destination), s.state]),
      [['web', '10.200.0.2:80', 'firing'], ['dns6', '[fd00::2]:53', 'resolved']]);
    assert.ok(logs.some((l) => l.includes('alerts[2] (VipguardBackendUnanswered, firing') && l.includes('ignored: unknown service "mail"')), logs.join('\n'));
    assert.deepEqual(server.stats.alerts, { applied: 2, ignored: 3, refused: 1, unknownService: 1, invalid: 0 });
  }));

  it('answers 2xx to alerts for services this host does not have (a fleet-wide route), counted apart', () => withServer({}, async (port, t, _logs, server) => {
    const r = await v2(port, [promAlert({ ...webFiring, vipguard_service: 'mail' }), promAlert({ ...webFiring, server_address: '10.9.9.9' })]);
    assert.equal(r.status, 200, 'Prometheus counts anything else as a failed notification');
    assert.equal(r.text, '', 'nothing refused: the empty body Alertmanager answers');
    assert.equal(server.stats.alerts.unknownService, 1);
    const w = await hook(port, amMessage([amAlert('firing', { ...webFiring, vipguard_service: 'mail' })]));
    assert.equal(w.status, 200);
    assert.deepEqual([w.json.unknownService, w.json.results[0].outcome, w.json.results[0].reason, w.json.results[0].why],
      [1, 'ignored', 'unknown-service', 'unknown service "mail"']);
    assert.equal(server.stats.alerts.unknownService, 2);
    assert.equal(t.signals.length, 1, 'only the alert naming web applied');
  }));

  it('acts on generic label keys only when configured (actuator.alertLabels), after its own', () => withServer({
    alertLabels: { service: ['service'], destination: ['backend', 'instance'] },
  }, async (port, t) => {
    const r = await v2(port, [
      promAlert({ alertname: 'A', service: 'web', backend: '10.200.0.3:80' }),
      promAlert({ alertname: 'B', service: 'web', instance: '10.200.0.2:80' }),
      promAlert({ alertname: 'C', vipguard_service: 'web', service: 'mail', vipguard_backend: '10.200.0.2:80', backend: '10.200.0.9:80' }),
    ]);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(t.signals.map((s) => [s.name, s.service, destinationKey(s.destination)]),
      [['A', 'web', '10.200.0.3:80'], ['B', 'web', '10.200.0.2:80'], ['C', 'web', '10.200.0.2:80']]);
  }));

  it('answers 200 with nothing applied when every alert is someone else\'s, and to an empty array', () => withServer({}, async (port, t) => {
    assert.equal((await v2(port, [promAlert({ alertname: 'HighCPU' }), promAlert({ alertname: 'DiskFull', job: 'node' })])).status, 200);
    assert.equal((await v2(port, [])).status, 200);
    assert.equal(t.signals.length, 0);
  }));

  it('answers 4xx when alerts were refused and none applied: their status, or 422 when they differ', () => withServer({}, async (port, t) => {
    const owned = await v2(port, [promAlert({ ...webFiring, vipguard_backend: '1.2.3.4:80' }), promAlert({ alertname: 'HighCPU' })]);
    assert.equal(owned.status, 422);
    assert.equal(owned.json.error, 'no alert was applied: alerts[0]: 1.2.3.4:80 is not owned by web');
    const mixed = await v2(port, [promAlert({ ...webFiring, vipguard_service: 'mail' }), promAlert({ ...webFiring, vipguard_backend: '1.2.3.4:80' }),
      promAlert({ ...webFiring, vipguard_backend: 1 as unknown as string })]);
    assert.equal(mixed.status, 422);
    assert.match(mixed.json.error, /^no alert was applied: alerts\[1\]: 1\.2\.3\.4:80 is not owned by web \(and 1 more refused\)$/);
    t.verdict = () => ({ accepted: false, refusal: 'rate-limited', error: 'quarantine actions rate-limited: retry in 1 s' });
    const limited = await v2(port, [promAlert(webFiring)]);
    assert.equal(limited.status, 429);
    assert.equal(limited.json.results[0].error, 'quarantine actions rate-limited: retry in 1 s');
  }));

  it('hands the same alert the same fingerprint every time and as the webhook does', () => withServer({}, async (port, t) => {
    await v2(port, [promAlert(webFiring)]);
    await v2(port, [promAlert(webFiring, '2024-05-01T12:05:00.000Z')]);
    await hook(port, amMessage([amAlert('firing', webFiring)]));
    assert.equal(t.signals.length, 3);
    assert.equal(new Set(t.signals.map((s) => s.fingerprint)).size, 1);
  }));

  it('hands the target only the target labels, on a null-prototype object (a label named __proto__ is just a label)', () => withServer({}, async (port, t) => {
    const body = `[{"labels":{"__proto__":"x","constructor":"y","vipguard_service":"web","vipguard_backend":"10.200.0.3:80","empty":""}}]`;
    assert.equal((await v2(port, body)).status, 200);
    const seen = t.labelsSeen[0];
    assert.equal(Object.getPrototypeOf(seen), null);
    assert.deepEqual({ ...seen }, { vipguard_service: 'web', backend: '10.200.0.3:80' });
    assert.equal(({} as Record<string, unknown>).x, undefined);
    assert.equal(t.signals[0].fingerprint, labelsFingerprint(JSON.parse('{"__proto__":"x","constructor":"y","vipguard_service":"web","vipguard_backend":"10.200.0.3:80"}')));
  }));

  it('keeps log lines single lines whatever the labels hold', () => withServer({}, async (port, _t, logs) => {
    await v2(port, [promAlert({ alertname: 'Evil\nactuator http: forged line', vipguard_service: 'nope\r\nx', vipguard_backend: '1.1.1.1:1' })]);
    assert.ok(logs.length > 0);
    for (const l of logs) assert.ok(!/[\r\n]/.test(l), JSON.stringify(l));
  }));

  it('answers 500 for an alert the actuator itself failed on, and still applies the others', () => withServer({}, async (port, t) => {
    t.throwOn = 'Boom';
    const r = await v2(port, [promAlert({ ...webFiring, vipguard_service: 'Boom' }), promAlert(webFiring)]);
    assert.equal(r.status, 200);
    assert.equal(r.json.results[0].status, 500);
    assert.match(r.json.results[0].error, /the actuator failed on this alert: fake target bug/);
    assert.equal(t.signals.length, 1);
  }));
});

// ---- Alertmanager webhook ----

describe('POST /webhook (Alertmanager webhook, version "4")', () => {
  it('applies firing and resolved alerts as Alertmanager sends them, with a result per alert', () => withServer({}, async (port, t) => {
    const resolvedLabels = { ...webFiring, vipguard_backend: '10.200.0.3:80' };
    const r = await hook(port, amMessage([amAlert('firing', webFiring), amAlert('resolved', resolvedLabels, '2024-05-01T11:59:50.5Z')]));
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.results.map((x: { outcome: string; action: string; destination: string }) => [x.outcome, x.action, x.destination]),
      [['applied', 'quarantined', '10.200.0.2:80'], ['applied', 'released', '10.200.0.3:80']]);
    assert.deepEqual(t.signals.map((s) => [s.source, s.state, s.endsAt?.toISOString(), s.reason]), [
      ['webhook', 'firing', undefined, 'backend down'], ['webhook', 'resolved', '2024-05-01T11:59:50.500Z', 'backend down'],
    ]);
  }));

  it('trusts the per-alert status over the clock (Alertmanager decided it when sending)', () => withServer({}, async (port, t) => {
    await hook(port, amMessage([amAlert('firing', webFiring, '2024-05-01T11:59:30Z')]));
    assert.equal(t.signals[0].state, 'firing');
    assert.equal(t.signals[0].endsAt?.toISOString(), '2024-05-01T11:59:30.000Z', 'endsAt passes through: the policy decides');
  }));

  it('reports alerts Alertmanager truncated (max_alerts)', () => withServer({}, async (port, _t, logs) => {
    const r = await hook(port, amMessage([amAlert('firing', webFiring)], { truncatedAlerts: 7 }));
    assert.equal(r.status, 200);
    assert.equal(r.json.truncatedAlerts, 7);
    assert.ok(logs.some((l) => l.includes('Alertmanager left out 7 alerts (max_alerts)')), logs.join('\n'));
  }));

  it('refuses alerts naming no target (a webhook is routed on purpose): 422 when nothing else applied', () => withServer({}, async (port, t) => {
    const only = await hook(port, amMessage([amAlert('firing', { alertname: 'HighCPU' })]));
    assert.equal(only.status, 422);
    assert.match(only.json.error, /^no alert was applied: alerts\[0\]: names no service or destination: expected labels among vipguard_service, server_address\+server_port, vipguard_backend, network_peer_address\+network_peer_port \(generic labels/);
    const mixed = await hook(port, amMessage([amAlert('firing', { alertname: 'HighCPU' }), amAlert('firing', webFiring)]));
    assert.equal(mixed.status, 200);
    assert.deepEqual([mixed.json.applied, mixed.json.refused], [1, 1]);
    assert.equal(t.signals.length, 1);
  }));

  it('accepts fields a newer Alertmanager may add, and computes the fingerprint rather than trusting it', () => withServer({}, async (port, t) => {
    const a = { ...amAlert('firing', webFiring), fingerprint: 'ffffffffffffffff', silencedBy: [] };
    const r = await hook(port, { ...amMessage([a]), newField: { nested: [1, 2, 3] } });
    assert.equal(r.status, 200);
    assert.equal(t.signals[0].fingerprint, labelsFingerprint(webFiring));
  }));

  it('serves the webhook where configured, and nowhere else', () => withServer({ webhookPath: '/hooks/vipguard' }, async (port, t) => {
    assert.equal((await hook(port, amMessage([amAlert('firing', webFiring)]))).status, 404);
    assert.equal((await request(port, { path: '/hooks/vipguard', body: JSON.stringify(amMessage([amAlert('firing', webFiring)])) })).status, 200);
    assert.equal(t.signals.length, 1);
  }));
});

// ---- malformed payloads: the exact errors ----

describe('malformed payloads: the request refused whole (400) only for its envelope; a malformed alert alone', () => {
  const long = 'x'.repeat(5000);
  const requestCases: [string, unknown, string[]][] = [
    ['object instead of array', {}, ['alerts: must be array, got object with 0 properties']],
    ['too many alerts', Array.from({ length: 5001 }, () => ({ labels: { a: 'b' } })), ['alerts: must have at most 5000 items, got array of 5001 items']],
  ];
  for (const [name, body, errors] of requestCases) {
    it(`v2: ${name}`, () => withServer({}, async (port, t) => {
      const r = await v2(port, body);
      assert.equal(r.status, 400, r.text);
      assert.deepEqual(r.json.errors, errors);
      assert.ok(r.json.error.startsWith(errors.join('; ')), r.json.error);
      assert.equal(t.labelsSeen.length, 0, 'nothing of a refused request reaches the target');
    }));
  }

  // Each bad alert sits after a good one (which still applies) and names vipguard's target, so it is refused.
  const target = { vipguard_service: 'web', vipguard_backend: '10.200.0.3:80' };
  const alertCases: [string, unknown, string[]][] = [
    ['number as label value', { labels: { ...webFiring, vipguard_backend: 42 } }, ['alerts[1].labels.vipguard_backend: must be string, got number 42']],
    ['null label value', { labels: { ...target, a: null } }, ['alerts[1].labels.a: must be string, got null']],
    ['odd label name', { labels: { ...target, 'a b': true } }, ['alerts[1].labels["a b"]: must be string, got boolean true']],
    ['label value too long', { labels: { ...target, summary: long } },
      [`alerts[1].labels.summary: must be at most 4096 characters, got string "${'x'.repeat(40)}…" (5000 characters)`]],
    ['label name too long', { labels: { ...target, [long]: 'v' } },
      [`alerts[1].labels: property names must be 1-256 characters, got string "${'x'.repeat(40)}…" (5000 characters)`]],
    ['time not RFC 3339', { labels: target, startsAt: 'yesterday', endsAt: '2024-02-30T00:00:00Z' }, [
      'alerts[1].startsAt: must be an RFC 3339 date-time such as 2024-05-01T12:00:00Z, got string "yesterday"',
      'alerts[1].endsAt: must be an RFC 3339 date-time such as 2024-05-01T12:00:00Z, got string "2024-02-30T00:00:00Z"']],
    ['epoch seconds as time', { labels: target, startsAt: 1714564800 }, ['alerts[1].startsAt: must be string, got number 1714564800']],
    ['ends before it starts', { labels: target, startsAt: '2024-05-01T12:00:00Z', endsAt: '2024-05-01T11:00:00Z' },
      ['alerts[1].endsAt: must not be before startsAt (2024-05-01T12:00:00Z), got string "2024-05-01T11:00:00Z"']],
    ['annotation not a string', { labels: target, annotations: { summary: ['x'] } }, ['alerts[1].annotations.summary: must be string, got array of 1 items']],
  ];
  for (const [name, bad, errors] of alertCases) {
    it(`v2: ${name}: that alert refused, the other applied`, () => withServer({}, async (port, t) => {
      const r = await v2(port, [promAlert(webFiring), bad]);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual([r.json.applied, r.json.refused], [1, 1]);
      assert.deepEqual(r.json.errors, errors);
      assert.deepEqual({ ...r.json.results[1], alertname: undefined },
        { index: 1, alertname: undefined, outcome: 'refused', reason: 'invalid', status: 400, error: errors.join('; ') });
      assert.deepEqual(t.signals.map((x) => destinationKey(x.destination)), ['10.200.0.2:80']);
      assert.equal(t.labelsSeen.length, 1, 'nothing of the malformed alert reached the target');
      const alone = await v2(port, [bad]);
      assert.equal(alone.status, 400, 'nothing applied, the one alert malformed');
      assert.equal(alone.json.error, `no alert was applied: ${errors.join('; ').replace(/alerts\[1\]/g, 'alerts[0]')}`);
    }));
  }

  it('v2: accepts fields it does not know, as Alertmanager\'s API does', () => withServer({}, async (port, t) => {
    const r = await v2(port, [{ ...promAlert(webFiring), endAt: 'x', receivedAt: { nested: [1] } }]);
    assert.equal(r.status, 200, r.text);
    assert.equal(t.signals.length, 1);
  }));

  it('v2: ignores a malformed alert that names no vipguard target (someone else\'s), and says why', () => withServer({}, async (port, t) => {
    const r = await v2(port, [5, { annotations: {} }, { labels: {} }, { labels: { alertname: 'Disk', description: long } }, promAlert(webFiring)]);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual([r.json.applied, r.json.ignored, r.json.refused], [1, 4, 0]);
    assert.deepEqual(r.json.results.slice(0, 4).map((x: { why: string }) => x.why), [
      'not for vipguard, and invalid: alerts[0]: must be object, got number 5',
      'not for vipguard, and invalid: alerts[1].labels: is required, got nothing',
      'not for vipguard, and invalid: alerts[2].labels: must have at least 1 property, got object with 0 properties',
      `not for vipguard, and invalid: alerts[3].labels.description: must be at most 4096 characters, got string "${'x'.repeat(40)}…" (5000 characters)`,
    ]);
    assert.equal(t.signals.length, 1);
  }));

  const ok = amMessage([amAlert('firing', webFiring)]);
  const webhookCases: [string, unknown, string[]][] = [
    ['array instead of object', [], ['body: must be object, got array of 0 items']],
    ['wrong version', { ...ok, version: '3' }, ['version: must be "4", got string "3"']],
    ['version as number', { ...ok, version: 4 }, ['version: must be string, got number 4', 'version: must be "4", got number 4']],
    ['missing alerts and status', { version: '4' }, ['status: is required, got nothing', 'alerts: is required, got nothing']],
    ['alert status unknown', { ...ok, alerts: [{ ...ok.alerts[0], status: 'pending' }] },
      ['alerts[0].status: must be one of "firing", "resolved", got string "pending"']],
    ['truncatedAlerts negative', { ...ok, truncatedAlerts: -1 }, ['truncatedAlerts: must be >= 0, got number -1']],
    ['truncatedAlerts as string', { ...ok, truncatedAlerts: '0' }, ['truncatedAlerts: must be integer, got string "0"']],
    ['group label not a string', { ...ok, groupLabels: { alertname: 1 } }, ['groupLabels.alertname: must be string, got number 1']],
  ];
  for (const [name, body, errors] of webhookCases) {
    it(`webhook: ${name}`, () => withServer({}, async (port, t) => {
      const r = await hook(port, body);
      assert.equal(r.status, 400, r.text);
      assert.deepEqual(r.json.errors, errors);
      assert.equal(t.labelsSeen.length, 0);
    }));
  }

  it('says what is wrong with bodies that are not JSON at all', () => withServer({}, async (port) => {
    const cases: [string | Buffer, RegExp][] = [
      ['', /^request body is empty: expected a JSON array of Alertmanager v2 alerts$/],
      ['[{"labels":', /^request body is not valid JSON \(.+\): expected a JSON array of Alertmanager v2 alerts$/],
      [Buffer.from([0x5b, 0x22, 0xff, 0xfe, 0x22, 0x5d]), /^request body is not valid UTF-8/],
      [`${'['.repeat(33)}${']'.repeat(33)}`, /^request body nests arrays\/objects more than 32 levels deep/],
      [`[${'{"a":'.repeat(40)}1${'}'.repeat(40)}]`, /^request body nests arrays\/objects more than 32 levels deep/],
    ];
    for (const [body, want] of cases) {
      const r = await request(port, { path: '/api/v2/alerts', body });
      assert.equal(r.status, 400, r.text);
      assert.match(r.json.error, want);
    }
    // Brackets inside strings are text, not nesting.
    const r = await v2(port, `[{"labels":{"a":"${'[{'.repeat(100)}\\\"["}}]`);
    assert.equal(r.status, 200, r.text);
  }));

  it('lists up to 20 errors and counts the rest; a huge invalid payload gets each alert\'s first error', () => withServer({}, async (port) => {
    const many = await v2(port, Array.from({ length: 30 }, () => ({ labels: { vipguard_service: 1 } })));
    assert.equal(many.status, 400);
    assert.equal(many.json.errors.length, 20);
    assert.equal(many.json.errorCount, 30);
    assert.equal(many.json.error, 'no alert was applied: alerts[0].labels.vipguard_service: must be string, got number 1 (and 29 more refused)');
    const huge = await v2(port, Array.from({ length: 4000 }, () => ({ labels: { vipguard_service: 1, b: 2 } })));
    assert.equal(huge.status, 400);
    assert.deepEqual(huge.json.errors.slice(0, 2), ['alerts[0].labels.vipguard_service: must be string, got number 1', 'alerts[1].labels.vipguard_service: must be string, got number 1']);
    assert.equal(huge.json.errorCount, 4000, 'past EXPLAIN_MAX_VALUES, one error per alert');
  }));
});

// ---- the server's guards ----

describe('server guards', () => {
  it('refuses to listen beyond loopback without a token, and short tokens anywhere', () => {
    const base = { target: new FakeTarget(), status: () => ({}), log: () => {} };
    for (const listen of ['0.0.0.0:9095', '10.0.0.1:9095', '[::]:9095', 'vipguard.example:9095']) {
      assert.throws(() => new ActuatorHttpServer({ ...base, listen }), /refusing to serve the actuator's HTTP API on .* without a token/);
    }
    assert.doesNotThrow(() => new ActuatorHttpServer({ ...base, listen: '0.0.0.0:9095', token: TOKEN }));
    for (const listen of ['127.0.0.1:9095', '[::1]:9095', 'localhost:9095']) assert.doesNotThrow(() => new ActuatorHttpServer({ ...base, listen }));
    assert.throws(() => new ActuatorHttpServer({ ...base, listen: '0.0.0.0:9095', token: 'short' }), /token is 5 characters: use at least 16/);
    assert.throws(() => new ActuatorHttpServer({ ...base, listen: '127.0.0.1' }), /expected HOST:PORT/);
    assert.throws(() => new ActuatorHttpServer({ ...base, webhookPath: '/api/v2/alerts' }), /invalid webhookPath/);
    assert.throws(() => new ActuatorHttpServer({ ...base, webhookPath: 'hook' }), /invalid webhookPath/);
  });

  it('requires the bearer token on alerts and status when one is set (401), not on health checks', () => withServer({ token: TOKEN }, async (port, t) => {
    const body = JSON.stringify([promAlert(webFiring)]);
    const none = await request(port, { path: '/api/v2/alerts', body });
    assert.equal(none.status, 401);
    assert.equal(none.headers['www-authenticate'], 'Bearer realm="vipguard"');
    assert.match(none.json.error, /^missing bearer token/);
    for (const authorization of [`Bearer ${TOKEN}x`, `Basic ${TOKEN}`, 'Bearer', `Bearer ${TOKEN.slice(0, -1)}`]) {
      assert.equal((await request(port, { path: '/api/v2/alerts', body, headers: { authorization } })).status, 401, authorization);
      assert.equal((await request(port, { path: '/webhook', body, headers: { authorization } })).status, 401, authorization);
    }
    assert.equal((await request(port, { path: '/api/vipguard/status' })).status, 401);
    assert.equal(t.labelsSeen.length, 0);
    assert.equal((await request(port, { path: '/api/v2/alerts', body, headers: { authorization: `Bearer ${TOKEN}` } })).status, 200);
    assert.equal((await request(port, { path: '/api/vipguard/status', headers: { authorization: `bearer ${TOKEN}` } })).status, 200);
    assert.equal((await request(port, { path: '/-/healthy' })).status, 200);
    assert.equal(t.signals.length, 1);
  }));

  it('answers only loopback Host names without a token (DNS rebinding)', () => withServer({}, async (port, t) => {
    const body = JSON.stringify([promAlert(webFiring)]);
    const evil = await request(port, { path: '/api/v2/alerts', body, headers: { host: `rebind.example:${port}` } });
    assert.equal(evil.status, 403);
    assert.match(evil.json.error, /^Host "rebind.example:\d+" is not a loopback address/);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'localhost']) {
      assert.equal((await request(port, { path: '/api/v2/alerts', body, headers: { host } })).status, 200, host);
    }
    assert.equal(t.signals.length, 3);
  }));

  it('limits the body size (413), declared or streamed, and accepts exactly the limit', () => withServer({ maxBodyBytes: 4096 }, async (port, t) => {
    const fit = JSON.stringify([promAlert(webFiring)]);
    const exact = fit + ' '.repeat(4096 - fit.length);
    assert.equal((await request(port, { path: '/api/v2/alerts', body: exact })).status, 200);
    const over = await request(port, { path: '/api/v2/alerts', body: `${exact} ` });
    assert.equal(over.status, 413);
    assert.equal(over.json.error, 'request body is 4097 bytes (Content-Length): the limit is 4096 bytes');
    const streamed = await request(port, { path: '/webhook', body: ' '.repeat(100_000), chunked: true });
    assert.equal(streamed.status, 413);
    assert.equal(streamed.json.error, 'request body is more than 4096 bytes: the limit is 4096 bytes');
    assert.equal(t.signals.length, 1);
  }));

  it('drops a sender that stalls mid-request instead of waiting for it', () => withServer({ requestTimeoutMs: 500 }, async (port, t) => {
    const started = Date.now();
    const answer = await new Promise<string>((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1', () => {
        sock.write('POST /api/v2/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[{');
      });
      let got = '';
      const timer = setTimeout(() => { sock.destroy(); reject(new Error('connection still open after 5 s')); }, 5000);
      sock.on('data', (d) => { got += d; });
      sock.on('close', () => { clearTimeout(timer); resolve(got); });
      sock.on('error', reject);
    });
    assert.ok(Date.now() - started < 3000, `closed after ${Date.now() - started} ms`);
    assert.match(answer, /^HTTP\/1\.1 408 |^$/);
    assert.equal(t.labelsSeen.length, 0);
  }));

  it('accepts only JSON in UTF-8, uncompressed (415)', () => withServer({}, async (port, t) => {
    const body = JSON.stringify([promAlert(webFiring)]);
    const cases: [Record<string, string>, string | null, number, RegExp?][] = [
      [{}, 'text/plain', 415, /^unsupported Content-Type "text\/plain": expected application\/json$/],
      [{}, null, 415, /^unsupported Content-Type \(none\)/],
      [{}, 'application/x-www-form-urlencoded', 415],
      [{}, 'application/json; charset=latin1', 415, /^unsupported charset "latin1": expected utf-8$/],
      [{ 'content-encoding': 'gzip' }, 'application/json', 415, /^unsupported Content-Encoding "gzip"/],
      [{}, 'Application/JSON; charset="UTF-8"', 200],
    ];
    for (const [headers, contentType, status, msg] of cases) {
      const r = await request(port, { path: '/api/v2/alerts', body, headers, contentType });
      assert.equal(r.status, status, `${contentType} ${JSON.stringify(headers)}`);
      if (msg) assert.match(r.json.error, msg);
    }
    assert.equal(t.signals.length, 1);
  }));

  it('answers unknown paths 404 and wrong methods 405 with Allow', () => withServer({}, async (port) => {
    for (const path of ['/api/v1/alerts', '/api/v2/status', '/api/v2/alerts/', '/', '/-/reload']) {
      const r = await request(port, { path, body: '[]' });
      assert.equal(r.status, 404, path);
      assert.match(r.json.error, /^no endpoint ".*": the actuator serves POST \/api\/v2\/alerts, POST \/webhook, /);
    }
    const cases: [string, string, string][] = [
      ['GET', '/api/v2/alerts', 'POST'], ['PUT', '/webhook', 'POST'], ['DELETE', '/api/v2/alerts', 'POST'],
      ['POST', '/-/healthy', 'GET, HEAD'], ['POST', '/api/vipguard/status', 'GET, HEAD'], ['OPTIONS', '/api/v2/alerts', 'POST'],
    ];
    for (const [method, path, allow] of cases) {
      const r = await request(port, { method, path });
      assert.equal(r.status, 405, `${method} ${path}`);
      assert.equal(r.headers.allow, allow);
    }
    assert.equal((await request(port, { path: '/api/v2/alerts?x=1', body: '[]' })).status, 200, 'a query string does not change the route');
  }));

  it('serves status from the provider, health and readiness like Alertmanager', async () => {
    let ready: true | string = 'state file not loaded yet';
    let fail = false;
    await withServer({ ready: () => ready, status: () => { if (fail) throw new Error('policy not loaded'); return { services: [{ name: 'web' }] }; } }, async (port, _t, _l, server) => {
      const s = await request(port, { path: '/api/vipguard/status' });
      assert.deepEqual([s.status, s.headers['content-type'], s.json], [200, 'application/json; charset=utf-8', { services: [{ name: 'web' }] }]);
      fail = true;
      const broken = await request(port, { path: '/api/vipguard/status' });
      assert.deepEqual([broken.status, broken.json.error], [500, 'internal error in the actuator: status unavailable: policy not loaded']);
      assert.deepEqual([(await request(port, { path: '/-/healthy' })).text, (await request(port, { method: 'HEAD', path: '/-/healthy' })).text], ['OK', '']);
      const notReady = await request(port, { path: '/-/ready' });
      assert.deepEqual([notReady.status, notReady.text], [503, 'not ready: state file not loaded yet']);
      ready = true;
      assert.equal((await request(port, { path: '/-/ready' })).status, 200);
      assert.equal(server.stats.responses[503], 1);
      assert.equal(server.stats.requests, 6);
    });
  });

  it('rate-limits its own log lines under a flood of bad requests', () => withServer({}, async (port, _t, logs, server) => {
    const t0 = Date.now();
    for (let i = 0; i < 300; i++) await v2(port, '{');
    // burst of 100, refilled at 10 lines/s while the flood lasts (longer on a loaded machine); each line let
    // through after a suppression comes with a "N lines suppressed" line
    const allowed = 100 + 2 * (Math.ceil(((Date.now() - t0) / 1000) * 10) + 1);
    assert.ok(logs.length <= allowed, `${logs.length} lines, at most ${allowed} allowed`);
    assert.ok(server.stats.logSuppressed >= 150, `${server.stats.logSuppressed} suppressed`);
  }));
});

describe('GET /metrics: the actuator\'s own metrics for Prometheus', () => {
  it('served behind the token, in the text format, from the actuator\'s real meter', async () => {
    const { ActuatorTelemetry } = await import('../../src/actuator/telemetry');
    const { parseDestination, parseService } = await import('../../src/actuator/ipvs/identity');
    const telemetry = new ActuatorTelemetry({
      metricIntervalMs: 60_000, spanDelayMs: 1000, prometheus: true,
      snapshot: () => [{ service: 'web', quarantined: 1, panic: false }],
      refusals: () => ({ refusals: 3, held: 2, passedAgain: 1, passedFewInService: 0, passedRescueFailed: 0, passedNoMemory: 0 }),
    });
    try {
      telemetry.change({ op: 'edit-destination', name: 'web', service: parseService('tcp/10.99.0.1:80'), destination: parseDestination('10.200.0.4:8080'),
        weight: 0, from: 1, why: 'quarantine' }, undefined, {});
      await withServer({ token: TOKEN, metrics: (q, s) => telemetry.serveMetrics(q, s) }, async (port) => {
        assert.equal((await request(port, { path: '/metrics' })).status, 401, 'no token, no metrics');
        const r = await request(port, { path: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } });
        assert.equal(r.status, 200);
        assert.match(String(r.headers['content-type']), /^text\/plain/);
        // The scope travels as labels: name, the conventions' schema, vipguard's version.
        const scope = `otel_scope_name="vipguard\\.actuator",otel_scope_schema_url="${SCHEMA_URL.replace(/\./g, '\\.')}",otel_scope_version="${packageVersion().replace(/\./g, '\\.')}"`;
        const sample = (name: string, labels: string, value: number) =>
          new RegExp(`^${name}\\{${labels},${scope}\\} ${value}$`, 'm');
        assert.match(r.text, new RegExp(`^target_info\\{service_name="vipguard-actuator",service_version="${packageVersion().replace(/\./g, '\\.')}",service_instance_id="[0-9a-f-]{36}",`, 'm'), 'the resource, as target_info');
        assert.match(r.text, sample('vipguard_actuator_quarantined', 'vipguard_service="web"', 1));
        assert.match(r.text, sample('vipguard_actuator_changes_total', 'vipguard_service="web",vipguard_action="quarantine",vipguard_result="ok"', 1));
        assert.match(r.text, sample('vipguard_actuator_refusals_total', 'vipguard_hold="held"', 2));
        assert.match(r.text, sample('vipguard_actuator_refusals_total', 'vipguard_hold="passed_again"', 1));
      });
    } finally {
      await telemetry.shutdown();
    }
  });

  it('absent when not asked for: 404 naming the endpoints there are', async () => {
    await withServer({}, async (port) => {
      const r = await request(port, { path: '/metrics' });
      assert.equal(r.status, 404);
      assert.ok(!r.text.includes('GET /metrics'), r.text);
    });
  });
});
