// npm test's summary reads the TAP of Node's own test runner: counts, and the failed tests with their errors
// (CI logs are read from the end, so a failure must be named there). Checked against real runner output.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { labJobs, pool, tapFailures, tapSummary, testNodes } from '../../src/cli/test-runner';

test('failed tests and their first error line are read from a real TAP stream; failing suites are not repeated', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipguard-tap-'));
  try {
    const file = path.join(dir, 'sample.test.js');
    fs.writeFileSync(file, `
const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
describe('failover', () => {
  test('fast enough', () => {});
  test('every connect in time', () => { assert.ok(false, 'worst 512 ms'); });
});
test('two lines', () => { throw new Error('first line\\nsecond line'); });
test('skipped', { skip: 'no IPVS' }, () => {});
`);
    // Run as a top-level runner, not as a child of this one (which would report to us instead).
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', file], { encoding: 'utf8', env });
    assert.equal(r.status, 1, r.stderr);
    assert.deepEqual(tapSummary(r.stdout), { pass: 1, fail: 2, skipped: 1 });
    assert.deepEqual(tapFailures(r.stdout), ['every connect in time: worst 512 ms', 'two lines: first line']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a passing stream has no failures', () => {
  assert.deepEqual(tapFailures('TAP version 13\nok 1 - a\n  ---\n  duration_ms: 1\n  ...\n1..1\n# pass 1\n# fail 0\n'), []);
});

test('unit and host run on the running node plus one installed binary per other major, in major order', () => {
  const installed = new Set(['/c/node/22.23.5/bin/node']);
  const exists = (p: string) => installed.has(p);
  assert.deepEqual(testNodes({ version: '20.20.2', path: '/usr/bin/node' }, ['22.23.5', '24.22.3'], '/c', exists), [
    { version: '20.20.2', path: '/usr/bin/node' },
    { version: '22.23.5', path: '/c/node/22.23.5/bin/node' },
    // not installed: reported, never silently left out
    { version: '24.22.3', path: undefined },
  ]);
  // npm test run by a node 24: that node stands for its major, the cached 24 is not run twice.
  assert.deepEqual(testNodes({ version: '24.1.0', path: '/opt/node24' }, ['22.23.5', '24.22.3'], '/c', exists), [
    { version: '22.23.5', path: '/c/node/22.23.5/bin/node' },
    { version: '24.1.0', path: '/opt/node24' },
  ]);
});

test('lab kernels side by side: never more than the jobs asked for at once, results in the kernels\' order', async () => {
  let running = 0;
  let peak = 0;
  const delays: Record<string, number> = { '5.10': 30, '6.1': 5, '6.12': 10 };
  const run = async (k: string) => {
    peak = Math.max(peak, ++running);
    await new Promise((r) => setTimeout(r, delays[k]));
    running--;
    return `ran ${k}`;
  };
  assert.deepEqual(await pool(['5.10', '6.1', '6.12'], 2, run), ['ran 5.10', 'ran 6.1', 'ran 6.12']);
  assert.equal(peak, 2);
  peak = 0;
  assert.deepEqual(await pool(['5.10', '6.1', '6.12'], 1, run), ['ran 5.10', 'ran 6.1', 'ran 6.12']);
  assert.equal(peak, 1);
  assert.deepEqual(await pool([], 2, run), []);
});

test('the lab runs one VM per kernel, and the systemd unit test in a VM of its own booted with systemd on 6.1', () => {
  assert.deepEqual(labJobs(['5.10', '6.1', '6.12']), [{ kernel: '5.10' }, { kernel: '6.1' }, { kernel: '6.12' }, { kernel: '6.1', init: 'systemd' }]);
  assert.deepEqual(labJobs(['6.12']), [{ kernel: '6.12' }], 'no 6.1 asked for: no systemd VM either');
});
