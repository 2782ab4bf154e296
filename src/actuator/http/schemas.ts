// The JSON Schemas of the two alert payloads the actuator accepts, and their limits. The shapes are those the
// senders really produce:
//   - Alertmanager API v2 `postableAlerts` (prometheus/alertmanager api/v2/openapi.yaml), as Prometheus' notifier,
//     vmalert, the Mimir and Thanos rulers POST them: [{labels, annotations, startsAt, endsAt, generatorURL}].
//   - Alertmanager's webhook message (notify/webhook): template.Data plus version "4", groupKey, truncatedAlerts.
// Both are checked in two steps, as Alertmanager's own API does: the envelope (an array; the webhook's message
// fields) refuses the request as a whole, then each alert on its own, so one malformed or oversized alert is that
// alert's refusal and the others still apply. Alerts stay open to fields they do not declare (Alertmanager's API
// ignores unknown fields too): a newer sender's addition must not make every notification fail.
//
// Every string and collection is bounded, so nothing in a valid payload is larger than the limits say; nesting
// needs at most 4 levels (message > alerts > alert > labels), and deeper values only ever meet a `type` check.

export const LIMITS = {
  /** alerts in one request: Prometheus sends at most 64, Alertmanager's webhook its whole group (max_alerts) */
  alerts: 5000,
  labels: 128,
  annotations: 64,
  labelName: 256,
  labelValue: 4096,
  /** annotations carry descriptions and runbook text */
  annotationValue: 16384,
  url: 8192,
  /** short identifiers: receiver, fingerprint, status text */
  shortText: 1024,
  /** Alertmanager's groupKey repeats the route's matchers and the group's labels */
  groupKey: 16384,
} as const;

/** Levels of nesting a valid payload needs, plus slack for unknown webhook fields; deeper is refused before parsing. */
export const MAX_JSON_DEPTH = 32;

export type LabelSet = Record<string, string>;

export interface PostableAlert {
  labels: LabelSet;
  annotations?: LabelSet;
  startsAt?: string;
  endsAt?: string;
  generatorURL?: string;
}

export interface WebhookAlert {
  status: 'firing' | 'resolved';
  labels: LabelSet;
  annotations?: LabelSet;
  startsAt?: string;
  endsAt?: string;
  generatorURL?: string;
  fingerprint?: string;
}

export interface WebhookMessage {
  version: '4';
  status: 'firing' | 'resolved';
  /** each checked on its own by WEBHOOK_ALERT_SCHEMA */
  alerts: unknown[];
  receiver?: string;
  groupLabels?: LabelSet;
  commonLabels?: LabelSet;
  commonAnnotations?: LabelSet;
  externalURL?: string;
  groupKey?: string;
  truncatedAlerts?: number;
}

/** The format name registered with ajv for RFC 3339 date-times (validated by ./time.ts). */
export const TIME_FORMAT = 'rfc3339';

const labelSet = (maxProperties: number, maxValue: number, minProperties = 0) => ({
  type: 'object',
  minProperties,
  maxProperties,
  propertyNames: { type: 'string', minLength: 1, maxLength: LIMITS.labelName },
  additionalProperties: { type: 'string', maxLength: maxValue },
});

const text = (maxLength: number) => ({ type: 'string', maxLength });
const time = { type: 'string', maxLength: 64, format: TIME_FORMAT };
const status = { type: 'string', enum: ['firing', 'resolved'] };

const labels = labelSet(LIMITS.labels, LIMITS.labelValue, 1);
const annotations = labelSet(LIMITS.annotations, LIMITS.annotationValue);

/** One v2 alert; `alerts[i]` of POSTABLE_ALERTS_SCHEMA, checked alone. */
export const POSTABLE_ALERT_SCHEMA = {
  $id: 'vipguard:alertmanager-v2-postable-alert',
  type: 'object',
  required: ['labels'],
  properties: {
    labels,
    annotations,
    startsAt: time,
    endsAt: time,
    generatorURL: text(LIMITS.url),
  },
} as const;

/** The v2 request: an array of alerts, each checked by POSTABLE_ALERT_SCHEMA on its own. */
export const POSTABLE_ALERTS_SCHEMA = {
  $id: 'vipguard:alertmanager-v2-postable-alerts',
  type: 'array',
  maxItems: LIMITS.alerts,
} as const;

/** One webhook alert; `alerts[i]` of WEBHOOK_SCHEMA, checked alone. */
export const WEBHOOK_ALERT_SCHEMA = {
  $id: 'vipguard:alertmanager-webhook-v4-alert',
  type: 'object',
  required: ['status', 'labels'],
  properties: {
    status,
    labels,
    annotations,
    startsAt: time,
    endsAt: time,
    generatorURL: text(LIMITS.url),
    fingerprint: text(64),
  },
} as const;

export const WEBHOOK_SCHEMA = {
  $id: 'vipguard:alertmanager-webhook-v4',
  type: 'object',
  required: ['version', 'status', 'alerts'],
  properties: {
    version: { type: 'string', const: '4' },
    status,
    receiver: text(LIMITS.shortText),
    alerts: { type: 'array', maxItems: LIMITS.alerts },
    groupLabels: labelSet(LIMITS.labels, LIMITS.labelValue),
    commonLabels: labelSet(LIMITS.labels, LIMITS.labelValue),
    commonAnnotations: annotations,
    externalURL: text(LIMITS.url),
    groupKey: text(LIMITS.groupKey),
    truncatedAlerts: { type: 'integer', minimum: 0 },
  },
} as const;
