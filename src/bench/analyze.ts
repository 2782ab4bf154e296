// From one failover run's raw observations — every client connect, the kernel's view of the failing destination,
// and which client ports IPVS sent there — to the figures of the results table. Pure; unit-tested.
import { percentile, Sample } from './stats';
import { OUTCOMES, type ConnectOutcome, type WindowFigures } from './types';

export interface RawConnect {
  at: number;
  ms: number;
  outcome: ConnectOutcome;
  localPort?: number;
  /** for 'error': the socket's errno name */
  errno?: string;
}

/**
 * The failed connects of a window in words, for a run's notes (at most `max`), relative to `t0`:
 * `+22.73 s error ECONNRESET after 1030 ms (port 41234)` — so a failure can be traced in the system's log.
 */
export function describeFailed(connects: readonly RawConnect[], t0: number, max = 5): string | undefined {
  const failed = connects.filter((c) => c.outcome !== 'ok');
  if (!failed.length) return undefined;
  const one = (c: RawConnect) => `+${((c.at - t0) / 1000).toFixed(2)} s ${c.outcome}${c.errno ? ` ${c.errno}` : ''} after ${c.ms.toFixed(0)} ms` +
    `${c.localPort !== undefined ? ` (port ${c.localPort})` : ''}`;
  return `failed: ${failed.slice(0, max).map(one).join('; ')}${failed.length > max ? `; and ${failed.length - max} more` : ''}`;
}

export interface FailoverObservations extends KernelWindow {
  connects: RawConnect[];
  /** client port → first-seen times of its IPVS connections to the failing destination */
  seen: Map<number, number[]>;
  /** the injection returned at fail1 (it began at fail0) */
  fail1: number;
}

export interface FailoverFigures extends WindowFigures {
  rescued: number;
  rescuedP99Ms: Sample;
  notes: string[];
  /** per connect: its SYN went to the failing backend while it was failing */
  dead: boolean[];
}

const SLOW_MS = 2000;
/** A connect that needed a SYN retransmit (initial RTO 1 s) took at least this long. */
const RETRANSMITTED_MS = 900;
/**
 * The earliest a SYN retransmit leaves with synTimeout on (its floor, 200 ms by default), less TCG's jitter: a connect
 * this slow whose SYN IPVS sent to the failing backend met the failure, even while the injection was still running.
 */
const RETRANSMITTED_LOWERED_MS = 150;

/** Whether a connect's SYN went to the failing destination: its client port shows up in IPVS's connection table
 * there within its lifetime (the table is polled, so allow a poll period and TCG lag after it ended). */
export function landedOn(c: RawConnect, seen: Map<number, number[]>, slackMs = 1500): boolean | undefined {
  if (c.localPort === undefined) return undefined;
  const times = seen.get(c.localPort);
  return !!times?.some((t) => t >= c.at - 50 && t <= c.at + c.ms + slackMs);
}

export function analyzeFailover(o: FailoverObservations): FailoverFigures {
  const notes: string[] = [];
  const bad = (c: RawConnect) => c.outcome !== 'ok' || c.ms > SLOW_MS;
  const dead = o.connects.map((c) => landedOn(c, o.seen) ?? (c.outcome !== 'ok' || c.ms >= RETRANSMITTED_MS));
  const unknownPorts = o.connects.filter((c) => c.localPort === undefined).length;
  if (unknownPorts) notes.push(`${unknownPorts} connects without a local port: classified by outcome/latency`);

  const inWindow = (c: RawConnect) => c.at >= o.fail0 && c.at < o.rec0;
  const win = o.connects.filter(inWindow);
  const ms = win.map((c) => c.ms);

  // The first failure: the first connect whose SYN went to the dead backend once the failure was surely in place
  // (after the injection returned), or earlier if it visibly failed (the drop or kill lands somewhere inside the
  // injection). With a lowered SYN timeout a black-holed connect can be rescued in a few hundred ms, so "slow" is
  // not required after the injection returned; during it, a held-back refusal rescued at a lowered retransmit is
  // the only sign (nothing fails), and one retransmit's worth of latency is enough to tell.
  const idx = o.connects.findIndex((c, i) => inWindow(c) && dead[i] && (c.at >= o.fail1 || c.outcome !== 'ok' || c.ms >= RETRANSMITTED_LOWERED_MS));
  const first = idx >= 0 ? o.connects[idx] : undefined;
  let lastDeadAt: number | undefined;
  let landed = 0;
  o.connects.forEach((c, i) => {
    if (inWindow(c) && dead[i] && (!first || c.at >= first.at)) {
      landed++;
      lastDeadAt = c.at;
    }
  });
  const suspicious = o.connects.filter((c, i) => inWindow(c) && bad(c) && !dead[i]).length;
  if (suspicious) notes.push(`${suspicious} failed or slow connects not seen going to the failing backend`);
  const failedWords = describeFailed(win, o.fail0);
  if (failedWords) notes.push(`${failedWords} (from the injection)`);

  let stopKernelMs: Sample = null;
  let stopClientMs: Sample = null;
  let restoreMs: Sample = null;
  let transitions = 0;
  if (!first) {
    notes.push('no connect failed on the failing backend: nothing to measure from');
  } else {
    ({ stopKernelMs, restoreMs, kernelTransitions: transitions } = kernelView(o, first.at, notes));
    stopClientMs = stopClient(o, first.at, lastDeadAt);
  }
  const rescuedMs = o.connects.filter((c, i) => inWindow(c) && dead[i] && c.outcome === 'ok').map((c) => c.ms);
  const outsideBad = o.connects.filter((c) => !inWindow(c) && bad(c)).length;
  if (outsideBad) notes.push(`${outsideBad} failed or slow connects outside the failure window`);
  return {
    connects: win.length,
    failed: win.filter((c) => c.outcome !== 'ok').length,
    slow2s: win.filter((c) => c.ms > SLOW_MS).length,
    p50Ms: percentile(ms, 0.5),
    p99Ms: percentile(ms, 0.99),
    outsideBad,
    landedOnDead: landed,
    rescued: rescuedMs.length,
    rescuedP99Ms: rescuedMs.length ? percentile(rescuedMs, 0.99) : null,
    stopKernelMs,
    stopClientMs,
    restoreMs,
    kernelTransitions: transitions,
    notes,
    dead: dead.map((d, i) => d && inWindow(o.connects[i])),
  };
}

/** The failure window and the kernel's view of the failing destination: what kernelView and stopClient read. */
export interface KernelWindow {
  /** [at, weight] on change; -1 = absent */
  kernel: [number, number][];
  /** failure injected from fail0, recovered between rec0 and rec1 (same clock as the clients) */
  fail0: number;
  rec0: number;
  rec1: number;
  /** new flows per second and backends, to tell "still landing there at the end" from "stopped" */
  rate: number;
  backends: number;
}

/**
 * From the first failure at `firstAt`: when the kernel stopped scheduling onto the failing destination (weight 0 or
 * absent), how often it went out of service while failing, and how long after recovery it was back for good.
 * Notes what looks odd (taken out only after recovery, back in while still failing) into `notes`.
 */
export function kernelView(o: KernelWindow, firstAt: number, notes: string[]): { stopKernelMs: Sample; restoreMs: Sample; kernelTransitions: number } {
  const down = o.kernel.find(([at, w]) => at >= o.fail0 && at < o.rec1 && w <= 0);
  const stopKernelMs: Sample = down ? down[0] - firstAt : 'never';
  let transitions = 0;
  let up = true;
  for (const [at, w] of o.kernel) {
    if (at < o.fail0 || at >= o.rec1) continue;
    if (up && w <= 0) transitions++;
    up = w > 0;
  }
  // Restore: from recovery until the destination is in service for good (no later removal in what we watched).
  // A removal that only comes after the recovery (a check begun during the failure) counts: the backend is out.
  let restoreMs: Sample = null;
  const lastDown = [...o.kernel].reverse().find(([at, w]) => at >= o.fail0 && w <= 0);
  if (lastDown) {
    const back = o.kernel.find(([at, w]) => at > lastDown[0] && w > 0);
    restoreMs = back ? Math.max(0, back[0] - o.rec1) : 'never';
    const late = o.kernel.find(([at, w]) => at >= o.rec1 && w <= 0);
    if (late && !down) notes.push(`taken out of service ${Math.round(late[0] - o.rec1)} ms after the backend had recovered`);
    if (down && o.kernel.some(([at, w]) => at > down[0] && at < o.rec0 && w > 0)) {
      notes.push('back in service while still failing (quarantine lifted or check passed), then out again');
    }
  }
  return { stopKernelMs, restoreMs, kernelTransitions: transitions };
}

/**
 * First failure → start of the last client flow that still went to the failing destination; 'never' when one still
 * did within the last few scheduling rounds before recovery (it never stopped).
 */
export function stopClient(o: KernelWindow, firstAt: number, lastDeadAt: number | undefined): Sample {
  const roundMs = (1000 / Math.max(o.rate, 1)) * o.backends;
  const neverWithin = Math.max(1000, 3 * roundMs);
  return lastDeadAt === undefined ? 0 : lastDeadAt > o.rec0 - neverWithin ? 'never' : lastDeadAt - firstAt;
}

export function outcomeIndex(o: ConnectOutcome): number {
  return OUTCOMES.indexOf(o);
}

export type VipguardAction = 'quarantine' | 'panic' | 'lift' | 'restore';

export interface VipguardDecisions {
  /** [ms relative to the failure injection, action, 1 if it concerned the failing backend else 0] */
  events: [number, VipguardAction, number][];
  quarantinedFailing: number;
  /** quarantines of backends that were healthy: false positives */
  quarantinedHealthy: number;
  /** panic (the cap reached) about the failing backend: a signal refused (older actuator) or its quarantine released */
  panicRefusals: number;
  /** quarantines lifted early because a handshake declared unanswered was answered after all */
  liftedFailing: number;
  liftedHealthy: number;
}

/**
 * What vipguard decided, from its own log (`vipguard run` prints one line per decision): quarantines, panic refusals,
 * lifts ("slow, not dead") and restores, each timed against the failure. Lines start with an ISO timestamp.
 */
export function parseVipguardLog(lines: string[], failingKey: string, failAtEpochMs: number): VipguardDecisions {
  const d: VipguardDecisions = { events: [], quarantinedFailing: 0, quarantinedHealthy: 0, panicRefusals: 0, liftedFailing: 0, liftedHealthy: 0 };
  for (const line of lines) {
    const t = Date.parse(line.slice(0, 24));
    if (!Number.isFinite(t)) continue;
    let m: RegExpExecArray | null;
    let what: VipguardAction | undefined;
    let dest = '';
    if ((m = /vipguard: quarantine (\S+) in \S+ \(level/.exec(line))) { what = 'quarantine'; dest = m[1]; }
    else if ((m = /vipguard: panic: .*refusing to quarantine (\S+)/.exec(line))) { what = 'panic'; dest = m[1]; }
    // since the quarantine-and-probe actuator: panic releases the oldest quarantine instead of refusing a new one
    else if ((m = /vipguard: panic in \S+: .*releasing the oldest quarantine, (\S+)/.exec(line))) { what = 'panic'; dest = m[1]; }
    else if ((m = /vipguard: lift quarantine of (\S+) in/.exec(line))) { what = 'lift'; dest = m[1]; }
    else if ((m = /vipguard: (?:restore|release) (\S+) in \S+:/.exec(line))) { what = 'restore'; dest = m[1]; }
    if (!what) continue;
    const failing = dest === failingKey;
    if (what === 'quarantine') failing ? d.quarantinedFailing++ : d.quarantinedHealthy++;
    if (what === 'panic' && failing) d.panicRefusals++;
    if (what === 'lift') failing ? d.liftedFailing++ : d.liftedHealthy++;
    if (what !== 'panic' || d.events.filter((e) => e[1] === 'panic').length < 20) d.events.push([t - failAtEpochMs, what, failing ? 1 : 0]);
  }
  return d;
}
