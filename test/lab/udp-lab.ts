// A UDP virtual service with Debian's dnsmasq as its backends, and a DNS client on a connected UDP socket — for lab
// tests inside the VM. Names (vgu-*) and addresses (10.201.0.0/24, 10.98.0.1, fd00:201::/64, fd00:98::1) are this
// fixture's own, apart from scripts/lab/topology.sh's TCP layout, after the same rules (KERNEL-NOTES.md): the VIP is
// routed via the client's veth, never a local address, and every address lives in a namespace created here.
//
//   root netns (client)                               netns vgu-srv
//   vgu-cli 10.201.0.1/24 fd00:201::1/64  <──veth──>  vgu-srv0: bN at 10.201.0.(N+1), fd00:201::(N+1), dnsmasq on :53
//   IPVS UDP 10.98.0.1:53 and [fd00:98::1]:53, NAT (masquerade), rr
//
// Each dnsmasq answers `who.vg.test A` with its own IPv4 address: the answer names the backend that served it.
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { spawnSync } from 'node:child_process';
import { Daemon, must, sleep } from './harness';

const NS = 'vgu-srv';
const CLI = 'vgu-cli';
const SRV = 'vgu-srv0';
const NFT = 'inet vgu_topology';
export const VIP4 = '10.98.0.1';
export const VIP6 = 'fd00:98::1';
export const DNS_PORT = 53;
export const NAME = 'who.vg.test';

export interface UdpBackend {
  name: string;
  ip: string;
  ip6: string;
}

/** Runs a command, ignoring its failure: for teardown, which must get as far as it can. */
function quietly(cmd: string, args: string[]): void {
  spawnSync(cmd, args, { stdio: 'ignore', timeout: 30_000 });
}

export class UdpTopology {
  readonly backends: UdpBackend[];
  private readonly daemons = new Map<string, Daemon>();

  private constructor(count: number) {
    this.backends = Array.from({ length: count }, (_, i) => ({ name: `b${i + 1}`, ip: `10.201.0.${i + 2}`, ip6: `fd00:201::${i + 2}` }));
  }

  backend(name: string): UdpBackend {
    const b = this.backends.find((x) => x.name === name);
    assert.ok(b, `no backend ${name}`);
    return b;
  }

  /** Builds the layout with `count` backends, all answering. Needs root, IPVS (ip_vs_rr), nftables, dnsmasq. */
  static async up(count = 3): Promise<UdpTopology> {
    const t = new UdpTopology(count);
    await UdpTopology.teardown(); // a run that died half-way left ours behind, never anyone else's
    must('ip', ['netns', 'add', NS]);
    must('ip', ['link', 'add', CLI, 'type', 'veth', 'peer', 'name', SRV, 'netns', NS]);
    must('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
    must('ip', ['addr', 'add', '10.201.0.1/24', 'dev', CLI]);
    must('ip', ['addr', 'add', 'fd00:201::1/64', 'dev', CLI, 'nodad']);
    must('ip', ['link', 'set', CLI, 'up']);
    must('ip', ['-n', NS, 'link', 'set', SRV, 'up']);
    must('ip', ['route', 'add', `${VIP4}/32`, 'dev', CLI]);
    must('ip', ['-6', 'route', 'add', `${VIP6}/128`, 'dev', CLI]);
    for (const b of t.backends) {
      must('ip', ['-n', NS, 'addr', 'add', `${b.ip}/24`, 'dev', SRV]);
      must('ip', ['-n', NS, 'addr', 'add', `${b.ip6}/64`, 'dev', SRV, 'nodad']);
    }
    // Black-holing = dropping what is addressed to the backend's DNS port inside its namespace: it never answers.
    const nft = spawnSync('ip', ['netns', 'exec', NS, 'nft', '-f', '-'], {
      encoding: 'utf8',
      input: `table ${NFT} {
  set bh4 { type ipv4_addr; }
  set bh6 { type ipv6_addr; }
  chain input {
    type filter hook input priority -10; policy accept;
    ip daddr @bh4 udp dport ${DNS_PORT} drop
    ip6 daddr @bh6 udp dport ${DNS_PORT} drop
  }
}
`,
    });
    assert.equal(nft.status, 0, `nft in ${NS}: ${nft.stderr}`);
    must('ipvsadm', ['-A', '-u', `${VIP4}:${DNS_PORT}`, '-s', 'rr']);
    must('ipvsadm', ['-A', '-u', `[${VIP6}]:${DNS_PORT}`, '-s', 'rr']);
    for (const b of t.backends) {
      must('ipvsadm', ['-a', '-u', `${VIP4}:${DNS_PORT}`, '-r', `${b.ip}:${DNS_PORT}`, '-m', '-w', '1']);
      must('ipvsadm', ['-a', '-u', `[${VIP6}]:${DNS_PORT}`, '-r', `[${b.ip6}]:${DNS_PORT}`, '-m', '-w', '1']);
    }
    for (const b of t.backends) await t.start(b.name);
    return t;
  }

  /** Starts (or keeps) backend `name`'s dnsmasq and waits until it answers on both addresses. */
  async start(name: string): Promise<void> {
    if (this.daemons.get(name)?.proc.exitCode === null) return;
    const b = this.backend(name);
    // `ip netns exec` execs dnsmasq, so the PID we hold is dnsmasq's own (-k: it stays in the foreground).
    const d = Daemon.start(`dnsmasq ${name}`, ['ip', 'netns', 'exec', NS, '/usr/sbin/dnsmasq', '-k', '--conf-file=/dev/null',
      '--no-resolv', '--no-hosts', '--bind-interfaces', `--listen-address=${b.ip}`, `--listen-address=${b.ip6}`,
      `--port=${DNS_PORT}`, '--user=root', '--group=root', '--pid-file=', `--address=/${NAME}/${b.ip}`, '--log-facility=-']);
    this.daemons.set(name, d);
    for (let i = 0; i < 100; i++) {
      const ss = spawnSync('ip', ['netns', 'exec', NS, 'ss', '-Hlun', `sport = :${DNS_PORT}`], { encoding: 'utf8' }).stdout;
      if (ss.includes(`${b.ip}:${DNS_PORT}`) && ss.includes(`[${b.ip6}]:${DNS_PORT}`)) return;
      if (d.proc.exitCode !== null) break;
      await sleep(100);
    }
    throw new Error(`dnsmasq for ${name} did not come up:\n${d.lines.join('\n')}`);
  }

  /** Kills backend `name`'s dnsmasq (by its PID): its port is closed, the namespace answers ICMP port unreachable. */
  async kill(name: string): Promise<void> {
    await this.daemons.get(name)?.stop();
    this.daemons.delete(name);
  }

  blackhole(name: string, on: boolean): void {
    const b = this.backend(name);
    const op = on ? 'add' : 'delete';
    quietly('ip', ['netns', 'exec', NS, 'nft', op, 'element', ...NFT.split(' '), 'bh4', `{ ${b.ip} }`]);
    quietly('ip', ['netns', 'exec', NS, 'nft', op, 'element', ...NFT.split(' '), 'bh6', `{ ${b.ip6} }`]);
  }

  /** Weight of `name` in both services (0: no new flows). */
  weight(name: string, w: number): void {
    const b = this.backend(name);
    must('ipvsadm', ['-e', '-u', `${VIP4}:${DNS_PORT}`, '-r', `${b.ip}:${DNS_PORT}`, '-m', '-w', String(w)]);
    must('ipvsadm', ['-e', '-u', `[${VIP6}]:${DNS_PORT}`, '-r', `[${b.ip6}]:${DNS_PORT}`, '-m', '-w', String(w)]);
  }

  /** New flows go to `name` only. */
  only(name: string): void {
    for (const b of this.backends) this.weight(b.name, b.name === name ? 1 : 0);
  }

  async down(): Promise<void> {
    for (const name of [...this.daemons.keys()]) await this.kill(name);
    await UdpTopology.teardown();
  }

  private static async teardown(): Promise<void> {
    quietly('ipvsadm', ['-D', '-u', `${VIP4}:${DNS_PORT}`]);
    quietly('ipvsadm', ['-D', '-u', `[${VIP6}]:${DNS_PORT}`]);
    quietly('ip', ['route', 'del', `${VIP4}/32`, 'dev', CLI]);
    quietly('ip', ['-6', 'route', 'del', `${VIP6}/128`, 'dev', CLI]);
    quietly('ip', ['link', 'del', CLI]); // takes its peer in vgu-srv with it
    quietly('ip', ['netns', 'del', NS]); // and the nft table inside; dnsmasq processes were stopped by PID
  }
}

/** A DNS query for NAME, type A, class IN (RFC 1035 4.1), with id `id`. */
export function dnsQuery(id: number): Buffer {
  const labels = NAME.split('.').flatMap((l) => [Buffer.from([l.length]), Buffer.from(l)]);
  return Buffer.concat([Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

/** The IPv4 address in the (only) A record of an answer to dnsQuery: dnsmasq puts it last. */
export function answeredAddress(reply: Buffer): string | undefined {
  const ancount = reply.readUInt16BE(6);
  return ancount >= 1 && reply.length >= 4 ? [...reply.subarray(reply.length - 4)].join('.') : undefined;
}

export interface Exchange {
  /** the A record's address (the backend that answered), or the error code, or 'timeout' */
  result: string;
  ms: number;
}

/**
 * One client flow: a UDP socket (one source port, so one IPVS connection entry) sending queries to host:port one
 * after the other, each waiting up to `waitMs` for its answer or an error. Connected by default, as dig's and the
 * C library's resolver sockets are; `connected: false` sends with sendto() from a bound socket instead, which never
 * hears of ICMP errors (no IP_RECVERR).
 */
export class UdpFlow {
  readonly exchanges: Exchange[] = [];
  private constructor(private readonly sock: dgram.Socket, readonly localPort: number, private readonly to?: { host: string; port: number }) {}

  static async open(host: string, opts: { port?: number; connected?: boolean } = {}): Promise<UdpFlow> {
    const port = opts.port ?? DNS_PORT;
    const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      const ok = () => { sock.off('error', reject); resolve(); };
      if (opts.connected === false) sock.bind(0, ok);
      else sock.connect(port, host, ok);
    });
    return new UdpFlow(sock, sock.address().port, opts.connected === false ? { host, port } : undefined);
  }

  async exchange(id: number, waitMs: number): Promise<Exchange> {
    const t0 = performance.now();
    const result = await new Promise<string>((resolve) => {
      const done = (r: string) => {
        clearTimeout(timer);
        this.sock.off('message', onMessage);
        this.sock.off('error', onError);
        resolve(r);
      };
      const onMessage = (m: Buffer) => { if (m.readUInt16BE(0) === id) done(answeredAddress(m) ?? 'no answer'); };
      const onError = (e: NodeJS.ErrnoException) => done(e.code ?? e.message);
      const timer = setTimeout(() => done('timeout'), waitMs);
      this.sock.on('message', onMessage);
      this.sock.on('error', onError);
      const sent = (err: Error | null) => { if (err) done((err as NodeJS.ErrnoException).code ?? err.message); };
      if (this.to) this.sock.send(dnsQuery(id), this.to.port, this.to.host, sent);
      else this.sock.send(dnsQuery(id), sent);
    });
    const x = { result, ms: performance.now() - t0 };
    this.exchanges.push(x);
    return x;
  }

  /** The socket's file descriptor: the key of a BPF socket-storage map for this socket. */
  get fd(): number {
    const fd = (this.sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    assert.ok(typeof fd === 'number' && fd >= 0, 'a UDP socket with a file descriptor');
    return fd;
  }

  close(): void {
    this.sock.close();
  }
}

/** `dig` (bind9-dnsutils, an unmodified client) once through the VIP: its verdict and how long it took. */
export function dig(server: string, timeoutSec: number): { out: string; ms: number; status: number | null } {
  const t0 = performance.now();
  const r = spawnSync('dig', [`@${server}`, '-p', String(DNS_PORT), '+tries=1', `+timeout=${timeoutSec}`, '+short', NAME],
    { encoding: 'utf8', timeout: (timeoutSec + 10) * 1000 });
  return { out: `${r.stdout}${r.stderr}`.trim(), ms: performance.now() - t0, status: r.status };
}
