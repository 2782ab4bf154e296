// The IPVS client's data model: services and destinations as listed, and the options that create or edit them.
import { IpFamily } from './address';
import { DestinationId, ServiceId } from './identity';

export type ForwardMethod = 'nat' | 'local' | 'tunnel' | 'dr' | 'bypass';
export type TunnelType = 'ipip' | 'gue' | 'gre';

export interface IpvsStats {
  readonly conns: number;
  readonly inPackets: number;
  readonly outPackets: number;
  readonly inBytes: number;
  readonly outBytes: number;
  /** Rates, estimated by the kernel every 2 s. */
  readonly cps: number;
  readonly inPps: number;
  readonly outPps: number;
  readonly inBps: number;
  readonly outBps: number;
}

export interface ServiceOptions {
  /** Scheduler module name without the ip_vs_ prefix: rr, wrr, lc, wlc, sh, mh, … */
  readonly scheduler: string;
  /** IP_VS_SVC_F_* bits (PERSISTENT, ONEPACKET, SCHED1-3). HASHED is kernel-internal and never sent. */
  readonly flags: number;
  /** Persistence timeout in seconds (with IP_VS_SVC_F.PERSISTENT). */
  readonly timeout: number;
  /** Persistence granularity as ipvsadm -M writes it: an IPv4 mask ("255.255.255.0") or an IPv6 prefix ("64"). */
  readonly netmask: string;
  /** Persistence engine (ipvsadm --pe), e.g. "sip". */
  readonly persistenceEngine?: string;
}

export interface Service extends ServiceOptions {
  readonly id: ServiceId;
  readonly key: string;
  readonly stats?: IpvsStats;
}

export interface TunnelOptions {
  readonly type: TunnelType;
  /** GUE destination port. */
  readonly port: number;
  /** IP_VS_TUNNEL_ENCAP_FLAG_* (CSUM 1, REMCSUM 2). */
  readonly flags: number;
}

export interface DestinationOptions {
  readonly weight: number;
  readonly forward: ForwardMethod;
  /** Connection thresholds; 0 means none. */
  readonly upperThreshold: number;
  readonly lowerThreshold: number;
  readonly tunnel?: TunnelOptions;
}

/**
 * A destination as listed. The kernel stores whatever forwarding method (0-7) and tunnel type (0-255) it is given, so
 * values without a name read as 'unknown' rather than failing the listing; edits resend the raw values unchanged.
 */
export interface Destination extends Omit<DestinationOptions, 'forward' | 'tunnel'> {
  readonly forward: ForwardMethod | 'unknown';
  readonly tunnel?: { readonly type: TunnelType | 'unknown'; readonly port: number; readonly flags: number };
  readonly id: DestinationId;
  readonly key: string;
  readonly activeConns: number;
  readonly inactiveConns: number;
  readonly persistentConns: number;
  readonly stats?: IpvsStats;
}

export interface IpvsInfo {
  /** "1.2.1": the IPVS code version, unchanged for years; not the kernel version. */
  readonly version: string;
  readonly versionCode: number;
  /** Size of the connection hash table (ip_vs_conn_tab_bits). */
  readonly connTableSize: number;
}

/** Connection timeouts in seconds (ipvsadm --set). On SET, 0 leaves a value unchanged. */
export interface IpvsTimeouts {
  readonly tcp: number;
  readonly tcpFin: number;
  readonly udp: number;
}

export const DEFAULT_SERVICE_OPTIONS = { flags: 0, timeout: 0 } as const;
export const DEFAULT_DESTINATION_OPTIONS: DestinationOptions = {
  weight: 1,
  forward: 'nat',
  upperThreshold: 0,
  lowerThreshold: 0,
};

export function defaultNetmask(family: IpFamily): string {
  return family === 4 ? '255.255.255.255' : '128';
}
