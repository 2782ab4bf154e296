// Every failure of the IPVS client is an IpvsError: "<what we were doing>: <what went wrong> (<CODE>)", with .code,
// .errno and the canonical names of the service and destination involved, so that callers can both branch on the
// code (EEXIST while ensuring, ENOENT/ESRCH while removing) and log a sentence an operator can act on.
import * as os from 'node:os';
import { NetlinkError, errnoName, errnoText } from './connection';
import { IdentityError } from './identity';
import { NetlinkDecodeError } from './netlink';

const E = os.constants.errno;

/** Which client call failed; selects how an errno is explained (ENOENT means different things to different calls). */
export type IpvsOperation =
  | 'open'
  | 'listServices'
  | 'getService'
  | 'addService'
  | 'editService'
  | 'removeService'
  | 'listDestinations'
  | 'getDestination'
  | 'addDestination'
  | 'editDestination'
  | 'removeDestination'
  | 'getInfo'
  | 'getConfig'
  | 'setConfig';

export interface IpvsErrorContext {
  readonly operation: IpvsOperation;
  /** Human description of the attempt, e.g. "setting weight of 10.200.0.4:80 in TCP 10.99.0.1:80 to 0". */
  readonly doing: string;
  /** Canonical keys (identity.ts). */
  readonly service?: string;
  readonly destination?: string;
}

export class IpvsError extends Error {
  override readonly name = 'IpvsError';

  constructor(
    readonly context: IpvsErrorContext,
    /** "ENOENT", … ; "EPROTO" for replies we could not decode; "EINVAL" for arguments refused before sending. */
    readonly code: string,
    readonly errno: number,
    explanation: string,
    /** The kernel's own words from an extended ack, when it gave any. */
    readonly kernelMessage?: string,
    options?: { cause?: unknown },
  ) {
    super(`${context.doing}: ${explanation} (${code})${kernelMessage ? ` — kernel: ${kernelMessage}` : ''}`, options);
  }

  get operation(): IpvsOperation {
    return this.context.operation;
  }
  get service(): string | undefined {
    return this.context.service;
  }
  get destination(): string | undefined {
    return this.context.destination;
  }
}

const DEST_OPS: ReadonlySet<IpvsOperation> = new Set([
  'getDestination',
  'addDestination',
  'editDestination',
  'removeDestination',
]);

/** What an errno means for this operation, plus what to do about it where there is something to do. */
export function explain(op: IpvsOperation, errno: number, timeoutMs?: number): string {
  switch (errno) {
    case E.ESRCH:
      return 'no such service';
    case E.ENOENT:
      if (op === 'open') return 'not registered — is the ip_vs module loaded? (modprobe ip_vs)';
      if (op === 'addService' || op === 'editService') {
        return 'unknown scheduler or persistence engine — is its ip_vs_<name> module available?';
      }
      if (DEST_OPS.has(op)) return 'no such destination';
      if (op === 'getService' || op === 'listDestinations' || op === 'removeService') return 'no such service';
      break;
    case E.EEXIST:
      if (op === 'addService') return 'service already exists';
      if (op === 'addDestination') return 'destination already exists';
      break;
    case E.EINVAL:
      if (op === 'addDestination' || op === 'editDestination') {
        // ip_vs_new_dest/ip_vs_genl_set_cmd: no other cause is reachable with attributes this client encodes.
        return (
          'invalid argument — is the address unicast in this namespace? ' +
          '(a family other than the service needs tunnel forwarding)'
        );
      }
      break;
    case E.EPERM:
    case E.EACCES:
      return 'not permitted — IPVS changes need CAP_NET_ADMIN (run as root)';
    case E.ERANGE:
      return 'out of range — weight must be >= 0 and the lower threshold <= the upper';
    case E.EAFNOSUPPORT:
      return 'address family not supported — is this kernel built with CONFIG_IP_VS_IPV6?';
    case E.ETIMEDOUT:
      return `no reply from the kernel within ${timeoutMs ?? '?'} ms`;
    case E.ENOBUFS:
      return 'netlink receive buffer overflowed, replies were lost — retry';
    case E.EBUSY:
      return 'busy — retry';
  }
  return errnoText(errno);
}

/** Wraps whatever a client call threw into an IpvsError carrying `ctx`. */
export function toIpvsError(ctx: IpvsErrorContext, e: unknown, timeoutMs?: number): IpvsError {
  if (e instanceof IpvsError) return e;
  if (e instanceof NetlinkError) {
    return new IpvsError(ctx, e.code, e.errno, explain(ctx.operation, e.errno, timeoutMs), e.kernelMessage, {
      cause: e,
    });
  }
  if (e instanceof NetlinkDecodeError) {
    return new IpvsError(ctx, 'EPROTO', E.EPROTO, `unexpected reply from the kernel: ${e.message}`, undefined, {
      cause: e,
    });
  }
  if (e instanceof IdentityError || e instanceof RangeError) {
    return new IpvsError(ctx, 'EINVAL', E.EINVAL, e.message, undefined, { cause: e });
  }
  const errno = (e as { errno?: unknown }).errno;
  if (typeof errno === 'number' && errno > 0) {
    return new IpvsError(ctx, errnoName(errno), errno, explain(ctx.operation, errno, timeoutMs), undefined, {
      cause: e,
    });
  }
  return new IpvsError(ctx, 'EIO', E.EIO, e instanceof Error ? e.message : String(e), undefined, { cause: e });
}

/** An error we detect ourselves, phrased exactly as the kernel's would be. */
export function ipvsErrno(ctx: IpvsErrorContext, errno: number): IpvsError {
  return new IpvsError(ctx, errnoName(errno), errno, explain(ctx.operation, errno));
}
