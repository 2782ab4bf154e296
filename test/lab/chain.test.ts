// The metrics chain docs/alerts.md promises, verbatim, inside the lab VM: vipguard's receiver exports metrics to the
// real collector (otel-config/collector.yaml), whose prometheus_remote_write sends them to Debian's Prometheus; the
// sample rule — read from docs/alerts.md itself — fires, Prometheus sends the alert to Debian's Alertmanager, which
// routes it to vipguard's webhook, and the refusing backend is quarantined. vipguard's embedded rules are off, so
// that chain is the only way to a quarantine. On the way: one Prometheus name per metric (the names Prometheus holds
// from the collector are the names vipguard's own scrape endpoint serves), series at 0 before the first failure, and
// the client host's identity kept in the alert.
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Topology } from '../../src/lab/topology';
import { collectorBinary, sidecarConfig, startCollector, stopCollector, type CollectorProcess, type SidecarPorts } from '../../src/lab/collector';
import { freePort } from '../../src/common/ports';
import { serviceInstanceId } from '../../src/telemetry/resource';
import { Daemon, alertmanagerToWebhook, Load, getJson, ipvsWeights, promQuery, startVipguard, stopVipguard, VipguardProcess } from './harness';
import { docsYamlBlock, waitFor, waitForAsync } from '../helpers';

const KERNEL = process.env.VIPGUARD_LAB_KERNEL;
// On 6.1 only: the chain is userspace (collector, Prometheus, Alertmanager, the webhook); what depends on the kernel
// — the receiver's attempts and the actuator's weight change — every other lab file covers on 5.10, 6.1 and 6.12.
// Keeps npm test inside its time budget on a fresh machine.
const CHAIN_KERNEL = '6.1';
const SKIP = !KERNEL || KERNEL === 'host' ? 'needs IPVS: runs inside the lab VM'
  : KERNEL !== CHAIN_KERNEL ? `runs on ${CHAIN_KERNEL} only (the other kernels add nothing the chain depends on)` : false;
const PROMETHEUS = '/usr/bin/prometheus';
const ALERTMANAGER = '/usr/bin/prometheus-alertmanager';

/** The rule file docs/alerts.md shows, exactly as written there (the YAML block headed by its path). */
export const docsRuleFile = (): string => docsYamlBlock('alerts.md', '# /etc/prometheus/rules/vipguard.yml');

/** vipguard_* metric family names in a Prometheus text exposition (histograms by their family name). */
function familiesInText(text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (vipguard_\S+) /gm)].map((m) => m[1]));
}

describe('the metrics chain: receiver → collector → Prometheus → the docs\' rule → Alertmanager → vipguard', { skip: SKIP }, () => {
  let topo: Topology;
  let vg: VipguardProcess | undefined;
  let collector: CollectorProcess | undefined;
  let prom: Daemon | undefined;
  let am: Daemon | undefined;
  let dir = '';
  let ports: SidecarPorts;
  const port = { prometheus: 0, alertmanager: 0, actuator: 0, scrape: 0 };

  before(async () => {
    collectorBinary();
    topo = await Topology.up({ backends: ['healthy', 'healthy', 'healthy'], ipv6: false });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-chain-'));
    for (const k of Object.keys(port) as (keyof typeof port)[]) port[k] = await freePort();
    ports = { otlp: await freePort(), actuator: await freePort(), telemetry: await freePort() };
    const tokenFile = path.join(dir, 'vipguard-token');
    fs.writeFileSync(tokenFile, `${crypto.randomBytes(24).toString('hex')}\n`, { mode: 0o600 });

    fs.writeFileSync(path.join(dir, 'rules.yml'), docsRuleFile());
    fs.mkdirSync(path.join(dir, 'prometheus'));
    fs.writeFileSync(path.join(dir, 'prometheus.yml'), `
global: { evaluation_interval: 1s }
rule_files: ['${dir}/rules.yml']
alerting:
  alertmanagers:
    - api_version: v2
      static_configs: [{ targets: ['127.0.0.1:${port.alertmanager}'] }]
`);
    alertmanagerToWebhook(dir, port.actuator, tokenFile, ['instance', 'vipguard_service', 'network_peer_address', 'network_peer_port']);
    const vgStarting = startVipguard(`
services:
  - name: web
    address: ${topo.vip.host}
    port: ${topo.vip.port}
    quarantine: { base: 60s, max: 5m, probeTimeout: 300ms }
receiver:
  export: { enabled: true, endpoint: 127.0.0.1:${ports.otlp} }
  prometheus: { enabled: true, listen: 127.0.0.1:${port.scrape} }
actuator:
  listen: 127.0.0.1:${port.actuator}
  otlpListen: 127.0.0.1:${ports.actuator}
  stateFile: $DIR/state.json
  tokenFile: ${tokenFile}
  reconcileInterval: 500ms
  rules: []
  holdRefusals: { enabled: false }
`, { readyTimeoutMs: 120_000 });
    prom = Daemon.start('prometheus', [PROMETHEUS, `--config.file=${dir}/prometheus.yml`, `--storage.tsdb.path=${dir}/prometheus`,
      `--web.listen-address=127.0.0.1:${port.prometheus}`, '--web.enable-remote-write-receiver', '--storage.tsdb.retention.time=1h', '--log.level=warn']);
    am = Daemon.start('alertmanager', [ALERTMANAGER, `--config.file=${dir}/alertmanager.yml`, `--storage.path=${dir}/alertmanager`,
      `--web.listen-address=127.0.0.1:${port.alertmanager}`, '--cluster.listen-address=', '--log.level=warn']);
    const dead = await freePort(); // the trace backend: nothing listens, nothing leaves the VM
    [vg] = await Promise.all([vgStarting, prom.ready(`http://127.0.0.1:${port.prometheus}/-/ready`, 120_000),
      am.ready(`http://127.0.0.1:${port.alertmanager}/-/ready`, 120_000)]);
    collector = await startCollector(sidecarConfig(ports, tokenFile), {
      env: { VIPGUARD_TRACES_ENDPOINT: `127.0.0.1:${dead}`, VIPGUARD_REMOTE_WRITE_URL: `http://127.0.0.1:${port.prometheus}/api/v1/write` },
    });
  });

  after(async () => {
    if (process.env.VIPGUARD_TEST_DEBUG) {
      console.log(`--- vipguard:\n${vg?.lines.join('\n')}\n--- collector:\n${collector?.lines.slice(-30).join('\n')}\n--- prometheus:\n${prom?.lines.join('\n')}\n--- alertmanager:\n${am?.lines.join('\n')}`);
    }
    await stopCollector(collector);
    await Promise.all([prom?.stop(), am?.stop(), stopVipguard(vg)]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    await topo?.down();
  });

  const key = (name: string) => `${topo.backend(name).ip}:${topo.backend(name).port}`;
  const query = (q: string) => promQuery(`http://127.0.0.1:${port.prometheus}`, q);

  test('the docs\' rule fires from remote-written metrics and Alertmanager\'s webhook quarantines the refusing backend', async () => {
    const b3 = topo.backend('b3');
    const load = new Load(topo.vip.host, topo.vip.port, 5, 3000);
    load.start();
    const t0 = Date.now();
    let refusedAt = 0;
    try {
      // Healthy first: b3's refused series must reach Prometheus at 0 before b3 ever refuses.
      const zero = `vipguard_connect_attempts_total{vipguard_outcome="refused",network_peer_address="${b3.ip}"}`;
      await waitForAsync(async () => (await query(zero)).length > 0, 90_000, `${zero} in Prometheus, from the collector's remote write`);
      const before = await query(zero);
      assert.equal(before[0].value[1], '0', 'the failure series exists at 0 before the first failure');
      const instance = before[0].metric.instance;
      console.log(`[${KERNEL}] chain: series at 0 in Prometheus ${Date.now() - t0} ms after the load began; instance="${instance}" job="${before[0].metric.job}"`);
      assert.equal(instance, serviceInstanceId('vipguard-receiver'), 'remote write names the client by its service.instance.id');

      await topo.set('b3', 'refuse');
      refusedAt = Date.now();
      await waitFor(() => ipvsWeights(topo.vip.host, topo.vip.port)[key('b3')] === 0, 120_000, 'b3 quarantined through the chain');
      console.log(`[${KERNEL}] chain: b3 refusing → weight 0 in ${Date.now() - refusedAt} ms (5 s metric interval, collector batch, 5 s rule interval, Alertmanager, webhook)`);
    } finally {
      await load.stop();
    }
    // The quarantine came through the webhook, from the docs' alert, with the client's identity in its labels.
    const line = vg!.lines.find((l) => l.includes(`quarantine ${key('b3')} in web`) && l.includes('VipguardBackendHandshakesFailing'));
    assert.ok(line, `the quarantine names the docs' alert:\n${vg!.lines.join('\n')}`);
    console.log(`[${KERNEL}] chain: ${line}`);
    const alerts = await getJson(`http://127.0.0.1:${port.alertmanager}/api/v2/alerts`);
    const a = (alerts as { labels: Record<string, string> }[]).find((x) => x.labels.alertname === 'VipguardBackendHandshakesFailing');
    assert.ok(a, `Alertmanager holds the alert: ${JSON.stringify(alerts)}`);
    assert.equal(a.labels.instance, serviceInstanceId('vipguard-receiver'), 'the alert keeps the client host');
    assert.equal(a.labels.network_peer_address, b3.ip);
    assert.equal(a.labels.vipguard_service, 'web');
    for (const n of ['b1', 'b2']) assert.equal(ipvsWeights(topo.vip.host, topo.vip.port)[key(n)], 1, `${n} untouched`);
  });

  test('one Prometheus name per metric: what the collector wrote is what vipguard\'s own endpoint serves', async () => {
    const text = async (url: string, headers: Record<string, string> = {}) =>
      (await fetch(url, { headers, signal: AbortSignal.timeout(10_000) })).text();
    const receiver = familiesInText(await text(`http://127.0.0.1:${port.scrape}/metrics`));
    const actuator = familiesInText(await text(`http://127.0.0.1:${port.actuator}/metrics`, { authorization: `Bearer ${fs.readFileSync(path.join(dir, 'vipguard-token'), 'utf8').trim()}` }));
    const names: string[] = (await getJson(`http://127.0.0.1:${port.prometheus}/api/v1/label/__name__/values`)).data;
    // Histograms arrive as _bucket/_sum/_count series: reduced to the family name.
    const written = new Set(names.filter((n) => n.startsWith('vipguard_')).map((n) => n.replace(/_(bucket|sum|count)$/, '')));
    console.log(`[${KERNEL}] chain: receiver serves ${[...receiver].sort().join(' ')}; actuator serves ${[...actuator].sort().join(' ')}; ` +
      `Prometheus got ${[...written].sort().join(' ')}`);
    assert.ok(receiver.has('vipguard_connect_duration_seconds'), 'the scrape endpoint names durations in seconds, as the collector does');
    assert.deepEqual([...receiver].filter((n) => !written.has(n)), [], 'every receiver family served is in Prometheus under the same name');
    assert.deepEqual([...written].filter((n) => !receiver.has(n) && !actuator.has(n)), [], 'and every name Prometheus got is one vipguard serves');
  });
});
