// Sub-second failover: a lower initial SYN timeout for connections to configured virtual services
// (bpf/synrto.bpf.c, a cgroup sock_ops program on BPF_SOCK_OPS_TIMEOUT_INIT).
//
// Why it is the actuator's: it changes how the kernel treats connections (control), learning from the same
// handshake spans the rules read (sensing, through OpenTelemetry). Per service:
//   timeout = clamp(deadline + margin, floor, ceiling), deadline = the receiver's handshake deadline formula
// so a pending connect's first retransmit leaves right after the dead backend has been declared unanswered
// (at its deadline) and quarantined — and IPVS sends that retransmit to a healthy backend.
//
// Side effect worth knowing: the kernel gives up on a SYN after a *number* of retransmits (tcp_syn_retries),
// each doubling the timeout, so a lower initial timeout also shortens how long a connect to a service whose
// every backend is dead waits before ETIMEDOUT (≈ 127 × timeout instead of 127 s on 5.10/6.1).
import * as net from 'node:net';
import { BpfObject, LibbpfError, openBpfObject } from '../native/bpf';
import { bpfObjectPath } from '../common/paths';
import { DeadlinePolicy, RttTracker } from '../common/rtt';
import { serviceKey } from '../common/service-key';
import { readConnectSpan } from '../telemetry/connect-span';
import { cgroup2Root } from '../common/cgroup';

export { cgroup2Root };
import type { FlatSpan } from '../otlp/model';
import type { Logger } from '../common/log';

export interface SynTimeoutPolicy {
  marginMs: number;
  floorMs: number;
  ceilingMs: number;
  /** cgroup v2 directory the program applies under; default: the root of the cgroup2 mount */
  cgroup?: string;
}

export interface SynTimeoutService {
  name: string;
  address: string;
  port: number;
}

export interface SynTimeoutStatus {
  active: boolean;
  reason?: string;
  hz?: number;
  cgroup?: string;
  /** per service: the timeout in force (ms) and the RTT it was derived from */
  services: { name: string; timeoutMs: number; rttMs?: number }[];
  calls?: number;
  lowered?: number;
}

/** Nearest usual CONFIG_HZ to a measured tick rate (within 5%), else the measurement rounded. */
export function roundHz(measured: number): number {
  const usual = [100, 250, 300, 1000];
  const near = usual.find((h) => Math.abs(measured - h) / h < 0.05);
  return near ?? Math.round(measured);
}

export class SynTimeoutController {
  private obj?: BpfObject;
  private readonly rtt: RttTracker;
  private services: SynTimeoutService[] = [];
  private written = new Map<string, number>();
  private hz?: number;
  private timer?: NodeJS.Timeout;
  readonly status: SynTimeoutStatus = { active: false, services: [] };

  constructor(private readonly policy: SynTimeoutPolicy, deadline: DeadlinePolicy, private readonly log: Logger) {
    this.rtt = new RttTracker(deadline);
  }

  /** Loads and attaches; on any failure stays inactive (the kernel's default timeout applies) and says why. */
  start(services: SynTimeoutService[]): SynTimeoutStatus {
    this.services = services;
    const cgroup = this.policy.cgroup ?? cgroup2Root();
    if (!cgroup) return this.inactive('no cgroup2 mount found (mount -t cgroup2 none /sys/fs/cgroup)');
    try {
      this.obj = openBpfObject(bpfObjectPath('synrto'));
      this.obj.load();
      this.obj.attach('vg_syn_rto', { cgroup });
    } catch (e) {
      const err = e as LibbpfError;
      this.obj?.close();
      this.obj = undefined;
      return this.inactive(`attaching sock_ops to ${cgroup}: ${err.message}${err.logTail ? ` (${err.logTail.trim().split('\n').pop()})` : ''}`);
    }
    this.status.active = true;
    this.status.cgroup = cgroup;
    this.timer = setInterval(() => this.update(), 1000);
    this.timer.unref();
    void this.calibrate();
    return this.status;
  }

  private inactive(reason: string): SynTimeoutStatus {
    this.status.active = false;
    this.status.reason = `${reason} — connections keep the kernel's initial SYN timeout (1 s)`;
    this.log.warn(`synTimeout: inactive: ${this.status.reason}`);
    return this.status;
  }

  /** Measures HZ from the program's own (jiffies, ktime) samples, two connects a second apart. */
  private async calibrate(): Promise<void> {
    for (let i = 0; i < 10 && this.obj && !this.hz; i++) {
      await poke();
      await new Promise((r) => setTimeout(r, 1000));
      await poke();
      const first = this.obj?.readGlobal('clock_first');
      const last = this.obj?.readGlobal('clock_last');
      if (!first || !last) return;
      const dj = Number(last.readBigUInt64LE(0) - first.readBigUInt64LE(0));
      const dns = Number(last.readBigUInt64LE(8) - first.readBigUInt64LE(8));
      if (dns > 5e8 && dj > 0) {
        this.hz = roundHz(dj / (dns / 1e9));
        this.status.hz = this.hz;
        this.log.info(`synTimeout: active on cgroup ${this.status.cgroup}, kernel HZ measured ${this.hz}`);
        this.update();
      }
    }
    if (!this.hz) this.log.warn('synTimeout: could not measure the kernel tick rate; timeouts stay at the kernel default');
  }

  setServices(services: SynTimeoutService[]): void {
    this.services = services;
    this.rtt.retain(new Set(services.map((s) => s.name)));
    this.update();
  }

  /** Answered handshakes from the receiver's spans teach each service's RTT. */
  observe(spans: FlatSpan[]): void {
    for (const s of spans) {
      const a = readConnectSpan(s);
      // TCP handshakes only: a UDP exchange's span (a late answer is `established` too) times a reply, not a SYN.
      if (!a || a.service.protocol !== 'tcp' || a.outcome !== 'established' || !a.backend || !Number.isFinite(a.handshakeMs)) continue;
      // Configured services only: RTT trackers are keyed by configuration, never by what a span claims.
      const svc = this.services.find((x) => x.address === a.service.address && x.port === a.service.port);
      if (!svc) continue;
      this.rtt.observe(svc.name, a.backend.key, a.handshakeMs);
    }
  }

  timeoutMs(service: string): number {
    const p = this.policy;
    return Math.min(p.ceilingMs, Math.max(p.floorMs, this.rtt.serviceDeadlineMs(service) + p.marginMs));
  }

  private update(): void {
    if (!this.obj || !this.hz) return;
    const keep = new Set<string>();
    this.status.services = [];
    for (const s of this.services) {
      const ms = this.timeoutMs(s.name);
      const jiffies = Math.max(1, Math.round((ms * this.hz) / 1000));
      const key = serviceKey(s.address, s.port);
      const hex = key.toString('hex');
      keep.add(hex);
      this.status.services.push({ name: s.name, timeoutMs: ms, rttMs: this.rtt.rttMs(s.name) });
      if (this.written.get(hex) === jiffies) continue;
      const v = Buffer.alloc(4);
      v.writeUInt32LE(jiffies);
      this.obj.mapUpdate('syn_timeouts', key, v);
      this.written.set(hex, jiffies);
    }
    for (const hex of [...this.written.keys()]) {
      if (!keep.has(hex)) {
        this.obj.mapDelete('syn_timeouts', Buffer.from(hex, 'hex'));
        this.written.delete(hex);
      }
    }
    const c = this.obj.percpuSums('rto_counters', 2);
    this.status.calls = Number(c[0]);
    this.status.lowered = Number(c[1]);
  }

  close(): void {
    clearInterval(this.timer);
    this.obj?.close();
    this.obj = undefined;
    this.status.active = false;
  }
}

/** A TCP connect to a closed loopback port: enough to run tcp_timeout_init once (refused at once, no traffic out). */
function poke(): Promise<void> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => {
        const s = net.connect(port, '127.0.0.1');
        s.on('error', () => resolve());
        s.on('connect', () => { s.destroy(); resolve(); });
      });
    });
  });
}
