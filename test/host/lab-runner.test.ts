// The lab runner itself, on the host: exit codes propagate, timeouts are enforced and reported, output survives a
// kill, the CLI exits non-zero when any kernel failed. Most cases use --kernel host (no VM); one boots Debian 6.1
// for real (fetched on first use, then cached) unless VIPGUARD_LAB_SKIP_VM=1.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { parseArgs } from '../../src/lab/cli';
import { prepareKernel, repoRoot } from '../../src/lab/kernels';
import { labOk, runInLab } from '../../src/lab/runner';

const CLI = path.join(repoRoot(), 'dist', 'src', 'lab', 'cli.js');

function cli(args: string[]): { code: number | null; stdout: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout + r.stderr };
}

describe('lab CLI arguments', () => {
  test('kernel lists, all, timeout and the command after --', () => {
    const o = parseArgs(['--kernel', 'all,host', '--timeout', '30', '--env', 'A=b=c', '--', 'ipvsadm', '-Ln']);
    assert.deepEqual(o.kernels, ['5.10', '6.1', '6.12', 'host']);
    assert.equal(o.timeoutMs, 30_000);
    assert.deepEqual(o.env, { A: 'b=c' });
    assert.deepEqual(o.command, ['ipvsadm', '-Ln']);
  });

  test('defaults to all three kernels; a command without -- still parses', () => {
    const o = parseArgs(['uname', '-r']);
    assert.deepEqual(o.kernels, ['5.10', '6.1', '6.12']);
    assert.deepEqual(o.command, ['uname', '-r']);
  });

  test('rejects unknown kernels, bad timeouts and a missing command', () => {
    assert.throws(() => parseArgs(['--kernel', '4.19', '--', 'true']), /unknown kernel '4.19'/);
    assert.throws(() => parseArgs(['--timeout', '0', '--', 'true']), /--timeout/);
    assert.throws(() => parseArgs(['--kernel', 'host']), /no command given/);
  });
});

describe('runInLab on the host', () => {
  test('propagates the exit code and output, and sets VIPGUARD_LAB_KERNEL=host', async () => {
    const r = await runInLab({ kernel: 'host', command: ['sh', '-c', 'echo "k=$VIPGUARD_LAB_KERNEL"; echo err >&2; exit 3'] });
    assert.equal(r.exitCode, 3);
    assert.equal(r.timedOut, false);
    assert.equal(labOk(r), false);
    assert.match(r.output, /^k=host$/m);
    assert.match(r.output, /^err$/m);
  });

  test('a timeout kills the command, keeps its partial output and is reported', async () => {
    const t0 = Date.now();
    const r = await runInLab({ kernel: 'host', command: ['sh', '-c', 'echo partial; sleep 30'], timeoutMs: 500 });
    assert.equal(r.timedOut, true);
    assert.equal(r.exitCode, null);
    assert.match(r.output, /^partial$/m);
    assert.ok(Date.now() - t0 < 10_000, 'the command was not killed at the timeout');
  });

  test('what the command writes to $VIPGUARD_LAB_OUT is copied to artifactsDir', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipguard-lab-test-'));
    try {
      const r = await runInLab({ kernel: 'host', command: ['sh', '-c', 'echo 42 > "$VIPGUARD_LAB_OUT/answer"'], artifactsDir: dir });
      assert.equal(r.exitCode, 0);
      assert.equal(fs.readFileSync(path.join(dir, 'answer'), 'utf8'), '42\n');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a command that cannot start is a lab failure, not a pass', async () => {
    const r = await runInLab({ kernel: 'host', command: ['/nonexistent/vipguard-no-such-command'] });
    assert.equal(labOk(r), false);
  });
});

describe('lab CLI exit status', () => {
  test('a failing inner command makes the lab exit non-zero', () => {
    const r = cli(['--kernel', 'host', '--', 'sh', '-c', 'echo inner; exit 4']);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /^\[host\] inner$/m);
    assert.match(r.stdout, /FAILED \(exit 4\)/);
  });

  test('a timeout makes the lab exit non-zero and says so', () => {
    const r = cli(['--kernel', 'host', '--timeout', '1', '--', 'sleep', '30']);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /TIMEOUT after 1\.0 s/);
  });

  test('a passing command exits 0', () => {
    const r = cli(['--kernel', 'host', '--', 'true']);
    assert.equal(r.code, 0, r.stdout);
    assert.match(r.stdout, /lab: ok on host/);
  });
});

const SKIP_VM = process.env.VIPGUARD_LAB_SKIP_VM === '1' ? 'VIPGUARD_LAB_SKIP_VM=1' : false;

describe('runInLab in a real VM (Debian 6.1)', { skip: SKIP_VM }, () => {
  test('runs as root on the guest kernel, propagates the exit code, times the boot', { timeout: 600_000 }, async () => {
    const r = await runInLab({
      kernel: '6.1',
      command: ['sh', '-c', 'echo "k=$VIPGUARD_LAB_KERNEL u=$(id -u) r=$(uname -r) pwd=$PWD"; exit 5'],
      timeoutMs: 300_000,
    });
    assert.equal(r.error, undefined);
    assert.equal(r.exitCode, 5);
    assert.match(r.output, new RegExp(`^k=6\\.1 u=0 r=${r.release.replace(/[.+]/g, '\\$&')} pwd=${repoRoot()}$`, 'm'));
    assert.match(r.release, /^6\.1\./);
    assert.ok(r.bootMs !== null && r.bootMs > 0 && r.bootMs < r.wallMs);
    assert.ok(r.modulesLoaded.includes('ip_vs'), `ip_vs did not load: failed ${r.modulesFailed.join(' ')}`);
  });

  test('a VM past its timeout is killed and reported, with the output it had', { timeout: 600_000 }, async () => {
    // Fetch and build first (a no-op when cached) so the timeout below measures the VM alone.
    await prepareKernel('6.1');
    const t0 = Date.now();
    const r = await runInLab({ kernel: '6.1', command: ['sh', '-c', 'echo started; sleep 600'], modules: [], timeoutMs: 25_000 });
    assert.equal(r.timedOut, true);
    assert.equal(r.exitCode, null);
    assert.ok(Date.now() - t0 < 35_000, 'the VM outlived its timeout');
    // Boot normally takes < 10 s, so the command has started and its first line is kept.
    if (r.bootMs !== null) assert.match(r.output, /^started$/m);
  });
});
