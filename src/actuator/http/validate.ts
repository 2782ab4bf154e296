// Checking a parsed payload against ./schemas.ts, with errors that name the path, what was expected and what came:
//   alerts[2].labels.backend: must be string, got number 42
//
// ajv reports every error only when asked (allErrors), and a payload of many small wrong values has as many errors
// as values: a 1 MiB body of `1,` gives half a million, ~0.4 s and ~50 MB in ajv. So each payload is checked by a
// validator that stops at the first error, and only an invalid payload small enough (EXPLAIN_MAX_VALUES) is checked
// again by one that lists all of them. A larger one is told its first error and that it was too large to list all.
// The envelope (the array, the webhook message) and each alert are checked apart: see ./schemas.ts.
import Ajv, { ErrorObject, ValidateFunction } from 'ajv';
import {
  LIMITS, POSTABLE_ALERT_SCHEMA, POSTABLE_ALERTS_SCHEMA, PostableAlert, TIME_FORMAT, WEBHOOK_ALERT_SCHEMA, WEBHOOK_SCHEMA,
  WebhookAlert, WebhookMessage,
} from './schemas';
import { GO_ZERO_TIME_MS, parseRfc3339 } from './time';

/** Invalid payloads with at most this many JSON values get every error listed. */
export const EXPLAIN_MAX_VALUES = 5000;
/** Errors quoted in one response; the rest are counted. */
export const MAX_REPORTED_ERRORS = 20;

export type Checked<T> = { ok: true; value: T } | { ok: false; errors: string[]; total: number; partial: boolean };

function makeAjv(allErrors: boolean): Ajv {
  // strict: unknown keywords or formats in our schemas are bugs; no coercion: "42" is not 42, nor 42 a string.
  const ajv = new Ajv({ strict: true, allErrors, verbose: true, coerceTypes: false, useDefaults: false, removeAdditional: false });
  ajv.addFormat(TIME_FORMAT, { type: 'string', validate: (s: string) => parseRfc3339(s) !== undefined });
  return ajv;
}

interface Validators { first: ValidateFunction; all: ValidateFunction }
interface Compiled { v2: Validators; v2Alert: Validators; webhook: Validators; webhookAlert: Validators }
let compiled: Compiled | undefined;

/** Compiles the schemas once (tens of milliseconds); later calls return the same validators. */
export function compileValidators(): Compiled {
  if (!compiled) {
    const first = makeAjv(false);
    const all = makeAjv(true);
    const both = (schema: object) => ({ first: first.compile(schema), all: all.compile(schema) });
    compiled = {
      v2: both(POSTABLE_ALERTS_SCHEMA), v2Alert: both(POSTABLE_ALERT_SCHEMA),
      webhook: both(WEBHOOK_SCHEMA), webhookAlert: both(WEBHOOK_ALERT_SCHEMA),
    };
  }
  return compiled;
}

/** Counts JSON values up to `limit` (then stops): the bound on how many errors a payload can have. */
function countValues(data: unknown, limit: number): number {
  let n = 0;
  const stack: unknown[] = [data];
  while (stack.length > 0 && n <= limit) {
    const v = stack.pop();
    n++;
    if (Array.isArray(v)) for (const x of v) stack.push(x);
    else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) stack.push(x);
  }
  return n;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `got …` text for a value: its type and a short, escaped preview (never the whole of an attacker's string). */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (typeof v === 'string') {
    const q = JSON.stringify(v.length > 40 ? v.slice(0, 40) : v);
    return v.length > 40 ? `string ${q.slice(0, -1)}…" (${v.length} characters)` : `string ${q}`;
  }
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${String(v)}`; // 1e400 parses to Infinity
  if (Array.isArray(v)) return `array of ${v.length} items`;
  return `object with ${Object.keys(v as object).length} properties`;
}

const quoteKey = (k: string) => JSON.stringify(k.length > 64 ? `${k.slice(0, 64)}…` : k);

/** ajv's JSON pointer, walked through the data: `/2/labels/backend` -> `alerts[2].labels.backend` and the value. */
function locate(pointer: string, data: unknown, root: string): { path: string; value: unknown } {
  let path = root;
  let value = data;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(value)) path += `[${key}]`;
    else path += IDENT.test(key) ? `${path ? '.' : ''}${key}` : `[${quoteKey(key)}]`;
    value = value !== null && typeof value === 'object' && Object.hasOwn(value, key)
      ? (value as Record<string, unknown>)[key] : undefined;
  }
  return { path: path || 'body', value };
}

function child(path: string, key: string): string {
  return IDENT.test(key) ? `${path === 'body' ? '' : `${path}.`}${key}` : `${path === 'body' ? '' : path}[${quoteKey(key)}]`;
}

function message(e: ErrorObject, data: unknown, root: string): string | undefined {
  const { path, value } = locate(e.instancePath, data, root);
  const got = describeValue(value);
  const p = e.params as Record<string, unknown>;
  // An invalid property name is reported by the inner keyword (with e.propertyName); the outer one adds nothing.
  if (e.keyword === 'propertyNames') return undefined;
  if (e.propertyName !== undefined) {
    return `${path}: property names must be 1-${LIMITS.labelName} characters, got ${describeValue(e.propertyName)}`;
  }
  switch (e.keyword) {
    case 'type': return `${path}: must be ${String(p.type)}, got ${got}`;
    case 'required': return `${child(path, String(p.missingProperty))}: is required, got nothing`;
    case 'additionalProperties': {
      const known = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      return `${child(path, String(p.additionalProperty))}: unknown property, expected only ${known.join(', ')}`;
    }
    case 'enum': return `${path}: must be one of ${(p.allowedValues as unknown[]).map((x) => JSON.stringify(x)).join(', ')}, got ${got}`;
    case 'const': return `${path}: must be ${JSON.stringify(p.allowedValue)}, got ${got}`;
    case 'format': return `${path}: must be an RFC 3339 date-time such as 2024-05-01T12:00:00Z, got ${got}`;
    case 'maxLength': return `${path}: must be at most ${String(p.limit)} characters, got ${got}`;
    case 'minLength': return `${path}: must be at least ${String(p.limit)} characters, got ${got}`;
    case 'maxItems': return `${path}: must have at most ${String(p.limit)} items, got ${got}`;
    case 'maxProperties': return `${path}: must have at most ${String(p.limit)} properties, got ${got}`;
    case 'minProperties': return `${path}: must have at least ${String(p.limit)} property, got ${got}`;
    case 'minimum': return `${path}: must be >= ${String(p.limit)}, got ${got}`;
    default: return `${path}: ${e.message ?? 'is invalid'}, got ${got}`;
  }
}

interface Timed { startsAt?: string; endsAt?: string }

/** What JSON Schema cannot say: an alert must not end before it starts (Alertmanager refuses those too). */
function timeOrder(a: Timed, root: string): string | undefined {
  const s = a.startsAt === undefined ? undefined : parseRfc3339(a.startsAt);
  const e = a.endsAt === undefined ? undefined : parseRfc3339(a.endsAt);
  if (s === undefined || e === undefined || s === GO_ZERO_TIME_MS || e === GO_ZERO_TIME_MS || e >= s) return undefined;
  return `${root}.endsAt: must not be before startsAt (${a.startsAt}), got string ${JSON.stringify(a.endsAt)}`;
}

function check<T>(v: Validators, data: unknown, root: string, explain: boolean, extra: (t: T) => string | undefined): Checked<T> {
  if (v.first(data)) {
    const error = extra(data as T);
    return error === undefined ? { ok: true, value: data as T } : { ok: false, errors: [error], total: 1, partial: false };
  }
  const raw = explain && !v.all(data) ? v.all.errors ?? [] : v.first.errors ?? [];
  const errors = raw.map((e) => message(e, data, root)).filter((m): m is string => m !== undefined);
  if (errors.length === 0) errors.push(`${root || 'body'}: does not match the schema`);
  return { ok: false, errors: errors.slice(0, MAX_REPORTED_ERRORS), total: errors.length, partial: !explain };
}

/** Small enough to list every error of (see the top of this file). */
const explainable = (data: unknown) => countValues(data, EXPLAIN_MAX_VALUES) <= EXPLAIN_MAX_VALUES;

/** The v2 request as a whole: a JSON array of at most LIMITS.alerts items. Its alerts are checked by checkEachAlert. */
export function checkPostableAlerts(data: unknown): Checked<unknown[]> {
  return check<unknown[]>(compileValidators().v2, data, 'alerts', true, () => undefined);
}

/** The webhook message without its alerts (checked by checkEachAlert). */
export function checkWebhookMessage(data: unknown): Checked<WebhookMessage> {
  return check<WebhookMessage>(compileValidators().webhook, data, '', explainable(data), () => undefined);
}

/**
 * Each alert of a request that passed its envelope check, on its own: a valid alert's value, or what is wrong
 * with it (`alerts[2].labels.backend: must be string, got number 42`).
 */
export function checkEachAlert(kind: 'v2', alerts: readonly unknown[]): Checked<PostableAlert>[];
export function checkEachAlert(kind: 'webhook', alerts: readonly unknown[]): Checked<WebhookAlert>[];
export function checkEachAlert(kind: 'v2' | 'webhook', alerts: readonly unknown[]): Checked<Timed>[] {
  const v = kind === 'v2' ? compileValidators().v2Alert : compileValidators().webhookAlert;
  const explain = explainable(alerts);
  return alerts.map((a, i) => check<Timed>(v, a, `alerts[${i}]`, explain, (t) => timeOrder(t, `alerts[${i}]`)));
}

/** One line for a 400 body: the first errors, and how many more there were. */
export function summarizeErrors(c: { errors: string[]; total: number; partial: boolean }): string {
  const more = c.total - c.errors.length;
  const tail = c.partial ? ' (first error only: the payload is too large to list every error)'
    : more > 0 ? ` (and ${more} more)` : '';
  return `${c.errors.join('; ')}${tail}`;
}
