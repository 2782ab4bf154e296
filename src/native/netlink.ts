// Typed face of the addon's netlink part (native/src/netlink.cc): one AF_NETLINK datagram socket per object.
// The socket only moves bytes; framing lives in src/actuator/ipvs/netlink.ts.
import { addon } from './addon';

/** Linux protocol numbers for socket(AF_NETLINK, …, protocol) that vipguard uses. */
export const NETLINK_GENERIC = 16;

export interface NetlinkOpenOptions {
  /** Netlink protocol, e.g. NETLINK_GENERIC. */
  protocol: number;
  /** Path of a network namespace to open the socket in (/run/netns/NAME, /proc/PID/ns/net); default: our own. */
  netns?: string;
}

interface NativeNetlink {
  netlink: {
    open(options: NetlinkOpenOptions): { fd: number; portId: number; extAck: boolean; capAck: boolean };
    send(fd: number, data: Buffer): number;
    receive(fd: number, options: { timeoutMs: number }): Buffer | null;
    close(fd: number): void;
  };
}

/** Closes sockets that were dropped without close(); unregistered by close() so a reused fd number is never hit. */
const leaked = new FinalizationRegistry<number>((fd) => {
  try {
    addon<NativeNetlink>().netlink.close(fd);
  } catch {
    // already gone; nothing to report from a finalizer
  }
});

/**
 * A bound netlink socket (CLOEXEC). Synchronous: the kernel answers generic netlink requests inside sendmsg(), so a
 * reply is queued before send() returns; receive()'s timeout only bounds a lost reply.
 */
export class NetlinkSocket {
  /** Port id the kernel assigned to this socket; replies are addressed to it. */
  readonly portId: number;
  /** Whether the kernel accepted NETLINK_EXT_ACK (error messages and attribute offsets in acks, 4.12+). */
  readonly extAck: boolean;
  /** Whether the kernel accepted NETLINK_CAP_ACK (errors do not echo the request back). */
  readonly capAck: boolean;
  private fd: number;

  private constructor(info: { fd: number; portId: number; extAck: boolean; capAck: boolean }) {
    this.fd = info.fd;
    this.portId = info.portId;
    this.extAck = info.extAck;
    this.capAck = info.capAck;
    leaked.register(this, info.fd, this);
  }

  static open(options: NetlinkOpenOptions): NetlinkSocket {
    return new NetlinkSocket(addon<NativeNetlink>().netlink.open(options));
  }

  send(data: Buffer): void {
    addon<NativeNetlink>().netlink.send(this.openFd('send'), data);
  }

  /** One datagram from the kernel (possibly several netlink messages), or null if none came within timeoutMs. */
  receive(timeoutMs: number): Buffer | null {
    return addon<NativeNetlink>().netlink.receive(this.openFd('receive'), { timeoutMs });
  }

  /** Idempotent. The fd number is forgotten first so that it can never be reused for a file opened later. */
  close(): void {
    const fd = this.fd;
    this.fd = -1;
    leaked.unregister(this);
    if (fd >= 0) addon<NativeNetlink>().netlink.close(fd);
  }

  private openFd(what: string): number {
    if (this.fd < 0) throw new Error(`netlink.${what}: socket already closed — open a new one`);
    return this.fd;
  }
}
