// vipguard's log as each reader gets it: one line per record in every format, levels filtered, fields under the
// telemetry's names, and the journal recognised by JOURNAL_STREAM naming stderr's own device and inode.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LOG_FORMATS, LogFormat, createLogger, defaultLogFormat, render, stderrIsJournal } from '../../src/common/log';

function capture(format: LogFormat, level?: 'debug' | 'info' | 'warn' | 'error'): { lines: string[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, log: createLogger({ format, level, write: (l) => lines.push(l) }) };
}

const FIELDS = { 'vipguard.service': 'web', 'vipguard.destination': '10.200.0.4:8080', 'vipguard.quarantine.level': 2, 'vipguard.handshake.late': true };

test('json: one object per line with level, time, message and the fields as given', () => {
  const { lines, log } = capture('json');
  log.info('quarantine 10.200.0.4:8080 in web', FIELDS);
  assert.equal(lines.length, 1);
  const o = JSON.parse(lines[0]) as Record<string, unknown>;
  assert.equal(o.level, 'info');
  assert.ok(Math.abs(Date.parse(o.time as string) - Date.now()) < 5000, `an RFC 3339 time: ${o.time}`);
  assert.equal(o.msg, 'quarantine 10.200.0.4:8080 in web');
  for (const [k, v] of Object.entries(FIELDS)) assert.equal(o[k], v, k);
});

test('logfmt: key=value, quoted where a value has spaces, quotes or =', () => {
  const { lines, log } = capture('logfmt');
  log.warn('reload refused: "x" = y', { ...FIELDS, 'vipguard.reason': 'a b', empty: '', skipped: undefined });
  assert.match(lines[0], /^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=warn msg="reload refused: \\"x\\" = y" vipguard\.service=web vipguard\.destination=10\.200\.0\.4:8080 vipguard\.quarantine\.level=2 vipguard\.handshake\.late=true vipguard\.reason="a b" empty=""$/);
});

test('plain: time, level and message only; journal: the syslog priority and the message, no time', () => {
  const plain = capture('plain');
  plain.log.error('saving quarantine state: EACCES', FIELDS);
  assert.match(plain.lines[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z error vipguard: saving quarantine state: EACCES$/);
  assert.ok(!Number.isNaN(Date.parse(plain.lines[0].slice(0, 24))), 'the first 24 characters are the time (the lab harness reads them)');
  const journal = capture('journal', 'debug');
  journal.log.debug('d');
  journal.log.info('i', FIELDS);
  journal.log.warn('w');
  journal.log.error('e');
  assert.deepEqual(journal.lines, ['<7>d', '<6>i', '<4>w', '<3>e']);
});

test('a record never spans lines, in any format', () => {
  for (const format of LOG_FORMATS) {
    const { lines, log } = capture(format);
    log.error('reload refused, keeping the running configuration: vipguard.yaml: 2 problems:\n  3:5: services[0].port: expected 1..65535\n  7:1: unknown key', { detail: 'one\ntwo' });
    assert.equal(lines.length, 1, format);
    assert.ok(!lines[0].includes('\n'), `${format}: ${lines[0]}`);
    assert.match(lines[0], /problems:; 3:5: services\[0\]\.port: expected 1\.\.65535; 7:1: unknown key/, format);
  }
});

test('levels below the one asked for are not written', () => {
  const { lines, log } = capture('journal', 'warn');
  log.debug('d');
  log.info('i');
  log.warn('w');
  log.error('e');
  assert.deepEqual(lines, ['<4>w', '<3>e']);
  assert.deepEqual(capture('journal').lines, [], 'nothing written at creation');
  const def = capture('journal');
  def.log.debug('d');
  def.log.info('i');
  assert.deepEqual(def.lines, ['<6>i'], 'info by default');
});

test('render is what the text formats print for a pino record', () => {
  const rec = { level: 'info' as const, time: '2026-12-06T04:30:00.000Z', msg: 'm', 'vipguard.service': 'web' };
  assert.equal(render('plain', rec), '2026-12-06T04:30:00.000Z info vipguard: m');
  assert.equal(render('journal', rec), '<6>m');
  assert.equal(render('logfmt', rec), 'time=2026-12-06T04:30:00.000Z level=info msg=m vipguard.service=web');
});

test('the journal is recognised only when JOURNAL_STREAM names the stream stderr is', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipguard-log-'));
  const fd = fs.openSync(path.join(dir, 'stream'), 'w');
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    assert.equal(stderrIsJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd), true);
    assert.equal(stderrIsJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino + 1n}` }, fd), false, 'another inode: inherited by a child whose stderr was redirected');
    assert.equal(stderrIsJournal({ JOURNAL_STREAM: 'garbage' }, fd), false);
    assert.equal(stderrIsJournal({}, fd), false);
    assert.equal(defaultLogFormat({}), 'plain');
  } finally {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true });
  }
});
