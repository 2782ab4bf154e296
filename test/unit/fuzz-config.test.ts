// Seeded, reproducible fuzzing of the configuration loader (issue 8, "Bad input"): random valid configurations in
// every YAML style (which must load, with the values written), the same with one wrong type, a missing or an
// unknown key (which must be refused naming that setting), random edits of the YAML text, and hostile documents —
// alias bombs and recursive aliases, deep flow and block nesting, huge scalars and mappings, directives, tags,
// unicode. For every case: a Config or a ConfigError, never another exception; every issue's line:column inside
// the text; each case within a time bound; RSS growth bounded. The figures are printed.
//
// Reproduce: VIPGUARD_FUZZ_SEED=<seed> [VIPGUARD_FUZZ_CASES=n] node --test dist/test/unit/fuzz-config.test.js
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { CONFIG_LIMITS, ConfigError, parseConfig } from '../../src/config/config';
import { CaseMemory, FUZZ_CASES, FUZZ_SEED, MiB, Rng, Tally, caseRng, nastyText, retainedHeap } from '../fuzz';

const CASE_MS = 6000; // per case; the largest (1 MiB, 100 000 keys) take ~2 s in yaml's parser on this 2-core machine
const RSS_BOUND = 384 * MiB; // one case, from a collected heap: the 1 MiB documents cost yaml's parser ~100–250 MiB on the way
const RETAINED_BOUND = 32 * MiB; // heap still used after a full GC at the end: nothing accumulates

type Doc = Record<string, unknown>;
type Kind = 'int' | 'number' | 'string' | 'bool' | 'duration' | 'ip' | 'listen' | 'enum' | 'object' | 'array';

/** What a leaf must be, by dotted path with indexes dropped: the schema, restated as the oracle for wrong types. */
const LEAVES: Record<string, Kind> = {
  'services.name': 'string', 'services.address': 'ip', 'services.port': 'int', 'services.scheduler': 'string',
  'services.manage': 'bool', 'services.destinations.address': 'ip', 'services.destinations.port': 'int',
  'services.destinations.weight': 'int', 'services.destinations.forward': 'enum', 'services.quarantine.base': 'duration',
  'services.quarantine.multiplier': 'number', 'services.quarantine.probeBeforeRestore': 'bool',
  'receiver.enabled': 'bool', 'receiver.traceAll': 'bool', 'receiver.ringBufferBytes': 'int',
  'receiver.export.enabled': 'bool', 'receiver.export.endpoint': 'string', 'receiver.export.timeout': 'duration',
  'receiver.export.spanDelay': 'duration', 'receiver.export.metricInterval': 'duration', 'receiver.export.maxQueueSize': 'int',
  'receiver.export.maxBatchSize': 'int', 'receiver.prometheus.enabled': 'bool', 'receiver.prometheus.listen': 'listen',
  'actuator.enabled': 'bool', 'actuator.listen': 'listen', 'actuator.allowPlaintextBeyondLoopback': 'bool', 'actuator.otlpListen': 'listen', 'actuator.stateFile': 'string',
  'actuator.reconcileInterval': 'duration', 'actuator.expireNodestConn': 'bool', 'actuator.rules.name': 'string',
  'actuator.rules.threshold': 'int', 'actuator.rules.window': 'duration', 'actuator.quarantine.base': 'duration',
  'actuator.quarantine.max': 'duration', 'actuator.quarantine.decayAfter': 'duration', 'actuator.quarantine.multiplier': 'number',
  'actuator.quarantine.probeBeforeRestore': 'bool', 'actuator.quarantine.probeTimeout': 'duration',
  'actuator.rateLimit.perSecond': 'number', 'actuator.rateLimit.burst': 'int',
};

/** Values that are not of the kind, whatever else they are. */
function wrongFor(kind: Kind, r: Rng): unknown {
  const notString = [5, -1, 1.5, true, false, null, [], ['x'], {}, { a: 1 }];
  switch (kind) {
    case 'int': return r.pick(['80', 'x', 1.5, true, null, [], {}, -1e300]); // 1e300 is an integer to JSON Schema
    case 'number': return r.pick(['2', 'x', true, null, [], {}]);
    case 'bool': return r.pick(['yes', 'true', 1, 0, null, [], {}, 'on']);
    case 'duration': return r.pick(['10', '10 s', '-1s', '1d', 's', '1e3ms', '０s', 10, true, null, [], {}]);
    case 'ip': return r.pick(['10.99.0.256', '10.99.0', 'fe80::1%eth0', '::ffff:300.1.1.1', 'localhost', '', '１０.0.0.1', ...notString]);
    case 'listen': return r.pick(['127.0.0.1', ':80', '127.0.0.1:', '127.0.0.1:123456', 'a b:1', ...notString]);
    default: return r.pick(notString);
  }
}

const v4 = (i: number, base: string) => `${base}.${Math.floor(i / 250)}.${(i % 250) + 1}`;

/** A random configuration the loader must accept; `expect` is what it must say back. */
function validDoc(r: Rng): { doc: Doc; expect: { services: [string, number, boolean][] } } {
  const n = r.range(1, r.chance(0.05) ? 60 : 4);
  const v6 = r.chance(0.3);
  const services = Array.from({ length: n }, (_, i) => {
    const s: Doc = { name: `${r.pick(['web', 'api', 'db', 'A', 'x.y', 'q_1'])}-${i}`, address: v6 ? `fd00:99::${(i + 1).toString(16)}` : v4(i, '10.99'), port: r.range(1, 65535) };
    if (r.chance(0.4)) {
      s.destinations = Array.from({ length: r.range(1, 4) }, (_, j) => {
        const d: Doc = { address: v6 ? `fd00:200::${(j + 2).toString(16)}` : v4(j, '10.200'), port: r.range(1, 65535) };
        if (r.chance(0.5)) d.weight = r.range(0, 100);
        if (r.chance(0.3)) d.forward = r.pick(['masq', 'route', 'tunnel']);
        return d;
      });
      if (r.chance(0.3)) s.scheduler = r.pick(['rr', 'wrr', 'lc', 'wlc', 'sh', 'mh']);
    } else if (r.chance(0.2)) s.manage = false;
    if (r.chance(0.3)) s.quarantine = { base: r.pick(['2s', '500ms', '1m']), maxQuarantined: r.pick([0, 1, 3, '25%', '100%']), probeBeforeRestore: r.chance(0.5) };
    return s;
  });
  const doc: Doc = { services };
  if (r.chance(0.6)) {
    doc.receiver = {
      traceAll: r.chance(0.2), ringBufferBytes: 65536 * 2 ** r.int(8),
      export: { enabled: r.chance(0.7), endpoint: r.pick(['127.0.0.1:4317', 'collector:4317', '[::1]:4317']), timeout: r.pick(['5s', '250ms']),
        spanDelay: r.pick(['0ms', '200ms']), metricInterval: r.pick(['100ms', '5s', '1.5m']), maxQueueSize: r.range(1, 100000), maxBatchSize: r.range(1, 5000) },
      prometheus: { enabled: r.chance(0.5), listen: `127.0.0.1:${r.range(0, 65535)}` },
    };
  }
  if (r.chance(0.7)) {
    const a: Doc = {
      listen: `127.0.0.1:${r.range(0, 65535)}`, otlpListen: r.pick(['127.0.0.1:0', '[::1]:4319', 'localhost:4319']),
      stateFile: `/tmp/${r.pick(['s', 'state.json', 'dir/x y.json'])}`, reconcileInterval: r.pick(['100ms', '2s', '1h']),
      expireNodestConn: r.chance(0.5),
      quarantine: { base: r.pick(['1s', '10s']), multiplier: r.pick([1, 1.5, 2, 100]), max: r.pick(['5m', '24h']), decayAfter: '5m',
        maxQuarantined: r.pick([0, 2, '50%', '0%']), probeTimeout: '300ms' },
      rateLimit: { perSecond: r.pick([0.5, 20, 1000]), burst: r.range(1, 50) },
    };
    if (r.chance(0.5)) {
      a.rules = Array.from({ length: r.range(1, 3) }, (_, i) => ({
        name: `rule-${i}`, outcomes: r.pick([['refused'], ['unanswered', 'refused'], ['unanswered', 'refused', 'unreachable', 'abandoned']]),
        threshold: r.range(1, 10), window: r.pick(['1s', '10s', '1m']),
      }));
    }
    // Beyond loopback without TLS only with the explicit opt-in (config.test.ts checks the refusal and the TLS blocks).
    if (r.chance(0.2)) { a.listen = '0.0.0.0:9095'; a.token = 'x'.repeat(r.range(16, 64)); a.allowPlaintextBeyondLoopback = true; }
    doc.actuator = a;
  }
  return {
    doc,
    expect: { services: services.map((s) => [s.name as string, s.port as number, s.manage === undefined ? s.destinations !== undefined : (s.manage as boolean)]) },
  };
}

/** YAML in a random style: block or flow, plain or quoted strings, any indent, or JSON (which is YAML too). */
function emit(r: Rng, doc: unknown): string {
  if (r.chance(0.15)) return JSON.stringify(doc, null, r.chance(0.5) ? 2 : undefined);
  let text = stringify(doc, {
    indent: r.range(2, 8), collectionStyle: r.pick(['any', 'block', 'flow'] as const),
    defaultStringType: r.pick(['PLAIN', 'QUOTE_DOUBLE', 'QUOTE_SINGLE'] as const), lineWidth: r.pick([0, 20, 80]),
  });
  if (r.chance(0.1)) text = `# vipguard\n%YAML 1.2\n---\n${text}...\n`;
  if (r.chance(0.1)) text = text.replace(/\n/g, '\r\n');
  if (r.chance(0.05)) text = `\ufeff${text}`;
  return text;
}

function leaves(v: unknown, path: string, out: { path: string; key: string }[]): void {
  if (Array.isArray(v)) v.forEach((x, i) => leaves(x, `${path}[${i}]`, out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) leaves(x, path ? `${path}.${k}` : k, out);
  else out.push({ path, key: path.replace(/\[\d+\]/g, '') });
}

function setAt(doc: Doc, path: string, value: unknown, remove = false): void {
  const keys = path.replace(/\[(\d+)\]/g, '.$1').split('.');
  let o = doc as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) o = o[k] as Record<string, unknown>;
  if (remove) delete o[keys[keys.length - 1]];
  else o[keys[keys.length - 1]] = value;
}

interface Case {
  kind: string;
  text: string;
  /** must load, and say these services back */
  valid?: { services: [string, number, boolean][] };
  /** must be refused, with an issue at this path (containing this text, if given) */
  refusedAt?: { path: string; includes?: string };
  /** must be refused */
  refused?: boolean;
}

function aliasBomb(r: Rng): string {
  const width = r.range(2, 12);
  const levels = r.range(3, 12);
  let s = `a0: &a0 [${Array(width).fill('"lol"').join(', ')}]\n`;
  for (let i = 1; i < levels; i++) s += `a${i}: &a${i} [${Array(width).fill(`*a${i - 1}`).join(', ')}]\n`;
  return `services: []\n${s}x: *a${levels - 1}\n`;
}

function makeCase(r: Rng): Case {
  const roll = r.int(100);
  const { doc, expect } = validDoc(r);
  if (roll < 25) return { kind: 'valid', text: emit(r, doc), valid: expect };
  if (roll < 40) {
    const ls: { path: string; key: string }[] = [];
    leaves(doc, '', ls);
    const typed = ls.filter((l) => LEAVES[l.key]);
    const l = r.pick(typed);
    setAt(doc, l.path, wrongFor(LEAVES[l.key], r));
    return { kind: 'wrong-type', text: emit(r, doc), refusedAt: { path: l.path } };
  }
  if (roll < 45) {
    const s = r.int((doc.services as Doc[]).length);
    const key = r.pick(['name', 'address', 'port']);
    setAt(doc, `services[${s}].${key}`, undefined, true);
    return { kind: 'missing', text: emit(r, doc), refusedAt: { path: `services[${s}].${key}`, includes: 'missing' } };
  }
  if (roll < 52) {
    const parents = ['', 'receiver', 'actuator', 'services[0]', 'actuator.quarantine'].filter((p) => p === '' || p.startsWith('services') || doc[p.split('.')[0]] !== undefined);
    const parent = r.pick(parents);
    const key = `x_${nastyText(r, 10).replace(/[^A-Za-z0-9_]/g, '_')}`;
    const path = parent ? `${parent}.${key}` : key;
    const target = parent === 'actuator.quarantine' && !(doc.actuator as Doc).quarantine ? undefined : path;
    if (target) {
      setAt(doc, target, r.chance(0.5) ? nastyText(r, 20) : { nested: [1, 2] });
      return { kind: 'unknown-key', text: emit(r, doc), refusedAt: { path: target, includes: 'unknown setting' } };
    }
    return { kind: 'valid', text: emit(r, doc), valid: expect };
  }
  if (roll < 80) { // edits of the YAML text: valid or not, never a crash
    const chars = [...emit(r, doc)];
    for (let i = r.range(1, 6); i > 0; i--) {
      const at = r.int(chars.length + 1);
      const op = r.int(3);
      const piece = r.chance(0.7) ? r.pick([':', '-', ' ', '\n', '[', ']', '{', '}', '"', "'", '&a', '*a', '!!str', '!x', '|', '>', '#', '%', '@', '\t', '? ', ',', '<<: *a', '---', '...']) : nastyText(r, 4);
      if (op === 0) chars.splice(at, 0, piece);
      else if (op === 1) chars.splice(at, r.range(1, 8));
      else chars.splice(at, 1, piece);
    }
    return { kind: 'edited', text: chars.join('') };
  }
  const base = emit(r, { services: [{ name: 'web', address: '10.99.0.1', port: 80 }] }).replace(/^\ufeff/, '').replace(/\r/g, '');
  const blockBase = 'services:\n  - name: web\n    address: 10.99.0.1\n    port: 80\n';
  switch (r.int(16)) {
    case 0: return { kind: 'alias-bomb', text: aliasBomb(r), refused: true };
    case 1: return { kind: 'recursive-alias', text: `${blockBase}${r.pick(['x: &a [1, *a]', 'x: &a {k: [*a]}', 'actuator: &a {quarantine: *a}'])}\n`, refused: true };
    case 2: { // shared settings through an anchor: legitimate, must load
      const t = `actuator:\n  quarantine: &q {base: 3s, max: 1m}\nservices:\n  - {name: a, address: 10.99.0.1, port: 80, quarantine: *q}\n  - {name: b, address: 10.99.0.2, port: 80, quarantine: *q}\n`;
      return { kind: 'anchor', text: t, valid: { services: [['a', 80, false], ['b', 80, false]] } };
    }
    case 3: {
      const d = r.chance(0.5) ? r.range(CONFIG_LIMITS.maxDepth, 2000) : r.range(2000, CONFIG_LIMITS.maxBytes / 2 - 100);
      const [o, c] = r.pick([['[', ']'], ['{a: ', '}'], ['[{b: ', '}]']]);
      const n = Math.floor(d / o.length);
      return { kind: 'deep-flow', text: `${blockBase}x: ${o.repeat(n)}1${r.chance(0.5) ? c.repeat(n) : ''}\n`, refused: true };
    }
    case 4: {
      const d = r.range(65, 1000);
      let s = `${blockBase}x:\n`;
      for (let i = 1; i <= d && s.length < CONFIG_LIMITS.maxBytes - 4 * d; i++) s += `${' '.repeat(i)}${r.chance(0.5) ? '-' : `k${i}:`}\n`;
      return { kind: 'deep-block', text: `${s}${' '.repeat(d + 1)}1\n`, refused: true };
    }
    case 5: {
      const over = r.chance(0.5);
      const size = over ? CONFIG_LIMITS.maxBytes + r.range(1, 4 * MiB) : CONFIG_LIMITS.maxBytes - 200 - r.int(100_000);
      return { kind: over ? 'huge-over' : 'huge-scalar', text: `${blockBase}    scheduler: "${r.pick(['x', 'é', '\u{1F600}']).repeat(size / 4)}"\n`.slice(0, size), refused: true };
    }
    case 6: { // a mapping with many keys (up to as many as fit): linear, not quadratic
      const size = r.chance(0.15) ? CONFIG_LIMITS.maxBytes - 100 : r.range(10_000, 150_000);
      let s = blockBase;
      for (let i = 0; s.length < size; i++) s += `k${i}: ${i}\n`;
      return { kind: 'many-keys', text: s, refused: true };
    }
    case 7: {
      const n = r.chance(0.2) ? r.range(5000, 8000) : r.range(200, 2000);
      const lines = ['services:'];
      for (let i = 0; i < n; i++) lines.push(`  - {name: s${i}, address: ${v4(i, '10.99')}, port: 80}`);
      return { kind: 'many-services', text: lines.join('\n') + '\n', valid: { services: Array.from({ length: n }, (_, i) => [`s${i}`, 80, false] as [string, number, boolean]) } };
    }
    case 8: return { kind: 'dup-key', text: `${blockBase}    port: 81\n`, refusedAt: { path: '', includes: 'duplicate key' } };
    case 9: return { kind: 'tags', text: `${blockBase}receiver: ${r.pick(['!!set {a, b}', '!!omap [a: 1]', '!!binary aGk=', '!foo {}', '!!timestamp 2001-12-14', '!!js/function "x"', '!<tag:yaml.org,2002:str> x'])}\n` };
    case 10: return { kind: 'directives', text: `${r.pick(['%YAML 1.1', '%YAML 9.9', '%TAG ! tag:x,2000:', '%FOO bar'])}\n---\n${base}` };
    case 11: return { kind: 'multi-doc', text: `${base}---\n${base}`, refused: true };
    case 12: return { kind: 'unicode-values', text: `services:\n  - name: ${nastyText(r, 30)}\n    address: ${nastyText(r, 20)}\n    port: ${nastyText(r, 6)}\n` };
    case 13: return { kind: 'control-bytes', text: Array.from({ length: r.range(1, 5000) }, () => String.fromCharCode(r.int(0x10000))).join('') };
    case 14: return { kind: 'empty', text: r.pick(['', '\n', '---\n', '~\n', 'null\n', '[]\n', '"x"\n', '42\n', '#\n']), refused: true };
    default: return { kind: 'merge-key', text: `defaults: &d {address: 10.99.0.1, port: 80}\nservices:\n  - <<: *d\n    name: web\n`, refused: true };
  }
}

describe('fuzzing the configuration loader', { timeout: 120_000 }, () => {
  it(`parseConfig: ${FUZZ_CASES} seeded cases (seed ${FUZZ_SEED})`, (t) => {
    const tally = new Tally();
    const heap0 = retainedHeap();
    const memory = new CaseMemory();
    let loaded = 0;
    let refused = 0;
    let issues = 0;
    const start = Date.now();
    for (let i = 0; i < FUZZ_CASES; i++) {
      const c = makeCase(caseRng(i, 1));
      const where = `case ${i} (${c.kind}, VIPGUARD_FUZZ_SEED=${FUZZ_SEED}): ${JSON.stringify(c.text.slice(0, 120))}`;
      memory.start(i, c.text.length);
      const t0 = performance.now();
      let error: unknown;
      let config: ReturnType<typeof parseConfig> | undefined;
      try {
        config = parseConfig(c.text, 'fuzz.yaml');
      } catch (e) {
        error = e;
      }
      const ms = performance.now() - t0;
      memory.end(`${i} ${c.kind} (${c.text.length} chars)`);
      tally.add(`${c.kind}:${config ? 'loaded' : 'refused'}`);
      tally.time(c.kind, ms, `${i} ${c.kind} (${c.text.length} chars)`);
      assert.ok(ms < CASE_MS, `${where}: took ${ms.toFixed(0)} ms`);
      if (error !== undefined) {
        assert.ok(error instanceof ConfigError, `${where}: threw ${(error as Error)?.constructor?.name}: ${(error as Error)?.stack}`);
        assert.ok(error.issues.length > 0 && error.issues.length <= CONFIG_LIMITS.maxIssues + 1, `${where}: ${error.issues.length} issues`);
        const nLines = c.text.split(/\r\n|\r|\n/).length;
        for (const iss of error.issues) {
          assert.ok(iss.message.length > 0, `${where}: an issue without a message`);
          if (iss.where) {
            const [line, col] = iss.where.split(':').map(Number);
            assert.ok(line >= 1 && line <= nLines + 1 && col >= 1, `${where}: issue at ${iss.where} outside a ${nLines}-line text: ${iss.message}`);
          }
        }
        refused++;
        issues += error.issues.length;
      } else loaded++;
      if (c.valid) {
        assert.ok(config, `${where}: a valid configuration was refused: ${(error as Error)?.message}`);
        assert.deepEqual(config.services.map((s) => [s.name, s.port, s.manage]), c.valid.services, where);
      }
      if (c.refused) assert.ok(error, `${where}: accepted`);
      if (c.refusedAt) {
        assert.ok(error instanceof ConfigError, `${where}: accepted`);
        const hit = error.issues.find((x) => x.path === c.refusedAt!.path && (!c.refusedAt!.includes || x.message.includes(c.refusedAt!.includes)));
        assert.ok(hit, `${where}: no issue at '${c.refusedAt.path}'${c.refusedAt.includes ? ` saying ${c.refusedAt.includes}` : ''}: ${error.message}`);
        if (c.refusedAt.path) assert.match(hit.where ?? '', /^\d+:\d+$/, `${where}: the issue has no line:column`);
      }
    }
    const retained = retainedHeap() - heap0;
    t.diagnostic(`config fuzz: ${FUZZ_CASES} cases in ${((Date.now() - start) / 1000).toFixed(1)} s, seed ${FUZZ_SEED}: ${loaded} loaded, ${refused} refused ` +
      `(${issues} issues), 0 other exceptions; slowest case ${tally.worstMs.toFixed(0)} ms (${tally.worstCase}, bound ${CASE_MS} ms); ` +
      `${memory.summary(RSS_BOUND)}, heap retained after GC ${(retained / MiB).toFixed(1)} MiB (bound ${RETAINED_BOUND / MiB})`);
    t.diagnostic(`config fuzz kinds: ${tally.summary()}`);
    t.diagnostic(`config fuzz time by kind: ${tally.timeSummary()}`);
    assert.ok(retained < RETAINED_BOUND, `heap retained ${(retained / MiB).toFixed(1)} MiB`);
    assert.ok(FUZZ_CASES >= 1000 || process.env.VIPGUARD_FUZZ_CASES !== undefined, 'at least 1000 cases');
    assert.ok(memory.worst < RSS_BOUND, memory.summary(RSS_BOUND));
    assert.ok(loaded > FUZZ_CASES / 10 && refused > FUZZ_CASES / 3, 'both valid and invalid cases were exercised');
  });
});
