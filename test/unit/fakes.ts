// Fakes for pure-logic actuator tests: an in-memory IPVS table with the real client's contract (editDestination
// resolves to the destination as it was), and a clock whose monotonic and wall readings move separately — the
// wall clock can step both ways, the monotonic one only forward. The real kernel is in test/lab.
import type { IpvsPort } from '../../src/actuator/kernel';
import type { Clock } from '../../src/common/clock';
import type { Destination, DestinationOptions, ForwardMethod, Service } from '../../src/actuator/ipvs/types';
import { DestinationId, ServiceId, destinationKey, serviceKey } from '../../src/actuator/ipvs/identity';

export class FakeClock implements Clock {
  t = 1_000_000;
  wallOffset = 1_780_000_000_000;
  mono(): number { return this.t; }
  wall(): number { return this.t + this.wallOffset; }
  /** time passes: both clocks move */
  advance(ms: number): void { this.t += ms; }
  /** the wall clock steps (NTP, an operator): only it moves */
  stepWall(ms: number): void { this.wallOffset += ms; }
}

export class FakeIpvs implements IpvsPort {
  services = new Map<string, { service: Service; dests: Map<string, Destination> }>();
  calls: string[] = [];
  /** a kernel error for the next calls matching this op, for fault paths */
  failNext?: { op: string; error: Error };

  add(svc: ServiceId, dests: [DestinationId, number][]): void {
    const service = { id: svc, key: serviceKey(svc), scheduler: 'rr', flags: 0, timeout: 0, netmask: '255.255.255.255' } as Service;
    this.services.set(service.key, { service, dests: new Map(dests.map(([d, w]) => [destinationKey(d), FakeIpvs.dest(d, w, 'nat')])) });
  }
  static dest(id: DestinationId, weight: number, forward: ForwardMethod): Destination {
    return { id, key: destinationKey(id), weight, forward, upperThreshold: 0, lowerThreshold: 0, activeConns: 0, inactiveConns: 0, persistentConns: 0 };
  }
  weight(svc: string, dest: string): number | undefined {
    return this.services.get(svc)?.dests.get(dest)?.weight;
  }
  /** someone else's edit, not recorded as vipguard's call */
  setWeight(svc: string, dest: string, weight: number): void {
    const m = this.services.get(svc)!.dests;
    const cur = m.get(dest)!;
    m.set(dest, { ...cur, weight });
  }
  private fail(op: string): void {
    if (this.failNext?.op === op) {
      const e = this.failNext.error;
      this.failNext = undefined;
      throw e;
    }
  }
  async findService(s: ServiceId) { return this.services.get(serviceKey(s))?.service; }
  async listDestinations(s: ServiceId) {
    const e = this.services.get(serviceKey(s));
    if (!e) throw Object.assign(new Error('no such service'), { code: 'ESRCH' });
    return [...e.dests.values()];
  }
  async addService(s: ServiceId, o: { scheduler: string }) {
    this.fail('add-service');
    this.calls.push(`add-service ${serviceKey(s)}`);
    this.add(s, []);
    this.services.get(serviceKey(s))!.service = { ...this.services.get(serviceKey(s))!.service, scheduler: o.scheduler };
  }
  async editService(s: ServiceId, o: { scheduler: string }) {
    const e = this.services.get(serviceKey(s))!;
    e.service = { ...e.service, scheduler: o.scheduler };
  }
  async addDestination(s: ServiceId, d: DestinationId, o: { weight: number; forward: ForwardMethod } & Partial<DestinationOptions>) {
    this.fail('add-dest');
    const m = this.services.get(serviceKey(s))?.dests;
    if (!m) throw Object.assign(new Error('no such service'), { code: 'ESRCH' });
    if (m.has(destinationKey(d))) throw Object.assign(new Error('destination exists'), { code: 'EEXIST' });
    this.calls.push(`add-dest ${destinationKey(d)} ${o.weight}`);
    m.set(destinationKey(d), { ...FakeIpvs.dest(d, o.weight, o.forward), upperThreshold: o.upperThreshold ?? 0, lowerThreshold: o.lowerThreshold ?? 0, ...(o.tunnel ? { tunnel: o.tunnel } : {}) });
  }
  async editDestination(s: ServiceId, d: DestinationId, c: { weight?: number }) {
    this.fail('weight');
    const m = this.services.get(serviceKey(s))?.dests;
    const cur = m?.get(destinationKey(d));
    if (!m || !cur) throw Object.assign(new Error('no such destination'), { code: 'ENOENT' });
    this.calls.push(`weight ${destinationKey(d)} ${c.weight}`);
    m.set(cur.key, { ...cur, weight: c.weight ?? cur.weight });
    return cur; // as the real client: the destination as it was before
  }
  async removeDestination(s: ServiceId, d: DestinationId) {
    this.fail('remove-dest');
    const m = this.services.get(serviceKey(s))?.dests;
    if (!m?.has(destinationKey(d))) throw Object.assign(new Error('no such destination'), { code: 'ENOENT' });
    this.calls.push(`remove-dest ${destinationKey(d)}`);
    m.delete(destinationKey(d));
  }
}
