// The restore scheduler: when a quarantine's hold is over, probe the destination directly (not through the
// virtual service) every probeInterval, and release it after probeSuccesses answers in a row — "probe, then
// restore", so a destination still dead is never put back in service to find out. A backend that restarts in
// 3 s is back in service within about one probe interval of accepting connections again (issue 15).
//
// It only writes probe results into the book; the reconciler gives the weight back.
import type { QuarantinePolicy } from '../config/config';
import type { DestinationId } from './ipvs/identity';
import { parseDestination } from './ipvs/identity';
import type { QuarantineBook } from './policy';
import type { Clock } from '../common/clock';

/** Probes one destination of the named service directly; true when it answered (src/actuator/probes.ts). */
export type Probe = (dest: DestinationId, timeoutMs: number, service: string) => Promise<boolean>;

export interface RecoveryDeps {
  book: QuarantineBook;
  clock: Clock;
  policyOf: (service: string) => QuarantinePolicy | undefined;
  probe?: Probe;
  /** something was released: persist and reconcile */
  released: (service: string, destination: string, how: string) => void;
}

export class Recovery {
  private timer?: NodeJS.Timeout;
  private wakeAt = Infinity;
  private readonly inFlight = new Set<string>();
  /** monotonic ms of each probing destination's next probe */
  private readonly nextProbe = new Map<string, number>();
  private stopped = false;

  constructor(private readonly deps: RecoveryDeps) {}

  /** Re-plans after any change to the book (a new quarantine, a resolved alert, a reload). */
  kick(): void {
    if (this.stopped) return;
    const now = this.deps.clock.mono();
    const { book } = this.deps;
    const probing = book.probing(now);
    const live = new Set(probing.map((r) => `${r.service}|${r.destination}`));
    for (const k of this.nextProbe.keys()) if (!live.has(k)) this.nextProbe.delete(k);
    let next = book.nextHoldEnd(now) ?? Infinity;
    for (const r of probing) {
      const k = `${r.service}|${r.destination}`;
      const p = this.deps.policyOf(r.service);
      if (!p || this.inFlight.has(k)) continue;
      const due = this.nextProbe.get(k) ?? now;
      if (due > now) { next = Math.min(next, due); continue; }
      if (!p.probeBeforeRestore || !this.deps.probe) {
        book.release(r.service, r.destination, now, 'hold over (restore unprobed)');
        this.deps.released(r.service, r.destination, 'hold over');
        continue;
      }
      this.nextProbe.set(k, now + p.probeIntervalMs);
      next = Math.min(next, now + p.probeIntervalMs);
      void this.probeOnce(r.service, r.destination, p);
    }
    this.arm(next);
  }

  private arm(at: number): void {
    if (at === this.wakeAt && this.timer) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.wakeAt = at;
    if (!Number.isFinite(at)) return;
    this.timer = setTimeout(() => { this.timer = undefined; this.wakeAt = Infinity; this.kick(); }, Math.max(0, at - this.deps.clock.mono()) + 1);
    this.timer.unref();
  }

  private async probeOnce(service: string, destination: string, p: QuarantinePolicy): Promise<void> {
    const k = `${service}|${destination}`;
    this.inFlight.add(k);
    let ok = false;
    try {
      // A probe that never settles (a bug, a wedged socket) must not stall this destination's recovery for good.
      let guard: NodeJS.Timeout | undefined;
      ok = await Promise.race([
        this.deps.probe!(parseDestination(destination), p.probeTimeoutMs, service),
        new Promise<boolean>((r) => { guard = setTimeout(() => r(false), p.probeTimeoutMs + 250); guard.unref(); }),
      ]);
      clearTimeout(guard);
    } catch {
      ok = false;
    } finally {
      this.inFlight.delete(k);
    }
    if (this.stopped) return;
    if (this.deps.book.probed(service, destination, ok, p.probeSuccesses, this.deps.clock.mono())) {
      this.nextProbe.delete(k);
      this.deps.released(service, destination, `probe answered${p.probeSuccesses > 1 ? ` ${p.probeSuccesses}× in a row` : ''}`);
    }
    this.kick();
  }

  get probesInFlight(): number {
    return this.inFlight.size;
  }

  isProbing(service: string, destination: string): boolean {
    return this.inFlight.has(`${service}|${destination}`);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
