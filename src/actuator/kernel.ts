// What the actuator reads of the kernel, and the identities it reads them by. Only configured services (and the
// services of quarantines being given back after a reload dropped them) are ever listed: everything else in the
// IPVS table is not vipguard's to read for changes or to touch.
import type { ServiceConfig } from '../config/config';
import type { Destination, DestinationOptions, ForwardMethod, Service } from './ipvs/types';
import { DestinationId, ServiceId, parseDestination, parseService, serviceKey } from './ipvs/identity';

export interface KernelService {
  service: Service;
  destinations: Destination[];
  /** destinations vipguard removed (UDP, holdout.ts), listed above at weight 0 though the kernel has no entry */
  removed?: ReadonlySet<string>;
}

/** What the kernel has, by canonical service key. */
export type KernelTable = Map<string, KernelService>;

/** The kernel calls the actuator makes; IpvsClient provides them (test/unit uses an in-memory table). */
export interface IpvsPort {
  findService(s: ServiceId): Promise<Service | undefined>;
  listDestinations(s: ServiceId): Promise<Destination[]>;
  addService(service: ServiceId, options: { scheduler: string }): Promise<void>;
  editService(service: ServiceId, changes: { scheduler: string }): Promise<void>;
  addDestination(service: ServiceId, dest: DestinationId, options: { weight: number; forward: ForwardMethod } & Partial<DestinationOptions>): Promise<void>;
  /** resolves to the destination as it was before the edit, when the client can tell */
  editDestination(service: ServiceId, dest: DestinationId, changes: { weight?: number; forward?: ForwardMethod }): Promise<unknown>;
  removeDestination(service: ServiceId, dest: DestinationId): Promise<void>;
}

export function serviceIdOf(s: { protocol: string; address: string; port: number }): ServiceId {
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

/** Lists the given services (and only them) from the kernel. */
export async function readKernel(ids: ServiceId[], ipvs: Pick<IpvsPort, 'findService' | 'listDestinations'>): Promise<KernelTable> {
  const table: KernelTable = new Map();
  for (const id of ids) {
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
