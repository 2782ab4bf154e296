// Fleet mode as docs/fleet.md describes it, inside the lab VM: three client hosts (the topology's network
// namespaces c1–c3, each with its own IPVS table and its own vipguard process), one central Debian Prometheus that
// scrapes every client's receiver over mutual TLS, evaluates the fleet rule — read from docs/fleet.md itself — and
// delivers its alerts to every vipguard's Alertmanager v2 endpoint, found through file_sd, over TLS with the
// fleet's token. The embedded rules stay on in every vipguard: local decisions go on beside the fleet's.
//   A  one backend black-holed, traffic from c1 and c2 only: c3, which never sent anything, quarantines it from
//      the fleet alert;
//   B  a backend failing on c1's path only: c1 quarantines it itself, and the fleet alert never fires, so c2 and
//      c3 keep it in service — over a bounded wait that covers the rule's `for` and several evaluations after the
//      evidence reached Prometheus.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { Topology } from '../../src/lab/topology';
import { Fleet, FLEET_ALERT as ALERT, FLEET_LAB_INTERVALS, fleetRuleFile, type FleetClient } from '../../src/lab/fleet';
import { durationMs } from '../../src/config/config';
import { getJson, Load, loggedAt, procWeight, sleep } from './harness';
import { waitFor, waitForAsync } from '../helpers';

const KERNEL = process.env.VIPGUARD_LAB_KERNEL;
// On 6.1 only, as the metrics chain (chain.test.ts): what the fleet adds is userspace — Prometheus, the rule, the
// notifier's fan-out, the actuator's HTTP input; the receiver and the weight change under it are covered on 5.10,
// 6.1 and 6.12 by the other lab files.
const FLEET_KERNEL = '6.1';
const SKIP = !KERNEL || KERNEL === 'host' ? 'needs IPVS: runs inside the lab VM'
  : KERNEL !== FLEET_KERNEL ? `runs on ${FLEET_KERNEL} only (the other kernels add nothing the fleet path depends on)` : false;
/** The test's Prometheus intervals (src/lab/fleet.ts): the rule leaves evaluation to the ruler's evaluation_interval. */
const { scrapeS: SCRAPE_S, evalS: EVAL_S } = FLEET_LAB_INTERVALS;

/** The fleet alert's `for` in ms (0 when it has none): the bounded wait of case B follows whatever the docs say. */
function ruleForMs(ruleFile: string): number {
  const groups = (parseYaml(ruleFile) as { groups: { rules: { alert?: string; for?: string }[] }[] }).groups;
  const rule = groups.flatMap((g) => g.rules).find((r) => r.alert === ALERT);
  assert.ok(rule, `docs/fleet.md's rule file has an alert ${ALERT}`);
  return rule.for ? durationMs(rule.for) : 0; // a compound Prometheus duration (1m30s) fails here, loudly
}

describe('fleet mode: three client hosts, one central Prometheus, docs/fleet.md\'s rule', { skip: SKIP }, () => {
  let topo: Topology;
  let fleet: Fleet | undefined;
  const clients: FleetClient[] = [];
  const loads: Load[] = [];
  const t0 = Date.now();
  const since = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

  before(async () => {
    topo = await Topology.up({ backends: ['healthy', 'healthy', 'healthy'], ipv6: false, clients: 3 });
    fleet = new Fleet(topo);
    await fleet.startVipguards();
    clients.push(...fleet.clients);
    console.log(`[${KERNEL}] fleet: 3 vipguards ready at ${since()}`);
    await fleet.startPrometheus(FLEET_LAB_INTERVALS);
    console.log(`[${KERNEL}] fleet: Prometheus ready and scraping 3 receivers at ${since()}`);

    // Traffic from c1 and c2 only; c3 stays silent throughout.
    for (const x of clients.slice(0, 2)) {
      const load = new Load(x.c.vip.host, x.c.vip.port, 5, 3000).inNetns(x.c.netns);
      load.start();
      loads.push(load);
    }
  });

  after(async () => {
    const loadResults = await Promise.all(loads.map((l) => l.stop().catch((e: Error) => e.message)));
    if (process.env.VIPGUARD_TEST_DEBUG) {
      for (const x of clients) console.log(`--- vipguard ${x.c.name}:\n${x.vg.lines.join('\n')}`);
      console.log(`--- prometheus:\n${fleet?.prom?.lines.join('\n')}\n--- loads: ${loadResults.map((r) => (typeof r === 'string' ? r : r.length)).join(', ')}`);
    }
    await fleet?.stop();
    await topo?.down();
  });

  const byName = (n: string) => clients.find((x) => x.c.name === n)!;
  const weight = (x: FleetClient, backend: string) => procWeight(x.c.vip, topo.backend(backend), x.vg.proc.pid!);
  const fleetSeries = (record: string, backend: string) => fleet!.backendSeries(record, topo.backend(backend).ip);
  const quarantineLine = (backend: string) =>
    new RegExp(`quarantine ${topo.backend(backend).ip.replace(/\./g, '\\.')}:${topo.backend(backend).port} in web`);

  test('B: a backend failing on one client\'s path only is quarantined there, and nowhere else', async () => {
    const [c1, c2, c3] = ['c1', 'c2', 'c3'].map(byName);
    // Both talking clients reach b2 in Prometheus's eyes before its path from c1 breaks.
    await waitForAsync(async () => (await fleetSeries('backend:vipguard_clients_connecting:count1m', 'b2')) === '2', 60_000,
      'b2 tried by c1 and c2 according to the fleet rule');
    const droppedAt = Date.now(); // times count from the request: the drop is in place somewhere within the call
    await topo.path('c1', 'b2', 'drop');
    await waitFor(() => weight(c1, 'b2') === 0, 30_000, 'c1 quarantining b2 by its own rule');
    const localMs = Date.now() - droppedAt;
    await waitForAsync(async () => (await fleetSeries('backend:vipguard_clients_failing:count1m', 'b2')) === '1', 30_000,
      'c1\'s failure to b2 in Prometheus');
    const evidenceAt = Date.now();
    assert.equal(await fleetSeries('backend:vipguard_clients_connecting:count1m', 'b2'), '2', 'both talking clients tried b2');
    // Long enough for the rule's `for`, then a notification: five evaluations and scrapes, and 5 s for the delivery.
    const boundMs = ruleForMs(fleetRuleFile()) + 5 * Math.max(EVAL_S, SCRAPE_S) * 1000 + 5000;
    const seen: string[] = [];
    while (Date.now() - evidenceAt < boundMs) {
      for (const x of [c2, c3]) if (weight(x, 'b2') !== 1) seen.push(`${x.c.name} weight ${weight(x, 'b2')} at ${Date.now() - evidenceAt} ms`);
      await sleep(100);
    }
    const everFired = await fleet!.query(`max_over_time(ALERTS{alertname="${ALERT}"}[${Math.ceil((Date.now() - droppedAt) / 1000) + 5}s])`);
    console.log(`[${KERNEL}] fleet B: c1 quarantined b2 itself ${localMs} ms after its path dropped; evidence in Prometheus ` +
      `${evidenceAt - droppedAt} ms after; watched c2 and c3 for ${boundMs} ms (rule's for + 5 evaluations + 5 s): ` +
      `${seen.length ? seen.join('; ') : 'b2 in service throughout'}; fleet alert ${everFired.length ? 'FIRED' : 'never pending or firing'}`);
    assert.deepEqual(everFired, [], 'the fleet alert was never pending or firing');
    assert.deepEqual(seen, [], 'c2 and c3 kept b2 in service');
    for (const x of [c2, c3]) assert.equal(loggedAt(x.vg.lines, quarantineLine('b2')), undefined, `${x.c.name} never quarantined b2`);

    await topo.path('c1', 'b2', 'pass');
    await waitFor(() => weight(c1, 'b2') === 1, 30_000, 'c1 restoring b2 once its probe answers');
  });

  test('A: a black-holed backend is quarantined by the client that never sent it anything, from the fleet alert', async () => {
    const [c1, c2, c3] = ['c1', 'c2', 'c3'].map(byName);
    const silent = await fleet!.query(`vipguard_connect_attempts_total{instance="${c3.scrape}"}`);
    assert.deepEqual(silent, [], 'c3 has made no connect at all: its receiver reports none');
    assert.equal(weight(c3, 'b3'), 1);
    const blackholedAt = Date.now(); // as in B: from the request (topology.sh under TCG takes a while)
    await topo.set('b3', 'blackhole');
    try {
      await waitFor(() => weight(c3, 'b3') === 0, 90_000, 'c3 quarantining b3 from the fleet alert');
      const silentAt = Date.now();
      const local = [c1, c2].map((x) => loggedAt(x.vg.lines, quarantineLine('b3'), blackholedAt));
      assert.ok(local.every((t) => t !== undefined), `c1 and c2 quarantined b3 themselves first:\n${[c1, c2].map((x) => x.vg.lines.slice(-10).join('\n')).join('\n')}`);
      const firstLocal = Math.min(...(local as number[]));
      const alerts = (await fleet!.query(`ALERTS{alertname="${ALERT}",alertstate="firing"}`)).map((a) => a.metric);
      const activeAt = Date.parse((await getJson(`${fleet!.promBase}/api/v1/alerts`)).data.alerts.find((a: { labels: { alertname: string } }) => a.labels.alertname === ALERT)?.activeAt);
      const line = c3.vg.lines.find((l) => quarantineLine('b3').test(l));
      console.log(`[${KERNEL}] fleet A: b3 black-holed → c1/c2 quarantined it themselves after ${local.map((t) => t! - blackholedAt).join(' / ')} ms; ` +
        `fleet alert active at Prometheus after ${activeAt - blackholedAt} ms; silent c3 at weight 0 ${silentAt - blackholedAt} ms after the black hole, ` +
        `${silentAt - firstLocal} ms after the first failure seen ` +
        `(scrape ${SCRAPE_S} s, evaluation ${EVAL_S} s)\n[${KERNEL}] fleet A: c3: ${line}`);
      assert.match(line ?? '', new RegExp(`alertmanager ${ALERT}`), 'c3\'s quarantine came from the fleet alert over the v2 API');
      assert.equal(alerts.length, 1, `one fleet alert firing: ${JSON.stringify(alerts)}`);
      const { __name__: _n, alertstate: _s, ...labels } = alerts[0];
      assert.deepEqual(labels, { alertname: ALERT, vipguard_service: 'web', network_peer_address: topo.backend('b3').ip, network_peer_port: String(topo.backend('b3').port) },
        'the alert names the backend and the service, and no client');
      for (const x of clients) for (const b of ['b1', 'b2']) assert.equal(weight(x, b), 1, `${x.c.name} keeps ${b}`);
    } finally {
      await topo.set('b3', 'healthy');
    }
  });
});
