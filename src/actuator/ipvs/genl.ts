// Generic netlink (<linux/genetlink.h>): the 4-byte genlmsghdr after nlmsghdr, and the controller family (id 0x10)
// that maps a family name such as "IPVS" to the message type it was given when its module registered.
import { NetlinkConnection } from './connection';
import { Attrs, NetlinkDecodeError, NlMessage, nla } from './netlink';

export const GENL_HDRLEN = 4; // struct genlmsghdr: u8 cmd, u8 version, u16 reserved
export const GENL_ID_CTRL = 0x10;

export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_CMD_NEWFAMILY = 1; // the controller's reply command
export const CTRL_ATTR = { FAMILY_ID: 1, FAMILY_NAME: 2, VERSION: 3, HDRSIZE: 4, MAXATTR: 5 } as const;
/** The controller ignores the version; libnl and iproute2 send 1. */
const CTRL_VERSION = 1;

export interface GenlMessage {
  readonly cmd: number;
  readonly version: number;
  readonly attrs: Attrs;
}

/** genlmsghdr + attributes, i.e. the payload of one nlmsghdr. */
export function encodeGenl(cmd: number, version: number, attrs: readonly Buffer[]): Buffer {
  const hdr = Buffer.alloc(GENL_HDRLEN);
  hdr.writeUInt8(cmd, 0);
  hdr.writeUInt8(version, 1);
  return Buffer.concat([hdr, ...attrs]);
}

/** `hdrSize` is the family's own fixed header after genlmsghdr (0 for IPVS and the controller). */
export function decodeGenl(m: NlMessage, what: string, hdrSize = 0): GenlMessage {
  if (m.payload.length < GENL_HDRLEN + hdrSize) {
    throw new NetlinkDecodeError(`decoding ${what}: ${m.payload.length} bytes cannot hold a generic netlink header`);
  }
  return {
    cmd: m.payload.readUInt8(0),
    version: m.payload.readUInt8(1),
    attrs: new Attrs(m.payload.subarray(GENL_HDRLEN + hdrSize), what),
  };
}

export interface GenlFamily {
  readonly id: number;
  readonly name: string;
  readonly version: number;
  readonly hdrSize: number;
  readonly maxAttr: number;
}

export function encodeGetFamily(name: string): Buffer {
  return encodeGenl(CTRL_CMD_GETFAMILY, CTRL_VERSION, [nla.string(CTRL_ATTR.FAMILY_NAME, name)]);
}

export function decodeFamily(m: NlMessage): GenlFamily {
  const g = decodeGenl(m, 'generic netlink family');
  const id = g.attrs.u16(CTRL_ATTR.FAMILY_ID);
  const name = g.attrs.string(CTRL_ATTR.FAMILY_NAME);
  if (id === undefined || name === undefined) {
    throw new NetlinkDecodeError('decoding generic netlink family: reply lacks the family id or name');
  }
  return {
    id,
    name,
    version: g.attrs.u32(CTRL_ATTR.VERSION) ?? 0,
    hdrSize: g.attrs.u32(CTRL_ATTR.HDRSIZE) ?? 0,
    maxAttr: g.attrs.u32(CTRL_ATTR.MAXATTR) ?? 0,
  };
}

/** CTRL_CMD_GETFAMILY. Throws NetlinkError ENOENT when no such family is registered (module not loaded). */
export function resolveFamily(conn: NetlinkConnection, name: string): GenlFamily {
  const replies = conn.request(GENL_ID_CTRL, 0, encodeGetFamily(name));
  const reply = replies.find((m) => m.type === GENL_ID_CTRL);
  if (reply === undefined) {
    throw new NetlinkDecodeError(`resolving generic netlink family ${name}: the controller acked without a reply`);
  }
  return decodeFamily(reply);
}
