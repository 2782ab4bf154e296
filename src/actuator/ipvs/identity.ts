// Names of IPVS services and destinations, shared by config, alerts, status and the actuator.
//
// Canonical service forms:      tcp/10.99.0.1:80   udp/[fd00::1]:53   sctp/10.0.0.1:3868   fwmark/7   fwmark6/7
// Canonical destination forms:  10.200.0.2:80      [fd00::2]:80
// Addresses are canonicalized (RFC 5952 for IPv6), so equal identities have equal strings. A firewall-mark service
// also has an address family (ipvsadm -f 7 -6); "fwmark6" names the IPv6 one.
import { IpFamily, formatIp, parseIp } from './address';

/**
 * The protocols IPVS schedules. The kernel also accepts services with any other IP protocol number (useless, but
 * ipvsadm lists them as "--xxx-service"); such a service someone else made is named ipproto<N> so that listing the
 * table never fails on it.
 */
export type KnownProtocol = 'tcp' | 'udp' | 'sctp';
export type Protocol = KnownProtocol | `ipproto${number}`;
export const PROTOCOLS: Readonly<Record<KnownProtocol, number>> = { tcp: 6, udp: 17, sctp: 132 };

/** IP protocol number of a protocol name, or undefined if the name is not one. */
export function protocolNumber(p: string): number | undefined {
  if (p in PROTOCOLS) return PROTOCOLS[p as KnownProtocol];
  const m = /^ipproto([0-9]{1,3})$/.exec(p);
  return m && Number(m[1]) <= 255 ? Number(m[1]) : undefined;
}

export function protocolName(n: number): Protocol {
  const known = (Object.keys(PROTOCOLS) as KnownProtocol[]).find((k) => PROTOCOLS[k] === n);
  return known ?? `ipproto${n}`;
}

export interface AddressServiceId {
  readonly kind: 'address';
  readonly protocol: Protocol;
  readonly family: IpFamily;
  readonly address: string;
  readonly port: number;
}

export interface FwmarkServiceId {
  readonly kind: 'fwmark';
  readonly family: IpFamily;
  readonly fwmark: number;
}

export type ServiceId = AddressServiceId | FwmarkServiceId;

export interface DestinationId {
  readonly family: IpFamily;
  readonly address: string;
  readonly port: number;
}

/** A service or destination given either as an identity or as its string form. */
export type ServiceRef = ServiceId | string;
export type DestinationRef = DestinationId | string;

export class IdentityError extends Error {
  override readonly name = 'IdentityError';
  readonly code = 'EINVAL';
}

const SERVICE_FORMS = 'expected tcp|udp|sctp/<address>:<port> (tcp/10.99.0.1:80, tcp/[fd00::1]:80) or fwmark/<mark>';
const DEST_FORMS = 'expected <address>:<port> (10.200.0.2:80, [fd00::2]:80)';

function hostPort(text: string, fail: (why: string) => never): { family: IpFamily; address: string; port: number } {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') fail('a bracketed IPv6 address must be followed by :<port>');
    host = text.slice(1, close);
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) fail('missing :<port>');
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) fail(`IPv6 addresses need brackets, as in [${host}]:${portText}`);
  }
  const ip = parseIp(host);
  if (ip === undefined) fail(`"${host}" is not an IPv4 or IPv6 address`);
  if (text.startsWith('[') && ip.family === 4) fail('brackets are for IPv6 addresses only');
  return { family: ip.family, address: formatIp(ip), port: parsePort(portText, fail) };
}

function parsePort(text: string, fail: (why: string) => never): number {
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) > 65535) fail(`port "${text}" is not a number 0-65535`);
  return Number(text);
}

export function parseService(text: string): ServiceId {
  const fail: (why: string) => never = (why) => {
    throw new IdentityError(`parsing IPVS service "${text}": ${why} — ${SERVICE_FORMS}`);
  };
  const slash = text.indexOf('/');
  if (slash < 0) fail('missing "<protocol>/"');
  const scheme = text.slice(0, slash).toLowerCase();
  const rest = text.slice(slash + 1);
  if (scheme === 'fwmark' || scheme === 'fwmark6') {
    if (!/^[0-9]{1,10}$/.test(rest) || Number(rest) < 1 || Number(rest) > 0xffffffff) {
      fail(`firewall mark "${rest}" is not a number 1-4294967295`);
    }
    return { kind: 'fwmark', family: scheme === 'fwmark' ? 4 : 6, fwmark: Number(rest) };
  }
  const proto = protocolNumber(scheme);
  if (proto === undefined) fail(`unknown protocol "${scheme}"`);
  return { kind: 'address', protocol: protocolName(proto), ...hostPort(rest, fail) };
}

export function parseDestination(text: string): DestinationId {
  return hostPort(text, (why: string): never => {
    throw new IdentityError(`parsing IPVS destination "${text}": ${why} — ${DEST_FORMS}`);
  });
}

function bracket(family: IpFamily, address: string): string {
  return family === 6 ? `[${address}]` : address;
}

/** The canonical string form (see the top of this file). */
export function serviceKey(s: ServiceId): string {
  if (s.kind === 'fwmark') return `${s.family === 4 ? 'fwmark' : 'fwmark6'}/${s.fwmark}`;
  return `${s.protocol}/${bracket(s.family, s.address)}:${s.port}`;
}

export function destinationKey(d: DestinationId): string {
  return `${bracket(d.family, d.address)}:${d.port}`;
}

/** The way ipvsadm -Ln prints it, for messages read by operators: "TCP 10.99.0.1:80", "FWM 7", "FWM 7 IPv6". */
export function describeService(s: ServiceId): string {
  if (s.kind === 'fwmark') return `FWM ${s.fwmark}${s.family === 6 ? ' IPv6' : ''}`;
  return `${s.protocol.toUpperCase()} ${bracket(s.family, s.address)}:${s.port}`;
}

/**
 * Validates and canonicalizes an identity given in either form. Objects built by hand are checked field by field
 * (the family must match the address), so a typo fails here rather than as EINVAL from the kernel.
 */
export function toServiceId(ref: ServiceRef): ServiceId {
  if (typeof ref === 'string') return parseService(ref);
  if (ref.kind === 'fwmark') {
    const ok = Number.isInteger(ref.fwmark) && ref.fwmark >= 1 && ref.fwmark <= 0xffffffff;
    if (!ok || (ref.family !== 4 && ref.family !== 6)) {
      throw new IdentityError(`invalid IPVS service ${JSON.stringify(ref)}: ${SERVICE_FORMS}`);
    }
    return { kind: 'fwmark', family: ref.family, fwmark: ref.fwmark };
  }
  const proto = protocolNumber(ref.protocol);
  if (proto === undefined) {
    throw new IdentityError(`invalid IPVS service ${JSON.stringify(ref)}: unknown protocol — ${SERVICE_FORMS}`);
  }
  return { kind: 'address', protocol: protocolName(proto), ...checkedHost(ref, 'service') };
}

export function toDestinationId(ref: DestinationRef): DestinationId {
  return typeof ref === 'string' ? parseDestination(ref) : checkedHost(ref, 'destination');
}

function checkedHost(h: DestinationId, what: string): DestinationId {
  const bad: (why: string) => never = (why) => {
    throw new IdentityError(`invalid IPVS ${what} ${JSON.stringify(h)}: ${why}`);
  };
  const ip = parseIp(h.address);
  if (ip === undefined) bad(`"${h.address}" is not an IPv4 or IPv6 address`);
  if (h.family !== ip.family) bad(`family ${h.family} does not match address ${h.address}`);
  if (!Number.isInteger(h.port) || h.port < 0 || h.port > 65535) bad(`port ${h.port} is not a number 0-65535`);
  return { family: ip.family, address: formatIp(ip), port: h.port };
}

export function sameService(a: ServiceRef, b: ServiceRef): boolean {
  return serviceKey(toServiceId(a)) === serviceKey(toServiceId(b));
}

export function sameDestination(a: DestinationRef, b: DestinationRef): boolean {
  return destinationKey(toDestinationId(a)) === destinationKey(toDestinationId(b));
}
