// Real IPVS on real kernels: runs inside the lab VM (npm run lab -- --kernel all -- node --test dist/test/lab/).
// Elsewhere it skips: the host kernel has no IPVS, and the lab run in CI is where these must pass.
//
// What it proves per kernel: ip_vs loads and starts empty; through a NAT-mode virtual service a connection to a
// healthy backend is established (and answers HTTP), to a refusing one ends in ECONNREFUSED, to a black-holed one
// stays pending with SYN retransmits; backends switch state at runtime; the hooks vipguard relies on fire
// (kprobe ip_vs_conn_new, sock:inet_sock_set_state, tcp:tcp_retransmit_skb, tcp:tcp_receive_reset).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Topology, type Endpoint } from '../../src/lab/topology';

const KERNEL = process.env.VIPGUARD_LAB_KERNEL;
const IN_LAB = !!KERNEL && KERNEL !== 'host';
const SKIP = IN_LAB ? false : 'needs IPVS: runs inside the lab VM (npm run lab -- --kernel all -- node --test dist/test/lab/)';
const TRACEFS = '/sys/kernel/tracing';

type Outcome = { kind: 'connected' | 'refused' | 'pending' | 'error'; ms: number; code?: string };

/** Connects and reports what happened within waitMs; a still-pending connect is destroyed after. */
function tryConnect(ep: Endpoint, waitMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const sock = net.connect({ host: ep.host, port: ep.port });
    const done = (o: Outcome) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => done({ kind: 'pending', ms: Date.now() - t0 }), waitMs);
    sock.once('connect', () => done({ kind: 'connected', ms: Date.now() - t0 }));
    sock.once('error', (err: NodeJS.ErrnoException) =>
      done({ kind: err.code === 'ECONNREFUSED' ? 'refused' : 'error', ms: Date.now() - t0, code: err.code }),
    );
  });
}

function httpGet(ep: Endpoint, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: ep.host, port: ep.port, path: '/', timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error(`GET http://${ep.host}:${ep.port}/ timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** TcpRetransSegs of this network namespace (the TCP MIB is shared by IPv4 and IPv6). */
function tcpRetransSegs(): number {
  const lines = fs.readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Tcp:'));
  const names = lines[0].split(/\s+/);
  const values = lines[1].split(/\s+/);
  return Number(values[names.indexOf('RetransSegs')]);
}

/** A private tracefs instance, so we neither see nor disturb anyone else's tracing. */
class Trace {
  readonly dir = `${TRACEFS}/instances/vipguard_lab_test`;
  private kprobes: string[] = [];
  private enabled: string[] = [];

  constructor() {
    if (fs.existsSync(this.dir)) fs.rmdirSync(this.dir);
    fs.mkdirSync(this.dir);
  }

  addKprobe(group: string, name: string, symbol: string): void {
    fs.appendFileSync(`${TRACEFS}/kprobe_events`, `p:${group}/${name} ${symbol}\n`);
    this.kprobes.push(`${group}/${name}`);
  }

  enable(event: string): void {
    fs.writeFileSync(`${this.dir}/events/${event}/enable`, '1');
    this.enabled.push(event);
  }

  clear(): void {
    fs.writeFileSync(`${this.dir}/trace`, '');
  }

  /** Trace lines of one event, e.g. "tcp_retransmit_skb". */
  lines(eventName: string): string[] {
    return fs
      .readFileSync(`${this.dir}/trace`, 'utf8')
      .split('\n')
      .filter((l) => !l.startsWith('#') && l.includes(` ${eventName}:`));
  }

  close(): void {
    for (const e of this.enabled) fs.writeFileSync(`${this.dir}/events/${e}/enable`, '0');
    fs.rmdirSync(this.dir);
    for (const k of this.kprobes) fs.appendFileSync(`${TRACEFS}/kprobe_events`, `-:${k}\n`);
  }
}

describe(`IPVS in the lab (kernel ${KERNEL ?? 'none'})`, { skip: SKIP }, () => {
  let topo: Topology | undefined;
  let trace: Trace | undefined;

  before(() => {
    trace = new Trace();
    trace.addKprobe('vipguard_lab', 'ip_vs_conn_new', 'ip_vs_conn_new');
    for (const e of ['sock/inet_sock_set_state', 'tcp/tcp_retransmit_skb', 'tcp/tcp_receive_reset']) trace.enable(e);
  });

  after(async () => {
    trace?.close();
    if (topo) await topo.down();
    else await Topology.downAny();
  });

  /** Only `name` gets new connections: rr skips destinations of weight 0. */
  async function only(name: string): Promise<void> {
    for (const b of topo!.backends) await topo!.weight(b.name, b.name === name ? 1 : 0);
  }

  test('ip_vs is loaded and the IPVS table is empty at start', () => {
    assert.ok(fs.existsSync('/sys/module/ip_vs'), 'ip_vs module not loaded');
    const table = execFileSync('ipvsadm', ['-Ln'], { encoding: 'utf8' });
    assert.match(table, /IP Virtual Server version/);
    const services = table.split('\n').filter((l) => /^(TCP|UDP|SCTP|FWM)\s/.test(l));
    assert.deepEqual(services, [], `expected no virtual services, got:\n${table}`);
  });

  test('the topology builds NAT services with one destination per backend', { timeout: 120_000 }, async () => {
    topo = await Topology.up({ backends: ['healthy', 'refuse', 'blackhole'] });
    assert.equal(topo.vip.host, '10.99.0.1');
    assert.ok(topo.vip6, 'IPv6 side missing');
    const table = execFileSync('ipvsadm', ['-Ln'], { encoding: 'utf8' });
    const masq = table.split('\n').filter((l) => /->\s.*\sMasq\s/.test(l));
    assert.equal(masq.length, 6, `3 Masq destinations per service expected:\n${table}`);
    assert.deepEqual(
      topo.backends.map((b) => `${b.name} ${b.state}`),
      ['b1 healthy', 'b2 refuse', 'b3 blackhole'],
    );
    // Routed, not local: a local VIP would become the connection's source and replies could not return.
    const local = execFileSync('ip', ['-o', 'addr', 'show'], { encoding: 'utf8' });
    assert.doesNotMatch(local, /10\.99\.0\.1\//);
  });

  for (const family of ['IPv4', 'IPv6'] as const) {
    const vip = () => (family === 'IPv4' ? topo!.vip : topo!.vip6!);

    test(`${family}: via the VIP a healthy backend is established and answers HTTP`, { timeout: 60_000 }, async () => {
      await only('b1');
      trace!.clear();
      trace!.enable('vipguard_lab/ip_vs_conn_new');
      try {
        const o = await tryConnect(vip(), 5000);
        assert.equal(o.kind, 'connected', `connect: ${JSON.stringify(o)}`);
        assert.equal(trace!.lines('ip_vs_conn_new').length, 1, 'kprobe ip_vs_conn_new: one hit per new IPVS connection');
      } finally {
        fs.writeFileSync(`${trace!.dir}/events/vipguard_lab/ip_vs_conn_new/enable`, '0');
      }
      assert.equal((await httpGet(vip(), 5000)).trim(), 'b1');
    });

    test(`${family}: via the VIP a refusing backend ends in ECONNREFUSED`, { timeout: 60_000 }, async () => {
      await only('b2');
      trace!.clear();
      const o = await tryConnect(vip(), 5000);
      assert.equal(o.kind, 'refused', `connect: ${JSON.stringify(o)}`);
      assert.ok(trace!.lines('tcp_receive_reset').length >= 1, 'tcp:tcp_receive_reset did not fire');
    });

    test(`${family}: via the VIP a black-holed backend stays pending with SYN retransmits`, { timeout: 60_000 }, async () => {
      await only('b3');
      trace!.clear();
      const before = tcpRetransSegs();
      // The first SYN retransmit comes after the initial RTO of 1 s.
      const o = await tryConnect(vip(), 1800);
      assert.equal(o.kind, 'pending', `connect: ${JSON.stringify(o)}`);
      assert.ok(o.ms >= 1500);
      assert.ok(tcpRetransSegs() - before >= 1, 'TcpRetransSegs did not grow');
      const retrans = trace!.lines('tcp_retransmit_skb');
      assert.ok(retrans.length >= 1, 'tcp:tcp_retransmit_skb did not fire');
      assert.ok(
        trace!.lines('inet_sock_set_state').some((l) => l.includes('TCP_SYN_SENT')),
        'sock:inet_sock_set_state did not report Close→SynSent',
      );
    });
  }

  test('backends switch state at runtime and back', { timeout: 120_000 }, async () => {
    const b1 = topo!.backend('b1');
    const direct = { host: b1.ip, port: b1.port };
    await only('b1');

    await topo!.set('b1', 'blackhole');
    assert.equal((await tryConnect(topo!.vip, 1500)).kind, 'pending');
    await topo!.set('b1', 'healthy');
    assert.equal((await tryConnect(topo!.vip, 5000)).kind, 'connected');

    await topo!.set('b1', 'refuse');
    assert.equal((await tryConnect(topo!.vip, 5000)).kind, 'refused');
    await topo!.set('b1', 'healthy');
    assert.equal((await httpGet(topo!.vip, 5000)).trim(), 'b1');

    await topo!.set('b1', 'slow', 400);
    assert.equal(topo!.backend('b1').state, 'slow 400');
    const slow = await tryConnect(direct, 5000);
    assert.equal(slow.kind, 'connected');
    assert.ok(slow.ms >= 380, `slow 400 ms connected after ${slow.ms} ms`);
    await topo!.set('b1', 'healthy');
    const fast = await tryConnect(direct, 5000);
    assert.equal(fast.kind, 'connected');
    assert.ok(fast.ms < 380, `healthy again but connect took ${fast.ms} ms`);
  });

  test('down removes everything it created', { timeout: 120_000 }, async () => {
    await topo!.down();
    topo = undefined;
    const table = execFileSync('ipvsadm', ['-Ln'], { encoding: 'utf8' });
    assert.doesNotMatch(table, /^TCP/m);
    assert.doesNotMatch(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }), /vg-srv/);
    assert.doesNotMatch(execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' }), /vg-cli/);
    const httpds = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('busybox httpd'));
    assert.deepEqual(httpds, []);
  });
});
