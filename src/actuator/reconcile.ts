// Reconcile, do not remember: desired state (configuration + quarantine book) against what the kernel lists
// now, as a list of changes applied with idempotent calls — like kube-proxy's IPVS proxier. `desired` and
// `diff` are pure (unit-tested with plain data); `apply` is the only part that talks to the kernel and returns
// every failure instead of stopping at the first.
//
// Ownership: a *managed* service (config `manage: true`) is vipguard's whole — service, destination set,
// weights. A *watched* service belongs to someone else; vipguard only sets weights of its owned destinations
// (config `destinations`, else all) to 0 and back. Nothing else in the IPVS table is read for changes or touched.
import type { Config, ServiceConfig } from '../config/config';
import type { QuarantineBook } from './policy';
import type { Destination, ForwardMethod, Service } from './ipvs/types';
import { DestinationId, ServiceId, destinationKey, parseDestination, parseService, serviceKey } from './ipvs/identity';

export interface KernelService {
  service: Service;
  destinations: Destination[];
}

/** What the kernel has, by canonical service key. */
export type KernelTable = Map<string, KernelService>;

export type Change =
  | { op: 'add-service'; name: string; service: ServiceId; scheduler: string }
  | { op: 'edit-service'; name: string; service: ServiceId; scheduler: string; from: string }
  | { op: 'add-destination'; name: string; service: ServiceId; destination: DestinationId; weight: number; forward: ForwardMethod }
  | { op: 'edit-destination'; name: string; service: ServiceId; destination: DestinationId; weight: number; forward?: ForwardMethod; from: number; why: 'quarantine' | 'restore' | 'config' }
  | { op: 'remove-destination'; name: string; service: ServiceId; destination: DestinationId };

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

const FORWARD: Record<'masq' | 'route' | 'tunnel', ForwardMethod> = { masq: 'nat', route: 'dr', tunnel: 'tunnel' };

export function serviceIdOf(s: ServiceConfig): ServiceId {
  return parseService(`${s.protocol}/${s.address.includes(':') ? `[${s.address}]` : s.address}:${s.port}`);
}

export function destinationIdOf(d: { address: string; port: number }): DestinationId {
  return parseDestination(`${d.address.includes(':') ? `[${d.address}]` : d.address}:${d.port}`);
}

/** The destinations of a configured service vipguard owns, as the kernel lists them now. */
export function ownedDestinations(s: ServiceConfig, kernel: KernelService | undefined): DestinationId[] {
  if (s.destinations) return s.destinations.map(destinationIdOf);
  return (kernel?.destinations ?? []).map((d) => d.id);
}

/** Lists the configured services (and only them) from the kernel. */
export async function readKernel(
  config: Config,
  ipvs: { findService(s: ServiceId): Promise<Service | undefined>; listDestinations(s: ServiceId): Promise<Destination[]> },
): Promise<KernelTable> {
  const table: KernelTable = new Map();
  for (const s of config.services) {
    const id = serviceIdOf(s);
    const service = await ipvs.findService(id);
    if (!service) continue;
    try {
      table.set(serviceKey(id), { service, destinations: await ipvs.listDestinations(id) });
    } catch (e) {
      // Deleted by someone else between the two calls (seen in the lab): absent, not a failed reconcile of every service.
      if ((e as { code?: string }).code !== 'ESRCH') throw e;
    }
  }
  return table;
}

export function desired(config: Config, book: QuarantineBook, kernel: KernelTable, now: number): DesiredService[] {
  return config.services.map((s) => {
    const id = serviceIdOf(s);
    const key = serviceKey(id);
    const k = kernel.get(key);
    if (s.manage) {
      return {
        name: s.name, id, key, manage: true, scheduler: s.scheduler, missing: false,
        destinations: (s.destinations ?? []).map((d) => {
          const did = destinationIdOf(d);
          const dkey = destinationKey(did);
          const q = book.isQuarantined(s.name, dkey, now);
          return { id: did, key: dkey, weight: q ? 0 : d.weight, forward: FORWARD[d.forward], quarantined: q };
        }),
      };
    }
    const owned = new Set(ownedDestinations(s, k).map(destinationKey));
    const dests: DesiredDestination[] = (k?.destinations ?? []).filter((d) => owned.has(d.key)).map((d) => {
      const q = book.isQuarantined(s.name, d.key, now);
      const rec = book.get(s.name, d.key);
      const weight = q ? 0 : rec?.pendingRestore && rec.restoreWeight ? rec.restoreWeight : undefined;
      return { id: d.id, key: d.key, weight, quarantined: q };
    });
    return { name: s.name, id, key, manage: false, scheduler: s.scheduler, missing: !k, destinations: dests };
  });
}

export function diff(want: DesiredService[], kernel: KernelTable): Change[] {
  const changes: Change[] = [];
  for (const s of want) {
    const k = kernel.get(s.key);
    if (!s.manage && !k) continue;
    if (s.manage && !k) changes.push({ op: 'add-service', name: s.name, service: s.id, scheduler: s.scheduler });
    if (s.manage && k && k.service.scheduler !== s.scheduler) {
      changes.push({ op: 'edit-service', name: s.name, service: s.id, scheduler: s.scheduler, from: k.service.scheduler });
    }
    const have = new Map((k?.destinations ?? []).map((d) => [d.key, d]));
    for (const d of s.destinations) {
      const cur = have.get(d.key);
      if (!cur) {
        if (s.manage) changes.push({ op: 'add-destination', name: s.name, service: s.id, destination: d.id, weight: d.weight ?? 1, forward: d.forward ?? 'nat' });
        continue;
      }
      const weightOff = d.weight !== undefined && cur.weight !== d.weight;
      const forwardOff = s.manage && d.forward !== undefined && cur.forward !== d.forward;
      if (weightOff || forwardOff) {
        const why = d.quarantined ? 'quarantine' : weightOff && cur.weight === 0 ? 'restore' : 'config';
        changes.push({
          op: 'edit-destination', name: s.name, service: s.id, destination: d.id, weight: d.weight ?? cur.weight,
          forward: forwardOff ? d.forward : undefined, from: cur.weight, why,
        });
      }
    }
    if (s.manage && k) {
      const wanted = new Set(s.destinations.map((d) => d.key));
      for (const d of k.destinations) {
        if (!wanted.has(d.key)) changes.push({ op: 'remove-destination', name: s.name, service: s.id, destination: d.id });
      }
    }
  }
  // Capacity first: add and restore before removing, so a service is never emptier than it has to be.
  const order: Record<Change['op'], number> = { 'add-service': 0, 'edit-service': 1, 'add-destination': 2, 'edit-destination': 3, 'remove-destination': 4 };
  return changes.sort((a, b) => order[a.op] - order[b.op]);
}

/** The kernel calls `apply` needs; IpvsClient provides them. */
export interface IpvsWriter {
  addService(service: ServiceId, options: { scheduler: string }): Promise<void>;
  editService(service: ServiceId, changes: { scheduler: string }): Promise<void>;
  addDestination(service: ServiceId, dest: DestinationId, options: { weight: number; forward: ForwardMethod }): Promise<void>;
  editDestination(service: ServiceId, dest: DestinationId, changes: { weight?: number; forward?: ForwardMethod }): Promise<unknown>;
  removeDestination(service: ServiceId, dest: DestinationId): Promise<void>;
}

export interface ApplyResult {
  applied: Change[];
  failed: { change: Change; error: Error }[];
}

export async function apply(changes: Change[], ipvs: IpvsWriter): Promise<ApplyResult> {
  const result: ApplyResult = { applied: [], failed: [] };
  for (const c of changes) {
    try {
      switch (c.op) {
        case 'add-service':
          await ipvs.addService(c.service, { scheduler: c.scheduler });
          break;
        case 'edit-service':
          await ipvs.editService(c.service, { scheduler: c.scheduler });
          break;
        case 'add-destination':
          await ipvs.addDestination(c.service, c.destination, { weight: c.weight, forward: c.forward });
          break;
        case 'edit-destination':
          await ipvs.editDestination(c.service, c.destination, c.forward ? { weight: c.weight, forward: c.forward } : { weight: c.weight });
          break;
        case 'remove-destination':
          await ipvs.removeDestination(c.service, c.destination);
          break;
      }
      result.applied.push(c);
    } catch (e) {
      result.failed.push({ change: c, error: e as Error });
    }
  }
  return result;
}

export function describeChange(c: Change): string {
  const svc = `${c.name} (${serviceKey(c.service)})`;
  switch (c.op) {
    case 'add-service': return `add service ${svc} scheduler ${c.scheduler}`;
    case 'edit-service': return `set scheduler of ${svc} ${c.from} -> ${c.scheduler}`;
    case 'add-destination': return `add ${destinationKey(c.destination)} to ${svc} weight ${c.weight}`;
    case 'edit-destination': return `${c.why}: weight of ${destinationKey(c.destination)} in ${svc} ${c.from} -> ${c.weight}${c.forward ? ` forward ${c.forward}` : ''}`;
    case 'remove-destination': return `remove ${destinationKey(c.destination)} from ${svc}`;
  }
}
