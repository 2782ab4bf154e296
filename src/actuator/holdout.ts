// How a quarantined destination is held out of service, by protocol — and the one model the rest of the
// actuator keeps whichever way it is.
//
// TCP (and SCTP): weight 0. New connections go elsewhere; a pending connect's SYN retransmit is rescheduled
// (expire_nodest_conn); established connections finish.
//
// UDP: weight 0 does not move a flow. IPVS keeps one connection entry per UDP flow on its destination for as long
// as the client keeps sending (300 s idle timeout by default), whatever the weight, with expire_nodest_conn 0 or 1
// (proven per kernel in test/lab/udp-quarantine.test.ts). Removing the destination does move it: IPVS marks the
// destination unavailable and, with expire_nodest_conn=1, expires the flow's entry at its next datagram, which is
// scheduled anew. So a UDP destination is held out by *removal*, and given back by adding it again exactly as it
// was: weight, forwarding method, connection thresholds, tunnel settings (the record keeps them: `removedAs`).
//
// The rest of the actuator sees one model: `withRemoved` lists a destination vipguard removed as if it were still
// there at weight 0, so the policy, the caps (I1–I3 in desired.ts), alert ownership and status are the same for
// both; only diff() (reconcile.ts) turns "weight 0" into a removal and "weight back" into an add for such services.
import type { Destination, DestinationOptions, ForwardMethod } from './ipvs/types';
import type { QuarantineRecord } from './policy';
import type { KernelTable } from './kernel';
import { parseDestination } from './ipvs/identity';

/** Whether a service of this protocol holds destinations out by removal (UDP) rather than by weight 0. */
export const holdsByRemoval = (protocol: string): boolean => protocol === 'udp';

/** A destination's settings as vipguard removed it: what adding it back restores. */
export type SavedDestination = Required<Pick<DestinationOptions, 'weight' | 'forward' | 'upperThreshold' | 'lowerThreshold'>> & Pick<DestinationOptions, 'tunnel'>;

const FORWARDS: readonly ForwardMethod[] = ['nat', 'local', 'tunnel', 'dr', 'bypass'];

/**
 * The settings to save before removing `d`, or why it cannot be removed and restored exactly (a forwarding method or
 * tunnel type this client cannot name would not come back as it was).
 */
export function savedOf(d: Destination): SavedDestination | string {
  if (d.forward === 'unknown') return `its forwarding method is not one vipguard can restore`;
  if (d.tunnel && d.tunnel.type === 'unknown') return `its tunnel type is not one vipguard can restore`;
  const saved: SavedDestination = { weight: d.weight, forward: d.forward, upperThreshold: d.upperThreshold, lowerThreshold: d.lowerThreshold };
  if (!d.tunnel || d.forward !== 'tunnel') return saved;
  return { ...saved, tunnel: { type: d.tunnel.type as 'ipip' | 'gue' | 'gre', port: d.tunnel.port, flags: d.tunnel.flags } };
}

/** A saved destination from a state file, validated; undefined if anything is off (the record then holds by weight). */
export function parseSaved(o: unknown): SavedDestination | undefined {
  if (!o || typeof o !== 'object') return undefined;
  const r = o as Record<string, unknown>;
  const u32 = (v: unknown) => (Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff ? (v as number) : undefined);
  const weight = u32(r.weight);
  const upperThreshold = u32(r.upperThreshold);
  const lowerThreshold = u32(r.lowerThreshold);
  const forward = FORWARDS.find((f) => f === r.forward);
  if (weight === undefined || weight > 2 ** 31 - 1 || upperThreshold === undefined || lowerThreshold === undefined || !forward) return undefined;
  const saved: SavedDestination = { weight, forward, upperThreshold, lowerThreshold };
  if (r.tunnel === undefined) return saved;
  const t = r.tunnel as Record<string, unknown>;
  const type = (['ipip', 'gue', 'gre'] as const).find((x) => x === t?.type);
  const port = u32(t?.port);
  const flags = u32(t?.flags);
  if (!type || port === undefined || port > 65535 || flags === undefined || flags > 0xffff) return undefined;
  return { ...saved, tunnel: { type, port, flags } };
}

/**
 * The kernel table as the policy sees it: each destination vipguard removed (a record with `removedAs`, of a
 * service the kernel still has, and absent from it) listed at weight 0, marked in `removed`. A destination
 * present in the kernel is always the kernel's entry — an owner who added it back has taken it back.
 */
export function withRemoved(kernel: KernelTable, records: QuarantineRecord[]): KernelTable {
  const out: KernelTable = new Map(kernel);
  for (const r of records) {
    if (!r.removedAs) continue;
    const k = out.get(r.serviceKey);
    if (!k || k.destinations.some((d) => d.key === r.destination)) continue;
    let id;
    try { id = parseDestination(r.destination); } catch { continue; }
    const ghost: Destination = {
      ...r.removedAs, weight: 0, id, key: r.destination, activeConns: 0, inactiveConns: 0, persistentConns: 0,
    };
    out.set(r.serviceKey, { ...k, destinations: [...k.destinations, ghost], removed: new Set([...(k.removed ?? []), r.destination]) });
  }
  return out;
}
