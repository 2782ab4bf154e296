// The quarantine policy on an explicit clock: durations, backoff, decay, cap/panic, rate limit, idempotence.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { QuarantineBook, RateLimiter, capFor, durationMs } from '../../src/actuator/policy';
import type { QuarantinePolicy } from '../../src/config/config';

const P: QuarantinePolicy = {
  baseMs: 10_000, multiplier: 2, maxMs: 60_000, decayAfterMs: 100_000, maxQuarantined: { percent: 50 },
  probeBeforeRestore: true, probeTimeoutMs: 1000,
};
const ctx = (now: number, o: Partial<{ owned: number; currentWeight: number }> = {}) =>
  ({ policy: P, owned: 4, currentWeight: 1, now, reason: 'test', ...o });

test('durations double per level up to the cap', () => {
  assert.deepEqual([0, 1, 2, 3, 4].map((l) => durationMs(P, l)), [10_000, 20_000, 40_000, 60_000, 60_000]);
});

test('cap: a count or a percentage, never every destination', () => {
  assert.equal(capFor(P, 4), 2);
  assert.equal(capFor(P, 3), 1);
  assert.equal(capFor(P, 1), 0, 'a lone destination is never quarantined');
  assert.equal(capFor({ ...P, maxQuarantined: { count: 5 } }, 3), 2, 'never all');
  assert.equal(capFor({ ...P, maxQuarantined: { percent: 100 } }, 3), 2);
});

test('a repeat firing while quarantined extends without climbing a level', () => {
  const b = new QuarantineBook();
  const r1 = b.fire('web', 'a:80', ctx(0));
  assert.equal(r1.kind, 'quarantined');
  assert.equal(b.get('web', 'a:80')!.until, 10_000);
  const r2 = b.fire('web', 'a:80', ctx(5_000));
  assert.equal(r2.kind, 'extended');
  assert.equal(b.get('web', 'a:80')!.until, 15_000);
  assert.equal(b.get('web', 'a:80')!.level, 0);
  assert.equal(b.fire('web', 'a:80', ctx(5_000)).kind, 'unchanged', 'the same alert twice changes nothing');
});

test('backoff climbs for repeat offenders and decays after healthy periods', () => {
  const b = new QuarantineBook();
  b.fire('web', 'a:80', ctx(0));
  b.release('web', 'a:80', 10_000);
  assert.equal(b.fire('web', 'a:80', ctx(11_000)).kind, 'quarantined');
  assert.equal(b.get('web', 'a:80')!.level, 1);
  assert.equal(b.get('web', 'a:80')!.until, 31_000);
  b.release('web', 'a:80', 31_000);
  b.fire('web', 'a:80', ctx(32_000));
  assert.equal(b.get('web', 'a:80')!.level, 2);
  b.release('web', 'a:80', 72_000);
  // two full healthy decay periods: 2 + 1 - 2 = 1
  b.fire('web', 'a:80', ctx(72_000 + 200_000));
  assert.equal(b.get('web', 'a:80')!.level, 1);
});

test('the cap holds; beyond it the service is in panic and signals are refused', () => {
  const b = new QuarantineBook();
  assert.equal(b.fire('web', 'a:80', ctx(0)).kind, 'quarantined');
  assert.equal(b.fire('web', 'b:80', ctx(0)).kind, 'quarantined');
  const r = b.fire('web', 'c:80', ctx(1));
  assert.equal(r.kind, 'refused');
  assert.equal(r.kind === 'refused' && r.reason, 'cap');
  assert.match(r.kind === 'refused' ? r.why : '', /panic: 2 of 4 destinations/);
  assert.equal(b.inPanic('web', 1), true);
  assert.equal(b.quarantinedIn('web', 1).length, 2);
  assert.equal(b.fire('other', 'c:80', ctx(1)).kind, 'quarantined', 'caps are per service');
});

test('already drained destinations are left alone', () => {
  const b = new QuarantineBook();
  assert.equal(b.fire('web', 'a:80', ctx(0, { currentWeight: 0 })).kind, 'unchanged');
  assert.equal(b.isQuarantined('web', 'a:80', 0), false);
});

test('resolve ends a quarantine, but not before it lasted base', () => {
  const b = new QuarantineBook();
  b.fire('web', 'a:80', ctx(0));
  b.fire('web', 'a:80', ctx(5_000)); // extended to 15 s
  assert.equal(b.resolve('web', 'a:80', P, 2_000)!.until, 10_000, 'held until base');
  b.fire('web', 'b:80', ctx(0));
  b.fire('web', 'b:80', ctx(8_000)); // extended to 18 s
  assert.equal(b.resolve('web', 'b:80', P, 12_000)!.until, 12_000, 'ends now once base has passed');
  assert.deepEqual(b.due(12_000).map((r) => r.destination).sort(), ['a:80', 'b:80']);
});

test('a failed restore probe quarantines again one level up', () => {
  const b = new QuarantineBook();
  b.fire('web', 'a:80', ctx(0));
  const r = b.extendAfterFailedProbe('web', 'a:80', P, 10_000, 'probe failed')!;
  assert.equal(r.level, 1);
  assert.equal(r.until, 30_000);
  assert.deepEqual(r.reasons, ['test', 'probe failed']);
});

test('rate limit: burst, then refill', () => {
  const rl = new RateLimiter(2, 3, 0);
  assert.deepEqual([rl.take(0), rl.take(0), rl.take(0), rl.take(0)], [true, true, true, false]);
  assert.equal(rl.take(499), false);
  assert.equal(rl.take(500), true);
  const b = new QuarantineBook([], new RateLimiter(1, 1, 0));
  assert.equal(b.fire('web', 'a:80', ctx(0)).kind, 'quarantined');
  const r = b.fire('web', 'b:80', ctx(10));
  assert.equal(r.kind === 'refused' && r.reason, 'rate');
});

test('records survive a round trip through plain data (the state file)', () => {
  const b = new QuarantineBook();
  b.fire('web', 'a:80', ctx(0));
  const copy = new QuarantineBook(JSON.parse(JSON.stringify(b.all())));
  assert.equal(copy.isQuarantined('web', 'a:80', 9_999), true);
  assert.equal(copy.isQuarantined('web', 'a:80', 10_000), false);
});
