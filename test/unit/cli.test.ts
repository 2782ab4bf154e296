// The command line as an operator meets it: --version, the default configuration path, exit codes a service
// manager can act on (78 configuration, 77 privileges: deploy/vipguard.service does not restart on them), and
// trace's plain refusal when it has nothing to trace. Runs the built CLI as a process.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_CONFIG, REPO_ROOT } from '../../src/common/paths';
import { EXIT } from '../../src/cli/main';

const MAIN = path.join(__dirname, '..', '..', 'src', 'cli', 'main.js');

function cli(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('--version prints package.json\'s version', () => {
  const { version } = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  const r = cli('--version');
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out.trim(), version);
});

test('an invalid configuration exits 78 (EX_CONFIG) naming the problem; the unit does not restart on 77 or 78', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipguard-cli-'));
  try {
    const file = path.join(dir, 'vipguard.yaml');
    fs.writeFileSync(file, 'services:\n  - name: web\n    address: 10.99.0.1\n    port: 99999\n');
    const r = cli('run', '--config', file);
    assert.equal(r.code, EXIT.config, r.err);
    assert.match(r.err, /vipguard\.yaml: 1 problem:\n.*vipguard\.yaml:4:\d+: services\[0\]\.port: must be <= 65535, got 99999/);
    const check = cli('check-config', file);
    assert.equal(check.code, 1, 'check-config: 1 for a file with problems (it is a report, not a service)');
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
  const unit = fs.readFileSync(path.join(REPO_ROOT, 'deploy/vipguard.service'), 'utf8');
  const prevent = /^RestartPreventExitStatus=(.*)$/m.exec(unit)?.[1].split(/\s+/).map(Number).sort();
  assert.deepEqual(prevent, [EXIT.noPermission, EXIT.config]);
});

test('run without --config reads the default path, and says so when it is missing', { skip: fs.existsSync(DEFAULT_CONFIG) && `${DEFAULT_CONFIG} exists on this host` }, () => {
  const r = cli('run');
  assert.equal(r.code, EXIT.config, r.err);
  assert.match(r.err, new RegExp(`^vipguard: ${DEFAULT_CONFIG.replace(/\./g, '\\.')}: 1 problem:\n.*no such file \\(the default without --config\\); pass --config FILE`));
});

test('trace with nothing named and no IPVS table to read refuses plainly, exit 1', { skip: fs.existsSync('/proc/net/ip_vs') && 'ip_vs is loaded here (the lab tests trace without arguments)' }, () => {
  const r = cli('trace', '--duration', '1');
  assert.equal(r.code, EXIT.other, r.err);
  assert.match(r.err, /^vipguard: trace: no service named, and the kernel's IPVS table cannot be read \(.*ip_vs.*\); name one \(--service web=10\.99\.0\.1:80, --config FILE\) or pass --all\n$/);
});

const ANALYZE = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => fs.existsSync(p));
test('systemd-analyze verify passes on the unit', { skip: !ANALYZE && 'no systemd-analyze on this host' }, () => {
  const r = spawnSync(ANALYZE!, ['verify', path.join(REPO_ROOT, 'deploy/vipguard.service')], { encoding: 'utf8', timeout: 60_000 });
  // ExecStart is the package's /usr/bin/vipguard: where the package is not installed, that one complaint is expected
  // (test/lab/package.test.ts verifies the installed unit with no complaint at all).
  const missing = 'vipguard.service: Command /usr/bin/vipguard is not executable: No such file or directory';
  const lines = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() && !(l.trim() === missing && !fs.existsSync('/usr/bin/vipguard')));
  assert.deepEqual(lines, [], 'no warnings');
});

test('systemd-analyze security rates the unit at most 2.0 (deploy/README.md prints the figure)', { skip: !ANALYZE && 'no systemd-analyze on this host' }, () => {
  const r = spawnSync(ANALYZE!, ['security', '--offline=true', '--no-pager', path.join(REPO_ROOT, 'deploy/vipguard.service')], { encoding: 'utf8', timeout: 60_000 });
  const m = /Overall exposure level for vipguard\.service: (\d+(?:\.\d+)?) (\w+)/.exec(r.stdout);
  assert.ok(m, `${r.stdout}${r.stderr}`);
  console.log(`systemd-analyze security: exposure ${m[1]} ${m[2]}`);
  assert.ok(Number(m[1]) <= 2.0, `exposure ${m[1]}`);
});
