// What vipguard needs from the kernel to run without root, checked before anything starts, so that a missing
// privilege is one clear refusal naming it — not a receiver that quietly traces nothing or an actuator whose first
// netlink call fails. deploy/vipguard.service grants exactly this; test/lab/privileges.test.ts proves the list on
// 5.10, 6.1 and 6.12 by running vipguard as an unprivileged user with these capabilities and dropping each.
//
// The receiver (BPF tracing):
//   CAP_BPF       create maps, load programs (bpf_capable(), 5.8+; CAP_SYS_ADMIN before)
//   CAP_PERFMON   tracing program types, bpf_probe_read_kernel, socket pointers as keys (perfmon_capable(), 5.8+)
//   nothing else for the TCP tracepoints, the UDP hooks and, where the kernel has kprobe.multi, ip_vs_conn_new: tp_btf,
//                 fentry and kprobe.multi attach through BPF links — no tracefs, no perf_event_open
//   perf_event_open only for the classic kprobe on ip_vs_conn_new, the fallback on kernels without kprobe.multi
//                 (fprobe: 5.18+ built with CONFIG_FPROBE — not Debian 5.10, nor Debian 12's 6.1): CAP_PERFMON, except
//                 that Debian and Ubuntu kernels carry a patch adding kernel.perf_event_paranoid=3 (their default), at
//                 which perf_event_open requires CAP_SYS_ADMIN whatever else is granted. Mainline has no level above 2.
//   RLIMIT_MEMLOCK before 5.11, BPF memory is charged to it (memcg accounting replaced that in 5.11, series
//                 "bpf: switch to memcg-based memory accounting"); libbpf raises it to unlimited, which needs a hard
//                 limit of unlimited (systemd LimitMEMLOCK=infinity) or CAP_SYS_RESOURCE
//   (Module BTF: libbpf < 1.3 needs CAP_SYS_ADMIN to list it; the addon relocates against vmlinux alone when it may
//    not — native/src/bpf_object.cc — so nothing is asked for here.)
// The actuator:
//   CAP_NET_ADMIN the IPVS generic netlink family (every command is GENL_ADMIN_PERM, listing too), the sysctl
//                 net.ipv4.vs.expire_nodest_conn (net sysctls are writable with CAP_NET_ADMIN in the netns's user
//                 namespace), and attaching the synTimeout cgroup sock_ops program
//   CAP_BPF       loading that sock_ops program (actuator.synTimeout.enabled only) and the holdRefusals cgroup_skb
//                 program (actuator.holdRefusals.enabled, the default; loading a cgroup_skb program also takes
//                 CAP_NET_ADMIN: is_net_admin_prog_type() in bpf_prog_load())
// The receiver's cgroup_skb RST observer needs CAP_NET_ADMIN as well; without it the receiver runs without that
// one hook and says so (a refusal the actuator holds back is then reported unanswered at its deadline).
// Both: a listen port below net.ipv4.ip_unprivileged_port_start needs CAP_NET_BIND_SERVICE (the defaults are not).
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { Config } from '../config/config';
import { kernelHasKprobes, kprobeMultiAvailable } from './kernel-features';

/** Capability numbers from include/uapi/linux/capability.h. */
export const CAP = {
  CAP_DAC_OVERRIDE: 1,
  CAP_DAC_READ_SEARCH: 2,
  CAP_NET_BIND_SERVICE: 10,
  CAP_NET_ADMIN: 12,
  CAP_SYS_ADMIN: 21,
  CAP_SYS_RESOURCE: 24,
  CAP_PERFMON: 38,
  CAP_BPF: 39,
} as const;
export type CapName = keyof typeof CAP;

export const DEPLOY_HINT = 'see deploy/vipguard.service';

/** The effective capability set from /proc/self/status ("CapEff:\t000001ffffffffff"). */
export function parseCapEff(status: string): bigint {
  const m = /^CapEff:\s*([0-9a-fA-F]{1,16})\s*$/m.exec(status);
  if (!m) throw new Error('reading capabilities: no CapEff line in /proc/self/status');
  return BigInt(`0x${m[1]}`);
}

export function hasCap(set: bigint, cap: CapName): boolean {
  return ((set >> BigInt(CAP[cap])) & 1n) === 1n;
}

/** Names of the known capabilities in a set, for messages and tests. */
export function capNames(set: bigint): CapName[] {
  return (Object.keys(CAP) as CapName[]).filter((c) => hasCap(set, c));
}

/** "Max locked memory  65536  65536  bytes" from /proc/self/limits; Infinity for unlimited. */
export function parseMemlock(limits: string): { soft: number; hard: number } | undefined {
  const m = /^Max locked memory\s+(\S+)\s+(\S+)/m.exec(limits);
  if (!m) return undefined;
  const n = (s: string) => (s === 'unlimited' ? Infinity : Number(s));
  return { soft: n(m[1]), hard: n(m[2]) };
}

/** Everything the check looks at, gathered once (readFacts) so that the decision is pure and testable. */
export interface PrivilegeFacts {
  capEff: bigint;
  /** /proc/sys/kernel/cap_last_cap: CAP_BPF and CAP_PERFMON exist when it is ≥ 39 (5.8+) */
  capLastCap?: number;
  perfEventParanoid?: number;
  /** the receiver hooks ip_vs_conn_new with kprobe.multi (a BPF link); false: with the classic kprobe (perf_event_open) */
  kprobeMulti: boolean;
  /** the kernel has kprobes at all (else the receiver runs without the ip_vs hook and asks nothing for it) */
  kprobes: boolean;
  /** uname -r, for messages */
  kernelRelease: string;
  memlock?: { soft: number; hard: number };
  /** BPF memory is memcg-accounted (5.11+), so RLIMIT_MEMLOCK does not matter */
  bpfMemcg: boolean;
  /** net.ipv4.ip_unprivileged_port_start */
  unprivilegedPortStart?: number;
}

export interface PrivilegeNeeds {
  receiver: boolean;
  actuator: boolean;
  expireNodestConn: boolean;
  synTimeout: boolean;
  /** actuator.holdRefusals: a cgroup_skb program to load (CAP_BPF) and attach (CAP_NET_ADMIN) */
  holdRefusals?: boolean;
  /** ports vipguard will listen on (0: any) */
  listenPorts: number[];
}

export interface Missing {
  /** what is missing: a capability name, or the setting */
  what: string;
  /** which part needs it, and for what */
  neededBy: string;
  /** how to provide it */
  fix: string;
}

/** What the configured parts need (`parts`: the ones this process runs, after --only). */
export function needsOf(config: Config, parts: { receiver: boolean; actuator: boolean }): PrivilegeNeeds {
  const port = (listen: string) => Number(listen.slice(listen.lastIndexOf(':') + 1));
  const listenPorts: number[] = [];
  if (parts.receiver && config.receiver.prometheus.enabled) listenPorts.push(port(config.receiver.prometheus.listen));
  if (parts.actuator) listenPorts.push(port(config.actuator.listen), port(config.actuator.otlpListen));
  return {
    receiver: parts.receiver,
    actuator: parts.actuator,
    expireNodestConn: parts.actuator && config.actuator.expireNodestConn,
    synTimeout: parts.actuator && config.actuator.synTimeout.enabled,
    holdRefusals: parts.actuator && config.actuator.holdRefusals.enabled,
    listenPorts,
  };
}

const listing = (xs: string[]) => (xs.length < 2 ? xs.join('') : `${xs.slice(0, -1).join(', ')} and ${xs[xs.length - 1]}`);
const fmtBytes = (n: number) => (n === Infinity ? 'unlimited' : n >= 1 << 20 ? `${n / (1 << 20)} MiB` : `${n / 1024} KiB`);

/** The decision, pure: every privilege the parts need and the process lacks, each with who needs it and the fix. */
export function missingPrivileges(needs: PrivilegeNeeds, f: PrivilegeFacts): Missing[] {
  const has = (c: CapName) => hasCap(f.capEff, c);
  const grant = `run as root or grant it (${DEPLOY_HINT})`;
  const out: Missing[] = [];
  // Before 5.8 there is no CAP_BPF/CAP_PERFMON and the kernel asks for CAP_SYS_ADMIN instead.
  const split = f.capLastCap === undefined || f.capLastCap >= CAP.CAP_BPF;
  const bpfCap: CapName = split ? 'CAP_BPF' : 'CAP_SYS_ADMIN';
  const bpfOk = has('CAP_BPF') || has('CAP_SYS_ADMIN');
  const perfOk = has('CAP_PERFMON') || has('CAP_SYS_ADMIN');

  if (needs.receiver) {
    if (!split && !bpfOk) {
      out.push({ what: 'CAP_SYS_ADMIN', neededBy: 'the receiver to load its BPF programs (this kernel predates CAP_BPF and CAP_PERFMON, 5.8)', fix: grant });
    } else {
      if (!bpfOk) out.push({ what: 'CAP_BPF', neededBy: 'the receiver to create its BPF maps and load its programs', fix: grant });
      if (!perfOk) {
        out.push({ what: 'CAP_PERFMON', neededBy: 'the receiver to load tracing programs (tp_btf, fentry, kprobe ip_vs_conn_new) that read kernel memory', fix: grant });
      }
    }
    if (f.kprobes && !f.kprobeMulti && (f.perfEventParanoid ?? 0) > 2 && !has('CAP_SYS_ADMIN')) {
      out.push({
        what: `kernel.perf_event_paranoid ≤ 2 (it is ${f.perfEventParanoid})`,
        neededBy: `the receiver's kprobe on ip_vs_conn_new (each connection's real backend): this kernel (${f.kernelRelease}) has ` +
          'no kprobe.multi (fprobe: 5.18+ built with CONFIG_FPROBE), so the kprobe is attached with perf_event_open, which ' +
          'Debian and Ubuntu kernels restrict to CAP_SYS_ADMIN at level 3 and above',
        fix: 'set kernel.perf_event_paranoid=2 (deploy/README.md, "Kernels without kprobe.multi") or grant CAP_SYS_ADMIN',
      });
    }
    const ml = f.memlock;
    if (!f.bpfMemcg && ml && ml.soft !== Infinity && ml.hard !== Infinity && !has('CAP_SYS_RESOURCE')) {
      out.push({
        what: `RLIMIT_MEMLOCK unlimited (it is ${fmtBytes(ml.soft)}, hard ${fmtBytes(ml.hard)})`,
        neededBy: 'the receiver\'s BPF maps and ring buffer: this kernel charges BPF memory to RLIMIT_MEMLOCK (memcg accounting came in 5.11)',
        fix: 'set LimitMEMLOCK=infinity (deploy/vipguard.service does) or grant CAP_SYS_RESOURCE',
      });
    }
  }
  if (needs.actuator) {
    if (!has('CAP_NET_ADMIN')) {
      const uses = ['change IPVS over netlink'];
      if (needs.expireNodestConn) uses.push('set net.ipv4.vs.expire_nodest_conn');
      if (needs.synTimeout) uses.push('attach the synTimeout sock_ops program');
      if (needs.holdRefusals) uses.push('load and attach the holdRefusals cgroup_skb program');
      out.push({ what: 'CAP_NET_ADMIN', neededBy: `the actuator to ${listing(uses)}`, fix: grant });
    }
    const programs = [needs.synTimeout && 'the synTimeout sock_ops program (actuator.synTimeout)', needs.holdRefusals && 'the holdRefusals cgroup_skb program (actuator.holdRefusals)']
      .filter((x): x is string => !!x);
    if (programs.length && !bpfOk && !(needs.receiver && out.some((m) => m.what === bpfCap))) {
      out.push({ what: bpfCap, neededBy: `the actuator to load ${listing(programs)}`, fix: grant });
    }
  }
  const start = f.unprivilegedPortStart ?? 1024;
  const low = [...new Set(needs.listenPorts.filter((p) => p > 0 && p < start))];
  if (low.length && !has('CAP_NET_BIND_SERVICE')) {
    out.push({
      what: 'CAP_NET_BIND_SERVICE',
      neededBy: `listening on port${low.length > 1 ? 's' : ''} ${low.join(', ')} (below net.ipv4.ip_unprivileged_port_start=${start})`,
      fix: 'use ports ≥ 1024 or grant it',
    });
  }
  return out;
}

/** One line per missing privilege, in the form `vipguard: missing X (needed by …) — fix`. */
export function formatMissing(missing: Missing[]): string {
  return missing.map((m) => `vipguard: missing ${m.what} (needed by ${m.neededBy}) — ${m.fix}`).join('\n');
}

export class PrivilegeError extends Error {
  constructor(readonly missing: Missing[]) {
    // The CLI prefixes the first line with "vipguard: "; the others carry it already.
    super(`refusing to start: ${missing.length} missing privilege${missing.length > 1 ? 's' : ''}\n${formatMissing(missing)}`);
    this.name = 'PrivilegeError';
  }
}

// ---- facts from this process and kernel ------------------------------------------------------------------------

function readNumber(file: string): number | undefined {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether BPF memory is memcg-accounted. libbpf decides the same question by probing for the helper
 * bpf_ktime_get_coarse_ns, which arrived in the same release (5.11); we look for its name in the kernel's BTF,
 * and fall back to the release number where there is no BTF.
 */
export function bpfMemcgAccounting(): boolean {
  try {
    return fs.readFileSync('/sys/kernel/btf/vmlinux').includes('\0bpf_ktime_get_coarse_ns\0');
  } catch {
    const m = /^(\d+)\.(\d+)/.exec(os.release());
    return !!m && (Number(m[1]) > 5 || (Number(m[1]) === 5 && Number(m[2]) >= 11));
  }
}

/** Reads the facts; the receiver's (its ip_vs hook, BPF memory accounting) only when `receiver` is set. */
export function readFacts(receiver = true): PrivilegeFacts {
  let limits = '';
  try { limits = fs.readFileSync('/proc/self/limits', 'utf8'); } catch { /* no procfs limits: skip the memlock check */ }
  return {
    capEff: parseCapEff(fs.readFileSync('/proc/self/status', 'utf8')),
    capLastCap: readNumber('/proc/sys/kernel/cap_last_cap'),
    perfEventParanoid: readNumber('/proc/sys/kernel/perf_event_paranoid'),
    kprobeMulti: receiver ? kprobeMultiAvailable() : true,
    kprobes: receiver ? kernelHasKprobes() : false,
    kernelRelease: os.release(),
    memlock: parseMemlock(limits),
    bpfMemcg: receiver ? bpfMemcgAccounting() : true,
    unprivilegedPortStart: readNumber('/proc/sys/net/ipv4/ip_unprivileged_port_start'),
  };
}

/** Throws a PrivilegeError naming every missing privilege; returns quietly when all are there. */
export function checkPrivileges(needs: PrivilegeNeeds, facts: PrivilegeFacts = readFacts(needs.receiver)): void {
  const missing = missingPrivileges(needs, facts);
  if (missing.length) throw new PrivilegeError(missing);
}
