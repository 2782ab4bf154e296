// Which BPF hooks see what of a UDP flow through IPVS — proven on Debian 5.10, 6.1 and 6.12 (issue 13's groundwork;
// the facts are kept in docs/udp.md). bpf/lab/udpfacts.bpf.c counts, per client socket (its local port) and per
// hook, what each candidate hook saw (read by ./udpfacts.ts); the flows are real: Node's dgram on connected and
// unconnected sockets, a send-only Python client, dig (./dns-client.ts), and Debian's dnsmasq as the backends of the
// lab topology's UDP services (scripts/lab/topology.sh --udp 53, through src/lab/topology.ts).
//   1. kprobe ip_vs_conn_new fires once per new UDP flow (not per datagram), inside the first udp_sendmsg, with the
//      real destination IPVS chose.
//   2. fentry/fexit udp_sendmsg and udpv6_sendmsg see every datagram with the socket and the VIP as destination;
//      cgroup_skb egress sees none of them (IPVS re-sends the NATed datagram without its socket) though it sees a
//      direct one; the replies reach cgroup_skb ingress and __udp_enqueue_schedule_skb from the VIP, reverse-NATed;
//      per-flow counters fit in the socket's own storage (bpf/lab/udpflows.bpf.c) on 6.1 and 6.12.
//   3. a killed backend: ICMP port unreachable, translated by IPVS (outer source and quoted destination are the
//      VIP), reaches __udp4_lib_err and, on 6.1 and 6.12, tracepoint inet_sk_error_report; the connected socket gets
//      ECONNREFUSED at once (a send-only one on its next send), dig says "connection refused". ICMPv6: 6.12 only.
//   4. a black-holed backend: nothing at all comes back — only a deadline can tell.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { LibbpfError, openBpfObject } from '../../src/native/bpf';
import { bpfObjectPath } from '../../src/common/paths';
import { cgroup2Root } from '../../src/common/cgroup';
import { Topology } from '../../src/lab/topology';
import { DnsSocket, dig, sendOnly } from './dns-client';
import { Facts, Hook, brief } from './udpfacts';
import { waitFor } from '../helpers';

const KERNEL = process.env.VIPGUARD_LAB_KERNEL;
const SKIP = KERNEL && KERNEL !== 'host' ? false : 'needs IPVS, kprobes and fentry: runs inside the lab VM';
const DEBUG = !!process.env.VIPGUARD_TEST_DEBUG;
const DNS_PORT = 53;

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

/** One IPVS UDP connection entry per client port: `ipvsadm -Lnc` (an independent reader of the kernel). */
function ipvsUdpDestination(clientPort: number): string[] {
  return execFileSync('ipvsadm', ['-Lnc'], { encoding: 'utf8' }).split('\n').map((l) => l.trim().split(/\s+/))
    .filter((f) => f[0] === 'UDP' && (f[3].endsWith(`:${clientPort}`))).map((f) => f[5]);
}

describe('UDP through IPVS: which hooks see what', { skip: SKIP }, () => {
  let topo: Topology;
  let vip4 = '';
  let vip6 = '';
  let facts: Facts;
  let statsBefore = '';
  /** an answer is the address of the backend that served it */
  const answeredByBackend = (result: string) => topo.backends.some((b) => b.ip === result);
  /** new flows go to `name` only */
  const only = async (name: string) => { for (const b of topo.backends) await topo.weight(b.name, b.name === name ? 1 : 0); };

  before(async () => {
    topo = await Topology.up({ backends: ['healthy', 'healthy', 'healthy'], udpPort: DNS_PORT });
    vip4 = topo.vip.host;
    assert.ok(topo.vip6, 'the topology\'s IPv6 side');
    vip6 = topo.vip6.host;
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
    const flows: { family: 2 | 10; flow: DnsSocket }[] = [];
    const QUERIES = 4;
    for (const [family, vip] of [[2, vip4], [2, vip4], [2, vip4], [10, vip6]] as const) {
      const flow = await DnsSocket.open(vip, DNS_PORT);
      for (let i = 0; i < QUERIES; i++) {
        const x = await flow.exchange(0x100 + i, 3000);
        assert.ok(answeredByBackend(x.result), `flow ${flow.localPort}: query ${i} answered by a backend (got ${x.result})`);
      }
      flows.push({ family, flow });
    }
    const calls1 = facts.calls();
    const dests: string[] = [];
    for (const { family, flow } of flows) {
      const s = facts.of(family, flow.localPort);
      const vip = family === 2 ? `${vip4}:${DNS_PORT}` : `[${vip6}]:${DNS_PORT}`;
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
      for (const vip of [vip4, vip6]) {
        const flow = await DnsSocket.open(vip, DNS_PORT);
        for (let i = 0; i < 3; i++) {
          const x = await flow.exchange(0x500 + i, 3000);
          assert.ok(answeredByBackend(x.result), `${vip}: query ${i} answered by a backend (got ${x.result})`);
        }
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
    const flow = await DnsSocket.open(b1.ip, DNS_PORT);
    const x = await flow.exchange(0x200, 3000);
    flow.close();
    assert.equal(x.result, b1.ip);
    const s = facts.of(2, flow.localPort);
    console.log(`[${KERNEL}] direct flow ${flow.localPort}: ${brief(s)}`);
    assert.equal(s.cg_egress?.count, 1, 'egress saw the direct datagram');
    assert.equal(s.cg_egress!.peer, `${b1.ip}:${DNS_PORT}`);
    assert.equal(s.ipvs_conn, undefined, 'no IPVS connection for a direct flow');
  });

  test('3: a killed backend — ICMP port unreachable, as from the VIP, reaches the connected socket: ECONNREFUSED at once', async (t) => {
    t.after(() => topo.reset()); // b2 answering again and every backend at weight 1, whatever happens here
    facts.clear();
    await only('b2');
    await topo.set('b2', 'refuse'); // its dnsmasq killed: the namespace answers ICMP port unreachable
    const b2 = topo.backend('b2');
    for (const [family, vip, backend] of [[2, vip4, b2.ip], [10, vip6, b2.ip6!]] as const) {
      const flow = await DnsSocket.open(vip, DNS_PORT);
      const x = await flow.exchange(0x300, 2000);
      flow.close();
      const s = facts.of(family, flow.localPort);
      const v = family === 2 ? `${vip4}:${DNS_PORT}` : `[${vip6}]:${DNS_PORT}`;
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
        assert.equal(s[h]!.other.replace(/:0$/, ''), family === 2 ? vip4 : `[${vip6}]`, `${h}: and comes from the VIP`);
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
    const u = await DnsSocket.open(vip4, DNS_PORT, { connected: false });
    const ux = await u.exchange(0x310, 1500);
    u.close();
    const us = facts.of(2, u.localPort);
    console.log(`[${KERNEL}] refused, unconnected ${u.localPort}: client ${ux.result} after ${ux.ms.toFixed(0)} ms; ${brief(us)}`);
    assert.equal(ux.result, 'timeout', 'an unconnected socket hears nothing of the ICMP error');
    assert.equal(us.send_fentry?.peer, `${vip4}:${DNS_PORT}`, 'fentry udp_sendmsg reads the destination from msg_name');
    assert.equal(us.ipvs_conn?.peer, `${b2.ip}:${DNS_PORT}`, 'the flow went to b2');
    assert.equal(us.icmp_err?.count, 1, '__udp4_lib_err still ran for it');
    assert.equal(us.icmp_err!.peer, `${vip4}:${DNS_PORT}`);
    assert.equal(us.err_report, undefined, 'inet_sk_error_report: not for an unconnected socket');
    // A client that only sends (a log or metric shipper) learns of the refusal on its next send: sendmsg returns
    // the pending sk_err (sock_alloc_send_pskb -> sock_error) and clears it, so the send after that succeeds.
    const so = sendOnly(vip4, DNS_PORT, 3, 300);
    const ss = facts.of(2, so.localPort);
    console.log(`[${KERNEL}] refused, send-only ${so.localPort}: sends ${so.sends.join(', ')}; ${brief(ss)}`);
    assert.deepEqual(so.sends, ['ok', 'ECONNREFUSED', 'ok'], 'the second send fails with ECONNREFUSED, the third goes out again');
    assert.equal(ss.send_fexit?.count, 3);
    assert.equal(ss.icmp_err?.count, 2, 'one ICMP error per datagram that reached b2 (the first and the third)');
    if (facts.attached.includes('uf_send_length')) assert.equal(ss.send_len?.count, 3);
    assert.equal(ss.send_fexit!.retError, true, 'fexit udp_sendmsg saw the refused send (-ECONNREFUSED)');
    assert.ok(ss.send_fexit!.ret > 0, 'and the last send go out');
    // dig alone takes 0.4-1.3 s to start and end in the TCG guest: a 5 s timeout tells "at once" from "waited".
    const d = dig(vip4, DNS_PORT, 5);
    console.log(`[${KERNEL}] dig via the VIP to killed b2: ${d.ms.toFixed(0)} ms, exit ${d.status}: ${d.out.replace(/\n/g, ' | ')}`);
    assert.match(d.out, /connection refused/, 'dig reports the refusal');
    assert.ok(d.ms < 4000, `dig did not wait for its 5 s timeout (${d.ms.toFixed(0)} ms)`);
  });

  test('4: a black-holed backend — nothing comes back: only a deadline can tell', async (t) => {
    t.after(() => topo.reset());
    facts.clear();
    await only('b3');
    await topo.set('b3', 'blackhole'); // nft drops what is addressed to it inside its namespace
    const b3 = topo.backend('b3');
    const flow = await DnsSocket.open(vip4, DNS_PORT);
    const xs = [await flow.exchange(0x400, 1500), await flow.exchange(0x401, 1500)];
    flow.close();
    const s = facts.of(2, flow.localPort);
    console.log(`[${KERNEL}] black-holed flow ${flow.localPort}: ${xs.map((x) => `${x.result} ${x.ms.toFixed(0)} ms`).join(', ')}; ${brief(s)}`);
    assert.deepEqual(xs.map((x) => x.result), ['timeout', 'timeout'], 'no answer and no error');
    assert.equal(s.ipvs_conn?.peer, `${b3.ip}:${DNS_PORT}`, 'the flow went to b3');
    assert.equal(s.send_fentry?.count, 2, 'both datagrams left');
    for (const h of ['cg_ingress', 'enqueue', 'icmp_err', 'icmp_err_kprobe', 'err_report', 'recv_len'] as const) assert.equal(s[h], undefined, `${h}: nothing for a black-holed flow`);
    const d = dig(vip4, DNS_PORT, 1);
    console.log(`[${KERNEL}] dig via the VIP to black-holed b3: ${d.ms.toFixed(0)} ms, exit ${d.status}: ${d.out.replace(/\n/g, ' | ')}`);
    assert.match(d.out, /timed out/, 'dig times out');
    assert.ok(d.ms >= 1000, 'after its full timeout');
    if (DEBUG) console.log(execFileSync('ipvsadm', ['-Lnc'], { encoding: 'utf8' }));
  });
});
