// Quarantine state on disk, so a restart (or kill -9) resumes the same quarantines and backoff levels — and
// gives back every weight vipguard set to 0, even for a service the next configuration no longer has.
//
// Written ahead: the actuator saves a quarantine before it sets the weight to 0, so a crash between the two
// leaves a record without a kernel change (harmless), never a weight 0 nobody remembers. Written atomically
// (temporary file, fsync, rename), keeping the previous generation beside it: a file damaged later (by hand, by
// the disk) falls back to that one instead of forgetting everything.
//
// Times inside the actuator are monotonic; on disk they are wall-clock (the next process has another monotonic
// origin), converted here and clamped on the way in (src/common/clock.ts), so a file written before a clock step
// — or by a hostile hand — cannot hold a destination out for longer than the policy's `max`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Clock, fromWall, toWall } from '../common/clock';
import type { QuarantineRecord } from './policy';

const VERSION = 2;
const MAX_RECORDS = 10_000;
const MAX_LEVEL = 64;
const MAX_TEXT = 512;

interface StateFile {
  version: number;
  savedAt: string;
  records: unknown[];
}

export interface LoadResult {
  records: QuarantineRecord[];
  /** set when the file (or a part of it) could not be used */
  problem?: string;
}

const str = (v: unknown, max: number) => (typeof v === 'string' && v.length > 0 && v.length <= max ? v : undefined);
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/**
 * One record from the file, validated field by field, times converted to this process's monotonic clock.
 * Version 1 files (wall times, `until` instead of `holdUntil`, no service key) are read too.
 */
function fromDisk(o: Record<string, unknown>, clock: Clock, maxHoldMs: number): QuarantineRecord | undefined {
  if (!o || typeof o !== 'object') return undefined;
  const service = str(o.service, 200);
  const destination = str(o.destination, 64);
  const level = num(o.level);
  const since = num(o.since);
  const holdUntil = num(o.holdUntil ?? o.until);
  const lastEnded = o.lastEnded === undefined || o.lastEnded === null || o.lastEnded === 0 ? undefined : num(o.lastEnded);
  const restoreWeight = o.restoreWeight === undefined ? 0 : num(o.restoreWeight);
  if (!service || !destination || level === undefined || since === undefined || holdUntil === undefined ||
    (o.lastEnded && lastEnded === undefined) || restoreWeight === undefined || !Array.isArray(o.reasons)) return undefined;
  const mono = (wall: number, future: number) => fromWall(clock, wall, { maxFutureMs: future });
  // v1 files marked "not quarantined" with until 0.
  const active = o.active === undefined ? holdUntil !== 0 : o.active === true;
  const r: QuarantineRecord = {
    service, destination, serviceKey: str(o.serviceKey, 80) ?? '',
    level: Math.max(0, Math.min(MAX_LEVEL, Math.floor(level))),
    active,
    since: mono(since, 0),
    holdUntil: mono(holdUntil, maxHoldMs),
    lastEnded: lastEnded === undefined ? undefined : mono(lastEnded, 0),
    restoreWeight: Math.max(0, Math.min(2 ** 31 - 1, Math.floor(restoreWeight))),
    pendingRestore: o.pendingRestore === true,
    probeOks: 0,
    reasons: o.reasons.filter((x): x is string => typeof x === 'string').slice(-5).map((x) => x.slice(0, MAX_TEXT)),
    source: str(o.source, 40), alert: str(o.alert, 200),
    prevLevel: num(o.prevLevel) === undefined ? undefined : Math.max(0, Math.min(MAX_LEVEL, Math.floor(num(o.prevLevel)!))),
    prevLastEnded: num(o.prevLastEnded) === undefined ? undefined : mono(num(o.prevLastEnded)!, 0),
  };
  return r;
}

function toDisk(r: QuarantineRecord, clock: Clock): object {
  return {
    ...r, since: toWall(clock, r.since), holdUntil: toWall(clock, r.holdUntil),
    lastEnded: r.lastEnded === undefined ? undefined : toWall(clock, r.lastEnded),
    prevLastEnded: r.prevLastEnded === undefined ? undefined : toWall(clock, r.prevLastEnded), probeOks: undefined,
  };
}

function parse(text: string, clock: Clock, maxHoldMs: number): LoadResult {
  const s = JSON.parse(text) as StateFile;
  if ((s.version !== VERSION && s.version !== 1) || !Array.isArray(s.records)) throw new Error(`expected version ${VERSION} with a records array`);
  const seen = new Map<string, QuarantineRecord>();
  let bad = 0;
  for (const raw of s.records.slice(0, MAX_RECORDS)) {
    const r = fromDisk(raw as Record<string, unknown>, clock, maxHoldMs);
    if (r) seen.set(`${r.service}|${r.destination}`, r);
    else bad++;
  }
  const over = Math.max(0, s.records.length - MAX_RECORDS);
  const problems = [bad ? `ignored ${bad} malformed records` : '', over ? `ignored ${over} records beyond ${MAX_RECORDS}` : ''].filter(Boolean);
  return { records: [...seen.values()], problem: problems.length ? problems.join('; ') : undefined };
}

/**
 * Reads the state file, falling back to the previous generation when the file is missing or damaged. A damaged
 * file is moved aside (kept for a human), never silently overwritten.
 */
export function loadState(file: string, clock: Clock, maxHoldMs: number): LoadResult {
  const problems: string[] = [];
  for (const f of [file, `${file}.prev`]) {
    let text: string;
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') problems.push(`reading ${f}: ${(e as Error).message}`);
      continue;
    }
    try {
      const r = parse(text, clock, maxHoldMs);
      if (r.problem) problems.push(`${f}: ${r.problem}`);
      if (f !== file) problems.push(`using the previous generation ${f}`);
      return { records: r.records, problem: problems.length ? problems.join('; ') : undefined };
    } catch (e) {
      const aside = `${f}.corrupt-${Date.now()}`;
      try { fs.renameSync(f, aside); } catch { /* leave it */ }
      problems.push(`${f} is not a vipguard state file (${(e as Error).message}); moved to ${aside}`);
    }
  }
  return { records: [], problem: problems.length ? problems.join('; ') : undefined };
}

export function saveState(file: string, records: QuarantineRecord[], clock: Clock): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o750 });
  const tmp = `${file}.tmp-${process.pid}`;
  const body: StateFile = { version: VERSION, savedAt: new Date(clock.wall()).toISOString(), records: records.map((r) => toDisk(r, clock)) };
  const fd = fs.openSync(tmp, 'w', 0o640);
  try {
    fs.writeSync(fd, JSON.stringify(body, null, 1));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  // The previous generation first: a crash between the two renames leaves `.prev` for loadState to use.
  try { fs.renameSync(file, `${file}.prev`); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; }
  fs.renameSync(tmp, file);
}
