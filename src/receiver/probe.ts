// Loads bpf/receiver.bpf.c and attaches its hooks one by one, reporting which are active and why others are
// not: without kprobes or ip_vs the tracepoints still trace every connection, with the backend unknown; without
// fentry (BPF trampolines) UDP flows are not traced. The UDP hooks run on every datagram the host sends or
// receives, so they are attached only while a UDP service is configured (loaded — verified — always).
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { BpfObject, LibbpfError, openBpfObject, forEachRecord } from '../native/bpf';
import { bpfObjectPath } from '../common/paths';
import { serviceKey } from '../common/service-key';
import { cgroup2Root } from '../common/cgroup';
import { hasCap, parseCapEff } from '../common/privileges';
import { HookStatus } from './hooks';
import { COUNTERS, CounterName, decodeEvent, decodeUdpFlow, KernelEvent, UdpCounters } from './events';

export interface ServiceKey {
  address: string;
  port: number;
  /** default tcp */
  protocol?: 'tcp' | 'udp';
  /** index into the caller's service list, stored as the map value */
  id: number;
}

export interface ProbeOptions {
  traceAll?: boolean;
  ringBufferBytes?: number;
  services?: ServiceKey[];
  objectPath?: string;
  /** retry attaching the ip_vs kprobe this often while ip_vs is not loaded (0: never) */
  kprobeRetryMs?: number;
  /** cgroup v2 directory the RST observer attaches to; default: the root of the cgroup2 mount (every process) */
  cgroup?: string;
}

const HOOKS: Record<string, string> = {
  vg_inet_sock_set_state: 'tracepoint sock:inet_sock_set_state',
  vg_tcp_retransmit_skb: 'tracepoint tcp:tcp_retransmit_skb',
  vg_tcp_receive_reset: 'tracepoint tcp:tcp_receive_reset',
  vg_ip_vs_conn_new: 'kprobe ip_vs_conn_new',
  vg_rst_in: 'cgroup_skb ingress (refusals, also those the actuator holds back)',
  vg_udp_sendmsg: 'fentry udp_sendmsg (UDP datagrams out)',
  vg_udpv6_sendmsg: 'fentry udpv6_sendmsg (UDP datagrams out, IPv6)',
  vg_udp_reply: 'fentry __udp_enqueue_schedule_skb (UDP replies)',
  vg_udp_error_report: 'tp_btf sock:inet_sk_error_report (ICMP errors on UDP flows)',
  vg_udp4_lib_err: 'kprobe __udp4_lib_err (ICMP errors on UDP flows, IPv4)',
  vg_udp_destroy_sock: 'fentry udp_destroy_sock (UDP flow ends)',
  vg_udpv6_destroy_sock: 'fentry udpv6_destroy_sock (UDP flow ends, IPv6)',
};
const KPROBE = 'vg_ip_vs_conn_new';
const RST_OBSERVER = 'vg_rst_in';
const UDP_FENTRY = ['vg_udp_sendmsg', 'vg_udpv6_sendmsg', 'vg_udp_reply', 'vg_udp_destroy_sock', 'vg_udpv6_destroy_sock'];
const UDP_ERROR_TP = 'vg_udp_error_report';
const UDP_ERROR_KPROBE = 'vg_udp4_lib_err';
/** Attached only while a UDP service is configured: they cost a program run per datagram, whatever its port. */
const UDP_HOOKS = new Set([...UDP_FENTRY, UDP_ERROR_TP, UDP_ERROR_KPROBE]);
const UDP_STANDBY = 'no UDP service configured: attached when one is (the datagram hooks run for every UDP datagram of the host, whatever its port)';

/** sock:inet_sk_error_report (5.14+): ICMP errors of both families on connected sockets, one hook. */
function hasErrorReportTracepoint(): boolean {
  return ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'].some((d) => fs.existsSync(`${d}/events/sock/inet_sk_error_report`));
}

/** libbpf finds tracepoints through tracefs; many hosts do not mount it. */
export function ensureTracefs(): void {
  for (const dir of ['/sys/kernel/tracing', '/sys/kernel/debug/tracing']) {
    if (fs.existsSync(`${dir}/events`)) return;
  }
  const r = spawnSync('mount', ['-t', 'tracefs', 'nodev', '/sys/kernel/tracing'], { encoding: 'utf8' });
  if (r.status !== 0 || !fs.existsSync('/sys/kernel/tracing/events')) {
    throw new Error(`mounting tracefs on /sys/kernel/tracing: ${(r.stderr || r.error?.message || 'failed').trim()} — ` +
      'mount it yourself (mount -t tracefs nodev /sys/kernel/tracing) or run as root');
  }
}

export function kernelHasKprobes(): boolean {
  return fs.existsSync('/sys/bus/event_source/devices/kprobe') ||
    fs.existsSync('/sys/kernel/tracing/kprobe_events') || fs.existsSync('/sys/kernel/debug/tracing/kprobe_events');
}

function canNetAdmin(): boolean {
  try {
    const eff = parseCapEff(fs.readFileSync('/proc/self/status', 'utf8'));
    return hasCap(eff, 'CAP_NET_ADMIN') || hasCap(eff, 'CAP_SYS_ADMIN');
  } catch {
    return true; // let the kernel decide, and say why if it refuses
  }
}

export function ipvsLoaded(): boolean {
  return fs.existsSync('/sys/module/ip_vs');
}

export { serviceKey };
export { formatHook, hookOk, type HookStatus } from './hooks';

export class ReceiverProbe {
  readonly hooks: HookStatus[] = [];
  private obj: BpfObject;
  private fentryRefused?: string;
  /** programs left out because this kernel has a better hook for the same thing: nothing is missing */
  private readonly alternatives = new Set<string>();
  private services = new Map<string, ServiceKey>();
  private retryTimer?: NodeJS.Timeout;
  private closed = false;
  private readonly cgroup?: string;

  constructor(private readonly onEvents: (events: KernelEvent[]) => void, opts: ProbeOptions = {}) {
    ensureTracefs();
    this.cgroup = opts.cgroup ?? cgroup2Root();
    this.obj = openBpfObject(opts.objectPath ?? bpfObjectPath('receiver'));
    try {
      const skipped = this.load(opts, true);
      for (const p of this.obj.programs()) {
        const hook = HOOKS[p.name] ?? p.section;
        const why = skipped.get(p.name);
        if (why) this.hooks.push({ program: p.name, hook, active: false, unused: this.alternatives.has(p.name) || undefined, reason: why });
        else if (UDP_HOOKS.has(p.name)) this.hooks.push({ program: p.name, hook, active: false, standby: true, reason: UDP_STANDBY });
        else this.hooks.push(this.tryAttach(p.name, hook));
      }
      this.setServices(opts.services ?? []);
      this.obj.openRingBuffer('events', (batch) => this.onBatch(batch));
    } catch (e) {
      this.obj.close();
      throw e;
    }
    const k = this.hooks.find((h) => h.program === KPROBE);
    const retryMs = opts.kprobeRetryMs ?? 5000;
    if (k && !k.active && kernelHasKprobes() && retryMs > 0) {
      // ip_vs loads on first use (ipvsadm, keepalived, kube-proxy): pick it up when it appears.
      this.retryTimer = setInterval(() => {
        if (!ipvsLoaded()) return;
        const s = this.tryAttach(KPROBE, HOOKS[KPROBE]);
        Object.assign(k, s);
        if (s.active) clearInterval(this.retryTimer);
      }, retryMs);
      this.retryTimer.unref();
    }
  }

  /**
   * Loads the object with every program the kernel can take; returns the programs left out and why. fentry needs BPF
   * trampolines (x86-64 5.5+, and a kernel that allows them: some refuse with EPERM): when loading them fails, the
   * object is loaded again without them — TCP tracing does not depend on UDP's hooks.
   */
  private load(opts: ProbeOptions, withFentry: boolean): Map<string, string> {
    const skipped = new Map<string, string>();
    this.obj.setGlobal('cfg_trace_all', Buffer.from([opts.traceAll ? 1 : 0]));
    if (opts.ringBufferBytes) this.obj.setMapMaxEntries('events', opts.ringBufferBytes);
    const kprobes = kernelHasKprobes();
    if (!kprobes) {
      skipped.set(KPROBE, 'this kernel has no kprobes (CONFIG_KPROBES off): backends will be unknown');
      skipped.set(UDP_ERROR_KPROBE, 'this kernel has no kprobes (CONFIG_KPROBES off)');
    }
    // bpf_prog_load() refuses a cgroup_skb program without CAP_NET_ADMIN (is_net_admin_prog_type()): without it,
    // load everything else rather than nothing.
    if (!canNetAdmin()) skipped.set(RST_OBSERVER, 'no CAP_NET_ADMIN (needed to load a cgroup_skb program): a refusal the actuator holds back is reported unanswered at its deadline instead');
    // One hook for ICMP errors: the tracepoint where the kernel has it (5.14+), else the IPv4 error handler.
    const unused = hasErrorReportTracepoint() ? UDP_ERROR_KPROBE : UDP_ERROR_TP;
    this.alternatives.add(unused);
    if (unused === UDP_ERROR_KPROBE) skipped.set(UDP_ERROR_KPROBE, 'not needed: sock:inet_sk_error_report reports ICMP errors on this kernel');
    else skipped.set(UDP_ERROR_TP, 'this kernel has no sock:inet_sk_error_report (5.14+): kprobe __udp4_lib_err reports IPv4 ICMP errors instead (IPVS drops ICMPv6 errors before 6.12, docs/udp.md)');
    if (!withFentry) {
      for (const p of [...UDP_FENTRY, UDP_ERROR_TP]) skipped.set(p, skipped.get(p) ?? this.fentryRefused ?? 'fentry refused');
    }
    for (const p of this.obj.programs()) this.obj.setAutoload(p.name, !skipped.has(p.name));
    try {
      this.obj.load();
      return skipped;
    } catch (e) {
      if (!withFentry) throw e;
      const err = e as LibbpfError;
      this.fentryRefused = `loading the UDP flow hooks failed (${err.message}): UDP services are not traced`;
      // A failed load leaves the object unusable: open it again.
      this.obj.close();
      this.obj = openBpfObject(opts.objectPath ?? bpfObjectPath('receiver'));
      return this.load(opts, false);
    }
  }

  private tryAttach(program: string, hook: string): HookStatus {
    if (program === KPROBE && !ipvsLoaded()) {
      return { program, hook, active: false, reason: 'ip_vs is not loaded (modprobe ip_vs): backends unknown until it is' };
    }
    if (program === RST_OBSERVER && !this.cgroup) {
      return { program, hook, active: false, reason: 'no cgroup2 mount (mount -t cgroup2 none /sys/fs/cgroup): a refusal the actuator holds back is reported unanswered at its deadline instead' };
    }
    try {
      this.obj.attach(program, program === RST_OBSERVER ? { cgroup: this.cgroup } : undefined);
      return { program, hook: program === RST_OBSERVER ? `${hook} on ${this.cgroup}` : hook, active: true };
    } catch (e) {
      const err = e as LibbpfError;
      return { program, hook, active: false, reason: `${err.message}${err.logTail ? ` (${err.logTail.trim().split('\n').pop()})` : ''}` };
    }
  }

  private onBatch(batch: Buffer): void {
    const out: KernelEvent[] = [];
    forEachRecord(batch, (at, len) => out.push(decodeEvent(batch, at, len)));
    this.onEvents(out);
  }

  /**
   * Replaces the set of virtual services the kernel side filters on (diffed: no gap while updating), and attaches
   * the UDP hooks when the first UDP service arrives, detaching them when the last one goes.
   */
  setServices(list: ServiceKey[]): void {
    const wantUdp = list.some((s) => s.protocol === 'udp');
    if (wantUdp) this.setUdpHooks(true);
    const next = new Map(list.map((s) => [serviceKey(s.address, s.port, s.protocol).toString('hex'), s]));
    for (const [hex, s] of next) {
      const v = Buffer.alloc(4);
      v.writeUInt32LE(s.id);
      this.obj.mapUpdate('services', Buffer.from(hex, 'hex'), v);
    }
    for (const hex of this.services.keys()) {
      if (!next.has(hex)) this.obj.mapDelete('services', Buffer.from(hex, 'hex'));
    }
    this.services = next;
    if (!wantUdp) this.setUdpHooks(false);
  }

  /** Attaches (or detaches) every UDP hook the object loaded; one that fails to attach says why and stays off. */
  private setUdpHooks(attach: boolean): void {
    for (const h of this.hooks) {
      if (!UDP_HOOKS.has(h.program)) continue;
      if (attach && h.standby) {
        Object.assign(h, { standby: undefined, reason: undefined }, this.tryAttach(h.program, h.hook));
      } else if (!attach && h.active) {
        this.obj.detach(h.program);
        Object.assign(h, { active: false, standby: true, reason: UDP_STANDBY });
      }
    }
    // Unwatched sockets may end, and their addresses be reused, while detached: start from nothing next time.
    if (!attach) for (const k of this.obj.mapKeys('udp_flows')) this.obj.mapDelete('udp_flows', k);
  }

  /** Every UDP flow's counters now, by socket address (the `udp_flows` map). */
  udpFlows(): Map<bigint, UdpCounters> {
    const out = new Map<bigint, UdpCounters>();
    if (this.closed) return out;
    for (const k of this.obj.mapKeys('udp_flows')) {
      const v = this.obj.mapLookup('udp_flows', k);
      if (v) out.set(k.readBigUInt64LE(0), decodeUdpFlow(v));
    }
    return out;
  }

  /** Whether UDP flows are traced: the datagram and reply hooks are attached. */
  get tracesUdp(): boolean {
    return ['vg_udp_sendmsg', 'vg_udp_reply'].every((p) => this.hooks.find((h) => h.program === p)?.active);
  }

  counters(): Record<CounterName, bigint> {
    const sums = this.obj.percpuSums('counters', COUNTERS.length);
    return Object.fromEntries(COUNTERS.map((n, i) => [n, sums[i]])) as Record<CounterName, bigint>;
  }

  /** Delivers whatever is in the ring buffer now. */
  drain(): number {
    return this.obj.consumeRingBuffer();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.retryTimer);
    try {
      this.obj.consumeRingBuffer();
    } finally {
      this.obj.close();
    }
  }
}
