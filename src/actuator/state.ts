// Quarantine state on disk, so a restart (or kill -9) resumes the same quarantines and backoff levels.
// Written atomically (temporary file, fsync, rename): a crash leaves the old file or the new one, never half.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { QuarantineRecord } from './policy';

const VERSION = 1;

export interface StateFile {
  version: number;
  savedAt: string;
  records: QuarantineRecord[];
}

function isRecord(r: unknown): r is QuarantineRecord {
  const o = r as Record<string, unknown>;
  return !!o && typeof o.service === 'string' && typeof o.destination === 'string' && Number.isFinite(o.level) &&
    Number.isFinite(o.since) && Number.isFinite(o.until) && Number.isFinite(o.lastEnded) && Array.isArray(o.reasons) &&
    (o.restoreWeight === undefined || Number.isInteger(o.restoreWeight));
}

export interface LoadResult {
  records: QuarantineRecord[];
  /** set when the file existed but could not be used; it was moved aside */
  problem?: string;
}

export function loadState(file: string): LoadResult {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { records: [] };
    return { records: [], problem: `reading ${file}: ${(e as Error).message}` };
  }
  try {
    const s = JSON.parse(text) as StateFile;
    if (s.version !== VERSION || !Array.isArray(s.records)) throw new Error(`expected version ${VERSION} with a records array`);
    const bad = s.records.filter((r) => !isRecord(r)).length;
    return { records: s.records.filter(isRecord), problem: bad ? `${file}: ignored ${bad} malformed records` : undefined };
  } catch (e) {
    const aside = `${file}.corrupt-${Date.now()}`;
    try { fs.renameSync(file, aside); } catch { /* leave it */ }
    return { records: [], problem: `${file} is not a vipguard state file (${(e as Error).message}); moved to ${aside}` };
  }
}

export function saveState(file: string, records: QuarantineRecord[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o750 });
  const tmp = `${file}.tmp-${process.pid}`;
  const body: StateFile = { version: VERSION, savedAt: new Date().toISOString(), records };
  const fd = fs.openSync(tmp, 'w', 0o640);
  try {
    fs.writeSync(fd, JSON.stringify(body, null, 1));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}
