// From one UDP failover run's raw observations — every lookup, every query of the long-lived flows, the kernel's view
// of the failing destination, and which client ports IPVS sent there — to the figures of the UDP table. Pure;
// unit-tested. The kernel's side (stop, restore, transitions) is read exactly as for TCP (analyze.ts kernelView).
import { kernelView, landedOn, stopClient, type KernelWindow } from './analyze';
import { percentile, type Sample } from './stats';
import type { Lookup, LongFlowRecord } from '../lab/dns-load';
import type { UdpWindowFigures } from './types';

export interface UdpObservations extends KernelWindow {
  lookups: Lookup[];
  flows: LongFlowRecord[];
  /** client port → first-seen times of its IPVS flows to the failing destination */
  seen: Map<number, number[]>;
  /** the injection returned at fail1 (it began at fail0) */
  fail1: number;
  /** the failing backend's address, as it answers (its A record) */
  deadIp: string;
}

export interface UdpFigures extends UdpWindowFigures {
  notes: string[];
  /** per lookup: a try of it went to the failing backend while it was failing */
  dead: boolean[];
}

const SLOW_MS = 2000;

/** Whether a lookup reached the failing backend: it answered, or a try's source port shows in IPVS's flows to it. */
export function lookupLanded(l: Lookup, seen: Map<number, number[]>, deadIp: string): boolean | undefined {
  if (l.answeredBy === deadIp) return true;
  if (!l.ports.length) return undefined;
  return l.ports.some((p) => landedOn({ at: l.at, ms: l.ms, outcome: 'ok', localPort: p }, seen));
}

export function analyzeUdpFailover(obs: UdpObservations): UdpFigures {
  // The window ends when the backend serves again (rec1), not when its recovery began: a killed dnsmasq takes seconds
  // to come back under TCG, and the lookups of those seconds meet the same dead backend.
  const o = { ...obs, rec0: obs.rec1 };
  const notes: string[] = [];
  const failed = (l: Lookup) => l.outcome !== 'ok';
  const bad = (l: Lookup) => failed(l) || l.ms > SLOW_MS;
  // No port seen (the table is polled): a lookup that failed can only have failed there.
  const dead = o.lookups.map((l) => lookupLanded(l, o.seen, o.deadIp) ?? failed(l));
  const inWindow = (at: number) => at >= o.fail0 && at < o.rec0;
  const win = o.lookups.filter((l) => inWindow(l.at));

  // The first failure: the first lookup that went to the dead backend once the failure was surely in place (after
  // the injection returned), or earlier if a try of it visibly failed (the drop or kill lands inside the injection).
  const first = o.lookups.find((l, i) => inWindow(l.at) && dead[i] && (l.at >= o.fail1 || l.tries > 1 || failed(l)));
  let lastDeadAt: number | undefined;
  let landed = 0;
  o.lookups.forEach((l, i) => {
    if (inWindow(l.at) && dead[i] && (!first || l.at >= first.at)) {
      landed++;
      lastDeadAt = l.at;
    }
  });
  const suspicious = o.lookups.filter((l, i) => inWindow(l.at) && bad(l) && !dead[i]).length;
  if (suspicious) notes.push(`${suspicious} failed or slow lookups not seen going to the failing backend`);
  const ends = endings(win.filter(failed));
  if (ends) notes.push(`failed lookups by how their last try ended: ${ends}`);

  let stopKernelMs: Sample = null;
  let stopClientMs: Sample = null;
  let restoreMs: Sample = null;
  let kernelTransitions = 0;
  if (!first) {
    notes.push('no lookup failed on the failing backend: nothing to measure from');
  } else {
    ({ stopKernelMs, restoreMs, kernelTransitions } = kernelView(o, first.at, notes));
    stopClientMs = stopClient(o, first.at, lastDeadAt);
  }
  const outsideBad = o.lookups.filter((l) => !inWindow(l.at) && bad(l)).length;
  if (outsideBad) notes.push(`${outsideBad} failed or slow lookups outside the failure window`);

  const flows = analyzeFlows(o, notes);
  const ms = win.map((l) => l.ms);
  return {
    lookups: win.length,
    failed: win.filter(failed).length,
    slow2s: win.filter((l) => l.ms > SLOW_MS).length,
    bad: win.filter(bad).length,
    p50Ms: percentile(ms, 0.5),
    p99Ms: percentile(ms, 0.99),
    outsideBad,
    landedOnDead: landed,
    savedByRetry: o.lookups.filter((l, i) => inWindow(l.at) && dead[i] && l.tries > 1 && !failed(l)).length,
    stopKernelMs,
    stopClientMs,
    restoreMs,
    kernelTransitions,
    ...flows,
    notes,
    dead: dead.map((d, i) => d && inWindow(o.lookups[i].at)),
  };
}

/** "timeout 11, error EPERM 31": how the last tries of `lookups` ended, commonest first. */
export function endings(lookups: readonly Lookup[]): string {
  const n = new Map<string, number>();
  for (const l of lookups) {
    const k = l.outcome === 'error' ? `error ${l.errno ?? '?'}` : l.outcome;
    n.set(k, (n.get(k) ?? 0) + 1);
  }
  return [...n].sort((a, b) => b[1] - a[1]).map(([k, c]) => `${k} ${c}`).join(', ');
}

type FlowFigures = Pick<UdpWindowFigures, 'flows' | 'flowsOnDead' | 'flowsMoved' | 'flowMoveMs' | 'flowQueries' | 'flowQueriesFailed'>;

/**
 * The long-lived flows: which were on the failing backend when it failed (the last answer before the failure came
 * from it), and which of those another backend answered before recovery — moved — and how long after the flow's own
 * first unanswered query.
 */
export function analyzeFlows(o: Pick<UdpObservations, 'flows' | 'fail0' | 'rec0' | 'deadIp'>, notes: string[] = []): FlowFigures {
  // (analyzeUdpFailover passes the window's end, the backend serving again, as rec0)
  const out: FlowFigures = { flows: o.flows.length, flowsOnDead: 0, flowsMoved: 0, flowMoveMs: [], flowQueries: 0, flowQueriesFailed: 0 };
  let silentBefore = 0;
  for (const f of o.flows) {
    const before = f.queries.filter((q) => q.at < o.fail0 && q.answeredBy !== undefined).at(-1)?.answeredBy;
    if (before === undefined) silentBefore++;
    const win = f.queries.filter((q) => q.at >= o.fail0 && q.at < o.rec0);
    out.flowQueries += win.length;
    out.flowQueriesFailed += win.filter((q) => q.answeredAt === undefined).length;
    if (before !== o.deadIp) continue;
    out.flowsOnDead++;
    const firstFail = win.find((q) => q.answeredAt === undefined);
    const moved = win.find((q) => q.answeredBy !== undefined && q.answeredBy !== o.deadIp);
    if (moved) {
      out.flowsMoved++;
      out.flowMoveMs.push(firstFail && firstFail.at <= moved.at ? moved.at - firstFail.at : 0);
    }
  }
  if (silentBefore) notes.push(`${silentBefore} long-lived flow(s) had no answer before the failure: not counted on any backend`);
  return out;
}
