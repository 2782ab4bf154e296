// vipguard's own log: one record per line, levelled and structured (pino), written to stderr in the form its
// reader wants.
//
//   json     one JSON object per line — for log collectors (Kubernetes, Vector, the OTel filelog receiver)
//   logfmt   time=… level=… msg="…" key=value — for grep and logfmt tools
//   plain    2026-12-06T04:30:00.123Z info vipguard: message — for terminals; the message only, no fields
//   journal  <6>message — for journald, which stamps time and reads the level from the syslog prefix
//
// Without --log-format it is `journal` when stderr is the stream systemd connected to the journal (JOURNAL_STREAM
// names its device and inode), else `plain`. The fields of a decision use the telemetry's attribute names
// (src/telemetry/metadata.ts: vipguard.service, vipguard.destination, vipguard.action, …), so a log search and a
// trace search use the same words.
import * as fs from 'node:fs';
import pino from 'pino';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['json', 'logfmt', 'plain', 'journal'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export type LogFields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

/** syslog priorities (sd-daemon.h) */
const PRIORITY: Record<LogLevel, number> = { debug: 7, info: 6, warn: 4, error: 3 };

/** Whether stderr is the journal stream systemd set up (JOURNAL_STREAM=<dev>:<inode>, systemd.exec(5)). */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env, fd = 2): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1]) && st.ino === BigInt(m[2]);
  } catch {
    return false;
  }
}

export function defaultLogFormat(env: NodeJS.ProcessEnv = process.env): LogFormat {
  return stderrIsJournal(env) ? 'journal' : 'plain';
}

/** One line, whatever the message: records never span lines (collectors would split them). */
const oneLine = (s: string) => s.replace(/\s*\n\s*/g, '; ');

function logfmtValue(v: unknown): string {
  const s = typeof v === 'string' ? oneLine(v) : String(v);
  return s === '' || /[\s"=\\]/.test(s) ? JSON.stringify(s) : s;
}

interface Record_ { level: LogLevel; time?: string; msg: string; [k: string]: unknown }

/** Renders pino's JSON record in the text formats. Exported for the unit test. */
export function render(format: Exclude<LogFormat, 'json'>, rec: Record_): string {
  const { level, time, msg, ...fields } = rec;
  switch (format) {
    case 'journal':
      return `<${PRIORITY[level]}>${oneLine(msg)}`;
    case 'plain':
      return `${time} ${level} vipguard: ${oneLine(msg)}`;
    case 'logfmt':
      return [`time=${time}`, `level=${level}`, `msg=${logfmtValue(msg)}`,
        ...Object.entries(fields).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${logfmtValue(v)}`)].join(' ');
  }
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** where lines go (default: stderr, synchronously, so nothing is lost at exit) */
  write?: (line: string) => void;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const format = opts.format ?? defaultLogFormat();
  const write = opts.write ?? ((line: string) => fs.writeSync(2, line + '\n'));
  const p = pino({
    level: opts.level ?? 'info',
    base: undefined,
    // journald stamps each line itself
    timestamp: format === 'journal' ? false : () => `,"time":"${new Date().toISOString()}"`,
    formatters: { level: (label) => ({ level: label }) },
  }, {
    write: format === 'json'
      ? (line: string) => write(line.replace(/\n$/, ''))
      : (line: string) => write(render(format, JSON.parse(line) as Record_)),
  });
  const at = (level: LogLevel) => (msg: string, fields?: LogFields) => {
    if (fields) p[level](fields, oneLine(msg));
    else p[level](oneLine(msg));
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Every record's message to one function (tests and embedders that only want the text). */
export function lineLogger(sink: (line: string) => void): Logger {
  const at = (msg: string) => sink(msg);
  return { debug: at, info: at, warn: at, error: at };
}
