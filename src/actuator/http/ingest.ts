// From validated payloads to AlertSignals, one alert at a time, and what became of each. Both endpoints end here,
// so an alert means the same whichever way it came: same fingerprint (Alertmanager's, see ./fingerprint.ts), same
// labels, same firing/resolved rule.
import { AlertSignal, AlertSource, AlertTarget, Refusal } from '../alerts';
import { destinationKey } from '../ipvs/identity';
import { AlertLabels } from '../labels';
import { labelsFingerprint } from './fingerprint';
import type { LabelSet, PostableAlert, WebhookAlert } from './schemas';
import { optionalTime } from './time';
import type { Checked } from './validate';

export interface InboundAlert {
  /** position in the request's alerts array, for per-alert results */
  index: number;
  name: string;
  labels: LabelSet;
  state: 'firing' | 'resolved';
  endsAt?: Date;
  fingerprint: string;
  reason: string;
}

/** An alert that failed its own schema check: refused (or ignored, if it is not for vipguard) on its own. */
export interface InvalidAlert {
  index: number;
  name: string;
  invalid: { errors: string[]; total: number };
  /** its labels (whatever their values) carry one of vipguard's target keys */
  addressed: boolean;
}

export type Inbound = InboundAlert | InvalidAlert;

/**
 * What became of one alert. `ignored` is a 2xx answer: the alert is not for vipguard (`unaddressed`), or names a
 * service this host does not have (`unknown-service` — a central Alertmanager routes fleet-wide alerts to every
 * client, and Prometheus would count a 4xx as a failed notification).
 */
export type AlertOutcome = { index: number; alertname: string; fingerprint?: string } & (
  | { outcome: 'applied'; service: string; destination: string; action: string; until?: string }
  | { outcome: 'ignored'; reason: 'unaddressed' | 'unknown-service'; why: string }
  | { outcome: 'refused'; reason: Exclude<Refusal, 'unknown-service'> | 'invalid' | 'failed'; status: number; error: string }
);

/** The one place a refusal becomes an HTTP status (unknown-service is not one: it is ignored with a 2xx). */
export const REFUSAL_STATUS: Record<Exclude<Refusal, 'unknown-service'> | 'invalid' | 'failed', number> = {
  'not-owned': 422, 'bad-target': 422, cap: 409, 'rate-limited': 429, invalid: 400, failed: 500,
};

const MAX_REASON = 512;
/**
 * Labels as the policy sees them: without empty values (Alertmanager drops those too, and Prometheus never sends
 * them), on a null-prototype object so that a label named `__proto__` or `constructor` is only ever a label.
 */
function cleanLabels(labels: LabelSet | undefined): LabelSet {
  const out: LabelSet = Object.create(null);
  for (const [k, v] of Object.entries(labels ?? {})) if (v !== '') out[k] = v;
  return out;
}

/** One line of text for logs and status: control characters (newlines included) would forge log lines. */
function oneLine(s: string, max: number): string {
  const flat = s.replace(/[\u0000-\u001f\u007f\u2028\u2029]+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

function inbound(index: number, rawLabels: LabelSet, annotations: LabelSet | undefined,
  state: 'firing' | 'resolved', endsAt: Date | undefined): InboundAlert {
  const labels = cleanLabels(rawLabels);
  const notes = cleanLabels(annotations);
  const name = oneLine(labels.alertname ?? '', 200) || '(no alertname)';
  return {
    index, name, labels, state, endsAt,
    fingerprint: labelsFingerprint(labels),
    reason: oneLine(notes.summary ?? notes.description ?? name, MAX_REASON),
  };
}

const nameOf = (raw: unknown): string => {
  const labels = raw !== null && typeof raw === 'object' ? (raw as { labels?: unknown }).labels : undefined;
  const n = labels !== null && typeof labels === 'object' ? (labels as Record<string, unknown>).alertname : undefined;
  return (typeof n === 'string' && oneLine(n, 200)) || '(no alertname)';
};

function invalid(index: number, raw: unknown, c: { errors: string[]; total: number }, keys: AlertLabels): InvalidAlert {
  const labels = raw !== null && typeof raw === 'object' ? (raw as { labels?: unknown }).labels : undefined;
  const addressed = labels !== null && typeof labels === 'object' && !Array.isArray(labels) && keys.addresses(labels);
  return { index, name: nameOf(raw), invalid: { errors: c.errors, total: c.total }, addressed };
}

/**
 * Alertmanager v2 semantics: an alert whose endsAt has passed is resolved; one without endsAt (or with Go's zero
 * time) or with endsAt ahead is firing. Prometheus always sends endsAt: for firing alerts 4 × max(resend delay,
 * evaluation interval) ahead, so an alert it stops sending resolves by itself.
 */
export function fromPostable(raw: readonly unknown[], checked: readonly Checked<PostableAlert>[], nowMs: number, keys: AlertLabels): Inbound[] {
  return checked.map((c, i) => {
    if (!c.ok) return invalid(i, raw[i], c, keys);
    const a = c.value;
    const endsAt = optionalTime(a.endsAt);
    return inbound(i, a.labels, a.annotations, endsAt && endsAt.getTime() <= nowMs ? 'resolved' : 'firing', endsAt);
  });
}

/** The webhook says firing/resolved per alert (Alertmanager decided from endsAt when it sent it). */
export function fromWebhook(raw: readonly unknown[], checked: readonly Checked<WebhookAlert>[], keys: AlertLabels): Inbound[] {
  return checked.map((c, i) => (c.ok ? inbound(i, c.value.labels, c.value.annotations, c.value.status, optionalTime(c.value.endsAt))
    : invalid(i, raw[i], c, keys)));
}

export interface DeliverOptions {
  source: AlertSource;
  /**
   * What to do with an alert carrying none of vipguard's target label keys (../labels.ts). Prometheus sends every
   * alert of every rule to every alertmanager it knows, so on the v2 API such alerts are someone else's and are
   * ignored; a webhook is routed to the actuator on purpose, so there one is a routing or rule mistake and is refused.
   */
  unaddressed: 'ignore' | 'refuse';
  /** which label keys name a target */
  keys: AlertLabels;
  log: (line: string) => void;
}

/** Resolves and submits each alert in order; never throws (a failing target is that alert's 500). */
export function deliver(target: AlertTarget, alerts: readonly Inbound[], o: DeliverOptions): AlertOutcome[] {
  return alerts.map((a): AlertOutcome => {
    const head = 'invalid' in a ? { index: a.index, alertname: a.name } : { index: a.index, alertname: a.name, fingerprint: a.fingerprint };
    const what = 'invalid' in a ? `alerts[${a.index}] (${a.name}, invalid)` : `alerts[${a.index}] (${a.name}, ${a.state}, fingerprint ${a.fingerprint})`;
    const refuse = (reason: keyof typeof REFUSAL_STATUS, error: string): AlertOutcome => {
      const status = REFUSAL_STATUS[reason];
      o.log(`${o.source}: ${what} refused (${status}): ${oneLine(error, 300)}`);
      return { ...head, outcome: 'refused', reason, status, error };
    };
    const unknownService = (why: string): AlertOutcome => {
      o.log(`${o.source}: ${what} ignored: ${oneLine(why, 300)}`);
      return { ...head, outcome: 'ignored', reason: 'unknown-service', why };
    };
    if ('invalid' in a) {
      const more = a.invalid.total - a.invalid.errors.length;
      const error = `${a.invalid.errors.join('; ')}${more > 0 ? ` (and ${more} more)` : ''}`;
      if (!a.addressed && o.unaddressed === 'ignore') return { ...head, outcome: 'ignored', reason: 'unaddressed', why: `not for vipguard, and invalid: ${error}` };
      return refuse('invalid', error);
    }
    const t = o.keys.target(a.labels);
    if (!t.ok) {
      if (t.missing === 'everything' && o.unaddressed === 'ignore') return { ...head, outcome: 'ignored', reason: 'unaddressed', why: t.error };
      return refuse('bad-target', t.error);
    }
    try {
      const r = target.resolveTarget(t.labels);
      if (!r.ok) return r.refusal === 'unknown-service' ? unknownService(r.error) : refuse(r.refusal, r.error);
      const signal: AlertSignal = {
        source: o.source, name: a.name, service: r.service, serviceId: r.serviceId, destination: r.destination,
        state: a.state, endsAt: a.endsAt, fingerprint: a.fingerprint, reason: a.reason,
      };
      const v = target.submit(signal);
      if (!v.accepted) return v.refusal === 'unknown-service' ? unknownService(v.error) : refuse(v.refusal, v.error);
      return {
        ...head, outcome: 'applied', service: r.service, destination: destinationKey(r.destination),
        action: v.action, until: v.until?.toISOString(),
      };
    } catch (e) {
      return refuse('failed', `the actuator failed on this alert: ${(e as Error).message}`);
    }
  });
}

export interface BatchResult {
  status: number;
  applied: number;
  ignored: number;
  /** of the ignored: alerts naming a service this host does not have */
  unknownService: number;
  refused: number;
  invalid: number;
}

/**
 * The HTTP status of a batch: 200 unless nothing was applied and something was refused — then the refusals' common
 * status (400 invalid, 422 not owned or unaddressed, 409 cap, 429 rate-limited), or 422 when they differ. Ignored
 * alerts (someone else's, or naming a service this host does not have) never make a batch fail.
 */
export function batchStatus(outcomes: readonly AlertOutcome[]): BatchResult {
  const count = (k: AlertOutcome['outcome']) => outcomes.filter((x) => x.outcome === k).length;
  const r = {
    applied: count('applied'), ignored: count('ignored'), refused: count('refused'),
    unknownService: outcomes.filter((x) => x.outcome === 'ignored' && x.reason === 'unknown-service').length,
    invalid: outcomes.filter((x) => x.outcome === 'refused' && x.reason === 'invalid').length,
  };
  if (r.refused === 0 || r.applied > 0) return { status: 200, ...r };
  const statuses = new Set(outcomes.flatMap((x) => (x.outcome === 'refused' ? [x.status] : [])));
  return { status: statuses.size === 1 ? [...statuses][0] : 422, ...r };
}
