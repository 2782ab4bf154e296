// The quarantine policy on an explicit monotonic clock: holds, probing, backoff for flapping, decay, rate limit,
// idempotence, who may end a quarantine. The cap is the desired table's (test/unit/actuator-model.test.ts).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { QuarantineBook, RateLimiter, capFor, holdMs, quarantined, Signal } from '../../src/actuator/policy';
import type { QuarantinePolicy } from '../../src/config/config';

const P: QuarantinePolicy = {
  baseMs: 1_000, multiplier: 2, maxMs: 6_000, decayAfterMs: 100_000, maxQuarantined: { percent: 50 },
  probeBeforeRestore: true, probeTimeoutMs: 1000, probeIntervalMs: 500, probeSuccesses: 1,
};
const sig = (destination: string, o: Partial<Signal> = {}): Signal =>
  ({ service: 'web', serviceKey: 'tcp/10.99.0.1:80', destination, source: 'alertmanager', alert: 'Down', reason: 'test', ...o });
const ctx = (now: number, o: Partial<{ currentWeight: number; admit: () => string | undefined }> = {}) =>
  ({ policy: P, currentWeight: 1, now, admit: () => undefined, ...o });

test('holds double per level up to max', () => {
  assert.deepEqual([0, 1, 2, 3, 4].map((l) => holdMs(P, l)), [1_000, 2_000, 4_000, 6_000, 6_000]);
});

test('cap: a count or a percentage of those in service, never all of them', () => {
  assert.equal(capFor(P, 4), 2);
  assert.equal(capFor(P, 3), 1);
  assert.equal(capFor(P, 1), 0, 'a lone destination is never quarantined');
  assert.equal(capFor(P, 0), 0);
  assert.equal(capFor({ ...P, maxQuarantined: { count: 5 } }, 3), 2, 'never all');
  assert.equal(capFor({ ...P, maxQuarantined: { percent: 100 } }, 3), 2);
});

test('a repeat firing while quarantined extends the hold without climbing a level', () => {
  const b = new QuarantineBook();
  assert.equal(b.fire(sig('a:80'), ctx(0)).kind, 'quarantined');
  assert.equal(b.get('web', 'a:80')!.holdUntil, 1_000);
  assert.equal(b.fire(sig('a:80'), ctx(500)).kind, 'extended');
  assert.equal(b.get('web', 'a:80')!.holdUntil, 1_500);
  assert.equal(b.get('web', 'a:80')!.level, 0);
  assert.equal(b.fire(sig('a:80'), ctx(500)).kind, 'unchanged', 'the same alert twice changes nothing');
});

test('after the hold: probing; a failed probe only waits for the next, an answer releases', () => {
  const b = new QuarantineBook();
  b.fire(sig('a:80'), ctx(0));
  assert.deepEqual(b.probing(999), []);
  assert.deepEqual(b.probing(1_000).map((r) => r.destination), ['a:80']);
  assert.equal(b.probed('web', 'a:80', false, 1, 1_000), false);
  assert.equal(b.get('web', 'a:80')!.level, 0, 'still down while out of service: no level climbed');
  assert.equal(b.probed('web', 'a:80', true, 1, 1_500), true);
  assert.equal(quarantined(b.get('web', 'a:80')), false);
  assert.equal(b.get('web', 'a:80')!.pendingRestore, true);
  assert.equal(b.get('web', 'a:80')!.lastEnded, 1_500);
});

test('probeSuccesses answers in a row: a failure in between starts the count again', () => {
  const b = new QuarantineBook();
  b.fire(sig('a:80'), ctx(0));
  assert.equal(b.probed('web', 'a:80', true, 2, 1_000), false);
  assert.equal(b.probed('web', 'a:80', false, 2, 1_500), false);
  assert.equal(b.probed('web', 'a:80', true, 2, 2_000), false);
  assert.equal(b.probed('web', 'a:80', true, 2, 2_500), true);
});

test('no probe result counts during the hold', () => {
  const b = new QuarantineBook();
  b.fire(sig('a:80'), ctx(0));
  assert.equal(b.probed('web', 'a:80', true, 1, 999), false);
  assert.equal(quarantined(b.get('web', 'a:80')), true);
});

test('flapping: failing again soon after a release starts one level up; health decays the level', () => {
  const b = new QuarantineBook();
  b.fire(sig('a:80'), ctx(0));
  b.release('web', 'a:80', 1_000);
  assert.equal(b.fire(sig('a:80'), ctx(3_000)).kind, 'quarantined');
  assert.equal(b.get('web', 'a:80')!.level, 1);
  assert.equal(b.get('web', 'a:80')!.holdUntil, 5_000);
  b.release('web', 'a:80', 5_000);
  b.fire(sig('a:80'), ctx(7_000));
  assert.equal(b.get('web', 'a:80')!.level, 2);
  b.release('web', 'a:80', 11_000);
  // two full healthy decay periods: 2 + 1 - 2 = 1
  b.fire(sig('a:80'), ctx(11_000 + 200_000));
  assert.equal(b.get('web', 'a:80')!.level, 1);
});

test('a refusal by the cap check changes nothing', () => {
  const b = new QuarantineBook();
  const r = b.fire(sig('c:80'), ctx(1, { admit: () => 'panic: over the cap' }));
  assert.equal(r.kind === 'refused' && r.reason, 'cap');
  assert.equal(b.get('web', 'c:80'), undefined);
});

test('already drained destinations are left alone', () => {
  const b = new QuarantineBook();
  assert.equal(b.fire(sig('a:80'), ctx(0, { currentWeight: 0 })).kind, 'unchanged');
  assert.equal(b.isQuarantined('web', 'a:80'), false);
});

test('a resolved alert ends the hold only for the source and alert that started it; probing still decides', () => {
  const b = new QuarantineBook();
  b.fire(sig('a:80', { source: 'rule', alert: 'handshake-failures' }), ctx(0));
  assert.equal(b.resolve('web', 'a:80', { source: 'alertmanager', alert: 'handshake-failures' }, 100), undefined, 'another source');
  assert.equal(b.resolve('web', 'a:80', { source: 'rule', alert: 'other' }, 100), undefined, 'another alert');
  assert.equal(b.get('web', 'a:80')!.holdUntil, 1_000);
  assert.equal(b.resolve('web', 'a:80', { source: 'rule', alert: 'handshake-failures' }, 100)!.holdUntil, 100);
  assert.equal(quarantined(b.get('web', 'a:80')), true, 'still out until a probe answers');
  assert.deepEqual(b.probing(100).map((r) => r.destination), ['a:80']);
});

test('a late answer lifts only what the rules started, and takes back the level it cost', () => {
  const b = new QuarantineBook();
  b.fire(sig('a:80'), ctx(0));
  assert.equal(b.falseAlarm('web', 'a:80', 'late'), undefined, 'an Alertmanager quarantine is not the rules\' to lift');
  b.fire(sig('b:80', { source: 'rule' }), ctx(0));
  b.release('web', 'b:80', 1_000);
  b.fire(sig('b:80', { source: 'rule' }), ctx(2_000));
  assert.equal(b.get('web', 'b:80')!.level, 1);
  b.falseAlarm('web', 'b:80', 'late');
  assert.equal(b.get('web', 'b:80')!.level, 0);
  assert.equal(b.get('web', 'b:80')!.lastEnded, 1_000);
});

test('the owner\'s edits while held become the weight to give back', () => {
  const b = new QuarantineBook();
  b.fire(sig('a:80'), ctx(0, { currentWeight: 3 }));
  b.ownerWeight('web', 'a:80', 7);
  assert.equal(b.get('web', 'a:80')!.restoreWeight, 7);
});

test('rate limit: burst, then refill; a clock that goes back refills nothing', () => {
  const rl = new RateLimiter(2, 3, 0);
  assert.deepEqual([rl.take(0), rl.take(0), rl.take(0), rl.take(0)], [true, true, true, false]);
  assert.equal(rl.take(499), false);
  assert.equal(rl.take(500), true);
  const back = new RateLimiter(1, 1, 10_000);
  assert.equal(back.take(10_000), true);
  assert.equal(back.take(-3_600_000), false, 'no negative refill');
  assert.equal(back.take(11_000), true, 'and the next second refills as usual');
  const b = new QuarantineBook([], new RateLimiter(1, 1, 0));
  assert.equal(b.fire(sig('a:80'), ctx(0)).kind, 'quarantined');
  const r = b.fire(sig('b:80'), ctx(10));
  assert.equal(r.kind === 'refused' && r.reason, 'rate');
});

test('prune forgets records whose level has decayed to nothing, never a held or pending one', () => {
  const b = new QuarantineBook();
  b.fire(sig('a:80'), ctx(0));
  b.release('web', 'a:80', 1_000);
  b.restored('web', 'a:80');
  b.fire(sig('b:80'), ctx(0));
  b.prune(() => P, 1_000 + 100_001);
  assert.equal(b.get('web', 'a:80'), undefined);
  assert.ok(b.get('web', 'b:80'));
  b.prune(() => undefined, 1_000 + 100_001);
  assert.ok(b.get('web', 'b:80'), 'held: kept even when its service is gone (it must be given back)');
});
