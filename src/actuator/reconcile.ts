// Reconcile, do not remember: desired state (desired.ts) against what the kernel lists now, as a list of
// changes applied with idempotent calls — like kube-proxy's IPVS proxier. `diff` is pure (unit-tested with plain data); `apply` is the only part that talks to the kernel and returns
// every failure instead of stopping at the first.
//
// Ownership: a *managed* service (config `manage: true`) is vipguard's whole — service, destination set,
// weights. A *watched* service belongs to someone else; vipguard only sets weights of its owned destinations
// (config `destinations`, else all) to 0 and back — or, for UDP, removes them and adds them back exactly as they
// were (holdout.ts). Nothing else in the IPVS table is read for changes or touched.
import type { ForwardMethod } from './ipvs/types';
import { DestinationId, ServiceId, destinationKey, serviceKey } from './ipvs/identity';
import type { DesiredService } from './desired';
import type { IpvsPort, KernelTable } from './kernel';
import { SavedDestination, holdsByRemoval, savedOf } from './holdout';

export type Change =
  | { op: 'add-service'; name: string; service: ServiceId; scheduler: string }
  | { op: 'edit-service'; name: string; service: ServiceId; scheduler: string; from: string }
  | { op: 'add-destination'; name: string; service: ServiceId; destination: DestinationId; weight: number; forward: ForwardMethod; why: 'config' | 'restore'; restoring?: SavedDestination }
  | { op: 'edit-destination'; name: string; service: ServiceId; destination: DestinationId; weight: number; forward?: ForwardMethod; from: number; why: 'quarantine' | 'restore' | 'config' }
  | { op: 'remove-destination'; name: string; service: ServiceId; destination: DestinationId; why: 'config' | 'quarantine'; saved?: SavedDestination };

/** Why a change was made, as telemetry and logs name it: quarantine, restore, or the change itself (config). */
export const changeWhy = (c: Change): string => ('why' in c && c.why !== 'config' ? c.why : c.op);

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
    const removal = s.id.kind === 'address' && holdsByRemoval(s.id.protocol);
    for (const d of s.destinations) {
      const cur = have.get(d.key);
      if (!cur) {
        if (s.manage) changes.push({ op: 'add-destination', name: s.name, service: s.id, destination: d.id, weight: d.weight ?? 1, forward: d.forward ?? 'nat', why: 'config' });
        continue;
      }
      if (removal) {
        // Held out by removal (holdout.ts): weight 0 means absent, a weight back means added back as it was.
        const ghost = k?.removed?.has(d.key) ?? false;
        if (d.quarantined && !ghost) {
          const saved = savedOf(cur);
          if (typeof saved === 'string') changes.push({ op: 'edit-destination', name: s.name, service: s.id, destination: d.id, weight: 0, from: cur.weight, why: 'quarantine' });
          else changes.push({ op: 'remove-destination', name: s.name, service: s.id, destination: d.id, why: 'quarantine', saved });
          continue;
        }
        if (ghost) {
          const restoring = savedOf(cur);
          const weight = d.weight ?? 0;
          if (!d.quarantined && weight > 0 && typeof restoring !== 'string') {
            changes.push({ op: 'add-destination', name: s.name, service: s.id, destination: d.id, weight, forward: (s.manage && d.forward) || restoring.forward, why: 'restore', restoring });
          }
          continue;
        }
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
        if (!wanted.has(d.key) && !k.removed?.has(d.key)) changes.push({ op: 'remove-destination', name: s.name, service: s.id, destination: d.id, why: 'config' });
      }
    }
  }
  // Capacity first: add and restore before removing, so a service is never emptier than it has to be.
  const order: Record<Change['op'], number> = { 'add-service': 0, 'edit-service': 1, 'add-destination': 2, 'edit-destination': 3, 'remove-destination': 4 };
  return changes.sort((a, b) => order[a.op] - order[b.op]);
}

export type IpvsWriter = Pick<IpvsPort, 'addService' | 'editService' | 'addDestination' | 'editDestination' | 'removeDestination'>;

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
          await ipvs.addDestination(c.service, c.destination, { ...c.restoring, weight: c.weight, forward: c.forward });
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

/** A change's telemetry attributes (its span's and its log record's): service, action, destination. */
export function changeAttributes(c: Change): { 'vipguard.service': string; 'vipguard.action': string; 'vipguard.destination'?: string } {
  const action = changeWhy(c);
  return c.op === 'add-service' || c.op === 'edit-service'
    ? { 'vipguard.service': c.name, 'vipguard.action': action }
    : { 'vipguard.service': c.name, 'vipguard.action': action, 'vipguard.destination': destinationKey(c.destination) };
}

export function describeChange(c: Change): string {
  const svc = `${c.name} (${serviceKey(c.service)})`;
  switch (c.op) {
    case 'add-service': return `add service ${svc} scheduler ${c.scheduler}`;
    case 'edit-service': return `set scheduler of ${svc} ${c.from} -> ${c.scheduler}`;
    case 'add-destination': return `${c.why === 'restore' ? 'restore: add back' : 'add'} ${destinationKey(c.destination)} to ${svc} weight ${c.weight}${c.restoring ? ` forward ${c.forward}${thresholds(c.restoring)}` : ''}`;
    case 'edit-destination': return `${c.why}: weight of ${destinationKey(c.destination)} in ${svc} ${c.from} -> ${c.weight}${c.forward ? ` forward ${c.forward}` : ''}`;
    case 'remove-destination': return `${c.why === 'quarantine' ? 'quarantine: remove' : 'remove'} ${destinationKey(c.destination)} from ${svc}${c.saved ? ` (weight ${c.saved.weight}, kept to add back)` : ''}`;
  }
}

function thresholds(d: SavedDestination): string {
  return (d.upperThreshold ? ` upper threshold ${d.upperThreshold}` : '') + (d.lowerThreshold ? ` lower threshold ${d.lowerThreshold}` : '') +
    (d.tunnel ? ` tunnel ${d.tunnel.type}` : '');
}
