// Request/reply over a netlink socket: sequence numbers, acks, multipart dumps, timeouts and kernel errors.
// The transport is an interface so that this logic runs in unit tests against a scripted fake kernel.
import * as os from 'node:os';
import * as util from 'node:util';
import { NLM_F, NLMSG, NlAck, NlMessage, encodeMessage, parseAck, parseDone, parseMessages } from './netlink';

/** What NetlinkConnection needs from a socket; src/native/netlink.ts's NetlinkSocket satisfies it. */
export interface NetlinkTransport {
  readonly portId: number;
  send(data: Buffer): void;
  receive(timeoutMs: number): Buffer | null;
  close(): void;
}

const errnoMap = util.getSystemErrorMap();

/** "ENOENT" for 2; libuv keys its map by negative errno on Linux. */
export function errnoName(errno: number): string {
  return errnoMap.get(-Math.abs(errno))?.[0] ?? `E${errno}`;
}

/** "no such file or directory" for 2. */
export function errnoText(errno: number): string {
  return errnoMap.get(-Math.abs(errno))?.[1] ?? `error ${errno}`;
}

/** An error the kernel (or the socket) reported, without IPVS context: the IPVS client wraps it in an IpvsError. */
export class NetlinkError extends Error {
  override readonly name = 'NetlinkError';
  readonly code: string;

  constructor(
    readonly errno: number,
    what: string,
    readonly kernelMessage?: string,
    readonly badAttrOffset?: number,
  ) {
    super(`${what}: ${errnoText(errno)} (${errnoName(errno)})${kernelMessage ? ` — kernel: ${kernelMessage}` : ''}`);
    this.code = errnoName(errno);
  }

  static fromAck(ack: NlAck, what: string): NetlinkError {
    return new NetlinkError(ack.errno, what, ack.message, ack.badAttrOffset);
  }
}

/** IPVS dumps never set NLM_F_DUMP_INTR today, but a family that does wants a fresh, consistent snapshot. */
const DUMP_ATTEMPTS = 3;

export class NetlinkConnection {
  private seq: number;

  constructor(
    private readonly transport: NetlinkTransport,
    readonly timeoutMs = 2000,
  ) {
    // Not starting at 1: a reply still queued for an earlier socket user of the same numbers can never match.
    this.seq = (Date.now() & 0x3fffffff) + 1;
  }

  /**
   * One request answered by zero or more messages and an ack (NLM_F_ACK). Returns the messages before the ack;
   * throws NetlinkError when the ack carries an errno.
   */
  request(type: number, flags: number, payload: Buffer): NlMessage[] {
    return this.exchange(type, flags | NLM_F.REQUEST | NLM_F.ACK, payload).messages;
  }

  /** A dump (NLM_F_DUMP): all parts until NLMSG_DONE. Retried if the kernel flags it as interrupted. */
  dump(type: number, flags: number, payload: Buffer): NlMessage[] {
    for (let attempt = 1; ; attempt++) {
      const { messages, interrupted } = this.exchange(type, flags | NLM_F.REQUEST | NLM_F.DUMP, payload);
      if (!interrupted) return messages;
      if (attempt === DUMP_ATTEMPTS) {
        throw new NetlinkError(
          os.constants.errno.EAGAIN,
          `dump of type ${type} interrupted by concurrent changes ${attempt} times`,
        );
      }
    }
  }

  close(): void {
    this.transport.close();
  }

  private exchange(type: number, flags: number, payload: Buffer): { messages: NlMessage[]; interrupted: boolean } {
    const seq = this.seq;
    this.seq = (this.seq + 1) >>> 0 || 1;
    this.transportCall('sending', () => this.transport.send(encodeMessage({ type, flags, seq }, payload)));
    try {
      return this.collect(seq);
    } catch (e) {
      this.drain();
      throw e;
    }
  }

  private collect(seq: number): { messages: NlMessage[]; interrupted: boolean } {
    const messages: NlMessage[] = [];
    let interrupted = false;
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const left = Math.max(0, deadline - Date.now());
      const datagram = this.transportCall('receiving', () => this.transport.receive(left));
      if (datagram === null) {
        throw new NetlinkError(os.constants.errno.ETIMEDOUT, `no reply from the kernel within ${this.timeoutMs} ms`);
      }
      for (const m of parseMessages(datagram)) {
        // A reply to an earlier request that timed out: not ours, drop it.
        if (m.seq !== seq) continue;
        if (m.flags & NLM_F.DUMP_INTR) interrupted = true;
        switch (m.type) {
          case NLMSG.NOOP:
            continue;
          case NLMSG.OVERRUN:
            throw new NetlinkError(os.constants.errno.ENOBUFS, 'netlink reported lost messages (NLMSG_OVERRUN)');
          case NLMSG.ERROR: {
            const ack = parseAck(m);
            if (ack.errno !== 0) throw NetlinkError.fromAck(ack, 'kernel refused the request');
            // Dumps are not sent with NLM_F_ACK, so a zero ack always ends a plain request.
            return { messages, interrupted };
          }
          case NLMSG.DONE: {
            const done = parseDone(m);
            if (done.errno !== 0) throw NetlinkError.fromAck(done, 'kernel failed the dump');
            return { messages, interrupted };
          }
          default:
            messages.push(m);
        }
      }
    }
  }

  /**
   * After a failed exchange, read whatever is left: an abandoned dump keeps its kernel state until read to the end
   * (the next dump would get EBUSY), and parts are only produced as we read, so this terminates.
   */
  private drain(): void {
    try {
      for (let i = 0; i < 10_000 && this.transport.receive(0) !== null; i++);
    } catch {
      // the socket is broken anyway; the original error is the one worth reporting
    }
  }

  /** Socket errors (ENOBUFS, EPERM on send, …) come from the addon with .errno; give them the same shape. */
  private transportCall<T>(what: string, f: () => T): T {
    try {
      return f();
    } catch (e) {
      const errno = (e as { errno?: unknown }).errno;
      if (typeof errno === 'number' && errno > 0) {
        throw new NetlinkError(errno, `${what} on the netlink socket`);
      }
      throw e;
    }
  }
}
