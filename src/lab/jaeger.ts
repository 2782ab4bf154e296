// Jaeger v2, a real trace backend for tests and the demo: where scripts/jaeger.sh caches the binary, a configuration
// with in-memory storage on free loopback ports (its OTLP/gRPC receiver, TLS when given a certificate, and the query
// HTTP API), run as a child process, and a reader of the query API's answers.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { REPO_ROOT } from '../common/paths';
import { freePort } from '../common/ports';
import { cacheRoot } from './kernels';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The pinned module version, read from scripts/jaeger.sh (its one source) so both always name the same binary. */
export function jaegerVersion(): string {
  const script = fs.readFileSync(path.join(REPO_ROOT, 'scripts', 'jaeger.sh'), 'utf8');
  const m = /^version=(v\S+)/m.exec(script);
  if (!m) throw new Error('scripts/jaeger.sh has no version=v… line');
  return m[1];
}

export function jaegerBinaryPath(): string {
  return path.join(cacheRoot(), 'jaeger', jaegerVersion(), 'jaeger');
}

/** The binary, or undefined when it has not been built (the demo runs without it). */
export function jaegerBinaryIfBuilt(): string | undefined {
  const bin = jaegerBinaryPath();
  try {
    fs.accessSync(bin, fs.constants.X_OK);
    return bin;
  } catch {
    return undefined;
  }
}

/** The binary; throws, naming the build script, when it has not been built. */
export function jaegerBinary(): string {
  const bin = jaegerBinaryIfBuilt();
  if (!bin) {
    throw new Error(`Jaeger is not built (no ${jaegerBinaryPath()}): run scripts/jaeger.sh ` +
      '(npm run provision runs it; it needs Go and the Go module proxy)');
  }
  return bin;
}

export interface JaegerOptions {
  tls?: { cert: string; key: string };
  discardMetrics?: boolean;
}

export interface JaegerPorts {
  /** OTLP/gRPC receiver: where the collector's otlp_grpc/traces exporter sends */
  otlp: number;
  /** the query service's HTTP API (/api/traces, /api/v3/…) */
  query: number;
  /** the query service's gRPC API: unused, but it listens, so it gets a free port too */
  queryGrpc: number;
}

/**
 * Jaeger's own configuration (it is an OpenTelemetry Collector distribution): OTLP/gRPC in, the batch processor, the
 * storage exporter into a memory backend, the query extension on loopback. `tls`: the OTLP receiver's certificate
 * and key, for a sender that, like collector.yaml's traces exporter, insists on TLS. `discardMetrics`: also take
 * OTLP metrics and drop them (nop), for vipguard exporting straight to Jaeger, which sends metrics to the same
 * endpoint. No metrics of its own (its default reader would take port 8888).
 */
export function jaegerConfig(ports: JaegerPorts, opts: JaegerOptions = {}): string {
  const { tls, discardMetrics } = opts;
  return stringify({
    service: {
      extensions: ['jaeger_storage', 'jaeger_query'],
      pipelines: {
        traces: { receivers: ['otlp'], processors: ['batch'], exporters: ['jaeger_storage_exporter'] },
        ...(discardMetrics ? { metrics: { receivers: ['otlp'], exporters: ['nop'] } } : {}),
      },
      telemetry: { metrics: { level: 'none' }, logs: { level: 'info' } },
    },
    extensions: {
      jaeger_storage: { backends: { memory: { memory: { max_traces: 100_000 } } } },
      jaeger_query: {
        storage: { traces: 'memory' },
        http: { endpoint: `127.0.0.1:${ports.query}` },
        grpc: { endpoint: `127.0.0.1:${ports.queryGrpc}` },
      },
    },
    receivers: {
      otlp: {
        protocols: {
          grpc: { endpoint: `127.0.0.1:${ports.otlp}`, ...(tls ? { tls: { cert_file: tls.cert, key_file: tls.key } } : {}) },
        },
      },
    },
    processors: { batch: { timeout: '200ms' } },
    exporters: { jaeger_storage_exporter: { trace_storage: 'memory' }, ...(discardMetrics ? { nop: {} } : {}) },
  });
}

export interface JaegerProcess {
  proc: ChildProcess;
  lines: string[];
  ports: JaegerPorts;
  dir: string;
  /** the query API's base URL, http://127.0.0.1:<port> */
  queryUrl: string;
  exited: Promise<number | null>;
}

/**
 * Starts Jaeger on free loopback ports, its configuration written into `dir` (a fresh temporary one by default), and
 * waits until its query API answers.
 */
export async function startJaeger(opts: JaegerOptions & { dir?: string; readyTimeoutMs?: number } = {}): Promise<JaegerProcess> {
  const bin = jaegerBinary();
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'jaeger-'));
  const ports: JaegerPorts = { otlp: await freePort(), query: await freePort(), queryGrpc: await freePort() };
  const configPath = path.join(dir, 'jaeger.yaml');
  fs.writeFileSync(configPath, jaegerConfig(ports, opts));
  const proc = spawn(bin, ['--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const onData = (b: Buffer) => { for (const l of b.toString().split('\n')) if (l) lines.push(l); };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  const queryUrl = `http://127.0.0.1:${ports.query}`;
  const timeoutMs = opts.readyTimeoutMs ?? 120_000; // a busy TCG guest took 75 s to start it beside vipguard (5.10)
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`Jaeger exited ${proc.exitCode} before it was ready:\n${lines.join('\n')}`);
    if (lines.some((l) => /Everything is ready/.test(l))) {
      const ok = await fetch(`${queryUrl}/api/services`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
      if (ok) break;
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`Jaeger was not ready within ${timeoutMs} ms:\n${lines.join('\n')}`);
    }
    await sleep(100);
  }
  return { proc, lines, ports, dir, queryUrl, exited };
}

export async function stopJaeger(j: JaegerProcess | undefined): Promise<void> {
  if (!j || j.proc.exitCode !== null || j.proc.signalCode !== null) return;
  j.proc.kill('SIGTERM');
  const t = setTimeout(() => j.proc.kill('SIGKILL'), 15_000);
  await j.exited;
  clearTimeout(t);
}

/** A span as Jaeger's query API (/api/traces, the "classic" JSON model) returns it, with its tags as a map. */
export interface JaegerSpan {
  traceId: string;
  spanId: string;
  name: string;
  startUs: number;
  durationUs: number;
  /** CHILD_OF (the parent) and FOLLOWS_FROM (links) references: the span ids they point to */
  refs: { type: string; spanId: string }[];
  tags: Record<string, string | number | boolean>;
  service: string;
}

interface RawSpan {
  traceID: string; spanID: string; operationName: string; startTime: number; duration: number; processID: string;
  references?: { refType: string; spanID: string }[];
  tags?: { key: string; value: string | number | boolean }[];
}
interface RawTrace { traceID: string; spans: RawSpan[]; processes: Record<string, { serviceName: string }> }

/**
 * Traces of `service` started in the last `lookbackMs` whose spans match every tag in `tags` (Jaeger's own search),
 * each as the list of all its spans. Spans of the classic model: OTLP links arrive as FOLLOWS_FROM references.
 */
export async function findTraces(queryUrl: string, q: { service: string; tags?: Record<string, string>; lookbackMs?: number; limit?: number; operation?: string }): Promise<JaegerSpan[][]> {
  const end = Date.now() * 1000;
  const params = new URLSearchParams({
    service: q.service,
    start: String(end - (q.lookbackMs ?? 3_600_000) * 1000),
    end: String(end),
    limit: String(q.limit ?? 1000),
  });
  if (q.tags) params.set('tags', JSON.stringify(q.tags));
  if (q.operation) params.set('operation', q.operation);
  const r = await fetch(`${queryUrl}/api/traces?${params}`, { signal: AbortSignal.timeout(20_000) });
  const body = await r.json() as { data?: RawTrace[] | null; errors?: unknown };
  if (!r.ok) throw new Error(`Jaeger's /api/traces answered ${r.status}: ${JSON.stringify(body)}`);
  return (body.data ?? []).map((t) => t.spans.map((s) => ({
    traceId: s.traceID,
    spanId: s.spanID,
    name: s.operationName,
    startUs: s.startTime,
    durationUs: s.duration,
    refs: (s.references ?? []).map((x) => ({ type: x.refType, spanId: x.spanID })),
    tags: Object.fromEntries((s.tags ?? []).map((t) => [t.key, t.value])),
    service: t.processes[s.processID]?.serviceName ?? '',
  })).sort((a, b) => a.startUs - b.startUs));
}

/** The services Jaeger has spans of. */
export async function jaegerServices(queryUrl: string): Promise<string[]> {
  const r = await fetch(`${queryUrl}/api/services`, { signal: AbortSignal.timeout(10_000) });
  return ((await r.json()) as { data?: string[] | null }).data ?? [];
}

/** What one trace of the receiver tells about a backend that stopped answering: see rescueIn(). */
export interface Rescue {
  /** the vipguard.connect span on the dead backend, outcome unanswered (or another of `failed`) */
  unanswered: JaegerSpan;
  /** a later vipguard.connect span of the same socket (same trace), established on another backend */
  established: JaegerSpan;
  /** the spans from the unanswered attempt to the established one, following parent/link references */
  path: JaegerSpan[];
  /** the vipguard.connection span of the connection that handshake established, if it is in the trace */
  connection?: JaegerSpan;
}

/**
 * The rescue a trace holds for backend `deadIp`, if any: an established vipguard.connect span on another backend
 * that reaches, through its references (each attempt is the child of, and linked to, the previous one of its socket:
 * src/receiver/telemetry.ts), an attempt on `deadIp` that ended in one of `failed` (default: unanswered). Pure, so
 * the unit stage checks it on made-up traces.
 */
export function rescueIn(trace: JaegerSpan[], deadIp: string, failed: readonly string[] = ['unanswered']): Rescue | undefined {
  const byId = new Map(trace.map((s) => [s.spanId, s]));
  const isConnect = (s: JaegerSpan) => s.name === 'vipguard.connect';
  for (const established of trace.filter((s) => isConnect(s) && s.tags['vipguard.outcome'] === 'established' && s.tags['network.peer.address'] !== deadIp)) {
    const path = [established];
    const seen = new Set([established.spanId]);
    // Walk back through earlier attempts (a second unanswered SYN on the dead one may sit between) to a dead one.
    for (let cur: JaegerSpan | undefined = established; cur;) {
      const prev: JaegerSpan | undefined = cur.refs.map((r) => byId.get(r.spanId)).find((p) => p && isConnect(p) && !seen.has(p.spanId));
      if (!prev) break;
      path.unshift(prev);
      seen.add(prev.spanId);
      if (failed.includes(String(prev.tags['vipguard.outcome'])) && prev.tags['network.peer.address'] === deadIp) {
        const connection = trace.find((s) => s.name === 'vipguard.connection' && s.refs.some((r) => r.spanId === established.spanId));
        return { unanswered: prev, established, path, connection };
      }
      cur = prev;
    }
  }
  return undefined;
}

/** A span of one trace as the api_v3 gateway returns it (OTLP JSON): its parent and its links kept apart. */
export interface OtlpSpan { spanId: string; parentSpanId: string; name: string; links: string[] }

/** OTLP JSON writes ids in hex; protobuf's JSON mapping in base64: either way, lower-case hex. */
function hexId(id: string | undefined): string {
  if (!id) return '';
  return /^[0-9a-f]+$/i.test(id) ? id.toLowerCase() : Buffer.from(id, 'base64').toString('hex');
}

/**
 * One trace by id through the api_v3 HTTP gateway (`/api/v3/traces/{id}`), whose OTLP answer keeps a span's parent
 * apart from its links — the classic model folds a link to the parent into one FOLLOWS_FROM reference.
 */
export async function getTraceOtlp(queryUrl: string, traceId: string): Promise<OtlpSpan[]> {
  const r = await fetch(`${queryUrl}/api/v3/traces/${traceId}`, { signal: AbortSignal.timeout(20_000) });
  const body = await r.json() as { result?: { resourceSpans?: { scopeSpans?: { spans?: { spanId: string; parentSpanId?: string; name: string; links?: { spanId: string }[] }[] }[] }[] } };
  if (!r.ok) throw new Error(`Jaeger's /api/v3/traces/${traceId} answered ${r.status}: ${JSON.stringify(body)}`);
  return (body.result?.resourceSpans ?? []).flatMap((rs) => (rs.scopeSpans ?? []).flatMap((ss) => (ss.spans ?? []).map((s) => ({
    spanId: hexId(s.spanId), parentSpanId: hexId(s.parentSpanId), name: s.name, links: (s.links ?? []).map((l) => hexId(l.spanId)),
  }))));
}
