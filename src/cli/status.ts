// `vipguard status`: what the running actuator sees — per service, each destination's weight and state
// (healthy / quarantined until T at backoff level L / restoring), panic, and recent reasons.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { Config, defaultTokenFile, loadConfig } from '../config/config';
import { CONFIG_SCHEMA } from '../config/schema';
import { readTokenFile, TOKEN_ENV } from '../common/token-file';
import { formatHook, HookStatus } from '../receiver/hooks';

interface DestStatus {
  destination: string; owned: boolean; weight: number; activeConns: number; inactiveConns: number;
  /** held out by removal (a UDP destination): absent from the kernel until it is added back */
  removed?: boolean;
  state: string; until?: string; level?: number; reasons?: string[];
  /** which input the quarantine came from (rule, alertmanager, webhook) */
  source?: string;
}
interface ServiceStatus { name: string; service: string; managed: boolean; present: boolean; panic: boolean; quarantined: number; destinations: DestStatus[] }
interface Status {
  time: string;
  services?: ServiceStatus[];
  lastReconcile?: { at: string; ms: number; changes: number; failures: string[] };
  receiver?: { hooks: Pick<HookStatus, 'hook' | 'active' | 'standby' | 'unused' | 'reason'>[]; counters: Record<string, number> };
  reactionMs?: { n: number; p50?: number; p99?: number };
  alerts?: { applied: number; ignored: number; unknownService: number; refused: number; invalid: number };
}

export interface StatusOptions {
  url?: string;
  configPath?: string;
  /** a file holding the token (never the token itself on a command line: every user can read a process command line in /proc) */
  tokenFile?: string;
  json: boolean;
  /** PEM CA certificate(s) the actuator's certificate must chain to (actuator.tls); default: the system's */
  caFile?: string;
  /** a client certificate and its key, for an actuator that requires one (actuator.tls.clientCAFile) */
  certFile?: string;
  keyFile?: string;
  /** the environment, for VIPGUARD_TOKEN (tests) */
  env?: NodeJS.ProcessEnv;
}

const DEFAULT_STATE_FILE = CONFIG_SCHEMA.properties.actuator.properties.stateFile.default;

/**
 * The token to present: --token-file, else $VIPGUARD_TOKEN, else the configuration's (inline or its token file),
 * else the default token file if this user can read it. None when nothing is found (a server without one answers).
 */
export function statusToken(opts: StatusOptions): string | undefined {
  if (opts.tokenFile) return readTokenFile(opts.tokenFile);
  const env = (opts.env ?? process.env)[TOKEN_ENV];
  if (env) return env.trim();
  if (opts.configPath) {
    const a = loadConfig(opts.configPath, { tlsFiles: false }).actuator;
    if (a.token) return a.token;
    return fs.existsSync(a.tokenFile) ? readTokenFile(a.tokenFile) : undefined;
  }
  const file = defaultTokenFile(DEFAULT_STATE_FILE);
  try {
    fs.accessSync(file, fs.constants.R_OK);
  } catch {
    return undefined;
  }
  return readTokenFile(file);
}

/** The actuator's base URL: --url, else the configuration's actuator.listen (https when it has actuator.tls). */
export function statusUrl(opts: StatusOptions, config?: Config): string {
  if (opts.url) return opts.url.replace(/\/$/, '');
  const a = config?.actuator;
  return `${a?.tls ? 'https' : 'http'}://${a?.listen ?? '127.0.0.1:9095'}`;
}

function readPem(file: string, flag: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new Error(`reading ${flag} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** What to do about a TLS failure, by OpenSSL's verdict (Node's error codes). */
function tlsHint(e: NodeJS.ErrnoException, secure: boolean): string | undefined {
  const code = e.code ?? '';
  if (!secure && (code === 'ECONNRESET' || /socket hang up/.test(e.message))) {
    return 'a TLS listener hangs up on plain HTTP: with actuator.tls, use https:// (--url, or --config to take it from there)';
  }
  if (/CERT|SIGNATURE|ISSUER|SELF_SIGNED/.test(code) && !/ALERT/.test(code)) {
    return code === 'ERR_TLS_CERT_ALTNAME_INVALID'
      ? 'the actuator\'s certificate does not name this host: use --url with a name or address its subjectAltName lists'
      : 'the actuator\'s certificate is not trusted: pass --ca-file with the CA that signed it';
  }
  if (/ALERT_CERTIFICATE_REQUIRED|ALERT_HANDSHAKE_FAILURE|ALERT_BAD_CERTIFICATE|ALERT_UNKNOWN_CA/.test(code) || /certificate required|unknown ca|bad certificate/i.test(e.message)) {
    return 'the actuator requires a client certificate its clientCAFile signed: pass --cert-file and --key-file';
  }
  if (code === 'EPROTO' || /wrong version number|packet length too long/i.test(e.message)) {
    return 'TLS and plain HTTP mixed up: https:// to a plain listener, or the other way round (actuator.tls)';
  }
  return undefined;
}

export async function fetchStatus(opts: StatusOptions): Promise<Status> {
  const token = statusToken(opts);
  const base = statusUrl(opts, opts.configPath && !opts.url ? loadConfig(opts.configPath, { tlsFiles: false }) : undefined);
  const url = new URL(`${base}/api/vipguard/status`);
  if ((opts.certFile === undefined) !== (opts.keyFile === undefined)) throw new Error('a client certificate needs both --cert-file and --key-file');
  const secure = url.protocol === 'https:';
  if (!secure && (opts.caFile || opts.certFile)) throw new Error(`--ca-file, --cert-file and --key-file are for https: ${url.origin} is plain HTTP`);
  const tls: https.RequestOptions = secure ? {
    ...(opts.caFile ? { ca: readPem(opts.caFile, '--ca-file') } : {}),
    ...(opts.certFile ? { cert: readPem(opts.certFile, '--cert-file'), key: readPem(opts.keyFile!, '--key-file') } : {}),
  } : {};
  const reply = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = (secure ? https : http).request(url, {
      headers: token ? { authorization: `Bearer ${token}` } : {}, agent: false, timeout: 5000, ...tls,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end();
  }).catch((e: NodeJS.ErrnoException) => {
    const hint = tlsHint(e, secure) ?? 'is `vipguard run` running (actuator.listen)?';
    throw new Error(`reading ${url}: ${e.code && !e.message.includes(e.code) ? `${e.code} ` : ''}${e.message} — ${hint}`);
  });
  if (reply.status === 401) {
    throw new Error(`reading ${url}: HTTP 401 ${reply.text} — pass --config, --token-file or ${TOKEN_ENV} (the token is in actuator.tokenFile, by default beside the state file)`);
  }
  if (reply.status < 200 || reply.status > 299) throw new Error(`reading ${url}: HTTP ${reply.status} ${reply.text}`);
  return JSON.parse(reply.text) as Status;
}

/**
 * A time as the operator's clock shows it (TZ), with its offset from UTC: `2026-12-06 05:31:07 +01:00`, or
 * `2026-12-06 04:31:07 UTC` (numeric, so no zone abbreviation is ambiguous or missing from ICU).
 */
export function localTime(iso: string, timeZone?: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-GB', {
    timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
    hourCycle: 'h23', timeZoneName: 'longOffset',
  }).formatToParts(d).map((p) => [p.type, p.value]));
  const offset = parts.timeZoneName.replace(/^GMT/, '') || '+00:00';
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${offset === '+00:00' ? 'UTC' : offset}`;
}

export function renderStatus(s: Status, timeZone?: string): string {
  const out: string[] = [];
  for (const svc of s.services ?? []) {
    out.push(`${svc.name}  ${svc.service}  ${svc.managed ? 'managed' : 'watched'}${svc.present ? '' : '  (not in the kernel)'}` +
      `${svc.panic ? '  PANIC: more failing destinations than the cap allows' : ''}`);
    for (const d of svc.destinations) {
      const until = d.until ? ` until ${localTime(d.until, timeZone)} (level ${d.level}${d.source ? `, from ${d.source}` : ''})` : '';
      const why = d.reasons?.length && d.state !== 'healthy' ? `  why: ${d.reasons[d.reasons.length - 1]}` : '';
      const weight = d.removed ? 'removed   ' : `weight ${String(d.weight).padStart(3)}`;
      out.push(`  ${d.destination.padEnd(24)} ${weight}  ${d.state}${until}` +
        `  conns ${d.activeConns}/${d.inactiveConns}${d.owned ? '' : '  (not owned)'}${why}`);
    }
  }
  if (s.lastReconcile) {
    out.push(`last reconcile ${localTime(s.lastReconcile.at, timeZone)}: ${s.lastReconcile.changes} change(s) in ${s.lastReconcile.ms} ms` +
      `${s.lastReconcile.failures.length ? `, failures: ${s.lastReconcile.failures.join('; ')}` : ''}`);
  }
  if (s.alerts) {
    out.push(`alerts over HTTP: ${s.alerts.applied} applied, ${s.alerts.ignored} ignored (${s.alerts.unknownService} for services not configured here), `
      + `${s.alerts.refused} refused (${s.alerts.invalid} malformed)`);
  }
  if (s.reactionMs?.n) out.push(`failure -> weight 0: n=${s.reactionMs.n} p50=${s.reactionMs.p50} ms p99=${s.reactionMs.p99} ms`);
  for (const h of s.receiver?.hooks ?? []) out.push(`receiver: ${formatHook(h)}`);
  if (s.receiver) out.push(`receiver: ${Object.entries(s.receiver.counters).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  return out.join('\n');
}

export async function status(opts: StatusOptions): Promise<void> {
  const s = await fetchStatus(opts);
  process.stdout.write((opts.json ? JSON.stringify(s, null, 2) : renderStatus(s)) + '\n');
}
