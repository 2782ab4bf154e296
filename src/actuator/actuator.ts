// The actuator: alert signals in (embedded rules, Alertmanager API, webhook), quarantines out. It owns the
// quarantine book and reconciles the kernel's IPVS table to it — after every accepted signal, at every
// quarantine's end, and every reconcileInterval to undo external edits.
import * as net from 'node:net';
import type { Config, ServiceConfig } from '../config/config';
import type { FlatSpan } from '../otlp/model';
import { AlertSignal, AlertTarget, SignalVerdict, TARGET_LABELS } from './alerts';
import { QuarantineBook, QuarantineRecord, RateLimiter } from './policy';
import { RuleEngine } from './rules';
import { Change, IpvsWriter, KernelTable, apply, describeChange, desired, destinationIdOf, diff, ownedDestinations, readKernel, serviceIdOf } from './reconcile';
import type { Destination, Service } from './ipvs/types';
import { DestinationId, ServiceId, destinationKey, parseDestination, parseService, serviceKey } from './ipvs/identity';
import { formatAddr, parseAddr } from '../common/addr';

export interface IpvsPort extends IpvsWriter {
  findService(s: ServiceId): Promise<Service | undefined>;
  listDestinations(s: ServiceId): Promise<Destination[]>;
}

export interface ActuatorEvents {
  /** a change applied to (or failed in) the kernel; `signalAt` is when the failure that caused it was observed */
  change?(c: Change, error: Error | undefined, info: { signalAt?: number; record?: QuarantineRecord }): void;
  signal?(s: AlertSignal, v: SignalVerdict): void;
  reconciled?(ms: number, changes: number, failures: number): void;
}

export interface ActuatorDeps {
  ipvs: IpvsPort;
  now?: () => number;
  /** direct TCP probe of a destination before restoring it */
  probe?: (dest: DestinationId, timeoutMs: number) => Promise<boolean>;
  saveState?: (records: QuarantineRecord[]) => void;
  initialRecords?: QuarantineRecord[];
  log?: (line: string) => void;
  events?: ActuatorEvents;
}

export function tcpProbe(dest: DestinationId, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: dest.address, port: dest.port, timeout: timeoutMs });
    const done = (ok: boolean) => { s.destroy(); resolve(ok); };
    s.once('connect', () => done(true));
    s.once('timeout', () => done(false));
    s.once('error', () => done(false));
  });
}

const canonAddr = (a: string) => { const p = parseAddr(a); return formatAddr(p.family, p.bytes); };

export class Actuator implements AlertTarget {
  private readonly book: QuarantineBook;
  private readonly rules: RuleEngine;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private kernel: KernelTable = new Map();
  private running?: Promise<void>;
  private again = false;
  private timer?: NodeJS.Timeout;
  private expiryTimer?: NodeJS.Timeout;
  private probing = new Set<string>();
  /** failure observation time of the signal that asked for a change, for reaction-time telemetry */
  private readonly signalAt = new Map<string, number>();
  lastReconcile?: { at: number; ms: number; changes: number; failures: string[] };

  constructor(private config: Config, private readonly deps: ActuatorDeps) {
    this.now = deps.now ?? Date.now;
    this.log = deps.log ?? (() => {});
    const rl = config.actuator.rateLimit;
    this.book = new QuarantineBook(deps.initialRecords ?? [], new RateLimiter(rl.perSecond, rl.burst, this.now()));
    this.rules = new RuleEngine(config.actuator.rules);
    this.retainOwned();
  }

  start(): Promise<void> {
    this.timer = setInterval(() => void this.reconcile(), this.config.actuator.reconcileIntervalMs);
    this.timer.unref();
    return this.reconcile();
  }

  /**
   * With `restore`, the kernel is left as configured — a stopped vipguard must not keep destinations out for
   * good — while the state file keeps the quarantines as they were, so a restart (an upgrade, systemctl
   * restart) puts them back in its first reconcile.
   */
  async stop(opts: { restore: boolean }): Promise<void> {
    clearInterval(this.timer);
    clearTimeout(this.expiryTimer);
    await this.running;
    const records = this.book.all();
    if (opts.restore) {
      const now = this.now();
      const save = this.deps.saveState;
      this.deps.saveState = undefined; // the releases below are for the kernel, not for the next start
      for (const r of records.filter((r) => r.until > now)) this.book.release(r.service, r.destination, now);
      await this.reconcile();
      this.deps.saveState = save;
    }
    try {
      this.deps.saveState?.(records);
    } catch (e) {
      this.log(`saving quarantine state: ${(e as Error).message}`);
    }
  }

  /** Telemetry attaches after the first reconcile (its libraries load after it): see src/cli/run.ts. */
  setEvents(events: ActuatorEvents): void {
    this.deps.events = events;
  }

  setConfig(config: Config): void {
    this.config = config;
    this.rules.setRules(config.actuator.rules);
    this.retainOwned();
    void this.reconcile();
  }

  private serviceByName(name: string): ServiceConfig | undefined {
    return this.config.services.find((s) => s.name === name);
  }

  private serviceByVip(address: string, port: number): ServiceConfig | undefined {
    let a: string;
    try { a = canonAddr(address); } catch { return undefined; }
    return this.config.services.find((s) => s.address === a && s.port === port);
  }

  private owns(s: ServiceConfig, destKey: string): boolean {
    return ownedDestinations(s, this.kernel.get(serviceKey(serviceIdOf(s)))).some((d) => destinationKey(d) === destKey);
  }

  private retainOwned(): void {
    const dropped = this.book.retain((service, dest) => {
      const s = this.serviceByName(service);
      return !!s && (!s.destinations || s.destinations.some((d) => destinationKey(destinationIdOf(d)) === dest));
    });
    for (const r of dropped) this.log(`forgetting quarantine of ${r.destination} in ${r.service}: no longer in the configuration`);
  }

  // ---- AlertTarget -------------------------------------------------------------------------------------------

  resolveTarget(labels: Record<string, string>): ReturnType<AlertTarget['resolveTarget']> {
    let svc: ServiceConfig | undefined;
    const named = TARGET_LABELS.service.map((l) => labels[l]).find((v) => v !== undefined);
    if (named !== undefined) {
      svc = this.serviceByName(named);
      if (!svc) {
        try {
          const id = parseService(named);
          svc = this.config.services.find((s) => serviceKey(serviceIdOf(s)) === serviceKey(id));
        } catch { /* not an identity either */ }
      }
      if (!svc) return { ok: false, refusal: 'unknown-service', error: `unknown service '${named}': not in the configuration` };
    } else if (labels.server_address !== undefined && labels.server_port !== undefined) {
      svc = this.serviceByVip(labels.server_address, Number(labels.server_port));
      if (!svc) return { ok: false, refusal: 'unknown-service', error: `no configured service at ${labels.server_address}:${labels.server_port}` };
    } else {
      return { ok: false, refusal: 'bad-target', error: `no service label: expected one of ${[...TARGET_LABELS.service, 'server_address+server_port'].join(', ')}` };
    }
    let dest: DestinationId;
    try {
      if (labels.backend !== undefined) dest = parseDestination(labels.backend);
      else if (labels.network_peer_address !== undefined && labels.network_peer_port !== undefined) {
        dest = destinationIdOf({ address: canonAddr(labels.network_peer_address), port: Number(labels.network_peer_port) });
      } else {
        return { ok: false, refusal: 'bad-target', error: 'no destination label: expected backend (10.200.0.4:80) or network_peer_address+network_peer_port' };
      }
    } catch (e) {
      return { ok: false, refusal: 'bad-target', error: (e as Error).message };
    }
    const key = destinationKey(dest);
    if (!this.owns(svc, key)) return { ok: false, refusal: 'not-owned', error: `${key} is not a destination of ${svc.name} that vipguard owns` };
    return { ok: true, service: svc.name, serviceId: serviceIdOf(svc), destination: dest };
  }

  submit(signal: AlertSignal, observedAt?: number): SignalVerdict {
    const verdict = this.decide(signal, observedAt);
    this.deps.events?.signal?.(signal, verdict);
    return verdict;
  }

  private decide(signal: AlertSignal, observedAt?: number): SignalVerdict {
    const svc = this.serviceByName(signal.service);
    const key = destinationKey(signal.destination);
    if (!svc || !this.owns(svc, key)) return { accepted: false, refusal: svc ? 'not-owned' : 'unknown-service', error: `${key} in ${signal.service} is not owned by vipguard` };
    const now = this.now();
    const policy = svc.quarantine;
    const firing = signal.state === 'firing' && !(signal.endsAt && signal.endsAt.getTime() <= now);
    if (!firing) {
      const rec = this.book.resolve(svc.name, key, policy, now);
      if (!rec) return { accepted: true, action: 'unchanged' };
      this.log(`resolved ${signal.source} ${signal.name}: ${key} in ${svc.name} ends quarantine at ${new Date(rec.until).toISOString()}`);
      this.scheduleExpiry();
      return { accepted: true, action: 'released', until: new Date(rec.until) };
    }
    const k = this.kernel.get(serviceKey(serviceIdOf(svc)));
    const kd = k?.destinations.find((d) => d.key === key);
    const configured = svc.destinations?.find((d) => destinationKey(destinationIdOf(d)) === key);
    const currentWeight = svc.manage ? configured?.weight ?? 0 : kd?.weight ?? 0;
    const owned = svc.manage
      ? (svc.destinations ?? []).filter((d) => d.weight > 0).length
      : ownedDestinations(svc, k).filter((d) => {
          const dk = destinationKey(d);
          const w = k?.destinations.find((x) => x.key === dk)?.weight ?? 0;
          return w > 0 || this.book.isQuarantined(svc.name, dk, now);
        }).length;
    const r = this.book.fire(svc.name, key, { policy, owned, currentWeight, now, reason: `${signal.source} ${signal.name}: ${signal.reason}`, source: signal.source });
    switch (r.kind) {
      case 'refused':
        this.log(r.why);
        return { accepted: false, refusal: r.reason === 'cap' ? 'cap' : 'rate-limited', error: r.why };
      case 'unchanged':
        return { accepted: true, action: 'unchanged', until: r.record?.until ? new Date(r.record.until) : undefined };
      case 'quarantined':
      case 'extended':
        if (r.kind === 'quarantined') {
          this.signalAt.set(`${svc.name}|${key}`, observedAt ?? now);
          this.log(`quarantine ${key} in ${svc.name} (level ${r.record.level}) until ${new Date(r.record.until).toISOString()}: ${signal.source} ${signal.name}`);
        }
        // Kernel first (the pending connects' retransmits are due), the state file after.
        if (r.kind === 'quarantined') this.drainNow(svc, signal.destination);
        void this.reconcile(svc.name);
        this.persist();
        this.scheduleExpiry();
        return { accepted: true, action: r.kind, until: new Date(r.record.until) };
    }
  }

  /** Handshake spans from the OTLP stream (collector or in-process): the embedded rules. */
  ingestSpans(spans: FlatSpan[]): void {
    const now = this.now();
    for (const hit of this.rules.ingest(spans, now)) {
      const svc = this.serviceByVip(hit.serviceAddress, hit.servicePort);
      if (!svc) continue;
      let dest: DestinationId;
      try {
        dest = destinationIdOf({ address: canonAddr(hit.backendAddress), port: hit.backendPort });
      } catch { continue; }
      const key = destinationKey(dest);
      if (!this.owns(svc, key)) continue;
      this.submit({
        source: 'rule', name: hit.rule, service: svc.name, serviceId: serviceIdOf(svc), destination: dest, state: 'firing',
        fingerprint: `rule:${hit.rule}:${svc.name}:${key}`,
        reason: `${hit.failures} ${hit.outcome} handshake${hit.failures > 1 ? 's' : ''} within ${hit.windowMs / 1000}s`,
      }, hit.observedAt);
    }
    this.rules.sweep(now);
    // After the rules: a late answer may come in the same batch as the attempt it answers (the receiver reports
    // the attempt unanswered at its deadline and the answer arrives before that span is exported); read first,
    // it would find nothing to lift, and the quarantine that follows would stay.
    this.liftFalseAlarms(spans, now);
  }

  /** A late answer from a destination our own rules quarantined: it is slow, not dead — give it back now. */
  private liftFalseAlarms(spans: FlatSpan[], now: number): void {
    for (const s of spans) {
      const a = s.attributes;
      if (s.name !== 'vipguard.connect' || a['vipguard.handshake.late'] !== true || a['vipguard.outcome'] !== 'established') continue;
      const svc = this.serviceByVip(String(a['server.address']), Number(a['server.port']));
      if (!svc || typeof a['network.peer.address'] !== 'string') continue;
      let key: string;
      try {
        key = destinationKey(destinationIdOf({ address: canonAddr(a['network.peer.address']), port: Number(a['network.peer.port']) }));
      } catch { continue; }
      const rec = this.book.get(svc.name, key);
      if (!rec || rec.until <= now || rec.source !== 'rule') continue;
      const ms = Number(a['vipguard.handshake.duration']) * 1000;
      this.book.falseAlarm(svc.name, key, now, `answered late (${ms.toFixed(0)} ms): slow, not dead`);
      this.log(`lift quarantine of ${key} in ${svc.name}: a handshake declared unanswered was answered after ${ms.toFixed(0)} ms — slow, not dead`);
      this.persist();
      void this.reconcile();
    }
  }

  /**
   * A new quarantine's weight 0 goes out at once — one GET_DEST and one SET_DEST (netlink calls are synchronous),
   * not a listing of the service, and not after a reconcile that happens to be running. The pending connects'
   * SYN retransmits are due within a few hundred milliseconds of the signal, and every one that comes before the
   * weight is 0 goes to the dead destination again. Measured in the lab (6.12, TCG): the deadline-to-weight-0 time
   * was 190 ms through the scoped reconcile, of which listing the service took 60. The reconcile that follows
   * verifies the kernel and applies whatever else is due; if this edit fails (destination not there yet), it does
   * the work.
   */
  private drainNow(svc: ServiceConfig, dest: DestinationId): void {
    const service = serviceIdOf(svc);
    const change: Change = { op: 'edit-destination', name: svc.name, service, destination: dest, weight: 0, from: 0, why: 'quarantine' };
    this.deps.ipvs.editDestination(service, dest, { weight: 0 }).then((before) => {
      const from = (before as Destination | undefined)?.weight;
      if (typeof from === 'number' && from > 0) this.report({ ...change, from }, undefined);
    }, () => {});
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
      } while (this.again);
    })().finally(() => { this.running = undefined; });
    return this.running;
  }

  private async reconcileOnce(only?: string): Promise<void> {
    const t0 = this.now();
    let changes: Change[] = [];
    const failures: string[] = [];
    const config = only ? { ...this.config, services: this.config.services.filter((s) => s.name === only) } : this.config;
    try {
      const listed = await readKernel(config, this.deps.ipvs);
      this.kernel = only ? new Map([...this.kernel, ...listed]) : listed;
      const now = this.now();
      const want = desired(config, this.book, listed, now);
      this.noteRestored(want);
      changes = diff(want, listed);
      const res = await apply(changes, this.deps.ipvs);
      for (const c of res.applied) this.report(c, undefined);
      for (const f of res.failed) {
        failures.push(`${describeChange(f.change)}: ${f.error.message}`);
        this.report(f.change, f.error);
      }
      if (res.applied.length) {
        const after = await readKernel(config, this.deps.ipvs);
        this.kernel = only ? new Map([...this.kernel, ...after]) : after;
      }
    } catch (e) {
      failures.push(`listing IPVS: ${(e as Error).message}`);
    }
    for (const f of failures) this.log(`reconcile: ${f}`);
    const ms = this.now() - t0;
    this.lastReconcile = { at: t0, ms, changes: changes.length, failures };
    this.deps.events?.reconciled?.(ms, changes.length, failures.length);
    await this.restoreDue();
  }

  private report(c: Change, error: Error | undefined): void {
    if (!error) this.log(describeChange(c));
    let signalAt: number | undefined;
    let record: QuarantineRecord | undefined;
    if (c.op === 'edit-destination') {
      const k = `${c.name}|${destinationKey(c.destination)}`;
      if (c.why === 'quarantine' && !error) {
        signalAt = this.signalAt.get(k);
        this.signalAt.delete(k);
      }
      record = this.book.get(c.name, destinationKey(c.destination));
    }
    this.deps.events?.change?.(c, error, { signalAt, record });
  }

  /** Watched destinations back at their weight: the restore is done. */
  private noteRestored(want: ReturnType<typeof desired>): void {
    for (const s of want) {
      const k = this.kernel.get(s.key);
      for (const d of s.destinations) {
        const rec = this.book.get(s.name, d.key);
        const w = k?.destinations.find((x) => x.key === d.key)?.weight;
        if (rec?.pendingRestore && w !== undefined && w > 0) {
          this.book.restored(s.name, d.key);
          this.persist();
        }
      }
      // A watched destination (or service) someone deleted has no weight to give back: whoever adds it again
      // chooses its weight. Left pending, the restore would overwrite that choice with the weight it had before
      // its quarantine (test/lab/faults.test.ts, "IPVS edited by someone else").
      if (s.manage) continue;
      for (const rec of this.book.all()) {
        if (rec.service === s.name && rec.pendingRestore && !k?.destinations.some((x) => x.key === rec.destination)) {
          this.book.restored(s.name, rec.destination);
          this.persist();
        }
      }
    }
  }

  /** Quarantines whose time is up: probe the destination directly, then restore or extend. */
  private async restoreDue(): Promise<void> {
    const due = this.book.due(this.now());
    let changed = false;
    await Promise.all(due.map(async (r) => {
      const k = `${r.service}|${r.destination}`;
      const svc = this.serviceByName(r.service);
      if (!svc || this.probing.has(k)) return;
      this.probing.add(k);
      try {
        const p = svc.quarantine;
        const ok = !p.probeBeforeRestore || !this.deps.probe || await this.deps.probe(parseDestination(r.destination), p.probeTimeoutMs);
        const now = this.now();
        if (ok) {
          this.book.release(r.service, r.destination, now);
          this.log(`restore ${r.destination} in ${r.service}: quarantine over${p.probeBeforeRestore && this.deps.probe ? ', probe answered' : ''}`);
        } else {
          const rec = this.book.extendAfterFailedProbe(r.service, r.destination, p, now, 'restore probe failed');
          this.log(`keep ${r.destination} in ${r.service} quarantined: probe failed, level ${rec?.level} until ${rec ? new Date(rec.until).toISOString() : '?'}`);
        }
        changed = true;
      } finally {
        this.probing.delete(k);
      }
    }));
    if (changed) {
      this.persist();
      this.scheduleExpiry();
      this.again = true;
    }
  }

  private scheduleExpiry(): void {
    clearTimeout(this.expiryTimer);
    const now = this.now();
    const next = Math.min(...this.book.all().filter((r) => r.until > now).map((r) => r.until));
    if (!Number.isFinite(next)) return;
    this.expiryTimer = setTimeout(() => void this.reconcile(), Math.max(0, next - now) + 5);
    this.expiryTimer.unref();
  }

  private persist(): void {
    try {
      this.deps.saveState?.(this.book.all());
    } catch (e) {
      this.log(`saving quarantine state: ${(e as Error).message} — quarantines will not survive a restart`);
    }
  }

  // ---- status ------------------------------------------------------------------------------------------------

  status(): object {
    const now = this.now();
    return {
      time: new Date(now).toISOString(),
      lastReconcile: this.lastReconcile && { ...this.lastReconcile, at: new Date(this.lastReconcile.at).toISOString() },
      services: this.config.services.map((s) => {
        const id = serviceIdOf(s);
        const k = this.kernel.get(serviceKey(id));
        const owned = new Set(ownedDestinations(s, k).map(destinationKey));
        return {
          name: s.name, service: serviceKey(id), managed: s.manage, present: !!k, panic: this.book.inPanic(s.name, now),
          quarantined: this.book.quarantinedIn(s.name, now).length,
          destinations: (k?.destinations ?? []).map((d) => {
            const r = this.book.get(s.name, d.key);
            const q = !!r && r.until > now;
            return {
              destination: d.key, owned: owned.has(d.key), weight: d.weight, activeConns: d.activeConns, inactiveConns: d.inactiveConns,
              state: q ? 'quarantined' : r?.until ? 'probing' : r?.pendingRestore ? 'restoring' : 'healthy',
              until: q ? new Date(r!.until).toISOString() : undefined, level: r?.level, reasons: r?.reasons,
            };
          }),
        };
      }),
    };
  }

  quarantines(): QuarantineRecord[] {
    return this.book.all();
  }
}
