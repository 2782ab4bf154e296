// The statistics every benchmark figure goes through: percentiles of one run's samples, and the min / median / max
// spread of a figure over repeated runs. Pure; unit-tested in test/unit/bench-stats.test.ts.
//
// A figure of one run is a Sample: a number, 'never' (the thing did not happen while we watched — bare IPVS never
// stops scheduling on a dead backend), or null (not applicable: nothing to restore when nothing was removed).
// 'never' sorts above every number, so a median over [1.1, 1.2, never] is 1.2 and over [1.1, never, never] is never.

export type Sample = number | 'never' | null;

export interface Spread {
  /** runs that had a value (number or 'never') */
  n: number;
  min: Sample;
  median: Sample;
  max: Sample;
}

/** Nearest-rank percentile (p in 0..1) of numbers; NaN for none. */
export function percentile(xs: readonly number[], p: number): number {
  if (!xs.length) return NaN;
  if (!(p >= 0 && p <= 1)) throw new Error(`percentile: p must be within 0..1, got ${p}`);
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(p * s.length) - 1)];
}

const rank = (v: number | 'never') => (v === 'never' ? Infinity : v);

/** min / median / max over runs; nulls (not applicable) are left out. Even counts average the middle two numbers. */
export function spread(samples: readonly Sample[]): Spread {
  const xs = samples.filter((s): s is number | 'never' => s !== null && !(typeof s === 'number' && Number.isNaN(s)));
  if (!xs.length) return { n: 0, min: null, median: null, max: null };
  const s = [...xs].sort((a, b) => rank(a) - rank(b));
  const mid = s.length >> 1;
  let median: number | 'never';
  if (s.length % 2) median = s[mid];
  else {
    const a = s[mid - 1];
    const b = s[mid];
    median = a === 'never' || b === 'never' ? 'never' : (a + b) / 2;
  }
  return { n: s.length, min: s[0], median, max: s[s.length - 1] };
}

export function mean(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

/** Milliseconds for people: 850 ms, 1.23 s, 75 s. */
export function fmtMs(v: Sample): string {
  if (v === null) return '—';
  if (v === 'never') return 'never';
  if (!Number.isFinite(v)) return '—';
  const a = Math.abs(v);
  if (a < 10) return `${v.toFixed(1)} ms`;
  if (a < 1000) return `${Math.round(v)} ms`;
  if (a < 10_000) return `${(v / 1000).toFixed(2)} s`;
  return `${(v / 1000).toFixed(1)} s`;
}

/** Plain numbers: integers as is, others with `digits` decimals; thousands separated by a thin space. */
export function fmtNum(v: Sample, digits = 0): string {
  if (v === null) return '—';
  if (v === 'never') return 'never';
  if (!Number.isFinite(v)) return '—';
  const s = (Number.isInteger(v) && digits === 0 ? v : Number(v.toFixed(digits))).toFixed(digits);
  const [int, frac] = s.split('.');
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
  return frac ? `${grouped}.${frac}` : grouped;
}

/** "min / median / max" with one formatter; a single run shows one value, n runs with one value say so. */
export function fmtSpread(s: Spread, f: (v: Sample) => string): string {
  if (s.n === 0) return '—';
  if (s.n === 1) return f(s.median);
  return `${f(s.min)} / ${f(s.median)} / ${f(s.max)}`;
}
