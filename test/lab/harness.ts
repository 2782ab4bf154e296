// Lab test harness: vipguard as a real process (so kill -9 means kill -9), a client load of real connects, and
// small readers of the kernel's IPVS table. Used by the actuator, fault and benchmark code inside the lab VM.
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Topology } from '../../src/lab/topology';
import { waitFor } from '../helpers';
import { clientPortsTo, procKey, readIpvsTable } from '../../src/bench/procfs';

export { VipguardProcess, authHeader, startVipguard, stopVipguard, vgStatus } from '../../src/lab/vipguard-process';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs a command to completion (≤ 5 min); its stdout and stderr, or an assertion naming the exit status. */
export function must(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return `${r.stdout}${r.stderr}`;
}

/** must() without blocking the event loop: samplers and timers keep running while the command does. */
export function mustAsync(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 300_000 }, (err, stdout, stderr) => {
      if (err) reject(new assert.AssertionError({ message: `${cmd} ${args.join(' ')} failed (${err.code ?? err.signal}):\n${stdout}${stderr}` }));
      else resolve(`${stdout}${stderr}`);
    });
  });
}

/**
 * One destination's weight read from /proc/net/ip_vs (no exec: cheap enough to sample every 50 ms under TCG) — of
 * our network namespace, or (`pid`) of the one that process is in, e.g. a client host's vipguard.
 */
export function procWeight(vip: { host: string; port: number }, dest: { ip: string; port: number }, pid?: number): number | undefined {
  return readIpvsTable(pid).get(procKey(vip.host, vip.port))?.find((d) => d.key === procKey(dest.ip, dest.port))?.weight;
}

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
import type { Connect as ConnectResult } from '../../src/lab/load';

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

/**
 * Watches one IPVS destination from /proc every `everyMs` (a read, not an exec of ipvsadm: cheap under TCG): when
 * its weight was first seen at 0, and which client ports IPVS sent to it — times on `clock` (a Load's now()).
 */
export class DestinationWatch {
  weight0At?: number;
  /** client port → first time a connection from it to the destination was seen */
  readonly landed = new Map<number, number>();
  private readonly timer: NodeJS.Timeout;

  constructor(vip: { host: string; port: number }, dest: { ip: string; port: number }, clock: () => number, everyMs = 20) {
    const svc = procKey(vip.host, vip.port);
    const key = procKey(dest.ip, dest.port);
    this.timer = setInterval(() => {
      const t = clock();
      const d = readIpvsTable().get(svc)?.find((x) => x.key === key);
      if (this.weight0At === undefined && d?.weight === 0) this.weight0At = t;
      for (const p of clientPortsTo(fs.readFileSync('/proc/net/ip_vs_conn', 'utf8'), key)) if (!this.landed.has(p)) this.landed.set(p, t);
    }, everyMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** A connect as an assertion shows it: ms after the weight 0 it started, and when IPVS sent it to the destination. */
  explain(r: { at: number; ms: number; outcome: string; localPort?: number }, weight0At: number) {
    const landed = r.localPort === undefined ? undefined : this.landed.get(r.localPort);
    return { at: Math.round(r.at - weight0At), ms: Math.round(r.ms), outcome: r.outcome, landed: landed === undefined ? null : Math.round(landed - weight0At) };
  }
}

export { Daemon, getJson, promQuery } from '../../src/lab/daemon';

/**
 * An Alertmanager configuration (and its storage directory) in `dir` that sends every alert to vipguard's webhook
 * at once, resolutions too, re-checked every second, with the token from `tokenFile`. Returns its path.
 */
export function alertmanagerToWebhook(dir: string, actuatorPort: number, tokenFile: string, groupBy: string[]): string {
  fs.mkdirSync(path.join(dir, 'alertmanager'), { recursive: true });
  const file = path.join(dir, 'alertmanager.yml');
  fs.writeFileSync(file, `
route:
  receiver: vipguard
  group_by: [${groupBy.join(', ')}]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: vipguard
    webhook_configs:
      - url: http://127.0.0.1:${actuatorPort}/webhook
        send_resolved: true
        http_config: { authorization: { credentials_file: ${tokenFile} } }
`);
  return file;
}

/**
 * Black-holes `name` (under a load the caller runs), waits for its weight 0, then samples that weight from /proc
 * every 50 ms until `stop()`: what an upgrade or a restart must never change while the backend is dead.
 */
export async function quarantineAndSample(topo: Topology, name: string, now: () => number, timeoutMs: number):
  Promise<{ quarantinedAt: number; weights: number[]; stop: () => void }> {
  await sleep(1000);
  await topo.set(name, 'blackhole');
  await waitFor(() => ipvsWeights(topo.vip.host, topo.vip.port)[`${topo.backend(name).ip}:${topo.backend(name).port}`] === 0, timeoutMs, `${name} quarantined`);
  const quarantinedAt = now();
  const weights: number[] = [];
  const timer = setInterval(() => weights.push(procWeight(topo.vip, topo.backend(name)) ?? -1), 50);
  return { quarantinedAt, weights, stop: () => clearInterval(timer) };
}

/**
 * The verdict on what quarantineAndSample watched: every connect that started once the backend was out (200 ms
 * on) completed at once — none failed, none waited for a SYN retransmit — and the backend's weight was 0 in every
 * sample. Returns how many connects that covers, for the caller's log line.
 */
export function assertKeptOut(results: readonly ConnectResult[], quarantinedAt: number, weights: readonly number[], during: string): number {
  const after = results.filter((r) => r.at >= quarantinedAt + 200);
  const bad = after.filter((r) => r.outcome !== 'ok' || r.ms > 900);
  assert.ok(after.length >= 20, `load ran through ${during} (${after.length} connects)`);
  assert.deepEqual(bad.map((r) => ({ at: Math.round(r.at - quarantinedAt), ms: Math.round(r.ms), outcome: r.outcome })), [],
    `no connect failed or waited for a retransmit through ${during}`);
  assert.ok(weights.length >= 20 && weights.every((w) => w === 0), `never back in service while dead: ${JSON.stringify([...new Set(weights)])} in ${weights.length} samples`);
  return after.length;
}
