// Rescue refused connects: hold back, once, the RST that refuses a connect to a configured service while it has
// other destinations in service (bpf/rsthold.bpf.c, a cgroup_skb ingress program; read its header for the kernel
// behaviour this rests on and the bounds it enforces).
//
// Why it is the actuator's: it changes what applications see (control). It learns nothing by itself: how many
// destinations are in service comes from the actuator's listing of the kernel after each reconcile
// (setInService), and the refusal it hides is still reported by the receiver (its own cgroup_skb observer), so
// the embedded rules quarantine the refusing destination and IPVS reschedules the held connect's retransmit
// elsewhere.
import { BpfObject, LibbpfError, openBpfObject } from '../native/bpf';
import { bpfObjectPath } from '../common/paths';
import { cgroup2Root } from '../common/cgroup';
import { serviceKey as bpfServiceKey } from '../common/service-key';
import { ServiceId, describeService, parseService, serviceKey } from './ipvs/identity';
import type { ActuatorEvents } from './actuator';
import type { Logger } from '../common/log';

export interface HoldRefusalsOptions {
  /** cgroup v2 directory whose sockets it applies to; default: the root of the cgroup2 mount (every process) */
  cgroup?: string;
  /** after a held connect was refused again, pass every refusal of that service for this long (default 2000) */
  failOpenMs?: number;
}

/** enum vg_hold_counter in bpf/rsthold.bpf.c, in order. */
export const HOLD_COUNTERS = ['refusals', 'held', 'passedAgain', 'passedFewInService', 'passedRescueFailed', 'passedNoMemory'] as const;
export type HoldCounter = (typeof HOLD_COUNTERS)[number];

export interface HoldRefusalsStatus {
  active: boolean;
  /** why it is not active: refused connects reach the application at once */
  reason?: string;
  cgroup?: string;
  services: { service: string; inService: number; holding: boolean }[];
  counters?: Record<HoldCounter, number>;
}

export interface InServiceEntry {
  service: ServiceId;
  /** destinations with weight > 0 as the kernel lists them; below 2 no refusal is held */
  inService: number;
}

const MIN_IN_SERVICE = 2;

export class RefusalHold {
  private obj?: BpfObject;
  /** canonical service key -> the map key and the count last written */
  private services = new Map<string, { id: ServiceId; key: Buffer; inService: number }>();
  private reason?: string;
  private cgroup?: string;

  constructor(private readonly opts: HoldRefusalsOptions, private readonly log: Logger) {}

  /**
   * Loads and attaches, and says what is active. On any failure it stays inactive and says why: refused connects
   * then reach the application at once, as without it. Every service starts at 0 in service (nothing held) until
   * setInService says otherwise.
   */
  start(services: ServiceId[]): HoldRefusalsStatus {
    const cgroup = this.opts.cgroup ?? cgroup2Root();
    if (!cgroup) return this.inactive('no cgroup2 mount found (mount -t cgroup2 none /sys/fs/cgroup)');
    try {
      this.obj = openBpfObject(bpfObjectPath('rsthold'));
      const failOpen = Buffer.alloc(8);
      failOpen.writeBigUInt64LE(BigInt(Math.round((this.opts.failOpenMs ?? 2000) * 1e6)));
      this.obj.setGlobal('cfg_fail_open_ns', failOpen);
      this.obj.load();
      this.setServices(services);
      this.obj.attach('vg_hold_rst', { cgroup });
    } catch (e) {
      const err = e as LibbpfError;
      this.obj?.close();
      this.obj = undefined;
      return this.inactive(`attaching cgroup_skb ingress to ${cgroup}: ${err.message}${err.logTail ? ` (${err.logTail.trim().split('\n').pop()})` : ''}`);
    }
    this.cgroup = cgroup;
    this.reason = undefined;
    const names = [...this.services.values()].map((s) => describeService(s.id)).join(', ');
    this.log.info(`holdRefusals: active on cgroup ${cgroup}: the RST refusing a connect to ${names || '(no TCP service)'} is held back once ` +
      `while the service has >= ${MIN_IN_SERVICE} destinations in service, so IPVS reschedules the SYN retransmit`);
    return this.status();
  }

  private inactive(reason: string): HoldRefusalsStatus {
    this.reason = `${reason} — refused connects reach the application at once`;
    this.log.warn(`holdRefusals: inactive: ${this.reason}`);
    return this.status();
  }

  /** The configured services (on reload): new ones start at 0 in service, removed ones leave the kernel map. */
  setServices(services: ServiceId[]): void {
    const next = new Map<string, { id: ServiceId; key: Buffer; inService: number }>();
    for (const id of services) {
      // The program matches an RST's source address and port: address services of TCP only.
      if (id.kind !== 'address' || id.protocol !== 'tcp') continue;
      const k = serviceKey(id);
      next.set(k, this.services.get(k) ?? { id, key: bpfServiceKey(id.address, id.port), inService: 0 });
    }
    for (const [k, s] of next) if (!this.services.has(k)) this.write(s.key, 0);
    for (const [k, s] of this.services) if (!next.has(k)) this.obj?.mapDelete('in_service', s.key);
    this.services = next;
  }

  /** Destinations in service per service, from the actuator's latest listing of the kernel. */
  setInService(entries: InServiceEntry[]): void {
    for (const e of entries) {
      if (!Number.isInteger(e.inService) || e.inService < 0) {
        throw new RangeError(`holdRefusals.setInService: inService of ${serviceKey(e.service)} must be an integer >= 0, got ${e.inService}`);
      }
      const s = this.services.get(serviceKey(e.service));
      if (!s || s.inService === e.inService) continue;
      this.write(s.key, e.inService);
      s.inService = e.inService;
    }
  }

  private write(key: Buffer, n: number): void {
    if (!this.obj) return;
    const v = Buffer.alloc(4);
    v.writeUInt32LE(n);
    this.obj.mapUpdate('in_service', key, v);
  }

  counters(): Record<HoldCounter, number> | undefined {
    if (!this.obj) return undefined;
    const sums = this.obj.percpuSums('hold_counters', HOLD_COUNTERS.length);
    return Object.fromEntries(HOLD_COUNTERS.map((n, i) => [n, Number(sums[i])])) as Record<HoldCounter, number>;
  }

  status(): HoldRefusalsStatus {
    return {
      active: !!this.obj, reason: this.reason, cgroup: this.cgroup,
      services: [...this.services.entries()].map(([k, s]) => ({ service: k, inService: s.inService, holding: !!this.obj && s.inService >= MIN_IN_SERVICE })),
      counters: this.counters(),
    };
  }

  close(): void {
    this.obj?.close();
    this.obj = undefined;
  }
}

/**
 * What the actuator's status says, as setInService entries: destinations at weight > 0 per service, and 0 for a
 * service in panic (more destinations failing than may be quarantined: holding its refusals would only delay them).
 */
export function inServiceOf(status: object): InServiceEntry[] {
  const services = (status as { services?: { service: string; panic?: boolean; destinations?: { weight: number }[] }[] }).services ?? [];
  return services.map((s) => ({
    service: parseService(s.service),
    inService: s.panic ? 0 : (s.destinations ?? []).filter((d) => d.weight > 0).length,
  }));
}

/** The actuator's events, with `after` called once each reconcile or signal has been handled. */
export function afterActuatorEvents(events: ActuatorEvents, after: () => void): ActuatorEvents {
  return {
    change: (...a) => events.change?.(...a),
    signal: (...a) => { events.signal?.(...a); after(); },
    reconciled: (...a) => { events.reconciled?.(...a); after(); },
  };
}
