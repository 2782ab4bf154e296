// From validated payloads to AlertSignals, one alert at a time, and what became of each. Both endpoints end here,
// so an alert means the same whichever way it came: same fingerprint (Alertmanager's, see ./fingerprint.ts), same
// labels, same firing/resolved rule.
import { AlertSignal, AlertSource, AlertTarget, Refusal, TARGET_LABELS } from '../alerts';
import { destinationKey } from '../ipvs/identity';
import { labelsFingerprint } from './fingerprint';
import type { LabelSet, PostableAlert, WebhookMessage } from './schemas';
import { optionalTime } from './time';

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

export type AlertOutcome = { index: number; alertname: string; fingerprint: string } & (
  | { outcome: 'applied'; service: string; destination: string; action: string; until?: string }
  | { outcome: 'ignored'; why: string }
  | { outcome: 'refused'; status: number; error: string }
);

/** The one place a refusal becomes an HTTP status. */
export const REFUSAL_STATUS: Record<Refusal, number> = {
  'unknown-service': 404, 'not-owned': 422, 'bad-target': 422, cap: 409, 'rate-limited': 429,
};

const TARGET_LABEL_NAMES: readonly string[] = Object.values(TARGET_LABELS).flat();
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

/**
 * Alertmanager v2 semantics: an alert whose endsAt has passed is resolved; one without endsAt (or with Go's zero
 * time) or with endsAt ahead is firing. Prometheus always sends endsAt: for firing alerts 4 × max(resend delay,
 * evaluation interval) ahead, so an alert it stops sending resolves by itself.
 */
export function fromPostable(alerts: readonly PostableAlert[], nowMs: number): InboundAlert[] {
  return alerts.map((a, i) => {
    const endsAt = optionalTime(a.endsAt);
    return inbound(i, a.labels, a.annotations, endsAt && endsAt.getTime() <= nowMs ? 'resolved' : 'firing', endsAt);
  });
}

/** The webhook says firing/resolved per alert (Alertmanager decided from endsAt when it sent it). */
export function fromWebhook(msg: WebhookMessage): InboundAlert[] {
  return msg.alerts.map((a, i) => inbound(i, a.labels, a.annotations, a.status, optionalTime(a.endsAt)));
}

const addressed = (labels: LabelSet) => TARGET_LABEL_NAMES.some((n) => n in labels);

export interface DeliverOptions {
  source: AlertSource;
  /**
   * What to do with an alert carrying none of TARGET_LABELS. Prometheus sends every alert of every rule to every
   * alertmanager it knows, so on the v2 API such alerts are someone else's and are ignored; a webhook is routed to
   * the actuator on purpose, so there one is a routing or rule mistake and is refused.
   */
  unaddressed: 'ignore' | 'refuse';
  log: (line: string) => void;
}

/** Resolves and submits each alert in order; never throws (a failing target is that alert's 500). */
export function deliver(target: AlertTarget, alerts: readonly InboundAlert[], o: DeliverOptions): AlertOutcome[] {
  return alerts.map((a): AlertOutcome => {
    const head = { index: a.index, alertname: a.name, fingerprint: a.fingerprint };
    const what = `alerts[${a.index}] (${a.name}, ${a.state}, fingerprint ${a.fingerprint})`;
    const refuse = (status: number, error: string): AlertOutcome => {
      o.log(`${o.source}: ${what} refused (${status}): ${oneLine(error, 300)}`);
      return { ...head, outcome: 'refused', status, error };
    };
    if (!addressed(a.labels)) {
      const why = `names no service or destination: expected labels among ${TARGET_LABEL_NAMES.join(', ')}`;
      return o.unaddressed === 'ignore' ? { ...head, outcome: 'ignored', why } : refuse(422, why);
    }
    try {
      const t = target.resolveTarget(a.labels);
      if (!t.ok) return refuse(REFUSAL_STATUS[t.refusal], t.error);
      const signal: AlertSignal = {
        source: o.source, name: a.name, service: t.service, serviceId: t.serviceId, destination: t.destination,
        state: a.state, endsAt: a.endsAt, fingerprint: a.fingerprint, reason: a.reason,
      };
      const v = target.submit(signal);
      if (!v.accepted) return refuse(REFUSAL_STATUS[v.refusal], v.error);
      return {
        ...head, outcome: 'applied', service: t.service, destination: destinationKey(t.destination),
        action: v.action, until: v.until?.toISOString(),
      };
    } catch (e) {
      return refuse(500, `the actuator failed on this alert: ${(e as Error).message}`);
    }
  });
}

export interface BatchResult {
  status: number;
  applied: number;
  ignored: number;
  refused: number;
}

/**
 * The HTTP status of a batch: 200 unless nothing was applied and something was refused — then the refusals' common
 * status (404 unknown service, 422 not owned or unaddressed, 409, 429 rate-limited), or 422 when they differ.
 */
export function batchStatus(outcomes: readonly AlertOutcome[]): BatchResult {
  const count = (k: AlertOutcome['outcome']) => outcomes.filter((x) => x.outcome === k).length;
  const r = { applied: count('applied'), ignored: count('ignored'), refused: count('refused') };
  if (r.refused === 0 || r.applied > 0) return { status: 200, ...r };
  const statuses = new Set(outcomes.flatMap((x) => (x.outcome === 'refused' ? [x.status] : [])));
  return { status: statuses.size === 1 ? [...statuses][0] : 422, ...r };
}
