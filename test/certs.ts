// Throwaway certificates for the TLS tests, made at test time with the openssl CLI (none is committed): a CA, a
// server certificate for 127.0.0.1 (subjectAltName IP) and a second one (rotation), a client certificate, a second
// CA with a client certificate of its own (a stranger), an expired server certificate and a key of nobody's.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

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

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Key, CA and leaf makers writing into `dir`, shared by the PKIs below. */
function issuer(dir: string) {
  const f = (name: string) => path.join(dir, name);
  const key = (name: string) => openssl(dir, 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f(name));
  const ca = (name: string, cn: string) => {
    key(`${name}.key`);
    openssl(dir, 'req', '-x509', '-new', '-key', f(`${name}.key`), '-out', f(`${name}.pem`), '-days', '2', '-subj', `/CN=${cn}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  };
  const leaf = (name: string, cn: string, by: string, ext: string, days = '2') => {
    key(`${name}.key`);
    openssl(dir, 'req', '-new', '-key', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`);
    fs.writeFileSync(f(`${name}.ext`), `${ext}\nbasicConstraints=CA:FALSE\n`);
    // -days -1: notAfter a day before notBefore, i.e. in the past: the only way openssl 3.0's x509 makes an expired one.
    openssl(dir, 'x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${by}.pem`), '-CAkey', f(`${by}.key`), '-CAcreateserial',
      '-out', f(`${name}.pem`), '-days', days, '-extfile', f(`${name}.ext`));
    return { cert: f(`${name}.pem`), key: f(`${name}.key`) };
  };
  return { f, key, ca, leaf };
}

/**
 * The smallest PKI for listeners beyond loopback: a CA, one server certificate for `names` (IP addresses or DNS
 * names, as subjectAltNames) and one client certificate — e.g. a fleet's vipguards and the Prometheus reaching them.
 */
export function makeServerPki(names: string[]): Pick<Pki, 'dir' | 'ca' | 'server' | 'client' | 'cleanup'> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipguard-pki-'));
  const { f, ca, leaf } = issuer(dir);
  const san = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  ca('ca', 'vipguard test CA');
  return {
    dir,
    ca: f('ca.pem'),
    server: leaf('server', 'vipguard server', 'ca', `subjectAltName=${san}\nextendedKeyUsage=serverAuth`),
    client: leaf('client', 'prometheus', 'ca', 'extendedKeyUsage=clientAuth'),
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

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
