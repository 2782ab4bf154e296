// TLS on vipguard's listeners, with real sockets on 127.0.0.1 and real certificates made at test time
// (test/certs.ts): the files' checks (check-config's words), the policy beyond loopback, the HTTPS API with and
// without client certificates, OTLP/gRPC over TLS into the actuator's intake, `vipguard status` over https, and
// a renewed certificate served after a reload without a restart.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ExportResultCode } from '@opentelemetry/core';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { ActuatorHttpServer } from '../../src/actuator/http/server';
import type { AlertTarget } from '../../src/actuator/alerts';
import { fetchStatus } from '../../src/cli/status';
import { ConfigError, parseConfig } from '../../src/config/config';
import { TlsFileError, loadTls } from '../../src/common/tls';
import { flattenSpans, FlatSpan } from '../../src/otlp/model';
import { OtlpServer } from '../../src/otlp/server';
import { DEFAULT_EXPORT, ExportConfig, traceExporter } from '../../src/telemetry/export';
import { makePki, Pki } from '../certs';
import { waitFor } from '../helpers';

const TOKEN = 'tls-test-token-0123456789abcdef';
const SERVICE = 'services: [{ name: web, address: 10.99.0.1, port: 80 }]\n';

let pki: Pki;
before(() => { pki = makePki(); });
after(() => pki.cleanup());

/** The problems parseConfig reports, as `path: message`. */
function problems(yaml: string): string[] {
  try {
    parseConfig(yaml, 'vipguard.yaml');
  } catch (e) {
    if (e instanceof ConfigError) return e.issues.map((i) => `${i.path}: ${i.message}`);
    throw e;
  }
  return [];
}

const target: AlertTarget = {
  resolveTarget: () => ({ ok: false, refusal: 'unknown-service', error: 'none here' }),
  submit: () => ({ accepted: true, action: 'quarantined', until: new Date() }),
};

interface Reply { status: number; text: string; peerCN?: string }

/** One request on a fresh connection; `peerCN` is the common name of the certificate the server presented. */
function get(url: string, o: https.RequestOptions & { token?: string } = {}): Promise<Reply> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(u, { agent: false, ...o, headers: o.token ? { authorization: `Bearer ${o.token}` } : {} }, (res) => {
      const peer = (res.socket as tls.TLSSocket).getPeerCertificate?.();
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString(), peerCN: peer?.subject?.CN === undefined ? undefined : String(peer.subject.CN) }));
    });
    req.setTimeout(5000, () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

const pem = (file: string) => fs.readFileSync(file);

describe('the files of a tls block', () => {
  it('a certificate, its key and a client CA load; the leaf is the server\'s', () => {
    const m = loadTls({ certFile: pki.server.cert, keyFile: pki.server.key, clientCAFile: pki.ca });
    assert.match(m.leaf.subject, /CN=vipguard server$/);
    assert.ok(m.clientCA && m.clientCA.length > 0);
  });

  it('each problem names the setting and says what was expected', () => {
    const fail = (files: Parameters<typeof loadTls>[0], now?: number) => {
      try {
        loadTls(files, now);
      } catch (e) {
        assert.ok(e instanceof TlsFileError, String(e));
        return `${e.key}: ${e.message}`;
      }
      assert.fail('loaded');
    };
    const missing = path.join(pki.dir, 'nope.pem');
    assert.equal(fail({ certFile: missing, keyFile: pki.server.key }),
      `certFile: cannot read ${missing} (ENOENT): expected the server's PEM certificate, then its intermediates, readable by the user running vipguard`);
    assert.match(fail({ certFile: pki.server.key, keyFile: pki.server.key }), /^certFile: .*server\.key holds no PEM certificate/);
    assert.match(fail({ certFile: pki.server.cert, keyFile: pki.strayKey }),
      /^keyFile: .*stray\.key is not the key of .*server\.pem \(subject CN=vipguard server\): expected the private key the certificate was issued for/);
    assert.match(fail({ certFile: pki.server.cert, keyFile: pki.server.cert }), /^keyFile: .*server\.pem holds no usable private key/);
    assert.match(fail({ certFile: pki.server.cert, keyFile: pki.server.key, clientCAFile: pki.server.key }), /^clientCAFile: .*holds no PEM certificate/);
    // Validity, with the certificate's own dates.
    const leaf = new X509Certificate(pem(pki.server.cert));
    const from = new Date(leaf.validFrom).toISOString();
    const to = new Date(leaf.validTo).toISOString();
    assert.equal(fail({ certFile: pki.server.cert, keyFile: pki.server.key }, Date.parse(from) - 60_000),
      `certFile: ${pki.server.cert} is not valid yet: valid from ${from} to ${to} — is this host's clock right, or was the certificate issued for later?`);
    assert.match(fail({ certFile: pki.expired.cert, keyFile: pki.expired.key }),
      /^certFile: .*expired\.pem has expired: valid from \d{4}-\d\d-\d\dT[\d:.]+Z to \d{4}-\d\d-\d\dT[\d:.]+Z — renew it, then reload \(SIGHUP\)$/);
  });
});

describe('the configuration', () => {
  it('tls blocks load, and reach the Config', () => {
    const c = parseConfig(`${SERVICE}actuator:
  listen: 0.0.0.0:9095
  tls: { certFile: ${pki.server.cert}, keyFile: ${pki.server.key}, clientCAFile: ${pki.ca} }
  otlpListen: 0.0.0.0:4319
  otlpTls: { certFile: ${pki.server.cert}, keyFile: ${pki.server.key} }
receiver:
  prometheus: { listen: 0.0.0.0:9464, tls: { certFile: ${pki.server.cert}, keyFile: ${pki.server.key}, clientCAFile: ${pki.ca} } }
`);
    assert.deepEqual(c.actuator.tls, { certFile: pki.server.cert, keyFile: pki.server.key, clientCAFile: pki.ca });
    assert.deepEqual(c.actuator.otlpTls, { certFile: pki.server.cert, keyFile: pki.server.key });
    assert.equal(c.receiver.prometheus.tls?.clientCAFile, pki.ca);
  });

  it('a bad certificate is a configuration problem at the key that names it', () => {
    assert.deepEqual(problems(`${SERVICE}actuator:\n  tls: { certFile: ${pki.server.cert}, keyFile: ${pki.server2.key} }\n`).map((p) => p.replace(/ \(subject.*/, '')),
      [`actuator.tls.keyFile: ${pki.server2.key} is not the key of ${pki.server.cert}`]);
    assert.match(problems(`${SERVICE}actuator:\n  otlpTls: { certFile: ${pki.expired.cert}, keyFile: ${pki.expired.key} }\n`)[0],
      /^actuator\.otlpTls\.certFile: .* has expired: valid from .* to /);
    assert.deepEqual(problems(`${SERVICE}actuator:\n  tls: { certFile: ${pki.server.cert} }\n`), ['actuator.tls.keyFile: missing (required)']);
    assert.deepEqual(problems(`${SERVICE}receiver:\n  export: { tls: { ca: /nonexistent/ca.pem } }\n`),
      ['receiver.export.tls.ca: cannot read /nonexistent/ca.pem (ENOENT): expected the PEM CA certificate(s) of the endpoint\'s certificate']);
  });

  it('beyond loopback: TLS, or the explicit opt-in; loopback needs neither', () => {
    assert.deepEqual(problems(`${SERVICE}actuator: { otlpListen: 10.0.0.5:4319 }\n`), [
      'actuator.otlpListen: 10.0.0.5:4319 is not loopback and has no TLS: expected actuator.otlpTls (certFile, keyFile, optional clientCAFile) — the bearer token would cross the network in clear — or allowPlaintextBeyondLoopback: true on an already encrypted network',
    ]);
    assert.deepEqual(problems(`${SERVICE}actuator: { otlpListen: 10.0.0.5:4319, allowPlaintextBeyondLoopback: true }\n`), []);
    assert.deepEqual(problems(`${SERVICE}actuator: { listen: '[::1]:9095', otlpListen: localhost:4319 }\n`), []);
    assert.deepEqual(problems(`${SERVICE}actuator: { enabled: false, listen: 0.0.0.0:9095 }\n`), [], 'a disabled actuator listens nowhere');
    // The scrape endpoint has no token: beyond loopback only with client certificates.
    const scrape = (t: string) => problems(`${SERVICE}receiver: { prometheus: { listen: 0.0.0.0:9464${t} } }\n`);
    assert.match(scrape('')[0], /^receiver\.prometheus\.listen: 0\.0\.0\.0:9464 is not loopback: the scrape endpoint has no token .* clientCAFile/);
    assert.equal(scrape(`, tls: { certFile: ${pki.server.cert}, keyFile: ${pki.server.key} }`).length, 1);
    assert.deepEqual(scrape(`, tls: { certFile: ${pki.server.cert}, keyFile: ${pki.server.key}, clientCAFile: ${pki.ca} }`), []);
  });

  it('the export: tls turns TLS on; a token never goes to the network in clear unless written out', () => {
    const exp = (e: string) => parseConfig(`${SERVICE}receiver: { export: { ${e} } }\n`).receiver.export;
    assert.equal(exp('endpoint: 127.0.0.1:4317').insecure, true, 'plaintext by default, as before');
    assert.equal(exp(`tls: { ca: ${pki.ca} }`).insecure, false, 'tls alone turns it on');
    assert.equal(exp('insecure: false').insecure, false);
    const tokenFile = path.join(pki.dir, 'token');
    assert.deepEqual(problems(`${SERVICE}receiver: { export: { endpoint: actuator.example:4319, tokenFile: ${tokenFile} } }\n`), [
      'receiver.export.endpoint: actuator.example:4319 is not loopback and the export is plaintext: the token would cross the network in clear — expected receiver.export.tls (ca: the CA of the endpoint\'s certificate), or insecure: true written out to accept it',
    ]);
    assert.deepEqual(problems(`${SERVICE}receiver: { export: { endpoint: actuator.example:4319, tokenFile: ${tokenFile}, insecure: true } }\n`), []);
    assert.deepEqual(problems(`${SERVICE}receiver: { export: { endpoint: actuator.example:4319, tokenFile: ${tokenFile}, tls: { ca: ${pki.ca} } } }\n`), []);
    assert.deepEqual(problems(`${SERVICE}receiver: { export: { insecure: true, tls: { ca: ${pki.ca} } } }\n`),
      ['receiver.export.insecure: insecure: true contradicts receiver.export.tls — drop one (tls alone turns TLS on)']);
    assert.deepEqual(problems(`${SERVICE}receiver: { export: { tls: { cert: ${pki.client.cert} } } }\n`),
      ['receiver.export.tls.key: missing: a client certificate needs both cert and key']);
    assert.match(problems(`${SERVICE}receiver: { export: { tls: { cert: ${pki.client.cert}, key: ${pki.strayKey} } } }\n`)[0],
      /^receiver\.export\.tls\.key: .*stray\.key is not the key of .*client\.pem/);
  });

  it('commands that only read settings (status, trace) do not read the files: a key private to vipguard\'s user is fine', () => {
    const yaml = `${SERVICE}actuator:\n  tls: { certFile: ${pki.server.cert}, keyFile: /nonexistent/vipguard.key }\n`;
    assert.deepEqual(problems(yaml), ['actuator.tls.keyFile: cannot read /nonexistent/vipguard.key (ENOENT): expected the PEM private key of certFile, readable by the user running vipguard']);
    assert.equal(parseConfig(yaml, 'vipguard.yaml', { tlsFiles: false }).actuator.tls?.keyFile, '/nonexistent/vipguard.key');
  });

  it('check-config prints the problem, with the certificate\'s dates, and exits 1', () => {
    const file = path.join(pki.dir, 'expired.yaml');
    fs.writeFileSync(file, `${SERVICE}actuator:\n  listen: 0.0.0.0:9095\n  tls:\n    certFile: ${pki.expired.cert}\n    keyFile: ${pki.expired.key}\n`);
    const r = spawnSync(process.execPath, [path.join(__dirname, '..', '..', 'src', 'cli', 'main.js'), 'check-config', file], { encoding: 'utf8' });
    assert.equal(r.status, 1, r.stderr + r.stdout);
    assert.match(r.stderr + r.stdout, /expired\.yaml:5:\d+: actuator\.tls\.certFile: .*expired\.pem has expired: valid from \S+Z to \S+Z/);
  });
});

describe('the HTTP API over TLS', () => {
  const start = async (files: Parameters<typeof loadTls>[0]) => {
    const logs: string[] = [];
    const server = new ActuatorHttpServer({ listen: '127.0.0.1:0', token: TOKEN, tls: loadTls(files), target, status: () => ({ services: [], tls: 'yes' }), log: (l) => logs.push(l) });
    return { server, port: await server.start(), logs };
  };

  it('answers with the token over TLS, refuses without it, and speaks no plain HTTP', async () => {
    const { server, port, logs } = await start({ certFile: pki.server.cert, keyFile: pki.server.key });
    try {
      const ok = await get(`https://127.0.0.1:${port}/api/vipguard/status`, { ca: pem(pki.ca), token: TOKEN });
      assert.equal(ok.status, 200);
      assert.deepEqual(JSON.parse(ok.text), { services: [], tls: 'yes' });
      assert.equal(ok.peerCN, 'vipguard server');
      assert.equal((await get(`https://127.0.0.1:${port}/api/vipguard/status`, { ca: pem(pki.ca) })).status, 401);
      await assert.rejects(get(`https://127.0.0.1:${port}/-/healthy`, {}), /self-signed certificate in certificate chain|unable to verify/i,
        'a client that does not trust the CA refuses the server');
      await assert.rejects(get(`http://127.0.0.1:${port}/api/vipguard/status`, { token: TOKEN }), /socket hang up|ECONNRESET/);
      await waitFor(() => server.stats.tlsRefused >= 1, 2000, 'the plain request counted as a refused handshake');
      assert.ok(logs.some((l) => /TLS handshake from 127\.0\.0\.1 refused/.test(l)), logs.join('\n'));
    } finally {
      await server.stop();
    }
  });

  it('with a client CA: no certificate, or one of another CA, is refused before any request', async () => {
    const { server, port } = await start({ certFile: pki.server.cert, keyFile: pki.server.key, clientCAFile: pki.ca });
    try {
      const url = `https://127.0.0.1:${port}/api/vipguard/status`;
      const ok = await get(url, { ca: pem(pki.ca), cert: pem(pki.client.cert), key: pem(pki.client.key), token: TOKEN });
      assert.equal(ok.status, 200);
      const requests = server.stats.requests;
      await assert.rejects(get(url, { ca: pem(pki.ca), token: TOKEN }), /certificate required|socket hang up|ECONNRESET/);
      await assert.rejects(get(url, { ca: pem(pki.ca), cert: pem(pki.stranger.cert), key: pem(pki.stranger.key), token: TOKEN }), /unknown ca|socket hang up|ECONNRESET/);
      assert.equal(server.stats.requests, requests, 'neither became a request');
      await waitFor(() => server.stats.tlsRefused >= 2, 2000, 'both refused handshakes counted');
    } finally {
      await server.stop();
    }
  });

  it('a reload\'s certificate is served to new connections, without a restart', async () => {
    const { server, port } = await start({ certFile: pki.server.cert, keyFile: pki.server.key });
    try {
      const url = `https://127.0.0.1:${port}/-/healthy`;
      assert.equal((await get(url, { ca: pem(pki.ca) })).peerCN, 'vipguard server');
      server.setTls(loadTls({ certFile: pki.server2.cert, keyFile: pki.server2.key }));
      const after = await get(url, { ca: pem(pki.ca) });
      assert.equal(after.status, 200);
      assert.equal(after.peerCN, 'vipguard server renewed');
    } finally {
      await server.stop();
    }
    const plain = new ActuatorHttpServer({ listen: '127.0.0.1:0', token: TOKEN, target, status: () => ({}), log: () => {} });
    assert.throws(() => plain.setTls(loadTls({ certFile: pki.server.cert, keyFile: pki.server.key })), /started without TLS: turning it on takes a restart/);
  });

  it('vipguard status reads it over https: with --ca-file, a client certificate when required, and says what is missing', async () => {
    const { server, port } = await start({ certFile: pki.server.cert, keyFile: pki.server.key, clientCAFile: pki.ca });
    const env = { VIPGUARD_TOKEN: TOKEN };
    try {
      const url = `https://127.0.0.1:${port}`;
      const s = await fetchStatus({ url, json: true, env, caFile: pki.ca, certFile: pki.client.cert, keyFile: pki.client.key });
      assert.deepEqual(s, { services: [], tls: 'yes' });
      await assert.rejects(fetchStatus({ url, json: true, env }), /pass --ca-file with the CA that signed it/);
      await assert.rejects(fetchStatus({ url, json: true, env, caFile: pki.ca }), /pass --cert-file and --key-file/);
      await assert.rejects(fetchStatus({ url, json: true, env, caFile: pki.ca, certFile: pki.client.cert }), /needs both --cert-file and --key-file/);
      await assert.rejects(fetchStatus({ url: `http://127.0.0.1:${port}`, json: true, env }), /(socket hang up|ECONNRESET).* — a TLS listener hangs up on plain HTTP: with actuator.tls, use https:\/\//);
      // From the configuration: https because actuator.tls is set.
      const config = path.join(pki.dir, 'status.yaml');
      // The key file need not be readable by the user running status (here: not there at all).
      fs.writeFileSync(config, `${SERVICE}actuator:\n  listen: 127.0.0.1:${port}\n  token: ${TOKEN}\n  tls: { certFile: ${pki.server.cert}, keyFile: /nonexistent/vipguard.key, clientCAFile: ${pki.ca} }\n`);
      const fromConfig = await fetchStatus({ configPath: config, json: true, env: {}, caFile: pki.ca, certFile: pki.client.cert, keyFile: pki.client.key });
      assert.deepEqual(fromConfig, { services: [], tls: 'yes' });
    } finally {
      await server.stop();
    }
  });
});

describe('OTLP/gRPC over TLS', () => {
  /** One span through the exporter vipguard builds from `cfg`; resolves to whether the export succeeded. */
  const exportOne = (cfg: ExportConfig, name: string) => new Promise<boolean>((resolve) => {
    const exporter = traceExporter(cfg);
    const provider = new BasicTracerProvider({
      spanProcessors: [{
        onStart: () => {}, forceFlush: async () => {}, shutdown: async () => {},
        onEnd: (span) => exporter.export([span], (r) => {
          void exporter.shutdown();
          resolve(r.code === ExportResultCode.SUCCESS);
        }),
      }],
    });
    provider.getTracer('tls-test').startSpan(name, { attributes: { 'vipguard.outcome': 'unanswered', 'server.port': 80 } }).end();
  });

  it('delivers spans to the actuator\'s intake over mutual TLS; a client without a certificate delivers nothing', async () => {
    const spans: FlatSpan[] = [];
    const otlp = new OtlpServer({
      listen: '127.0.0.1:0', token: TOKEN, tls: loadTls({ certFile: pki.server.cert, keyFile: pki.server.key, clientCAFile: pki.ca }),
      onTraces: (r) => spans.push(...flattenSpans(r as never)),
    });
    const port = await otlp.start();
    const tokenFile = path.join(pki.dir, 'otlp-token');
    fs.writeFileSync(tokenFile, TOKEN, { mode: 0o600 });
    const base = { ...DEFAULT_EXPORT, endpoint: `127.0.0.1:${port}`, tokenFile, timeoutMs: 3000 };
    try {
      assert.equal(await exportOne({ ...base, insecure: false, tls: { ca: pki.ca, cert: pki.client.cert, key: pki.client.key } }, 'with-client-cert'), true);
      await waitFor(() => spans.some((s) => s.name === 'with-client-cert'), 5000, 'the span over mutual TLS');
      const s = spans.find((x) => x.name === 'with-client-cert')!;
      assert.equal(s.attributes['vipguard.outcome'], 'unanswered');
      assert.equal(s.attributes['server.port'], 80);
      assert.equal(await exportOne({ ...base, insecure: false, tls: { ca: pki.ca } }, 'without-client-cert'), false);
      assert.equal(await exportOne({ ...base, insecure: false, tls: { ca: pki.ca, cert: pki.stranger.cert, key: pki.stranger.key } }, 'stranger'), false);
      assert.equal(await exportOne({ ...base, insecure: true }, 'plaintext'), false);
      assert.equal(await exportOne({ ...base, insecure: false, tls: { ca: pki.otherCa, cert: pki.client.cert, key: pki.client.key } }, 'untrusted server'), false);
      assert.deepEqual(spans.map((x) => x.name), ['with-client-cert'], 'only the client with a certificate of the CA got through');
      assert.equal(otlp.stats.requests, 1, 'the others never reached the handler');
    } finally {
      await otlp.stop();
    }
  });

  it('the exporter takes OTEL_EXPORTER_OTLP_CERTIFICATE / _CLIENT_CERTIFICATE / _CLIENT_KEY when the configuration names no files', async () => {
    const spans: FlatSpan[] = [];
    const otlp = new OtlpServer({
      listen: '127.0.0.1:0', tls: loadTls({ certFile: pki.server.cert, keyFile: pki.server.key, clientCAFile: pki.ca }),
      onTraces: (r) => spans.push(...flattenSpans(r as never)),
    });
    const port = await otlp.start();
    const vars = { OTEL_EXPORTER_OTLP_CERTIFICATE: pki.ca, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: pki.client.cert, OTEL_EXPORTER_OTLP_CLIENT_KEY: pki.client.key };
    const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
    try {
      Object.assign(process.env, vars);
      assert.equal(await exportOne({ ...DEFAULT_EXPORT, endpoint: `127.0.0.1:${port}`, insecure: false, timeoutMs: 3000 }, 'from-env'), true);
      await waitFor(() => spans.some((s) => s.name === 'from-env'), 5000, 'the span with the environment\'s certificates');
      delete process.env.OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE;
      delete process.env.OTEL_EXPORTER_OTLP_CLIENT_KEY;
      assert.equal(await exportOne({ ...DEFAULT_EXPORT, endpoint: `127.0.0.1:${port}`, insecure: false, timeoutMs: 3000 }, 'env-without-client-cert'), false);
      assert.deepEqual(spans.map((x) => x.name), ['from-env']);
    } finally {
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
      await otlp.stop();
    }
  });

  it('a reload\'s certificate is served to new connections', async () => {
    const otlp = new OtlpServer({ listen: '127.0.0.1:0', tls: loadTls({ certFile: pki.server.cert, keyFile: pki.server.key }) });
    const port = await otlp.start();
    const presented = () => new Promise<string | undefined>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca: pem(pki.ca), ALPNProtocols: ['h2'] }, () => {
        const cn = s.getPeerCertificate().subject?.CN;
        resolve(cn === undefined ? undefined : String(cn));
        s.destroy();
      });
      s.on('error', reject);
    });
    try {
      assert.equal(await presented(), 'vipguard server');
      otlp.setTls(loadTls({ certFile: pki.server2.cert, keyFile: pki.server2.key }));
      assert.equal(await presented(), 'vipguard server renewed');
    } finally {
      await otlp.stop();
    }
  });
});
