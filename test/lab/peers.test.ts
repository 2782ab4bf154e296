// Real peers drive the actuator (inside the lab VM): Debian's own Prometheus and Alertmanager binaries, started
// here on loopback ports, talking to a real `vipguard run` whose embedded rules are off (actuator.rules: []), so
// the only way a destination can be quarantined is through them.
//   a. Prometheus scrapes vipguard's /metrics every second, evaluates an alert rule over
//      vipguard_connect_attempts_total and sends the alert to the actuator as its alertmanager (API v2).
//   b. An Alertmanager routes alerts posted to its own API to the actuator's /webhook, then their resolution.
// Weights are read back with ipvsadm; latencies are printed from vipguard's own log timestamps (same clock).
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Topology } from '../../src/lab/topology';
import { Daemon, alertmanagerToWebhook, connectOnce, getJson, ipvsWeights, loggedAt, sleep, startVipguard, stopVipguard, VipguardProcess } from './harness';
import { waitFor, waitForAsync } from '../helpers';
import { freePort } from '../../src/common/ports';

const KERNEL = process.env.VIPGUARD_LAB_KERNEL;
const SKIP = KERNEL && KERNEL !== 'host' ? false : 'needs IPVS: runs inside the lab VM';
const PROMETHEUS = '/usr/bin/prometheus';
const ALERTMANAGER = '/usr/bin/prometheus-alertmanager';


/**
 * Epoch ms of the first vipguard log line (`2024-05-01T12:00:00.000Z vipguard: …`) matching re at or after
 * `since`, waiting up to 5 s for it: the line may still be in the pipe when ipvsadm (run synchronously) already
 * shows the change.
 */
async function logTime(vg: VipguardProcess, re: RegExp, since = 0): Promise<number> {
  await waitFor(() => loggedAt(vg.lines, re, since) !== undefined, 5000, `vipguard to log ${re}:\n${vg.lines.join('\n')}`);
  return loggedAt(vg.lines, re, since)!;
}

describe('real peers: Debian\'s Prometheus and Alertmanager drive the actuator', { skip: SKIP }, () => {
  let topo: Topology;
  let vg: VipguardProcess | undefined;
  let prom: Daemon | undefined;
  let am: Daemon | undefined;
  let dir = '';
  const port = { metrics: 0, actuator: 0, prometheus: 0, alertmanager: 0 };
  const BASE_MS = 2000;

  before(async () => {
    topo = await Topology.up({ backends: ['healthy', 'refuse', 'healthy'], ipv6: false });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-peers-'));
    for (const k of Object.keys(port) as (keyof typeof port)[]) port[k] = await freePort();

    // One token file for the three, as deployed: vipguard reads it, Prometheus and Alertmanager send it.
    const tokenFile = path.join(dir, 'vipguard-token');
    fs.writeFileSync(tokenFile, `${crypto.randomBytes(24).toString('hex')}\n`, { mode: 0o600 });

    // Prometheus: scrape every second, evaluate every second, the actuator as its only alertmanager.
    fs.mkdirSync(path.join(dir, 'prometheus'));
    fs.writeFileSync(path.join(dir, 'rules.yml'), `
groups:
  - name: vipguard
    interval: 1s
    rules:
      - alert: VipguardBackendHandshakesFailing
        expr: |
          sum by (vipguard_service, network_peer_address, network_peer_port) (
            increase(vipguard_connect_attempts_total{vipguard_outcome=~"unanswered|refused"}[30s])
          ) > 0
        for: 0s
        labels: { severity: page }
        annotations:
          summary: '{{ $labels.network_peer_address }}:{{ $labels.network_peer_port }} failed handshakes'
`);
    fs.writeFileSync(path.join(dir, 'prometheus.yml'), `
global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: vipguard
    static_configs: [{ targets: ['127.0.0.1:${port.metrics}'] }]
rule_files: ['${dir}/rules.yml']
alerting:
  alertmanagers:
    - api_version: v2
      static_configs: [{ targets: ['127.0.0.1:${port.actuator}'] }]
      authorization: { credentials_file: ${tokenFile} }
`);
    // Alertmanager: everything to the actuator's webhook at once, resolutions too, re-checked every second.
    alertmanagerToWebhook(dir, port.actuator, tokenFile, ['vipguard_service', 'vipguard_backend']);

    // All three start at once: under TCG each takes seconds.
    const vgStarting = startVipguard(`
services:
  - name: web
    address: ${topo.vip.host}
    port: ${topo.vip.port}
    quarantine: { base: ${BASE_MS}ms, multiplier: 10, max: 5m, maxQuarantined: 2, probeTimeout: 300ms }
receiver:
  export: { enabled: false }
  prometheus: { enabled: true, listen: 127.0.0.1:${port.metrics} }
actuator:
  listen: 127.0.0.1:${port.actuator}
  otlpListen: 127.0.0.1:0
  stateFile: $DIR/state.json
  tokenFile: ${tokenFile}
  reconcileInterval: 500ms
  rules: []
  # The reaction is timed from the first connect a client sees refused: let the refusals through.
  holdRefusals: { enabled: false }
`, { readyTimeoutMs: 120_000 });
    prom = Daemon.start('prometheus', [PROMETHEUS, `--config.file=${dir}/prometheus.yml`, `--storage.tsdb.path=${dir}/prometheus`,
      `--web.listen-address=127.0.0.1:${port.prometheus}`, '--storage.tsdb.retention.time=1h', '--log.level=warn']);
    am = Daemon.start('alertmanager', [ALERTMANAGER, `--config.file=${dir}/alertmanager.yml`, `--storage.path=${dir}/alertmanager`,
      `--web.listen-address=127.0.0.1:${port.alertmanager}`, '--cluster.listen-address=', '--log.level=warn']);
    const [vgReady, promMs, amMs] = await Promise.all([
      vgStarting, prom.ready(`http://127.0.0.1:${port.prometheus}/-/ready`, 120_000), am.ready(`http://127.0.0.1:${port.alertmanager}/-/ready`, 120_000),
    ]);
    vg = vgReady;
    console.log(`[${KERNEL}] peers: Prometheus ready in ${promMs} ms, Alertmanager in ${amMs} ms (started together with vipguard)`);
  });

  after(async () => {
    if (vg && process.env.VIPGUARD_TEST_DEBUG) console.log(`--- vipguard log:\n${vg.lines.join('\n')}`);
    await Promise.all([prom?.stop(), am?.stop(), stopVipguard(vg)]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    await topo?.down();
  });

  const key = (name: string) => `${topo.backend(name).ip}:${topo.backend(name).port}`;
  const weights = () => ipvsWeights(topo.vip.host, topo.vip.port);

  test('Prometheus: a rule over vipguard\'s metrics fires, the actuator (its alertmanager) quarantines the refusing backend', async () => {
    const api = `http://127.0.0.1:${port.prometheus}/api/v1`;
    // Wait until Prometheus scrapes vipguard and knows the actuator as an alertmanager (its discovery settles
    // within ~5 s of start).
    await waitForAsync(async () => (await getJson(`${api}/targets`)).data.activeTargets.some((t: { health: string }) => t.health === 'up'), 60_000, 'vipguard scraped');
    await waitForAsync(async () => (await getJson(`${api}/alertmanagers`)).data.activeAlertmanagers
      .some((a: { url: string }) => a.url === `http://127.0.0.1:${port.actuator}/api/v2/alerts`), 60_000, 'the actuator listed as alertmanager');

    // Clients connect through the virtual service (rr over b1, b2, b3; b2 refuses) until b2 is out.
    const t0 = Date.now();
    let firstRefused = 0;
    let connects = 0;
    while (weights()[key('b2')] !== 0 && Date.now() - t0 < 60_000) {
      const at = Date.now();
      const r = await connectOnce(topo.vip.host, topo.vip.port, 2000);
      connects++;
      if (r.outcome === 'refused' && !firstRefused) firstRefused = at;
      await sleep(200);
    }
    assert.equal(weights()[key('b2')], 0, `b2 quarantined through Prometheus within 60 s:\n${vg!.lines.join('\n')}`);
    assert.ok(firstRefused > 0, 'some connect was refused by b2');
    const w = weights();
    assert.equal(w[key('b1')], 1, 'healthy b1 untouched');
    assert.equal(w[key('b3')], 1, 'healthy b3 untouched');

    // It came from Prometheus over the v2 API, naming the destination by the metric's own labels.
    await logTime(vg!, /quarantine 10\.200\.0\.3:8080 in web \(level 0\) .*: alertmanager VipguardBackendHandshakesFailing/);
    const kernelAt = await logTime(vg!, /quarantine: weight of 10\.200\.0\.3:8080 .* 1 -> 0/);
    const alerts = (await getJson(`${api}/alerts`)).data.alerts as { labels: Record<string, string>; state: string; activeAt: string }[];
    const firing = alerts.find((a) => a.labels.network_peer_address === '10.200.0.3' && a.state === 'firing');
    assert.ok(firing, `Prometheus shows the alert firing: ${JSON.stringify(alerts)}`);
    assert.equal(firing.labels.vipguard_service, 'web');
    assert.equal(firing.labels.network_peer_port, '8080');
    const activeAt = Date.parse(firing.activeAt);
    console.log(`[${KERNEL}] Prometheus → actuator: weight 0 in the kernel ${kernelAt - firstRefused} ms after the first refused connect ` +
      `(rule active ${activeAt - firstRefused} ms after it — scrape 1 s + increase() needs two samples + evaluation 1 s; ` +
      `alert to weight 0 ${kernelAt - activeAt} ms); ${connects} connects`);
    assert.ok(kernelAt - firstRefused < 15_000, `within 15 s of the first failure (1 s scrape and evaluation), got ${kernelAt - firstRefused} ms`);

    // It sent with the token file (credentials_file) and saw no failed notification.
    const metrics = await (await fetch(`http://127.0.0.1:${port.prometheus}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    const sample = (name: string) => Number(new RegExp(`^${name}\\{[^}]*alertmanager="http://127\\.0\\.0\\.1:${port.actuator}/api/v2/alerts"[^}]*\\} (\\S+)$`, 'm').exec(metrics)?.[1]);
    assert.ok(sample('prometheus_notifications_sent_total') >= 1, 'Prometheus sent alerts to the actuator');
    assert.equal(sample('prometheus_notifications_errors_total'), 0, 'and none failed (401 without the token, 4xx for alerts not applied)');

    // Quiet Prometheus (it would resend the alert every minute) and heal b2 for the next test.
    await prom!.stop();
    await topo.set('b2', 'healthy');
  });

  test('Alertmanager: alerts posted to it reach the webhook and quarantine; their resolution ends the quarantine where the policy allows', async () => {
    const amApi = `http://127.0.0.1:${port.alertmanager}/api/v2/alerts`;
    const startsAt = new Date(Date.now() - 1000).toISOString();
    const labels = (attempt: string) => ({ alertname: 'VipguardBackendDown', vipguard_service: 'web', vipguard_backend: key('b3'), attempt });
    const post = async (alerts: object[]) => {
      const r = await fetch(amApi, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(alerts), signal: AbortSignal.timeout(5000) });
      assert.equal(r.status, 200, `Alertmanager accepted the alerts: ${await r.text()}`);
      return Date.now();
    };

    // The policy's own times, from its log lines: "quarantine D in web (level N) until T: webhook NAME" and
    // "resolved webhook NAME: D in web ends quarantine at T" (each line stamped when the decision was made).
    const D = '10\\.200\\.0\\.4:8080';
    const decision = async (re: RegExp, since: number) => {
      const at = await logTime(vg!, re, since);
      const line = vg!.lines.find((l) => Date.parse(l.slice(0, 24)) === at && re.test(l))!;
      return { at, until: Date.parse(/(?:until|at) (\d{4}-\S+Z)/.exec(line.slice(25))![1]) };
    };
    const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 50, `${what}: ${a} vs ${b} (±50 ms)`);

    // 1. Firing → webhook → quarantine at level 0, which lasts `base`. The alert stays firing in Alertmanager
    //    (no resolution), so the quarantine ends at its own time; b3 really is healthy, so the probe answers.
    const p1 = await post([{ labels: labels('1'), annotations: { summary: 'b3 down (test)' }, startsAt }]);
    await waitFor(() => weights()[key('b3')] === 0, 10_000, 'b3 quarantined by the webhook');
    const q1 = await logTime(vg!, new RegExp(`quarantine: weight of ${D} .* 1 -> 0`), p1 - 1000);
    const d1 = await decision(new RegExp(`quarantine ${D} in web \\(level 0\\) until .*: webhook VipguardBackendDown`), p1 - 1000);
    near(d1.until - d1.at, BASE_MS, 'level 0 lasts base');
    await waitFor(() => weights()[key('b3')] === 1, BASE_MS + 10_000, 'b3 restored after base');
    const r1 = await logTime(vg!, new RegExp(`restore: weight of ${D} .* 0 -> 1`), q1);
    assert.ok(r1 >= d1.until, `not restored before the quarantine's end (${r1 - d1.until} ms)`);

    // 2. A second alert for b3 (the first is still firing) is a repeat offence: level 1, base × 10.
    const p2 = await post([{ labels: labels('2'), annotations: { summary: 'b3 down again (test)' }, startsAt }]);
    await waitFor(() => weights()[key('b3')] === 0, 10_000, 'b3 quarantined again');
    const q2 = await logTime(vg!, new RegExp(`quarantine: weight of ${D} .* 1 -> 0`), r1);
    const d2 = await decision(new RegExp(`quarantine ${D} in web \\(level 1\\) until .*: webhook VipguardBackendDown`), r1);
    near(d2.until - d2.at, 10 * BASE_MS, 'level 1 lasts base × multiplier');

    // 3. Both resolved (endsAt in the past) → Alertmanager sends the resolution → the hold ends now (the source
    //    that started the quarantine resolved it) instead of at its start + 10 × base; the probe then restores.
    const endsAt = new Date(Date.now() - 100).toISOString();
    const p3 = await post(['1', '2'].map((a) => ({ labels: labels(a), startsAt, endsAt })));
    await waitFor(() => weights()[key('b3')] === 1, 10 * BASE_MS, 'b3 restored after the resolution');
    const d3 = await decision(new RegExp(`resolved webhook VipguardBackendDown: ${D} in web ends quarantine at`), p3 - 1000);
    near(d3.until, d3.at, 'resolved: the hold ends now');
    const r2 = await logTime(vg!, new RegExp(`restore: weight of ${D} .* 0 -> 1`), q2);
    assert.ok(r2 >= d3.until, `not restored before the resolution (${r2 - d3.until} ms)`);
    assert.ok(r2 < d2.until - 1000, `the resolution cut level 1 short: restored ${d2.until - r2} ms before its end`);
    console.log(`[${KERNEL}] Alertmanager → webhook → weight 0: ${q1 - p1} ms after the POST (level 0, ${BASE_MS} ms); ` +
      `repeat: ${q2 - p2} ms (level 1, ${10 * BASE_MS} ms); resolved: reached the actuator ${d3.at - p3} ms after the POST, ` +
      `weight back ${r2 - q2} ms into the level-1 quarantine (${d2.until - r2} ms before its end)`);
  });
});
