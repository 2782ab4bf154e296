// The demo, inside the lab VM: one virtual service, three backends, real curl clients at a steady rate, and
// the same failure timeline played twice — first on bare IPVS, then with vipguard running. The receiver (sensing
// only) watches both runs, so every connection is attributed to the backend IPVS really chose.
//
// Timeline (seconds): b2 is black-holed at 6 and back at 22; b3's listener is killed at 28 and back at 40; the
// run ends at 46. When scripts/jaeger.sh has built Jaeger, it runs beside vipguard and the vipguard run's spans are
// exported to it; since the VM has no network device, the end of the demo prints what its query API holds.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Topology } from '../lab/topology';
import { Receiver } from '../receiver/receiver';
import { Attempt, LifecycleSink } from '../receiver/lifecycle';
import { monotonicNow } from '../native/clock';
import { labConfig, startVipguard, stopVipguard, VipguardProcess, vgStatus } from '../lab/vipguard-process';
import { renderHtml } from './plot';
import { IpvsClient } from '../actuator/ipvs';
import { JaegerProcess, findTraces, jaegerBinaryIfBuilt, jaegerBinaryPath, rescueIn, startJaeger, stopJaeger } from '../lab/jaeger';

export interface Step { at: number; backend: string; state: 'healthy' | 'blackhole' | 'refuse'; label: string }

export const TIMELINE: Step[] = [
  { at: 6, backend: 'b2', state: 'blackhole', label: 'b2 black-holed (packets dropped)' },
  { at: 22, backend: 'b2', state: 'healthy', label: 'b2 back' },
  { at: 28, backend: 'b3', state: 'refuse', label: "b3's listener killed (RST)" },
  { at: 40, backend: 'b3', state: 'healthy', label: 'b3 back' },
];
export const DURATION_S = 46;
// Clients: unmodified HTTP clients, one process per request. Under emulation a dynamically linked curl costs
// ~0.3-0.8 s of CPU to start and the guest has about one CPU, so the default client is busybox's static wget
// (~0.03 s); `--client curl` uses curl at a rate the guest can sustain.
const CLIENT = process.env.VIPGUARD_DEMO_CLIENT === 'curl' ? 'curl' : 'wget';
const RATE = CLIENT === 'curl' ? 1 : 5; // requests started per second
const CLIENT_TIMEOUT_S = 10; // the application's patience

export interface ClientResult { at: number; doneAt: number; ms: number; ok: boolean; backend?: string; error?: string }
export interface AttemptRecord { at: number; ms: number; backend?: string; outcome: string; index: number }
export interface QuarantineSpan { backend: string; from: number; to?: number }
export interface RunRecord {
  name: 'bare IPVS' | 'vipguard';
  clients: ClientResult[];
  attempts: AttemptRecord[];
  quarantines: QuarantineSpan[];
  steps: Step[];
}

/**
 * One request by a real client process. curl reports its own time (`time_total`, excluding its start-up under
 * emulation); wget is timed from outside and given up on after the application's patience by coreutils'
 * timeout, as an application would.
 */
function request(url: string): Promise<{ ok: boolean; ms: number; body: string; error?: string }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const p = CLIENT === 'curl'
      ? spawn('curl', ['-s', '-S', '--connect-timeout', String(CLIENT_TIMEOUT_S), '-m', String(CLIENT_TIMEOUT_S + 2),
        '-w', '\n%{time_total}', url], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('timeout', [String(CLIENT_TIMEOUT_S), 'busybox', 'wget', '-q', '-O', '-', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (b) => (out += b));
    p.stderr.on('data', (b) => (err += b));
    p.on('exit', (code) => {
      const wall = performance.now() - t0;
      if (CLIENT === 'wget') {
        const error = code === 0 ? undefined : code === 124 ? `no answer within ${CLIENT_TIMEOUT_S} s` : err.trim().replace(/^wget: /, '') || `exit ${code}`;
        resolve({ ok: code === 0, ms: wall, body: out.trim(), error });
        return;
      }
      const lines = out.trim().split('\n');
      const total = Number(lines.pop());
      const ms = Number.isFinite(total) && total > 0 ? total * 1000 : wall;
      resolve({ ok: code === 0, ms, body: lines.join('\n'), error: code === 0 ? undefined : err.trim().replace(/^curl: \(\d+\) /, '') });
    });
  });
}

/** `traces`: Jaeger's OTLP endpoint, when it runs beside vipguard (straight from the receiver: no collector here). */
const VG_CONFIG = (vip: string, port: number, traces?: string) => labConfig({ address: vip, port, name: 'demo' }, {
  actuator: { reconcileInterval: '1s', quarantine: { base: '1s', max: '30s' } },
  ...(traces ? { receiver: { export: { enabled: true, endpoint: traces } } } : {}),
});

async function playRun(name: RunRecord['name'], topo: Topology, ipvs: IpvsClient, log: (l: string) => void, jaeger?: JaegerProcess): Promise<RunRecord> {
  const backendOf = new Map<string, string>(topo.backends.map((b) => [b.ip, b.name]));
  const rec: RunRecord = { name, clients: [], attempts: [], quarantines: [], steps: TIMELINE };
  let t0 = performance.now();
  let t0mono = monotonicNow();
  const rel = () => (performance.now() - t0) / 1000;
  const sink: LifecycleSink = {
    attemptEnded: (a: Attempt) => rec.attempts.push({
      at: Number(a.startNs - t0mono) / 1e9, ms: Number(a.endNs - a.startNs) / 1e6,
      backend: a.backend ? backendOf.get(a.backend.addr) : undefined, outcome: a.outcome, index: a.index,
    }),
    connectionStarted: () => {},
    connectionEnded: () => {},
  };
  const receiver = new Receiver({ services: [{ name: 'demo', address: topo.vip.host, port: topo.vip.port }], sinks: [sink] });
  let vg: VipguardProcess | undefined;
  if (name === 'vipguard') vg = await startVipguard(VG_CONFIG(topo.vip.host, topo.vip.port, jaeger && `127.0.0.1:${jaeger.ports.otlp}`));
  // The clock of the run starts once everything is up.
  t0 = performance.now();
  t0mono = monotonicNow();
  log(`--- ${name}: ${RATE} ${CLIENT} requests/s to http://${topo.vip.host}:${topo.vip.port}/ for ${DURATION_S} s ` +
    `(each gives up after ${CLIENT_TIMEOUT_S} s)${vg ? ', vipguard running' : ', no health management'}`);

  const pending = new Set<Promise<void>>();
  let switching: Promise<void> = Promise.resolve();
  let started = 0;
  let step = 0;
  const open = new Map<string, QuarantineSpan>();
  let lastSecond = 0;
  const url = `http://${topo.vip.host}:${topo.vip.port}/`;
  while (rel() < DURATION_S) {
    const now = rel();
    while (step < TIMELINE.length && TIMELINE[step].at <= now) {
      // Switched in the background, in order: the clients keep their pace while the fixture works.
      const s = TIMELINE[step++];
      log(`t=${now.toFixed(1).padStart(4)}s  >>> ${s.label}`);
      switching = switching.then(() => topo.set(s.backend, s.state)).catch((e) => log(`demo: ${(e as Error).message}`));
    }
    for (; started < Math.floor(now * RATE); started++) {
      const at = rel();
      const p = request(url).then((r) => {
        rec.clients.push({ at, doneAt: rel(), ms: r.ms, ok: r.ok, backend: r.ok ? /b\d+/.exec(r.body)?.[0] : undefined, error: r.error });
      });
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    if (Math.floor(now) > lastSecond) {
      lastSecond = Math.floor(now);
      const st = vg ? await vgStatus(vg).catch(() => undefined) : undefined;
      const weights = new Map((await ipvs.listDestinations(`tcp/${topo.vip.host}:${topo.vip.port}`)).map((d) => [d.id.address, d.weight]));
      for (const d of st?.services?.[0]?.destinations ?? []) {
        const b = backendOf.get(String(d.destination).split(':')[0]) ?? d.destination;
        if (d.state === 'quarantined' && !open.has(b)) { const q = { backend: b, from: now }; open.set(b, q); rec.quarantines.push(q); }
        if (d.state !== 'quarantined' && open.has(b)) { open.get(b)!.to = now; open.delete(b); }
      }
      log(view(rec, lastSecond, topo, weights, st));
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  await Promise.all(pending);
  await switching;
  for (const q of open.values()) q.to = rel();
  receiver.drain();
  receiver.close();
  await stopVipguard(vg);
  for (const b of topo.backends) await topo.set(b.name, 'healthy');
  return rec;
}

/** One line per second: the clients' outcomes in the last second, and each backend as IPVS and vipguard see it. */
function view(rec: RunRecord, second: number, topo: Topology, weights: Map<string, number>, st: any): string { // eslint-disable-line @typescript-eslint/no-explicit-any
  const inSec = rec.clients.filter((c) => c.doneAt >= second - 1 && c.doneAt < second);
  const ok = inSec.filter((c) => c.ok).length;
  const slow = inSec.filter((c) => c.ok && c.ms > 2000).length;
  const failed = inSec.filter((c) => !c.ok).length;
  const backends = topo.backends.map((b) => {
    const att = rec.attempts.filter((a) => a.backend === b.name && a.at >= second - 1 && a.at < second);
    const bad = att.filter((a) => a.outcome !== 'established').length;
    const d = st?.services?.[0]?.destinations?.find((x: { destination: string }) => x.destination.startsWith(`${b.ip}:`));
    const q = d?.state === 'quarantined' ? ` HELD ${Math.max(0, Math.round((Date.parse(d.until) - Date.now()) / 1000))}s`
      : d?.state === 'probing' ? ' OUT, PROBING' : '';
    return `${b.name} ${b.state.padEnd(9)} w${weights.get(b.ip) ?? '?'} ${att.length - bad}✓ ${bad}✗${q}`.padEnd(34);
  });
  const waiting = rec.clients.length < Math.floor(second * RATE) ? Math.floor(second * RATE) - rec.clients.length : 0;
  return `t=${String(second).padStart(3)}s  clients done: ${String(ok - slow).padStart(2)} ok ${String(slow).padStart(2)} slow ${String(failed).padStart(2)} failed, ${String(waiting).padStart(2)} waiting | ${backends.join(' | ')}`;
}

export function summarize(runs: RunRecord[]): string {
  const lines = ['', '=== summary: what the applications saw ==='];
  lines.push(`run          requests  failed  slower than 2 s  p50 request  p99 request   worst   (${CLIENT}, ${RATE}/s)`);
  for (const r of runs) {
    const ms = r.clients.map((c) => c.ms).sort((a, b) => a - b);
    const q = (p: number) => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))] ?? NaN;
    lines.push(`${r.name.padEnd(12)} ${String(r.clients.length).padStart(8)}  ${String(r.clients.filter((c) => !c.ok).length).padStart(6)}  ` +
      `${String(r.clients.filter((c) => c.ms > 2000).length).padStart(15)}  ${q(0.5).toFixed(0).padStart(8)} ms  ${q(0.99).toFixed(0).padStart(8)} ms  ${(ms[ms.length - 1] ?? 0).toFixed(0).padStart(6)} ms`);
  }
  const [bare, vg] = runs;
  if (bare && vg) {
    const bad = (r: RunRecord) => r.clients.filter((c) => !c.ok || c.ms > 2000).length;
    lines.push(`bare IPVS: ${bad(bare)} requests failed or took more than 2 s; with vipguard: ${bad(vg)}.`);
    for (const q of vg.quarantines) lines.push(`vipguard quarantined ${q.backend} from t=${q.from.toFixed(0)}s to t=${q.to?.toFixed(0) ?? 'end'}s`);
  }
  return lines.join('\n');
}

/**
 * What Jaeger holds of the vipguard run, read back through its query API (the VM has no network device, so the API
 * is not reachable from outside: the lines are the way to look): traces and attempts per backend, and for each
 * backend that failed one rescued connect, span by span, with the query that finds such attempts.
 */
async function jaegerReport(jaeger: JaegerProcess, topo: Topology, runStartMs: number): Promise<string> {
  const service = 'vipguard-receiver';
  const lookbackMs = Date.now() - runStartMs;
  const traces = await findTraces(jaeger.queryUrl, { service, lookbackMs, limit: 100_000 });
  const spans = traces.flat();
  const lines = ['', `=== in Jaeger (v2, inside the VM; its query API was ${jaeger.queryUrl}) ===`,
    `${service}: ${traces.length} traces, ${spans.filter((s) => s.name === 'vipguard.connect').length} vipguard.connect spans (handshake attempts), ` +
    `${spans.filter((s) => s.name === 'vipguard.connection').length} vipguard.connection spans`];
  for (const b of topo.backends) {
    const byOutcome = new Map<string, number>();
    for (const s of spans) {
      if (s.name === 'vipguard.connect' && s.tags['network.peer.address'] === b.ip) {
        const o = String(s.tags['vipguard.outcome']);
        byOutcome.set(o, (byOutcome.get(o) ?? 0) + 1);
      }
    }
    lines.push(`  ${b.name} (${b.ip}): ${[...byOutcome].map(([o, n]) => `${n} ${o}`).join(', ') || 'no attempts'}`);
  }
  for (const [outcome, backend] of [['unanswered', 'b2'], ['refused', 'b3']] as const) {
    const ip = topo.backend(backend).ip;
    const tags = { 'network.peer.address': ip, 'vipguard.outcome': outcome };
    const found = await findTraces(jaeger.queryUrl, { service, tags, lookbackMs });
    const r = found.map((t) => rescueIn(t, ip, [outcome])).find(Boolean);
    lines.push(`a connect rescued from ${backend} (GET /api/traces?service=${service}&tags=${JSON.stringify(tags)}: ${found.length} traces):`);
    if (!r) { lines.push('  none found'); continue; }
    const name = (ip: unknown) => topo.backends.find((x) => x.ip === ip)?.name ?? String(ip);
    for (const s of [...r.path, ...(r.connection ? [r.connection] : [])]) {
      lines.push(`  trace ${s.traceId.slice(0, 8)}… ${s.name.padEnd(19)} ${name(s.tags['network.peer.address'])} ` +
        `${String(s.tags['vipguard.outcome'] ?? (s.tags['error.type'] ? 'reset' : 'closed')).padEnd(11)} ${(s.durationUs / 1000).toFixed(1).padStart(7)} ms` +
        (s.tags['vipguard.attempt'] !== undefined ? `  attempt ${s.tags['vipguard.attempt']}` : ''));
    }
  }
  return lines.join('\n');
}

export async function main(): Promise<void> {
  const log = (l: string) => process.stdout.write(l + '\n');
  const out = process.env.VIPGUARD_LAB_OUT ?? fs.mkdtempSync('/tmp/vipguard-demo-');
  const topo = await Topology.up({ backends: ['healthy', 'healthy', 'healthy'], ipv6: false });
  const ipvs = await IpvsClient.open();
  // Jaeger beside vipguard when scripts/jaeger.sh built it; the demo is the same without it.
  let jaeger: JaegerProcess | undefined;
  if (jaegerBinaryIfBuilt()) {
    jaeger = await startJaeger({ discardMetrics: true }).catch((e) => { log(`demo: Jaeger did not start, going on without it: ${(e as Error).message.split('\n')[0]}`); return undefined; });
    if (jaeger) log(`demo: Jaeger v2 runs beside vipguard (in-memory, OTLP on 127.0.0.1:${jaeger.ports.otlp}); the vipguard run's spans go there and are read back at the end`);
  } else {
    log(`demo: Jaeger is not built (${jaegerBinaryPath()}): the spans go nowhere; scripts/jaeger.sh builds it`);
  }
  try {
    const bare = await playRun('bare IPVS', topo, ipvs, log);
    const vgStart = Date.now();
    const runs = [bare, await playRun('vipguard', topo, ipvs, log, jaeger)];
    log(summarize(runs));
    if (jaeger) {
      await new Promise((r) => setTimeout(r, 1500)); // the receiver's last batch and Jaeger's own (200 ms)
      log(await jaegerReport(jaeger, topo, vgStart).catch((e) => `demo: could not read Jaeger's query API: ${(e as Error).message}`));
    }
    fs.writeFileSync(path.join(out, 'demo.json'), JSON.stringify(runs, null, 1));
    fs.writeFileSync(path.join(out, 'demo.html'), renderHtml(runs, `kernel ${process.env.VIPGUARD_LAB_KERNEL ?? '?'}`));
  } finally {
    ipvs.close();
    await stopJaeger(jaeger);
    await topo.down();
  }
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`demo: ${(e as Error).stack}\n`);
    process.exit(1);
  });
}
