// The desired IPVS table: configuration + quarantine book + what the kernel lists now, as plain data. Pure — the
// invariants below are enforced here, on the table that is about to be applied, so they hold whichever path led
// to it (a signal, a reload that shrank a service, a restart with a state file, an owner's edit, a probe):
//
//   I1 never all     per service, at most cap = min(maxQuarantined, inService - 1) destinations are held at 0 by
//                    vipguard, where inService counts the destinations the *owner* has in service (weight > 0).
//                    So at least one of them always carries traffic. Beyond the cap the service is in panic and
//                    the oldest quarantines are released (the newest failure is the best evidence).
//   I2 owner wins    a watched destination's weight to give back is the owner's current one: an edit the owner
//                    makes while vipguard holds it at 0 becomes the weight restored, and vipguard never puts back
//                    in service a destination its owner drained (restore only from 0 to a weight > 0).
//   I3 nothing forgotten (with actuator.ts): every destination vipguard set to 0 gets its owner's weight back when
//                    its quarantine ends, when vipguard stops owning it, and on a graceful stop.
// The model-based test (test/unit/actuator-model.test.ts) checks these on the kernel table after every step.
import type { Config, ServiceConfig } from '../config/config';
import type { Destination, ForwardMethod } from './ipvs/types';
import { DestinationId, ServiceId, destinationKey, serviceKey } from './ipvs/identity';
import { QuarantineBook, QuarantineRecord, capFor, quarantined } from './policy';
import { KernelService, KernelTable, destinationIdOf, ownedDestinations, serviceIdOf } from './kernel';

export interface DesiredDestination {
  id: DestinationId;
  key: string;
  /** undefined: leave the kernel's weight alone */
  weight?: number;
  forward?: ForwardMethod;
  quarantined: boolean;
}

export interface DesiredService {
  name: string;
  id: ServiceId;
  key: string;
  manage: boolean;
  scheduler: string;
  /** managed: the exact set; watched: the owned destinations present in the kernel */
  destinations: DesiredDestination[];
  /** watched service absent from the kernel */
  missing: boolean;
}

export interface Plan {
  services: DesiredService[];
  /** quarantines beyond the cap (I1): release them in the book */
  overCap: { service: string; destination: string }[];
  /** services where the book wants more out than the cap allows */
  panic: Set<string>;
  /** watched destinations whose owner changed the weight while vipguard held them at 0 (I2) */
  ownerEdits: { service: string; destination: string; weight: number }[];
  /** released records whose weight is back (or has nothing to come back to) */
  restored: { service: string; destination: string }[];
}

const FORWARD: Record<'masq' | 'route' | 'tunnel', ForwardMethod> = { masq: 'nat', route: 'dr', tunnel: 'tunnel' };

/** One service as the policy sees it: who is in service by the owner's will, and whom vipguard holds out. */
export interface ServiceView {
  /** destinations the owner has in service (weight > 0), owned by vipguard or not */
  inService: number;
  cap: number;
  /** quarantines that count against the cap, newest first */
  held: QuarantineRecord[];
  /** owner's weight per destination key (managed: the configuration; watched: the kernel, or what vipguard holds) */
  ownerWeight: Map<string, number>;
  /** kernel weight per destination key */
  kernelWeight: Map<string, number>;
}

export function viewOf(s: ServiceConfig, book: QuarantineBook, k: KernelService | undefined): ServiceView {
  const ownerWeight = new Map<string, number>();
  const kernelWeight = new Map<string, number>((k?.destinations ?? []).map((d) => [d.key, d.weight]));
  if (s.manage) {
    for (const d of s.destinations ?? []) ownerWeight.set(destinationKey(destinationIdOf(d)), d.weight);
  } else {
    for (const d of k?.destinations ?? []) ownerWeight.set(d.key, watchedOwnerWeight(book.get(s.name, d.key), d));
  }
  const owned = new Set(ownedDestinations(s, k).map(destinationKey));
  const held = book.quarantinedIn(s.name)
    .filter((r) => owned.has(r.destination) && (ownerWeight.get(r.destination) ?? 0) > 0 && (s.manage || kernelWeight.has(r.destination)))
    .sort((a, b) => b.since - a.since);
  const inService = [...ownerWeight.values()].filter((w) => w > 0).length;
  return { inService, cap: capFor(s.quarantine, inService), held, ownerWeight, kernelWeight };
}

/**
 * The owner's weight of a watched destination: the kernel's, unless vipguard holds it at 0 (quarantined, or
 * released and not yet given back) — then the weight it will give back, which follows the owner's edits (I2).
 */
function watchedOwnerWeight(rec: QuarantineRecord | undefined, d: Destination): number {
  const holding = quarantined(rec) || rec?.pendingRestore;
  if (!holding) return d.weight;
  return d.weight > 0 ? d.weight : rec!.restoreWeight;
}

/** Why one more quarantine in this service would break I1, or undefined if it fits. */
export function overCapReason(s: ServiceConfig, view: ServiceView, destination: string): string | undefined {
  if (view.held.some((r) => r.destination === destination)) return undefined;
  if (view.held.length + 1 <= view.cap) return undefined;
  return `panic: ${view.held.length} of ${view.inService} destinations of ${s.name} in service already quarantined ` +
    `(cap ${view.cap}, never all); refusing to quarantine ${destination}`;
}

export function plan(config: Config, book: QuarantineBook, kernel: KernelTable): Plan {
  const out: Plan = { services: [], overCap: [], panic: new Set(), ownerEdits: [], restored: [] };
  for (const s of config.services) {
    const id = serviceIdOf(s);
    const key = serviceKey(id);
    const k = kernel.get(key);
    const view = viewOf(s, book, k);
    const held = new Set(view.held.slice(0, view.cap).map((r) => r.destination));
    for (const r of view.held.slice(view.cap)) out.overCap.push({ service: s.name, destination: r.destination });
    const wanted = book.quarantinedIn(s.name).filter((r) => (view.ownerWeight.get(r.destination) ?? 0) > 0).length;
    if (wanted > view.cap) out.panic.add(s.name);
    if (s.manage) {
      out.services.push({
        name: s.name, id, key, manage: true, scheduler: s.scheduler, missing: false,
        destinations: (s.destinations ?? []).map((d) => {
          const did = destinationIdOf(d);
          const dkey = destinationKey(did);
          const q = held.has(dkey);
          const rec = book.get(s.name, dkey);
          if (rec?.pendingRestore && view.kernelWeight.get(dkey) === d.weight) out.restored.push({ service: s.name, destination: dkey });
          // The configuration is a managed service's owner: a reload's weight is the one to give back (I2).
          if (rec && (quarantined(rec) || rec.pendingRestore) && rec.restoreWeight !== d.weight) out.ownerEdits.push({ service: s.name, destination: dkey, weight: d.weight });
          return { id: did, key: dkey, weight: q ? 0 : d.weight, forward: FORWARD[d.forward], quarantined: q };
        }),
      });
      continue;
    }
    const owned = new Set(ownedDestinations(s, k).map(destinationKey));
    const dests: DesiredDestination[] = [];
    for (const d of k?.destinations ?? []) {
      if (!owned.has(d.key)) continue;
      const rec = book.get(s.name, d.key);
      const q = held.has(d.key);
      const holding = quarantined(rec) || rec?.pendingRestore;
      if (holding && d.weight > 0 && d.weight !== rec!.restoreWeight) out.ownerEdits.push({ service: s.name, destination: d.key, weight: d.weight });
      let weight: number | undefined;
      if (q) weight = 0;
      else if (holding && d.weight === 0 && rec!.restoreWeight > 0) weight = rec!.restoreWeight; // give back (I3), only from 0 (I2)
      else if (rec?.pendingRestore) out.restored.push({ service: s.name, destination: d.key });
      dests.push({ id: d.id, key: d.key, weight, quarantined: q });
    }
    // A watched destination someone deleted has no weight to give back: whoever adds it again chooses its weight.
    for (const r of book.all()) {
      if (r.service === s.name && (r.pendingRestore || quarantined(r)) && !k?.destinations.some((d) => d.key === r.destination)) {
        if (r.pendingRestore) out.restored.push({ service: s.name, destination: r.destination });
      }
    }
    out.services.push({ name: s.name, id, key, manage: false, scheduler: s.scheduler, missing: !k, destinations: dests });
  }
  return out;
}
