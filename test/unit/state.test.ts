// The state file: written ahead and mirrored, read back across a process boundary (monotonic origins differ), a
// wall-clock step, damage, a version 1 file and hostile values — never losing a weight to give back.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadState, saveState } from '../../src/actuator/state';
import { QuarantineBook, quarantined } from '../../src/actuator/policy';
import { FakeClock } from './fakes';
import type { QuarantinePolicy } from '../../src/config/config';

const P: QuarantinePolicy = {
  baseMs: 1_000, multiplier: 2, maxMs: 60_000, decayAfterMs: 300_000, maxQuarantined: { percent: 50 },
  probeBeforeRestore: true, probeTimeoutMs: 1000, probeIntervalMs: 500, probeSuccesses: 1,
};

function withDir(fn: (file: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipguard-state-'));
  try { fn(path.join(dir, 'state.json')); } finally { fs.rmSync(dir, { recursive: true, force: true }); }
}

function booked(clock: FakeClock): QuarantineBook {
  const b = new QuarantineBook();
  b.fire({ service: 'web', serviceKey: 'tcp/10.99.0.1:80', destination: '10.200.0.4:80', source: 'rule', alert: 'r', reason: 'x' },
    { policy: P, currentWeight: 3, now: clock.mono(), admit: () => undefined });
  return b;
}

test('a record crosses to a process with another monotonic origin: same remaining hold', () => withDir((file) => {
  const a = new FakeClock();
  saveState(file, booked(a).all(), a);
  const b = new FakeClock();
  b.t = 42; // the next process's monotonic clock starts elsewhere; the wall clock is the same
  b.wallOffset = a.wall() - b.t + 300; // 300 ms later
  const [r] = loadState(file, b, P.maxMs).records;
  assert.equal(r.active, true);
  assert.equal(r.holdUntil - b.mono(), 700, '1 s hold, 300 ms of it gone');
  assert.equal(r.restoreWeight, 3);
  assert.equal(r.serviceKey, 'tcp/10.99.0.1:80');
}));

test('a wall clock stepped far ahead while down cannot stretch a hold beyond max, nor behind into the future', () => withDir((file) => {
  const a = new FakeClock();
  saveState(file, booked(a).all(), a);
  const back = new FakeClock();
  back.wallOffset = a.wallOffset - 86_400_000; // the new process's wall clock is a day behind
  const [r] = loadState(file, back, P.maxMs).records;
  assert.ok(r.holdUntil - back.mono() <= P.maxMs, `hold clamped to max, got ${r.holdUntil - back.mono()} ms`);
  assert.ok(r.since <= back.mono(), 'a start in the future is clamped to now');
}));

test('a damaged file falls back to its mirror; the damaged one is kept aside', () => withDir((file) => {
  const c = new FakeClock();
  saveState(file, booked(c).all(), c);
  fs.writeFileSync(file, '{"version":2,"records":[{"serv');
  const r = loadState(file, c, P.maxMs);
  assert.equal(r.records.length, 1);
  assert.equal(quarantined(r.records[0]), true);
  assert.match(r.problem ?? '', /not a vipguard state file.*moved to .*corrupt-.*using its mirror/);
  assert.ok(fs.readdirSync(path.dirname(file)).some((f) => f.includes('.corrupt-')));
}));

test('missing file: nothing to resume, no problem', () => withDir((file) => {
  assert.deepEqual(loadState(file, new FakeClock(), P.maxMs), { records: [], problem: undefined });
}));

test('hostile values are clamped or defaulted; a record is only dropped without its identity or weight', () => withDir((file) => {
  const c = new FakeClock();
  fs.writeFileSync(file, JSON.stringify({ version: 2, records: [
    { service: 'web', serviceKey: 'tcp/10.99.0.1:80', destination: '10.200.0.4:80', active: true, level: 1e12, since: 'x', holdUntil: 8.64e15, lastEnded: {}, restoreWeight: 5, reasons: 'no' },
    { service: 'web', destination: '10.200.0.2:80', restoreWeight: 'seven', active: true },
    { service: 'x'.repeat(1000), destination: '10.200.0.3:80', restoreWeight: 1 },
    null, 7,
  ] }));
  const r = loadState(file, c, P.maxMs);
  assert.equal(r.records.length, 1);
  const [x] = r.records;
  assert.equal(x.level, 64);
  assert.equal(x.since, c.mono(), 'an unreadable start is now');
  assert.ok(x.holdUntil <= c.mono() + P.maxMs);
  assert.equal(x.lastEnded, undefined);
  assert.deepEqual(x.reasons, []);
  assert.equal(x.restoreWeight, 5);
  assert.match(r.problem ?? '', /ignored 4 malformed records/);
}));

test('version 1 files (wall times, until, no service key) are still read', () => withDir((file) => {
  const c = new FakeClock();
  fs.writeFileSync(file, JSON.stringify({ version: 1, savedAt: '', records: [
    { service: 'web', destination: '10.200.0.4:80', level: 1, since: c.wall() - 1000, until: c.wall() + 4000, lastEnded: 0, restoreWeight: 2, reasons: ['old'] },
    { service: 'web', destination: '10.200.0.3:80', level: 0, since: 0, until: 0, lastEnded: c.wall() - 5000, restoreWeight: 1, pendingRestore: true, reasons: [] },
  ] }));
  const r = loadState(file, c, P.maxMs).records;
  assert.equal(r[0].active, true);
  assert.equal(r[0].holdUntil - c.mono(), 4000);
  assert.equal(r[0].serviceKey, '', 'filled in from the configuration by the actuator');
  assert.equal(r[1].active, false);
  assert.equal(r[1].pendingRestore, true);
  assert.equal(c.mono() - r[1].lastEnded!, 5000);
}));
