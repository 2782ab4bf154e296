// Seeded randomness and bookkeeping shared by the fuzz tests (test/unit/fuzz-*.test.ts). Each case draws from its
// own generator seeded by (seed, target, case number), so a failure names one case and replays alone:
//   VIPGUARD_FUZZ_SEED=<seed> [VIPGUARD_FUZZ_CASES=n] node --test dist/test/unit/fuzz-config.test.js

export const FUZZ_SEED = Number(process.env.VIPGUARD_FUZZ_SEED ?? 0x5eed);
export const FUZZ_CASES = Number(process.env.VIPGUARD_FUZZ_CASES ?? 1500);

export class Rng {
  constructor(private s: number) {}
  next(): number { // mulberry32
    this.s = (this.s + 0x6d2b79f5) | 0;
    let t = Math.imul(this.s ^ (this.s >>> 15), 1 | this.s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number { return Math.floor(this.next() * n); }
  range(lo: number, hi: number): number { return lo + this.int(hi - lo + 1); }
  chance(p: number): boolean { return this.next() < p; }
  pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)]; }
}

/** The generator of case `i` of target `salt`. */
export function caseRng(i: number, salt: number): Rng {
  return new Rng((FUZZ_SEED * 1_000_003 + i * 7919 + salt) >>> 0);
}

/** Characters that break parsers: YAML/JSON syntax, controls, bidi overrides, combining marks, lone surrogates. */
export const NASTY = ['a', 'Z', '0', '_', '-', ' ', '.', ':', '/', 'é', '日本', 'ß', '\u0301', '\u202e', '\ufeff', '\u2028', '\u0000',
  '\n', '\r\n', '\t', '"', "'", '\\', '\u{1F600}', '\u{10FFFF}', '\ud800', '\udfff', '𝔘', '\u00a0', '{', '}', '[', ']', ',', '#', '&',
  '*', '!', '|', '>', '%', '@', '`', '?', '１', '٣'];

export function nastyText(r: Rng, max: number): string {
  const n = r.chance(0.1) ? 0 : r.range(1, max);
  let s = '';
  while (s.length < n) s += r.chance(0.5) ? String.fromCharCode(r.range(0x61, 0x7a)) : r.pick(NASTY);
  return s;
}

/** Counts, time per kind and the worst case, for the figures each fuzz test prints. */
export class Tally {
  readonly counts: Record<string, number> = {};
  readonly ms: Record<string, number> = {};
  worstMs = 0;
  worstCase = '';
  add(key: string): void { this.counts[key] = (this.counts[key] ?? 0) + 1; }
  time(kind: string, ms: number, label: string): void {
    this.ms[kind] = (this.ms[kind] ?? 0) + ms;
    if (ms > this.worstMs) { this.worstMs = ms; this.worstCase = label; }
  }
  summary(): string {
    return Object.entries(this.counts).sort().map(([k, v]) => `${k}=${v}`).join(' ');
  }
  timeSummary(): string {
    return Object.entries(this.ms).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(', ');
  }
}

/** Heap still in use after a full collection: what a case left behind, not what it used on the way. */
export function retainedHeap(): number {
  gc();
  return process.memoryUsage().heapUsed;
}

/**
 * What one case costs in resident memory: a full collection before each measured case, then RSS after it — the
 * case's own garbage is still resident then, so this is its peak, near enough. Every case of at least `bigBytes` of
 * input is measured, and every `every`-th of the rest. (A whole run's peak RSS without collections measured V8's
 * laziness, not the code: the same seed crossed 512 MiB on Node 24 and stayed near 450 MiB on Node 20.)
 */
export class CaseMemory {
  worst = 0;
  worstCase = '';
  measured = 0;
  private before = -1;
  constructor(private readonly every = 16, private readonly bigBytes = 64 * 1024) {}
  start(i: number, inputBytes: number): void {
    this.before = -1;
    if (i % this.every !== 0 && inputBytes < this.bigBytes) return;
    gc();
    this.before = process.memoryUsage().rss;
  }
  end(label: string): void {
    if (this.before < 0) return;
    const growth = process.memoryUsage().rss - this.before;
    this.measured++;
    if (growth > this.worst) { this.worst = growth; this.worstCase = label; }
  }
  summary(bound: number): string {
    return `worst case RSS growth ${(this.worst / MiB).toFixed(1)} MiB (bound ${(bound / MiB).toFixed(0)}; ${this.worstCase}; ${this.measured} cases measured)`;
  }
}

let gcFn: (() => void) | undefined;
function gc(): void {
  if (!gcFn) {
    // node --test gives no way to pass --expose-gc to the test process; turn it on from inside.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('node:v8').setFlagsFromString('--expose-gc');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    gcFn = require('node:vm').runInNewContext('gc') as () => void;
  }
  gcFn();
}

export const MiB = 2 ** 20;
