// The lab's judge of a black hole's connects: by the kernel's SYN schedule, not by the emulator's speed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rescueVerdict, synRetransmits } from '../../src/lab/rescue';

test('SYN retransmits: 1 s, then doubling, only before the client gives up', () => {
  assert.deepEqual(synRetransmits(0, 5000), [1000, 3000]);
  assert.deepEqual(synRetransmits(100, 20_000), [1100, 3100, 7100, 15100]);
  assert.deepEqual(synRetransmits(0, 1000), []);
});

test('a connect with a retransmit due after the weight 0 must complete at it; one without is late, not broken', () => {
  const q = 10_000; // the quarantine, on the connects' clock
  const v = rescueVerdict([
    { at: 9_500, ms: 1_010, outcome: 'ok' }, // first retransmit at 10 500 (>= q + 400): rescued there
    { at: 9_000, ms: 3_020, outcome: 'ok' }, // retransmit at 10 000 too close to q; rescued at 12 000
    { at: 9_500, ms: 3_000, outcome: 'ok' }, // slept through its 10 500 chance: the rescue did not work
    { at: 9_700, ms: 5_000, outcome: 'timeout' }, // chance at 10 700 missed: broken
    { at: 4_000, ms: 5_000, outcome: 'timeout' }, // retransmits at 5 000 and 7 000, both before q: late
    { at: 10_050, ms: 1_000, outcome: 'ok' }, // right after the decision, may still have met the old weight
    { at: 11_000, ms: 3, outcome: 'ok' },
    { at: 11_000, ms: 1_003, outcome: 'ok' }, // after the weight 0 it had no business waiting for a retransmit
    { at: 12_000, ms: 0, outcome: 'refused' },
  ], q, 5000);
  assert.deepEqual(v.broken.map((r) => r.at), [9_500, 9_700, 11_000, 12_000]);
  assert.deepEqual(v.late.map((r) => r.at), [4_000]);
});
