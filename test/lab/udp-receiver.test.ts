// The receiver senses UDP (issue 13): `vipguard run` (receiver + actuator, the receiver's spans handed to the
// embedded rules in-process) on a watched UDP service with Debian's dnsmasq as three backends, steady DNS clients
// on connected sockets and dig. No alert is sent: the receiver's own exchanges make the rules act.
//   (a) a black-holed backend: its flows' waits pass the deadline (unanswered) -> removed; its flows move; the C
//       library's resolver (getent hosts) fails no lookup
//   (b) a backend whose dnsmasq is killed: ICMP port unreachable on its flows (refused) -> removed
//   (c) a slow backend (200 ms) under a deadline above that: answered, never quarantined
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sleep, startVipguard, VipguardProcess } from './harness';
import { labConfig } from '../../src/lab/vipguard-process';
import { waitFor, waitForAsync } from '../helpers';
import { DnsFlow, GetentLoop, NAME, dig } from './dns-client';
import { udpLab } from './udp-fixture';

const KERNEL = process.env.VIPGUARD_LAB_KERNEL;
const SKIP = KERNEL && KERNEL !== 'host' ? false : 'needs IPVS: runs inside the lab VM';
/** removal must follow the failure within this: deadline (≤ 700 ms ceiling) + poll (100 ms) + act, with TCG slack */
const REMOVAL_BOUND_MS = 5000;

describe('receiver senses UDP: the embedded rules quarantine a dead UDP backend (dnsmasq backends)', { skip: SKIP }, () => {
  const lab = udpLab();
  const { port, ip, dest, flowOn } = lab;

  async function start(deadline: { floor: string; ceiling: string } = { floor: '200ms', ceiling: '700ms' }): Promise<VipguardProcess> {
    const v = await startVipguard(labConfig({ address: lab.topo.vip.host, port: port(), name: 'dns' }, {
      services: [{ name: 'dns', address: lab.topo.vip.host, port: port(), protocol: 'udp', manage: false, probe: { dns: NAME } }],
      receiver: { deadline },
      actuator: { reconcileInterval: '500ms', quarantine: { base: '60s', max: '60s', probeInterval: '300ms', probeTimeout: '500ms' } },
    }));
    const hooks = v.lines.filter((l) => /receiver: (active|standby|unused|INACTIVE)/.test(l));
    console.log(`# kernel ${KERNEL}: hooks\n${hooks.map((l) => `#   ${l.replace(/^.*receiver: /, '')}`).join('\n')}`);
    // The ICMP error hook of this kernel, attached through a BPF link: sock:inet_sk_error_report arrived in 5.14, so
    // 5.10 has fentry on __udp4_lib_err (no kprobe, no perf_event_open).
    const icmp = KERNEL === '5.10' ? /^active +fentry __udp4_lib_err / : /^active +tp_btf sock:inet_sk_error_report /;
    assert.ok(hooks.some((l) => icmp.test(l.replace(/^.*receiver: /, ''))), `the ICMP error hook of ${KERNEL}:\n${hooks.join('\n')}`);
    assert.ok(v.lines.some((l) => /receiver: tracing .*dns=udp\//.test(l)), `the receiver traces the UDP service:\n${v.lines.join('\n')}`);
    return v;
  }

  /** A steady flow on each backend, answered long enough for the receiver to learn their reply times. */
  async function steadyFlows(): Promise<Record<string, DnsFlow>> {
    const out: Record<string, DnsFlow> = {};
    for (const b of ['b1', 'b2', 'b3']) out[b] = await flowOn(b);
    for (const f of Object.values(out)) await f.next(20);
    return out;
  }

  const quarantineLines = (since: number) => lab.vg!.lines.slice(since).filter((l) => /quarantine /.test(l));

  /**
   * Fails `name`; how long from the start of the change to its removal, and from the last answer `name` gave the
   * flow on it (the failure took effect within one query interval after that: the lab's nft/kill takes seconds
   * under TCG, and takes effect somewhere inside them).
   */
  async function removedAfterFailure(name: string, state: 'blackhole' | 'refuse', onFlow: DnsFlow): Promise<{ ms: number; sinceLastAnswerMs: number; removedAt: number; line: string }> {
    const mark = lab.vg!.lines.length;
    const t0 = Date.now();
    await lab.topo.set(name, state);
    await waitForAsync(async () => (await dest(name)) === undefined, REMOVAL_BOUND_MS, `${name} removed by the embedded rule after ${state}`);
    const removedAt = Date.now();
    const ms = removedAt - t0;
    const sinceLastAnswerMs = removedAt - (onFlow.answers.filter((a) => a.from === ip(name)).at(-1)?.at ?? t0);
    const line = quarantineLines(mark).find((l) => l.includes(`${ip(name)}:${port()}`)) ?? '';
    assert.match(line, /rule handshake-failures/, `the quarantine came from the embedded rule:\n${lab.vg!.lines.slice(mark).join('\n')}`);
    // The flow that was on the failed backend moved: its next answers come from the others.
    const moved = await onFlow.next(5);
    assert.ok(!moved.includes(ip(name)), `the flow on ${name} moved (${moved})`);
    const looked = Array.from({ length: 6 }, () => dig(lab.topo.vip.host, port(), 1).answer);
    assert.ok(looked.every((x) => x !== undefined && x !== ip(name)), `every dig answered, none by ${name}: ${looked}`);
    return { ms, sinceLastAnswerMs, removedAt, line };
  }


  test('(a) a black-holed backend is removed by the embedded rule from its unanswered exchanges, its flows move, and the C library resolver never fails a lookup', async () => {
    lab.vg = await start();
    const f = await steadyFlows();
    // getent ahostsv4 (getaddrinfo) through glibc's resolver, its own timeout (5 s) and attempts (2): two clients,
    // each one lookup after another, so that some first tries meet the black hole before the removal.
    const clients = [new GetentLoop(lab.topo.vip.host, 400), new GetentLoop(lab.topo.vip.host, 400)];
    const libc = { since: (t: number) => clients.flatMap((c) => c.since(t)), get lookups() { return clients.flatMap((c) => c.lookups); } };
    try {
      await waitFor(() => new Set(libc.lookups.map((l) => l.answer)).size === 3, 30_000, 'getent answered by every backend through the VIP')
        .catch((e) => { throw new Error(`${(e as Error).message}: ${JSON.stringify(libc.lookups.slice(-5))}`); });
      const { ms, sinceLastAnswerMs, removedAt, line } = await removedAfterFailure('b2', 'blackhole', f.b2);
      assert.match(line, /unanswered/, 'for unanswered exchanges');
      // Every lookup begun before the removal finishes within glibc's two tries; then five more.
      await waitFor(() => libc.since(removedAt + 1).length >= 5, 30_000, 'five getent lookups after the removal');
      const after = libc.since(removedAt + 1);
      assert.ok(after.every((l) => l.rc === 0 && l.answer !== ip('b2') && l.end - l.start < 2000),
        `every lookup after the removal answered at once, none by b2: ${JSON.stringify(after)}`);
      const failed = libc.lookups.filter((l) => l.rc !== 0);
      const retried = libc.lookups.filter((l) => l.end - l.start >= 2000);
      assert.deepEqual(failed, [], 'no getent lookup failed: a try that went to b2 was retried on its socket after the removal, and the retry moved with the flow');
      console.log(`# kernel ${KERNEL}: (a) black hole -> b2 removed ${sinceLastAnswerMs} ms after its last answer (${ms} ms after the black hole began to be set up); its flow moved; 6 digs answered elsewhere; ` +
        `getent: ${libc.lookups.length} lookups, 0 failed, ${retried.length} saved by glibc's retry after ${retried.map((l) => Math.round(l.end - l.start)).join(', ') || '-'} ms\n#   ${line}`);
    } finally {
      await Promise.all(clients.map((c) => c.stop()));
    }
  });

  test('(b) a backend whose dnsmasq is killed is removed from the ICMP errors on its flows (refused)', async () => {
    lab.vg = await start();
    const f = await steadyFlows();
    const { ms, sinceLastAnswerMs, removedAt, line } = await removedAfterFailure('b3', 'refuse', f.b3);
    assert.match(line, /refused/, 'for refused exchanges');
    const firstError = f.b3.errors[0];
    assert.ok(firstError, 'the client on b3 saw ECONNREFUSED');
    console.log(`# kernel ${KERNEL}: (b) dnsmasq killed -> b3 removed ${removedAt - firstError} ms after the client's first ECONNREFUSED, ` +
      `${sinceLastAnswerMs} ms after its last answer (${ms} ms after the kill began; ICMP errors seen by the client: ${f.b3.errors.length})\n#   ${line}`);
  });

  test('(c) a slow backend (200 ms) under a deadline above that is not quarantined', async () => {
    lab.vg = await start({ floor: '600ms', ceiling: '1s' });
    const f = await steadyFlows();
    const mark = lab.vg.lines.length;
    await lab.topo.set('b1', 'slow', 200);
    const slowAt = Date.now();
    const WAIT_MS = 8000;
    while (Date.now() - slowAt < WAIT_MS) {
      assert.ok(await dest('b1'), `b1 still in the service ${Date.now() - slowAt} ms into its slowness:\n${lab.vg.lines.slice(mark).join('\n')}`);
      await sleep(250);
    }
    const after = f.b1.answers.filter((a) => a.at > slowAt + 500);
    assert.ok(after.length >= 5 && after.every((a) => a.from === ip('b1')), `b1's flow kept being answered by b1 (${after.length} answers)`);
    assert.deepEqual(quarantineLines(mark), [], 'nothing quarantined');
    console.log(`# kernel ${KERNEL}: (c) b1 slow (200 ms): still in service after ${WAIT_MS} ms, ${after.length} slow answers on its flow, no quarantine`);
  });
});
