// The restore probe for UDP destinations (issue 13). UDP has no handshake, so "is it back?" needs the service to say
// something, or at least the host not to refuse. Three kinds, strongest first:
//
//   dns      a DNS query (type A, RD, random id) for a name; any well-formed response to it counts, whatever the
//            RCODE: NXDOMAIN, REFUSED or SERVFAIL come from a server that is alive (dns-message.ts).
//   payload  send these bytes; a reply datagram counts (one containing `expect`, if given).
//   silence  send one empty datagram; success is *no* ICMP error within the timeout. The weakest: a host that is
//            down, a firewall that drops, a lost datagram or a rate-limited ICMP error all look like success. It only
//            tells "port closed" (the host answers ICMP port unreachable) from "maybe open". It costs the whole
//            timeout on success, and the timeout must exceed the round trip for a refusal to be seen.
//
// Config form (parseUdpProbeSpec), one of:
//   { dns: example.org }                          a host name; trailing dot allowed; IDN in xn-- form
//   { payload: <bytes>, expect: <bytes> }         expect optional
//   { silence: true }
// where <bytes> is text (sent as UTF-8, as written: YAML's "\n" escapes work in double quotes) or "hex:" followed by
// pairs of hex digits, spaces allowed ("hex:ff ff 00 01"). At most 1232 bytes (below).
//
// How ICMP errors reach us (measured on Linux 6.18, Node 20.20): only a *connected* UDP socket is told. The kernel
// queues the error from an ICMP destination unreachable on the socket (sk_err); libuv's next recvmsg() fails with it,
// and Node emits 'error' on the socket (code ECONNREFUSED, syscall 'recvmsg') — not the send callback, which reports
// success. On loopback a refused probe settles 0.03-0.05 ms after it starts (median of 50, IPv4 and IPv6; the first,
// cold, took up to 8 ms). An unconnected socket sending the same datagram with send(port, address) hears nothing:
// Linux tells unconnected UDP sockets of ICMP errors only with IP_RECVERR. Errors of connect() itself come to its
// callback (measured: EACCES for a broadcast address, EINVAL for an IPv4 address on a udp6 socket; no route would be
// ENETUNREACH there). A connected socket also receives only from the destination's address and port.
// Hosts rate-limit the ICMP errors they send (Linux: net.ipv4.icmp_ratelimit, icmp_msgs_per_sec,
// net.ipv6.icmp.ratelimit), so a refused port may answer one probe with an error and the next with nothing: dns and
// payload still fail then, silence does not.
import * as dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import type { DestinationId } from './ipvs/identity';
import { checkDnsResponse, dnsNameLabels, encodeDnsQuery } from './dns-message';

export type UdpProbeSpec =
  | { kind: 'dns'; name: string }
  | { kind: 'payload'; send: Buffer; expect?: Buffer }
  | { kind: 'silence' };

export interface UdpProbeResult {
  ok: boolean;
  /** for logs: what was seen and how long it took */
  reason: string;
}

/**
 * Largest payload or expect: 1280 (IPv6 minimum MTU) - 40 (IPv6 header) - 8 (UDP header), the size DNS Flag Day 2020
 * settled on, so a probe is never fragmented and a fragment lost on the way cannot fail it.
 */
export const MAX_UDP_PROBE_BYTES = 1232;

/** ICMP errors as the socket reports them. Other codes are reported by name. */
const SOCKET_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'ICMP port unreachable (ECONNREFUSED)',
  EHOSTUNREACH: 'ICMP host unreachable or administratively prohibited (EHOSTUNREACH)',
  ENETUNREACH: 'network unreachable (ENETUNREACH)',
};

/**
 * Probes `dest` once. Resolves (never rejects) within about `timeoutMs` with ok and the reason; the socket and the
 * timer are gone by then. The first datagram back decides: a connected socket only hears the destination, so one
 * that answers garbage is broken, not someone else. Rejects only for arguments no probe can use: a timeout that is
 * not a positive number, a DNS name that is not a host name.
 */
export function udpProbe(dest: DestinationId, spec: UdpProbeSpec, timeoutMs: number): Promise<UdpProbeResult> {
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    return Promise.reject(new RangeError(`UDP probe timeout ${timeoutMs} ms: expected a positive number of milliseconds`));
  }
  let query: Buffer | undefined;
  try {
    if (spec.kind === 'dns') query = encodeDnsQuery(spec.name, randomInt(0x10000));
  } catch (e) {
    return Promise.reject(e); // a name parseUdpProbeSpec would have refused
  }
  const datagram = query ?? (spec.kind === 'payload' ? spec.send : Buffer.alloc(0));
  return new Promise((resolve) => {
    const started = performance.now();
    const elapsed = () => formatMs(performance.now() - started);
    const socket = dgram.createSocket(dest.family === 6 ? 'udp6' : 'udp4');
    let settled = false;
    const finish = (ok: boolean, reason: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // The 'error' listener stays, so that nothing emitted while closing goes unhandled. (Node's 'close' event
      // comes on the next tick, libuv frees the handle at the end of this loop turn: waiting buys the caller nothing.)
      socket.close();
      resolve({ ok, reason });
    };
    const failed = (e: NodeJS.ErrnoException) => {
      const code = e.code ?? e.message;
      finish(false, `${SOCKET_ERRORS[code] ?? `${e.syscall ?? 'socket'} failed: ${code}`} after ${elapsed()}`);
    };
    const timer = setTimeout(() => {
      if (spec.kind === 'silence') finish(true, `no ICMP error within ${timeoutMs} ms (silence: the weakest evidence)`);
      else finish(false, `no answer within ${timeoutMs} ms`);
    }, timeoutMs);

    socket.on('error', failed);
    socket.on('message', (msg: Buffer) => {
      if (query) {
        const r = checkDnsResponse(msg, query);
        if (!r.ok) finish(false, `not an answer to our DNS query: ${r.why}`);
        else finish(true, `answered in ${elapsed()} (${r.rcode}${r.truncated ? ', truncated' : ''})`);
      } else if (spec.kind === 'payload' && spec.expect && !msg.includes(spec.expect)) {
        finish(false, `reply without the expected bytes (${msg.length} bytes in ${elapsed()})`);
      } else {
        finish(true, `answered in ${elapsed()} (${msg.length} bytes)`);
      }
    });
    try {
      socket.connect(dest.port, dest.address, (err?: Error) => {
        if (err) return failed(err);
        if (settled) return;
        socket.send(datagram, (e) => { if (e) failed(e); });
      });
    } catch (e) {
      // connect() throws synchronously for a port it will not try (0): a destination we cannot probe.
      failed(e as NodeJS.ErrnoException);
    }
  });
}

function formatMs(ms: number): string {
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

const FORMS = '{dns: <host name>}, {payload: <bytes>, expect?: <bytes>} or {silence: true}, where <bytes> is text or hex:<pairs of hex digits>';

/** The config form (see the top of this file) as a spec; throws an Error saying what is wrong and what was expected. */
export function parseUdpProbeSpec(raw: unknown): UdpProbeSpec {
  const bad = (why: string): never => { throw new Error(`UDP probe ${why}: expected ${FORMS}`); };
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return bad(`is ${describe(raw)}`);
  const o = raw as Record<string, unknown>;
  const keys = Object.keys(o);
  const unknown = keys.filter((k) => !['dns', 'payload', 'expect', 'silence'].includes(k));
  if (unknown.length) return bad(`has unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}`);
  const kinds = keys.filter((k) => k !== 'expect');
  if (kinds.length !== 1) return bad(kinds.length ? `has ${kinds.map((k) => `"${k}"`).join(' and ')}, only one may be given` : 'names no kind');
  if ('expect' in o && kinds[0] !== 'payload') return bad('has "expect" without "payload"');

  if (kinds[0] === 'dns') {
    if (typeof o.dns !== 'string') return bad(`dns is ${describe(o.dns)}, not a host name`);
    const labels = dnsNameLabels(o.dns);
    if (typeof labels === 'string') return bad(`dns name "${o.dns}" ${labels}`);
    return { kind: 'dns', name: o.dns };
  }
  if (kinds[0] === 'silence') {
    if (o.silence !== true) return bad(`silence is ${describe(o.silence)}, only true means anything`);
    return { kind: 'silence' };
  }
  const send = parseBytes(o.payload, 'payload', bad);
  if (!('expect' in o)) return { kind: 'payload', send };
  const expect = parseBytes(o.expect, 'expect', bad);
  if (expect.length === 0) return bad('expect is empty (every reply would contain it; leave expect out instead)');
  return { kind: 'payload', send, expect };
}

/** Text as UTF-8, or hex:<pairs of hex digits> with spaces allowed between them. */
function parseBytes(v: unknown, key: string, bad: (why: string) => never): Buffer {
  if (typeof v !== 'string') return bad(`${key} is ${describe(v)}, not a string`);
  let b: Buffer;
  if (v.startsWith('hex:')) {
    const digits = v.slice(4).replace(/ /g, '');
    if (!/^([0-9A-Fa-f]{2})*$/.test(digits)) return bad(`${key} "${clip(v)}" is not hex: followed by pairs of hex digits`);
    b = Buffer.from(digits, 'hex');
  } else {
    b = Buffer.from(v, 'utf8');
  }
  if (b.length > MAX_UDP_PROBE_BYTES) return bad(`${key} is ${b.length} bytes (at most ${MAX_UDP_PROBE_BYTES}, so it is never fragmented)`);
  return b;
}

function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return `the string "${clip(v)}"`;
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}

function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}
