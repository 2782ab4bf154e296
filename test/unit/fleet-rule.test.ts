// docs/fleet.md's fleet rule, verbatim, under Prometheus's own rule tester (`promtool test rules`, Debian's
// prometheus package, which scripts/provision.sh installs): series as the clients' receivers export them, and what
// the rule must and must not conclude from them. The lab test (test/lab/fleet.test.ts) runs the same rule end to
// end on real hosts; here each guard of the rule is exercised alone, in milliseconds of promtool time.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { docsYamlBlock } from '../helpers';

const PROMTOOL = '/usr/bin/promtool';
const ALERT = 'VipguardBackendDownFleetWide';
const B1 = '10.200.0.2';
const B2 = '10.200.0.3';
const B3 = '10.200.0.4';

/** One client's counter for one backend and outcome, in promtool's expanding notation, one sample a second. */
function series(instance: string, backend: string, outcome: string, values: string): string {
  return `      - series: 'vipguard_connect_attempts_total{instance="${instance}",job="vipguard-receiver",vipguard_service="web",` +
    `server_address="10.99.0.1",server_port="80",network_peer_address="${backend}",network_peer_port="8080",vipguard_outcome="${outcome}"}'\n` +
    `        values: '${values}'\n`;
}

/** A client completing handshakes to `backend` all along (one a second), and failing none. */
const healthy = (instance: string, backend: string) => series(instance, backend, 'established', '0+1x120') + series(instance, backend, 'unanswered', '0x120');
/** A client whose handshakes to `backend` complete until `at` s, then one fails and it sends it nothing more (its own quarantine). */
const failsAt = (instance: string, backend: string, at: number) =>
  series(instance, backend, 'established', `0+1x${at} ${at}x${120 - at}`) + series(instance, backend, 'unanswered', `0x${at} 1x${120 - at}`);

const fired = (backend: string, clients: number) => `
          - exp_labels: { vipguard_service: web, network_peer_address: "${backend}", network_peer_port: "8080" }
            exp_annotations:
              summary: "${backend}:8080 of web: ${clients} client hosts saw failed handshakes to it in the last minute"`;

/** Runs one promtool test group over `input` with `checks` (alert_rule_test and promql_expr_test entries). */
function promtool(name: string, input: string, checks: { at: number; alerts?: string; expr?: { q: string; samples: string } }[]): void {
  assert.ok(fs.existsSync(PROMTOOL), `${PROMTOOL} missing: install Debian's prometheus package (scripts/provision.sh does)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-fleet-rule-'));
  try {
    fs.writeFileSync(path.join(dir, 'vipguard-fleet.yml'), docsYamlBlock('fleet.md', '# /etc/prometheus/rules/vipguard-fleet.yml'));
    const alerts = checks.filter((c) => c.alerts !== undefined)
      .map((c) => `      - eval_time: ${c.at}s\n        alertname: ${ALERT}\n        exp_alerts:${c.alerts ? c.alerts : ' []'}\n`).join('');
    const exprs = checks.filter((c) => c.expr)
      .map((c) => `      - expr: '${c.expr!.q}'\n        eval_time: ${c.at}s\n        exp_samples:${c.expr!.samples}\n`).join('');
    fs.writeFileSync(path.join(dir, 'test.yml'), `rule_files: [vipguard-fleet.yml]
evaluation_interval: 1s
tests:
  - name: ${JSON.stringify(name)}
    interval: 1s
    input_series:
${input}    alert_rule_test:
${alerts || '      []\n'}${exprs ? `    promql_expr_test:\n${exprs}` : ''}`);
    const r = spawnSync(PROMTOOL, ['test', 'rules', 'test.yml'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `promtool test rules (${name}):\n${r.stdout}${r.stderr}\n--- test.yml:\n${fs.readFileSync(path.join(dir, 'test.yml'), 'utf8')}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const value = (record: string, backend: string, v: number) =>
  `\n          - labels: '${record}{vipguard_service="web",network_peer_address="${backend}",network_peer_port="8080"}'\n            value: ${v}`;

test('two clients failing on a backend fire the fleet alert, naming the backend and the service only; it resolves a window after', () => {
  // c3 sends nothing at all: it is in no count, and gets the alert all the same (Prometheus sends it everywhere).
  const input = failsAt('c1', B3, 20) + failsAt('c2', B3, 22) + healthy('c1', B1) + healthy('c2', B1);
  promtool('A', input, [
    { at: 21, alerts: '' }, // one client only so far
    { at: 23, alerts: fired(B3, 2) },
    { at: 23, expr: { q: 'backend:vipguard_clients_failing:count1m', samples: value('backend:vipguard_clients_failing:count1m', B3, 2) } },
    { at: 70, alerts: fired(B3, 2) }, // c1's failure is still in the window
    { at: 90, alerts: '' }, // no failure in the last minute: resolved
  ]);
});

test('a backend failing for one client only does not fire, whatever the window', () => {
  const input = failsAt('c1', B2, 20) + healthy('c2', B2) + healthy('c3', B2) + healthy('c1', B1);
  promtool('B', input, [
    { at: 25, alerts: '' },
    { at: 60, alerts: '' },
    { at: 25, expr: { q: 'backend:vipguard_clients_failing:count1m', samples: value('backend:vipguard_clients_failing:count1m', B2, 1) } },
    { at: 25, expr: { q: 'backend:vipguard_clients_connecting:count1m{network_peer_address="10.200.0.3"}', samples: value('backend:vipguard_clients_connecting:count1m', B2, 3) } },
  ]);
});

test('clients whose own network is broken — no handshake completes to any backend — are no evidence against any', () => {
  const broken = (instance: string) => [B1, B2, B3].map((b) => failsAt(instance, b, 20)).join('');
  const input = broken('c1') + broken('c2') + healthy('c3', B1) + healthy('c3', B2) + healthy('c3', B3);
  promtool('broken clients', input, [{ at: 25, alerts: '' }, { at: 50, alerts: '' }]);
});

test('the fraction guard: 2 failing of 5 that tried the backend do not fire; a third one does', () => {
  let input = failsAt('c1', B3, 20) + failsAt('c2', B3, 20) + failsAt('c3', B3, 40) + healthy('c4', B3) + healthy('c5', B3);
  for (const c of ['c1', 'c2', 'c3', 'c4', 'c5']) input += healthy(c, B1);
  promtool('fraction', input, [{ at: 30, alerts: '' }, { at: 42, alerts: fired(B3, 3) }]);
});
