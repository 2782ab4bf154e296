// Deadlines from learned RTTs: patient with what is not known yet, quick with what is.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { DEFAULT_DEADLINE, RttTracker } from '../../src/common/rtt';

test('deadline: ceiling until a backend is learnt, then multiplier x p99 within [floor, ceiling]', () => {
  const t = new RttTracker({ ...DEFAULT_DEADLINE, minSamples: 4 });
  assert.equal(t.deadlineMs('web', 'a:80'), 700, 'nothing known: the ceiling');
  for (let i = 0; i < 4; i++) t.observe('web', 'a:80', 1 + i * 0.1);
  assert.equal(t.deadlineMs('web', 'a:80'), 200, 'a fast backend: the floor');
  for (let i = 0; i < 4; i++) t.observe('web', 'far:80', 90);
  assert.equal(t.deadlineMs('web', 'far:80'), 360, '4 x 90 ms');
  assert.equal(t.deadlineMs('web', 'new:80'), 700, 'a backend not learnt yet is not judged by its siblings');
  assert.equal(t.serviceDeadlineMs('web'), 360, 'the slowest learnt backend decides for the service');
  t.observe('web', 'new:80', 5);
  assert.equal(t.serviceDeadlineMs('web'), 700, 'while a backend that answered is being learnt: the ceiling');
  for (let i = 0; i < 4; i++) t.observe('web', 'slow:80', 400);
  for (let i = 0; i < 3; i++) t.observe('web', 'new:80', 5);
  assert.equal(t.deadlineMs('web', 'slow:80'), 700, 'capped at the ceiling');
});

test('the percentile follows the recent window', () => {
  const t = new RttTracker({ ...DEFAULT_DEADLINE, samples: 8, minSamples: 4 });
  for (let i = 0; i < 8; i++) t.observe('s', 'b', 100);
  assert.equal(t.rttMs('s', 'b'), 100);
  for (let i = 0; i < 8; i++) t.observe('s', 'b', 10);
  assert.equal(t.rttMs('s', 'b'), 10, 'old samples rolled out');
});
