// `vipguard status`: what the running actuator sees — per service, each destination's weight and state
// (healthy / quarantined until T at backoff level L / restoring), panic, and recent reasons.
import * as fs from 'node:fs';
import { defaultTokenFile, loadConfig } from '../config/config';
import { CONFIG_SCHEMA } from '../config/schema';
import { readTokenFile, TOKEN_ENV } from '../common/token-file';

interface DestStatus {
  destination: string; owned: boolean; weight: number; activeConns: number; inactiveConns: number;
  state: string; until?: string; level?: number; reasons?: string[];
  /** which input the quarantine came from (rule, alertmanager, webhook) */
  source?: string;
}
interface ServiceStatus { name: string; service: string; managed: boolean; present: boolean; panic: boolean; quarantined: number; destinations: DestStatus[] }
interface Status {
  time: string;
  services?: ServiceStatus[];
  lastReconcile?: { at: string; ms: number; changes: number; failures: string[] };
  receiver?: { hooks: { hook: string; active: boolean; reason?: string }[]; counters: Record<string, number> };
  reactionMs?: { n: number; p50?: number; p99?: number };
  alerts?: { applied: number; ignored: number; unknownService: number; refused: number; invalid: number };
}

export interface StatusOptions {
  url?: string;
  configPath?: string;
  /** a file holding the token (never the token itself on a command line: every user can read a process command line in /proc) */
  tokenFile?: string;
  json: boolean;
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
    const a = loadConfig(opts.configPath).actuator;
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

export async function fetchStatus(opts: StatusOptions): Promise<Status> {
  let base = opts.url;
  const token = statusToken(opts);
  if (!base) {
    const listen = opts.configPath ? loadConfig(opts.configPath).actuator.listen : '127.0.0.1:9095';
    base = `http://${listen}`;
  }
  const url = `${base.replace(/\/$/, '')}/api/vipguard/status`;
  let res: Response;
  try {
    res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(5000) });
  } catch (e) {
    throw new Error(`reading ${url}: ${(e as Error).cause ?? (e as Error).message} — is \`vipguard run\` running (actuator.listen)?`);
  }
  if (res.status === 401) {
    throw new Error(`reading ${url}: HTTP 401 ${await res.text()} — pass --config, --token-file or ${TOKEN_ENV} (the token is in actuator.tokenFile, by default beside the state file)`);
  }
  if (!res.ok) throw new Error(`reading ${url}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as Status;
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
      out.push(`  ${d.destination.padEnd(24)} weight ${String(d.weight).padStart(3)}  ${d.state}${until}` +
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
  for (const h of s.receiver?.hooks ?? []) out.push(`receiver: ${h.active ? 'active  ' : 'INACTIVE'} ${h.hook}${h.reason ? ` — ${h.reason}` : ''}`);
  if (s.receiver) out.push(`receiver: ${Object.entries(s.receiver.counters).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  return out.join('\n');
}

export async function status(opts: StatusOptions): Promise<void> {
  const s = await fetchStatus(opts);
  process.stdout.write((opts.json ? JSON.stringify(s, null, 2) : renderStatus(s)) + '\n');
}
