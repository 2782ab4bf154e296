// Lab test harness: vipguard as a real process (so kill -9 means kill -9), a client load of real connects, and
// small readers of the kernel's IPVS table. Used by the actuator, fault and benchmark code inside the lab VM.
import { execFileSync } from 'node:child_process';

export { VipguardProcess, authHeader, startVipguard, stopVipguard, vgStatus } from '../../src/lab/vipguard-process';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Weights of a service's destinations as ipvsadm lists them (an independent reader of the kernel). */
export function ipvsWeights(vip: string, port: number): Record<string, number> {
  const out = execFileSync('ipvsadm', ['-Ln', '-t', `${vip}:${port}`], { encoding: 'utf8' });
  const w: Record<string, number> = {};
  for (const line of out.split('\n')) {
    const m = /->\s+(\S+)\s+\S+\s+(\d+)/.exec(line);
    if (m && m[1] !== 'RemoteAddress:Port') w[m[1]] = Number(m[2]);
  }
  return w;
}

export { Load, connectOnce, type Connect as ConnectResult } from '../../src/lab/load';

export function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

/** When a vipguard process logged a line matching `re` (wall ms), the first at or after `since`. */
export function loggedAt(lines: readonly string[], re: RegExp, since = 0): number | undefined {
  for (const l of lines) {
    const t = Date.parse(l.slice(0, 24));
    if (t >= since && re.test(l)) return t;
  }
  return undefined;
}

/** Linux's SYN retransmits of a connect started at `at` (initial RTO 1 s, doubling), before its `timeoutMs`. */
export function synRetransmits(at: number, timeoutMs: number): number[] {
  const out: number[] = [];
  for (let rto = 1000, t = at + rto; t < at + timeoutMs && out.length < 8; rto *= 2, t += rto) out.push(t);
  return out;
}

export interface RescueVerdict {
  /** failed or slow although a SYN retransmit was due after the quarantine: the rescue did not work */
  broken: ConnectResultLike[];
  /** failed or slow because every retransmit before its deadline came before the quarantine: a late reaction */
  late: ConnectResultLike[];
}
type ConnectResultLike = { at: number; ms: number; outcome: string };

/**
 * Judges a black hole's connects against the kernel's own schedule rather than the emulator's speed. A connect that
 * went to the dead backend completes at its first SYN retransmit after the weight 0 (IPVS reschedules it,
 * expire_nodest_conn); one started after the weight 0 completes at once. If that chance came before the client's
 * deadline, the connect must be ok by then (within `slackMs`, for timers and the client's own loop under TCG). If it
 * did not, the reaction came too late for it: counted as late, which the caller bounds and reports separately (how
 * fast vipguard reacts in an emulator is not what the rescue mechanism is). `quarantinedAt` is on the connects' clock.
 */
export function rescueVerdict(results: readonly ConnectResultLike[], quarantinedAt: number, timeoutMs: number, slackMs = 400): RescueVerdict {
  const v: RescueVerdict = { broken: [], late: [] };
  for (const r of results) {
    const chance = r.at >= quarantinedAt ? r.at : synRetransmits(r.at, timeoutMs).find((t) => t >= quarantinedAt + slackMs);
    if (r.outcome === 'ok' && (chance === undefined || r.at + r.ms <= chance + slackMs)) continue;
    (chance === undefined ? v.late : v.broken).push(r);
  }
  return v;
}
