// The actuator's listeners over TLS on real IPVS (inside the lab VM), with certificates made at test time
// (test/certs.ts): `vipguard run --only receiver` exports over mutual TLS, with the actuator's token, to
// `vipguard run --only actuator`, whose OTLP listener requires client certificates; a black-holed backend is
// quarantined from those spans; `vipguard status` reads the HTTPS API with a CA and a client certificate; renewed
// certificates are served by both listeners after SIGHUP, with the quarantine still in place; a broken key makes the
// reload refused and both keep the certificate they had.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { Topology } from '../../src/lab/topology';
import { REPO_ROOT } from '../../src/common/paths';
import { labConfig } from '../../src/lab/vipguard-process';
import { Load, ipvsWeights, sleep, startVipguard, stopVipguard, VipguardProcess } from './harness';
import { makePki, Pki } from '../certs';
import { waitFor } from '../helpers';

const KERNEL = process.env.VIPGUARD_LAB_KERNEL;
const SKIP = KERNEL && KERNEL !== 'host' ? false : 'needs IPVS: runs inside the lab VM';
const MAIN = path.join(REPO_ROOT, 'dist/src/cli/main.js');

/** The common name of the certificate a TLS listener presents to a client with the given certificate. */
function presented(port: number, pki: Pki): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(pki.ca), cert: fs.readFileSync(pki.client.cert), key: fs.readFileSync(pki.client.key), ALPNProtocols: ['h2', 'http/1.1'] }, () => {
      resolve(String(s.getPeerCertificate().subject?.CN));
      s.destroy();
    });
    s.setTimeout(10_000, () => s.destroy(new Error('no TLS handshake within 10 s')));
    s.on('error', reject);
  });
}

describe('the actuator over TLS', { skip: SKIP }, () => {
  let topo: Topology;
  let pki: Pki;
  let actuator: VipguardProcess | undefined;
  let receiver: VipguardProcess | undefined;
  let files: { cert: string; key: string };
  const key = (name: string) => `${topo.backend(name).ip}:${topo.backend(name).port}`;
  const port = (re: RegExp) => Number(actuator!.lines.map((l) => re.exec(l)).find(Boolean)![1]);

  before(async () => {
    topo = await Topology.up({ backends: ['healthy', 'healthy', 'healthy'], ipv6: false });
    pki = makePki();
    // Renewed in place later: the paths the configuration names stay.
    files = { cert: path.join(pki.dir, 'actuator.pem'), key: path.join(pki.dir, 'actuator.key') };
    fs.copyFileSync(pki.server.cert, files.cert);
    fs.copyFileSync(pki.server.key, files.key);
    const service = { address: topo.vip.host, port: topo.vip.port };
    const serverTls = { certFile: files.cert, keyFile: files.key, clientCAFile: pki.ca };
    actuator = await startVipguard(labConfig(service, { actuator: { tls: serverTls, otlpTls: serverTls, quarantine: { base: '60s' } } }), { args: ['--only', 'actuator'] });
    assert.ok(actuator.lines.some((l) => /alerts on https:\/\//.test(l)), actuator.lines.join('\n'));
    const otlpPort = port(/OTLP rules on \S+ \(port (\d+)\)/);
    receiver = await startVipguard(labConfig(service, {
      receiver: { export: { enabled: true, endpoint: `127.0.0.1:${otlpPort}`, tokenFile: path.join(actuator.dir, 'token'), tls: { ca: pki.ca, cert: pki.client.cert, key: pki.client.key } } },
    }), { args: ['--only', 'receiver'] });
  });

  after(async () => {
    await stopVipguard(receiver);
    await stopVipguard(actuator);
    await topo?.down();
    pki?.cleanup();
  });

  test('vipguard status over https: with the CA and a client certificate; without one, told what is missing', () => {
    // The configuration gives the token; --url the port (the configuration's listen is 127.0.0.1:0).
    const status = (...extra: string[]) => spawnSync(process.execPath, [MAIN, 'status', '--config', actuator!.configPath, '--url', `https://127.0.0.1:${actuator!.httpPort}`,
      '--ca-file', pki.ca, ...extra], { encoding: 'utf8', timeout: 60_000 });
    const ok = status('--cert-file', pki.client.cert, '--key-file', pki.client.key);
    assert.equal(ok.status, 0, ok.stderr);
    for (const b of ['b1', 'b2', 'b3']) assert.match(ok.stdout, new RegExp(`${key(b).replace(/\./g, '\\.')}\\s+weight\\s+1\\s+healthy`));
    const noCert = status();
    assert.notEqual(noCert.status, 0);
    assert.match(noCert.stderr, /pass --cert-file and --key-file/);
  });

  test('a black-holed backend is quarantined from spans that crossed mutual TLS', async () => {
    const load = new Load(topo.vip.host, topo.vip.port, 6, 5000);
    load.start();
    try {
      await sleep(3000); // handshakes to every backend, so each backend's deadline is learnt
      await topo.set('b2', 'blackhole');
      await waitFor(() => ipvsWeights(topo.vip.host, topo.vip.port)[key('b2')] === 0, 20_000, `b2 quarantined:\n${actuator!.lines.slice(-20).join('\n')}\n${receiver!.lines.slice(-10).join('\n')}`);
    } finally {
      await load.stop();
      await topo.set('b2', 'healthy');
    }
    const q = actuator!.lines.filter((l) => /vipguard: quarantine /.test(l));
    assert.match(q[0] ?? '', new RegExp(`quarantine ${key('b2').replace(/\./g, '\\.')} in web .*: rule handshake-failures`));
  });

  test('SIGHUP after a renewal: both listeners present the new certificate, the quarantine stays; a broken key is refused', async () => {
    const httpPort = actuator!.httpPort;
    const otlpPort = port(/OTLP rules on \S+ \(port (\d+)\)/);
    assert.equal(await presented(httpPort, pki), 'vipguard server');
    assert.equal(await presented(otlpPort, pki), 'vipguard server');
    fs.copyFileSync(pki.server2.cert, files.cert);
    fs.copyFileSync(pki.server2.key, files.key);
    const mark = actuator!.lines.length;
    actuator!.proc.kill('SIGHUP');
    await waitFor(() => actuator!.lines.slice(mark).some((l) => /reloaded /.test(l)), 15_000, 'the reload');
    assert.equal(await presented(httpPort, pki), 'vipguard server renewed');
    assert.equal(await presented(otlpPort, pki), 'vipguard server renewed');
    // The API still answers (same port, same token) over the renewed certificate.
    const token = fs.readFileSync(path.join(actuator!.dir, 'token'), 'utf8').trim();
    const body = await new Promise<string>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: httpPort, path: '/api/vipguard/status', agent: false, ca: fs.readFileSync(pki.ca),
        cert: fs.readFileSync(pki.client.cert), key: fs.readFileSync(pki.client.key), headers: { authorization: `Bearer ${token}` } }, (res) => {
        let t = '';
        res.on('data', (c) => { t += c; }).on('end', () => resolve(t));
      }).on('error', reject);
    });
    const dest = (JSON.parse(body) as { services: { destinations: { destination: string; state: string; weight: number }[] }[] }).services[0].destinations
      .find((d) => d.destination === key('b2'));
    assert.equal(dest?.weight, 0, `b2 still quarantined after the reload: ${JSON.stringify(dest)}`);
    // A key that is not the certificate's: the reload is refused, naming the setting, and both listeners keep
    // the certificate of the last good reload (and the running configuration its quarantine).
    fs.copyFileSync(pki.strayKey, files.key);
    const mark2 = actuator!.lines.length;
    actuator!.proc.kill('SIGHUP');
    await waitFor(() => actuator!.lines.slice(mark2).some((l) => /reload refused/.test(l)), 15_000, 'the refused reload');
    assert.match(actuator!.lines.slice(mark2).join('\n'), /actuator\.tls\.keyFile: .*actuator\.key is not the key of .*actuator\.pem/);
    assert.equal(await presented(httpPort, pki), 'vipguard server renewed');
    assert.equal(await presented(otlpPort, pki), 'vipguard server renewed');
    assert.equal(ipvsWeights(topo.vip.host, topo.vip.port)[key('b2')], 0);
  });
});
