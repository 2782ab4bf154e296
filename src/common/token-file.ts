// Where the actuator's bearer token comes from. Any local user can reach loopback, so a token is required by
// default: configured inline, read from a file, or — at first start — generated into that file, mode 0600, for
// Prometheus (`authorization.credentials_file`), Alertmanager, the collector (its actuator exporter's headers, through `${file:…}`) and
// `vipguard status` to read. A token never appears on a command line (visible in /proc/*/cmdline to every user).
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MIN_TOKEN_LENGTH } from './token';
import { Logger, lineLogger } from './log';

/** The environment variable `vipguard status` reads a token from (never a flag: see above). */
export const TOKEN_ENV = 'VIPGUARD_TOKEN';

export interface TokenSettings {
  token?: string;
  tokenFile: string;
  allowLoopbackWithoutToken: boolean;
}

export type ResolvedToken = { token: string; source: 'config' | 'file' | 'generated'; file?: string } | { token: undefined; source: 'none' };

/** A token file's content: one line, at least MIN_TOKEN_LENGTH characters of no whitespace. */
export function readTokenFile(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`reading the token file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} — is it readable by this user?`);
  }
  const token = text.trim();
  if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
    throw new Error(`token file ${file} holds ${token.length < MIN_TOKEN_LENGTH ? `${token.length} characters` : 'whitespace inside the token'}: `
      + `expected one token of at least ${MIN_TOKEN_LENGTH} characters (e.g. openssl rand -hex 32 > ${file})`);
  }
  return token;
}

/**
 * The token the endpoints require: the inline one, the file's, or a new one written to the file (exclusively, so
 * two starting processes agree on one). With allowLoopbackWithoutToken and no file, none.
 */
export function resolveToken(s: TokenSettings, log: Logger = lineLogger(() => {})): ResolvedToken {
  if (s.token !== undefined) return { token: s.token, source: 'config' };
  if (fs.existsSync(s.tokenFile)) {
    const mode = fs.statSync(s.tokenFile).mode & 0o777;
    if (mode & 0o007) log.warn(`token file ${s.tokenFile} is readable by every user (mode ${mode.toString(8)}): chmod 600 (or 640 for a group that needs it)`);
    return { token: readTokenFile(s.tokenFile), source: 'file', file: s.tokenFile };
  }
  if (s.allowLoopbackWithoutToken) return { token: undefined, source: 'none' };
  const token = randomBytes(32).toString('hex');
  fs.mkdirSync(path.dirname(s.tokenFile), { recursive: true, mode: 0o700 });
  try {
    // No trailing newline: the collector embeds the file's bytes as they are in its `authorization` header
    // (`Bearer ${file:…}`), and gRPC refuses a header value with a newline in it.
    fs.writeFileSync(s.tokenFile, token, { flag: 'wx', mode: 0o600 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return { token: readTokenFile(s.tokenFile), source: 'file', file: s.tokenFile };
    throw new Error(`writing a new token to ${s.tokenFile}: ${(e as Error).message} — set actuator.tokenFile to a writable path`);
  }
  log.info(`actuator: generated a bearer token into ${s.tokenFile} (mode 0600): give this file to Prometheus, Alertmanager and the collector`);
  return { token, source: 'generated', file: s.tokenFile };
}
