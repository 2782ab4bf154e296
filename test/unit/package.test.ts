// The Debian package as built by scripts/package.sh, checked without installing it (test/lab/package.test.ts
// installs, upgrades and purges it in a kernel VM): its control fields, what it holds and what it must not, and
// the maintainer scripts' syntax. Builds one package into a temporary directory (a few seconds, npm's cache).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT, packageVersion } from '../../src/common/paths';
import { NODE_FLAGS } from '../../src/common/node-flags';

const SCRIPT = path.join(REPO_ROOT, 'scripts', 'package.sh');
const built = fs.existsSync(path.join(REPO_ROOT, 'native/build/Release/vipguard_native.node'));

test('scripts/package.sh builds a package that needs only Node and libbpf, with the daemon and none of the repository', { skip: !built && 'not built' }, () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-deb-'));
  try {
    const r = spawnSync(SCRIPT, ['--out', out], { encoding: 'utf8', timeout: 300_000 });
    assert.equal(r.status, 0, r.stderr);
    const deb = r.stdout.trim();
    assert.ok(deb.endsWith(`vipguard_${packageVersion()}_amd64.deb`) && fs.existsSync(deb), deb);
    const field = (f: string) => spawnSync('dpkg-deb', ['-f', deb, f], { encoding: 'utf8' }).stdout.trim();
    assert.equal(field('Package'), 'vipguard');
    assert.equal(field('Version'), packageVersion());
    assert.equal(field('Depends'), 'nodejs (>= 20.17), libbpf1 (>= 1:1.1)', 'Node and libbpf at run time, nothing to compile');
    const listing = spawnSync('dpkg-deb', ['-c', deb], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout.split('\n').filter(Boolean);
    const files = listing.map((l) => l.split(/\s+/).slice(5).join(' ').replace(/^\./, ''));
    // The daemon runs as the vipguard user: a directory or file only root can read breaks it (it did: a 0700 temp dir).
    const unreadable = listing.filter((l) => !/^[d-]r..r..r/.test(l) && !l.startsWith('l'));
    assert.deepEqual(unreadable.slice(0, 5), [], 'everything world-readable');
    for (const f of ['/usr/bin/vipguard', '/usr/lib/vipguard/dist/src/cli/main.js', '/usr/lib/vipguard/native/build/Release/vipguard_native.node',
      '/usr/lib/vipguard/build/bpf/receiver.bpf.o', '/usr/lib/vipguard/build/bpf/rsthold.bpf.o', '/usr/lib/vipguard/build/bpf/synrto.bpf.o',
      '/usr/lib/vipguard/build/otlp-proto/opentelemetry/proto/collector/trace/v1/trace_service.proto',
      '/usr/lib/vipguard/node_modules/@grpc/grpc-js/package.json', '/lib/systemd/system/vipguard.service', '/usr/lib/sysusers.d/vipguard.conf',
      '/usr/share/doc/vipguard/examples/60-vipguard.conf', '/etc/vipguard/vipguard.yaml', '/usr/share/doc/vipguard/config.md']) {
      assert.ok(files.includes(f), `holds ${f}`);
    }
    // No host-wide change by default: the perf_event_paranoid snippet (kernels without kprobe.multi) is an example.
    assert.deepEqual(files.filter((f) => f.startsWith('/usr/lib/sysctl.d/') || f.startsWith('/etc/sysctl.d/')), [], 'no sysctl snippet installed');
    const strays = files.filter((f) => /\/dist\/(test|src\/(lab|bench|demo))\/|\.map$|\.ts$|\/node_modules\/(typescript|node-gyp|fast-check|kubernetes-models|@types)\//.test(f) && !f.endsWith('.d.ts'));
    assert.deepEqual(strays.slice(0, 5), [], 'no tests, lab, benchmarks, sources, maps or development dependencies');
    assert.ok(files.length < 20_000, `${files.length} files`);
    // The launcher gives Node the flags the benchmarks measured with.
    const launcher = spawnSync('sh', ['-c', `dpkg-deb --fsys-tarfile "$1" | tar -xO ./usr/bin/vipguard`, 'sh', deb], { encoding: 'utf8' }).stdout;
    assert.equal(launcher.trim().split('\n').at(-1), `exec /usr/bin/node ${NODE_FLAGS.join(' ')} /usr/lib/vipguard/dist/src/cli/main.js "$@"`);
    const ctl = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-deb-ctl-'));
    assert.equal(spawnSync('dpkg-deb', ['-e', deb, ctl]).status, 0);
    assert.equal(fs.readFileSync(path.join(ctl, 'conffiles'), 'utf8').trim(), '/etc/vipguard/vipguard.yaml');
    for (const s of ['postinst', 'prerm', 'postrm']) {
      const st = fs.statSync(path.join(ctl, s));
      assert.equal(st.mode & 0o777, 0o755, `${s} executable`);
      const n = spawnSync('sh', ['-n', path.join(ctl, s)], { encoding: 'utf8' });
      assert.equal(n.status, 0, `${s}: ${n.stderr}`);
      assert.ok(!/^\s*sysctl\b/m.test(fs.readFileSync(path.join(ctl, s), 'utf8')), `${s} sets no sysctl`);
    }
    fs.rmSync(ctl, { recursive: true, force: true });
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('scripts/package.sh refuses a version Debian would not accept, naming it', () => {
  const r = spawnSync(SCRIPT, ['--version', 'v1.0'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /version 'v1\.0' is not a Debian version/);
});
