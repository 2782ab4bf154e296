// The reading side of the `vipguard.connect` span declared in metadata.ts: one typed parser that every consumer
// uses (the embedded rules, late-answer lifting, the SYN-timeout RTTs), so a span means the same thing to each of
// them and an attribute renamed in metadata.ts breaks the build here, not three consumers silently.
import type { FlatSpan } from '../otlp/model';
import { ATTEMPT_OUTCOME_VALUES, AttributeName } from './metadata';
import { formatEndpoint, parseAddr, formatAddr } from '../common/addr';

export type AttemptOutcome = (typeof ATTEMPT_OUTCOME_VALUES)[number];

export interface ConnectAttempt {
  /** trace/span id, for de-duplication ('' when the span has none) */
  id: string;
  /** the virtual service as the client addressed it, canonical address; protocol from network.transport (default tcp) */
  service: { address: string; port: number; protocol: string };
  /** the real backend IPVS chose; undefined when the receiver could not tell */
  backend?: { address: string; port: number; key: string };
  outcome: AttemptOutcome;
  /** wall-clock ms when the outcome was known (the span's end) */
  endMs: number;
  handshakeMs: number;
  /** declared unanswered at the deadline (early) / the real answer after that (late) */
  early: boolean;
  late: boolean;
  /** which SYN of its socket (0 = the original) and the client's port: to name the attempt behind a decision */
  index?: number;
  localPort?: number;
}

const NAME = 'vipguard.connect';

/** One line naming an attempt, for the reason a rule gives: `SYN #1 from port 41234, unanswered at its deadline after 212 ms`. */
export function describeAttempt(a: ConnectAttempt): string {
  const what = a.service.protocol === 'udp' ? 'UDP exchange' : 'SYN';
  const syn = a.index !== undefined ? `${what} #${a.index}` : `a ${what}`;
  const from = a.localPort !== undefined ? ` from port ${a.localPort}` : '';
  const ms = Number.isFinite(a.handshakeMs) ? ` after ${a.handshakeMs.toFixed(0)} ms` : '';
  return `${syn}${from}, ${a.outcome}${a.early ? ' at its deadline' : ''}${a.late ? ' (late)' : ''}${ms}`;
}
const get = (s: FlatSpan, k: AttributeName) => s.attributes[k];
const canon = (a: string) => { const p = parseAddr(a); return formatAddr(p.family, p.bytes); };
const isPort = (p: unknown): p is number => typeof p === 'number' && Number.isInteger(p) && p > 0 && p < 65536;

/** The span as a handshake attempt, or undefined when it is another span or lacks what the contract requires. */
export function readConnectSpan(s: FlatSpan): ConnectAttempt | undefined {
  if (s.name !== NAME) return undefined;
  const outcome = get(s, 'vipguard.outcome');
  const vip = get(s, 'server.address');
  const vport = get(s, 'server.port');
  if (typeof outcome !== 'string' || !(ATTEMPT_OUTCOME_VALUES as readonly string[]).includes(outcome)) return undefined;
  if (typeof vip !== 'string' || !isPort(vport)) return undefined;
  let service: ConnectAttempt['service'];
  let backend: ConnectAttempt['backend'];
  try {
    const transport = get(s, 'network.transport');
    service = { address: canon(vip), port: vport, protocol: typeof transport === 'string' ? transport : 'tcp' };
    const peer = get(s, 'network.peer.address');
    const pport = get(s, 'network.peer.port');
    if (typeof peer === 'string' && isPort(pport)) {
      const address = canon(peer);
      backend = { address, port: pport, key: formatEndpoint(address, pport) };
    }
  } catch {
    return undefined;
  }
  const d = get(s, 'vipguard.handshake.duration');
  return {
    id: s.spanId ? `${s.traceId}/${s.spanId}` : '',
    service, backend, outcome: outcome as AttemptOutcome,
    endMs: Number(s.endNs / 1_000_000n),
    handshakeMs: typeof d === 'number' && Number.isFinite(d) ? d * 1000 : NaN,
    early: get(s, 'vipguard.handshake.early') === true,
    late: get(s, 'vipguard.handshake.late') === true,
    index: typeof get(s, 'vipguard.attempt') === 'number' ? get(s, 'vipguard.attempt') as number : undefined,
    localPort: isPort(get(s, 'network.local.port')) ? get(s, 'network.local.port') as number : undefined,
  };
}
