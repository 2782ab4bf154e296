// The receiver on real IPVS (runs inside the lab VM on 5.10, 6.1, 6.12): the original prototype's four
// scenarios — direct, accepted, refused, not responding — with values asserted in order, then the behaviour the
// product is built on: a connect pending on a black-holed backend is rescued onto a healthy one at its next SYN
// retransmit once the dead destination's weight is 0 (net.ipv4.vs.expire_nodest_conn=1), and not without it.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Topology } from '../../src/lab/topology';
import { Receiver } from '../../src/receiver/receiver';
import { formatHook } from '../../src/receiver/hooks';
import { Attempt, Connection, LifecycleSink } from '../../src/receiver/lifecycle';
import { KernelEvent, TcpState, stateName } from '../../src/receiver/events';
import { IpvsClient } from '../../src/actuator/ipvs';
import { ReceiverTelemetry } from '../../src/receiver/telemetry';
import { DEFAULT_EXPORT, metricExporter, encodedTraceExporter } from '../../src/telemetry/export';
import { OtlpServer } from '../../src/otlp/server';
import { FlatPoint, FlatSpan, flattenMetrics, flattenSpans } from '../../src/otlp/model';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { REPO_ROOT } from '../../src/common/paths';
import { waitFor } from '../helpers';

const KERNEL = process.env.VIPGUARD_LAB_KERNEL;
const SKIP = KERNEL && KERNEL !== 'host' ? false : 'needs IPVS and kprobes: runs inside the lab VM';
const NODEST = '/proc/sys/net/ipv4/vs/expire_nodest_conn';

interface Capture {
  events: KernelEvent[];
  attempts: Attempt[];
  connections: Connection[];
}

function connectOnce(host: string, port: number, opts: { waitMs: number; send?: string }): Promise<{ kind: string; ms: number; localPort?: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect({ host, port });
    const done = (kind: string) => {
      clearTimeout(timer);
      const localPort = s.localPort;
      if (kind !== 'connected' || !opts.send) s.destroy();
      resolve({ kind, ms: Date.now() - t0, localPort });
    };
    const timer = setTimeout(() => done('pending'), opts.waitMs);
    s.once('connect', () => {
      if (opts.send) s.write(opts.send);
      done('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code === 'ECONNREFUSED' ? 'refused' : `error ${e.code}`));
    s.on('data', () => {});
  });
}

describe('receiver on real IPVS', { skip: SKIP }, () => {
  let topo: Topology;
  let receiver: Receiver;
  const cap: Capture = { events: [], attempts: [], connections: [] };
  const sink: LifecycleSink = {
    attemptEnded: (a) => cap.attempts.push(a),
    connectionStarted: () => {},
    connectionEnded: (c) => cap.connections.push(c),
  };
  let nodestBefore = '';
  let ipvs: IpvsClient;

  before(async () => {
    nodestBefore = fs.readFileSync(NODEST, 'utf8').trim();
    topo = await Topology.up({ backends: ['healthy', 'refuse', 'blackhole'] });
    ipvs = await IpvsClient.open();
    receiver = new Receiver({
      services: [{ name: 'web', address: topo.vip.host, port: topo.vip.port }, { name: 'web6', address: topo.vip6!.host, port: topo.vip6!.port }],
      traceAll: true, sinks: [sink], onEvent: (e) => cap.events.push(e),
    });
    for (const { line } of receiver.describeHooks()) console.log(`[${KERNEL}] ${line}`);
  });

  after(async () => {
    receiver?.close();
    ipvs?.close();
    fs.writeFileSync(NODEST, nodestBefore);
    await topo?.down();
  });

  /** Sets a backend's weight in both services over netlink: milliseconds, where the shell fixture takes ~0.3 s under TCG. */
  async function weight(name: string, w: number): Promise<void> {
    const b = topo.backend(name);
    await ipvs.setDestinationWeight(`tcp/${topo.vip.host}:${topo.vip.port}`, `${b.ip}:${b.port}`, w);
    await ipvs.setDestinationWeight(`tcp/[${topo.vip6!.host}]:${topo.vip6!.port}`, `[${b.ip6}]:${b.port}`, w);
  }

  /** Only backend `name` gets new connections. */
  async function only(name: string): Promise<void> {
    for (const b of topo.backends) await weight(b.name, b.name === name ? 1 : 0);
  }

  function socketEvents(localPort: number | undefined, dstPort: number): KernelEvent[] {
    const sk = cap.events.find((e) => e.src.port === localPort && e.dst.port === dstPort)?.sk;
    assert.ok(sk !== undefined, `no events for local port ${localPort}`);
    return cap.events.filter((e) => e.sk === sk && e.dst.port === dstPort);
  }

  const brief = (e: KernelEvent) => `${e.kind}:${e.kind === 'ipvs_conn' ? `${e.backend?.addr}:${e.backend?.port}` : `${stateName(e.oldState)}>${stateName(e.newState)}`}`;

  const ICMP_HOOKS = ['vg_udp_error_report', 'vg_udp4_lib_err'];
  // sock:inet_sk_error_report arrived in 5.14: 5.10 falls back to fentry on the IPv4 error handler.
  const ICMP_HOOK = KERNEL === '5.10' ? 'vg_udp4_lib_err' : 'vg_udp_error_report';
  const UDP_HOOKS = ['vg_udp_sendmsg', 'vg_udpv6_sendmsg', 'vg_udp_reply', 'vg_udp_destroy_sock', 'vg_udpv6_destroy_sock', ICMP_HOOK];
  const hookState = (program: string) => {
    const h = receiver.hooks.find((x) => x.program === program);
    return h?.active ? 'active' : h?.standby ? 'standby' : 'inactive';
  };

  // How ip_vs_conn_new is hooked on each kernel — a kernel fact, from the kernels' own configs: kprobe.multi needs
  // fprobe (5.18+, CONFIG_FPROBE), which Debian 6.12 has and Debian 12's 6.1 lacks ("# CONFIG_FPROBE is not set"); 5.10
  // predates it. The other program of the pair is 'unused'.
  const IPVS_HOOKS = ['vg_ip_vs_conn_new_multi', 'vg_ip_vs_conn_new'];
  const IPVS_HOOK: Record<string, string> = { '5.10': 'vg_ip_vs_conn_new', '6.1': 'vg_ip_vs_conn_new', '6.12': 'vg_ip_vs_conn_new_multi' };

  test('every TCP hook is active, including ip_vs_conn_new and the RST observer; with no UDP service the UDP hooks wait on standby', () => {
    for (const h of receiver.hooks) {
      if (UDP_HOOKS.includes(h.program)) assert.equal(hookState(h.program), 'standby', `${h.hook}: ${h.reason}`);
      else if (ICMP_HOOKS.includes(h.program)) assert.equal(h.unused, true, `${h.hook}: the ICMP hook this kernel does not need is 'unused' (${h.reason})`);
      else if (IPVS_HOOKS.includes(h.program) && h.program !== IPVS_HOOK[KERNEL!]) assert.equal(h.unused, true, `${h.hook}: not this kernel's way (${h.reason})`);
      else assert.equal(h.active, true, `${h.hook}: ${h.reason}`);
    }
    assert.equal(receiver.tracesUdp, false);
  });

  test('the TCP tracepoints are tp_btf (BPF links: no tracefs, no perf_event_open); ip_vs_conn_new is hooked the way this kernel allows', () => {
    for (const p of ['vg_inet_sock_set_state', 'vg_tcp_retransmit_skb', 'vg_tcp_receive_reset']) {
      const h = receiver.hooks.find((x) => x.program === p);
      assert.match(h?.hook ?? '', /^tp_btf /, `${p}: ${h?.hook}`);
    }
    const ipvs = receiver.hooks.find((x) => IPVS_HOOKS.includes(x.program) && x.active);
    assert.equal(ipvs?.program, IPVS_HOOK[KERNEL!], `ip_vs_conn_new on ${KERNEL}: ${receiver.hooks.filter((x) => IPVS_HOOKS.includes(x.program)).map(formatHook).join('; ')}`);
    console.log(`# kernel ${KERNEL}: ${receiver.hooks.filter((x) => IPVS_HOOKS.includes(x.program) || x.program === 'vg_inet_sock_set_state').map(formatHook).join('; ')}`);
  });

  test('the UDP hooks attach with the first UDP service and detach with the last: a UDP flow is traced only in between', async () => {
    const tcp = [{ name: 'web', address: topo.vip.host, port: topo.vip.port }, { name: 'web6', address: topo.vip6!.host, port: topo.vip6!.port }];
    const dns = { name: 'dns', address: topo.vip.host, port: 5300, protocol: 'udp' as const };
    /** One datagram from a connected socket to the UDP service's address and port (routed into the lab's server namespace), then close: whether its flow's end was traced. */
    const flowTraced = async (): Promise<boolean> => {
      const sock = dgram.createSocket('udp4');
      await new Promise<void>((resolve, reject) => sock.connect(dns.port, dns.address, (e?: Error) => (e ? reject(e) : resolve())));
      const localPort = sock.address().port;
      await new Promise<void>((resolve, reject) => sock.send(Buffer.from('vipguard'), (e) => (e ? reject(e) : resolve())));
      await new Promise<void>((resolve) => sock.close(resolve));
      const seen = () => cap.events.some((e) => e.kind === 'udp_end' && e.src.port === localPort && e.dst.port === dns.port);
      // The end event is in the ring buffer by the time close() returns (udp_destroy_sock runs inside it); 2 s cover
      // the event loop's delivery under TCG.
      await waitFor(seen, 2000, 'udp_end').catch(() => undefined);
      return seen();
    };
    try {
      assert.equal(await flowTraced(), false, 'no UDP service: the datagram ran no receiver program');
      receiver.setServices([...tcp, dns]);
      for (const p of UDP_HOOKS) assert.equal(hookState(p), 'active', `${p} attached with the UDP service: ${receiver.hooks.find((h) => h.program === p)?.reason}`);
      assert.equal(receiver.tracesUdp, true);
      assert.equal(await flowTraced(), true, 'with the UDP service configured its flow is traced to its end');
    } finally {
      receiver.setServices(tcp);
    }
    for (const p of UDP_HOOKS) assert.equal(hookState(p), 'standby', `${p} detached with the last UDP service`);
    assert.equal(await flowTraced(), false, 'after the last UDP service went, nothing is traced again');
    for (const h of receiver.hooks) if (!UDP_HOOKS.includes(h.program) && !ICMP_HOOKS.includes(h.program) && !(IPVS_HOOKS.includes(h.program) && h.unused)) assert.equal(h.active, true, `${h.hook} untouched`);
  });

  test('direct connection to a backend: lifecycle, no IPVS information', async () => {
    const b1 = topo.backend('b1');
    const r = await connectOnce(b1.ip, b1.port, { waitMs: 3000 });
    assert.equal(r.kind, 'connected');
    await waitFor(() => cap.events.some((e) => e.src.port === r.localPort && e.newState === TcpState.ESTABLISHED), 3000, 'Established');
    const evs = socketEvents(r.localPort, b1.port);
    assert.deepEqual(evs.slice(0, 2).map(brief), ['state:CLOSE>SYN_SENT', 'state:SYN_SENT>ESTABLISHED']);
    assert.ok(evs.every((e) => e.kind !== 'ipvs_conn' && !e.backend), 'no backend for a direct connection');
    assert.equal(evs[0].dst.addr, b1.ip);
  });

  test('accepted through IPVS: SynSent, the backend IPVS chose, Established, CloseWait when the server closes', async () => {
    await only('b1');
    const b1 = topo.backend('b1');
    const attMark = cap.attempts.length;
    const r = await connectOnce(topo.vip.host, topo.vip.port, { waitMs: 3000, send: 'GET / HTTP/1.0\r\n\r\n' });
    assert.equal(r.kind, 'connected');
    await waitFor(() => socketEvents(r.localPort, topo.vip.port).some((e) => e.newState === TcpState.CLOSE_WAIT), 5000, 'CloseWait');
    const evs = socketEvents(r.localPort, topo.vip.port);
    assert.deepEqual(evs.slice(0, 4).map(brief), [
      'state:CLOSE>SYN_SENT', `ipvs_conn:${b1.ip}:${b1.port}`, 'state:SYN_SENT>ESTABLISHED', 'state:ESTABLISHED>CLOSE_WAIT',
    ]);
    assert.equal(evs[0].src.port, 0, 'SynSent before the source port is bound');
    assert.equal(evs[1].src.port, r.localPort, 'ip_vs_conn_new matched the socket by its 4-tuple');
    assert.equal(evs[2].backend?.addr, b1.ip, 'Established carries the real backend');
    assert.equal(evs[2].backend?.port, b1.port);
    assert.equal(evs[0].dst.addr, topo.vip.host, 'the socket still names the virtual service');
    const a = cap.attempts.slice(attMark).find((x) => x.socket.src.port === r.localPort)!;
    assert.equal(a.outcome, 'established');
    assert.equal(a.backend?.addr, b1.ip);
    assert.equal(a.socket.service, 'web');
  });

  test('refused: a reset from the real backend, then SynSent->Close with ECONNREFUSED', async () => {
    await only('b2');
    const b2 = topo.backend('b2');
    const mark = cap.events.length;
    const attMark = cap.attempts.length;
    const r = await connectOnce(topo.vip.host, topo.vip.port, { waitMs: 3000 });
    assert.equal(r.kind, 'refused');
    let evs: KernelEvent[] = [];
    await waitFor(() => {
      const reset = cap.events.slice(mark).find((e) => e.dst.port === topo.vip.port && e.kind === 'reset');
      evs = reset ? cap.events.slice(mark).filter((e) => e.sk === reset.sk && e.dst.port === topo.vip.port) : [];
      // The kernel may reuse the address of a socket that closed a moment ago: start at this one's SynSent.
      evs = evs.slice(Math.max(0, evs.findIndex((e) => e.kind === 'state' && e.oldState === TcpState.CLOSE && e.newState === TcpState.SYN_SENT)));
      return evs.some((e) => e.newState === TcpState.CLOSE);
    }, 3000, 'the reset and the close');
    // rst_in: the RST seen arriving at cgroup_skb ingress (already carrying the VIP), before the socket takes it.
    assert.deepEqual(evs.map(brief), ['state:CLOSE>SYN_SENT', `ipvs_conn:${b2.ip}:${b2.port}`, 'rst_in:SYN_SENT>SYN_SENT', 'reset:SYN_SENT>SYN_SENT', 'state:SYN_SENT>CLOSE']);
    assert.ok(evs[2].src.port > 0 && evs[2].src.port === evs[3].src.port, 'rst_in carries the socket\'s source port, as the reset does');
    assert.equal(evs[2].dst.addr, topo.vip.host);
    assert.equal(evs[4].skErr, 111, 'ECONNREFUSED left on the socket');
    assert.equal(cap.attempts.slice(attMark).filter((x) => x.socket.sk === evs[0].sk).length, 1, 'one refused attempt, not one per hook');
    const a = cap.attempts.slice(attMark).find((x) => x.socket.sk === evs[0].sk)!;
    assert.equal(a.outcome, 'refused');
    assert.equal(a.backend?.addr, b2.ip);
  });

  test('not responding: SYN retransmits to the backend, then SynSent->Close when the client gives up', async () => {
    await only('b3');
    const b3 = topo.backend('b3');
    const mark = cap.events.length;
    const attMark = cap.attempts.length;
    const r = await connectOnce(topo.vip.host, topo.vip.port, { waitMs: 1600 });
    assert.equal(r.kind, 'pending');
    let evs: KernelEvent[] = [];
    await waitFor(() => {
      const retx = cap.events.slice(mark).find((e) => e.kind === 'retransmit' && e.dst.port === topo.vip.port);
      evs = retx ? cap.events.slice(mark).filter((e) => e.sk === retx.sk && e.dst.port === topo.vip.port) : [];
      return evs.some((e) => e.newState === TcpState.CLOSE);
    }, 3000, 'the retransmit and the close');
    assert.deepEqual(evs.map(brief), ['state:CLOSE>SYN_SENT', `ipvs_conn:${b3.ip}:${b3.port}`, 'retransmit:SYN_SENT>SYN_SENT', 'state:SYN_SENT>CLOSE']);
    assert.equal(evs[2].backend?.addr, b3.ip, 'the retransmit names the backend');
    assert.equal(evs[2].synRetransmits, 1);
    await waitFor(() => cap.attempts.slice(attMark).some((x) => x.socket.sk === evs[0].sk && x.final), 3000, 'the final attempt');
    const atts = cap.attempts.slice(attMark).filter((x) => x.socket.sk === evs[0].sk);
    assert.deepEqual(atts.map((x) => `${x.index}:${x.outcome}:${x.backend?.addr}`), [`0:unanswered:${b3.ip}`, `1:abandoned:${b3.ip}`]);
    const firstMs = Number(atts[0].endNs - atts[0].startNs) / 1e6;
    assert.ok(firstMs > 900 && firstMs < 1500, `first SYN unanswered after the 1 s initial RTO, got ${firstMs} ms`);
  });

  test('IPv6 through IPVS: accepted, with the IPv6 backend', async () => {
    await only('b1');
    const b1 = topo.backend('b1');
    const attMark = cap.attempts.length;
    const r = await connectOnce(topo.vip6!.host, topo.vip6!.port, { waitMs: 3000 });
    assert.equal(r.kind, 'connected');
    await waitFor(() => cap.attempts.slice(attMark).some((a) => a.socket.src.port === r.localPort && a.socket.family === 6), 3000, 'the IPv6 attempt');
    const a = cap.attempts.slice(attMark).find((x) => x.socket.src.port === r.localPort && x.socket.family === 6)!;
    assert.equal(a.outcome, 'established');
    assert.equal(a.backend?.addr, b1.ip6);
    assert.equal(a.socket.service, 'web6');
  });

  test('`vipguard trace` with no argument traces the virtual services the kernel lists, with the backend IPVS chose', async () => {
    await only('b1');
    const b1 = topo.backend('b1');
    const vip = `${topo.vip.host}:${topo.vip.port}`;
    const p = spawn(process.execPath, [path.join(REPO_ROOT, 'dist/src/cli/main.js'), 'trace', '--json', '--duration', '60'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: string[] = [];
    const err: string[] = [];
    readline.createInterface({ input: p.stdout! }).on('line', (l) => out.push(l));
    readline.createInterface({ input: p.stderr! }).on('line', (l) => err.push(l));
    const exited = new Promise<number | null>((resolve) => p.once('exit', (code) => resolve(code)));
    try {
      // The hook lines come once its receiver is attached (start-up takes seconds under TCG).
      await waitFor(() => err.some((l) => /ip_vs_conn_new/.test(l)) || p.exitCode !== null, 60_000, 'trace attached');
      const tracing = err.find((l) => /tracing the kernel's virtual services/.test(l));
      assert.ok(tracing?.includes(vip) && tracing.includes(`[${topo.vip6!.host}]:${topo.vip6!.port}`), `both services named: ${err.join(' | ')}`);
      const r = await connectOnce(topo.vip.host, topo.vip.port, { waitMs: 3000 });
      assert.equal(r.kind, 'connected');
      const mine = () => out.map((l) => JSON.parse(l) as { event: string; src: string; backend: string | null; service: string | null; outcome: string | null })
        .find((j) => j.event === 'attempt' && j.src.endsWith(`:${r.localPort}`));
      await waitFor(() => mine() !== undefined, 10_000, 'the attempt traced');
      const m = mine()!;
      assert.deepEqual({ service: m.service, backend: m.backend, outcome: m.outcome }, { service: vip, backend: `${b1.ip}:${b1.port}`, outcome: 'established' });
    } finally {
      const t0 = Date.now();
      if (p.exitCode === null) p.kill('SIGTERM');
      assert.equal(await exited, 0, `trace exits 0 on SIGTERM: ${err.join(' | ')}`);
      // A signal ends it now, not when --duration (60 s) is up.
      assert.ok(Date.now() - t0 < 20_000, `trace stopped ${Date.now() - t0} ms after SIGTERM`);
    }
    assert.match(err.join('\n'), /\d+ events, 0 lost/, 'a graceful stop prints its counters');
  });

  test('end to end over OTLP/gRPC: spans and metrics name the virtual service and the real backend', async () => {
    const spans: FlatSpan[] = [];
    const points: FlatPoint[] = [];
    const otlp = new OtlpServer({ listen: '127.0.0.1:0', onTraces: (r) => spans.push(...flattenSpans(r)), onMetrics: (r) => points.push(...flattenMetrics(r)) });
    const port = await otlp.start();
    const cfg = { ...DEFAULT_EXPORT, endpoint: `127.0.0.1:${port}`, spanDelayMs: 50, metricIntervalMs: 500 };
    const telemetry = new ReceiverTelemetry({
      spanExporters: [encodedTraceExporter(cfg)], metricExporter: metricExporter(cfg), metricIntervalMs: cfg.metricIntervalMs,
      spanDelayMs: cfg.spanDelayMs, maxQueueSize: cfg.maxQueueSize, maxBatchSize: cfg.maxBatchSize,
    });
    const otlpReceiver = new Receiver({ services: [{ name: 'web', address: topo.vip.host, port: topo.vip.port }], sinks: [telemetry], deadline: false });
    try {
      const b1 = topo.backend('b1');
      const b2 = topo.backend('b2');
      await only('b1');
      assert.equal((await connectOnce(topo.vip.host, topo.vip.port, { waitMs: 3000 })).kind, 'connected');
      await only('b2');
      assert.equal((await connectOnce(topo.vip.host, topo.vip.port, { waitMs: 3000 })).kind, 'refused');
      await waitFor(() => spans.some((s) => s.attributes['vipguard.outcome'] === 'refused') &&
        spans.some((s) => s.name === 'vipguard.connection'), 15_000, 'both handshakes and the connection over OTLP');
      const ok = spans.find((s) => s.name === 'vipguard.connect' && s.attributes['vipguard.outcome'] === 'established')!;
      assert.equal(ok.attributes['server.address'], topo.vip.host);
      assert.equal(ok.attributes['server.port'], topo.vip.port);
      assert.equal(ok.attributes['network.peer.address'], b1.ip);
      assert.equal(ok.attributes['network.peer.port'], b1.port);
      assert.equal(ok.attributes['vipguard.service'], 'web');
      const bad = spans.find((s) => s.attributes['vipguard.outcome'] === 'refused')!;
      assert.equal(bad.attributes['network.peer.address'], b2.ip);
      assert.equal(bad.attributes['error.type'], 'refused');
      await waitFor(() => points.some((p) => p.metric === 'vipguard.connect.attempts' && p.attributes['network.peer.address'] === b2.ip &&
        p.attributes['vipguard.outcome'] === 'refused'), 15_000, 'the refused attempt counted per backend');
    } finally {
      otlpReceiver.close();
      await telemetry.shutdown();
      await otlp.stop();
    }
  });

  /** The attempts of the connect from `localPort` since `attMark`, once it was established (a closed socket's kernel address is reused: the port tells them apart). */
  async function rescuedAttempts(attMark: number, localPort: number | undefined): Promise<{ sk: bigint; atts: Attempt[] }> {
    await waitFor(() => cap.attempts.slice(attMark).some((a) => a.socket.src.port === localPort && a.outcome === 'established'), 3000, 'the rescued attempt');
    const sk = cap.attempts.slice(attMark).find((a) => a.socket.src.port === localPort)!.socket.sk;
    return { sk, atts: cap.attempts.slice(attMark).filter((a) => a.socket.sk === sk && a.socket.src.port === localPort) };
  }

  for (const nodest of ['1', '0']) {
    test(`in-flight rescue with expire_nodest_conn=${nodest}: weight 0 on the dead backend ${nodest === '1' ? 'moves' : 'does not move'} a pending connect`, async () => {
      fs.writeFileSync(NODEST, nodest);
      await only('b3');
      const b1 = topo.backend('b1');
      const b3 = topo.backend('b3');
      const mark = cap.events.length;
      const attMark = cap.attempts.length;
      const pending = connectOnce(topo.vip.host, topo.vip.port, { waitMs: 2500 });
      await waitFor(() => cap.events.slice(mark).some((e) => e.kind === 'ipvs_conn' && e.backend?.addr === b3.ip), 2000, 'the SYN to the black hole');
      await weight('b1', 1);
      await weight('b3', 0);
      const r = await pending;
      if (nodest === '0') {
        assert.equal(r.kind, 'pending', 'without expire_nodest_conn the connect stays on the dead backend');
        return;
      }
      assert.equal(r.kind, 'connected', 'rescued onto the healthy backend');
      assert.ok(r.ms > 800 && r.ms < 1800, `completed at the first SYN retransmit (~1 s), got ${r.ms} ms`);
      const { sk, atts } = await rescuedAttempts(attMark, r.localPort);
      assert.deepEqual(atts.map((a) => `${a.index}:${a.outcome}:${a.backend?.addr}`), [`0:unanswered:${b3.ip}`, `1:established:${b1.ip}`],
        'an unanswered attempt on the dead backend, then one on the healthy one — never a success of the dead one');
      const evs = cap.events.slice(mark).filter((e) => e.sk === sk && e.dst.port === topo.vip.port).map(brief);
      // The reschedule (kprobe, while the SYN is transmitted) comes before the retransmit tracepoint (once it was
      // sent): the lifecycle relies on this order (src/receiver/lifecycle.ts).
      console.log(`[${KERNEL}] rescue event order: ${evs.join(' ')}`);
      assert.ok(evs.indexOf(`ipvs_conn:${b1.ip}:${b1.port}`) >= 0 && evs.indexOf(`ipvs_conn:${b1.ip}:${b1.port}`) < evs.indexOf('retransmit:SYN_SENT>SYN_SENT'),
        `the reschedule is reported before the retransmit tracepoint: ${evs.join(' ')}`);
      const resched = cap.events.slice(mark).find((e) => e.sk === sk && e.kind === 'ipvs_conn' && e.backend?.addr === b1.ip);
      assert.ok(resched?.rescheduled, 'the second ip_vs_conn_new is flagged as a reschedule');
      assert.equal(resched?.pid, 0, 'from the retransmit timer, not the process');
    });
  }

  test('a retransmit that went to the dead backend again, then one rescheduled: both unanswered on the dead backend, established on the healthy one', async () => {
    fs.writeFileSync(NODEST, '1');
    await only('b3');
    const b1 = topo.backend('b1');
    const b3 = topo.backend('b3');
    const attMark = cap.attempts.length;
    const mark = cap.events.length;
    const pending = connectOnce(topo.vip.host, topo.vip.port, { waitMs: 6000 });
    // SYN #1 (at ~1 s) goes to b3 again: IPVS keeps the entry while b3 is in service. Then b3 out, b1 in: SYN #2
    // (at ~3 s) is rescheduled to b1.
    await waitFor(() => cap.events.slice(mark).some((e) => e.kind === 'retransmit' && e.dst.port === topo.vip.port && e.synRetransmits === 1), 2500, 'SYN #1 to the black hole');
    await weight('b1', 1);
    await weight('b3', 0);
    const r = await pending;
    assert.equal(r.kind, 'connected', 'rescued onto the healthy backend at SYN #2');
    // SYN #2 leaves ~3 s after the connect (RTO 1 s, doubled), or ~2 s where the first SYN timeouts are linear
    // (net.ipv4.tcp_syn_linear_timeouts, 6.12 here: completed at 2051 ms in CI).
    assert.ok(r.ms > 1800 && r.ms < 4500, `completed at the second SYN retransmit (~2 or ~3 s), got ${r.ms} ms`);
    const { atts } = await rescuedAttempts(attMark, r.localPort);
    assert.deepEqual(atts.map((a) => `${a.index}:${a.outcome}:${a.backend?.addr}`), [`0:unanswered:${b3.ip}`, `1:unanswered:${b3.ip}`, `2:established:${b1.ip}`],
      'the dead backend\'s two SYNs unanswered on it; the healthy backend never blamed');
  });
});
