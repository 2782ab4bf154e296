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

export { rescueVerdict, synRetransmits, type RescueVerdict } from '../../src/lab/rescue';
