// The actuator's HTTP API on node:http: the Alertmanager v2 alerts endpoint (so Prometheus, vmalert or a Mimir
// ruler can list the actuator as an alertmanager), an Alertmanager webhook receiver (so a central Alertmanager can
// route fleet-wide alerts to every client), vipguard's status, and Alertmanager-style health checks.
//
// Each request passes, in order: route (404) > method (405) > Host on an unauthenticated loopback bind (403) >
// bearer token (401) > Content-Type (415) > size, declared then streamed (413) > UTF-8, nesting, JSON (400) >
// the envelope's schema (400: an array; the webhook's message fields) > each alert's schema, target labels
// (../labels.ts), target resolution and policy, one alert at a time: a malformed alert is refused on its own and
// the others apply. Nothing of an alert reaches the AlertTarget unless it passed its schema, and no input can
// produce a 5xx: those are kept for the actuator's own failures.
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { AlertTarget } from '../alerts';
import { AlertLabelConfig, AlertLabels } from '../labels';
import { MIN_TOKEN_LENGTH, bearer, isLoopback, tokenMatches } from '../../common/token';
import { TlsMaterial, closeServer, httpServer, renewTls } from '../../common/tls';
import { HttpError, checkContentType, parseJson, readBody } from './body';
import { AlertOutcome, batchStatus, deliver, fromPostable, fromWebhook, Inbound } from './ingest';
import { MAX_JSON_DEPTH } from './schemas';
import { Checked, MAX_REPORTED_ERRORS, checkEachAlert, checkPostableAlerts, checkWebhookMessage, compileValidators, summarizeErrors } from './validate';

export const DEFAULT_LISTEN = '127.0.0.1:9095';
export const DEFAULT_MAX_BODY_BYTES = 1 << 20;
export const DEFAULT_WEBHOOK_PATH = '/webhook';

export interface ActuatorHttpOptions {
  /** HOST:PORT ([::1]:9095 for IPv6); port 0 picks a free one. Anything but loopback requires `token`. */
  listen?: string;
  /** required as `Authorization: Bearer <token>` on the alert and status endpoints when set */
  token?: string;
  /** serve HTTPS with these (src/common/tls.ts); with a client CA, only clients with a certificate it signed */
  tls?: TlsMaterial;
  /** request bodies beyond this are refused with 413 (default 1 MiB) */
  maxBodyBytes?: number;
  /** where the Alertmanager webhook receiver listens (default /webhook) */
  webhookPath?: string;
  /** generic label keys that also name a target (actuator.alertLabels); vipguard's own keys always do */
  alertLabels?: AlertLabelConfig;
  target: AlertTarget;
  /** the content of GET /api/vipguard/status */
  status: () => object;
  /** serves GET /metrics (the actuator's own metrics in Prometheus' text format), behind the token like status */
  metrics?: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  /** GET /-/ready answers 503 with the returned reason until this returns true (default: ready once listening) */
  ready?: () => true | string;
  log: (line: string) => void;
  /** the clock deciding whether a v2 alert's endsAt has passed (tests) */
  now?: () => number;
  /** a request (headers and body) must arrive within this (default 10 s): slow senders cannot hold connections */
  requestTimeoutMs?: number;
  /** concurrent connections; each may hold up to maxBodyBytes while its body arrives (default 64) */
  maxConnections?: number;
}

export interface ActuatorHttpStats {
  requests: number;
  /** responses by HTTP status */
  responses: Record<number, number>;
  /** per alert; `unknownService` and `invalid` are also counted in `ignored` and `refused` */
  alerts: { applied: number; ignored: number; refused: number; unknownService: number; invalid: number };
  /** log lines dropped by the log rate limit */
  logSuppressed: number;
  /** TLS handshakes refused (plain HTTP to the TLS port, a missing or foreign client certificate, …) */
  tlsRefused: number;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void> | void;
interface Route { methods: readonly string[]; auth: boolean; handler: Handler }

function splitListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(listen);
  if (!m || Number(m[3]) > 65535) {
    throw new Error(`invalid actuator listen address '${listen}': expected HOST:PORT, e.g. ${DEFAULT_LISTEN} or [::1]:9095`);
  }
  return { host: m[1] ?? m[2], port: Number(m[3]) };
}

/** The host part of a Host header: `127.0.0.1:9095` -> 127.0.0.1, `[::1]:9095` -> ::1. */
function hostOf(header: string): string {
  if (header.startsWith('[')) return header.slice(1, Math.max(1, header.indexOf(']')));
  return header.split(':')[0];
}

function sendJson(res: http.ServerResponse, status: number, body: object | undefined, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const text = body === undefined ? '' : `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    ...(body === undefined ? {} : { 'Content-Type': 'application/json; charset=utf-8' }),
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    ...headers,
  });
  res.end(text);
}

function sendText(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}

/** At most `burst` lines at once and `perSecond` after, so a flood of bad requests cannot flood the journal too. */
class LogLimiter {
  private tokens: number;
  private last = Date.now();
  private dropped = 0;

  constructor(private readonly sink: (line: string) => void, private readonly stats: ActuatorHttpStats,
    private readonly perSecond = 10, private readonly burst = 100) {
    this.tokens = burst;
  }

  line(text: string): void {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) {
      this.dropped++;
      this.stats.logSuppressed++;
      return;
    }
    this.tokens--;
    if (this.dropped > 0) {
      this.sink(`actuator http: ${this.dropped} log lines suppressed (rate limit)`);
      this.dropped = 0;
    }
    this.sink(`actuator http: ${text}`);
  }
}

export class ActuatorHttpServer {
  readonly stats: ActuatorHttpStats = {
    requests: 0, responses: {}, alerts: { applied: 0, ignored: 0, refused: 0, unknownService: 0, invalid: 0 }, logSuppressed: 0, tlsRefused: 0,
  };
  private readonly host: string;
  private readonly port: number;
  private readonly maxBodyBytes: number;
  private readonly webhookPath: string;
  private readonly routes = new Map<string, Route>();
  private readonly logger: LogLimiter;
  private labels: AlertLabels;
  private server?: http.Server | https.Server;

  constructor(private readonly opts: ActuatorHttpOptions) {
    ({ host: this.host, port: this.port } = splitListen(opts.listen ?? DEFAULT_LISTEN));
    if (opts.token !== undefined && opts.token.length < MIN_TOKEN_LENGTH) {
      throw new Error(`actuator HTTP token is ${opts.token.length} characters: use at least ${MIN_TOKEN_LENGTH} (e.g. openssl rand -hex 32)`);
    }
    if (!isLoopback(this.host) && !opts.token) {
      throw new Error(`refusing to serve the actuator's HTTP API on ${opts.listen} without a token: set a token, or listen on loopback (${DEFAULT_LISTEN})`);
    }
    this.maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    if (!Number.isInteger(this.maxBodyBytes) || this.maxBodyBytes < 1024) {
      throw new Error(`invalid maxBodyBytes ${opts.maxBodyBytes}: expected an integer of at least 1024`);
    }
    this.webhookPath = opts.webhookPath ?? DEFAULT_WEBHOOK_PATH;
    this.logger = new LogLimiter(opts.log, this.stats);
    this.labels = new AlertLabels(opts.alertLabels);
    compileValidators(); // now rather than on the first alert, whose latency counts

    const get = ['GET', 'HEAD'];
    this.routes.set('/api/v2/alerts', { methods: ['POST'], auth: true, handler: (q, s) => this.postAlerts(q, s) });
    this.routes.set('/api/vipguard/status', { methods: get, auth: true, handler: (_q, s) => this.getStatus(s) });
    const metrics = opts.metrics;
    if (metrics) this.routes.set('/metrics', { methods: get, auth: true, handler: (q, s) => metrics(q, s) });
    // Unauthenticated like Alertmanager's, so probes need no token; they say nothing beyond up/ready.
    this.routes.set('/-/healthy', { methods: get, auth: false, handler: (_q, s) => sendText(s, 200, 'OK') });
    this.routes.set('/-/ready', { methods: get, auth: false, handler: (_q, s) => this.getReady(s) });
    if (!/^\/[A-Za-z0-9._~\-/]*$/.test(this.webhookPath) || this.routes.has(this.webhookPath)) {
      throw new Error(`invalid webhookPath '${this.webhookPath}': expected a path like ${DEFAULT_WEBHOOK_PATH} that no other endpoint uses`);
    }
    this.routes.set(this.webhookPath, { methods: ['POST'], auth: true, handler: (q, s) => this.postWebhook(q, s) });
  }

  /** On reload: which generic label keys name a target from now on. */
  setAlertLabels(config: AlertLabelConfig): void {
    this.labels = new AlertLabels(config);
  }

  /**
   * On reload: the certificate, key and client CA from now on (new connections; open ones keep theirs). TLS on or
   * off, and a client CA on or off, take a restart (reloadableTls).
   */
  setTls(tls: TlsMaterial): void {
    if (!this.opts.tls) throw new Error('the actuator HTTP API was started without TLS: turning it on takes a restart');
    renewTls(this.server, tls);
  }

  /** Listens; resolves to the bound port. */
  async start(): Promise<number> {
    if (this.server) throw new Error('actuator HTTP server already started');
    const requestTimeout = this.opts.requestTimeoutMs ?? 10_000;
    const options: http.ServerOptions = {
      requestTimeout,
      headersTimeout: Math.min(requestTimeout, 10_000),
      // Node checks those timeouts every 30 s by default, which would let a stalled sender sit that much longer.
      connectionsCheckingInterval: Math.min(1000, requestTimeout),
    };
    // A refused handshake never becomes a request: count and log it like a refused one, rate-limited, so a
    // scanner cannot flood the journal.
    const server = httpServer(this.opts.tls, options, (req, res) => void this.dispatch(req, res), (peer, e) => {
      this.stats.tlsRefused++;
      this.logger.line(`TLS handshake from ${peer} refused: ${e.message.slice(0, 200)}`);
    });
    server.maxConnections = this.opts.maxConnections ?? 64;
    server.maxHeadersCount = 100;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => {
        this.server = undefined;
        const hint = e.code === 'EADDRINUSE' ? ' — is another vipguard (or an Alertmanager) listening there?' : '';
        reject(new Error(`binding the actuator HTTP API to ${this.opts.listen ?? DEFAULT_LISTEN}: ${e.message}${hint}`));
      });
      server.listen(this.port, this.host, () => resolve());
    });
    return (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    await closeServer(s);
  }

  private async dispatch(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.stats.requests++;
    res.once('finish', () => { this.stats.responses[res.statusCode] = (this.stats.responses[res.statusCode] ?? 0) + 1; });
    const path = (req.url ?? '/').split('?')[0];
    const from = req.socket.remoteAddress ?? '(unknown peer)'; // gone once the socket is, as with a timed-out sender
    try {
      const route = this.routes.get(path);
      if (!route) {
        throw new HttpError(404, `no endpoint ${JSON.stringify(path.slice(0, 100))}: the actuator serves POST /api/v2/alerts, `
          + `POST ${this.webhookPath}, GET /api/vipguard/status, ${this.routes.has('/metrics') ? 'GET /metrics, ' : ''}GET /-/healthy and GET /-/ready`);
      }
      const method = req.method ?? '';
      if (!route.methods.includes(method)) {
        throw new HttpError(405, `${method.slice(0, 20)} is not allowed on ${path}: use ${route.methods.join(' or ')}`, { Allow: route.methods.join(', ') });
      }
      this.checkHost(req);
      if (route.auth && this.opts.token !== undefined) this.checkToken(req);
      await route.handler(req, res);
    } catch (e) {
      if (e instanceof HttpError) {
        this.logger.line(`${req.method} ${path.slice(0, 100)} from ${from}: ${e.status} ${e.message.slice(0, 300)}`);
        sendJson(res, e.status, { error: e.message, ...e.details }, e.headers);
      } else {
        this.logger.line(`${req.method} ${path.slice(0, 100)} from ${from}: internal error: ${String((e as Error).stack ?? e).replace(/\n\s*/g, ' | ')}`);
        sendJson(res, 500, { error: `internal error in the actuator: ${(e as Error).message}` });
      }
    }
  }

  /**
   * Without a token, loopback is the only protection, and DNS rebinding gets around it: a web page whose name
   * re-resolves to 127.0.0.1 can POST to this port as its own origin. Such requests carry the page's name in Host,
   * so an unauthenticated server answers only requests addressed to a loopback name.
   */
  private checkHost(req: http.IncomingMessage): void {
    if (this.opts.token !== undefined || req.headers.host === undefined) return;
    const host = hostOf(req.headers.host);
    if (!isLoopback(host)) {
      throw new HttpError(403, `Host ${JSON.stringify(req.headers.host.slice(0, 100))} is not a loopback address: without a token `
        + 'the actuator answers only requests addressed to 127.0.0.1, [::1] or localhost');
    }
  }

  private checkToken(req: http.IncomingMessage): void {
    const presented = bearer(req.headers.authorization);
    if (!tokenMatches(presented, this.opts.token as string)) {
      throw new HttpError(401, presented === undefined
        ? 'missing bearer token: send Authorization: Bearer <token> (the actuator token from the configuration)'
        : 'wrong bearer token', { 'WWW-Authenticate': 'Bearer realm="vipguard"' });
    }
  }

  /** Content-Type, size, UTF-8, depth, JSON, then the envelope's schema: a 400 here means nothing was applied. */
  private async readChecked<T>(req: http.IncomingMessage, expected: string, check: (d: unknown) => Checked<T>): Promise<T> {
    checkContentType(req);
    const data = parseJson(await readBody(req, this.maxBodyBytes), MAX_JSON_DEPTH, expected);
    const c = check(data);
    if (!c.ok) throw new HttpError(400, summarizeErrors(c), {}, { errors: c.errors, errorCount: c.total });
    return c.value;
  }

  private async postAlerts(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const alerts = await this.readChecked(req, 'a JSON array of Alertmanager v2 alerts', checkPostableAlerts);
    const inbound = fromPostable(alerts, checkEachAlert('v2', alerts), (this.opts.now ?? Date.now)(), this.labels);
    this.answer(req, res, inbound, 'alertmanager', 'ignore', {});
  }

  private async postWebhook(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const msg = await this.readChecked(req, 'an Alertmanager webhook message (version "4")', checkWebhookMessage);
    const truncated = msg.truncatedAlerts ?? 0;
    if (truncated > 0) {
      this.logger.line(`webhook from receiver ${JSON.stringify((msg.receiver ?? '').slice(0, 100))}: Alertmanager left out `
        + `${truncated} alerts (max_alerts); they reach the actuator only once the group shrinks — raise max_alerts or group by backend`);
    }
    const inbound = fromWebhook(msg.alerts, checkEachAlert('webhook', msg.alerts), this.labels);
    this.answer(req, res, inbound, 'webhook', 'refuse', truncated > 0 ? { truncatedAlerts: truncated } : {});
  }

  /**
   * 200 with an empty body when no alert was refused or malformed on the v2 API (as Alertmanager answers, which is
   * all Prometheus reads); otherwise, and always on the webhook, a JSON body with one result per alert, and every schema error of
   * the invalid ones under `errors`. See batchStatus for the status when alerts were refused.
   */
  private answer(req: http.IncomingMessage, res: http.ServerResponse, inbound: Inbound[],
    source: 'alertmanager' | 'webhook', unaddressed: 'ignore' | 'refuse', extra: Record<string, unknown>): void {
    const outcomes: AlertOutcome[] = deliver(this.opts.target, inbound, { source, unaddressed, keys: this.labels, log: (l) => this.logger.line(l) });
    const r = batchStatus(outcomes);
    for (const k of ['applied', 'ignored', 'refused', 'unknownService', 'invalid'] as const) this.stats.alerts[k] += r[k];
    if (r.applied > 0 || r.refused > 0 || r.unknownService > 0) {
      this.logger.line(`${req.method} ${req.url?.slice(0, 100)} from ${req.socket.remoteAddress}: ${r.status}, `
        + `${inbound.length} alerts: ${r.applied} applied, ${r.ignored} ignored (${r.unknownService} for unknown services), ${r.refused} refused`);
    }
    if (source === 'alertmanager' && r.refused === 0 && !inbound.some((a) => 'invalid' in a)) {
      sendJson(res, 200, undefined);
      return;
    }
    const errors = inbound.flatMap((a) => ('invalid' in a && outcomes[a.index].outcome === 'refused' ? a.invalid.errors : []));
    const errorCount = inbound.reduce((n, a) => n + ('invalid' in a && outcomes[a.index].outcome === 'refused' ? a.invalid.total : 0), 0);
    const counts = {
      applied: r.applied, ignored: r.ignored, unknownService: r.unknownService, refused: r.refused, ...extra,
      ...(errors.length ? { errors: errors.slice(0, MAX_REPORTED_ERRORS), errorCount } : {}), results: outcomes,
    };
    if (r.status === 200) {
      sendJson(res, 200, counts);
      return;
    }
    const first = outcomes.find((o) => o.outcome === 'refused') as Extract<AlertOutcome, { outcome: 'refused' }>;
    const more = r.refused > 1 ? ` (and ${r.refused - 1} more refused)` : '';
    const where = first.reason === 'invalid' ? '' : `alerts[${first.index}]: `; // schema errors name their path already
    sendJson(res, r.status, { error: `no alert was applied: ${where}${first.error}${more}`, ...counts });
  }

  private getStatus(res: http.ServerResponse): void {
    let body: object;
    try {
      body = this.opts.status();
    } catch (e) {
      throw new Error(`status unavailable: ${(e as Error).message}`);
    }
    sendJson(res, 200, body);
  }

  private getReady(res: http.ServerResponse): void {
    const ready = this.opts.ready?.() ?? true;
    sendText(res, ready === true ? 200 : 503, ready === true ? 'OK' : `not ready: ${ready}`);
  }
}
