// From one fleet run's raw observations — every connect of every client host, each host's kernel view of the failing
// destination (its own IPVS table), which of its client ports IPVS sent there, and which input started each host's
// quarantine — to the figures of the fleet table. Pure; unit-tested (test/unit/bench-fleet.test.ts). Each host's
// kernel view is read exactly as the single-host scenarios read theirs (analyze.ts kernelView), timed from the
// first failure anywhere in the fleet.
import { kernelView, landedOn, type RawConnect } from './analyze';
import type { Sample } from './stats';

/** Which input started a host's quarantine of the failing backend: its own embedded rule, or the fleet alert. */
export type QuarantineInput = 'local' | 'fleet';

export interface FleetClientObservations {
  name: string;
  connects: RawConnect[];
  /** the failing destination's weight in this host's IPVS table: [at, weight] on change, -1 = absent */
  kernel: [number, number][];
  /** client port → first-seen times of its IPVS connections to the failing destination (this host's table) */
  seen: Map<number, number[]>;
  /** the first quarantine of the failing backend this host's vipguard logged during the failure, if any */
  quarantinedBy?: QuarantineInput;
  /** with the fleet rule: when (same clock) the first fleet alert reached this host's vipguard after the failure, null if none did */
  alertAt?: number | null;
}

export interface FleetObservations {
  clients: FleetClientObservations[];
  /** failure injected from fail0 (returned at fail1), recovered between rec0 and rec1 (the clients' clock) */
  fail0: number;
  fail1: number;
  rec0: number;
  rec1: number;
  /** connects per second per client, and backends: a scheduling round, for kernelView's notes */
  rate: number;
  backends: number;
}

export interface FleetClientFigures {
  name: string;
  /** connects this host started while the backend was failing, and of those: failed, > 2 s, either (once each) */
  connects: number;
  failed: number;
  slow2s: number;
  bad: number;
  /** connects whose SYN went to the failing backend while it was failing */
  landedOnDead: number;
  /** first failure anywhere in the fleet → the failing destination at weight 0 (or absent) in this host's table */
  weight0Ms: Sample;
  quarantinedBy: QuarantineInput | null;
  /** with the fleet rule: first failure anywhere → the fleet alert applied by this host's vipguard ('never' when it was not) */
  alertReceivedMs?: Sample;
  /** backend recovered → back in service for good in this host's table */
  restoreMs: Sample;
  /** times this host's table took the failing destination out of service while it was failing */
  kernelTransitions: number;
}

export interface FleetFigures {
  connects: number;
  failed: number;
  slow2s: number;
  bad: number;
  landedOnDead: number;
  /** when the first failure anywhere began (the connect's start), ms after the injection, and on which host */
  firstFailureMs: number | null;
  firstFailureClient: string | null;
  /** first failure anywhere → weight 0 on the first host / on every host ('never': some host never, while failing) */
  weight0FirstMs: Sample;
  weight0EverywhereMs: Sample;
  /** hosts whose quarantine the fleet alert started */
  byFleet: number;
  /** with the fleet rule: first failure anywhere → the fleet alert applied on every host */
  alertEverywhereMs?: Sample;
  /** backend recovered → back in service on every host, for good */
  restoreAllMs: Sample;
  clients: FleetClientFigures[];
  notes: string[];
  /** per host, per connect: its SYN went to the failing backend while it was failing (for the timeline) */
  dead: boolean[][];
}

const SLOW_MS = 2000;
/** A connect that needed a SYN retransmit (initial RTO 1 s) took at least this long. */
const RETRANSMITTED_MS = 900;

/** Largest of the samples, 'never' above every number; null when any is null (nothing to measure). */
function latest(xs: Sample[]): Sample {
  if (!xs.length || xs.some((x) => x === null)) return null;
  if (xs.includes('never')) return 'never';
  return Math.max(...(xs as number[]));
}

function earliest(xs: Sample[]): Sample {
  const n = xs.filter((x): x is number => typeof x === 'number');
  if (n.length) return Math.min(...n);
  return xs.includes('never') ? 'never' : null;
}

export function analyzeFleet(o: FleetObservations): FleetFigures {
  const notes: string[] = [];
  const inWindow = (c: RawConnect) => c.at >= o.fail0 && c.at < o.rec0;
  const bad = (c: RawConnect) => c.outcome !== 'ok' || c.ms > SLOW_MS;
  // Per host: which connects went to the dead backend (their port in this host's ip_vs_conn, or, without a port, by
  // how they ended), and its first failure as analyze.ts defines one: a connect to the dead backend once the failure
  // was surely in place, or earlier if it visibly failed or waited for a retransmit. A black hole shows as a
  // connect that does not complete: its start is the failure's time.
  const per = o.clients.map((cl) => {
    const dead = cl.connects.map((c) => landedOn(c, cl.seen) ?? (c.outcome !== 'ok' || c.ms >= RETRANSMITTED_MS));
    const first = cl.connects.find((c, i) => inWindow(c) && dead[i] && (c.at >= o.fail1 || c.outcome !== 'ok' || c.ms >= RETRANSMITTED_MS));
    return { cl, dead, first };
  });
  const firsts = per.filter((p) => p.first).sort((a, b) => a.first!.at - b.first!.at);
  const first = firsts[0];
  if (!first) notes.push('no connect anywhere failed on the failing backend: nothing to measure from');

  const clients: FleetClientFigures[] = per.map(({ cl, dead }) => {
    const win = cl.connects.filter(inWindow);
    const hostNotes: string[] = [];
    let weight0Ms: Sample = null;
    let restoreMs: Sample = null;
    let kernelTransitions = 0;
    if (first) {
      const kv = kernelView({ ...o, kernel: cl.kernel }, first.first!.at, hostNotes);
      ({ restoreMs, kernelTransitions } = kv);
      weight0Ms = kv.stopKernelMs;
    }
    notes.push(...hostNotes.map((n) => `${cl.name}: ${n}`));
    const outside = cl.connects.filter((c) => !inWindow(c) && bad(c)).length;
    if (outside) notes.push(`${cl.name}: ${outside} failed or slow connects outside the failure window`);
    return {
      name: cl.name,
      connects: win.length,
      failed: win.filter((c) => c.outcome !== 'ok').length,
      slow2s: win.filter((c) => c.ms > SLOW_MS).length,
      bad: win.filter(bad).length,
      landedOnDead: cl.connects.filter((c, i) => inWindow(c) && dead[i]).length,
      weight0Ms,
      quarantinedBy: cl.quarantinedBy ?? null,
      ...(cl.alertAt === undefined ? {} : { alertReceivedMs: !first ? null : cl.alertAt === null ? 'never' : cl.alertAt - first.first!.at }),
      restoreMs,
      kernelTransitions,
    };
  });
  const sum = (k: 'connects' | 'failed' | 'slow2s' | 'bad' | 'landedOnDead') => clients.reduce((a, c) => a + c[k], 0);
  return {
    connects: sum('connects'),
    failed: sum('failed'),
    slow2s: sum('slow2s'),
    bad: sum('bad'),
    landedOnDead: sum('landedOnDead'),
    firstFailureMs: first ? first.first!.at - o.fail0 : null,
    firstFailureClient: first ? first.cl.name : null,
    weight0FirstMs: earliest(clients.map((c) => c.weight0Ms)),
    weight0EverywhereMs: latest(clients.map((c) => c.weight0Ms)),
    byFleet: clients.filter((c) => c.quarantinedBy === 'fleet').length,
    ...(o.clients.some((c) => c.alertAt !== undefined) ? { alertEverywhereMs: latest(clients.map((c) => c.alertReceivedMs ?? 'never')) } : {}),
    restoreAllMs: clients.every((c) => c.restoreMs === null) ? null : latest(clients.map((c) => c.restoreMs ?? 0)),
    clients,
    notes,
    dead: per.map(({ cl, dead }) => dead.map((d, i) => d && inWindow(cl.connects[i]))),
  };
}

/**
 * The first quarantine of `destKey` (10.200.0.4:8080) a vipguard logged at or after `sinceWallMs`, and which input
 * started it: the fleet alert arrives through the Alertmanager v2 API (`… then probed: alertmanager
 * VipguardBackendDownFleetWide: …`); anything else is the host's own embedded rules (`… rule handshake-failures: …`).
 * Lines start with an ISO timestamp.
 */
export function firstQuarantine(lines: readonly string[], destKey: string, sinceWallMs: number, fleetAlert: string):
  { atWallMs: number; by: QuarantineInput } | undefined {
  const re = new RegExp(`vipguard: quarantine ${destKey.replace(/\./g, '\\.')} in \\S+ \\(level`);
  for (const line of lines) {
    const t = Date.parse(line.slice(0, 24));
    if (!(t >= sinceWallMs) || !re.test(line)) continue;
    return { atWallMs: t, by: new RegExp(`alertmanager ${fleetAlert}\\b`).test(line) ? 'fleet' : 'local' };
  }
  return undefined;
}

/**
 * When a vipguard first applied an alert from its Alertmanager v2 endpoint at or after `sinceWallMs` — its actuator
 * logs each batch that changed something: `POST /api/v2/alerts from 10.201.1.1: 200, 1 alerts: 1 applied, …`.
 */
export function firstAlertPost(lines: readonly string[], sinceWallMs: number): number | undefined {
  for (const line of lines) {
    const t = Date.parse(line.slice(0, 24));
    if (t >= sinceWallMs && /POST \/api\/v2\/alerts from \S+: 2\d\d, \d+ alerts: [1-9]\d* applied/.test(line)) return t;
  }
  return undefined;
}
