// Certificate rotation in a running `vipguard run --only receiver` (no IPVS needed), through the same reload path
// the actuator's listeners take (Vipguard.reload → each running TLS listener): its Prometheus endpoint serves
// mutual TLS from receiver.prometheus.tls; the files are renewed in place and SIGHUP makes new connections get the
// new certificate, no restart; then a key that is not the certificate's is put in place and the reload is refused,
// naming the setting, while the endpoint keeps serving the certificate it had. Real certificates (test/certs.ts).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';
import type * as tls from 'node:tls';
import { makePki } from '../certs';
import { requireRoot, waitFor } from '../helpers';
import { startReceiverProcess, stopChild, Child } from '../receiver-process';

interface Reply { status: number; text: string; peerCN?: string }

function get(url: string, o: https.RequestOptions = {}): Promise<Reply> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = (u.protocol === 'https:' ? https : http).request(u, { agent: false, ...o }, (res) => {
      const cn = (res.socket as tls.TLSSocket).getPeerCertificate?.()?.subject?.CN;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString(), peerCN: cn === undefined ? undefined : String(cn) }));
    });
    req.setTimeout(5000, () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

test('the scrape endpoint over mutual TLS: a renewed certificate served after SIGHUP, a broken one refused and the old kept', { skip: requireRoot() }, async () => {
  const pki = makePki();
  const cert = path.join(pki.dir, 'host.pem');
  const key = path.join(pki.dir, 'host.key');
  fs.copyFileSync(pki.server.cert, cert);
  fs.copyFileSync(pki.server.key, key);
  const svc = net.createServer((s) => s.end());
  await new Promise<void>((r) => svc.listen(0, '127.0.0.1', r));
  const config = path.join(pki.dir, 'vipguard.yaml');
  fs.writeFileSync(config, `services:
  - { name: loop, address: 127.0.0.1, port: ${(svc.address() as net.AddressInfo).port} }
receiver:
  export: { enabled: false }
  prometheus:
    listen: 127.0.0.1:0
    tls: { certFile: ${cert}, keyFile: ${key}, clientCAFile: ${pki.ca} }
actuator:
  enabled: false
`);
  let child: Child | undefined;
  try {
    child = await startReceiverProcess(config);
    const c = child;
    const line = c.lines.find((l) => /Prometheus https:\/\/127\.0\.0\.1:0\/metrics \(port \d+\)/.test(l));
    assert.ok(line, `the receiver names its https endpoint and port:\n${c.lines.join('\n')}`);
    const url = `https://127.0.0.1:${/\(port (\d+)\)/.exec(line)![1]}/metrics`;
    const client = { ca: fs.readFileSync(pki.ca), cert: fs.readFileSync(pki.client.cert), key: fs.readFileSync(pki.client.key) };

    const first = await get(url, client);
    assert.equal(first.status, 200);
    assert.match(first.text, /^vipguard_receiver_events_lost(_total)?\{/m, 'the receiver\'s metrics');
    assert.equal(first.peerCN, 'vipguard server');
    await assert.rejects(get(url, { ca: client.ca }), /certificate required|socket hang up|ECONNRESET/, 'no client certificate');
    await assert.rejects(get(url.replace('https:', 'http:')), /socket hang up|ECONNRESET/, 'plain HTTP');

    // Renewed in place (same paths), then SIGHUP: new connections get the new certificate.
    fs.copyFileSync(pki.server2.cert, cert);
    fs.copyFileSync(pki.server2.key, key);
    let mark = c.lines.length;
    c.proc.kill('SIGHUP');
    await waitFor(() => c.lines.slice(mark).some((l) => /reloaded /.test(l)), 10_000, 'the reload');
    assert.ok(c.lines.slice(mark).some((l) => /reload: receiver\.prometheus\.tls: TLS with .*host\.pem \(CN=vipguard server renewed, valid to /.test(l)), c.lines.slice(mark).join('\n'));
    const renewed = await get(url, client);
    assert.equal(renewed.status, 200);
    assert.equal(renewed.peerCN, 'vipguard server renewed');

    // A key that is not the certificate's: the reload is refused, naming the setting; the endpoint keeps serving.
    fs.copyFileSync(pki.strayKey, key);
    mark = c.lines.length;
    c.proc.kill('SIGHUP');
    await waitFor(() => c.lines.slice(mark).some((l) => /reload refused/.test(l)), 10_000, 'the refused reload');
    const refusal = c.lines.slice(mark).join('\n');
    assert.match(refusal, /receiver\.prometheus\.tls\.keyFile: .*host\.key is not the key of .*host\.pem/);
    assert.ok(!c.lines.slice(mark).some((l) => /reloaded /.test(l)), refusal);
    const kept = await get(url, client);
    assert.equal(kept.status, 200);
    assert.equal(kept.peerCN, 'vipguard server renewed', 'the certificate of the last good reload');
    assert.equal(c.proc.exitCode, null, 'still running');
  } finally {
    await stopChild(child);
    svc.close();
    pki.cleanup();
  }
});
