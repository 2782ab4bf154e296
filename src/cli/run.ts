// `vipguard run`: the receiver and the actuator, in one process or (--only) in two, wired only through the
// OpenTelemetry pipeline: the receiver's spans reach the actuator's rules as OTLP — over gRPC from the collector,
// or serialized in-process when both run here. Reloads on SIGHUP or file change (a bad file is refused and the
// running configuration stays); stops gracefully on SIGINT/SIGTERM (BPF detached, telemetry flushed, quarantined
// destinations given back their weight, sysctl restored). SIGUSR2 is the same stop for a restart (an upgrade):
// quarantined destinations stay at weight 0 in the kernel and in the state file, so the next start takes them over
// and no connection reaches a quarantined backend in between.
//
// Start-up order matters after a crash: the actuator's first reconcile (which re-applies quarantines from the
// state file) needs only the config, the netlink client and the policy, so the OpenTelemetry and gRPC stacks —
// most of the start-up time — are loaded after it (`await import`).
import * as fs from 'node:fs';
import { Config, ConfigError, loadConfig } from '../config/config';
import { Actuator } from '../actuator/actuator';
import { probeDestination } from '../actuator/probes';
import { IpvsClient } from '../actuator/ipvs';
import { flattenSpans } from '../otlp/model';
import { loadState, saveState } from '../actuator/state';
import { systemClock } from '../common/clock';
import { EXPIRE_NODEST_CONN, Sysctl } from '../actuator/sysctl';
import { DEFAULT_DEADLINE } from '../common/rtt';
import { checkPrivileges, needsOf } from '../common/privileges';
import { resolveToken } from '../common/token-file';
import { TlsFileError, TlsFiles, TlsMaterial, describeTls, loadTls, reloadableTls } from '../common/tls';
import type { Receiver } from '../receiver/receiver';
import type { ReceiverTelemetry } from '../receiver/telemetry';
import type { ActuatorTelemetry } from '../actuator/telemetry';
import type { ActuatorHttpServer } from '../actuator/http';
import type { OtlpServer } from '../otlp/server';
import type { SynTimeoutController } from '../actuator/synrto';
import { RefusalHold, afterActuatorEvents, inServiceOf } from '../actuator/rsthold';
import { serviceIdOf } from '../actuator/kernel';
import type { EncodedSpanExporter } from '../telemetry/export';
import { Logger, createLogger } from '../common/log';
import { NotifyState, monotonicUsec, sdNotify } from '../native/notify';

export type Part = 'receiver' | 'actuator';

export interface RunOptions {
  configPath: string;
  only?: Part;
  /** where the log goes (default: stderr, plain or journal as createLogger decides) */
  log?: Logger;
  /** file-change polling interval for reloads (ms); 0 disables watching */
  watchMs?: number;
}

const exportCfg = (c: Config) => c.receiver.export;

export class Vipguard {
  private config: Config;
  readonly log: Logger;
  private receiver?: Receiver;
  private receiverTelemetry?: ReceiverTelemetry;
  private actuator?: Actuator;
  private actuatorTelemetry?: ActuatorTelemetry;
  private ipvs?: IpvsClient;
  private otlp?: OtlpServer;
  private http?: ActuatorHttpServer;
  private sysctl?: Sysctl;
  private synTimeout?: SynTimeoutController;
  private holdRefusals?: RefusalHold;
  private httpPort?: number;
  private scrapePort?: number;
  /** the bearer token the actuator's endpoints require (undefined only with allowLoopbackWithoutToken) */
  private token?: string;
  private stopping = false;

  constructor(private readonly opts: RunOptions) {
    this.log = opts.log ?? createLogger();
    this.config = loadConfig(opts.configPath);
  }

  private runs(part: Part): boolean {
    return (!this.opts.only || this.opts.only === part) && this.config[part].enabled;
  }

  get ports(): { http?: number; otlp?: number; prometheus?: number } {
    return { http: this.httpPort, otlp: this.otlp?.port, prometheus: this.scrapePort };
  }

  /**
   * The listeners that serve TLS, each with the setting naming its files: where a reload finds what to re-read.
   * A listener is here only while it runs.
   */
  private tlsListeners(): { at: string; files: (c: Config) => TlsFiles | undefined; renew: (m: TlsMaterial) => void }[] {
    const out = [];
    const http = this.http, otlp = this.otlp, scrape = this.receiverTelemetry?.scrape;
    if (http) out.push({ at: 'actuator.tls', files: (c: Config) => c.actuator.tls, renew: (m: TlsMaterial) => http.setTls(m) });
    if (otlp) out.push({ at: 'actuator.otlpTls', files: (c: Config) => c.actuator.otlpTls, renew: (m: TlsMaterial) => otlp.setTls(m) });
    if (scrape) out.push({ at: 'receiver.prometheus.tls', files: (c: Config) => c.receiver.prometheus.tls, renew: (m: TlsMaterial) => scrape.setTls(m) });
    return out;
  }

  async start(): Promise<void> {
    // Refuse up front, naming every missing capability, rather than half-start (src/common/privileges.ts).
    checkPrivileges(needsOf(this.config, { receiver: this.runs('receiver'), actuator: this.runs('actuator') }));
    try {
      if (this.runs('actuator')) await this.startActuator();
      if (this.runs('receiver')) await this.startReceiver();
      if (!this.receiver && !this.actuator) throw new Error('nothing to run: receiver and actuator are both disabled (or excluded by --only)');
    } catch (e) {
      // Past the first reconcile the kernel holds quarantines and the sysctl: a start that fails after it (a port
      // in use, a BPF load error) must leave the kernel as it found it, like a graceful stop (invariant I3).
      this.log.error(`start failed: ${(e as Error).message} — undoing what was applied`);
      await this.stop().catch((err: Error) => this.log.error(`undoing a failed start: ${err.message}`));
      throw e;
    }
  }

  private async startActuator(): Promise<void> {
    const a = this.config.actuator;
    const e = exportCfg(this.config);
    // Before anything touches the kernel: a token file that cannot be read or written stops the start cleanly.
    const auth = resolveToken(a, this.log);
    this.token = auth.token;
    if (auth.source === 'none') {
      this.log.warn('actuator: no token (allowLoopbackWithoutToken): any local user can post alerts and OTLP spans that quarantine or release destinations');
    }
    const httpTls = loadListenerTls('actuator.tls', a.tls);
    const otlpTls = loadListenerTls('actuator.otlpTls', a.otlpTls);
    this.ipvs = await IpvsClient.open();
    if (a.expireNodestConn) {
      this.sysctl = new Sysctl(EXPIRE_NODEST_CONN);
      const r = this.sysctl.set('1');
      if (r.changed) this.log.info(`set net.ipv4.vs.expire_nodest_conn=1 (was ${r.previous}): pending connects to quarantined destinations are rescheduled`);
    }
    const actuatorStart = performance.now();
    const maxHold = Math.max(a.quarantine.maxMs, ...this.config.services.map((s) => s.quarantine.maxMs));
    const state = loadState(a.stateFile, systemClock, maxHold);
    if (state.problem) this.log.warn(state.problem);
    this.actuator = new Actuator(this.config, {
      ipvs: this.ipvs, probe: probeDestination, initialRecords: state.records, log: this.log,
      saveState: (records) => saveState(a.stateFile, records, systemClock),
    });
    await this.actuator.start();
    const resumed = state.records.filter((r) => r.active).length;
    this.log.info(`actuator: kernel reconciled ${Math.round(performance.now() - actuatorStart)} ms after the actuator started ` +
      `(${Math.round(process.uptime() * 1000)} ms after process start)` +
      `${resumed ? ` (${resumed} quarantine(s) resumed from ${a.stateFile})` : ''}`);
    const actuator = this.actuator;
    const { ActuatorTelemetry } = await import('../actuator/telemetry');
    const { traceExporter, metricExporter } = await import('../telemetry/export');
    const telemetry = this.actuatorTelemetry = new ActuatorTelemetry({
      spanExporter: e.enabled ? traceExporter(e) : undefined,
      metricExporter: e.enabled ? metricExporter(e) : undefined,
      metricIntervalMs: e.metricIntervalMs, spanDelayMs: e.spanDelayMs,
      snapshot: () => this.snapshot(),
      refusals: () => this.holdRefusals?.counters(),
      prometheus: true,
    });
    if (a.holdRefusals.enabled) this.holdRefusals = new RefusalHold(a.holdRefusals, this.log);
    const hold = this.holdRefusals;
    hold?.start(this.config.services.map(serviceIdOf));
    hold?.setInService(inServiceOf(actuator.status()));
    actuator.setEvents(hold ? afterActuatorEvents(this.actuatorTelemetry, () => hold.setInService(inServiceOf(actuator.status()))) : this.actuatorTelemetry);
    if (a.synTimeout.enabled) {
      const { SynTimeoutController } = await import('../actuator/synrto');
      this.synTimeout = new SynTimeoutController(a.synTimeout, { ...DEFAULT_DEADLINE, ...this.config.receiver.deadline }, this.log);
      this.synTimeout.start(tcpOnly(this.config.services));
    }
    const synTimeout = this.synTimeout;
    const { OtlpServer } = await import('../otlp/server');
    const { ActuatorHttpServer } = await import('../actuator/http');
    this.otlp = new OtlpServer({
      listen: a.otlpListen, token: this.token, tls: otlpTls,
      onTraces: (req) => {
        const spans = flattenSpans(req as never);
        actuator.ingestSpans(spans);
        synTimeout?.observe(spans);
      },
    });
    await this.otlp.start();
    this.http = new ActuatorHttpServer({
      listen: a.listen, token: this.token, tls: httpTls, target: actuator, status: () => this.status(), ready: () => (this.receiver || !this.runs('receiver') ? true : 'the receiver is not attached yet'),
      metrics: (q, s) => telemetry.serveMetrics(q, s), log: (l) => this.log.warn(l), alertLabels: a.alertLabels,
    });
    this.httpPort = await this.http.start();
    this.log.info(`actuator: alerts on ${httpTls ? 'https' : 'http'}://${a.listen} (port ${this.httpPort}), OTLP rules on ${a.otlpListen} (port ${this.otlp.port}), ` +
      `${this.config.services.length} service(s), ${resumed} quarantine(s) resumed`);
    if (httpTls) this.log.info(`actuator: HTTP API: ${describeTls(httpTls)}`);
    if (otlpTls) this.log.info(`actuator: OTLP rules: ${describeTls(otlpTls)}`);
  }

  private async startReceiver(): Promise<void> {
    const { Receiver } = await import('../receiver/receiver');
    const { ReceiverTelemetry } = await import('../receiver/telemetry');
    const { encodedTraceExporter, metricExporter } = await import('../telemetry/export');
    const { InProcessTraceExporter } = await import('../telemetry/inprocess');
    const r = this.config.receiver;
    const e = r.export;
    const scrapeTls = r.prometheus.enabled ? loadListenerTls('receiver.prometheus.tls', r.prometheus.tls) : undefined;
    const exporters: EncodedSpanExporter[] = [];
    if (e.enabled) exporters.push(encodedTraceExporter(e));
    const otlp = this.otlp;
    if (otlp) exporters.push(new InProcessTraceExporter((bytes) => otlp.ingestTraces(bytes)));
    let receiver: Receiver | undefined;
    this.receiverTelemetry = new ReceiverTelemetry({
      spanExporters: exporters, spanSampling: e.spanSampling,
      metricExporter: e.enabled ? metricExporter(e) : undefined,
      prometheus: r.prometheus.enabled ? { ...hostPort(r.prometheus.listen), tls: scrapeTls, onRefused: refusedHandshakes(this.log, 'receiver: Prometheus endpoint') } : undefined,
      metricIntervalMs: e.metricIntervalMs, spanDelayMs: e.spanDelayMs, maxQueueSize: e.maxQueueSize, maxBatchSize: e.maxBatchSize,
      externalLosses: () => {
        const c = receiver?.counters();
        return c ? { ring_buffer_full: c.lost, handshake_map_full: c.handshakeMapFull, untracked: c.untracked } : {};
      },
    });
    const telemetry = this.receiverTelemetry;
    this.scrapePort = await telemetry.listen();
    if (scrapeTls) this.log.info(`receiver: Prometheus endpoint: ${describeTls(scrapeTls)}`);
    receiver = new Receiver({
      services: this.config.services, traceAll: r.traceAll, ringBufferBytes: r.ringBufferBytes,
      deadline: r.deadline.enabled ? { ...DEFAULT_DEADLINE, ...r.deadline } : false,
      sinks: [telemetry], onBatch: (n) => telemetry.countEvents(n),
    });
    this.receiver = receiver;
    for (const h of receiver.describeHooks()) this.log[h.ok ? 'info' : 'warn'](`receiver: ${h.line}`);
    if (this.config.services.some((s) => s.protocol === 'udp') && !receiver.tracesUdp) {
      this.log.warn('receiver: UDP services are not traced on this kernel (see the inactive hooks above): only alerts quarantine their destinations');
    }
    const traced = this.config.services.filter((s) => s.protocol === 'tcp' || receiver!.tracesUdp);
    this.log.info(`receiver: tracing ${r.traceAll ? 'every TCP connection' : traced.map((s) => `${s.name}=${s.protocol}/${s.address}:${s.port}`).join(', ') || 'no service'}; ` +
      `OTLP to ${e.enabled ? e.endpoint : '(export disabled)'}${otlp ? ' and to the actuator in-process' : ''}` +
      `${r.prometheus.enabled ? `; Prometheus ${scrapeTls ? 'https' : 'http'}://${r.prometheus.listen}/metrics (port ${this.scrapePort})` : ''}`);
  }

  private snapshot() {
    const st = this.actuator?.status() as { services?: { name: string; quarantined: number; panic: boolean }[] } | undefined;
    return (st?.services ?? []).map((s) => ({ service: s.name, quarantined: s.quarantined, panic: s.panic }));
  }

  status(): object {
    const r = this.receiver;
    return {
      ...(this.actuator?.status() ?? {}),
      receiver: r ? {
        hooks: r.hooks,
        counters: Object.fromEntries(Object.entries(r.counters()).map(([k, v]) => [k, Number(v)])),
        spansExported: this.receiverTelemetry?.spansExported,
      } : undefined,
      reactionMs: this.actuatorTelemetry ? summarize(this.actuatorTelemetry.reactionsMs) : undefined,
      synTimeout: this.synTimeout?.status,
      // per alert since start: unknownService counts alerts for services this host does not have (answered 2xx)
      alerts: this.http ? { ...this.http.stats.alerts } : undefined,
      holdRefusals: this.holdRefusals?.status(),
    };
  }

  /** One line for the service manager's status: what is guarded. */
  summary(): string {
    const parts = [this.runs('receiver') && 'receiver', this.runs('actuator') && 'actuator'].filter(Boolean).join(' and ');
    return `${parts || 'nothing'} running; ${this.config.services.length} service(s): ${this.config.services.map((s) => s.name).join(', ')}`;
  }

  /** Re-reads the configuration; a file with problems is refused and the running configuration stays. */
  reload(): boolean {
    let next: Config;
    try {
      next = loadConfig(this.opts.configPath);
    } catch (e) {
      this.log.error(`reload refused, keeping the running configuration: ${e instanceof ConfigError ? e.message : (e as Error).message}`);
      return false;
    }
    // Certificates are re-read on every reload (rotation), before anything of the new configuration is applied:
    // files that cannot be served refuse the whole reload, and the listeners keep the certificates they have.
    const renewals: (() => string)[] = [];
    let tlsRestart = false;
    for (const l of this.tlsListeners()) {
      const before = l.files(this.config);
      const after = l.files(next);
      if (!reloadableTls(before, after)) {
        tlsRestart = true;
        continue;
      }
      if (!after) continue;
      let material: TlsMaterial;
      try {
        material = loadListenerTls(l.at, after)!;
      } catch (e) {
        this.log.error(`reload refused, keeping the running configuration and certificates: ${(e as Error).message}`);
        return false;
      }
      renewals.push(() => {
        l.renew(material);
        return `${l.at}: ${describeTls(material)}`;
      });
    }
    // A listener's TLS files are applied above; turning TLS (or mutual TLS) on or off is a restart like its address.
    const withoutTls = (c: Config) => ({ ...c.receiver, prometheus: { ...c.receiver.prometheus, tls: undefined } });
    const restartKeys = (c: Config) => JSON.stringify([withoutTls(c), c.actuator.listen, c.actuator.otlpListen, c.actuator.token,
      c.actuator.tokenFile, c.actuator.allowLoopbackWithoutToken]);
    const restartNeeded = tlsRestart || restartKeys(next) !== restartKeys(this.config);
    this.config = next;
    this.receiver?.setServices(next.services);
    this.actuator?.setConfig(next);
    this.synTimeout?.setServices(tcpOnly(next.services));
    this.http?.setAlertLabels(next.actuator.alertLabels);
    this.holdRefusals?.setServices(next.services.map(serviceIdOf));
    for (const renew of renewals) this.log.info(`reload: ${renew()}`);
    this.log.info(`reloaded ${this.opts.configPath}: ${next.services.length} service(s)${restartNeeded ? ' (receiver/listener/export settings change on restart)' : ''}`);
    return true;
  }

  /**
   * `handover`: the stop before a restart. Quarantined destinations keep weight 0 — the next start re-applies them
   * from the state file in its first reconcile — instead of taking traffic again until it does.
   */
  async stop(opts: { handover?: boolean } = {}): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.receiver?.drain();
    this.receiver?.close();
    await this.receiverTelemetry?.flush();
    await this.receiverTelemetry?.shutdown();
    await this.http?.stop();
    await this.otlp?.stop();
    this.synTimeout?.close();
    this.holdRefusals?.close();
    const held = await this.actuator?.stop({ restore: !opts.handover });
    this.sysctl?.restore();
    this.ipvs?.close();
    await this.actuatorTelemetry?.shutdown();
    this.log.info(opts.handover
      ? `stopped for a restart: ${held ?? 0} quarantined destination(s) left at weight 0 for the next start`
      : 'stopped');
  }
}

/** A listener's TLS files, loaded; a problem names the setting (the configuration check found none a moment ago). */
function loadListenerTls(at: string, files: TlsFiles | undefined): TlsMaterial | undefined {
  if (!files) return undefined;
  try {
    return loadTls(files);
  } catch (e) {
    if (e instanceof TlsFileError) throw new Error(`${at}.${e.key}: ${e.message}`);
    throw e;
  }
}

/** Refused TLS handshakes, logged at most once per 10 s with how many there were: a scanner cannot flood the log. */
function refusedHandshakes(log: Logger, what: string): (peer: string, e: Error) => void {
  let last = 0;
  let count = 0;
  return (peer, e) => {
    count++;
    const now = Date.now();
    if (now - last < 10_000) return;
    last = now;
    log.warn(`${what}: refused a TLS handshake from ${peer}: ${e.message.slice(0, 200)}${count > 1 ? ` (${count} refused since the last line)` : ''}`);
    count = 0;
  };
}

function hostPort(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(listen.slice(i + 1)) };
}

function summarize(ms: number[]): { n: number; p50?: number; p99?: number; max?: number } {
  if (!ms.length) return { n: 0 };
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, p50: q(0.5), p99: q(0.99), max: s[s.length - 1] };
}

/** The CLI entry: runs until a signal, reloading on SIGHUP and when the file changes. */
export async function run(opts: RunOptions): Promise<void> {
  const vg = new Vipguard(opts);
  // Listen for the stop signal before starting: a SIGTERM during start-up (systemd's stop timeout, an impatient
  // operator) must still end in a graceful stop once the start is through, not in a default exit that skips it.
  let stopAsked = false;
  let handover = false;
  const asked = new Promise<void>((resolve) => {
    const ask = (forRestart: boolean) => () => { stopAsked = true; handover = forRestart; resolve(); };
    process.once('SIGINT', ask(false));
    process.once('SIGTERM', ask(false));
    process.once('SIGUSR2', ask(true));
  });
  await vg.start();
  // Type=notify: ready now — the kernel reconciled, every listener up, the receiver attached.
  const log = vg.log;
  const notify = (state: NotifyState) => {
    try {
      sdNotify(state);
    } catch (e) {
      log.warn(`telling the service manager ${Object.keys(state).join(', ')}: ${(e as Error).message}`);
    }
  };
  notify({ READY: 1, STATUS: vg.summary() });
  const reload = () => {
    notify({ RELOADING: 1, MONOTONIC_USEC: monotonicUsec() });
    const ok = vg.reload();
    notify({ READY: 1, STATUS: ok ? vg.summary() : `${vg.summary()}; the last reload was refused (see the log)` });
  };
  const watchMs = opts.watchMs ?? 2000;
  let mtime = fs.statSync(opts.configPath).mtimeMs;
  const watcher = watchMs > 0 ? setInterval(() => {
    try {
      const m = fs.statSync(opts.configPath).mtimeMs;
      if (m !== mtime) { mtime = m; reload(); }
    } catch { /* the file is being replaced; next tick */ }
  }, watchMs) : undefined;
  process.on('SIGHUP', reload);
  if (!stopAsked) await asked;
  clearInterval(watcher);
  notify({ STOPPING: 1, STATUS: handover ? 'stopping for a restart: quarantines stay, detaching BPF' : 'stopping: giving back weights, detaching BPF' });
  await vg.stop({ handover });
}

/**
 * The services the receiver traces and whose SYN timeout is tuned: TCP ones. The receiver does not trace UDP yet
 * (issue 13): a UDP service's destinations are quarantined from alerts only, and its address and port must not
 * label TCP connections to the same port.
 */
function tcpOnly<S extends { protocol: string }>(services: readonly S[]): S[] {
  return services.filter((s) => s.protocol === 'tcp');
}
