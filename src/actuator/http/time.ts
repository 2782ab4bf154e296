// RFC 3339 timestamps as Alertmanager's senders write them: Prometheus (Go's strfmt.DateTime, milliseconds),
// vmalert and Alertmanager's webhook (Go's RFC3339Nano, up to 9 fraction digits), hand-written clients (any offset).
// Date.parse is not used: beyond ISO 8601 it accepts implementation-defined forms. Nor is Date.UTC: it maps years
// 0-99 to 1900-1999, which would turn Go's zero time (year 1) into 1901.

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** Go's zero time.Time, which Go senders write for "no time" (e.g. a firing alert's endsAt in a webhook). */
export const GO_ZERO_TIME_MS = -62135596800000; // 0001-01-01T00:00:00Z

const daysIn = (y: number, m: number) =>
  m === 2 ? (y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0) ? 29 : 28) : [4, 6, 9, 11].includes(m) ? 30 : 31;

/** Epoch milliseconds of an RFC 3339 date-time, or undefined when the text is not one (or names no real day). */
export function parseRfc3339(text: string): number | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
  // Seconds may be 60 (RFC 3339 5.6 allows a leap second); it rolls into the next minute below.
  if (mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h > 23 || mi > 59 || s > 60) return undefined;
  let offsetMin = 0;
  if (!m[8]) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return undefined;
    offsetMin = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const ms = m[7] ? Math.floor(Number(`0.${m[7]}`) * 1000) : 0;
  const t = new Date(0);
  t.setUTCFullYear(y, mo - 1, d);
  t.setUTCHours(h, mi, s, ms);
  return t.getTime() - offsetMin * 60_000;
}

/** A time field's instant, with Go's zero time and absence both meaning "none". */
export function optionalTime(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const ms = parseRfc3339(text);
  return ms === undefined || ms === GO_ZERO_TIME_MS ? undefined : new Date(ms);
}
