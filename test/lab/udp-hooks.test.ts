// Which BPF hooks see what of a UDP flow through IPVS — proven on Debian 5.10, 6.1 and 6.12 (issue 13's groundwork;
// the facts are kept in docs/udp.md). bpf/lab/udpfacts.bpf.c counts, per client socket (its local port) and per
// hook, what each candidate hook saw; the flows are real: Node's dgram on connected sockets, Debian's dnsmasq as
// the backends (test/lab/udp-lab.ts), dig as an unmodified client.
//   1. kprobe ip_vs_conn_new fires once per new UDP flow (not per datagram), inside the first udp_sendmsg, with the
//      real destination IPVS chose.
//   2. fentry/fexit udp_sendmsg and udpv6_sendmsg see every datagram with the socket and the VIP as destination;
//      cgroup_skb egress sees none of them (IPVS re-sends the NATed datagram without its socket) though it sees a
//      direct one; the replies reach cgroup_skb ingress and __udp_enqueue_schedule_skb from the VIP, reverse-NATed.
//   3. a killed backend: ICMP port unreachable, translated by IPVS (outer source and quoted destination are the
//      VIP), reaches __udp4_lib_err / __udp6_lib_err and, on 6.1 and 6.12, tracepoint inet_sk_error_report; the
//      connected socket gets ECONNREFUSED at once, and dig says "connection refused".
//   4. a black-holed backend: nothing at all comes back — only a deadline can tell.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { BpfObject, LibbpfError, openBpfObject } from '../../src/native/bpf';
import { bpfObjectPath } from '../../src/common/paths';
import { cgroup2Root } from '../../src/common/cgroup';
import { DNS_PORT, UdpFlow, UdpTopology, VIP4, VIP6, dig } from './udp-lab';
import { waitFor } from '../helpers';

const KERNEL = process.env.VIPGUARD_LAB_KERNEL;
const SKIP = KERNEL && KERNEL !== 'host' ? false : 'needs IPVS, kprobes and fentry: runs inside the lab VM';
const DEBUG = !!process.env.VIPGUARD_TEST_DEBUG;

/** enum udpf_hook in bpf/lab/udpfacts.h, in order. */
const HOOKS = ['ipvs_conn', 'send_fentry', 'send_fexit', 'send_kprobe', 'cg_egress', 'cg_ingress', 'enqueue', 'icmp_err',
  'err_report', 'send_len', 'recv_len', 'icmp_err_kprobe', 'udpv6_err', 'destroy'] as const;
type Hook = (typeof HOOKS)[number];
const SEEN_SIZE = 72; // UDPF_SEEN_SIZE

/** What one hook saw of one client socket (struct udpf_seen). */
interface Seen {
  count: number;
  firstNs: bigint;
  lastNs: bigint;
  peer: string;
  other: string;
  ret: number;
  peerChanges: number;
  inSendmsg: boolean;
}

function addr(b: Buffer, family: number): string {
  if (family === 2) return [...b.subarray(0, 4)].join('.');
  // RFC 5952: the longest run of two or more zero groups becomes '::'.
  const g = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2).toString(16));
  let best = [-1, 0];
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && g[j] === '0') j++;
    if (j - i > best[1]) best = [i, j - i];
  }
  if (best[1] < 2) return g.join(':');
  return `${g.slice(0, best[0]).join(':')}::${g.slice(best[0] + best[1]).join(':')}`;
}
const join = (family: number, a: string, port: number) => (family === 10 ? `[${a}]:${port}` : `${a}:${port}`);

/** Programs whose hook may be missing, and the BTF name that says the running kernel has it (probed, not versioned). */
const OPTIONAL: Record<string, string> = {
  uf_error_report: 'btf_trace_inet_sk_error_report', // 5.14+
  uf_send_length: 'btf_trace_sock_send_length', // 6.3+
  uf_recv_length: 'btf_trace_sock_recv_length',
  uf_udpv6_err: 'udpv6_err', // static: Debian 5.10's BTF leaves it out
};

/**
 * Does an ICMPv6 port unreachable for a NATed IPv6 flow reach the client's socket? Not on Debian 5.10 and 6.1: it
 * arrives on the client's interface (Ip6InReceives) and vanishes in netfilter before icmpv6_rcv (no Icmp6InMsgs) —
 * as the bug fixed upstream by "ipvs: fix the checksum validations" (Julian Anastasov, 2026-07, Fixes: 2a3b791e6e11)
 * would: handle_response_icmp() checks an ICMPv6 checksum without the IPv6 pseudo-header when the device has not
 * (veth here). Debian's 6.12 delivers it. So there an IPv6 refusal through the VIP looks exactly like a black hole.
 */
const ICMPV6_REACHES_SOCKET: Record<string, boolean> = { '5.10': false, '6.1': false, '6.12': true };

/** Each kernel's truth: programs left out (hook not in its BTF) and programs whose attach the kernel refuses. */
const EXPECTED: Record<string, { missing: string[]; refused: string[] }> = {
  '5.10': { missing: ['uf_error_report', 'uf_send_length', 'uf_recv_length', 'uf_udpv6_err'], refused: ['uf_udp6_err'] },
  // fentry udpv6_err: in the BTF of 6.1 and 6.12, yet its attach fails with EBUSY there.
  '6.1': { missing: ['uf_send_length', 'uf_recv_length'], refused: ['uf_udp6_err', 'uf_udpv6_err'] },
  '6.12': { missing: [], refused: ['uf_udpv6_err'] },
};

class Facts {
  readonly obj: BpfObject;
  readonly attached: string[] = [];
  readonly missing: string[] = [];
  /** program → the attach error */
  readonly refused = new Map<string, string>();

  constructor() {
    this.obj = openBpfObject(bpfObjectPath('lab/udpfacts'));
    const btf = fs.readFileSync('/sys/kernel/btf/vmlinux');
    for (const [prog, type] of Object.entries(OPTIONAL)) {
      if (!btf.includes(Buffer.from(`\0${type}\0`))) {
        this.obj.setAutoload(prog, false);
        this.missing.push(prog);
      }
    }
    this.obj.load();
    const cgroup = cgroup2Root();
    assert.ok(cgroup, 'a cgroup2 mount for the cgroup_skb programs');
    for (const p of this.obj.programs()) {
      if (!p.autoload) continue;
      try {
        this.obj.attach(p.name, p.type === 'cgroup_skb' ? { cgroup } : undefined);
        this.attached.push(p.name);
      } catch (e) {
        this.refused.set(p.name, (e as Error).message);
      }
    }
  }

  clear(): void {
    for (const k of this.obj.mapKeys('seen')) this.obj.mapDelete('seen', k);
  }

  calls(): Record<Hook, number> {
    const sums = this.obj.percpuSums('calls', HOOKS.length);
    return Object.fromEntries(HOOKS.map((h, i) => [h, Number(sums[i])])) as Record<Hook, number>;
  }

  /** Everything the hooks saw of the socket with local port `lport`, by hook. */
  of(family: 2 | 10, lport: number): Partial<Record<Hook, Seen>> {
    const out: Partial<Record<Hook, Seen>> = {};
    HOOKS.forEach((h, i) => {
      const key = Buffer.alloc(4);
      key.writeUInt8(family, 0);
      key.writeUInt8(i, 1);
      key.writeUInt16LE(lport, 2);
      const v = this.obj.mapLookup('seen', key);
      if (!v) return;
      assert.equal(v.length, SEEN_SIZE, 'udpf_seen layout');
      out[h] = {
        count: Number(v.readBigUInt64LE(0)), firstNs: v.readBigUInt64LE(8), lastNs: v.readBigUInt64LE(16),
        peer: join(family, addr(v.subarray(24, 40), family), v.readUInt16LE(56)),
        other: join(family, addr(v.subarray(40, 56), family), v.readUInt16LE(58)),
        ret: v.readInt32LE(60), peerChanges: v.readUInt32LE(64), inSendmsg: (v.readUInt32LE(68) & 1) === 1,
      };
    });
    return out;
  }

  close(): void {
    this.obj.close();
  }
}

const brief = (s: Partial<Record<Hook, Seen>>) =>
  Object.entries(s).map(([h, x]) => `${h}×${x!.count} peer ${x!.peer}${x!.other.startsWith('0.0.0.0') || x!.other.startsWith('[::]') ? '' : ` other ${x!.other}`} ret ${x!.ret}`).join('; ');

/** One IPVS UDP connection entry per client port: `ipvsadm -Lnc` (an independent reader of the kernel). */
function ipvsUdpDestination(clientPort: number): string[] {
  return execFileSync('ipvsadm', ['-Lnc'], { encoding: 'utf8' }).split('\n').map((l) => l.trim().split(/\s+/))
    .filter((f) => f[0] === 'UDP' && (f[3].endsWith(`:${clientPort}`))).map((f) => f[5]);
}

describe('UDP through IPVS: which hooks see what', { skip: SKIP }, () => {
  let topo: UdpTopology;
  let facts: Facts;
  let statsBefore = '';

  before(async () => {
    topo = await UdpTopology.up(3);
    statsBefore = fs.readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
    fs.writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '1'); // run_time_ns per program, for the cost notes
    facts = new Facts();
    console.log(`[${KERNEL}] attached ${facts.attached.join(', ')}; not in this kernel: ${facts.missing.join(', ') || 'none'}; ` +
      `refused: ${[...facts.refused].map(([p, e]) => `${p} (${e})`).join(', ') || 'none'}`);
  });

  after(async () => {
    if (facts) {
      const stats = JSON.parse(execFileSync('bpftool', ['prog', 'show', '--json'], { encoding: 'utf8' })) as { name?: string; run_cnt?: number; run_time_ns?: number }[];
      const mine = stats.filter((p) => p.name?.startsWith('uf_') && p.run_cnt);
      console.log(`[${KERNEL}] cost (bpf_stats, TCG guest): ${mine.map((p) => `${p.name} ${p.run_cnt}× ${Math.round(p.run_time_ns! / p.run_cnt!)} ns`).join(', ')}`);
      console.log(`[${KERNEL}] calls per hook: ${JSON.stringify(facts.calls())}`);
    }
    facts?.close();
    if (statsBefore) fs.writeFileSync('/proc/sys/kernel/bpf_stats_enabled', statsBefore);
    await topo?.down();
  });

  test('the hooks each kernel has: inet_sk_error_report from 5.14, sock_send/recv_length from 6.3, fentry on 7 arguments from 6.6', () => {
    const want = EXPECTED[KERNEL!];
    assert.ok(want, `a known lab kernel (${KERNEL})`);
    assert.deepEqual(facts.missing, want.missing, `hooks not in ${KERNEL}'s BTF`);
    assert.deepEqual([...facts.refused.keys()], want.refused, `attaches ${KERNEL} refuses`);
    for (const [p, e] of facts.refused) assert.match(e, p === 'uf_udpv6_err' ? /busy/i : /Unknown error 524/, `${p} refused with the error seen before`);
    for (const p of ['uf_ip_vs_conn_new', 'uf_udp_sendmsg', 'uf_udp_sendmsg_exit', 'uf_udpv6_sendmsg', 'uf_udpv6_sendmsg_exit', 'uf_udp_sendmsg_kprobe',
      'uf_cg_egress', 'uf_cg_ingress', 'uf_enqueue', 'uf_udp4_err', 'uf_udp4_err_kprobe', 'uf_udp6_err_kprobe', 'uf_udp_destroy_sock', 'uf_udpv6_destroy_sock']) {
      assert.ok(facts.attached.includes(p), `${p} attached on ${KERNEL}`);
    }
  });

  test('1+2: ip_vs_conn_new once per flow; sendmsg sees each datagram to the VIP; replies arrive from the VIP', async () => {
    facts.clear();
    const calls0 = facts.calls();
    const flows: { family: 2 | 10; flow: UdpFlow }[] = [];
    const QUERIES = 4;
    for (const [family, vip] of [[2, VIP4], [2, VIP4], [2, VIP4], [10, VIP6]] as const) {
      const flow = await UdpFlow.open(vip);
      for (let i = 0; i < QUERIES; i++) {
        const x = await flow.exchange(0x100 + i, 3000);
        assert.match(x.result, /^10\.201\.0\.\d+$/, `flow ${flow.localPort}: query ${i} answered by a backend (got ${x.result})`);
      }
      flows.push({ family, flow });
    }
    const calls1 = facts.calls();
    const dests: string[] = [];
    for (const { family, flow } of flows) {
      const s = facts.of(family, flow.localPort);
      const vip = family === 2 ? `${VIP4}:${DNS_PORT}` : `[${VIP6}]:${DNS_PORT}`;
      const answered = flow.exchanges.map((x) => x.result);
      console.log(`[${KERNEL}] flow ${flow.localPort} (${family === 2 ? 'v4' : 'v6'}): answered by ${[...new Set(answered)]}; ${brief(s)}`);
      // 1. once per flow, with the backend that answered, scheduled inside the sending thread's udp_sendmsg
      assert.equal(s.ipvs_conn?.count, 1, `ip_vs_conn_new once for ${QUERIES} datagrams of flow ${flow.localPort}`);
      assert.equal(new Set(answered).size, 1, 'one backend answers the whole flow');
      const b = topo.backends.find((x) => x.ip === answered[0])!;
      const backend = family === 2 ? `${b.ip}:${DNS_PORT}` : `[${b.ip6}]:${DNS_PORT}`;
      assert.equal(s.ipvs_conn!.peer, backend, 'ip_vs_conn_new names the backend that answered');
      assert.equal(s.ipvs_conn!.other, vip, 'and the virtual service');
      assert.equal(s.ipvs_conn!.inSendmsg, true, 'IPVS scheduled the flow inside udp_sendmsg, on the sending thread');
      if (family === 2) assert.deepEqual(ipvsUdpDestination(flow.localPort), [`${b.ip}:${DNS_PORT}`], 'ipvsadm -Lnc agrees');
      dests.push(backend);
      // 2. the socket's sends: every datagram, destination the VIP
      for (const h of ['send_fentry', 'send_fexit'] as const) {
        assert.equal(s[h]?.count, QUERIES, `${h}: every datagram of flow ${flow.localPort}`);
        assert.equal(s[h]!.peer, vip, `${h}: the destination is the VIP`);
      }
      assert.ok(s.send_fexit!.ret > 0, `fexit sees the bytes sent (${s.send_fexit!.ret})`);
      if (family === 2) assert.equal(s.send_kprobe?.count, QUERIES, 'kprobe udp_sendmsg: every datagram');
      // 2. nothing of the NATed datagram at cgroup_skb egress: IPVS re-sends it without its socket
      assert.equal(s.cg_egress, undefined, 'cgroup_skb egress does not see datagrams IPVS NATed');
      // 2. the replies, translated back: source the VIP, at ingress and when queued to the socket
      for (const h of ['cg_ingress', 'enqueue'] as const) {
        assert.equal(s[h]?.count, QUERIES, `${h}: every reply of flow ${flow.localPort}`);
        assert.equal(s[h]!.peer, vip, `${h}: the reply's source is the VIP (reverse NAT at LOCAL_IN came first)`);
      }
      if (facts.attached.includes('uf_send_length')) {
        assert.equal(s.send_len?.count, QUERIES, 'sock_send_length: every send');
        // per recvmsg call, not per datagram: libuv reads until EAGAIN, and those calls fire it too (ret -11)
        assert.ok(s.recv_len && s.recv_len.count >= QUERIES, `sock_recv_length: at least every receive (${s.recv_len?.count})`);
      }
      assert.equal(s.icmp_err, undefined, 'no ICMP error for a healthy flow');
      assert.equal(s.err_report, undefined, 'no error report for a healthy flow');
      flow.close();
      await waitFor(() => facts.of(family, flow.localPort).destroy !== undefined, 3000, `udp destroy of ${flow.localPort}`);
      const d = facts.of(family, flow.localPort).destroy!;
      assert.equal(d.count, 1, 'the socket was destroyed once, on close');
      assert.equal(d.peer, vip, 'still naming its flow (addresses and ports set) when destroyed');
    }
    assert.equal(new Set(dests.slice(0, 3)).size, 3, `rr spreads three new IPv4 flows over three backends: ${dests}`);
    assert.equal(calls1.ipvs_conn - calls0.ipvs_conn, flows.length, `ip_vs_conn_new ran ${flows.length} times for ${flows.length * QUERIES} datagrams`);
  });

  test('per-flow counts without an event per datagram: the socket\'s own storage, from fentry and cgroup_skb (6.1+; 5.10 refuses it to fentry)', async () => {
    const obj = openBpfObject(bpfObjectPath('lab/udpflows'));
    try {
      if (KERNEL === '5.10') {
        // bpf_sk_storage_get() in tracing programs arrived in 5.11 (commit 8e4597c627fb).
        assert.throws(() => obj.load(), (e: LibbpfError) => /sk_storage_get/.test(`${e.message}\n${e.logTail ?? ''}`),
          'the verifier refuses bpf_sk_storage_get in fentry on 5.10');
        return;
      }
      obj.load();
      obj.attach('uflow_udp_sendmsg');
      obj.attach('uflow_udpv6_sendmsg');
      obj.attach('uflow_ingress', { cgroup: cgroup2Root()! });
      for (const vip of [VIP4, VIP6]) {
        const flow = await UdpFlow.open(vip);
        for (let i = 0; i < 3; i++) assert.match((await flow.exchange(0x500 + i, 3000)).result, /^10\.201\.0\.\d+$/);
        const key = Buffer.alloc(4);
        key.writeInt32LE(flow.fd);
        const v = obj.mapLookup('flows', key);
        flow.close();
        assert.ok(v, `socket storage for flow ${flow.localPort}`);
        assert.deepEqual({ sent: Number(v.readBigUInt64LE(0)), received: Number(v.readBigUInt64LE(8)) }, { sent: 3, received: 3 },
          `${vip}: three datagrams out (fentry) and three back (cgroup_skb ingress), counted in the socket`);
      }
    } finally {
      obj.close();
    }
  });

  test('2: cgroup_skb egress does see a datagram sent straight to a backend (the hook works; IPVS hides the NATed ones)', async () => {
    facts.clear();
    const b1 = topo.backend('b1');
    const flow = await UdpFlow.open(b1.ip);
    const x = await flow.exchange(0x200, 3000);
    flow.close();
    assert.equal(x.result, b1.ip);
    const s = facts.of(2, flow.localPort);
    console.log(`[${KERNEL}] direct flow ${flow.localPort}: ${brief(s)}`);
    assert.equal(s.cg_egress?.count, 1, 'egress saw the direct datagram');
    assert.equal(s.cg_egress!.peer, `${b1.ip}:${DNS_PORT}`);
    assert.equal(s.ipvs_conn, undefined, 'no IPVS connection for a direct flow');
  });

  test('3: a killed backend — ICMP port unreachable, as from the VIP, reaches the connected socket: ECONNREFUSED at once', async () => {
    facts.clear();
    topo.only('b2');
    await topo.kill('b2');
    const b2 = topo.backend('b2');
    for (const [family, vip, backend] of [[2, VIP4, b2.ip], [10, VIP6, b2.ip6]] as const) {
      const flow = await UdpFlow.open(vip);
      const x = await flow.exchange(0x300, 2000);
      flow.close();
      const s = facts.of(family, flow.localPort);
      const v = family === 2 ? `${VIP4}:${DNS_PORT}` : `[${VIP6}]:${DNS_PORT}`;
      console.log(`[${KERNEL}] refused flow ${flow.localPort} (${family === 2 ? 'v4' : 'v6'}): client ${x.result} after ${x.ms.toFixed(1)} ms; ${brief(s)}`);
      if (family === 10 && !ICMPV6_REACHES_SOCKET[KERNEL!]) {
        assert.equal(x.result, 'timeout', `on ${KERNEL} IPVS drops the ICMPv6 error of a NATed flow: the client hears nothing`);
        assert.equal(s.ipvs_conn?.peer, `[${backend}]:${DNS_PORT}`, 'the flow went to b2');
        for (const h of ['icmp_err', 'icmp_err_kprobe', 'udpv6_err', 'err_report', 'recv_len', 'cg_ingress'] as const) assert.equal(s[h], undefined, `${h}: nothing on ${KERNEL}`);
        continue;
      }
      assert.equal(x.result, 'ECONNREFUSED', 'the connected socket gets ECONNREFUSED');
      assert.ok(x.ms < 1000, `at once, not after a timeout (${x.ms.toFixed(0)} ms)`);
      assert.equal(s.ipvs_conn?.peer, family === 2 ? `${backend}:${DNS_PORT}` : `[${backend}]:${DNS_PORT}`, 'the flow went to b2');
      // Every error hook attached here for this family: fentry __udp4_lib_err (all), fentry __udp6_lib_err (6.12),
      // fentry udpv6_err (6.1, 6.12), kprobe __udp4_lib_err / __udp6_lib_err (all).
      const errHooks: Hook[] = ['icmp_err_kprobe'];
      if (family === 2 || facts.attached.includes('uf_udp6_err')) errHooks.push('icmp_err');
      if (family === 10 && facts.attached.includes('uf_udpv6_err')) errHooks.push('udpv6_err');
      for (const h of errHooks) {
        assert.equal(s[h]?.count, 1, `${h}: the error handler ran once for flow ${flow.localPort}`);
        assert.equal(s[h]!.peer, v, `${h}: the ICMP error quotes the datagram as sent, to the VIP (IPVS translated the inner header)`);
        assert.equal(s[h]!.other.replace(/:0$/, ''), family === 2 ? VIP4 : `[${VIP6}]`, `${h}: and comes from the VIP`);
        assert.equal(s[h]!.ret, family === 2 ? 0x0303 : 0x0104, `${h}: port unreachable (ICMP 3/3, ICMPv6 1/4)`);
      }
      const kernelMs = Number(s[errHooks[0]]!.firstNs - s.send_fentry!.firstNs) / 1e6;
      console.log(`[${KERNEL}]   send → ICMP error handled: ${kernelMs.toFixed(2)} ms in the kernel`);
      assert.ok(kernelMs >= 0 && kernelMs < 500, `ICMP handled ${kernelMs.toFixed(1)} ms after the send`);
      if (facts.attached.includes('uf_error_report')) {
        assert.equal(s.err_report?.count, 1, 'inet_sk_error_report fired once');
        assert.equal(s.err_report!.ret, 111, 'with sk_err ECONNREFUSED');
        assert.equal(s.err_report!.peer, v, 'on the socket connected to the VIP');
      }
      if (facts.attached.includes('uf_recv_length')) assert.equal(s.recv_len?.ret, -111, 'sock_recv_length: recvmsg returned -ECONNREFUSED');
      assert.equal(s.cg_ingress, undefined, 'no datagram came back');
    }
    // An unconnected socket (sendto): the kernel still runs the error handler for it, but reports nothing to the
    // socket (no IP_RECVERR) — only a deadline tells; the hooks that key on the socket's state stay silent too.
    const u = await UdpFlow.open(VIP4, { connected: false });
    const ux = await u.exchange(0x310, 1500);
    u.close();
    const us = facts.of(2, u.localPort);
    console.log(`[${KERNEL}] refused, unconnected ${u.localPort}: client ${ux.result} after ${ux.ms.toFixed(0)} ms; ${brief(us)}`);
    assert.equal(ux.result, 'timeout', 'an unconnected socket hears nothing of the ICMP error');
    assert.equal(us.send_fentry?.peer, `${VIP4}:${DNS_PORT}`, 'fentry udp_sendmsg reads the destination from msg_name');
    assert.equal(us.ipvs_conn?.peer, `${b2.ip}:${DNS_PORT}`, 'the flow went to b2');
    assert.equal(us.icmp_err?.count, 1, '__udp4_lib_err still ran for it');
    assert.equal(us.icmp_err!.peer, `${VIP4}:${DNS_PORT}`);
    assert.equal(us.err_report, undefined, 'inet_sk_error_report: not for an unconnected socket');
    // dig alone takes 0.4-1.3 s to start and end in the TCG guest: a 5 s timeout tells "at once" from "waited".
    const d = dig(VIP4, 5);
    console.log(`[${KERNEL}] dig via the VIP to killed b2: ${d.ms.toFixed(0)} ms, exit ${d.status}: ${d.out.replace(/\n/g, ' | ')}`);
    assert.match(d.out, /connection refused/, 'dig reports the refusal');
    assert.ok(d.ms < 4000, `dig did not wait for its 5 s timeout (${d.ms.toFixed(0)} ms)`);
    await topo.start('b2');
  });

  test('4: a black-holed backend — nothing comes back: only a deadline can tell', async () => {
    facts.clear();
    topo.only('b3');
    topo.blackhole('b3', true);
    const b3 = topo.backend('b3');
    const flow = await UdpFlow.open(VIP4);
    const xs = [await flow.exchange(0x400, 1500), await flow.exchange(0x401, 1500)];
    flow.close();
    const s = facts.of(2, flow.localPort);
    console.log(`[${KERNEL}] black-holed flow ${flow.localPort}: ${xs.map((x) => `${x.result} ${x.ms.toFixed(0)} ms`).join(', ')}; ${brief(s)}`);
    assert.deepEqual(xs.map((x) => x.result), ['timeout', 'timeout'], 'no answer and no error');
    assert.equal(s.ipvs_conn?.peer, `${b3.ip}:${DNS_PORT}`, 'the flow went to b3');
    assert.equal(s.send_fentry?.count, 2, 'both datagrams left');
    for (const h of ['cg_ingress', 'enqueue', 'icmp_err', 'icmp_err_kprobe', 'err_report', 'recv_len'] as const) assert.equal(s[h], undefined, `${h}: nothing for a black-holed flow`);
    const d = dig(VIP4, 1);
    console.log(`[${KERNEL}] dig via the VIP to black-holed b3: ${d.ms.toFixed(0)} ms, exit ${d.status}: ${d.out.replace(/\n/g, ' | ')}`);
    assert.match(d.out, /timed out/, 'dig times out');
    assert.ok(d.ms >= 1000, 'after its full timeout');
    topo.blackhole('b3', false);
    for (const b of topo.backends) topo.weight(b.name, 1);
    if (DEBUG) console.log(execFileSync('ipvsadm', ['-Lnc'], { encoding: 'utf8' }));
  });
});
