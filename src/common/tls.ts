// TLS for vipguard's listeners (the actuator's HTTP API and OTLP/gRPC receiver, the receiver's scrape endpoint):
// PEM files read and checked in one place, so `check-config`, the start and every reload find the same problems
// with the same words — an unreadable file, a key that is not the certificate's, a certificate outside its validity
// dates — and a listener never starts (or, on reload, switches) to files a client would refuse.
import { X509Certificate, createPrivateKey, KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { SecureContextOptions, TlsOptions } from 'node:tls';

/** A listener's `tls` block: its certificate chain and key, and the CA its clients' certificates must chain to. */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** when set, clients must present a certificate signed by one of these CAs (mutual TLS) */
  clientCAFile?: string;
}

/** The files' contents, checked: what a server's secure context is made of. */
export interface TlsMaterial {
  files: TlsFiles;
  cert: Buffer;
  key: Buffer;
  clientCA?: Buffer;
  /** the leaf certificate (the first of certFile), for logs */
  leaf: X509Certificate;
}

/** A problem with one file of a tls block; `key` names the setting (certFile, keyFile, clientCAFile). */
export class TlsFileError extends Error {
  constructor(readonly key: keyof TlsFiles, message: string) {
    super(message);
    this.name = 'TlsFileError';
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function read(key: keyof TlsFiles, file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new TlsFileError(key, `cannot read ${file} (${code ?? (e as Error).message}): expected ${what}, readable by the user running vipguard`);
  }
}

function certificates(key: keyof TlsFiles, file: string, pem: Buffer, what: string): X509Certificate[] {
  const blocks = pem.toString('latin1').match(PEM_CERT) ?? [];
  if (!blocks.length) throw new TlsFileError(key, `${file} holds no PEM certificate: expected ${what} (-----BEGIN CERTIFICATE-----)`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw new TlsFileError(key, `${file}: certificate ${i + 1} does not parse (${(e as Error).message}): expected ${what}`);
    }
  });
}

/** "2026-12-06T07:00:00.000Z" from X509Certificate's "Dec  6 07:00:00 2026 GMT". */
const iso = (openssl: string) => new Date(openssl).toISOString();

/**
 * Reads and checks a tls block's files: each readable and PEM; the key the private key of the certificate's
 * public key; the certificate valid now (`now`, ms). Throws TlsFileError naming the setting at fault.
 */
export function loadTls(files: TlsFiles, now = Date.now()): TlsMaterial {
  const cert = read('certFile', files.certFile, 'the server\'s PEM certificate, then its intermediates');
  const [leaf] = certificates('certFile', files.certFile, cert, 'the server\'s PEM certificate, then its intermediates');
  const keyPem = read('keyFile', files.keyFile, 'the PEM private key of certFile');
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    throw new TlsFileError('keyFile', `${files.keyFile} holds no usable private key (${(e as Error).message}): expected the unencrypted PEM private key of ${files.certFile}`);
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new TlsFileError('keyFile', `${files.keyFile} is not the key of ${files.certFile} (subject ${leaf.subject.replace(/\n/g, ', ')}): `
      + 'expected the private key the certificate was issued for — were the two rotated separately?');
  }
  const from = Date.parse(iso(leaf.validFrom));
  const to = Date.parse(iso(leaf.validTo));
  if (now < from) {
    throw new TlsFileError('certFile', `${files.certFile} is not valid yet: valid from ${iso(leaf.validFrom)} to ${iso(leaf.validTo)} `
      + '— is this host\'s clock right, or was the certificate issued for later?');
  }
  if (now > to) {
    throw new TlsFileError('certFile', `${files.certFile} has expired: valid from ${iso(leaf.validFrom)} to ${iso(leaf.validTo)} — renew it, then reload (SIGHUP)`);
  }
  let clientCA: Buffer | undefined;
  if (files.clientCAFile !== undefined) {
    clientCA = read('clientCAFile', files.clientCAFile, 'the PEM certificate(s) of the CA(s) that sign client certificates');
    certificates('clientCAFile', files.clientCAFile, clientCA, 'the PEM certificate(s) of the CA(s) that sign client certificates');
  }
  return { files, cert, key: keyPem, clientCA, leaf };
}

/** The part of a server's TLS options a reload may change (`setSecureContext`). */
export function secureContext(m: TlsMaterial): SecureContextOptions {
  return { cert: m.cert, key: m.key, ...(m.clientCA ? { ca: m.clientCA } : {}), minVersion: 'TLSv1.2' };
}

/** A server's TLS options: with a client CA, a client certificate it signed is required (mutual TLS). */
export function serverTlsOptions(m: TlsMaterial): TlsOptions {
  return { ...secureContext(m), requestCert: m.clientCA !== undefined, rejectUnauthorized: m.clientCA !== undefined };
}

/** One line for the log: what a listener presents. */
export function describeTls(m: TlsMaterial): string {
  return `TLS with ${m.files.certFile} (${m.leaf.subject.replace(/\n/g, ', ')}, valid to ${iso(m.leaf.validTo)})`
    + (m.files.clientCAFile ? `, client certificates from ${m.files.clientCAFile} required` : '');
}

/**
 * What a reload can apply to a running listener: new files, or new contents of the same files (rotation). Turning
 * TLS on or off, or mutual TLS on or off, changes how connections are accepted and needs a restart.
 */
export function reloadableTls(before: TlsFiles | undefined, after: TlsFiles | undefined): boolean {
  return (before === undefined) === (after === undefined) && (before?.clientCAFile === undefined) === (after?.clientCAFile === undefined);
}

/**
 * An HTTP server, or with `tls` an HTTPS one with the same handler: one place where a listener becomes TLS.
 * `onRefused` hears of every handshake that fails (plain HTTP to the TLS port, a missing or foreign client
 * certificate); such a connection never becomes a request.
 */
export function httpServer(tls: TlsMaterial | undefined, options: http.ServerOptions, handler: http.RequestListener,
  onRefused?: (peer: string, e: Error) => void): http.Server | https.Server {
  if (!tls) return http.createServer(options, handler);
  const server = https.createServer({ ...options, ...serverTlsOptions(tls), handshakeTimeout: 10_000 }, handler);
  server.on('tlsClientError', (e: Error, socket) => onRefused?.(socket.remoteAddress ?? '(unknown peer)', e));
  return server;
}

/** Stops listening and ends every connection (keep-alive ones included), resolving once the server closed. */
export function closeServer(server: http.Server | https.Server | undefined): Promise<void> {
  if (!server) return Promise.resolve();
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** On reload: new connections get the new certificate, key and client CA; open ones keep theirs. */
export function renewTls(server: http.Server | https.Server | undefined, tls: TlsMaterial): void {
  if (server && 'setSecureContext' in server) server.setSecureContext(secureContext(tls));
}
