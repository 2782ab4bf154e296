// Throwaway certificates made at run time with the openssl CLI (none is committed), for the lab's listeners beyond
// loopback — a fleet's vipguards and the Prometheus reaching them, in the fleet lab test and the fleet benchmark.
// test/certs.ts builds the unit tests' larger PKI (rotation, strangers, expiry) from the same makers.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface CertPair {
  cert: string;
  key: string;
}

export interface ServerPki {
  dir: string;
  ca: string;
  server: CertPair;
  client: CertPair;
  cleanup(): void;
}

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Key, CA and leaf makers writing into `dir`. */
export function issuer(dir: string) {
  const f = (name: string) => path.join(dir, name);
  const key = (name: string) => openssl(dir, 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f(name));
  const ca = (name: string, cn: string) => {
    key(`${name}.key`);
    openssl(dir, 'req', '-x509', '-new', '-key', f(`${name}.key`), '-out', f(`${name}.pem`), '-days', '2', '-subj', `/CN=${cn}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  };
  const leaf = (name: string, cn: string, by: string, ext: string, days = '2'): CertPair => {
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
 * names, as subjectAltNames) and one client certificate.
 */
export function makeServerPki(names: string[]): ServerPki {
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
