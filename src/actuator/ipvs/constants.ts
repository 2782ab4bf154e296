// IPVS generic netlink ids and flags, from <linux/ip_vs.h> (linux-libc-dev). These are kernel ABI: values never
// change, newer kernels only append. Attributes a kernel does not know are ignored by its (non-strict) IPVS parser.

export const IPVS_GENL_NAME = 'IPVS';
export const IPVS_GENL_VERSION = 1;

export const IPVS_CMD = {
  NEW_SERVICE: 1,
  SET_SERVICE: 2,
  DEL_SERVICE: 3,
  GET_SERVICE: 4,
  NEW_DEST: 5,
  SET_DEST: 6,
  DEL_DEST: 7,
  GET_DEST: 8,
  NEW_DAEMON: 9,
  DEL_DAEMON: 10,
  GET_DAEMON: 11,
  SET_CONFIG: 12,
  GET_CONFIG: 13,
  SET_INFO: 14, // only the reply to GET_INFO
  GET_INFO: 15,
  ZERO: 16,
  FLUSH: 17,
} as const;

/** First-level attributes of every IPVS command. */
export const IPVS_CMD_ATTR = {
  SERVICE: 1, // nested IPVS_SVC_ATTR_*
  DEST: 2, // nested IPVS_DEST_ATTR_*
  DAEMON: 3,
  TIMEOUT_TCP: 4, // u32 seconds
  TIMEOUT_TCP_FIN: 5,
  TIMEOUT_UDP: 6,
} as const;

export const IPVS_SVC_ATTR = {
  AF: 1, // u16
  PROTOCOL: 2, // u16 IPPROTO_*
  ADDR: 3, // union nf_inet_addr, 16 bytes, network order
  PORT: 4, // __be16
  FWMARK: 5, // u32
  SCHED_NAME: 6, // NUL-terminated, at most 16 bytes with the NUL
  FLAGS: 7, // struct ip_vs_flags { u32 flags; u32 mask; }
  TIMEOUT: 8, // u32 persistence timeout, seconds
  NETMASK: 9, // u32: IPv4 mask in network order, IPv6 prefix length (as a plain number)
  STATS: 10, // nested IPVS_STATS_ATTR_* (32-bit counters except bytes)
  PE_NAME: 11, // persistence engine, e.g. "sip"
  STATS64: 12, // nested, all u64 (3.x+)
} as const;

export const IPVS_DEST_ATTR = {
  ADDR: 1, // 16 bytes
  PORT: 2, // __be16
  FWD_METHOD: 3, // u32, IP_VS_CONN_F_FWD_MASK bits
  WEIGHT: 4, // u32 (kernel int; negative is refused with ERANGE)
  U_THRESH: 5, // u32
  L_THRESH: 6, // u32
  ACTIVE_CONNS: 7, // u32
  INACT_CONNS: 8, // u32
  PERSIST_CONNS: 9, // u32
  STATS: 10,
  ADDR_FAMILY: 11, // u16 (4.3+, mixed-family tunnel destinations); absent means "same as the service"
  STATS64: 12,
  TUN_TYPE: 13, // u8 (5.2+)
  TUN_PORT: 14, // __be16 (5.2+, GUE)
  TUN_FLAGS: 15, // u16 (5.3+)
} as const;

export const IPVS_STATS_ATTR = {
  CONNS: 1,
  INPKTS: 2,
  OUTPKTS: 3,
  INBYTES: 4, // u64 in both STATS and STATS64
  OUTBYTES: 5,
  CPS: 6,
  INPPS: 7,
  OUTPPS: 8,
  INBPS: 9,
  OUTBPS: 10,
  PAD: 11, // alignment filler for u64 on strict-alignment architectures; ignored
} as const;

export const IPVS_INFO_ATTR = { VERSION: 1, CONN_TAB_SIZE: 2 } as const;

/** Virtual service flags (IP_VS_SVC_F_*). */
export const IP_VS_SVC_F = {
  PERSISTENT: 0x0001,
  HASHED: 0x0002, // kernel-internal: set on every listed service, must never be sent (see codec.ts)
  ONEPACKET: 0x0004,
  SCHED1: 0x0008, // sh: fallback
  SCHED2: 0x0010, // sh: use port
  SCHED3: 0x0020,
} as const;

/** Forwarding methods, the low 3 bits of a destination's connection flags (IP_VS_CONN_F_FWD_MASK). */
export const IP_VS_CONN_F = {
  FWD_MASK: 0x0007,
  MASQ: 0x0000,
  LOCALNODE: 0x0001,
  TUNNEL: 0x0002,
  DROUTE: 0x0003,
  BYPASS: 0x0004,
} as const;

export const IP_VS_TUNNEL_TYPE = { IPIP: 0, GUE: 1, GRE: 2 } as const;
export const IP_VS_SCHEDNAME_MAXLEN = 16;
export const IP_VS_PENAME_MAXLEN = 16;

/** Address families as the kernel numbers them (IP protocol numbers are in identity.ts). */
export const AF_INET = 2;
export const AF_INET6 = 10;
