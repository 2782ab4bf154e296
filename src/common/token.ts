// Bearer-token checks for vipguard's endpoints, in constant time: both sides are hashed first so neither the
// comparison nor an early length mismatch tells an attacker how much of a guess was right.
import { createHash, timingSafeEqual } from 'node:crypto';

/** Shortest token accepted anywhere: a short token is guessable at HTTP speed. */
export const MIN_TOKEN_LENGTH = 16;

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export function tokenMatches(presented: string | undefined, expected: string): boolean {
  return timingSafeEqual(digest(presented ?? ''), digest(expected)) && presented !== undefined;
}

/** Extracts the token from an `Authorization: Bearer <token>` header value. */
export function bearer(header: string | string[] | undefined): string | undefined {
  const h = Array.isArray(header) ? header[0] : header;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h ?? '');
  return m?.[1];
}

/** Loopback addresses vipguard may listen on without a token. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
