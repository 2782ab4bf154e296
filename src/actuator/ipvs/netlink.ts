// Netlink message codec (pure): nlmsghdr framing, attributes (nlattr, nested, 4-byte alignment), and the kernel's
// control messages — NLMSG_ERROR acks with extended-ack TLVs and NLMSG_DONE ending a dump.
// Layouts are from <linux/netlink.h>. Header fields are in host byte order (RFC 3549 §2.3.2); payload fields are
// whatever each family defines (IPVS ports and addresses are network order, see codec.ts).
import * as os from 'node:os';

const LITTLE = os.endianness() === 'LE';

export const NLMSG_HDRLEN = 16; // struct nlmsghdr: u32 len, u16 type, u16 flags, u32 seq, u32 pid
export const NLA_HDRLEN = 4; // struct nlattr: u16 len, u16 type

/** Control message types below NLMSG_MIN_TYPE (0x10). */
export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;

export const NLM_F = {
  REQUEST: 0x01,
  MULTI: 0x02,
  ACK: 0x04,
  ECHO: 0x08,
  DUMP_INTR: 0x10,
  // GET modifiers
  ROOT: 0x100,
  MATCH: 0x200,
  DUMP: 0x300,
  // on NLMSG_ERROR acks
  CAPPED: 0x100,
  ACK_TLVS: 0x200,
} as const;

/** TLVs that follow an ack when NETLINK_EXT_ACK is on (enum nlmsgerr_attrs). */
export const NLMSGERR_ATTR = { MSG: 1, OFFS: 2, COOKIE: 3, POLICY: 4, MISS_TYPE: 5, MISS_NEST: 6 } as const;

const NLA_F_NESTED = 0x8000;
const NLA_F_NET_BYTEORDER = 0x4000;
const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

export function align4(n: number): number {
  return (n + 3) & ~3;
}

/** Thrown when bytes from the kernel do not parse; names what was being decoded. */
export class NetlinkDecodeError extends Error {
  override readonly name = 'NetlinkDecodeError';
}

// Host-order accessors: netlink headers and most attribute integers are native-endian.
export function readU16(b: Buffer, off: number): number {
  return LITTLE ? b.readUInt16LE(off) : b.readUInt16BE(off);
}
export function readU32(b: Buffer, off: number): number {
  return LITTLE ? b.readUInt32LE(off) : b.readUInt32BE(off);
}
export function readI32(b: Buffer, off: number): number {
  return LITTLE ? b.readInt32LE(off) : b.readInt32BE(off);
}
export function readU64(b: Buffer, off: number): bigint {
  return LITTLE ? b.readBigUInt64LE(off) : b.readBigUInt64BE(off);
}
function writeU16(b: Buffer, v: number, off: number): void {
  if (LITTLE) b.writeUInt16LE(v, off);
  else b.writeUInt16BE(v, off);
}
function writeU32(b: Buffer, v: number, off: number): void {
  if (LITTLE) b.writeUInt32LE(v, off);
  else b.writeUInt32BE(v, off);
}
function writeU64(b: Buffer, v: bigint, off: number): void {
  if (LITTLE) b.writeBigUInt64LE(v, off);
  else b.writeBigUInt64BE(v, off);
}

/** A u32 in host order, for fixed structs inside attributes (e.g. struct ip_vs_flags). */
export function u32Bytes(v: number): Buffer {
  const b = Buffer.alloc(4);
  writeU32(b, v >>> 0, 0);
  return b;
}

// ---- attributes ---------------------------------------------------------------------------------------------------

/** One attribute, header included and zero-padded to 4 bytes, so that a message body is a plain concatenation. */
export function attr(type: number, data: Buffer): Buffer {
  const len = NLA_HDRLEN + data.length;
  if (len > 0xffff) throw new RangeError(`encoding netlink attribute ${type}: ${data.length} bytes exceed 65531`);
  const out = Buffer.alloc(align4(len));
  writeU16(out, len, 0);
  writeU16(out, type, 2);
  data.copy(out, NLA_HDRLEN);
  return out;
}

function intOf(bytes: number, v: number, write: (b: Buffer, v: number) => void): Buffer {
  if (!Number.isInteger(v) || v < 0 || v >= 2 ** (8 * bytes)) {
    throw new RangeError(`encoding netlink attribute: ${v} is not an unsigned ${8 * bytes}-bit integer`);
  }
  const b = Buffer.alloc(bytes);
  write(b, v);
  return b;
}

/** Attribute builders. Integers are checked to fit; `be*` are network byte order as some families require. */
export const nla = {
  u8: (type: number, v: number): Buffer =>
    attr(
      type,
      intOf(1, v, (b, x) => b.writeUInt8(x, 0)),
    ),
  u16: (type: number, v: number): Buffer =>
    attr(
      type,
      intOf(2, v, (b, x) => writeU16(b, x, 0)),
    ),
  u32: (type: number, v: number): Buffer =>
    attr(
      type,
      intOf(4, v, (b, x) => writeU32(b, x, 0)),
    ),
  be16: (type: number, v: number): Buffer =>
    attr(
      type,
      intOf(2, v, (b, x) => b.writeUInt16BE(x, 0)),
    ),
  u64(type: number, v: bigint): Buffer {
    if (v < 0n || v >= 1n << 64n) throw new RangeError(`encoding netlink attribute ${type}: ${v} is not a u64`);
    const b = Buffer.alloc(8);
    writeU64(b, v, 0);
    return attr(type, b);
  },
  /** NUL-terminated, as the kernel's NLA_NUL_STRING and nla_put_string() expect. */
  string: (type: number, s: string): Buffer => attr(type, Buffer.concat([Buffer.from(s, 'utf8'), Buffer.alloc(1)])),
  binary: (type: number, data: Buffer): Buffer => attr(type, data),
  /** Nested attributes carry NLA_F_NESTED; old parsers mask it off with nla_type(), strict ones require it. */
  nested: (type: number, children: readonly Buffer[]): Buffer => attr(type | NLA_F_NESTED, Buffer.concat(children)),
};

export interface RawAttr {
  readonly type: number; // flags stripped
  readonly nested: boolean;
  readonly data: Buffer;
}

/** Splits a run of attributes. `what` names the container in errors. */
export function parseAttrs(buf: Buffer, what: string): RawAttr[] {
  const out: RawAttr[] = [];
  let off = 0;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = readU16(buf, off);
    const rawType = readU16(buf, off + 2);
    if (len < NLA_HDRLEN || off + len > buf.length) {
      throw new NetlinkDecodeError(
        `decoding ${what}: attribute at offset ${off} claims ${len} bytes, ${buf.length - off} left`,
      );
    }
    out.push({
      type: rawType & NLA_TYPE_MASK,
      nested: (rawType & NLA_F_NESTED) !== 0,
      data: buf.subarray(off + NLA_HDRLEN, off + len),
    });
    off += align4(len);
  }
  // Up to 3 bytes of trailing padding are legal; more means a truncated attribute.
  if (buf.length - off >= NLA_HDRLEN) throw new NetlinkDecodeError(`decoding ${what}: trailing garbage`);
  return out;
}

/**
 * Attributes by type, with size-checked typed getters. Like the kernel's nla_parse(), the last occurrence of a type
 * wins and unknown types are kept but ignored by callers (newer kernels add attributes; we must not choke on them).
 */
export class Attrs {
  private readonly byType = new Map<number, Buffer>();

  constructor(
    buf: Buffer,
    readonly what: string,
  ) {
    for (const a of parseAttrs(buf, what)) this.byType.set(a.type, a.data);
  }

  has(type: number): boolean {
    return this.byType.has(type);
  }
  raw(type: number): Buffer | undefined {
    return this.byType.get(type);
  }
  /** Every attribute as [type, payload], in the order first seen. */
  entries(): [number, Buffer][] {
    return [...this.byType.entries()];
  }

  u8(type: number): number | undefined {
    return this.sized(type, 1)?.readUInt8(0);
  }
  u16(type: number): number | undefined {
    const b = this.sized(type, 2);
    return b && readU16(b, 0);
  }
  be16(type: number): number | undefined {
    return this.sized(type, 2)?.readUInt16BE(0);
  }
  u32(type: number): number | undefined {
    const b = this.sized(type, 4);
    return b && readU32(b, 0);
  }
  /** As a number: counters above 2^53 (8 PiB) would lose precision, which no IPVS counter reaches in practice. */
  u64(type: number): number | undefined {
    const b = this.sized(type, 8);
    return b && Number(readU64(b, 0));
  }
  /** A string up to its first NUL (kernel strings are NUL-terminated; tolerate a missing terminator). */
  string(type: number): string | undefined {
    const b = this.byType.get(type);
    if (b === undefined) return undefined;
    const nul = b.indexOf(0);
    return b.subarray(0, nul < 0 ? b.length : nul).toString('utf8');
  }
  nested(type: number, what: string): Attrs | undefined {
    const b = this.byType.get(type);
    return b && new Attrs(b, `${this.what} > ${what}`);
  }

  private sized(type: number, size: number): Buffer | undefined {
    const b = this.byType.get(type);
    if (b !== undefined && b.length !== size) {
      throw new NetlinkDecodeError(`decoding ${this.what}: attribute ${type} has ${b.length} bytes, expected ${size}`);
    }
    return b;
  }
}

// ---- messages -----------------------------------------------------------------------------------------------------

export interface NlHeader {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly pid: number;
}

export interface NlMessage extends NlHeader {
  readonly payload: Buffer;
}

export function encodeMessage(h: { type: number; flags: number; seq: number; pid?: number }, payload: Buffer): Buffer {
  const out = Buffer.alloc(NLMSG_HDRLEN + align4(payload.length));
  // nlmsg_len counts the payload without its trailing pad, as NLMSG_LENGTH() does.
  writeU32(out, NLMSG_HDRLEN + payload.length, 0);
  writeU16(out, h.type, 4);
  writeU16(out, h.flags, 6);
  writeU32(out, h.seq >>> 0, 8);
  writeU32(out, (h.pid ?? 0) >>> 0, 12);
  payload.copy(out, NLMSG_HDRLEN);
  return out;
}

function readHeader(b: Buffer, off: number): NlHeader & { len: number } {
  return {
    len: readU32(b, off),
    type: readU16(b, off + 4),
    flags: readU16(b, off + 6),
    seq: readU32(b, off + 8),
    pid: readU32(b, off + 12),
  };
}

/** Splits one datagram into its messages (a dump part carries many). */
export function parseMessages(datagram: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= datagram.length) {
    const { len, type, flags, seq, pid } = readHeader(datagram, off);
    if (len < NLMSG_HDRLEN || off + len > datagram.length) {
      throw new NetlinkDecodeError(
        `decoding netlink datagram: message at offset ${off} claims ${len} bytes, ${datagram.length - off} left`,
      );
    }
    out.push({ type, flags, seq, pid, payload: datagram.subarray(off + NLMSG_HDRLEN, off + len) });
    off += align4(len);
  }
  if (off < datagram.length && datagram.length - off >= NLMSG_HDRLEN) {
    throw new NetlinkDecodeError('decoding netlink datagram: trailing garbage');
  }
  return out;
}

/** What an NLMSG_ERROR (ack when errno is 0) or a failed NLMSG_DONE says. */
export interface NlAck {
  /** Positive errno; 0 for success. */
  readonly errno: number;
  /** The header of the request this acknowledges (absent for NLMSG_DONE). */
  readonly request?: NlHeader;
  /** NLMSGERR_ATTR_MSG: the kernel's own explanation, e.g. "Attribute failed policy validation". */
  readonly message?: string;
  /** NLMSGERR_ATTR_OFFS: byte offset of the offending attribute in our request. */
  readonly badAttrOffset?: number;
  /** NLMSGERR_ATTR_MISS_TYPE / MISS_NEST: a required attribute that was missing, and the nest it was missing in. */
  readonly missingType?: number;
  readonly missingNestOffset?: number;
}

function extAck(errno: number, tlvs: Buffer | undefined, request?: NlHeader): NlAck {
  if (tlvs === undefined || tlvs.length === 0) return { errno, request };
  const a = new Attrs(tlvs, 'extended ack');
  return {
    errno,
    request,
    message: a.string(NLMSGERR_ATTR.MSG),
    badAttrOffset: a.u32(NLMSGERR_ATTR.OFFS),
    missingType: a.u32(NLMSGERR_ATTR.MISS_TYPE),
    missingNestOffset: a.u32(NLMSGERR_ATTR.MISS_NEST),
  };
}

/**
 * struct nlmsgerr { int error; struct nlmsghdr msg; } then, unless NLM_F_CAPPED, the rest of our request (padded),
 * then, if NLM_F_ACK_TLVS, extended-ack attributes. The kernel caps successful acks and, with NETLINK_CAP_ACK, errors.
 */
export function parseAck(m: NlMessage): NlAck {
  if (m.type !== NLMSG.ERROR) throw new NetlinkDecodeError(`decoding ack: message type ${m.type} is not NLMSG_ERROR`);
  if (m.payload.length < 4 + NLMSG_HDRLEN) {
    throw new NetlinkDecodeError(`decoding ack: ${m.payload.length} bytes, need at least ${4 + NLMSG_HDRLEN}`);
  }
  const errno = 0 - readI32(m.payload, 0); // not -x: that makes -0 of a success
  const req = readHeader(m.payload, 4);
  const request: NlHeader = { type: req.type, flags: req.flags, seq: req.seq, pid: req.pid };
  if (!(m.flags & NLM_F.ACK_TLVS)) return { errno, request };
  const echoed = m.flags & NLM_F.CAPPED ? NLMSG_HDRLEN : align4(req.len);
  const tlvStart = 4 + echoed;
  if (tlvStart > m.payload.length) throw new NetlinkDecodeError('decoding ack: echoed request overruns the message');
  return extAck(errno, m.payload.subarray(tlvStart), request);
}

/** NLMSG_DONE carries the dump's final status (int), and since 4.20-ish possibly extended-ack TLVs after it. */
export function parseDone(m: NlMessage): NlAck {
  if (m.payload.length < 4) return { errno: 0 };
  const errno = 0 - readI32(m.payload, 0); // not -x: that makes -0 of a success
  return extAck(errno, m.flags & NLM_F.ACK_TLVS ? m.payload.subarray(4) : undefined);
}
