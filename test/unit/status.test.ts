// `vipguard status` as the operator reads it: times in the operator's zone with the zone named, and a
// quarantine's level, source and latest reason on its destination's line.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { localTime, renderStatus } from '../../src/cli/status';

const STATUS = {
  time: '2026-12-06T04:30:00.000Z',
  services: [{
    name: 'web', service: 'tcp/10.99.0.1:80', managed: false, present: true, panic: false, quarantined: 1,
    destinations: [
      { destination: '10.200.0.2:8080', owned: true, weight: 1, activeConns: 3, inactiveConns: 10, state: 'healthy' },
      {
        destination: '10.200.0.4:8080', owned: true, weight: 0, activeConns: 0, inactiveConns: 2, state: 'probing',
        until: '2026-12-06T04:31:07.250Z', level: 2, source: 'rule',
        reasons: ['rule handshake-failures: 2 unanswered in 1 s', 'rule handshake-failures: 3 refused in 1 s'],
      },
    ],
  }],
  lastReconcile: { at: '2026-12-06T04:29:59.900Z', ms: 3, changes: 1, failures: [] },
};

test('times carry their zone, in the zone asked for', () => {
  assert.equal(localTime('2026-12-06T04:31:07.250Z', 'UTC'), '2026-12-06 04:31:07 UTC');
  assert.equal(localTime('2026-12-06T04:31:07.250Z', 'Europe/Berlin'), '2026-12-06 05:31:07 +01:00');
  assert.equal(localTime('2026-07-06T23:31:07Z', 'America/New_York'), '2026-07-06 19:31:07 -04:00');
  assert.equal(localTime('2026-12-06T04:31:07Z', 'Asia/Kolkata'), '2026-12-06 10:01:07 +05:30');
  assert.equal(localTime('not a time', 'UTC'), 'not a time', 'an unreadable time is shown as it came');
});

test("a quarantined destination's line tells until when (with zone), its level, where it came from and why", () => {
  const lines = renderStatus(STATUS, 'UTC').split('\n');
  assert.equal(lines[0], 'web  tcp/10.99.0.1:80  watched');
  assert.match(lines[1], /^ {2}10\.200\.0\.2:8080 +weight {3}1 {2}healthy {2}conns 3\/10$/);
  assert.match(lines[2], /^ {2}10\.200\.0\.4:8080 +weight {3}0 {2}probing until 2026-12-06 04:31:07 UTC \(level 2, from rule\) {2}conns 0\/2 {2}why: rule handshake-failures: 3 refused in 1 s$/);
  assert.equal(lines[3], 'last reconcile 2026-12-06 04:29:59 UTC: 1 change(s) in 3 ms');
});
