// The IPVS client: lists and edits virtual services and their destinations over the IPVS generic netlink family,
// the same kernel interface ipvsadm uses, without running ipvsadm.
//
// Calls are synchronous underneath (see src/native/netlink.ts) and return promises so that a future transport on
// libuv's poll can replace the socket without changing callers. Each call is one or two kernel round trips; nothing
// is cached — callers that reconcile list the kernel every time, as they should.
import * as os from 'node:os';
import { NETLINK_GENERIC, NetlinkSocket } from '../../native/netlink';
import {
  decodeDestination,
  decodeInfo,
  decodeService,
  decodeTimeouts,
  encodeDestinationId,
  encodeEditedDestination,
  encodeEditedService,
  encodeNewDestination,
  encodeNewService,
  encodeServiceId,
  encodeTimeouts,
} from './codec';
import { NetlinkConnection, NetlinkTransport } from './connection';
import { IPVS_CMD, IPVS_CMD_ATTR, IPVS_GENL_NAME, IPVS_GENL_VERSION } from './constants';
import { IpvsErrorContext, IpvsOperation, ipvsErrno, toIpvsError } from './errors';
import { GenlFamily, GenlMessage, decodeGenl, encodeGenl, resolveFamily } from './genl';
import {
  DestinationId,
  DestinationRef,
  ServiceId,
  ServiceRef,
  describeService,
  destinationKey,
  serviceKey,
  toDestinationId,
  toServiceId,
} from './identity';
import { Attrs, NetlinkDecodeError } from './netlink';
import {
  DEFAULT_DESTINATION_OPTIONS,
  DEFAULT_SERVICE_OPTIONS,
  Destination,
  DestinationOptions,
  IpvsInfo,
  IpvsTimeouts,
  Service,
  ServiceOptions,
  defaultNetmask,
} from './types';

const E = os.constants.errno;
const DEFAULT_TIMEOUT_MS = 2000;

export interface IpvsClientOptions {
  /** Bound on each kernel round trip (default 2000 ms). */
  timeoutMs?: number;
  /** Manage the IPVS table of another network namespace (/run/netns/NAME); needs CAP_SYS_ADMIN. */
  netns?: string;
}

/** Options for addService: only the scheduler is required. */
export type NewServiceOptions = Pick<ServiceOptions, 'scheduler'> & Partial<ServiceOptions>;

export interface WeightChange {
  readonly previousWeight: number;
  /** False when the weight already had the requested value and nothing was sent. */
  readonly changed: boolean;
}

interface RawDestination {
  readonly attrs: Attrs;
  readonly dest: Destination;
}

export class IpvsClient {
  private closed = false;

  private constructor(
    private readonly conn: NetlinkConnection,
    /** The IPVS family as the kernel registered it (its id differs from boot to boot). */
    readonly family: GenlFamily,
  ) {}

  /** Opens a generic netlink socket and resolves the IPVS family; fails with ENOENT when ip_vs is not loaded. */
  static async open(options: IpvsClientOptions = {}): Promise<IpvsClient> {
    const where = options.netns ? ` in ${options.netns}` : '';
    const ctx: IpvsErrorContext = { operation: 'open', doing: `opening the IPVS netlink client${where}` };
    let socket: NetlinkSocket;
    try {
      socket = NetlinkSocket.open({ protocol: NETLINK_GENERIC, netns: options.netns });
    } catch (e) {
      throw toIpvsError(ctx, e);
    }
    return IpvsClient.connect(socket, { timeoutMs: options.timeoutMs, where });
  }

  /** Over any transport; unit tests pass a scripted fake kernel. Closes the transport if the family is missing. */
  static async connect(
    transport: NetlinkTransport,
    options: { timeoutMs?: number; where?: string } = {},
  ): Promise<IpvsClient> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const conn = new NetlinkConnection(transport, timeoutMs);
    try {
      return new IpvsClient(conn, resolveFamily(conn, IPVS_GENL_NAME));
    } catch (e) {
      conn.close();
      const doing = `resolving the ${IPVS_GENL_NAME} generic netlink family${options.where ?? ''}`;
      throw toIpvsError({ operation: 'open', doing }, e, timeoutMs);
    }
  }

  close(): void {
    if (!this.closed) {
      this.closed = true;
      this.conn.close();
    }
  }

  // ---- services ---------------------------------------------------------------------------------------------------

  async listServices(): Promise<Service[]> {
    return this.call(this.ctx('listServices', 'listing IPVS services'), () =>
      this.dump(IPVS_CMD.GET_SERVICE, []).map((g) => decodeService(serviceOf(g))),
    );
  }

  /** Fails with ESRCH when there is no such service. */
  async getService(service: ServiceRef): Promise<Service> {
    return this.call(
      this.ctx('getService', (s) => `reading ${s}`, service),
      () => decodeService(this.rawService(toServiceId(service))),
    );
  }

  async findService(service: ServiceRef): Promise<Service | undefined> {
    return this.absentAs(this.getService(service), E.ESRCH);
  }

  async addService(service: ServiceRef, options: NewServiceOptions): Promise<void> {
    this.call(
      this.ctx('addService', (s) => `adding ${s}`, service),
      () => {
        const id = toServiceId(service);
        const full = { ...DEFAULT_SERVICE_OPTIONS, netmask: defaultNetmask(id.family), ...options };
        this.request(IPVS_CMD.NEW_SERVICE, [encodeNewService(id, full)]);
      },
    );
  }

  /** Changes only the given options; everything else (persistence engine included) is sent back as it is. */
  async editService(service: ServiceRef, changes: Partial<ServiceOptions>): Promise<void> {
    this.call(
      this.ctx('editService', (s) => `editing ${s}`, service),
      () => {
        const id = toServiceId(service);
        this.request(IPVS_CMD.SET_SERVICE, [encodeEditedService(this.rawService(id), id.family, changes)]);
      },
    );
  }

  /** Removes the service and all its destinations. Fails with ESRCH when there is no such service. */
  async removeService(service: ServiceRef): Promise<void> {
    this.call(
      this.ctx('removeService', (s) => `removing ${s}`, service),
      () => {
        this.request(IPVS_CMD.DEL_SERVICE, [encodeServiceId(toServiceId(service))]);
      },
    );
  }

  // ---- destinations -----------------------------------------------------------------------------------------------

  /** Fails with ESRCH when there is no such service. */
  async listDestinations(service: ServiceRef): Promise<Destination[]> {
    return this.call(
      this.ctx('listDestinations', (s) => `listing destinations of ${s}`, service),
      () => this.rawDestinations(toServiceId(service)).map((r) => r.dest),
    );
  }

  /** Fails with ENOENT (no such destination) or ESRCH (no such service). */
  async getDestination(service: ServiceRef, dest: DestinationRef): Promise<Destination> {
    const ctx = this.ctx('getDestination', (s, d) => `reading ${d} in ${s}`, service, dest);
    return this.call(ctx, () => this.rawDestination(ctx, toServiceId(service), toDestinationId(dest)).dest);
  }

  async findDestination(service: ServiceRef, dest: DestinationRef): Promise<Destination | undefined> {
    return this.absentAs(this.getDestination(service, dest), E.ENOENT);
  }

  /** Defaults: weight 1, NAT, no thresholds. Fails with EEXIST when the destination is already there. */
  async addDestination(
    service: ServiceRef,
    dest: DestinationRef,
    options: Partial<DestinationOptions> = {},
  ): Promise<void> {
    this.call(
      this.ctx('addDestination', (s, d) => `adding ${d} to ${s}`, service, dest),
      () => {
        const full = { ...DEFAULT_DESTINATION_OPTIONS, ...options };
        const body = [encodeServiceId(toServiceId(service)), encodeNewDestination(toDestinationId(dest), full)];
        this.request(IPVS_CMD.NEW_DEST, body);
      },
    );
  }

  /** Changes only the given options and returns the destination as it was before. */
  async editDestination(
    service: ServiceRef,
    dest: DestinationRef,
    changes: Partial<DestinationOptions>,
  ): Promise<Destination> {
    const ctx = this.ctx('editDestination', (s, d) => `editing ${d} in ${s}`, service, dest);
    return this.call(ctx, () => this.edit(ctx, service, dest, changes));
  }

  /**
   * The quarantine primitive: weight 0 stops new connections to the destination, established ones continue.
   * Forwarding method, thresholds and tunnel settings are kept (SET_DEST would otherwise reset them). Idempotent:
   * nothing is sent when the weight is already `weight`.
   */
  async setDestinationWeight(service: ServiceRef, dest: DestinationRef, weight: number): Promise<WeightChange> {
    const ctx = this.ctx('editDestination', (s, d) => `setting weight of ${d} in ${s} to ${weight}`, service, dest);
    return this.call(ctx, () => {
      const before = this.edit(ctx, service, dest, { weight });
      return { previousWeight: before.weight, changed: before.weight !== weight };
    });
  }

  /** Fails with ENOENT (no such destination) or ESRCH (no such service). */
  async removeDestination(service: ServiceRef, dest: DestinationRef): Promise<void> {
    this.call(
      this.ctx('removeDestination', (s, d) => `removing ${d} from ${s}`, service, dest),
      () => {
        this.request(IPVS_CMD.DEL_DEST, [
          encodeServiceId(toServiceId(service)),
          encodeDestinationId(toDestinationId(dest)),
        ]);
      },
    );
  }

  // ---- global -----------------------------------------------------------------------------------------------------

  async getInfo(): Promise<IpvsInfo> {
    return this.call(this.ctx('getInfo', 'reading IPVS info'), () => decodeInfo(this.only(IPVS_CMD.GET_INFO).attrs));
  }

  /** Connection timeouts (ipvsadm -L --timeout). */
  async getTimeouts(): Promise<IpvsTimeouts> {
    return this.call(this.ctx('getConfig', 'reading IPVS timeouts'), () =>
      decodeTimeouts(this.only(IPVS_CMD.GET_CONFIG).attrs),
    );
  }

  /** Sets the given timeouts (ipvsadm --set); others are left alone. */
  async setTimeouts(timeouts: Partial<IpvsTimeouts>): Promise<void> {
    this.call(this.ctx('setConfig', 'setting IPVS timeouts'), () => {
      this.request(IPVS_CMD.SET_CONFIG, encodeTimeouts(timeouts));
    });
  }

  // ---- internals --------------------------------------------------------------------------------------------------

  private edit(
    ctx: IpvsErrorContext,
    service: ServiceRef,
    dest: DestinationRef,
    changes: Partial<DestinationOptions>,
  ): Destination {
    const id = toServiceId(service);
    const current = this.rawDestination(ctx, id, toDestinationId(dest));
    if (changes.weight !== undefined && Object.keys(changes).length === 1 && changes.weight === current.dest.weight) {
      return current.dest;
    }
    this.request(IPVS_CMD.SET_DEST, [encodeServiceId(id), encodeEditedDestination(current.attrs, changes)]);
    return current.dest;
  }

  private rawService(id: ServiceId): Attrs {
    const replies = this.request(IPVS_CMD.GET_SERVICE, [encodeServiceId(id)]);
    if (replies.length !== 1) throw new NetlinkDecodeError(`expected one service, the kernel sent ${replies.length}`);
    return serviceOf(replies[0]);
  }

  private rawDestinations(id: ServiceId): RawDestination[] {
    const parts = this.dump(IPVS_CMD.GET_DEST, [encodeServiceId(id)]);
    // The kernel answers a destination dump for a missing service with an empty dump, not an error: ask for the
    // service itself, which fails with ESRCH if it is really gone.
    if (parts.length === 0) this.rawService(id);
    return parts.map((g) => {
      const attrs = g.attrs.nested(IPVS_CMD_ATTR.DEST, 'destination');
      if (attrs === undefined)
        throw new NetlinkDecodeError('decoding IPVS destination dump: part without a destination');
      return { attrs, dest: decodeDestination(attrs, id.family) };
    });
  }

  private rawDestination(ctx: IpvsErrorContext, service: ServiceId, dest: DestinationId): RawDestination {
    const key = destinationKey(dest);
    const found = this.rawDestinations(service).find((r) => r.dest.key === key);
    if (found === undefined) throw ipvsErrno(ctx, E.ENOENT);
    return found;
  }

  private request(cmd: number, attrs: readonly Buffer[]): GenlMessage[] {
    return this.conn
      .request(this.family.id, 0, encodeGenl(cmd, IPVS_GENL_VERSION, attrs))
      .map((m) => decodeGenl(m, `IPVS reply to command ${cmd}`));
  }

  private dump(cmd: number, attrs: readonly Buffer[]): GenlMessage[] {
    return this.conn
      .dump(this.family.id, 0, encodeGenl(cmd, IPVS_GENL_VERSION, attrs))
      .map((m) => decodeGenl(m, `IPVS dump part for command ${cmd}`));
  }

  private only(cmd: number): GenlMessage {
    const replies = this.request(cmd, []);
    if (replies.length !== 1) throw new NetlinkDecodeError(`expected one reply, the kernel sent ${replies.length}`);
    return replies[0];
  }

  private call<T>(ctx: IpvsErrorContext, f: () => T): T {
    if (this.closed) throw ipvsErrno(ctx, E.EBADF);
    try {
      return f();
    } catch (e) {
      throw toIpvsError(ctx, e, this.conn.timeoutMs);
    }
  }

  private async absentAs<T>(p: Promise<T>, errno: number): Promise<T | undefined> {
    try {
      return await p;
    } catch (e) {
      if (e instanceof Error && (e as { errno?: number }).errno === errno) return undefined;
      throw e;
    }
  }

  /** Error context naming the service as ipvsadm prints it and the destination as host:port. */
  private ctx(
    operation: IpvsOperation,
    doing: string | ((service: string, dest: string) => string),
    service?: ServiceRef,
    dest?: DestinationRef,
  ): IpvsErrorContext {
    const s = service === undefined ? undefined : safely(() => toServiceId(service));
    const d = dest === undefined ? undefined : safely(() => toDestinationId(dest));
    const sText = s ? describeService(s) : JSON.stringify(service);
    const dText = d ? destinationKey(d) : JSON.stringify(dest);
    return {
      operation,
      doing: typeof doing === 'string' ? doing : doing(sText, dText),
      service: s && serviceKey(s),
      destination: d && destinationKey(d),
    };
  }
}

function serviceOf(g: GenlMessage): Attrs {
  const attrs = g.attrs.nested(IPVS_CMD_ATTR.SERVICE, 'service');
  if (attrs === undefined) throw new NetlinkDecodeError('decoding IPVS service reply: no service in it');
  return attrs;
}

function safely<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}
