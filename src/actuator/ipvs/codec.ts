// IPVS attribute encoding and decoding (pure). Formats follow the kernel's ip_vs_genl_parse_service/_dest and
// ip_vs_genl_fill_service/_dest (net/netfilter/ipvs/ip_vs_ctl.c):
//  - addresses are 16-byte union nf_inet_addr, ports __be16, everything else host order;
//  - IPVS_SVC_ATTR_FLAGS is struct ip_vs_flags { flags, mask }: the kernel applies only the bits in mask;
//  - IPVS_SVC_ATTR_NETMASK is an IPv4 mask in network order, but an IPv6 *prefix length* as a plain u32;
//  - NEW/SET_SERVICE need sched_name, flags, timeout and netmask; NEW/SET_DEST need fwd_method, weight and both
//    thresholds. SET_* replaces all of them (and the tunnel fields), so an edit must resend what it keeps.
import { IpFamily, formatIPv4, fromInetAddr, formatIp, ipv4Mask, parseIPv4, parseIp, toInetAddr } from './address';
import {
  AF_INET,
  AF_INET6,
  IPVS_CMD_ATTR,
  IPVS_DEST_ATTR,
  IPVS_INFO_ATTR,
  IPVS_STATS_ATTR,
  IPVS_SVC_ATTR,
  IP_VS_CONN_F,
  IP_VS_PENAME_MAXLEN,
  IP_VS_SCHEDNAME_MAXLEN,
  IP_VS_SVC_F,
  IP_VS_TUNNEL_TYPE,
} from './constants';
import { DestinationId, ServiceId, destinationKey, protocolName, protocolNumber, serviceKey } from './identity';
import {
  Destination,
  DestinationOptions,
  ForwardMethod,
  IpvsInfo,
  IpvsStats,
  IpvsTimeouts,
  Service,
  ServiceOptions,
  TunnelType,
} from './types';
import { Attrs, NetlinkDecodeError, attr, nla, readU32, readU64, u32Bytes } from './netlink';

const FORWARD: Record<ForwardMethod, number> = {
  nat: IP_VS_CONN_F.MASQ,
  local: IP_VS_CONN_F.LOCALNODE,
  tunnel: IP_VS_CONN_F.TUNNEL,
  dr: IP_VS_CONN_F.DROUTE,
  bypass: IP_VS_CONN_F.BYPASS,
};
const TUNNEL: Record<TunnelType, number> = {
  ipip: IP_VS_TUNNEL_TYPE.IPIP,
  gue: IP_VS_TUNNEL_TYPE.GUE,
  gre: IP_VS_TUNNEL_TYPE.GRE,
};

// ---- encoding -----------------------------------------------------------------------------------------------------

const afOf = (f: IpFamily): number => (f === 4 ? AF_INET : AF_INET6);

function checkUint(what: string, v: number, max: number): number {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${what} ${v} is not an integer 0-${max}`);
  return v;
}

function checkName(what: string, name: string, maxLen: number): string {
  if (!/^[a-z0-9_]+$/.test(name) || name.length >= maxLen) {
    throw new RangeError(`${what} "${name}" must be 1-${maxLen - 1} characters of a-z, 0-9, _`);
  }
  return name;
}

function serviceIdAttrs(id: ServiceId): Buffer[] {
  if (id.kind === 'fwmark')
    return [nla.u16(IPVS_SVC_ATTR.AF, afOf(id.family)), nla.u32(IPVS_SVC_ATTR.FWMARK, id.fwmark)];
  const ip = parseIp(id.address);
  if (ip === undefined || ip.family !== id.family)
    throw new RangeError(`service address ${id.address} is not IPv${id.family}`);
  const proto = protocolNumber(id.protocol);
  if (proto === undefined) throw new RangeError(`protocol "${id.protocol}" is not tcp, udp, sctp or ipproto<N>`);
  return [
    nla.u16(IPVS_SVC_ATTR.AF, afOf(id.family)),
    nla.u16(IPVS_SVC_ATTR.PROTOCOL, proto),
    nla.binary(IPVS_SVC_ATTR.ADDR, toInetAddr(ip)),
    nla.be16(IPVS_SVC_ATTR.PORT, id.port),
  ];
}

function netmaskAttr(family: IpFamily, netmask: string): Buffer {
  if (family === 4) {
    const mask =
      parseIPv4(netmask) ??
      (/^[0-9]{1,2}$/.test(netmask) && Number(netmask) <= 32 ? ipv4Mask(Number(netmask)) : undefined);
    if (mask === undefined)
      throw new RangeError(`netmask "${netmask}" is not an IPv4 mask (255.255.255.0) or prefix length 0-32`);
    return nla.binary(IPVS_SVC_ATTR.NETMASK, mask);
  }
  if (!/^[0-9]{1,3}$/.test(netmask) || Number(netmask) < 1 || Number(netmask) > 128) {
    throw new RangeError(`netmask "${netmask}" is not an IPv6 prefix length 1-128`);
  }
  return nla.u32(IPVS_SVC_ATTR.NETMASK, Number(netmask));
}

function serviceOptionAttrs(family: IpFamily, o: Partial<ServiceOptions>): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  if (o.scheduler !== undefined)
    m.set(
      IPVS_SVC_ATTR.SCHED_NAME,
      nla.string(IPVS_SVC_ATTR.SCHED_NAME, checkName('scheduler', o.scheduler, IP_VS_SCHEDNAME_MAXLEN)),
    );
  if (o.persistenceEngine !== undefined)
    m.set(
      IPVS_SVC_ATTR.PE_NAME,
      nla.string(IPVS_SVC_ATTR.PE_NAME, checkName('persistence engine', o.persistenceEngine, IP_VS_PENAME_MAXLEN)),
    );
  if (o.flags !== undefined) {
    // A set HASHED bit on NEW_SERVICE makes the kernel skip hashing the service (ip_vs_svc_hash: "request for
    // already hashed"), leaving it unreachable; it is the kernel's bookkeeping, so it is always cleared here.
    // The mask says which bits to apply: all of them, so the result is exactly `flags`.
    const flags = checkUint('service flags', o.flags, 0xffffffff) & ~IP_VS_SVC_F.HASHED;
    m.set(IPVS_SVC_ATTR.FLAGS, nla.binary(IPVS_SVC_ATTR.FLAGS, Buffer.concat([u32Bytes(flags), u32Bytes(0xffffffff)])));
  }
  if (o.timeout !== undefined)
    m.set(
      IPVS_SVC_ATTR.TIMEOUT,
      nla.u32(IPVS_SVC_ATTR.TIMEOUT, checkUint('persistence timeout', o.timeout, 0xffffffff)),
    );
  if (o.netmask !== undefined) m.set(IPVS_SVC_ATTR.NETMASK, netmaskAttr(family, o.netmask));
  return m;
}

/** IPVS_CMD_ATTR_SERVICE: identifying fields only (GET, DEL, and the service of every destination command). */
export function encodeServiceId(id: ServiceId): Buffer {
  return nla.nested(IPVS_CMD_ATTR.SERVICE, serviceIdAttrs(id));
}

/** IPVS_CMD_ATTR_SERVICE for NEW_SERVICE: identity plus every option the kernel requires. */
export function encodeNewService(id: ServiceId, o: ServiceOptions): Buffer {
  return nla.nested(IPVS_CMD_ATTR.SERVICE, [...serviceIdAttrs(id), ...serviceOptionAttrs(id.family, o).values()]);
}

/**
 * IPVS_CMD_ATTR_SERVICE for SET_SERVICE: the service's current attributes as the kernel listed them, with `changes`
 * applied. Resending what we were given keeps what we do not model (and the persistence engine, which an edit
 * without PE_NAME would drop). Statistics are read-only and left out.
 */
export function encodeEditedService(current: Attrs, family: IpFamily, changes: Partial<ServiceOptions>): Buffer {
  const out = new Map<number, Buffer>();
  for (const [t, data] of current.entries()) {
    if (t !== IPVS_SVC_ATTR.STATS && t !== IPVS_SVC_ATTR.STATS64) out.set(t, attr(t, data));
  }
  const flags = current.raw(IPVS_SVC_ATTR.FLAGS);
  const keep: Partial<ServiceOptions> = flags && flags.length >= 4 ? { flags: readU32(flags, 0) } : {};
  for (const [t, a] of serviceOptionAttrs(family, { ...keep, ...changes })) out.set(t, a);
  return nla.nested(IPVS_CMD_ATTR.SERVICE, [...out.values()]);
}

function destIdAttrs(d: DestinationId): Buffer[] {
  const ip = parseIp(d.address);
  if (ip === undefined || ip.family !== d.family)
    throw new RangeError(`destination address ${d.address} is not IPv${d.family}`);
  return [
    nla.binary(IPVS_DEST_ATTR.ADDR, toInetAddr(ip)),
    nla.be16(IPVS_DEST_ATTR.PORT, d.port),
    // Without it the kernel assumes the service's family; sending it makes mixed-family tunnels possible (4.3+).
    nla.u16(IPVS_DEST_ATTR.ADDR_FAMILY, afOf(d.family)),
  ];
}

function destOptionAttrs(o: Partial<DestinationOptions>): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  if (o.forward !== undefined) {
    if (!(o.forward in FORWARD))
      throw new RangeError(`forwarding method "${o.forward}" is not one of ${Object.keys(FORWARD).join(', ')}`);
    m.set(IPVS_DEST_ATTR.FWD_METHOD, nla.u32(IPVS_DEST_ATTR.FWD_METHOD, FORWARD[o.forward]));
  }
  // The kernel keeps the weight in an int and refuses negatives with ERANGE.
  if (o.weight !== undefined)
    m.set(IPVS_DEST_ATTR.WEIGHT, nla.u32(IPVS_DEST_ATTR.WEIGHT, checkUint('weight', o.weight, 0x7fffffff)));
  if (o.upperThreshold !== undefined)
    m.set(
      IPVS_DEST_ATTR.U_THRESH,
      nla.u32(IPVS_DEST_ATTR.U_THRESH, checkUint('upper threshold', o.upperThreshold, 0xffffffff)),
    );
  if (o.lowerThreshold !== undefined)
    m.set(
      IPVS_DEST_ATTR.L_THRESH,
      nla.u32(IPVS_DEST_ATTR.L_THRESH, checkUint('lower threshold', o.lowerThreshold, 0xffffffff)),
    );
  if (o.tunnel !== undefined) {
    if (!(o.tunnel.type in TUNNEL))
      throw new RangeError(`tunnel type "${o.tunnel.type}" is not one of ${Object.keys(TUNNEL).join(', ')}`);
    m.set(IPVS_DEST_ATTR.TUN_TYPE, nla.u8(IPVS_DEST_ATTR.TUN_TYPE, TUNNEL[o.tunnel.type]));
    m.set(IPVS_DEST_ATTR.TUN_PORT, nla.be16(IPVS_DEST_ATTR.TUN_PORT, checkUint('tunnel port', o.tunnel.port, 0xffff)));
    m.set(
      IPVS_DEST_ATTR.TUN_FLAGS,
      nla.u16(IPVS_DEST_ATTR.TUN_FLAGS, checkUint('tunnel flags', o.tunnel.flags, 0xffff)),
    );
  }
  return m;
}

/** IPVS_CMD_ATTR_DEST: identifying fields only (DEL_DEST). */
export function encodeDestinationId(d: DestinationId): Buffer {
  return nla.nested(IPVS_CMD_ATTR.DEST, destIdAttrs(d));
}

/** IPVS_CMD_ATTR_DEST for NEW_DEST: identity plus every option the kernel requires. */
export function encodeNewDestination(d: DestinationId, o: DestinationOptions): Buffer {
  return nla.nested(IPVS_CMD_ATTR.DEST, [...destIdAttrs(d), ...destOptionAttrs(o).values()]);
}

const DEST_READ_ONLY: ReadonlySet<number> = new Set([
  IPVS_DEST_ATTR.ACTIVE_CONNS,
  IPVS_DEST_ATTR.INACT_CONNS,
  IPVS_DEST_ATTR.PERSIST_CONNS,
  IPVS_DEST_ATTR.STATS,
  IPVS_DEST_ATTR.STATS64,
]);

/**
 * IPVS_CMD_ATTR_DEST for SET_DEST: the destination's current attributes as listed, with `changes` applied. SET_DEST
 * overwrites forwarding method, thresholds and tunnel settings with whatever it is sent (absent tunnel fields become
 * 0), so changing only the weight must send all the others back exactly as the kernel reported them.
 */
export function encodeEditedDestination(current: Attrs, changes: Partial<DestinationOptions>): Buffer {
  const out = new Map<number, Buffer>();
  for (const [t, data] of current.entries()) if (!DEST_READ_ONLY.has(t)) out.set(t, attr(t, data));
  for (const [t, a] of destOptionAttrs(changes)) out.set(t, a);
  return nla.nested(IPVS_CMD_ATTR.DEST, [...out.values()]);
}

export function encodeTimeouts(t: Partial<IpvsTimeouts>): Buffer[] {
  const out: Buffer[] = [];
  if (t.tcp !== undefined) out.push(nla.u32(IPVS_CMD_ATTR.TIMEOUT_TCP, checkUint('tcp timeout', t.tcp, 0x7fffffff)));
  if (t.tcpFin !== undefined)
    out.push(nla.u32(IPVS_CMD_ATTR.TIMEOUT_TCP_FIN, checkUint('tcpfin timeout', t.tcpFin, 0x7fffffff)));
  if (t.udp !== undefined) out.push(nla.u32(IPVS_CMD_ATTR.TIMEOUT_UDP, checkUint('udp timeout', t.udp, 0x7fffffff)));
  return out;
}

// ---- decoding -----------------------------------------------------------------------------------------------------

function need<T>(v: T | undefined, a: Attrs, field: string): T {
  if (v === undefined) throw new NetlinkDecodeError(`decoding ${a.what}: missing ${field}`);
  return v;
}

function familyOf(af: number, a: Attrs): IpFamily {
  if (af === AF_INET) return 4;
  if (af === AF_INET6) return 6;
  throw new NetlinkDecodeError(`decoding ${a.what}: unknown address family ${af}`);
}

/** Counters are u32 in IPVS_*_ATTR_STATS (except bytes) and u64 in STATS64: read by size. */
function counter(a: Attrs, type: number): number {
  const b = a.raw(type);
  if (b === undefined) return 0;
  if (b.length === 4) return readU32(b, 0);
  if (b.length === 8) return Number(readU64(b, 0));
  throw new NetlinkDecodeError(`decoding ${a.what}: counter ${type} has ${b.length} bytes`);
}

function decodeStats(parent: Attrs, type64: number, type32: number): IpvsStats | undefined {
  const s = parent.nested(type64, 'stats64') ?? parent.nested(type32, 'stats');
  if (s === undefined) return undefined;
  const S = IPVS_STATS_ATTR;
  return {
    conns: counter(s, S.CONNS),
    inPackets: counter(s, S.INPKTS),
    outPackets: counter(s, S.OUTPKTS),
    inBytes: counter(s, S.INBYTES),
    outBytes: counter(s, S.OUTBYTES),
    cps: counter(s, S.CPS),
    inPps: counter(s, S.INPPS),
    outPps: counter(s, S.OUTPPS),
    inBps: counter(s, S.INBPS),
    outBps: counter(s, S.OUTBPS),
  };
}

/** The attributes inside one IPVS_CMD_ATTR_SERVICE. */
export function decodeService(a: Attrs): Service {
  const A = IPVS_SVC_ATTR;
  const family = familyOf(need(a.u16(A.AF), a, 'address family'), a);
  const fwmark = a.u32(A.FWMARK) ?? 0;
  const id: ServiceId =
    fwmark !== 0
      ? { kind: 'fwmark', family, fwmark }
      : {
          kind: 'address',
          protocol: protocolName(need(a.u16(A.PROTOCOL), a, 'protocol')),
          family,
          address: formatIp(fromInetAddr(family, need(a.raw(A.ADDR), a, 'address'))),
          port: need(a.be16(A.PORT), a, 'port'),
        };
  const flags = need(a.raw(A.FLAGS), a, 'flags');
  if (flags.length < 4) throw new NetlinkDecodeError(`decoding ${a.what}: flags has ${flags.length} bytes`);
  const netmask = need(a.raw(A.NETMASK), a, 'netmask');
  if (netmask.length !== 4) throw new NetlinkDecodeError(`decoding ${a.what}: netmask has ${netmask.length} bytes`);
  const pe = a.string(A.PE_NAME);
  return {
    id,
    key: serviceKey(id),
    scheduler: need(a.string(A.SCHED_NAME), a, 'scheduler'),
    flags: readU32(flags, 0) & ~IP_VS_SVC_F.HASHED,
    timeout: a.u32(A.TIMEOUT) ?? 0,
    netmask: family === 4 ? formatIPv4(netmask) : String(readU32(netmask, 0)),
    ...(pe ? { persistenceEngine: pe } : {}),
    stats: decodeStats(a, A.STATS64, A.STATS),
  };
}

/** The attributes inside one IPVS_CMD_ATTR_DEST; kernels before 4.3 omit the family, which is then the service's. */
export function decodeDestination(a: Attrs, serviceFamily: IpFamily): Destination {
  const A = IPVS_DEST_ATTR;
  const af = a.u16(A.ADDR_FAMILY);
  const family = af === undefined ? serviceFamily : familyOf(af, a);
  const id: DestinationId = {
    family,
    address: formatIp(fromInetAddr(family, need(a.raw(A.ADDR), a, 'address'))),
    port: need(a.be16(A.PORT), a, 'port'),
  };
  const fwd = need(a.u32(A.FWD_METHOD), a, 'forwarding method') & IP_VS_CONN_F.FWD_MASK;
  const forward = (Object.keys(FORWARD) as ForwardMethod[]).find((k) => FORWARD[k] === fwd) ?? 'unknown';
  const tunType = a.u8(A.TUN_TYPE) ?? IP_VS_TUNNEL_TYPE.IPIP; // before 5.2 IPIP was the only kind
  const tunnelType = (Object.keys(TUNNEL) as TunnelType[]).find((k) => TUNNEL[k] === tunType) ?? 'unknown';
  return {
    id,
    key: destinationKey(id),
    weight: need(a.u32(A.WEIGHT), a, 'weight'),
    forward,
    upperThreshold: a.u32(A.U_THRESH) ?? 0,
    lowerThreshold: a.u32(A.L_THRESH) ?? 0,
    // Kernels since 5.2 report tunnel fields for every destination; they only mean something for tunnels.
    ...(forward === 'tunnel'
      ? { tunnel: { type: tunnelType, port: a.be16(A.TUN_PORT) ?? 0, flags: a.u16(A.TUN_FLAGS) ?? 0 } }
      : {}),
    activeConns: a.u32(A.ACTIVE_CONNS) ?? 0,
    inactiveConns: a.u32(A.INACT_CONNS) ?? 0,
    persistentConns: a.u32(A.PERSIST_CONNS) ?? 0,
    stats: decodeStats(a, A.STATS64, A.STATS),
  };
}

export function decodeInfo(a: Attrs): IpvsInfo {
  const v = need(a.u32(IPVS_INFO_ATTR.VERSION), a, 'version');
  return {
    version: `${(v >> 16) & 0xff}.${(v >> 8) & 0xff}.${v & 0xff}`,
    versionCode: v,
    connTableSize: need(a.u32(IPVS_INFO_ATTR.CONN_TAB_SIZE), a, 'connection table size'),
  };
}

/** Kernels built without TCP or UDP support omit those timeouts; they read as 0. */
export function decodeTimeouts(a: Attrs): IpvsTimeouts {
  return {
    tcp: a.u32(IPVS_CMD_ATTR.TIMEOUT_TCP) ?? 0,
    tcpFin: a.u32(IPVS_CMD_ATTR.TIMEOUT_TCP_FIN) ?? 0,
    udp: a.u32(IPVS_CMD_ATTR.TIMEOUT_UDP) ?? 0,
  };
}
