// From one restart run's raw observations — every client connect, the kernel's view of each backend, and when each
// listener went away and came back — to the figures of the rolling-restart and flapping tables. Pure; unit-tested.
// Times are ms on one clock (the load's); a kernel timeline is [at, weight] on change, -1 = absent, and a backend
// counts as in service before its first entry.
import { percentile, Sample } from './stats';
import { describeFailed, type RawConnect } from './analyze';

/** One listener outage: killed between killAt and down (gone from `down` on), restart begun at upAt, accepting
 * connects again from `back` (found by connecting to it directly). */
export interface Outage {
  backend: string;
  killAt: number;
  down: number;
  upAt: number;
  back: number;
}

export interface RestartObservations {
  connects: RawConnect[];
  kernel: Record<string, [number, number][]>;
  outages: Outage[];
  /** the end of the watch: kernel states are known until then */
  end: number;
}

export interface BackendRestartFigures {
  backend: string;
  /** per outage: the listener accepting again → weight > 0 for good (until its next outage or the end of the
   * watch); null = never taken out, 'never' = not back by the end; 0 when it was already back before it returned */
  restoreMs: Sample[];
  /** times weight went from ≤ 0 to > 0 while the listener was gone (between `down` and `back`) */
  restoredWhileDown: number;
  /** all transitions ≤ 0 → > 0 from the first kill to the end of the watch */
  restores: number;
  /** time at weight ≤ 0 (or absent) from the first kill to the end of the watch, ms */
  outMs: number;
  /** still out of service at the end of the watch */
  outAtEnd: boolean;
}

export interface RestartFigures {
  /** connects started from the first kill until the last return (the listener accepting again) */
  connects: number;
  failed: number;
  slow2s: number;
  /** failed or > 2 s, each connect counted once */
  bad: number;
  p99Ms: number;
  /** median latency of the completed connects before the first kill: the latency no outage added */
  baselineMs: number;
  /** p99 of (latency − baseline, at least 0) over the window, failures at the time they failed */
  addedP99Ms: number;
  backends: BackendRestartFigures[];
  notes: string[];
}

const SLOW_MS = 2000;

/** The weight at time t: the last entry at or before t; in service (1) before the first entry. */
export function weightAt(kernel: readonly [number, number][], t: number): number {
  let w = 1;
  for (const [at, x] of kernel) {
    if (at > t) break;
    w = x;
  }
  return w;
}

/** Moments in [from, to) at which the backend went from out of service (≤ 0) to in service (> 0). */
export function restoresBetween(kernel: readonly [number, number][], from: number, to: number): number[] {
  const out: number[] = [];
  let prev = weightAt(kernel, from);
  for (const [at, w] of kernel) {
    if (at <= from || at >= to) continue;
    if (prev <= 0 && w > 0) out.push(at);
    prev = w;
  }
  return out;
}

/** Time spent at weight ≤ 0 within [from, to), ms. */
export function outOfServiceMs(kernel: readonly [number, number][], from: number, to: number): number {
  let total = 0;
  let t = from;
  let w = weightAt(kernel, from);
  for (const [at, x] of kernel) {
    if (at <= from) continue;
    if (at >= to) break;
    if (w <= 0) total += at - t;
    t = at;
    w = x;
  }
  if (w <= 0) total += to - t;
  return total;
}

/** Restore after one outage: the listener accepting again (`o.back`) → in service for good before `until`. */
export function restoreAfterReturn(kernel: readonly [number, number][], o: Outage, until: number): Sample {
  const downs = kernel.filter(([at, w]) => at >= o.killAt && at < until && w <= 0);
  if (!downs.length && weightAt(kernel, o.killAt) > 0) return null;
  const lastDown = downs.length ? downs[downs.length - 1][0] : o.killAt;
  const back = kernel.find(([at, w]) => at > lastDown && at < until && w > 0);
  return back ? Math.max(0, back[0] - o.back) : 'never';
}

export function analyzeRestarts(o: RestartObservations): RestartFigures {
  const notes: string[] = [];
  if (!o.outages.length) throw new Error('analyzeRestarts: no outage to analyse');
  const start = Math.min(...o.outages.map((x) => x.killAt));
  const stop = Math.max(...o.outages.map((x) => x.back));
  const before = o.connects.filter((c) => c.at < start && c.outcome === 'ok').map((c) => c.ms);
  const baselineMs = before.length ? percentile(before, 0.5) : 0;
  if (!before.length) notes.push('no completed connect before the first restart: added latency taken against 0');
  const win = o.connects.filter((c) => c.at >= start && c.at < stop);
  const isBad = (c: RawConnect) => c.outcome !== 'ok' || c.ms > SLOW_MS;
  const outsideBad = o.connects.filter((c) => (c.at < start || c.at >= stop) && isBad(c)).length;
  if (outsideBad) notes.push(`${outsideBad} failed or slow connects outside the restart window`);
  const failedWords = describeFailed(win, start);
  if (failedWords) notes.push(`${failedWords} (from the first kill)`);

  const backends: BackendRestartFigures[] = [];
  for (const name of [...new Set(o.outages.map((x) => x.backend))].sort()) {
    const k = o.kernel[name] ?? [];
    const mine = o.outages.filter((x) => x.backend === name).sort((a, b) => a.killAt - b.killAt);
    const restoreMs = mine.map((x, i) => restoreAfterReturn(k, x, i + 1 < mine.length ? mine[i + 1].killAt : o.end));
    const restoredWhileDown = mine.reduce((n, x) => n + restoresBetween(k, x.down, x.back).length, 0);
    const end = weightAt(k, o.end);
    backends.push({
      backend: name, restoreMs, restoredWhileDown,
      restores: restoresBetween(k, mine[0].killAt, o.end).length,
      outMs: Math.round(outOfServiceMs(k, mine[0].killAt, o.end)),
      outAtEnd: end <= 0,
    });
    if (end <= 0) notes.push(`${name} still out of service at the end of the watch`);
  }
  const ms = win.map((c) => c.ms);
  return {
    connects: win.length,
    failed: win.filter((c) => c.outcome !== 'ok').length,
    slow2s: win.filter((c) => c.ms > SLOW_MS).length,
    bad: win.filter(isBad).length,
    p99Ms: percentile(ms, 0.99),
    baselineMs,
    addedP99Ms: percentile(ms.map((x) => Math.max(0, x - baselineMs)), 0.99),
    backends,
    notes,
  };
}

/** Whether vipguard's log says a service went into panic (the cap reached): a quarantine refused (`panic: … refusing
 * to quarantine …`) or the oldest one released (`panic in <service>: …`). */
export function logShowsPanic(lines: readonly string[]): boolean {
  return lines.some((l) => /vipguard: panic(?: in \S+)?: /.test(l));
}

/** Whether one GET /api/vipguard/status answer shows a service in panic. */
export function statusShowsPanic(status: unknown): boolean {
  const services = (status as { services?: { panic?: unknown }[] } | undefined)?.services;
  return Array.isArray(services) && services.some((s) => s?.panic === true);
}
