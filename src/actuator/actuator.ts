// The actuator: signals in, quarantines out, one way through its parts:
//
//   intake.ts    labels and spans → typed signals for configured services and owned destinations only
//   policy.ts    the quarantine book: decisions, pure, on the monotonic clock
//   desired.ts   book + configuration + kernel → the desired table, with the invariants (never all, owner wins)
//   reconcile.ts diff and apply: the only code that writes to the kernel
//   recovery.ts  the restore scheduler: probes, then releases in the book
//
// This file wires them and keeps the one thing none of them can: what vipguard must still give back when it
// stops owning a destination (a reload dropped it, a stop, a failed start) — invariant I3, "nothing forgotten".
import type { Config, QuarantinePolicy, ServiceConfig } from '../config/config';
import type { FlatSpan } from '../otlp/model';
import type { AlertSignal, AlertTarget, SignalVerdict } from './alerts';
import { QuarantineBook, QuarantineRecord, RateLimiter, quarantined, probing } from './policy';
import { Change, apply, changeAttributes, changeWhy, describeChange, diff } from './reconcile';
import { holdsByRemoval, savedOf, withRemoved } from './holdout';
import { plan, viewOf, overCapReason, Plan } from './desired';
import { IpvsPort, KernelTable, destinationIdOf, ownedDestinations, readKernel, serviceIdOf } from './kernel';
import { Intake } from './intake';
import { Probe, Recovery } from './recovery';
import type { Destination } from './ipvs/types';
import { DestinationId, ServiceId, destinationKey, parseDestination as parseDestinationKey, parseService, serviceKey } from './ipvs/identity';
import { Clock, systemClock, toWall } from '../common/clock';
import { Logger, lineLogger } from '../common/log';

export type { IpvsPort } from './kernel';

export interface ChangeInfo {
  /** wall ms the failure that caused a quarantine was observed (span end or alert arrival) */
  signalAt?: number;
  level?: number;
  holdUntil?: Date;
}

export interface ActuatorEvents {
  /** a change applied to (or failed in) the kernel */
  change?(c: Change, error: Error | undefined, info: ChangeInfo): void;
  signal?(s: AlertSignal, v: SignalVerdict): void;
  reconciled?(ms: number, changes: number, failures: number): void;
}

export interface ActuatorDeps {
  ipvs: IpvsPort;
  clock?: Clock;
  /** direct probe of a destination before restoring it, by its service's settings (probes.ts: probeDestination) */
  probe?: (dest: DestinationId, timeoutMs: number, service: ServiceConfig) => Promise<boolean>;
  saveState?: (records: QuarantineRecord[]) => void;
  initialRecords?: QuarantineRecord[];
  log?: Logger;
  events?: ActuatorEvents;
}

/** How long a service stays reported in panic after a signal was refused at its cap. */
const PANIC_REPORT_MS = 10_000;

export class Actuator implements AlertTarget {
  private readonly book: QuarantineBook;
  private readonly intake: Intake;
  private readonly recovery: Recovery;
  private readonly clock: Clock;
  private readonly log: Logger;
  private kernel: KernelTable = new Map();
  /** records vipguard no longer owns whose weight it must still give back (I3) */
  private orphans: QuarantineRecord[] = [];
  private running?: Promise<void>;
  private again = false;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  /** wall ms of the failure behind each new quarantine, for reaction-time telemetry (bounded by quarantines) */
  private readonly signalAt = new Map<string, number>();
  /** monotonic ms until which a service is reported in panic (configured services only) */
  private readonly panicUntil = new Map<string, number>();
  private lastPlanPanic = new Set<string>();
  lastReconcile?: { at: number; ms: number; changes: number; failures: string[] };

  constructor(private config: Config, private readonly deps: ActuatorDeps) {
    this.clock = deps.clock ?? systemClock;
    this.log = deps.log ?? lineLogger(() => {});
    const rl = config.actuator.rateLimit;
    this.intake = new Intake(config, () => this.kernel);
    this.book = new QuarantineBook(this.adopt(deps.initialRecords ?? []), new RateLimiter(rl.perSecond, rl.burst, this.clock.mono()));
    this.recovery = new Recovery({
      book: this.book, clock: this.clock, probe: deps.probe && this.probeOf(deps.probe),
      policyOf: (s) => this.policyOf(s),
      released: (service, destination, how) => {
        this.log.info(`release ${destination} in ${service}: ${how}`, { 'vipguard.service': service, 'vipguard.destination': destination });
        this.persist();
        void this.reconcile();
      },
    });
  }

  private probeOf(probe: NonNullable<ActuatorDeps['probe']>): Probe {
    return (dest, timeoutMs, name) => {
      const s = this.intake.serviceByName(name);
      return s ? probe(dest, timeoutMs, s) : Promise.resolve(false);
    };
  }

  private policyOf(service: string): QuarantinePolicy | undefined {
    return this.intake.serviceByName(service)?.quarantine;
  }

  /** Records from a state file: the owned ones go into the book, the rest are given back (I3). */
  private adopt(records: QuarantineRecord[]): QuarantineRecord[] {
    const keep: QuarantineRecord[] = [];
    for (const r of records) {
      const s = this.intake.serviceByName(r.service);
      if (s && !r.serviceKey) r.serviceKey = serviceKey(serviceIdOf(s));
      if (s && this.ownedByConfig(s, r)) keep.push(r);
      else if (r.serviceKey && (quarantined(r) || r.pendingRestore)) this.orphans.push({ ...r });
    }
    return keep;
  }

  /** Whether the configuration still gives vipguard this record's destination (same service address too). */
  private ownedByConfig(s: ServiceConfig, r: QuarantineRecord): boolean {
    if (serviceKey(serviceIdOf(s)) !== r.serviceKey) return false;
    return !s.destinations || s.destinations.some((d) => destinationKey(destinationIdOf(d)) === r.destination);
  }

  start(): Promise<void> {
    this.timer = setInterval(() => void this.reconcile(), this.config.actuator.reconcileIntervalMs);
    this.timer.unref();
    this.recovery.kick();
    return this.reconcile();
  }

  /**
   * With `restore`, every weight vipguard holds at 0 goes back to its owner's — a stopped vipguard must not keep
   * destinations out for good — while the state file keeps the quarantines as they were, so a restart (an
   * upgrade, systemctl restart) puts them back in its first reconcile. Without it (a restart's handover) the
   * weights stay 0 too. Returns how many destinations were held at 0 when it stopped.
   */
  async stop(opts: { restore: boolean }): Promise<number> {
    this.stopped = true;
    clearInterval(this.timer);
    this.recovery.stop();
    await this.running;
    const records = this.book.all();
    const held = records.filter((r) => quarantined(r) || r.pendingRestore);
    // Orphans (destinations the configuration dropped) are in no record the next start would read: given back always
    // (normally the reconcile setConfig started has done it already; one that failed there is retried here).
    await this.giveBack(opts.restore ? [...this.orphans, ...held] : [...this.orphans]);
    try {
      this.deps.saveState?.(records);
    } catch (e) {
      this.log.error(`saving quarantine state: ${(e as Error).message}`);
    }
    return held.length;
  }

  /** Telemetry attaches after the first reconcile (its libraries load after it): see src/cli/run.ts. */
  setEvents(events: ActuatorEvents): void {
    this.deps.events = events;
  }

  setConfig(config: Config): void {
    this.config = config;
    this.intake.setConfig(config);
    const names = new Set(config.services.map((s) => s.name));
    for (const k of this.panicUntil.keys()) if (!names.has(k)) this.panicUntil.delete(k);
    const dropped = this.book.take((r) => {
      const s = this.intake.serviceByName(r.service);
      return !s || !this.ownedByConfig(s, r);
    });
    for (const r of dropped) {
      this.signalAt.delete(`${r.service}|${r.destination}`);
      if (quarantined(r) || r.pendingRestore) {
        this.orphans.push(r);
        this.log.info(`give back ${r.destination} in ${r.service}: no longer in the configuration`, { 'vipguard.service': r.service, 'vipguard.destination': r.destination });
      }
    }
    this.persist();
    this.recovery.kick();
    void this.reconcile();
  }

  // ---- intake → policy ---------------------------------------------------------------------------------------

  resolveTarget(labels: Record<string, string>): ReturnType<AlertTarget['resolveTarget']> {
    return this.intake.resolveTarget(labels);
  }

  submit(signal: AlertSignal, observedAt?: number): SignalVerdict {
    const verdict = this.decide(signal, observedAt);
    this.deps.events?.signal?.(signal, verdict);
    return verdict;
  }

  private decide(signal: AlertSignal, observedAt?: number): SignalVerdict {
    if (this.stopped) return { accepted: false, refusal: 'rate-limited', error: 'vipguard is stopping' };
    const svc = this.intake.serviceByName(signal.service);
    const key = destinationKey(signal.destination);
    if (!svc) return { accepted: false, refusal: 'unknown-service', error: `${signal.service} is not a configured service` };
    if (!this.intake.owns(svc, key)) return { accepted: false, refusal: 'not-owned', error: `${key} in ${signal.service} is not owned by vipguard` };
    const now = this.clock.mono();
    const firing = signal.state === 'firing' && !(signal.endsAt && signal.endsAt.getTime() <= this.clock.wall());
    if (!firing) {
      const rec = this.book.resolve(svc.name, key, { source: signal.source, alert: signal.name }, now);
      if (!rec) return { accepted: true, action: 'unchanged' };
      this.log.info(`resolved ${signal.source} ${signal.name}: ${key} in ${svc.name} ends quarantine at ${this.wallDate(rec.holdUntil).toISOString()}, once a probe answers`,
        { 'vipguard.service': svc.name, 'vipguard.destination': key, 'vipguard.source': signal.source, 'vipguard.verdict': 'released' });
      this.persist();
      this.recovery.kick();
      return { accepted: true, action: 'released' };
    }
    const view = viewOf(svc, this.book, this.kernel.get(serviceKey(serviceIdOf(svc))));
    const r = this.book.fire(
      { service: svc.name, serviceKey: serviceKey(serviceIdOf(svc)), destination: key, source: signal.source, alert: signal.name, reason: `${signal.source} ${signal.name}: ${signal.reason}` },
      { policy: svc.quarantine, currentWeight: view.ownerWeight.get(key) ?? 0, now, admit: () => overCapReason(svc, view, key) },
    );
    switch (r.kind) {
      case 'refused':
        if (r.reason === 'cap') this.panicUntil.set(svc.name, now + PANIC_REPORT_MS);
        this.log.warn(`${r.why} (signal: ${signal.source} ${signal.name}: ${signal.reason})`, { 'vipguard.service': svc.name, 'vipguard.destination': key, 'vipguard.source': signal.source, 'vipguard.verdict': r.reason === 'cap' ? 'refused_cap' : 'refused_rate' });
        return { accepted: false, refusal: r.reason === 'cap' ? 'cap' : 'rate-limited', error: r.why };
      case 'unchanged':
        return { accepted: true, action: 'unchanged', until: r.record ? this.wallDate(r.record.holdUntil) : undefined };
      case 'quarantined':
      case 'extended':
        // Written ahead: the state file first, then the kernel (state.ts) — a crash in between leaves a record
        // without a weight 0, never a weight 0 without a record.
        this.persist();
        if (r.kind === 'quarantined') {
          if (this.signalAt.size < 10_000) this.signalAt.set(`${svc.name}|${key}`, observedAt ?? this.clock.wall());
          const until = this.wallDate(r.record.holdUntil).toISOString();
          this.log.info(`quarantine ${key} in ${svc.name} (level ${r.record.level}) until ${until}, then probed: ${signal.source} ${signal.name}: ${signal.reason}`, {
            'vipguard.service': svc.name, 'vipguard.destination': key, 'vipguard.source': signal.source, 'vipguard.verdict': 'quarantined',
            'vipguard.quarantine.level': r.record.level, 'vipguard.quarantine.until': until,
          });
          this.drainNow(svc, signal.destination);
          void this.reconcile(svc.name);
        }
        this.recovery.kick();
        return { accepted: true, action: r.kind, until: this.wallDate(r.record.holdUntil) };
    }
  }

  /** Handshake spans from the OTLP stream (collector or in-process): the embedded rules and late answers. */
  ingestSpans(spans: FlatSpan[]): void {
    const { signals, late } = this.intake.spans(spans, this.clock.wall());
    for (const s of signals) this.submit(s.signal, s.observedAt);
    for (const l of late) {
      const rec = this.book.falseAlarm(l.service, l.destination, `answered late (${l.handshakeMs.toFixed(0)} ms): slow, not dead`);
      if (!rec) continue;
      this.log.info(`lift quarantine of ${l.destination} in ${l.service}: a handshake declared unanswered was answered after ${l.handshakeMs.toFixed(0)} ms — slow, not dead`,
        { 'vipguard.service': l.service, 'vipguard.destination': l.destination, 'vipguard.handshake.late': true });
      this.persist();
      void this.reconcile();
    }
  }

  /**
   * A new quarantine's weight 0 goes out at once — one GET_DEST and one SET_DEST (netlink calls are synchronous),
   * not a listing of the service, and not after a reconcile that happens to be running. The pending connects'
   * SYN retransmits are due within a few hundred milliseconds of the signal, and every one that comes before the
   * weight is 0 goes to the dead destination again (measured in the lab, 6.12 under TCG: 190 ms through a scoped
   * reconcile, 60 of them listing). The cap was checked on the table as the last reconcile saw it; the
   * reconcile that follows checks it again on the table as it is now.
   */
  private drainNow(svc: ServiceConfig, dest: DestinationId): void {
    const service = serviceIdOf(svc);
    if (holdsByRemoval(svc.protocol)) {
      void this.removeNow(svc.name, service, dest);
      return;
    }
    const change: Change = { op: 'edit-destination', name: svc.name, service, destination: dest, weight: 0, from: 0, why: 'quarantine' };
    this.deps.ipvs.editDestination(service, dest, { weight: 0 }).then((before) => {
      const from = (before as Destination | undefined)?.weight;
      if (typeof from === 'number' && from > 0) this.report({ ...change, from }, undefined);
    }, (e: Error) => this.log.warn(`quarantine: ${describeChange(change)} at once failed (${e.message}); the reconcile that follows retries it`,
      { ...changeAttributes(change), 'vipguard.result': 'error' }));
  }

  /** drainNow for a service held out by removal (UDP): one listing, the settings saved ahead, one DEL_DEST. */
  private async removeNow(name: string, service: ServiceId, dest: DestinationId): Promise<void> {
    const key = destinationKey(dest);
    try {
      const cur = (await this.deps.ipvs.listDestinations(service)).find((d) => d.key === key);
      const saved = cur && savedOf(cur);
      if (!cur || cur.weight === 0 || !saved || typeof saved === 'string') return; // the reconcile that follows decides
      const change: Change = { op: 'remove-destination', name, service, destination: dest, why: 'quarantine', saved };
      this.removingAhead([change]);
      await this.deps.ipvs.removeDestination(service, dest);
      this.report(change, undefined);
    } catch (e) {
      this.log.warn(`quarantine: removing ${key} from ${name} at once failed (${(e as Error).message}); the reconcile that follows retries it`,
        { 'vipguard.service': name, 'vipguard.destination': key, 'vipguard.action': 'quarantine', 'vipguard.result': 'error' });
    }
  }

  // ---- reconcile ---------------------------------------------------------------------------------------------

  /**
   * Runs one reconcile; concurrent requests coalesce into one more run after the current one. `only` narrows
   * a run to one service — a new quarantine's pending connects are waiting for their retransmit, so it lists
   * and changes just that service; the periodic run covers the rest.
   */
  reconcile(only?: string): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      let scope = only;
      do {
        this.again = false;
        await this.reconcileOnce(scope);
        scope = undefined;
      } while (this.again && !this.stopped);
    })().finally(() => { this.running = undefined; });
    return this.running;
  }

  private async reconcileOnce(only?: string): Promise<void> {
    const t0 = this.clock.mono();
    let changes: Change[] = [];
    const failures: string[] = [];
    const config = only ? { ...this.config, services: this.config.services.filter((s) => s.name === only) } : this.config;
    try {
      const listed = withRemoved(await readKernel(config.services.map(serviceIdOf), this.deps.ipvs), this.book.all());
      this.kernel = only ? new Map([...this.kernel, ...listed]) : listed;
      const p = this.settle(plan(config, this.book, listed), config);
      changes = diff(p.services, listed);
      this.removingAhead(changes);
      const res = await apply(changes, this.deps.ipvs);
      for (const c of res.applied) this.report(c, undefined);
      for (const f of res.failed) {
        failures.push(`${describeChange(f.change)}: ${f.error.message}`);
        this.report(f.change, f.error);
      }
      if (res.applied.length) {
        const after = withRemoved(await readKernel(config.services.map(serviceIdOf), this.deps.ipvs), this.book.all());
        this.kernel = only ? new Map([...this.kernel, ...after]) : after;
      }
      if (!only && this.orphans.length) this.orphans = await this.giveBack(this.orphans);
      if (!only) this.book.prune((s) => this.policyOf(s), this.clock.mono());
    } catch (e) {
      failures.push(`listing IPVS: ${(e as Error).message}`);
    }
    for (const f of failures) this.log.warn(`reconcile: ${f}`);
    const ms = this.clock.mono() - t0;
    this.lastReconcile = { at: this.clock.wall(), ms, changes: changes.length, failures };
    this.deps.events?.reconciled?.(ms, changes.length, failures.length);
  }

  /**
   * A removal's settings go into the book, and the book to disk, before the destination leaves the kernel: a
   * crash in between leaves a record that can add it back, never a destination gone that nobody can restore.
   */
  private removingAhead(changes: Change[]): void {
    let any = false;
    for (const c of changes) {
      if (c.op !== 'remove-destination' || c.why !== 'quarantine' || !c.saved) continue;
      this.book.removing(c.name, destinationKey(c.destination), c.saved);
      any = true;
    }
    if (any) this.persist();
  }

  /** The plan's bookkeeping goes into the book before its table is applied: over-cap releases, owner edits, restores. */
  private settle(p: Plan, config: Config): Plan {
    const now = this.clock.mono();
    let dirty = false;
    for (const o of p.overCap) {
      this.book.release(o.service, o.destination, now, 'released: over the cap (panic)');
      this.log.warn(`panic in ${o.service}: more destinations failing than the cap allows; releasing the oldest quarantine, ${o.destination}`,
        { 'vipguard.service': o.service, 'vipguard.destination': o.destination, 'vipguard.actuator.panic': 1 });
      dirty = true;
    }
    for (const e of p.ownerEdits) {
      this.book.ownerWeight(e.service, e.destination, e.weight);
      this.log.info(`owner set the weight of ${e.destination} in ${e.service} to ${e.weight} while vipguard held it at 0: that weight is what comes back`,
        { 'vipguard.service': e.service, 'vipguard.destination': e.destination });
      dirty = true;
    }
    for (const r of p.restored) {
      this.book.restored(r.service, r.destination);
      dirty = true;
    }
    if (config === this.config || config.services.length === this.config.services.length) this.lastPlanPanic = p.panic;
    if (dirty) this.persist();
    // Over-cap releases changed the book: plan again so the table applied is the settled one.
    return p.overCap.length ? plan(config, this.book, this.kernel) : p;
  }

  /**
   * Gives back the weight of destinations vipguard holds at 0 but no longer owns (or is stopping): only from 0,
   * only to the weight recorded as the owner's (I2, I3). Returns the records still to do (a failed edit).
   */
  private async giveBack(records: QuarantineRecord[]): Promise<QuarantineRecord[]> {
    const left: QuarantineRecord[] = [];
    let kernel: KernelTable;
    const ids = new Map<string, ServiceId>();
    for (const r of records) {
      try { ids.set(r.serviceKey, parseService(r.serviceKey)); } catch { /* a record without a usable service: nothing to give back */ }
    }
    try {
      kernel = await readKernel([...ids.values()], this.deps.ipvs);
    } catch (e) {
      this.log.warn(`giving back weights: listing IPVS: ${(e as Error).message}`);
      return records;
    }
    for (const r of records) {
      const id = ids.get(r.serviceKey);
      const d = kernel.get(r.serviceKey)?.destinations.find((x) => x.key === r.destination);
      if (id && !d && kernel.has(r.serviceKey) && r.removedAs && r.restoreWeight > 0) {
        // Removed by vipguard (UDP): added back exactly as it was, with the owner's weight.
        let dest: DestinationId;
        try { dest = parseDestinationKey(r.destination); } catch { continue; }
        const change: Change = { op: 'add-destination', name: r.service, service: id, destination: dest, weight: r.restoreWeight, forward: r.removedAs.forward, why: 'restore', restoring: r.removedAs };
        try {
          await this.deps.ipvs.addDestination(id, dest, { ...r.removedAs, weight: r.restoreWeight });
          this.report(change, undefined);
        } catch (e) {
          this.report(change, e as Error);
          left.push(r);
        }
        continue;
      }
      if (!id || !d || d.weight !== 0 || r.restoreWeight <= 0) continue;
      const change: Change = { op: 'edit-destination', name: r.service, service: id, destination: d.id, weight: r.restoreWeight, from: 0, why: 'restore' };
      try {
        await this.deps.ipvs.editDestination(id, d.id, { weight: r.restoreWeight });
        this.report(change, undefined);
      } catch (e) {
        this.report(change, e as Error);
        left.push(r);
      }
    }
    return left;
  }

  private report(c: Change, error: Error | undefined): void {
    const info: ChangeInfo = {};
    if (c.op === 'edit-destination' || c.op === 'remove-destination' || c.op === 'add-destination') {
      const k = `${c.name}|${destinationKey(c.destination)}`;
      if (changeWhy(c) === 'quarantine' && !error) {
        info.signalAt = this.signalAt.get(k);
        this.signalAt.delete(k);
      }
      const rec = this.book.get(c.name, destinationKey(c.destination));
      if (rec && quarantined(rec)) {
        info.level = rec.level;
        info.holdUntil = this.wallDate(rec.holdUntil);
      }
    }
    // How long the signal took to become a kernel change is the figure an operator checks first when a
    // rescue was late (the receiver's event loop, the collector hop, a slow host).
    if (!error) {
      const ms = info.signalAt !== undefined ? Math.max(0, this.clock.wall() - info.signalAt) : undefined;
      this.log.info(describeChange(c) + (ms !== undefined ? ` (${ms.toFixed(0)} ms after the signal)` : ''),
        { ...changeAttributes(c), 'vipguard.result': 'ok', 'vipguard.actuator.reaction.duration': ms !== undefined ? ms / 1000 : undefined });
    }
    this.deps.events?.change?.(c, error, info);
  }

  private wallDate(mono: number): Date {
    return new Date(toWall(this.clock, mono));
  }

  private persist(): void {
    try {
      this.deps.saveState?.(this.book.all());
    } catch (e) {
      this.log.error(`saving quarantine state: ${(e as Error).message} — quarantines will not survive a restart`);
    }
  }

  // ---- status ------------------------------------------------------------------------------------------------

  inPanic(service: string): boolean {
    return (this.panicUntil.get(service) ?? 0) > this.clock.mono() || this.lastPlanPanic.has(service);
  }

  status(): object {
    const now = this.clock.mono();
    return {
      time: new Date(this.clock.wall()).toISOString(),
      lastReconcile: this.lastReconcile && { ...this.lastReconcile, at: new Date(this.lastReconcile.at).toISOString() },
      givingBack: this.orphans.map((r) => `${r.destination} in ${r.service}`),
      services: this.config.services.map((s) => {
        const id = serviceIdOf(s);
        const k = this.kernel.get(serviceKey(id));
        const owned = new Set(ownedDestinations(s, k).map(destinationKey));
        return {
          name: s.name, service: serviceKey(id), managed: s.manage, present: !!k, panic: this.inPanic(s.name),
          quarantined: this.book.quarantinedIn(s.name).length,
          destinations: (k?.destinations ?? []).map((d) => {
            const r = this.book.get(s.name, d.key);
            const q = quarantined(r);
            return {
              destination: d.key, owned: owned.has(d.key), weight: d.weight, activeConns: d.activeConns, inactiveConns: d.inactiveConns,
              // held out by removal (UDP): not in the kernel's table until it is added back
              ...(k?.removed?.has(d.key) ? { removed: true } : {}),
              state: q ? (probing(r, now) ? 'probing' : 'quarantined') : r?.pendingRestore ? 'restoring' : 'healthy',
              until: q ? this.wallDate(r!.holdUntil).toISOString() : undefined, level: r?.level, reasons: r?.reasons, source: q ? r!.source : undefined,
            };
          }),
        };
      }),
    };
  }

  /** Re-plans the restore scheduler now (after a clock step; tests driving a fake clock). */
  tick(): void {
    this.recovery.kick();
  }

  /** Resolves once no probe and no reconcile is running (bounded: tests and shutdown paths). */
  async idle(): Promise<void> {
    for (let i = 0; i < 1000 && (this.recovery.probesInFlight > 0 || this.running); i++) {
      await (this.running ?? new Promise((r) => setImmediate(r)));
    }
  }

  /** The book's records, for tests and the state file. */
  quarantines(): QuarantineRecord[] {
    return this.book.all();
  }

  /** Sizes of everything keyed by outside input, for the bounded-memory invariant. */
  memory(): { records: number; orphans: number; ruleWindows: number; signalAt: number; panic: number } {
    return { records: this.book.all().length, orphans: this.orphans.length, ruleWindows: this.intake.ruleWindows, signalAt: this.signalAt.size, panic: this.panicUntil.size };
  }
}

