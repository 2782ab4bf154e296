// Steady DNS load through a UDP virtual service, as unmodified clients make it (issue 13's benchmark):
//
//   lookups      `rate` per second, each from a fresh socket — a new source port, so a new IPVS flow, as the C
//                library's resolver and dig make one per lookup — under the C library's default policy
//                (RESOLVER_POLICY below): wait 5 s, try twice in all;
//   long-lived   a few connected sockets that each ask every `everyMs` for as long as the load runs, as a resolver
//                library with a kept socket or a log/metric shipper does: one IPVS flow each, which IPVS keeps on its
//                destination until the flow expires or the destination is removed (expire_nodest_conn=1).
//
// Every query asks for the A record of a name the lab's dnsmasq backends answer with their own address
// (scripts/lab/topology.sh --udp), so each answer says which backend it came from. Queries and the answer check are
// src/actuator/dns-message.ts's; the only record read here is that one A record.
//
// The load runs in the caller's process (Node, not a C program like connload): at 20 lookups/s and a few flows it
// costs the lab guest a visible share of a vCPU, which slows every system's reaction alike.
import * as dgram from 'node:dgram';
import { checkDnsResponse, encodeDnsQuery } from '../actuator/dns-message';

/**
 * The C library resolver's defaults (resolv.conf(5): `timeout:5`, `attempts:2`) with one nameserver — the VIP. How a
 * retry goes out follows glibc's res_send.c (send_dg): after a timeout the next try reuses the same socket (same
 * source port, so IPVS sends it along the same flow, to the same backend); after a receive error — the
 * ECONNREFUSED of an ICMP port unreachable on the connected socket — the socket is closed and the next try opens a
 * fresh one (a new flow, scheduled anew). One question per lookup (A only; glibc sends A and AAAA together for
 * getaddrinfo(AF_UNSPEC), which would double the datagrams without changing which backend a flow reaches).
 */
export const RESOLVER_POLICY = { timeoutMs: 5000, attempts: 2 } as const;

/** How one lookup ended: answered (possibly at its second try), or how its last try failed. */
export const LOOKUP_OUTCOMES = ['ok', 'timeout', 'refused', 'error'] as const;
export type LookupOutcome = (typeof LOOKUP_OUTCOMES)[number];

export interface Lookup {
  /** ms since the load's epoch (performance.now() - epoch) when the first try was sent */
  at: number;
  /** first try sent → answer (or the last try's failure) */
  ms: number;
  outcome: LookupOutcome;
  /** the source port of every try that went out (one entry when the retry reused the socket) */
  ports: number[];
  tries: number;
  /** the backend address in the answer */
  answeredBy?: string;
  /** for 'error': the errno name */
  errno?: string;
}

/** One query of a long-lived flow: when it was sent, and when and from whom its answer came, or its ICMP error. */
export interface FlowQuery {
  at: number;
  answeredAt?: number;
  answeredBy?: string;
  /** ECONNREFUSED (or another errno) reported on the connected socket after this query went out */
  error?: string;
}

export interface LongFlowRecord {
  localPort: number;
  queries: FlowQuery[];
}

/** The address in an answer's A record: dnsmasq answers the one question with one A record, the message's last RR. */
export function answerAddress(msg: Buffer): string | undefined {
  if (msg.length < 16 || msg.readUInt16BE(6) < 1) return undefined;
  // The last RR's fixed part (type, class, TTL, RDLENGTH) ends 4 octets before the message does for an A record.
  const rdlength = msg.readUInt16BE(msg.length - 6);
  const type = msg.readUInt16BE(msg.length - 14);
  return type === 1 && rdlength === 4 ? [...msg.subarray(msg.length - 4)].join('.') : undefined;
}

export interface DnsLoadOptions {
  host: string;
  port: number;
  /** the name to ask for (its A record) */
  name: string;
  /** lookups per second from fresh sockets */
  rate: number;
  /** long-lived connected sockets, and how often each asks */
  flows: number;
  flowEveryMs: number;
  /** a long-lived flow's query with no answer this long after it is unanswered (for the flow's own records) */
  flowWaitMs?: number;
  /** performance.now() that `at` counts from */
  epoch: number;
  policy?: { timeoutMs: number; attempts: number };
}

/** Bounds that keep a stuck run from growing without end: the whole load stops at these. */
const MAX_LOOKUPS = 100_000;
const MAX_FLOW_QUERIES = 100_000;

export class DnsLoad {
  readonly lookups: Lookup[] = [];
  readonly flows: LongFlow[] = [];
  /** worst lateness of a lookup against its schedule, ms */
  maxLagMs = 0;
  private timer?: NodeJS.Timeout;
  private pending = new Set<Promise<void>>();
  private startedAt = 0;
  private stoppedAt = 0;
  private started = 0;
  private readonly policy: { timeoutMs: number; attempts: number };

  constructor(private readonly o: DnsLoadOptions) {
    if (!(o.rate > 0 && o.rate <= 500)) throw new Error(`DnsLoad: rate must be within 0..500 lookups/s, got ${o.rate}`);
    if (!(Number.isInteger(o.flows) && o.flows >= 0 && o.flows <= 64)) throw new Error(`DnsLoad: flows must be an integer within 0..64, got ${o.flows}`);
    if (!(o.flowEveryMs >= 10)) throw new Error(`DnsLoad: flowEveryMs must be at least 10, got ${o.flowEveryMs}`);
    this.policy = o.policy ?? RESOLVER_POLICY;
    encodeDnsQuery(o.name, 0); // throws now, with the reason, if the name is not one
  }

  now(): number {
    return performance.now() - this.o.epoch;
  }

  /** Opens the long-lived flows one after another (so IPVS's rr spreads them over the backends), then paces lookups. */
  async start(): Promise<void> {
    for (let i = 0; i < this.o.flows; i++) {
      this.flows.push(await LongFlow.open(this.o.host, this.o.port, this.o.name, this.o.flowEveryMs, this.o.flowWaitMs ?? 2000, () => this.now()));
    }
    this.startedAt = performance.now();
    const interval = 1000 / this.o.rate;
    const tick = () => {
      // Catch up on the schedule (at most one second's worth per tick) so that a stalled event loop shows as lag.
      const due = Math.floor((performance.now() - this.startedAt) / interval) + 1;
      for (let n = 0; this.started < due && n < this.o.rate && this.lookups.length + this.pending.size < MAX_LOOKUPS; n++) {
        const scheduled = this.startedAt + this.started * interval;
        this.maxLagMs = Math.max(this.maxLagMs, performance.now() - scheduled);
        this.started++;
        const p = this.lookup().then((l) => { this.lookups.push(l); });
        this.pending.add(p);
        void p.finally(() => this.pending.delete(p));
      }
    };
    tick();
    this.timer = setInterval(tick, Math.max(5, Math.floor(interval / 2)));
  }

  /** Stops starting lookups, waits for the ones under way (bounded by the policy), closes the flows. */
  async stop(): Promise<{ lookups: Lookup[]; flows: LongFlowRecord[] }> {
    clearInterval(this.timer);
    this.stoppedAt ||= performance.now();
    await Promise.all([...this.pending]);
    for (const f of this.flows) f.close();
    this.lookups.sort((a, b) => a.at - b.at);
    return { lookups: this.lookups, flows: this.flows.map((f) => f.record()) };
  }

  /** Lookups started per second between start() and stop(). */
  achievedRate(): number {
    const s = ((this.stoppedAt || performance.now()) - this.startedAt) / 1000;
    return s > 0 ? this.started / s : 0;
  }

  private async lookup(): Promise<Lookup> {
    const t0 = performance.now();
    const ports: number[] = [];
    let sock: dgram.Socket | undefined;
    let last: Try = { kind: 'error', errno: 'ENOTSTARTED' };
    let tries = 0;
    // glibc resends the same message (same id) on a retry: a late answer to the first try still answers the lookup.
    const query = encodeDnsQuery(this.o.name, newId());
    try {
      while (tries < this.policy.attempts) {
        if (!sock) {
          sock = await openConnected(this.o.host, this.o.port);
          ports.push(sock.address().port);
        }
        tries++;
        last = await ask(sock, query, this.policy.timeoutMs);
        if (last.kind === 'answer') break;
        // glibc closes the socket on a receive error (the next try is a new flow); on a timeout it keeps it.
        if (last.kind !== 'timeout') { sock.close(); sock = undefined; }
      }
    } catch (e) {
      last = { kind: 'error', errno: (e as NodeJS.ErrnoException).code ?? (e as Error).message };
    } finally {
      sock?.close();
    }
    const base = { at: t0 - this.o.epoch, ms: performance.now() - t0, ports, tries };
    switch (last.kind) {
      case 'answer': return { ...base, outcome: 'ok', answeredBy: last.from };
      case 'timeout': return { ...base, outcome: 'timeout' };
      case 'refused': return { ...base, outcome: 'refused' };
      default: return { ...base, outcome: 'error', errno: last.errno };
    }
  }
}

type Try = { kind: 'answer'; from?: string } | { kind: 'timeout' } | { kind: 'refused' } | { kind: 'error'; errno: string };

function openConnected(host: string, port: number): Promise<dgram.Socket> {
  const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  return new Promise((resolve, reject) => {
    const fail = (e: Error) => { sock.close(); reject(e); };
    sock.once('error', fail);
    sock.connect(port, host, () => {
      sock.off('error', fail);
      // An ICMP error can arrive after its try has ended (a late port unreachable): unheard, not an uncaught throw.
      sock.on('error', () => {});
      resolve(sock);
    });
  });
}

let nextId = Math.floor(Math.random() * 0x10000);
const newId = () => (nextId = (nextId + 1) & 0xffff);

/** One try on a connected socket: our answer, the socket's ICMP error, or nothing within `waitMs`. */
function ask(sock: dgram.Socket, query: Buffer, waitMs: number): Promise<Try> {
  return new Promise((resolve) => {
    const done = (t: Try) => {
      clearTimeout(timer);
      sock.off('message', onMessage);
      sock.off('error', onError);
      resolve(t);
    };
    // Anything that is not an answer to this query is not ours (as glibc's res_queriesmatch).
    const onMessage = (m: Buffer) => { if (checkDnsResponse(m, query).ok) done({ kind: 'answer', from: answerAddress(m) }); };
    // Node reports the ICMP error of a connected UDP socket as an 'error' event (ECONNREFUSED from recvmsg).
    const onError = (e: NodeJS.ErrnoException) => done(e.code === 'ECONNREFUSED' ? { kind: 'refused' } : { kind: 'error', errno: e.code ?? e.message });
    const timer = setTimeout(() => done({ kind: 'timeout' }), waitMs);
    sock.on('message', onMessage);
    sock.on('error', onError);
    sock.send(query, (err) => { if (err) onError(err as NodeJS.ErrnoException); });
  });
}

/**
 * A long-lived client flow: one connected socket asking every `everyMs` whatever became of the previous query (a
 * shipper does not wait either). Answers are matched by message id; an ICMP error is charged to the latest query.
 */
export class LongFlow {
  private readonly queries: (FlowQuery & { id: number })[] = [];
  private timer?: NodeJS.Timeout;
  private constructor(private readonly sock: dgram.Socket, readonly localPort: number, private readonly now: () => number) {}

  static async open(host: string, port: number, name: string, everyMs: number, waitMs: number, now: () => number): Promise<LongFlow> {
    const sock = await openConnected(host, port);
    const f = new LongFlow(sock, sock.address().port, now);
    sock.on('message', (m) => {
      const id = m.length >= 2 ? m.readUInt16BE(0) : -1;
      const q = f.queries.find((x) => x.id === id && x.answeredAt === undefined);
      if (!q) return;
      const at = f.now();
      if (at - q.at <= waitMs && checkDnsResponse(m, encodeDnsQuery(name, id)).ok) {
        q.answeredAt = at;
        q.answeredBy = answerAddress(m);
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      const q = f.queries.at(-1);
      if (q && q.answeredAt === undefined && !q.error) q.error = e.code ?? e.message;
    });
    const send = () => {
      if (f.queries.length >= MAX_FLOW_QUERIES) return;
      const id = newId();
      f.queries.push({ id, at: f.now() });
      sock.send(encodeDnsQuery(name, id), (err) => { if (err) { const q = f.queries.at(-1); if (q) q.error ??= (err as NodeJS.ErrnoException).code ?? err.message; } });
    };
    send();
    f.timer = setInterval(send, everyMs);
    return f;
  }

  record(): LongFlowRecord {
    return { localPort: this.localPort, queries: this.queries.map(({ id: _id, ...q }) => q) };
  }

  close(): void {
    clearInterval(this.timer);
    try { this.sock.close(); } catch { /* closed */ }
  }
}
