// Throwaway certificates for the TLS tests, made at test time with the openssl CLI (src/lab/pki.ts): a CA, a
// server certificate for 127.0.0.1 (subjectAltName IP) and a second one (rotation), a client certificate, a second
// CA with a client certificate of its own (a stranger), an expired server certificate and a key of nobody's.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { issuer } from '../src/lab/pki';

export interface Pki {
  dir: string;
  ca: string;
  server: { cert: string; key: string };
  /** another certificate for the same names, from the same CA: what a renewal puts in place */
  server2: { cert: string; key: string };
  client: { cert: string; key: string };
  /** a CA nobody trusts, and a client certificate it signed */
  otherCa: string;
  stranger: { cert: string; key: string };
  /** a server certificate whose notAfter has passed */
  expired: { cert: string; key: string };
  /** a key of no certificate here */
  strayKey: string;
  cleanup(): void;
}

export { makeServerPki } from '../src/lab/pki';

export function makePki(): Pki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipguard-pki-'));
  const { f, key, ca, leaf } = issuer(dir);
  const serverExt = 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth';
  ca('ca', 'vipguard test CA');
  ca('other-ca', 'some other CA');
  const pki: Pki = {
    dir,
    ca: f('ca.pem'),
    server: leaf('server', 'vipguard server', 'ca', serverExt),
    server2: leaf('server2', 'vipguard server renewed', 'ca', serverExt),
    client: leaf('client', 'prometheus', 'ca', 'extendedKeyUsage=clientAuth'),
    otherCa: f('other-ca.pem'),
    stranger: leaf('stranger', 'stranger', 'other-ca', 'extendedKeyUsage=clientAuth'),
    expired: leaf('expired', 'vipguard server expired', 'ca', serverExt, '-1'),
    strayKey: f('stray.key'),
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
  key('stray.key');
  return pki;
}
