// Loading vipguard.yaml: YAML -> JSON Schema validation (ajv, defaults filled in) -> checks the schema cannot
// express -> a typed, normalized Config. Every problem is reported with its place in the file, what was expected
// and what was found; a file with any problem yields no Config at all (the caller keeps the old one).
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import Ajv, { ErrorObject } from 'ajv';
import { Lexer, LineCounter, parseDocument, isAlias, isMap, isNode, isScalar, isSeq, Node as YamlNode } from 'yaml';
import { CONFIG_SCHEMA } from './schema';
import { formatAddr, parseAddr } from '../common/addr';
import { isLoopback } from '../common/token';
import { TlsFileError, TlsFiles, loadTls } from '../common/tls';
import { UdpProbeSpec, parseUdpProbeSpec } from '../actuator/udp-probe';

export type Outcome = 'unanswered' | 'refused' | 'unreachable' | 'abandoned';

export interface DestinationConfig {
  address: string;
  port: number;
  weight: number;
  forward: 'masq' | 'route' | 'tunnel';
}

export interface QuarantinePolicy {
  baseMs: number;
  multiplier: number;
  maxMs: number;
  decayAfterMs: number;
  maxQuarantined: { count: number } | { percent: number };
  probeBeforeRestore: boolean;
  probeTimeoutMs: number;
  probeIntervalMs: number;
  probeSuccesses: number;
}

export interface ServiceConfig {
  name: string;
  address: string;
  port: number;
  protocol: 'tcp' | 'udp';
  /** UDP: how a quarantined destination is probed before it is restored (src/actuator/udp-probe.ts) */
  probe?: UdpProbeSpec;
  manage: boolean;
  scheduler: string;
  destinations?: DestinationConfig[];
  quarantine: QuarantinePolicy;
}

export interface ExportSettings {
  enabled: boolean;
  endpoint: string;
  /** plaintext (the default without `tls`) */
  insecure: boolean;
  tls?: { ca?: string; cert?: string; key?: string };
  headers: Record<string, string>;
  tokenFile?: string;
  timeoutMs: number;
  spanDelayMs: number;
  metricIntervalMs: number;
  maxQueueSize: number;
  maxBatchSize: number;
  /** share of successful connections whose spans are exported (0 < ratio ≤ 1) */
  spanSampling: number;
}

export interface RuleConfig {
  name: string;
  outcomes: Outcome[];
  threshold: number;
  windowMs: number;
}

export interface Config {
  services: ServiceConfig[];
  receiver: {
    enabled: boolean; traceAll: boolean; ringBufferBytes: number; export: ExportSettings;
    prometheus: { enabled: boolean; listen: string; tls?: TlsFiles };
    deadline: { enabled: boolean; multiplier: number; percentile: number; floorMs: number; ceilingMs: number };
  };
  actuator: {
    enabled: boolean;
    listen: string;
    /** TLS on `listen` (the HTTP API) */
    tls?: TlsFiles;
    otlpListen: string;
    /** TLS on `otlpListen` */
    otlpTls?: TlsFiles;
    /** the opt-in to serve listen/otlpListen beyond loopback without TLS */
    allowPlaintextBeyondLoopback: boolean;
    /** inline token (actuator.token); otherwise the token lives in tokenFile (see src/common/token-file.ts) */
    token?: string;
    /** where the token is read from, or generated into at start */
    tokenFile: string;
    allowLoopbackWithoutToken: boolean;
    /** generic label keys that also name a target (src/actuator/labels.ts) */
    alertLabels: { service: string[]; destination: string[] };
    stateFile: string;
    reconcileIntervalMs: number;
    expireNodestConn: boolean;
    rules: RuleConfig[];
    quarantine: QuarantinePolicy;
    rateLimit: { perSecond: number; burst: number };
    synTimeout: { enabled: boolean; marginMs: number; floorMs: number; ceilingMs: number; cgroup?: string };
    holdRefusals: { enabled: boolean; cgroup?: string };
  };
}

export interface ConfigIssue {
  /** e.g. services[0].port */
  path: string;
  /** line:column in the file, when known */
  where?: string;
  message: string;
}

export class ConfigError extends Error {
  constructor(readonly source: string, readonly issues: ConfigIssue[]) {
    super(`${source}: ${issues.length} problem${issues.length === 1 ? '' : 's'}:\n` +
      issues.map((i) => `  ${i.where ? `${source}:${i.where}: ` : ''}${i.path || '(top level)'}: ${i.message}`).join('\n'));
    this.name = 'ConfigError';
  }
}

let validator: ReturnType<Ajv['compile']> | undefined;
function validate() {
  if (!validator) {
    const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, strictTuples: false });
    // net.isIP accepts an IPv6 zone (fe80::1%eth0), which IPVS has no place for and parseAddr would drop.
    ajv.addFormat('ip', (s: string) => net.isIP(s) !== 0 && !s.includes('%'));
    validator = ajv.compile(CONFIG_SCHEMA);
  }
  return validator;
}

export function durationMs(text: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)$/.exec(text);
  if (!m) throw new Error(`invalid duration '${text}': expected e.g. 500ms, 10s, 5m, 1h`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
}

/** ajv's /services/0/port -> services[0].port */
function dotted(pointer: string): string {
  return pointer.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, p) => (/^[0-9]+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function ajvIssue(e: ErrorObject, data: unknown): { pointer: string; message: string } {
  let pointer = e.instancePath;
  let message: string;
  const got = () => describe(pointer.split('/').slice(1).reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], data));
  switch (e.keyword) {
    case 'additionalProperties': {
      const extra = (e.params as { additionalProperty: string }).additionalProperty;
      pointer = `${pointer}/${extra}`;
      message = 'unknown setting (check its spelling and indentation)';
      return { pointer, message };
    }
    case 'required':
      pointer = `${pointer}/${(e.params as { missingProperty: string }).missingProperty}`;
      return { pointer, message: 'missing (required)' };
    case 'enum':
      message = `expected one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map(describe).join(', ')}, got ${got()}`;
      return { pointer, message };
    case 'format':
      return { pointer, message: `expected an IPv4 or IPv6 address, got ${got()}` };
    case 'pattern':
      return { pointer, message: `expected ${patternHint(pointer)}, got ${got()}` };
    default:
      return { pointer, message: `${e.message ?? 'invalid'}, got ${got()}` };
  }
}

function patternHint(pointer: string): string {
  const key = pointer.split('/').pop() ?? '';
  if (/listen$/i.test(key)) return 'HOST:PORT (e.g. 127.0.0.1:9095)';
  if (key === 'certFile' || key === 'keyFile' || key === 'clientCAFile' || pointer.endsWith('/tls/ca') || pointer.endsWith('/tls/cert') || pointer.endsWith('/tls/key')) return 'a file path';
  if (key === 'endpoint') return 'HOST:PORT (e.g. 127.0.0.1:4317)';
  if (key === 'maxQuarantined') return 'a count or a percentage like 50%';
  if (key === 'name') return 'a name of letters, digits, _ . - (max 63)';
  if (key === 'scheduler') return 'an IPVS scheduler name (rr, wrr, lc, …)';
  if (pointer.includes('/alertLabels/')) return 'a Prometheus label name (letters, digits and _, not starting with a digit)';
  return 'a duration like 500ms, 10s, 5m, 1h';
}

const canon = (a: string) => { const p = parseAddr(a); return formatAddr(p.family, p.bytes); };

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- validated by the schema

function quarantinePolicy(q: Raw, base?: QuarantinePolicy): QuarantinePolicy {
  const pick = <T>(v: T | undefined, d: T | undefined) => (v !== undefined ? v : (d as T));
  const mq = q.maxQuarantined;
  return {
    baseMs: q.base !== undefined ? durationMs(q.base) : base!.baseMs,
    multiplier: pick(q.multiplier, base?.multiplier),
    maxMs: q.max !== undefined ? durationMs(q.max) : base!.maxMs,
    decayAfterMs: q.decayAfter !== undefined ? durationMs(q.decayAfter) : base!.decayAfterMs,
    maxQuarantined: mq === undefined ? base!.maxQuarantined
      : typeof mq === 'number' ? { count: mq } : { percent: Number(String(mq).slice(0, -1)) },
    probeBeforeRestore: pick(q.probeBeforeRestore, base?.probeBeforeRestore),
    probeTimeoutMs: q.probeTimeout !== undefined ? durationMs(q.probeTimeout) : base!.probeTimeoutMs,
    probeIntervalMs: q.probeInterval !== undefined ? durationMs(q.probeInterval) : base!.probeIntervalMs,
    probeSuccesses: pick(q.probeSuccesses, base?.probeSuccesses),
  };
}

/** setTimeout/setInterval take at most 2^31-1 ms; beyond it Node fires after 1 ms, i.e. a busy loop. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Durations that drive a periodic timer or the metric reader, which refuses 0 at startup. */
const MIN_MS: Record<string, number> = {
  'actuator.reconcileInterval': 100, 'receiver.export.metricInterval': 100, 'receiver.export.timeout': 1,
  'actuator.quarantine.probeInterval': 50, 'services.quarantine.probeInterval': 50,
  'actuator.quarantine.probeTimeout': 10, 'services.quarantine.probeTimeout': 10,
};

/** Every duration setting, found through the schema (pattern ending in ms|s|m|h), checked against timer limits. */
function durationIssues(schema: Raw, data: unknown, path: string, issues: { path: string; message: string }[]): void {
  if (typeof schema.pattern === 'string' && schema.pattern.endsWith('(ms|s|m|h)$') && typeof data === 'string') {
    const ms = durationMs(data);
    if (ms > MAX_TIMER_MS) issues.push({ path, message: `${data} is too long: at most ${MAX_TIMER_MS} ms (24.8 days)` });
    else if (MIN_MS[path.replace(/\[\d+\]/g, '')] > ms) issues.push({ path, message: `${data} is too short: at least ${MIN_MS[path.replace(/\[\d+\]/g, '')]}ms` });
    return;
  }
  if (schema.properties && data && typeof data === 'object' && !Array.isArray(data)) {
    for (const [k, sub] of Object.entries(schema.properties as Record<string, Raw>)) {
      if (k in data) durationIssues(sub, (data as Raw)[k], path ? `${path}.${k}` : k, issues);
    }
  } else if (schema.items && Array.isArray(data)) {
    data.forEach((x, i) => durationIssues(schema.items, x, `${path}[${i}]`, issues));
  }
}

/** Checks the schema cannot express; pushes issues with dotted paths. */
function semanticIssues(raw: Raw, issues: { path: string; message: string }[], checkTlsFiles: boolean): void {
  const names = new Map<string, number>();
  const vips = new Map<string, number>();
  raw.services.forEach((s: Raw, i: number) => {
    const at = `services[${i}]`;
    if (names.has(s.name)) issues.push({ path: `${at}.name`, message: `duplicate service name '${s.name}' (also services[${names.get(s.name)}])` });
    names.set(s.name, i);
    const vip = `${s.protocol}/${canon(s.address)}:${s.port}`;
    if (vips.has(vip)) issues.push({ path: `${at}.address`, message: `${vip} is already services[${vips.get(vip)}]` });
    if (s.probe !== undefined && s.protocol !== 'udp') {
      issues.push({ path: `${at}.probe`, message: 'probe is for UDP services; a TCP destination is probed with a connect' });
    } else if (s.probe !== undefined) {
      try { parseUdpProbeSpec(s.probe); } catch (e) { issues.push({ path: `${at}.probe`, message: (e as Error).message }); }
    } else if (s.protocol === 'udp' && (s.quarantine?.probeBeforeRestore ?? raw.actuator.quarantine?.probeBeforeRestore ?? true)) {
      issues.push({ path: `${at}.probe`, message: 'a UDP service needs a restore probe — {dns: <name>} for DNS (any answer counts), {payload: <bytes>, expect: <bytes>}, or {silence: true} (the weakest: no ICMP error) — or quarantine.probeBeforeRestore: false' });
    }
    if (s.protocol === 'udp' && raw.actuator.enabled && raw.actuator.expireNodestConn === false) {
      issues.push({ path: `${at}.protocol`, message: 'a UDP service needs actuator.expireNodestConn: true — a UDP destination is quarantined by removing it, and without expire_nodest_conn its flows would be black-holed instead of moved' });
    }
    vips.set(vip, i);
    const manage = s.manage ?? s.destinations !== undefined;
    if (manage && !s.destinations?.length) issues.push({ path: `${at}.destinations`, message: 'a managed service (manage: true) needs at least one destination' });
    const seen = new Set<string>();
    (s.destinations ?? []).forEach((d: Raw, j: number) => {
      const k = `${canon(d.address)}:${d.port}`;
      if (seen.has(k)) issues.push({ path: `${at}.destinations[${j}]`, message: `duplicate destination ${k}` });
      seen.add(k);
      if (net.isIP(d.address) !== net.isIP(s.address) && d.forward !== 'tunnel') {
        issues.push({ path: `${at}.destinations[${j}].address`, message: `IPv${net.isIP(d.address)} destination for an IPv${net.isIP(s.address)} service needs forward: tunnel` });
      }
    });
    const pct = s.quarantine?.maxQuarantined;
    if (typeof pct === 'string' && Number(pct.slice(0, -1)) > 100) issues.push({ path: `${at}.quarantine.maxQuarantined`, message: `at most 100%, got ${pct}` });
  });
  const dl = raw.receiver.deadline;
  if (durationMs(dl.floor) > durationMs(dl.ceiling)) issues.push({ path: 'receiver.deadline.floor', message: `floor ${dl.floor} is above ceiling ${dl.ceiling}` });
  const a = raw.actuator;
  if (typeof a.quarantine?.maxQuarantined === 'string' && Number(a.quarantine.maxQuarantined.slice(0, -1)) > 100) {
    issues.push({ path: 'actuator.quarantine.maxQuarantined', message: `at most 100%, got ${a.quarantine.maxQuarantined}` });
  }
  if (a.token && a.tokenFile) issues.push({ path: 'actuator.tokenFile', message: 'give token or tokenFile, not both' });
  if (a.token && a.allowLoopbackWithoutToken) issues.push({ path: 'actuator.allowLoopbackWithoutToken', message: 'a token is set: drop allowLoopbackWithoutToken or the token' });
  for (const [key, tlsKey] of [['listen', 'tls'], ['otlpListen', 'otlpTls']]) {
    if (!a.enabled) continue;
    const loopback = isLoopback(hostOfListen(a[key]));
    if (!loopback && a.allowLoopbackWithoutToken) {
      issues.push({ path: `actuator.${key}`, message: `${a[key]} is not loopback: allowLoopbackWithoutToken applies to loopback only — drop it (a token is then required) or listen on 127.0.0.1` });
    }
    // Beyond loopback the token, and every alert, would cross the network readable and replayable.
    if (!loopback && !a[tlsKey] && !a.allowPlaintextBeyondLoopback) {
      issues.push({ path: `actuator.${key}`, message: `${a[key]} is not loopback and has no TLS: expected actuator.${tlsKey} (certFile, keyFile, optional clientCAFile) — the bearer token would cross the network in clear — or allowPlaintextBeyondLoopback: true on an already encrypted network` });
    }
  }
  const prom = raw.receiver.prometheus;
  if (raw.receiver.enabled && prom.enabled && !isLoopback(hostOfListen(prom.listen)) && !prom.tls?.clientCAFile) {
    // Metrics name backends and traffic patterns; the scrape endpoint has no token: a client certificate is its only authentication.
    issues.push({ path: 'receiver.prometheus.listen', message: `${prom.listen} is not loopback: the scrape endpoint has no token — keep it on 127.0.0.1 (and let the collector export further), or give it receiver.prometheus.tls with clientCAFile (mutual TLS: Prometheus presents a client certificate)` });
  }
  const e = raw.receiver.export;
  if (e.tls && e.insecure === true) issues.push({ path: 'receiver.export.insecure', message: 'insecure: true contradicts receiver.export.tls — drop one (tls alone turns TLS on)' });
  if (e.tls && (e.tls.cert === undefined) !== (e.tls.key === undefined)) {
    issues.push({ path: `receiver.export.tls.${e.tls.cert === undefined ? 'cert' : 'key'}`, message: 'missing: a client certificate needs both cert and key' });
  }
  const plaintext = e.insecure ?? !e.tls;
  const sendsToken = e.tokenFile !== undefined || Object.keys(e.headers).some((h) => h.toLowerCase() === 'authorization');
  if (raw.receiver.enabled && e.enabled && plaintext && sendsToken && e.insecure !== true && !isLoopback(hostOfListen(e.endpoint))) {
    issues.push({ path: 'receiver.export.endpoint', message: `${e.endpoint} is not loopback and the export is plaintext: the token would cross the network in clear — expected receiver.export.tls (ca: the CA of the endpoint's certificate), or insecure: true written out to accept it` });
  }
  if (checkTlsFiles) tlsIssues(raw, issues);
  const names2 = new Set<string>();
  (a.rules as Raw[]).forEach((r, i) => {
    if (names2.has(r.name)) issues.push({ path: `actuator.rules[${i}].name`, message: `duplicate rule name '${r.name}'` });
    names2.add(r.name);
  });
}

function hostOfListen(listen: string): string {
  return String(listen).replace(/:[0-9]+$/, '').replace(/^\[|\]$/g, '');
}

/** Every tls block's files, read and checked now, so a certificate problem is a configuration problem (check-config, reload). */
function tlsIssues(raw: Raw, issues: { path: string; message: string }[], now = Date.now()): void {
  const blocks: [string, TlsFiles | undefined][] = [
    ['actuator.tls', raw.actuator.tls], ['actuator.otlpTls', raw.actuator.otlpTls], ['receiver.prometheus.tls', raw.receiver.prometheus.tls],
  ];
  for (const [at, files] of blocks) {
    if (!files) continue;
    try {
      loadTls(files, now);
    } catch (e) {
      if (!(e instanceof TlsFileError)) throw e;
      issues.push({ path: `${at}.${e.key}`, message: e.message });
    }
  }
  const t = raw.receiver.export.tls as { ca?: string; cert?: string; key?: string } | undefined;
  if (t?.ca) {
    try {
      fs.accessSync(t.ca, fs.constants.R_OK);
    } catch (e) {
      issues.push({ path: 'receiver.export.tls.ca', message: `cannot read ${t.ca} (${(e as NodeJS.ErrnoException).code}): expected the PEM CA certificate(s) of the endpoint's certificate` });
    }
  }
  if (t?.cert && t.key) {
    try {
      // A client certificate is checked like a server's: readable, the key its own, within its dates.
      loadTls({ certFile: t.cert, keyFile: t.key }, now);
    } catch (e) {
      if (!(e instanceof TlsFileError)) throw e;
      issues.push({ path: `receiver.export.tls.${e.key === 'certFile' ? 'cert' : 'key'}`, message: e.message });
    }
  }
}

/** The token file when none is configured: beside the state file, which vipguard's own directory holds. */
export function defaultTokenFile(stateFile: string): string {
  return path.join(path.dirname(stateFile), 'token');
}

const tlsFiles = (t: Raw | undefined): TlsFiles | undefined =>
  (t ? { certFile: t.certFile, keyFile: t.keyFile, ...(t.clientCAFile !== undefined ? { clientCAFile: t.clientCAFile } : {}) } : undefined);

function build(raw: Raw): Config {
  const a = raw.actuator;
  const policy = quarantinePolicy(a.quarantine);
  const e = raw.receiver.export;
  return {
    services: raw.services.map((s: Raw) => ({
      name: s.name, address: canon(s.address), port: s.port, protocol: s.protocol,
      ...(s.probe !== undefined ? { probe: parseUdpProbeSpec(s.probe) } : {}),
      manage: s.manage ?? s.destinations !== undefined, scheduler: s.scheduler,
      destinations: s.destinations?.map((d: Raw) => ({ address: canon(d.address), port: d.port, weight: d.weight, forward: d.forward })),
      quarantine: s.quarantine ? quarantinePolicy(s.quarantine, policy) : policy,
    })),
    receiver: {
      enabled: raw.receiver.enabled, traceAll: raw.receiver.traceAll, ringBufferBytes: raw.receiver.ringBufferBytes,
      prometheus: { enabled: raw.receiver.prometheus.enabled, listen: raw.receiver.prometheus.listen, tls: tlsFiles(raw.receiver.prometheus.tls) },
      deadline: {
        enabled: raw.receiver.deadline.enabled, multiplier: raw.receiver.deadline.multiplier, percentile: raw.receiver.deadline.percentile,
        floorMs: durationMs(raw.receiver.deadline.floor), ceilingMs: durationMs(raw.receiver.deadline.ceiling),
      },
      export: {
        enabled: e.enabled, endpoint: e.endpoint, insecure: e.insecure ?? !e.tls, tls: e.tls, headers: e.headers, tokenFile: e.tokenFile,
        timeoutMs: durationMs(e.timeout), spanDelayMs: durationMs(e.spanDelay), metricIntervalMs: durationMs(e.metricInterval),
        maxQueueSize: e.maxQueueSize, maxBatchSize: e.maxBatchSize, spanSampling: e.spanSampling,
      },
    },
    actuator: {
      enabled: a.enabled, listen: a.listen, tls: tlsFiles(a.tls), otlpListen: a.otlpListen, otlpTls: tlsFiles(a.otlpTls),
      allowPlaintextBeyondLoopback: a.allowPlaintextBeyondLoopback, token: a.token,
      tokenFile: a.tokenFile ?? defaultTokenFile(a.stateFile), allowLoopbackWithoutToken: a.allowLoopbackWithoutToken,
      alertLabels: { service: a.alertLabels.service, destination: a.alertLabels.destination }, stateFile: a.stateFile,
      reconcileIntervalMs: durationMs(a.reconcileInterval), expireNodestConn: a.expireNodestConn,
      rules: a.rules.map((r: Raw) => ({ name: r.name, outcomes: r.outcomes, threshold: r.threshold, windowMs: durationMs(r.window) })),
      quarantine: policy,
      rateLimit: { perSecond: a.rateLimit.perSecond, burst: a.rateLimit.burst },
      synTimeout: {
        enabled: a.synTimeout.enabled, marginMs: durationMs(a.synTimeout.margin), floorMs: durationMs(a.synTimeout.floor),
        ceilingMs: durationMs(a.synTimeout.ceiling), cgroup: a.synTimeout.cgroup,
      },
      holdRefusals: { enabled: a.holdRefusals.enabled, cgroup: a.holdRefusals.cgroup },
    },
  };
}

/**
 * Bounds on what the loader will look at, so a broken or hostile file costs a bounded time and memory — a reload
 * runs on the event loop that also drains the ring buffer and reconciles IPVS. Found by test/unit/fuzz-config.test.ts:
 * without them half a megabyte of `[` took the process down (out of memory inside the yaml parser), 50 000 keys in
 * one mapping took 90 s (yaml's uniqueKeys check is quadratic), an alias bomb threw a ReferenceError and a recursive
 * alias a TypeError instead of a ConfigError. A real vipguard.yaml is a few kilobytes, a few levels deep.
 */
export const CONFIG_LIMITS = { maxBytes: 1 << 20, maxDepth: 64, maxAliasCount: 100, maxIssues: 100 } as const;

/**
 * Flow nesting ([ and {) measured on yaml's own lexer tokens — quotes, comments and block scalars understood,
 * linear and without building anything — before the parser, which needs memory per open collection, sees it.
 * Returns the offset where the limit is passed.
 */
function flowDepthIssue(text: string): number | undefined {
  let depth = 0;
  let offset = 0;
  for (const token of new Lexer().lex(text)) {
    if (token === '[' || token === '{') {
      if (++depth > CONFIG_LIMITS.maxDepth) return offset;
    } else if ((token === ']' || token === '}') && depth > 0) depth--;
    if (token !== '\x02' && token !== '\x18' && token !== '\x1f') offset += token.length; // lexer markers, not text
  }
  return undefined;
}

/** Duplicate keys and nesting depth over the parsed node tree (iterative: no recursion on hostile depth). */
function structureIssues(root: unknown): { node: YamlNode; message: string; first?: YamlNode }[] {
  const out: { node: YamlNode; message: string; first?: YamlNode }[] = [];
  const stack: { node: unknown; depth: number }[] = [{ node: root, depth: 0 }];
  while (stack.length && out.length < CONFIG_LIMITS.maxIssues) {
    const { node, depth } = stack.pop()!;
    if (isMap(node) || isSeq(node)) {
      if (depth > CONFIG_LIMITS.maxDepth) {
        out.push({ node, message: `YAML: nested more than ${CONFIG_LIMITS.maxDepth} levels deep` });
        continue;
      }
      // yaml's own uniqueKeys check compares every key with every other one: quadratic in the size of a mapping.
      const seen = new Map<unknown, YamlNode>();
      for (const item of node.items as unknown[]) {
        if (isMap(node)) {
          const pair = item as { key: unknown; value: unknown };
          if (isScalar(pair.key)) {
            const first = seen.get(pair.key.value);
            if (first) out.push({ node: pair.key, message: `YAML: duplicate key '${String(pair.key.value).slice(0, 60)}'`, first });
            else seen.set(pair.key.value, pair.key);
          }
          stack.push({ node: pair.value, depth: depth + 1 });
        } else stack.push({ node: item, depth: depth + 1 });
      }
    }
  }
  return out;
}

function firstAlias(root: unknown): YamlNode | undefined {
  const stack: unknown[] = [root];
  while (stack.length) {
    const x = stack.pop();
    if (isAlias(x)) return x;
    if (isMap(x)) for (const p of x.items) stack.push(p.value);
    else if (isSeq(x)) stack.push(...x.items);
  }
  return undefined;
}

/** Depth of the data after aliases are expanded: an alias to its own ancestor makes it infinite. */
function dataTooDeep(data: unknown): boolean {
  const stack: { v: unknown; depth: number }[] = [{ v: data, depth: 0 }];
  let budget = 4_000_000; // aliases may share subtrees; maxAliasCount keeps the expanded size near the text's
  while (stack.length) {
    const { v, depth } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > CONFIG_LIMITS.maxDepth || --budget < 0) return true;
    for (const x of Object.values(v)) stack.push({ v: x, depth: depth + 1 });
  }
  return false;
}

/** Parses and validates YAML text; throws ConfigError listing every problem. */
export interface ParseOptions {
  /**
   * Read and check the files of every tls block (default). Off for commands that only read settings from the
   * file (`status`, `trace`), whose user may rightly be unable to read a key private to vipguard's user.
   */
  tlsFiles?: boolean;
  /** where the standard OTEL_EXPORTER_OTLP_* variables are read from (default: this process's environment) */
  env?: NodeJS.ProcessEnv;
}

const DEFAULT_OTLP_ENDPOINT = '127.0.0.1:4317';

/**
 * The standard OTLP exporter variables, under what the file writes (the file wins, setting by setting):
 * OTEL_EXPORTER_OTLP_ENDPOINT (a URL; its scheme says plaintext or TLS), OTEL_EXPORTER_OTLP_INSECURE and
 * OTEL_EXPORTER_OTLP_HEADERS (key=value pairs, comma-separated, values URL-encoded). The TLS file variables are read
 * by the exporter itself (src/telemetry/export.ts). Signal-specific forms (…_TRACES_ENDPOINT) are not: vipguard
 * sends traces and metrics to one endpoint.
 */
function applyOtlpEnv(e: Raw, env: NodeJS.ProcessEnv, issues: { path: string; message: string }[]): void {
  const url = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (e.endpoint === undefined && url) {
    let u: URL | undefined;
    try { u = new URL(url); } catch { /* reported below */ }
    if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || !u.hostname || (u.pathname !== '/' && u.pathname !== '')) {
      issues.push({ path: 'receiver.export.endpoint', message: `OTEL_EXPORTER_OTLP_ENDPOINT=${JSON.stringify(url.slice(0, 200))} is not an OTLP/gRPC endpoint URL: expected http://HOST:PORT (plaintext) or https://HOST:PORT (TLS) — or write receiver.export.endpoint in the file` });
    } else {
      e.endpoint = `${u.hostname}:${u.port || '4317'}`;
      if (u.protocol === 'https:' && e.insecure === undefined && !e.tls) e.insecure = false;
    }
  }
  const insecure = env.OTEL_EXPORTER_OTLP_INSECURE?.trim().toLowerCase();
  if (e.insecure === undefined && !e.tls && (insecure === 'true' || insecure === 'false')) e.insecure = insecure === 'true';
  const headers = env.OTEL_EXPORTER_OTLP_HEADERS?.trim();
  if (headers) {
    const fromEnv: Record<string, string> = {};
    for (const part of headers.split(',')) {
      const eq = part.indexOf('=');
      const key = eq > 0 ? part.slice(0, eq).trim() : '';
      let value: string | undefined;
      try { value = eq > 0 ? decodeURIComponent(part.slice(eq + 1).trim()) : undefined; } catch { /* reported below */ }
      if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(key) || value === undefined) {
        issues.push({ path: 'receiver.export.headers', message: `OTEL_EXPORTER_OTLP_HEADERS: ${JSON.stringify(part.slice(0, 80))} is not key=value (expected key=value pairs separated by commas, values URL-encoded)` });
        continue;
      }
      fromEnv[key.toLowerCase()] = value;
    }
    e.headers = { ...fromEnv, ...e.headers };
  }
  e.endpoint ??= DEFAULT_OTLP_ENDPOINT;
}

export function parseConfig(text: string, source = 'config', opts: ParseOptions = {}): Config {
  if (Buffer.byteLength(text) > CONFIG_LIMITS.maxBytes) {
    throw new ConfigError(source, [{ path: '', message: `${Buffer.byteLength(text)} bytes: a configuration is at most ${CONFIG_LIMITS.maxBytes} bytes` }]);
  }
  const lines = new LineCounter();
  const where = (offset: number | undefined) => {
    if (offset === undefined) return undefined;
    const p = lines.linePos(offset);
    return `${p.line}:${p.col}`;
  };
  const deepAt = flowDepthIssue(text);
  if (deepAt !== undefined) {
    lines.addNewLine(0);
    for (let i = text.indexOf('\n'); i >= 0 && i < deepAt; i = text.indexOf('\n', i + 1)) lines.addNewLine(i + 1);
    throw new ConfigError(source, [{ path: '', where: where(deepAt), message: `YAML: nested more than ${CONFIG_LIMITS.maxDepth} levels deep` }]);
  }
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  if (doc.errors.length) {
    throw new ConfigError(source, doc.errors.slice(0, CONFIG_LIMITS.maxIssues).map((e) => ({ path: '', where: where(e.pos[0]), message: `YAML: ${e.message.split('\n')[0]}` })));
  }
  const structural = structureIssues(doc.contents);
  if (structural.length) {
    throw new ConfigError(source, structural.map((i) => ({
      path: '', where: where(i.node.range?.[0]), message: i.first ? `${i.message} (first at ${where(i.first.range?.[0])})` : i.message,
    })));
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: CONFIG_LIMITS.maxAliasCount }) ?? {};
  } catch (e) {
    // yaml throws a ReferenceError for an alias bomb ("Excessive alias count…").
    throw new ConfigError(source, [{ path: '', where: where(firstAlias(doc.contents)?.range?.[0]), message: `YAML: aliases expand too much (${(e as Error).message}; at most ${CONFIG_LIMITS.maxAliasCount} expansions)` }]);
  }
  if (dataTooDeep(data)) {
    throw new ConfigError(source, [{ path: '', message: `YAML: nested more than ${CONFIG_LIMITS.maxDepth} levels deep once aliases are expanded (an alias inside its own anchor?)` }]);
  }
  // The node a pointer names — for an unknown setting its key, the thing to fix — or its nearest ancestor.
  const located = (path: string, pointer: string, message: string, atKey = false): ConfigIssue => {
    const keys = pointer.split('/').slice(1).map((k) => (/^[0-9]+$/.test(k) ? Number(k) : k));
    let node: unknown;
    if (atKey && keys.length) {
      const parent = keys.length > 1 ? doc.getIn(keys.slice(0, -1), true) : doc.contents;
      const pair = isMap(parent) ? parent.items.find((p) => isScalar(p.key) && p.key.value === keys[keys.length - 1]) : undefined;
      node = pair?.key;
    }
    for (let n = keys.length; n > 0 && !isNode(node); n--) node = doc.getIn(keys.slice(0, n), true);
    if (!isNode(node)) node = doc.contents;
    const range = isNode(node) ? node.range : undefined;
    return { path, where: where(range?.[0]), message };
  };
  const byPosition = (a: ConfigIssue, b: ConfigIssue) => {
    const [al, ac] = (a.where ?? '0:0').split(':').map(Number);
    const [bl, bc] = (b.where ?? '0:0').split(':').map(Number);
    return al - bl || ac - bc;
  };
  const v = validate();
  if (!v(data)) {
    const seen = new Set<string>();
    const issues: ConfigIssue[] = [];
    let more = 0;
    for (const e of v.errors ?? []) {
      if (e.keyword === 'oneOf' || e.keyword === 'if') continue; // the branch errors say it better
      const { pointer, message } = ajvIssue(e, data);
      const key = `${pointer} ${message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      // Locating an issue searches its mapping: report the first few hundred, count the rest.
      if (issues.length >= CONFIG_LIMITS.maxIssues) more++;
      else issues.push(located(dotted(pointer), pointer, message, e.keyword === 'additionalProperties'));
    }
    issues.sort(byPosition);
    if (more) issues.push({ path: '', message: `and ${more} more problem${more === 1 ? '' : 's'}` });
    throw new ConfigError(source, issues);
  }
  const sem: { path: string; message: string }[] = [];
  durationIssues(CONFIG_SCHEMA as Raw, data, '', sem);
  applyOtlpEnv((data as Raw).receiver.export, opts.env ?? process.env, sem);
  semanticIssues(data as Raw, sem, opts.tlsFiles ?? true);
  if (sem.length) {
    throw new ConfigError(source, sem.map((i) => located(i.path, '/' + i.path.replace(/\[(\d+)\]/g, '.$1').split('.').join('/'), i.message)).sort(byPosition));
  }
  try {
    return build(data as Raw);
  } catch (e) {
    throw new ConfigError(source, [{ path: '', message: (e as Error).message }]);
  }
}

export function loadConfig(file: string, opts: ParseOptions = {}): Config {
  let text: string;
  try {
    const size = fs.statSync(file).size;
    if (size > CONFIG_LIMITS.maxBytes) {
      throw new ConfigError(file, [{ path: '', message: `${size} bytes: a configuration is at most ${CONFIG_LIMITS.maxBytes} bytes` }]);
    }
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(file, [{ path: '', message: `cannot read: ${(e as Error).message}` }]);
  }
  return parseConfig(text, file, opts);
}
