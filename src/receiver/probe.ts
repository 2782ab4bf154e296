// Loads bpf/receiver.bpf.c and attaches its hooks one by one, reporting which are active, by which mechanism, and
// why others are not: without kprobes or ip_vs the tracepoints still trace every connection, with the backend
// unknown; without fentry (BPF trampolines) UDP flows are not traced. The UDP hooks run on every datagram the host
// sends or receives, so they are attached only while a UDP service is configured (loaded — verified — always).
// Nothing here needs tracefs: tp_btf, fentry and kprobe.multi attach through BPF links, and the kernel's features
// are read from its BTF (src/common/kernel-features.ts). Only the classic kprobe fallback uses perf_event_open.
import * as fs from 'node:fs';
import { BpfObject, LibbpfError, openBpfObject, forEachRecord } from '../native/bpf';
import { bpfObjectPath } from '../common/paths';
import { serviceKey } from '../common/service-key';
import { cgroup2Root } from '../common/cgroup';
import { hasCap, parseCapEff } from '../common/privileges';
import { hasErrorReportTracepoint, kernelHasKprobes, kprobeMultiAvailable } from '../common/kernel-features';
export { kernelHasKprobes };
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
  vg_inet_sock_set_state: 'tp_btf sock:inet_sock_set_state',
  vg_tcp_retransmit_skb: 'tp_btf tcp:tcp_retransmit_skb',
  vg_tcp_receive_reset: 'tp_btf tcp:tcp_receive_reset',
  vg_ip_vs_conn_new_multi: 'kprobe.multi ip_vs_conn_new (IPVS backends)',
  vg_ip_vs_conn_new: 'kprobe ip_vs_conn_new (IPVS backends; perf_event_open)',
  vg_rst_in: 'cgroup_skb ingress (refusals, also those the actuator holds back)',
  vg_udp_sendmsg: 'fentry udp_sendmsg (UDP datagrams out)',
  vg_udpv6_sendmsg: 'fentry udpv6_sendmsg (UDP datagrams out, IPv6)',
  vg_udp_reply: 'fentry __udp_enqueue_schedule_skb (UDP replies)',
  vg_udp_error_report: 'tp_btf sock:inet_sk_error_report (ICMP errors on UDP flows)',
  vg_udp4_lib_err: 'fentry __udp4_lib_err (ICMP errors on UDP flows, IPv4)',
  vg_udp_destroy_sock: 'fentry udp_destroy_sock (UDP flow ends)',
  vg_udpv6_destroy_sock: 'fentry udpv6_destroy_sock (UDP flow ends, IPv6)',
};
/** ip_vs_conn_new: one body, two ways to attach it — kprobe.multi where the kernel has fprobe, else the classic kprobe. */
const KPROBE_MULTI = 'vg_ip_vs_conn_new_multi';
const KPROBE = 'vg_ip_vs_conn_new';
const IPVS_SYMBOLS = ['ip_vs_conn_new'];
const RST_OBSERVER = 'vg_rst_in';
const UDP_FENTRY = ['vg_udp_sendmsg', 'vg_udpv6_sendmsg', 'vg_udp_reply', 'vg_udp_destroy_sock', 'vg_udpv6_destroy_sock'];
const UDP_ERROR_TP = 'vg_udp_error_report';
const UDP_ERROR_FENTRY = 'vg_udp4_lib_err';
/** Attached only while a UDP service is configured: they cost a program run per datagram, whatever its port. */
const UDP_HOOKS = new Set([...UDP_FENTRY, UDP_ERROR_TP, UDP_ERROR_FENTRY]);
const UDP_STANDBY = 'no UDP service configured: attached when one is (the datagram hooks run for every UDP datagram of the host, whatever its port)';

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
    this.cgroup = opts.cgroup ?? cgroup2Root();
    this.obj = openBpfObject(opts.objectPath ?? bpfObjectPath('receiver'));
    let skipped = new Map<string, string>();
    try {
      skipped = this.load(opts, true);
      for (const p of this.obj.programs()) {
        const hook = HOOKS[p.name] ?? p.section;
        const why = skipped.get(p.name);
        if (p.name === KPROBE_MULTI || p.name === KPROBE) continue;
        else if (why) this.hooks.push({ program: p.name, hook, active: false, unused: this.alternatives.has(p.name) || undefined, reason: why });
        else if (UDP_HOOKS.has(p.name)) this.hooks.push({ program: p.name, hook, active: false, standby: true, reason: UDP_STANDBY });
        else this.hooks.push(this.tryAttach(p.name, hook));
      }
      this.hooks.push(...this.attachIpvs(skipped));
      this.setServices(opts.services ?? []);
      this.obj.openRingBuffer('events', (batch) => this.onBatch(batch));
    } catch (e) {
      this.obj.close();
      throw e;
    }
    const ipvsHooks = this.hooks.filter((h) => h.program === KPROBE_MULTI || h.program === KPROBE);
    const retryMs = opts.kprobeRetryMs ?? 5000;
    if (!ipvsHooks.some((h) => h.active) && kernelHasKprobes() && retryMs > 0) {
      // ip_vs loads on first use (ipvsadm, keepalived, kube-proxy): pick it up when it appears.
      this.retryTimer = setInterval(() => {
        if (!ipvsLoaded()) return;
        const now = this.attachIpvs(skipped);
        for (const h of ipvsHooks) Object.assign(h, { unused: undefined, reason: undefined }, now.find((n) => n.program === h.program));
        if (now.some((h) => h.active)) clearInterval(this.retryTimer);
      }, retryMs);
      this.retryTimer.unref();
    }
  }

  /**
   * The ip_vs_conn_new hook, as two statuses (kprobe.multi, classic kprobe): kprobe.multi where the kernel has it
   * (no perf_event_open), tried for real; the classic kprobe where it has not, or where attaching it failed.
   */
  private attachIpvs(skipped: Map<string, string>): HookStatus[] {
    const status = (program: string, why: string, unused = true): HookStatus =>
      ({ program, hook: HOOKS[program], active: false, unused: unused || undefined, reason: why });
    const multiSkipped = skipped.get(KPROBE_MULTI);
    const classicSkipped = skipped.get(KPROBE);
    if (classicSkipped && multiSkipped) return [status(KPROBE_MULTI, multiSkipped, false), status(KPROBE, classicSkipped, false)];
    if (!ipvsLoaded()) {
      const why = 'ip_vs is not loaded (modprobe ip_vs): backends unknown until it is';
      return multiSkipped ? [status(KPROBE_MULTI, multiSkipped), status(KPROBE, why, false)]
        : [status(KPROBE_MULTI, why, false), status(KPROBE, 'kprobe.multi is attached instead, once ip_vs is loaded')];
    }
    if (!multiSkipped) {
      const multi = this.tryAttach(KPROBE_MULTI, HOOKS[KPROBE_MULTI]);
      if (multi.active) return [multi, status(KPROBE, 'not needed: kprobe.multi ip_vs_conn_new is attached')];
      const classic = this.tryAttach(KPROBE, HOOKS[KPROBE]);
      return [status(KPROBE_MULTI, `attaching failed (${multi.reason}): the classic kprobe instead`, classic.active), classic];
    }
    return [status(KPROBE_MULTI, multiSkipped), this.tryAttach(KPROBE, HOOKS[KPROBE])];
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
      skipped.set(KPROBE_MULTI, 'this kernel has no kprobes (CONFIG_KPROBES off): backends will be unknown');
    } else if (!kprobeMultiAvailable()) {
      skipped.set(KPROBE_MULTI, 'this kernel has no kprobe.multi (fprobe: 5.18+ built with CONFIG_FPROBE): the classic kprobe instead, attached with perf_event_open');
    }
    // bpf_prog_load() refuses a cgroup_skb program without CAP_NET_ADMIN (is_net_admin_prog_type()): without it,
    // load everything else rather than nothing.
    if (!canNetAdmin()) skipped.set(RST_OBSERVER, 'no CAP_NET_ADMIN (needed to load a cgroup_skb program): a refusal the actuator holds back is reported unanswered at its deadline instead');
    // One hook for ICMP errors: the tracepoint where the kernel has it (5.14+), else the IPv4 error handler.
    const unused = hasErrorReportTracepoint() ? UDP_ERROR_FENTRY : UDP_ERROR_TP;
    this.alternatives.add(unused);
    if (unused === UDP_ERROR_FENTRY) skipped.set(UDP_ERROR_FENTRY, 'not needed: sock:inet_sk_error_report reports ICMP errors on this kernel');
    else skipped.set(UDP_ERROR_TP, 'this kernel has no sock:inet_sk_error_report (5.14+): fentry __udp4_lib_err reports IPv4 ICMP errors instead (IPVS drops ICMPv6 errors before 6.12, docs/udp.md)');
    if (!withFentry) {
      for (const p of [...UDP_FENTRY, UDP_ERROR_TP, UDP_ERROR_FENTRY]) skipped.set(p, skipped.get(p) ?? this.fentryRefused ?? 'fentry refused');
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
    if (program === RST_OBSERVER && !this.cgroup) {
      return { program, hook, active: false, reason: 'no cgroup2 mount (mount -t cgroup2 none /sys/fs/cgroup): a refusal the actuator holds back is reported unanswered at its deadline instead' };
    }
    try {
      this.obj.attach(program, program === RST_OBSERVER ? { cgroup: this.cgroup } : program === KPROBE_MULTI ? { symbols: IPVS_SYMBOLS } : undefined);
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
