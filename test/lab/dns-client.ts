// DNS clients for the lab's UDP tests, against the topology's dnsmasq backends (scripts/lab/topology.sh --udp): each
// answers any name under vipguard.test with its own address, so every answer says which backend a datagram reached.
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { encodeDnsQuery } from '../../src/actuator/dns-message';
import { answerAddress } from '../../src/lab/dns-load';
import { waitFor } from '../helpers';

export const NAME = 'who.vipguard.test';
const INTERVAL_MS = 50;

/** A DNS query for NAME (type A, RD) with the given id: the restore probe's own encoder. */
const query = (id: number): Buffer => encodeDnsQuery(NAME, id);

/**
 * One client flow: a connected UDP socket (one source port, so one IPVS connection entry) asking every
 * INTERVAL_MS, as a resolver library or a metrics shipper keeps one socket. Records who answered each query. IPv4 or
 * IPv6 after `host`; either way it asks for the A record, which names the backend that answered (dnsmasq answers it
 * over IPv6 too).
 */
export class DnsFlow {
  private constructor(readonly sock: dgram.Socket) {}
  readonly answers: { id: number; at: number; from: string }[] = [];
  sent = 0;
  /** when the connected socket reported an ICMP error (ECONNREFUSED: the backend's server is gone), Date.now() */
  readonly errors: number[] = [];
  private timer?: NodeJS.Timeout;

  static async open(host: string, port: number): Promise<DnsFlow> {
    const f = new DnsFlow(dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4'));
    f.sock.on('message', (m) => { const from = answerAddress(m); if (from) f.answers.push({ id: m.readUInt16BE(0), at: Date.now(), from }); });
    f.sock.on('error', () => { f.errors.push(Date.now()); /* an ICMP error on the connected socket: no answer */ });
    await new Promise<void>((r) => f.sock.connect(port, host, r));
    f.timer = setInterval(() => { if (f.sent < 20_000) f.sock.send(query(++f.sent & 0xffff)); }, INTERVAL_MS);
    return f;
  }

  get backend(): string | undefined { return this.answers.at(-1)?.from; }

  /** Until `n` more answers arrived (bounded), then who gave them. */
  async next(n: number, timeoutMs = 5000): Promise<string[]> {
    const start = this.answers.length;
    await waitFor(() => this.answers.length >= start + n, timeoutMs, `${n} DNS answers on one flow`);
    return this.answers.slice(start, start + n).map((a) => a.from);
  }

  close(): void {
    clearInterval(this.timer);
    this.sock.close();
  }
}

export interface Exchange {
  /** the A record's address (the backend that answered), or the error code, or 'timeout' */
  result: string;
  ms: number;
}

/**
 * A client socket asking one query at a time and recording each one's outcome — the answering backend, the error
 * the socket reported, or a timeout — and how long it took: for counting datagrams exactly (DnsFlow asks on a timer).
 * One source port, so one IPVS connection entry. Connected by default, as dig's and the C library's resolver sockets
 * are; `connected: false` sends with sendto() from a bound socket instead, which never hears of ICMP errors (no
 * IP_RECVERR). IPv4 or IPv6 after `host`.
 */
export class DnsSocket {
  readonly exchanges: Exchange[] = [];
  private constructor(private readonly sock: dgram.Socket, readonly localPort: number, private readonly to?: { host: string; port: number }) {}

  static async open(host: string, port: number, opts: { connected?: boolean } = {}): Promise<DnsSocket> {
    const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      const ok = () => { sock.off('error', reject); resolve(); };
      if (opts.connected === false) sock.bind(0, ok);
      else sock.connect(port, host, ok);
    });
    return new DnsSocket(sock, sock.address().port, opts.connected === false ? { host, port } : undefined);
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
      const onMessage = (m: Buffer) => { if (m.readUInt16BE(0) === id) done(answerAddress(m) ?? 'no answer'); };
      const onError = (e: NodeJS.ErrnoException) => done(e.code ?? e.message);
      const timer = setTimeout(() => done('timeout'), waitMs);
      this.sock.on('message', onMessage);
      this.sock.on('error', onError);
      const sent = (err: Error | null) => { if (err) done((err as NodeJS.ErrnoException).code ?? err.message); };
      if (this.to) this.sock.send(query(id), this.to.port, this.to.host, sent);
      else this.sock.send(query(id), sent);
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

/**
 * A send-only client on a connected UDP socket, as log and metric shippers are (syslog, statsd): Python sends
 * `count` queries `gapMs` apart and never reads. Each send's outcome ('ok' or the errno name) and its local port.
 */
export function sendOnly(host: string, port: number, count: number, gapMs: number): { localPort: number; sends: string[] } {
  const code = `
import errno, json, socket, sys, time
host, port, count, gap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]) / 1000
s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_DGRAM)
s.connect((host, port))
out = []
for i in range(count):
    try:
        s.send(bytes.fromhex(sys.argv[5]))
        out.append('ok')
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)))
    time.sleep(gap)
print(json.dumps({'localPort': s.getsockname()[1], 'sends': out}))
`;
  const r = spawnSync('python3', ['-c', code, host, String(port), String(count), String(gapMs), query(0x600).toString('hex')],
    { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, `python3 send-only client: ${r.stderr}`);
  return JSON.parse(r.stdout) as { localPort: number; sends: string[] };
}

/**
 * `dig` (bind9-dnsutils, an unmodified client) once, from a fresh socket (a new flow): the backend that answered
 * (undefined if none did), its whole output (the verdict: "connection refused", "timed out") and how long it took.
 */
export function dig(server: string, port: number, timeoutSec: number): { answer?: string; out: string; ms: number; status: number | null } {
  const t0 = performance.now();
  const r = spawnSync('dig', [`@${server}`, '-p', String(port), '+tries=1', `+timeout=${timeoutSec}`, '+short', NAME],
    { encoding: 'utf8', timeout: (timeoutSec + 10) * 1000 });
  const answer = (r.stdout ?? '').split('\n').map((l) => l.trim()).find((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l));
  return { answer, out: `${r.stdout}${r.stderr}`.trim(), ms: performance.now() - t0, status: r.status };
}

/** A flow whose datagrams IPVS sends to `backendIp` (rr: a few new sockets are enough); every flow opened is pushed to `opened`. */
export async function openFlowOn(host: string, port: number, backendIp: string, opened: DnsFlow[]): Promise<DnsFlow> {
  for (let i = 0; i < 8; i++) {
    const f = await DnsFlow.open(host, port);
    opened.push(f);
    await f.next(2);
    if (f.backend === backendIp) return f;
  }
  throw new Error(`no flow landed on ${backendIp} in 8 tries`);
}

export interface Lookup {
  /** Date.now() at its start and end */
  start: number;
  end: number;
  /** getent's exit status: 0 found, 2 not found (every try of the resolver failed) */
  rc: number;
  /** the first address getent printed: the backend that answered */
  answer?: string;
}

/**
 * The C library's resolver, unmodified: `getent ahostsv4 NAME` — getaddrinfo() for IPv4, as applications call it —
 * back to back (at most `count` times) in a mount namespace whose /etc/resolv.conf names only
 * `vip`: port 53, glibc's own timeout (5 s) and attempts (2). Each lookup is one A query from a new socket, so a new
 * IPVS flow, and its second try goes out on the same socket. (`getent hosts` asks AAAA first, then A, from two or
 * three sockets per lookup: with three backends under rr, its A queries kept landing on the same one.)
 */
export class GetentLoop {
  readonly lookups: Lookup[] = [];
  private readonly proc: ChildProcess;
  private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-getent-'));
  private readonly exited: Promise<void>;

  constructor(vip: string, count: number) {
    const resolvConf = path.join(this.dir, 'resolv.conf');
    fs.writeFileSync(resolvConf, `nameserver ${vip}\n`);
    // bash's EPOCHREALTIME reads the clock without a fork, and there is no sleep: each exec costs 0.1-0.5 s of a
    // vCPU under TCG, and getent's own is pace enough.
    const script = 'mount --bind "$1" /etc/resolv.conf || exit 1; for ((i = 0; i < $2; i++)); do ' +
      `t0=$EPOCHREALTIME; out=$(getent ahostsv4 ${NAME}); rc=$?; echo "$t0 $EPOCHREALTIME $rc ${'$'}{out%% *}"; done`;
    this.proc = spawn('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', script, 'getent-loop', resolvConf, String(count)],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    readline.createInterface({ input: this.proc.stdout! }).on('line', (l) => {
      const [t0, t1, rc, answer] = l.trim().split(/\s+/);
      this.lookups.push({ start: Number(t0) * 1000, end: Number(t1) * 1000, rc: Number(rc), answer });
    });
    this.exited = new Promise((resolve) => this.proc.on('close', () => resolve()));
  }

  /** Lookups that started at or after `t` (Date.now() time). */
  since(t: number): Lookup[] {
    return this.lookups.filter((l) => l.start >= t);
  }

  /** Ends the loop (its process, by PID: the one this started) and lets a lookup in flight finish. */
  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGTERM');
    await this.exited;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
