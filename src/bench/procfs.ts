// Cheap, independent readers of the kernel for the benchmarks: the IPVS table and connection table from /proc/net
// (no fork of ipvsadm per poll — under TCG an exec costs a noticeable fraction of a second, a /proc read well
// under a millisecond), and a process's CPU time and memory from /proc/PID. Parsers are pure and unit-tested.
import * as fs from 'node:fs';

/** Destination as IPVS prints it in /proc: uppercase hex IPv4 and port, e.g. 0AC80004:1F90 for 10.200.0.4:8080. */
export function procKey(ip: string, port: number): string {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !(p >= 0 && p <= 255))) throw new Error(`procKey: not an IPv4 address: ${ip}`);
  const hex = (n: number, w: number) => n.toString(16).toUpperCase().padStart(w, '0');
  return `${parts.map((p) => hex(p, 2)).join('')}:${hex(port, 4)}`;
}

export interface ProcDest {
  key: string;
  weight: number;
  active: number;
  inactive: number;
}

/** The protocols /proc/net/ip_vs and ip_vs_conn name in their first column. */
export type ProcProtocol = 'TCP' | 'UDP';

/** /proc/net/ip_vs → service key (e.g. 0A630001:0050) → its destinations. IPv4 services of one protocol (TCP by default). */
export function parseIpvsTable(text: string, protocol: ProcProtocol = 'TCP'): Map<string, ProcDest[]> {
  const out = new Map<string, ProcDest[]>();
  let current: ProcDest[] | undefined;
  for (const line of text.split('\n')) {
    const svc = /^(TCP|UDP)\s+([0-9A-F]{8}:[0-9A-F]{4})\s/.exec(line);
    if (svc && svc[1] === protocol) {
      current = [];
      out.set(svc[2], current);
      continue;
    }
    if (svc || /^(TCP|UDP|SCTP|FWM)\s/.test(line)) {
      current = undefined;
      continue;
    }
    const d = /^\s+->\s+([0-9A-F]{8}:[0-9A-F]{4})\s+\S+\s+(\d+)\s+(\d+)\s+(\d+)/.exec(line);
    if (d && current) current.push({ key: d[1], weight: Number(d[2]), active: Number(d[3]), inactive: Number(d[4]) });
  }
  return out;
}

/** Our network namespace's IPVS table, or (`pid`) that of the namespace process `pid` is in: IPVS is per netns. */
export function readIpvsTable(pid?: number, protocol: ProcProtocol = 'TCP'): Map<string, ProcDest[]> {
  return parseIpvsTable(fs.readFileSync(pid === undefined ? '/proc/net/ip_vs' : `/proc/${pid}/net/ip_vs`, 'utf8'), protocol);
}

/**
 * /proc/net/ip_vs_conn → client ports of the connections (of `protocol`, TCP by default) whose real destination is
 * `destKey` (as procKey gives it, "0AC80004:1F90"). Lines look like `TCP 0AC80001 A1B2 0A630001 0050 0AC80004 1F90
 * SYN_RECV 59`; a UDP flow's state is `UDP`.
 */
export function clientPortsTo(text: string, destKey: string, protocol: ProcProtocol = 'TCP'): number[] {
  const needle = ` ${destKey.replace(':', ' ')} `;
  const ports: number[] = [];
  let i = text.indexOf(needle);
  while (i >= 0) {
    const start = text.lastIndexOf('\n', i) + 1;
    const f = text.slice(start, i).trim().split(/\s+/);
    // Pro FromIP FPrt ToIP TPrt, then (at i) DestIP DPrt: the needle must sit in the DestIP column.
    if (f.length === 5 && f[0] === protocol) ports.push(parseInt(f[2], 16));
    i = text.indexOf(needle, i + needle.length);
  }
  return ports;
}

export interface ProcStat {
  /** user + system CPU time, ms */
  cpuMs: number;
  rssKb: number;
  /** peak RSS (VmHWM), KiB */
  hwmKb: number;
}

const CLK_TCK = 100; // USER_HZ: what /proc/PID/stat counts in on every Linux architecture we run on

/** utime+stime from /proc/PID/stat (fields 14 and 15, counted after the parenthesised comm). */
export function parseStatCpuMs(stat: string): number {
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): utime is field 14 → rest[11], stime rest[12].
  return ((Number(rest[11]) + Number(rest[12])) * 1000) / CLK_TCK;
}

export function parseStatusKb(status: string, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return m ? Number(m[1]) : NaN;
}

export function readProcStat(pid: number): ProcStat {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    cpuMs: parseStatCpuMs(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')),
    rssKb: parseStatusKb(status, 'VmRSS'),
    hwmKb: parseStatusKb(status, 'VmHWM'),
  };
}

/** Busy and total jiffies of all CPUs (first line of /proc/stat). */
export function parseCpuTotals(stat: string): { busy: number; total: number } {
  const f = stat.slice(0, stat.indexOf('\n')).trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3] - (f[4] ?? 0), total };
}

/** One counter of /proc/net/netstat (e.g. TcpExt ListenOverflows): header line, then values line. */
export function parseNetstat(text: string, group: string, name: string): number {
  const lines = text.split('\n').filter((l) => l.startsWith(`${group}:`));
  if (lines.length < 2) return NaN;
  const names = lines[0].trim().split(/\s+/);
  const values = lines[1].trim().split(/\s+/);
  const i = names.indexOf(name);
  return i > 0 ? Number(values[i]) : NaN;
}

/** CPU ms of a set of processes (those that are gone count as 0). */
export function cpuMsOf(pids: number[]): number {
  let ms = 0;
  for (const pid of pids) {
    try { ms += parseStatCpuMs(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { /* exited */ }
  }
  return ms;
}

/** IDs of the BPF programs a process holds open (its /proc/PID/fd entries that are bpf-prog, read via fdinfo). */
export function bpfProgIds(pid: number): number[] {
  const ids: number[] = [];
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) !== 'anon_inode:bpf-prog') continue;
      const m = /^prog_id:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (m) ids.push(Number(m[1]));
    } catch { /* closed meanwhile */ }
  }
  return [...new Set(ids)];
}
