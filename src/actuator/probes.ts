// The restore probe: one direct check of a quarantined destination (not through the virtual service), by its
// service's protocol — a TCP connect, or for UDP the service's configured probe (udp-probe.ts: a DNS query, a
// payload and its reply, or no ICMP error). Recovery (recovery.ts) calls it every probeInterval after the hold.
import * as net from 'node:net';
import type { ServiceConfig } from '../config/config';
import type { DestinationId } from './ipvs/identity';
import { udpProbe } from './udp-probe';

/** Probes one destination of `service`; true when it answered. Never rejects. */
export function probeDestination(dest: DestinationId, timeoutMs: number, service: Pick<ServiceConfig, 'protocol' | 'probe'>): Promise<boolean> {
  if (service.protocol === 'udp') {
    // config.ts requires a probe for a UDP service that probes before restoring; without one the weakest stands in.
    return udpProbe(dest, service.probe ?? { kind: 'silence' }, timeoutMs).then((r) => r.ok, () => false);
  }
  return tcpProbe(dest, timeoutMs);
}

/**
 * Connects straight to the destination (not through the virtual service) and closes with an RST, not a FIN.
 *
 * Why the RST: a FIN close leaves this host a TIME_WAIT socket for 60 s on (local port P, destination). A client on
 * this host connecting to the virtual service may pick the same P (its own 4-tuple, with the VIP, is free), and
 * IPVS (NAT) may schedule it onto the probed destination: on the wire that is the TIME_WAIT's 4-tuple. TCP early
 * demux (ip_rcv_finish(), before IPVS translates the SYN-ACK's source back to the VIP at LOCAL_IN) hands the
 * SYN-ACK to the TIME_WAIT socket, which answers with an old ACK; the destination resets, the connect's SYN-ACK
 * is lost, and its retransmit ends in a 1 s delay or ECONNRESET. Seen in the lab on Debian 6.1 (benchmark of
 * 2026-12-06, and test/lab/probe.test.ts); keepalived's TCP_CHECK leaves the same TIME_WAITs.
 */
export function tcpProbe(dest: DestinationId, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: dest.address, port: dest.port, timeout: timeoutMs });
    const done = (ok: boolean) => { s.destroy(); resolve(ok); };
    s.once('connect', () => { s.resetAndDestroy(); resolve(true); });
    s.once('timeout', () => done(false));
    s.once('error', () => done(false));
  });
}
