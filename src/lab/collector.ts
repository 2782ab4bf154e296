// The real OpenTelemetry Collector beside vipguard, for tests and benchmarks: where scripts/collector.sh caches the
// binary built from otel-config/otelcol/, its own `validate` and `components`, and the sidecar configuration
// (otel-config/collector.yaml) run as a child process on free loopback ports.
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse, stringify } from 'yaml';
import { REPO_ROOT } from '../common/paths';
import { cacheRoot } from './kernels';

export const DISTRIBUTION_DIR = path.join(REPO_ROOT, 'otel-config', 'otelcol');
export const SIDECAR_CONFIG = path.join(REPO_ROOT, 'otel-config', 'collector.yaml');

/**
 * The cache key of the distribution's manifest: sha256 over `sha256sum`'s lines for go.mod, go.sum and *.go in
 * byte order — exactly what scripts/collector.sh computes, so a changed manifest never runs a stale binary.
 */
export function collectorKey(dir = DISTRIBUTION_DIR): string {
  const files = fs.readdirSync(dir).filter((f) => f === 'go.mod' || f === 'go.sum' || f.endsWith('.go')).sort();
  const lines = files.map((f) => `${createHash('sha256').update(fs.readFileSync(path.join(dir, f))).digest('hex')}  ${f}\n`).join('');
  return createHash('sha256').update(lines).digest('hex').slice(0, 16);
}

export function collectorBinaryPath(): string {
  return path.join(cacheRoot(), 'otelcol', collectorKey(), 'otelcol-vipguard');
}

/** The binary for the manifest as it is now; throws, naming the build script, when it has not been built. */
export function collectorBinary(): string {
  const bin = collectorBinaryPath();
  try {
    fs.accessSync(bin, fs.constants.X_OK);
  } catch {
    throw new Error(`the OpenTelemetry Collector for otel-config/otelcol/ is not built (no ${bin}): run scripts/collector.sh ` +
      '(npm run provision runs it; it needs Go and the Go module proxy)');
  }
  return bin;
}

function run(args: string[], timeoutMs = 60_000): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(collectorBinary(), args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

/** The collector's own verdict on a configuration file (several: merged in order, as `--config` repeated does): ok, or its error text. */
export async function validateConfig(file: string | string[]): Promise<{ ok: boolean; output: string }> {
  const r = await run(['validate', ...[file].flat().flatMap((f) => ['--config', f])]);
  return { ok: r.code === 0, output: r.output.trim() };
}

export type ComponentKind = 'receivers' | 'processors' | 'exporters' | 'connectors' | 'extensions';

/** The component types the binary holds, by kind, as `otelcol components` lists them. */
export async function builtComponents(): Promise<Record<ComponentKind, string[]>> {
  const r = await run(['components']);
  if (r.code !== 0) throw new Error(`otelcol-vipguard components failed (${r.code}): ${r.output}`);
  const doc = parse(r.output) as Record<string, { name: string }[] | null>;
  const names = (k: ComponentKind) => (doc[k] ?? []).map((c) => c.name).sort();
  return { receivers: names('receivers'), processors: names('processors'), exporters: names('exporters'), connectors: names('connectors'), extensions: names('extensions') };
}

export interface SidecarPorts {
  /** where the collector's OTLP/gRPC receiver listens (vipguard's receiver.export.endpoint) */
  otlp: number;
  /** vipguard's actuator.otlpListen, where the actuator pipeline exports */
  actuator: number;
  /** the collector's own metrics */
  telemetry: number;
}

/**
 * otel-config/collector.yaml with only its loopback ports moved to the given ones, and the actuator's token read
 * from `tokenFile` (the lab actuator writes it beside its state) — every other setting (batching, queues,
 * retries, memory limits) is the one shipped.
 */
export function sidecarConfig(ports: SidecarPorts, tokenFile: string): string {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const cfg: any = parse(fs.readFileSync(SIDECAR_CONFIG, 'utf8'));
  const hostOf = (ep: string) => ep.slice(0, ep.lastIndexOf(':'));
  const grpc = cfg.receivers.otlp.protocols.grpc;
  // `${env:VIPGUARD_OTLP_LISTEN:-127.0.0.1:4317}`: the default's host, on the given port
  const listen = /^\$\{env:VIPGUARD_OTLP_LISTEN:-(\S+)\}$/.exec(grpc.endpoint)?.[1] ?? grpc.endpoint;
  grpc.endpoint = `${hostOf(listen)}:${ports.otlp}`;
  const act = cfg.exporters['otlp_grpc/actuator'];
  act.endpoint = `${hostOf(act.endpoint)}:${ports.actuator}`;
  cfg.service.telemetry.metrics.readers[0].pull.exporter.prometheus.port = ports.telemetry;
  const act2 = cfg.exporters['otlp_grpc/actuator'];
  act2.headers.authorization = act2.headers.authorization.replace(/\$\{file:[^}]*\}/, `\${file:${tokenFile}}`);
  return stringify(cfg);
}

export interface CollectorProcess {
  proc: ChildProcess;
  lines: string[];
  configPath: string;
  exited: Promise<number | null>;
}

/**
 * Starts the collector on a configuration and waits for "Everything is ready". `env` is added to this process's
 * environment (the sidecar config takes its backend endpoints from VIPGUARD_TRACES_ENDPOINT and
 * VIPGUARD_REMOTE_WRITE_URL). `overlays`: more YAML documents, each passed as a further `--config` and so merged
 * over the first in order, the way otel-config/actuator-tls.yaml is — the shipped file stays as it is.
 */
export async function startCollector(configYaml: string, opts: { env?: NodeJS.ProcessEnv; dir?: string; readyTimeoutMs?: number; overlays?: string[] } = {}): Promise<CollectorProcess> {
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'otelcol-'));
  const configPath = path.join(dir, 'collector.yaml');
  fs.writeFileSync(configPath, configYaml);
  const args = ['--config', configPath];
  (opts.overlays ?? []).forEach((yaml, i) => {
    const file = path.join(dir, `overlay-${i + 1}.yaml`);
    fs.writeFileSync(file, yaml);
    args.push('--config', file);
  });
  const proc = spawn(collectorBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  const lines: string[] = [];
  const onData = (b: Buffer) => { for (const l of b.toString().split('\n')) if (l) lines.push(l); };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  while (!lines.some((l) => /Everything is ready/.test(l))) {
    if (proc.exitCode !== null) throw new Error(`the collector exited ${proc.exitCode} before it was ready:\n${lines.join('\n')}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`the collector was not ready within ${opts.readyTimeoutMs ?? 60_000} ms:\n${lines.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { proc, lines, configPath, exited };
}

export async function stopCollector(c: CollectorProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!c || c.proc.exitCode !== null || c.proc.signalCode !== null) return;
  c.proc.kill(signal);
  const t = setTimeout(() => c.proc.kill('SIGKILL'), 15_000);
  await c.exited;
  clearTimeout(t);
}
