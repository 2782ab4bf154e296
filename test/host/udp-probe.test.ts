// The UDP restore probe against real servers on loopback: Debian's dnsmasq (provisioned as dnsmasq-base) on
// 127.0.0.1 and ::1 answering NOERROR, NXDOMAIN and REFUSED; a closed port, whose ICMP port unreachable must fail the
// probe at once rather than at the timeout; a bound socket that never answers; a UDP echo server. Every probe must
// leave no socket or timer behind. Nothing here needs root, and nothing leaves loopback.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as readline from 'node:readline';
import type { DestinationId } from '../../src/actuator/ipvs/identity';
import { UdpProbeResult, UdpProbeSpec, udpProbe } from '../../src/actuator/udp-probe';
import { freeUdpPort } from '../../src/common/ports';
import { waitFor } from '../helpers';

const DNSMASQ = '/usr/sbin/dnsmasq';
const LOOPBACKS = [{ family: 4, address: '127.0.0.1' }, { family: 6, address: '::1' }] as const;
const TIMEOUT_MS = 1000;

const dns = (name: string): UdpProbeSpec => ({ kind: 'dns', name });
const payload = (send: string, expect?: string): UdpProbeSpec =>
  ({ kind: 'payload', send: Buffer.from(send), ...(expect === undefined ? {} : { expect: Buffer.from(expect) }) });
const silence: UdpProbeSpec = { kind: 'silence' };

/**
 * The process's handles, sorted so that counts per kind compare (a probe's would show as Timeout and UDPWrap). A
 * closed socket stays listed until libuv's close phase ends the loop turn it was closed in (measured: it is still
 * there when dgram's 'close' event fires); two setImmediate turns are past that phase whichever phase closed it.
 */
async function resources(): Promise<string[]> {
  for (let turn = 0; turn < 2; turn++) await new Promise((r) => setImmediate(r));
  return process.getActiveResourcesInfo().slice().sort();
}

/** Runs probes and checks that the process holds exactly the handles it held before they started. */
async function leaving<T>(run: () => Promise<T>): Promise<T> {
  const before = await resources();
  const out = await run();
  assert.deepEqual(await resources(), before, 'a probe left a socket or timer behind');
  return out;
}

async function timed(dest: DestinationId, spec: UdpProbeSpec, timeoutMs = TIMEOUT_MS): Promise<UdpProbeResult & { ms: number }> {
  const t0 = performance.now();
  const r = await udpProbe(dest, spec, timeoutMs);
  return { ...r, ms: performance.now() - t0 };
}

/** A socket bound to an ephemeral loopback port; `reply` decides what it sends back to each datagram (nothing: undefined). */
async function server(family: 4 | 6, reply: (msg: Buffer) => Buffer | undefined): Promise<{ port: number; close: () => Promise<void> }> {
  const s = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
  s.on('message', (msg, from) => {
    const r = reply(msg);
    if (r) s.send(r, from.port, from.address);
  });
  await new Promise<void>((resolve, reject) => { s.once('error', reject); s.bind(0, family === 4 ? '127.0.0.1' : '::1', resolve); });
  return { port: s.address().port, close: () => new Promise((r) => s.close(() => r())) };
}

/**
 * dnsmasq under a watchdog shell that prints its PID, then kills it when our end of its stdin closes: on `after`, and
 * also when this process dies without running `after` (killed by the runner's timeout, or by EPIPE on a closed
 * stdout — that once left a dnsmasq behind). PR_SET_PDEATHSIG would be simpler, but does not hold for dnsmasq
 * (measured with `setpriv --pdeathsig KILL`: dnsmasq outlived a SIGKILLed parent; `sleep` under it did not).
 */
const WATCHDOG = '"$@" & echo $!; read _; kill $! 2>/dev/null; wait';

interface Dnsmasq { watchdog: ChildProcess; pid: number; port: number; log: string[] }

async function startDnsmasq(port: number): Promise<Dnsmasq | string> {
  const watchdog = spawn('sh', ['-c', WATCHDOG, 'sh', DNSMASQ,
    '--keep-in-foreground', '--log-facility=-', '--log-queries', '--conf-file=/dev/null', '--pid-file=',
    `--user=${os.userInfo().username}`, // stay who we are: no privileges to drop, and none needed at a high port
    '--no-resolv', '--no-hosts', // no upstream and no /etc/hosts: names not configured below are REFUSED
    `--port=${port}`, '--bind-interfaces', '--listen-address=127.0.0.1', '--listen-address=::1',
    '--address=/probe.test/10.0.0.1', // NOERROR with an answer
    '--address=/nx.test/', // NXDOMAIN
  ], { stdio: ['pipe', 'pipe', 'pipe'] });
  const log: string[] = [];
  let pid = 0;
  readline.createInterface({ input: watchdog.stdout! }).once('line', (l) => { pid = Number(l); });
  readline.createInterface({ input: watchdog.stderr! }).on('line', (l) => log.push(l));
  const d = { watchdog, pid, port, log };
  // dnsmasq logs "started" once its sockets are bound; an early exit is a port someone took meanwhile.
  await waitFor(() => (pid > 0 && log.some((l) => /started, version/.test(l))) || watchdog.exitCode !== null, 10_000, 'dnsmasq to start');
  if (watchdog.exitCode === null) return { ...d, pid };
  await stopDnsmasq(d);
  return log.join('\n');
}

async function stopDnsmasq(d: Dnsmasq): Promise<void> {
  if (d.pid > 0) { try { process.kill(d.pid, 'SIGTERM'); } catch { /* already gone */ } }
  if (d.watchdog.exitCode !== null || d.watchdog.signalCode !== null) return;
  const exited = new Promise((r) => d.watchdog.once('exit', r));
  d.watchdog.stdin!.end(); // the watchdog's `read` returns, it reaps dnsmasq and exits
  await exited;
}

describe('UDP restore probe on loopback', () => {
  let dnsmasq: Dnsmasq | undefined;
  let dnsPort = 0;
  let log: string[] = [];
  let silent: Awaited<ReturnType<typeof server>>[] = [];
  let echo: Awaited<ReturnType<typeof server>>[] = [];

  before(async () => {
    assert.ok(fs.existsSync(DNSMASQ), `${DNSMASQ} missing — run npm run provision (it installs dnsmasq-base)`);
    // The port is free a moment before dnsmasq binds it; if someone takes it in between, dnsmasq exits and we retry.
    const failures: string[] = [];
    for (let attempt = 1; !dnsmasq && attempt <= 3; attempt++) {
      const d = await startDnsmasq(await freeUdpPort());
      if (typeof d === 'string') failures.push(d);
      else dnsmasq = d;
    }
    assert.ok(dnsmasq, `dnsmasq did not start:\n${failures.join('\n---\n')}`);
    ({ port: dnsPort, log } = dnsmasq);
    silent = await Promise.all(LOOPBACKS.map((l) => server(l.family, () => undefined)));
    echo = await Promise.all(LOOPBACKS.map((l) => server(l.family, (m) => m)));
  });

  after(async () => {
    await Promise.all([...silent, ...echo].map((s) => s.close()));
    if (dnsmasq) await stopDnsmasq(dnsmasq);
  });

  for (const lo of LOOPBACKS) {
    const at = (port: number): DestinationId => ({ family: lo.family, address: lo.address, port });

    it(`dns: dnsmasq on ${lo.address} answers NOERROR, NXDOMAIN and REFUSED, and each means alive`, async () => {
      for (const [name, rcode] of [['www.probe.test', 'NOERROR'], ['gone.nx.test', 'NXDOMAIN'], ['other.example', 'REFUSED']]) {
        const r = await leaving(() => timed(at(dnsPort), dns(name)));
        assert.equal(r.ok, true, `${name}: ${r.reason}`);
        assert.match(r.reason, new RegExp(`^answered in [0-9.]+ ms \\(${rcode}\\)$`), name);
        assert.ok(r.ms < TIMEOUT_MS / 2, `${name} answered in ${r.ms} ms`);
      }
      const from = lo.family === 4 ? '127.0.0.1' : '::1';
      assert.ok(log.some((l) => l.includes(`query[A] www.probe.test from ${from}`)), `dnsmasq saw our A query from ${from}:\n${log.join('\n')}`);
    });

    it(`a closed port on ${lo.address} fails every kind at once with ICMP port unreachable`, async () => {
      const closed = await freeUdpPort();
      for (const spec of [dns('www.probe.test'), payload('ping'), silence]) {
        const r = await leaving(() => timed(at(closed), spec, 2 * TIMEOUT_MS));
        assert.equal(r.ok, false, `${spec.kind}: ${r.reason}`);
        assert.match(r.reason, /^ICMP port unreachable \(ECONNREFUSED\) after [0-9.]+ ms$/, spec.kind);
        assert.ok(r.ms < TIMEOUT_MS, `${spec.kind}: refused in ${r.ms.toFixed(1)} ms, not well under the ${2 * TIMEOUT_MS} ms timeout`);
      }
    });

    it(`a bound socket on ${lo.address} that never answers: dns and payload fail at the timeout, silence passes`, async () => {
      const dest = at(silent[lo.family === 4 ? 0 : 1].port);
      // In parallel: each must take the whole timeout, and three of them need not take three.
      const [d, p, s] = await leaving(() => Promise.all([timed(dest, dns('www.probe.test')), timed(dest, payload('ping')), timed(dest, silence)]));
      for (const [kind, r] of [['dns', d], ['payload', p]] as const) {
        assert.equal(r.ok, false, kind);
        assert.equal(r.reason, `no answer within ${TIMEOUT_MS} ms`, kind);
      }
      assert.equal(s.ok, true, s.reason);
      assert.match(s.reason, /^no ICMP error within 1000 ms/);
      for (const r of [d, p, s]) assert.ok(r.ms >= TIMEOUT_MS - 2 && r.ms < TIMEOUT_MS + 500, `settled after ${r.ms.toFixed(1)} ms`);
    });

    it(`payload: a UDP echo server on ${lo.address} answers; expect must be in the reply`, async () => {
      const dest = at(echo[lo.family === 4 ? 0 : 1].port);
      const plain = await leaving(() => timed(dest, payload('PING vipguard')));
      assert.equal(plain.ok, true, plain.reason);
      assert.match(plain.reason, /^answered in [0-9.]+ ms \(13 bytes\)$/);
      const wanted = await leaving(() => timed(dest, payload('PING vipguard', 'vipguard')));
      assert.equal(wanted.ok, true, wanted.reason);
      const wrong = await leaving(() => timed(dest, payload('PING vipguard', 'PONG')));
      assert.equal(wrong.ok, false);
      assert.match(wrong.reason, /^reply without the expected bytes \(13 bytes in [0-9.]+ ms\)$/);
      assert.ok(wrong.ms < TIMEOUT_MS / 2, 'the first reply decides, no waiting for a better one');
      const quiet = await leaving(() => timed(dest, silence));
      assert.equal(quiet.ok, true, 'silence: a reply is even better than silence');
      assert.ok(quiet.ms < TIMEOUT_MS / 2, quiet.reason);
    });

    it(`dns: a server on ${lo.address} that answers, but not DNS, fails the dns probe`, async () => {
      // The echo server sends our query back: right id, right question, but QR clear.
      const r = await leaving(() => timed(at(echo[lo.family === 4 ? 0 : 1].port), dns('www.probe.test')));
      assert.equal(r.ok, false);
      assert.equal(r.reason, 'not an answer to our DNS query: a DNS query (QR clear), not a response');
    });
  }

  it('20 dns probes at once each get their own answer (random ids, one socket each)', async () => {
    const rs = await leaving(() => Promise.all(Array.from({ length: 20 }, () => timed({ family: 4, address: '127.0.0.1', port: dnsPort }, dns('www.probe.test')))));
    assert.deepEqual(rs.filter((r) => !r.ok).map((r) => r.reason), []);
  });

  it('a destination connect() refuses fails with the reason, sends nothing, and does not throw', async () => {
    // An IPv4 address on a udp6 socket: connect() fails with EINVAL before any datagram exists.
    const mixed = await leaving(() => timed({ family: 6, address: '127.0.0.1', port: dnsPort }, dns('www.probe.test')));
    assert.equal(mixed.ok, false);
    assert.match(mixed.reason, /^connect failed: EINVAL after [0-9.]+ ms$/);
    // Port 0: IPVS lists such destinations (a port-less fwmark service), but UDP cannot send to it; dgram throws.
    const zero = await leaving(() => timed({ family: 4, address: '127.0.0.1', port: 0 }, silence));
    assert.equal(zero.ok, false);
    assert.match(zero.reason, /ERR_SOCKET_BAD_PORT/);
  });
});
