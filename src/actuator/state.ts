// Quarantine state on disk, so a restart (or kill -9) resumes the same quarantines and backoff levels — and
// gives back every weight vipguard set to 0, even for a service the next configuration no longer has.
//
// Written ahead: the actuator saves a quarantine before it sets the weight to 0, so a crash between the two
// leaves a record without a kernel change (harmless), never a weight 0 nobody remembers. Written atomically
// (temporary file, fsync, rename), twice: the file, then a mirror (`.prev`) with the same records. A file damaged
// later (by hand, by the disk) is read from its mirror instead of forgetting quarantines — whose weights 0 would
// then stay 0 for good; a crash between the two writes leaves the file new and the mirror one change behind.
//
// Times inside the actuator are monotonic; on disk they are wall-clock (the next process has another monotonic
// origin), converted here and clamped on the way in (src/common/clock.ts), so a file written before a clock step
// — or by a hostile hand — cannot hold a destination out for longer than the policy's `max`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Clock, fromWall, toWall } from '../common/clock';
import type { QuarantineRecord } from './policy';
import { parseSaved } from './holdout';

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
 * One record from the file, validated field by field, times converted to this process's monotonic clock. Only
 * what identifies the record and the weight to give back are required: a record dropped for a bad timestamp would
 * leave its weight 0 behind for good, so any other damaged field takes its safe default instead (level 0, a hold
 * starting now). Version 1 files (`until` instead of `holdUntil`, no service key) are read too.
 */
function fromDisk(o: Record<string, unknown>, clock: Clock, maxHoldMs: number): QuarantineRecord | undefined {
  if (!o || typeof o !== 'object') return undefined;
  const service = str(o.service, 200);
  const destination = str(o.destination, 64);
  const restoreWeight = o.restoreWeight === undefined ? 0 : num(o.restoreWeight);
  if (!service || !destination || restoreWeight === undefined) return undefined;
  const now = clock.mono();
  const mono = (wall: unknown, future: number, otherwise: number) => {
    const w = num(wall);
    return w === undefined ? otherwise : fromWall(clock, w, { maxFutureMs: future });
  };
  const holdUntil = num(o.holdUntil ?? o.until);
  const lastEnded = num(o.lastEnded);
  const level = (v: unknown) => Math.max(0, Math.min(MAX_LEVEL, Math.floor(num(v) ?? 0)));
  // v1 files marked "not quarantined" with until 0.
  const active = o.active === undefined ? !!holdUntil : o.active === true;
  return {
    service, destination, serviceKey: str(o.serviceKey, 80) ?? '',
    level: level(o.level), active,
    since: mono(o.since, 0, now),
    holdUntil: mono(holdUntil, maxHoldMs, now),
    lastEnded: lastEnded ? mono(lastEnded, 0, now) : undefined,
    restoreWeight: Math.max(0, Math.min(2 ** 31 - 1, Math.floor(restoreWeight))),
    pendingRestore: o.pendingRestore === true,
    removedAs: parseSaved(o.removedAs),
    probeOks: 0,
    reasons: (Array.isArray(o.reasons) ? o.reasons : []).filter((x): x is string => typeof x === 'string').slice(-5).map((x) => x.slice(0, MAX_TEXT)),
    source: str(o.source, 40), alert: str(o.alert, 200),
    prevLevel: num(o.prevLevel) === undefined ? undefined : level(o.prevLevel),
    prevLastEnded: num(o.prevLastEnded) ? mono(o.prevLastEnded, 0, now) : undefined,
  };
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
 * Reads the state file, falling back to its mirror when the file is missing or damaged. A damaged
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
      if (f !== file) problems.push(`using its mirror ${f}`);
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
  fs.copyFileSync(tmp, `${tmp}.mirror`);
  fs.renameSync(tmp, file);
  const fd2 = fs.openSync(`${tmp}.mirror`, 'r');
  try { fs.fsyncSync(fd2); } finally { fs.closeSync(fd2); }
  fs.renameSync(`${tmp}.mirror`, `${file}.prev`);
}
