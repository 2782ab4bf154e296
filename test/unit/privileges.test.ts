// The privilege check as pure logic: CapEff parsing, and which privileges each part needs given facts about the
// process and kernel. The real thing (an unprivileged user with exactly these capabilities on 5.10, 6.1 and
// 6.12) is test/lab/privileges.test.ts.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  CAP, CapName, PrivilegeError, PrivilegeFacts, PrivilegeNeeds, capNames, checkPrivileges, formatMissing, hasCap,
  missingPrivileges, needsOf, parseCapEff, parseMemlock, readFacts,
} from '../../src/common/privileges';
import { parseConfig } from '../../src/config/config';

const caps = (...names: CapName[]) => names.reduce((s, n) => s | (1n << BigInt(CAP[n])), 0n);
const LEAST = caps('CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN');

const facts = (o: Partial<PrivilegeFacts> = {}): PrivilegeFacts => ({
  capEff: LEAST, capLastCap: 40, perfEventParanoid: 3, kprobeMulti: true, kprobes: true, kernelRelease: '6.12.117+deb13-amd64',
  memlock: { soft: 8 << 20, hard: 8 << 20 }, bpfMemcg: true, unprivilegedPortStart: 1024, ...o,
});
const BOTH: PrivilegeNeeds = { receiver: true, actuator: true, expireNodestConn: true, synTimeout: false, listenPorts: [9464, 9095, 4319] };
const whats = (n: PrivilegeNeeds, f: PrivilegeFacts) => missingPrivileges(n, f).map((m) => m.what);

test('CapEff: parsed from /proc/self/status as a 64-bit mask', () => {
  const status = 'Name:\tnode\nCapInh:\t0000000000000000\nCapPrm:\t000000c000001000\nCapEff:\t000000c000001000\nCapBnd:\t000001ffffffffff\n';
  const eff = parseCapEff(status);
  assert.equal(eff, 0xc000001000n);
  assert.deepEqual(capNames(eff), ['CAP_NET_ADMIN', 'CAP_PERFMON', 'CAP_BPF']);
  assert.equal(parseCapEff('CapEff:\t000001ffffffffff\n'), (1n << 41n) - 1n, 'root on a 6.x kernel: every capability');
  assert.ok(hasCap(parseCapEff('CapEff:\t000001ffffffffff'), 'CAP_SYS_ADMIN'));
  assert.equal(parseCapEff('CapEff:\t0000000000000000\n'), 0n);
  assert.throws(() => parseCapEff('CapPrm:\t0000000000000000\n'), /no CapEff line/);
  assert.throws(() => parseCapEff('CapEff:\tzz\n'), /no CapEff line/);
});

test('CapEff: the real file of this process parses, and root has what vipguard needs', () => {
  const f = readFacts();
  if (process.getuid?.() === 0) assert.ok(hasCap(f.capEff, 'CAP_NET_ADMIN'), 'root has CAP_NET_ADMIN');
  assert.equal(typeof f.capEff, 'bigint');
});

test('RLIMIT_MEMLOCK: parsed from /proc/self/limits, unlimited as Infinity', () => {
  const limits = 'Limit                     Soft Limit           Hard Limit           Units     \n' +
    'Max locked memory         65536                65536                bytes     \n';
  assert.deepEqual(parseMemlock(limits), { soft: 65536, hard: 65536 });
  assert.deepEqual(parseMemlock('Max locked memory         8388608              unlimited            bytes\n'), { soft: 8388608, hard: Infinity });
  assert.equal(parseMemlock('Max open files 1024 4096 files\n'), undefined);
});

test('the least set is enough for both parts', () => {
  assert.deepEqual(missingPrivileges(BOTH, facts()), []);
  assert.doesNotThrow(() => checkPrivileges(BOTH, facts()));
});

test('dropping each capability names it, and only it, with the part that needs it', () => {
  const cases: [CapName, RegExp][] = [
    ['CAP_BPF', /the receiver to create its BPF maps/],
    ['CAP_PERFMON', /the receiver to load tracing programs/],
    ['CAP_NET_ADMIN', /the actuator to change IPVS over netlink and set net\.ipv4\.vs\.expire_nodest_conn/],
  ];
  for (const [cap, why] of cases) {
    const m = missingPrivileges(BOTH, facts({ capEff: LEAST & ~caps(cap) }));
    assert.equal(m.length, 1, `${cap}: ${formatMissing(m)}`);
    assert.equal(m[0].what, cap);
    assert.match(m[0].neededBy, why);
  }
});

test('the message names each missing privilege in the documented form', () => {
  const err = (() => {
    try { checkPrivileges(BOTH, facts({ capEff: 0n })); } catch (e) { return e as PrivilegeError; }
    return undefined;
  })();
  assert.ok(err instanceof PrivilegeError);
  assert.match(err.message, /^refusing to start: 3 missing privileges\n/);
  assert.ok(err.message.includes('vipguard: missing CAP_NET_ADMIN (needed by the actuator to change IPVS over netlink and set ' +
    'net.ipv4.vs.expire_nodest_conn) — run as root or grant it (see deploy/vipguard.service)'), err.message);
  assert.deepEqual(err.missing.map((m) => m.what), ['CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN']);
});

test('each part asks only for its own', () => {
  const receiverOnly = { ...BOTH, actuator: false, expireNodestConn: false };
  assert.deepEqual(whats(receiverOnly, facts({ capEff: caps('CAP_BPF', 'CAP_PERFMON') })), []);
  const actuatorOnly = { ...BOTH, receiver: false };
  assert.deepEqual(whats(actuatorOnly, facts({ capEff: caps('CAP_NET_ADMIN'), perfEventParanoid: 3, kprobeMulti: false })), [],
    'the actuator needs neither BPF nor perf_event_open');
  assert.deepEqual(whats({ ...actuatorOnly, synTimeout: true }, facts({ capEff: caps('CAP_NET_ADMIN') })), ['CAP_BPF'],
    'the synTimeout sock_ops program needs CAP_BPF');
  const m = missingPrivileges({ ...BOTH, expireNodestConn: false, synTimeout: true }, facts({ capEff: caps('CAP_BPF', 'CAP_PERFMON') }));
  assert.equal(m[0].neededBy, 'the actuator to change IPVS over netlink and attach the synTimeout sock_ops program');
  const hold = missingPrivileges({ ...actuatorOnly, synTimeout: true, holdRefusals: true }, facts({ capEff: 0n }));
  assert.deepEqual(hold.map((x) => [x.what, x.neededBy]), [
    ['CAP_NET_ADMIN', 'the actuator to change IPVS over netlink, set net.ipv4.vs.expire_nodest_conn, attach the synTimeout sock_ops program and load and attach the holdRefusals cgroup_skb program'],
    ['CAP_BPF', 'the actuator to load the synTimeout sock_ops program (actuator.synTimeout) and the holdRefusals cgroup_skb program (actuator.holdRefusals)'],
  ]);
});

test('CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON, and is what kernels before 5.8 ask for', () => {
  assert.deepEqual(whats(BOTH, facts({ capEff: caps('CAP_SYS_ADMIN', 'CAP_NET_ADMIN') })), []);
  assert.deepEqual(whats(BOTH, facts({ capEff: caps('CAP_NET_ADMIN'), capLastCap: 37 })), ['CAP_SYS_ADMIN']);
});

test('with kprobe.multi (fprobe) every hook is a BPF link: no perf_event_paranoid requirement, no tracefs', () => {
  for (const perfEventParanoid of [-1, 2, 3, 4]) assert.deepEqual(whats(BOTH, facts({ perfEventParanoid })), [], `paranoid ${perfEventParanoid}`);
});

test('without kprobe.multi (5.10, Debian 12\'s 6.1) the classic kprobe needs perf_event_open: paranoid ≤ 2 or CAP_SYS_ADMIN, naming the kernel', () => {
  const old = { kprobeMulti: false, kernelRelease: '6.1.0-50-amd64' };
  const m = missingPrivileges(BOTH, facts({ ...old, perfEventParanoid: 3 }));
  assert.equal(m.length, 1);
  assert.equal(m[0].what, 'kernel.perf_event_paranoid ≤ 2 (it is 3)');
  assert.match(m[0].neededBy, /kprobe on ip_vs_conn_new .*this kernel \(6\.1\.0-50-amd64\) has no kprobe\.multi \(fprobe: 5\.18\+ built with CONFIG_FPROBE\)/);
  assert.match(m[0].fix, /kernel\.perf_event_paranoid=2 \(deploy\/README\.md.*or grant CAP_SYS_ADMIN/);
  assert.deepEqual(whats(BOTH, facts({ ...old, perfEventParanoid: 2 })), []);
  assert.deepEqual(whats(BOTH, facts({ ...old, perfEventParanoid: -1 })), []);
  assert.deepEqual(whats(BOTH, facts({ ...old, perfEventParanoid: 4, capEff: LEAST | caps('CAP_SYS_ADMIN') })), []);
  assert.deepEqual(whats(BOTH, facts({ ...old, kprobes: false })), [], 'no kprobes at all: the receiver runs without the ip_vs hook, and says so');
  assert.deepEqual(whats({ ...BOTH, receiver: false }, facts(old)), [], 'only the receiver hooks ip_vs_conn_new');
});

test('RLIMIT_MEMLOCK matters only without memcg accounting (before 5.11), and not with CAP_SYS_RESOURCE or an unlimited hard limit', () => {
  const small = { soft: 65536, hard: 65536 };
  assert.deepEqual(whats(BOTH, facts({ memlock: small, bpfMemcg: true })), []);
  const m = missingPrivileges(BOTH, facts({ memlock: small, bpfMemcg: false }));
  assert.equal(m.length, 1);
  assert.equal(m[0].what, 'RLIMIT_MEMLOCK unlimited (it is 64 KiB, hard 64 KiB)');
  assert.match(m[0].fix, /LimitMEMLOCK=infinity.*CAP_SYS_RESOURCE/);
  assert.deepEqual(whats(BOTH, facts({ memlock: { soft: 65536, hard: Infinity }, bpfMemcg: false })), [], 'libbpf raises the soft limit itself');
  assert.deepEqual(whats(BOTH, facts({ memlock: small, bpfMemcg: false, capEff: LEAST | caps('CAP_SYS_RESOURCE') })), []);
  assert.deepEqual(whats({ ...BOTH, receiver: false }, facts({ memlock: small, bpfMemcg: false })), [], 'the actuator loads no BPF by default');
});

test('listen ports below ip_unprivileged_port_start need CAP_NET_BIND_SERVICE', () => {
  assert.deepEqual(whats({ ...BOTH, listenPorts: [443, 9095, 0] }, facts()), ['CAP_NET_BIND_SERVICE']);
  assert.deepEqual(whats({ ...BOTH, listenPorts: [443] }, facts({ unprivilegedPortStart: 0 })), []);
  assert.deepEqual(whats({ ...BOTH, listenPorts: [443] }, facts({ capEff: LEAST | caps('CAP_NET_BIND_SERVICE') })), []);
});

test('needsOf reads the configuration and --only', () => {
  const c = parseConfig('services:\n  - name: web\n    address: 10.99.0.1\n    port: 80\nactuator:\n  listen: 127.0.0.1:80\n  expireNodestConn: false\n');
  assert.deepEqual(needsOf(c, { receiver: true, actuator: true }),
    { receiver: true, actuator: true, expireNodestConn: false, synTimeout: false, holdRefusals: true, listenPorts: [9464, 80, 4319] });
  assert.deepEqual(needsOf(c, { receiver: true, actuator: false }),
    { receiver: true, actuator: false, expireNodestConn: false, synTimeout: false, holdRefusals: false, listenPorts: [9464] });
});

test('deploy/ grants exactly what the check asks for: the systemd unit and the DaemonSet', async () => {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const { parseAllDocuments } = await import('yaml');
  const { REPO_ROOT } = await import('../../src/common/paths');
  const unit = fs.readFileSync(path.join(REPO_ROOT, 'deploy/vipguard.service'), 'utf8');
  const setting = (k: string) => [...unit.matchAll(new RegExp(`^${k}=(.*)$`, 'gm'))].map((m) => m[1]);
  const least = ['CAP_BPF', 'CAP_NET_ADMIN', 'CAP_PERFMON'];
  assert.deepEqual(setting('AmbientCapabilities')[0].split(/\s+/).sort(), least);
  assert.deepEqual(setting('CapabilityBoundingSet')[0].split(/\s+/).sort(), least);
  assert.deepEqual(setting('LimitMEMLOCK'), ['infinity'], 'for 5.10');
  assert.deepEqual(setting('NoNewPrivileges'), ['yes']);
  assert.ok(setting('User')[0] && setting('User')[0] !== 'root', 'a dedicated user');
  assert.ok(!/tracefs|\/sys\/kernel\/tracing|perf_event_paranoid\s*=/.test(unit.replace(/^#.*$/gm, '')), 'no host-wide change: no tracefs remount, no sysctl');
  assert.deepEqual(setting('StateDirectory'), ['vipguard']);
  const c = parseConfig('services: []\n');
  assert.equal(c.actuator.stateFile, '/var/lib/vipguard/state.json', 'the default state file is in StateDirectory');

  const docs = parseAllDocuments(fs.readFileSync(path.join(REPO_ROOT, 'deploy/kubernetes/daemonset.yaml'), 'utf8')).map((d) => d.toJS());
  const ds = docs.find((d) => d.kind === 'DaemonSet');
  const ctr = ds.spec.template.spec.containers[0];
  assert.deepEqual([...ctr.securityContext.capabilities.add].sort(), ['BPF', 'NET_ADMIN', 'PERFMON']);
  assert.deepEqual(ctr.securityContext.capabilities.drop, ['ALL']);
  assert.equal(ctr.securityContext.privileged, false);
  assert.equal(ctr.securityContext.allowPrivilegeEscalation, false);
  assert.equal(ds.spec.template.spec.hostNetwork, true);
  const cm = docs.find((d) => d.kind === 'ConfigMap');
  const cfg = parseConfig(cm.data['vipguard.yaml'], 'daemonset.yaml ConfigMap');
  assert.equal(cfg.actuator.expireNodestConn, false, 'a container cannot write /proc/sys');
  assert.deepEqual(missingPrivileges(needsOf(cfg, { receiver: true, actuator: true }),
    facts({ capEff: caps('CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN') })), []);
  const volumes = ds.spec.template.spec.volumes.map((v: { hostPath?: { path: string } }) => v.hostPath?.path);
  assert.ok(!volumes.includes('/sys/kernel/tracing'), 'no tracefs volume');
});
