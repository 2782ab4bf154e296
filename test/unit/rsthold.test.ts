// The hold-back controller's pure parts: what it takes from the actuator's status, and how it checks what it is fed.
// (Its BPF side: test/host/rsthold.test.ts on this kernel, test/lab/rsthold.test.ts on real IPVS.)
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { RefusalHold, afterActuatorEvents, inServiceOf } from '../../src/actuator/rsthold';
import { parseService } from '../../src/actuator/ipvs/identity';
import { parseConfig } from '../../src/config/config';
import { lineLogger } from '../../src/common/log';

test('in service: destinations at weight > 0 per service, none for a service in panic', () => {
  const status = {
    services: [
      { name: 'web', service: 'tcp/10.99.0.1:80', panic: false, destinations: [{ weight: 1 }, { weight: 0 }, { weight: 5 }] },
      { name: 'api', service: 'tcp/[fd00:99::1]:443', panic: true, destinations: [{ weight: 1 }, { weight: 1 }, { weight: 1 }] },
      { name: 'gone', service: 'tcp/10.99.0.2:80', panic: false, destinations: [] },
    ],
  };
  assert.deepEqual(inServiceOf(status).map((e) => [e.service, e.inService]), [
    [parseService('tcp/10.99.0.1:80'), 2], [parseService('tcp/[fd00:99::1]:443'), 0], [parseService('tcp/10.99.0.2:80'), 0],
  ]);
  assert.deepEqual(inServiceOf({}), []);
});

test('actuator events pass through, and the hook runs after each reconcile and signal', () => {
  const seen: string[] = [];
  const events = afterActuatorEvents({
    change: () => seen.push('change'), signal: () => seen.push('signal'), reconciled: () => seen.push('reconciled'),
  }, () => seen.push('after'));
  events.change!({} as never, undefined, {});
  events.signal!({} as never, { accepted: true, action: 'unchanged' });
  events.reconciled!(1, 0, 0);
  assert.deepEqual(seen, ['change', 'signal', 'after', 'reconciled', 'after']);
});

test('setInService: only configured TCP address services; a bad count is refused naming the service', () => {
  const hold = new RefusalHold({}, lineLogger(() => {}));
  const web = parseService('tcp/10.99.0.1:80');
  hold.setServices([web, parseService('udp/10.99.0.1:53'), parseService('fwmark/7')]);
  hold.setInService([{ service: web, inService: 3 }, { service: parseService('tcp/10.99.0.9:80'), inService: 5 }]);
  assert.deepEqual(hold.status().services, [{ service: 'tcp/10.99.0.1:80', inService: 3, holding: false }], 'not holding while not loaded');
  assert.throws(() => hold.setInService([{ service: web, inService: -1 }]), /tcp\/10\.99\.0\.1:80 must be an integer >= 0, got -1/);
  assert.throws(() => hold.setInService([{ service: web, inService: 1.5 }]), /got 1\.5/);
  assert.equal(hold.status().active, false);
});

test('config: holdRefusals is on by default, and can be turned off', () => {
  const base = 'services: [{ name: web, address: 10.99.0.1, port: 80 }]\n';
  assert.deepEqual(parseConfig(base).actuator.holdRefusals, { enabled: true, cgroup: undefined });
  assert.deepEqual(parseConfig(`${base}actuator: { holdRefusals: { enabled: false, cgroup: /sys/fs/cgroup/app } }\n`).actuator.holdRefusals,
    { enabled: false, cgroup: '/sys/fs/cgroup/app' });
  assert.throws(() => parseConfig(`${base}actuator: { holdRefusals: { enable: true } }\n`), /actuator\.holdRefusals\.enable: unknown setting/);
});
