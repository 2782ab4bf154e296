// Reading a JSON request body without trusting its sender: the declared and the streamed size are both held to
// the limit (the body is never buffered past it), the media type must be JSON in UTF-8, and nesting is measured
// before JSON.parse so a `[[[[…` bomb costs one linear scan rather than a parse.
import type { IncomingMessage } from 'node:http';

/** A refusal: the HTTP status, the message the client gets as `error`, and more fields for its JSON body. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {},
    readonly details: Record<string, unknown> = {}) {
    super(message);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * application/json, optionally with charset=utf-8 (RFC 8259 8.1: JSON between systems is UTF-8). Prometheus,
 * vmalert and Alertmanager all send exactly `application/json`. Requiring it also means a browser cannot POST here
 * cross-origin without a CORS preflight, which this server never grants.
 */
export function checkContentType(req: IncomingMessage): void {
  const header = req.headers['content-type'];
  const [type, ...params] = (header ?? '').split(';').map((s) => s.trim().toLowerCase());
  if (type !== 'application/json') {
    throw new HttpError(415, `unsupported Content-Type ${header === undefined ? '(none)' : JSON.stringify(header.slice(0, 100))}: expected application/json`);
  }
  for (const p of params) {
    const [k, v] = p.split('=').map((s) => s.trim().replace(/^"|"$/g, ''));
    if (k === 'charset' && v !== 'utf-8' && v !== 'utf8') {
      throw new HttpError(415, `unsupported charset ${JSON.stringify(v.slice(0, 40))}: expected utf-8`);
    }
  }
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
    throw new HttpError(415, `unsupported Content-Encoding ${JSON.stringify(encoding.slice(0, 40))}: send the body uncompressed`);
  }
}

const tooLarge = (max: number, got: string) =>
  new HttpError(413, `request body is ${got}: the limit is ${max} bytes`, { Connection: 'close' });

/** The whole body, or a 413 as soon as it passes `maxBytes` (declared or streamed). */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) {
    return Promise.reject(tooLarge(maxBytes, `${declared} bytes (Content-Length)`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        chunks.length = 0;
        // Keep draining (and dropping) what is in flight, so the client reads the 413 rather than a reset.
        req.resume();
        finish(tooLarge(maxBytes, `more than ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => finish());
    req.on('error', (e) => finish(new HttpError(400, `reading request body: ${e.message}`)));
    // 'close' before 'end': the client went away mid-body.
    req.on('close', () => finish(new HttpError(400, 'request body cut short: the client closed the connection')));
  });
}

/**
 * The deepest nesting of arrays and objects in a JSON text (brackets inside strings do not count). Linear and
 * allocation-free; run before JSON.parse so that the parser and the validator only ever see shallow documents.
 */
export function jsonDepth(text: string, stopAt: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max && (max = depth) > stopAt) return max;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

/** UTF-8 bytes -> a parsed JSON value, refusing invalid UTF-8, empty bodies, deep nesting and syntax errors. */
export function parseJson(body: Buffer, maxDepth: number, expected: string): unknown {
  if (body.length === 0) throw new HttpError(400, `request body is empty: expected ${expected}`);
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new HttpError(400, 'request body is not valid UTF-8: JSON must be sent as UTF-8 (RFC 8259 8.1)');
  }
  const depth = jsonDepth(text, maxDepth);
  if (depth > maxDepth) {
    throw new HttpError(400, `request body nests arrays/objects more than ${maxDepth} levels deep: expected ${expected}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    // V8's message names the position and quotes a short excerpt; keep it, bounded.
    throw new HttpError(400, `request body is not valid JSON (${(e as Error).message.slice(0, 200)}): expected ${expected}`);
  }
}
