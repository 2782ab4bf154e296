// The one decoder of struct vg_event (bpf/vipguard.h). Offsets are checked against VG_EVENT_SIZE, which the
// native addon static_asserts against sizeof(struct vg_event).
import { formatAddr, Family } from '../common/addr';

export const VG_EVENT_SIZE = 96;

/** rst_in: an RST refusing the socket's connect arrived (cgroup_skb ingress) — it may never reach `reset`, if held back */
export type EventKind = 'state' | 'retransmit' | 'reset' | 'ipvs_conn' | 'rst_in';
const KINDS: Record<number, EventKind> = { 1: 'state', 2: 'retransmit', 3: 'reset', 4: 'ipvs_conn', 5: 'rst_in' };

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
}

const AF_INET = 2;
const AF_INET6 = 10;

function family(af: number): Family | undefined {
  return af === AF_INET ? 4 : af === AF_INET6 ? 6 : undefined;
}

export function decodeEvent(b: Buffer): KernelEvent {
  if (b.length !== VG_EVENT_SIZE) {
    throw new Error(`decoding vg_event: got ${b.length} bytes, expected ${VG_EVENT_SIZE} — BPF object and receiver out of step?`);
  }
  const kind = KINDS[b[34]];
  if (!kind) throw new Error(`decoding vg_event: unknown kind ${b[34]}`);
  const fam = family(b[35]) ?? 4;
  const bfam = family(b[38]);
  const flags = b[39];
  const addrLen = fam === 4 ? 4 : 16;
  return {
    kind,
    tsNs: b.readBigUInt64LE(0),
    sk: b.readBigUInt64LE(8),
    startNs: b.readBigUInt64LE(16),
    pid: b.readUInt32LE(24),
    family: fam,
    src: { addr: formatAddr(fam, b.subarray(48, 48 + addrLen)), port: b.readUInt16LE(28) },
    dst: { addr: formatAddr(fam, b.subarray(64, 64 + addrLen)), port: b.readUInt16LE(30) },
    backend: bfam ? { addr: formatAddr(bfam, b.subarray(80, bfam === 4 ? 84 : 96)), port: b.readUInt16LE(32) } : undefined,
    oldState: b[36],
    newState: b[37],
    synRetransmits: b.readUInt16LE(40),
    skErr: b.readUInt16LE(42),
    service: (flags & 1) !== 0,
    rescheduled: (flags & 2) !== 0,
    noSocket: (flags & 4) !== 0,
  };
}

/** Per-CPU counters of the BPF side (enum vg_counter). */
export const COUNTERS = ['events', 'lost', 'handshakeMapFull', 'ipvsUnmatched', 'ipvsSeen'] as const;
export type CounterName = (typeof COUNTERS)[number];
