// The one decoder of struct vg_event (bpf/vipguard.h). Offsets are checked against VG_EVENT_SIZE, which the
// native addon static_asserts against sizeof(struct vg_event).
import { formatAddr, Family } from '../common/addr';

export const VG_EVENT_SIZE = 160;
/** struct vg_udp_flow: the `udp_flows` map value, and the tail of every event (at UDP_FLOW_OFFSET) */
export const VG_UDP_FLOW_SIZE = 64;
const UDP_FLOW_OFFSET = 96;

/**
 * rst_in: an RST refusing the socket's connect arrived (cgroup_skb ingress) — it may never reach `reset`, if held back.
 * udp_flow: IPVS scheduled a UDP flow (client socket) to `backend`; udp_error: an ICMP error reached it (skErr);
 * udp_end: its socket was destroyed. UDP events carry the flow's counters (`udp`).
 */
export type EventKind = 'state' | 'retransmit' | 'reset' | 'ipvs_conn' | 'rst_in' | 'udp_flow' | 'udp_error' | 'udp_end';
const KINDS: Record<number, EventKind> = {
  1: 'state', 2: 'retransmit', 3: 'reset', 4: 'ipvs_conn', 5: 'rst_in', 6: 'udp_flow', 7: 'udp_error', 8: 'udp_end',
};
const UDP_KINDS: ReadonlySet<EventKind> = new Set(['udp_flow', 'udp_error', 'udp_end']);

/** A UDP flow's counters as the kernel keeps them (struct vg_udp_flow); times are CLOCK_MONOTONIC ns. */
export interface UdpCounters {
  startNs: bigint;
  lastSendNs: bigint;
  /** send time of the oldest unanswered datagram; 0n when none */
  oldestNs: bigint;
  replyNsSum: bigint;
  replyNsMax: bigint;
  sent: number;
  replies: number;
  /** replies that ended a wait: what replyNsSum is summed over */
  waits: number;
  errors: number;
  /** index into the service list the probe was given */
  service: number;
}

export function decodeUdpFlow(b: Buffer, at = 0): UdpCounters {
  if (b.length < at + VG_UDP_FLOW_SIZE) {
    throw new Error(`decoding vg_udp_flow: got ${b.length - at} bytes, expected ${VG_UDP_FLOW_SIZE} — BPF object and receiver out of step?`);
  }
  return {
    startNs: b.readBigUInt64LE(at),
    lastSendNs: b.readBigUInt64LE(at + 8),
    oldestNs: b.readBigUInt64LE(at + 16),
    replyNsSum: b.readBigUInt64LE(at + 24),
    replyNsMax: b.readBigUInt64LE(at + 32),
    sent: b.readUInt32LE(at + 40),
    replies: b.readUInt32LE(at + 44),
    waits: b.readUInt32LE(at + 48),
    errors: b.readUInt32LE(at + 52),
    service: b.readUInt32LE(at + 56),
  };
}

/** include/net/tcp_states.h */
export const TcpState = {
  ESTABLISHED: 1, SYN_SENT: 2, SYN_RECV: 3, FIN_WAIT1: 4, FIN_WAIT2: 5, TIME_WAIT: 6, CLOSE: 7,
  CLOSE_WAIT: 8, LAST_ACK: 9, LISTEN: 10, CLOSING: 11, NEW_SYN_RECV: 12,
} as const;
const STATE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(TcpState).map(([k, v]) => [v, k]));
export function stateName(s: number): string {
  return STATE_NAMES[s] ?? `STATE_${s}`;
}

export interface Endpoint {
  addr: string;
  port: number;
}

export interface KernelEvent {
  kind: EventKind;
  /** CLOCK_MONOTONIC ns */
  tsNs: bigint;
  /** socket address: the connection's identity */
  sk: bigint;
  /** CLOCK_MONOTONIC ns when the socket entered SYN_SENT; 0n if not seen */
  startNs: bigint;
  pid: number;
  family: Family;
  src: Endpoint;
  /** what the socket connected to: the virtual service */
  dst: Endpoint;
  /** the real destination IPVS chose, if known */
  backend?: Endpoint;
  oldState: number;
  newState: number;
  synRetransmits: number;
  /** errno left on the socket when it left SYN_SENT (ETIMEDOUT, ECONNREFUSED, …), else 0 */
  skErr: number;
  service: boolean;
  rescheduled: boolean;
  noSocket: boolean;
  /** UDP events: the flow's counters when the event was made */
  udp?: UdpCounters;
}

const AF_INET = 2;
const AF_INET6 = 10;

function family(af: number): Family | undefined {
  return af === AF_INET ? 4 : af === AF_INET6 ? 6 : undefined;
}

/** IPv4 addresses in their text form, by value: a host talks to few, and each event names two or three. */
const V4_TEXT = new Map<number, string>();
const V4_TEXT_MAX = 65_536;

function addrAt(b: Buffer, at: number, fam: Family): string {
  if (fam === 6) return formatAddr(6, b.subarray(at, at + 16));
  const key = b.readUInt32BE(at);
  let s = V4_TEXT.get(key);
  if (s === undefined) {
    if (V4_TEXT.size >= V4_TEXT_MAX) V4_TEXT.clear();
    s = formatAddr(4, b.subarray(at, at + 4));
    V4_TEXT.set(key, s);
  }
  return s;
}

/** One vg_event record: `len` bytes at `at` of `b` (a ring buffer batch holds many). */
export function decodeEvent(b: Buffer, at = 0, len = b.length - at): KernelEvent {
  if (len !== VG_EVENT_SIZE) {
    throw new Error(`decoding vg_event: got ${len} bytes, expected ${VG_EVENT_SIZE} — BPF object and receiver out of step?`);
  }
  const kind = KINDS[b[at + 34]];
  if (!kind) throw new Error(`decoding vg_event: unknown kind ${b[at + 34]}`);
  const fam = family(b[at + 35]) ?? 4;
  const bfam = family(b[at + 38]);
  const flags = b[at + 39];
  return {
    kind,
    tsNs: b.readBigUInt64LE(at),
    sk: b.readBigUInt64LE(at + 8),
    startNs: b.readBigUInt64LE(at + 16),
    pid: b.readUInt32LE(at + 24),
    family: fam,
    src: { addr: addrAt(b, at + 48, fam), port: b.readUInt16LE(at + 28) },
    dst: { addr: addrAt(b, at + 64, fam), port: b.readUInt16LE(at + 30) },
    backend: bfam ? { addr: addrAt(b, at + 80, bfam), port: b.readUInt16LE(at + 32) } : undefined,
    oldState: b[at + 36],
    newState: b[at + 37],
    synRetransmits: b.readUInt16LE(at + 40),
    skErr: b.readUInt16LE(at + 42),
    service: (flags & 1) !== 0,
    rescheduled: (flags & 2) !== 0,
    noSocket: (flags & 4) !== 0,
    udp: UDP_KINDS.has(kind) ? decodeUdpFlow(b, at + UDP_FLOW_OFFSET) : undefined,
  };
}

/** Per-CPU counters of the BPF side (enum vg_counter). */
export const COUNTERS = ['events', 'lost', 'handshakeMapFull', 'ipvsUnmatched', 'ipvsSeen'] as const;
export type CounterName = (typeof COUNTERS)[number];
