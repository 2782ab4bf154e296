// The demo, inside the lab VM: three backends behind two virtual services on one VIP — HTTP (tcp 10.99.0.1:80,
// busybox httpd) and DNS (udp 10.99.0.1:53, dnsmasq answering with the backend's own address) — HTTP clients and
// DNS lookups at a steady rate, and the same failure timeline played twice — first on bare IPVS, then with vipguard
// running. The receiver (sensing only) watches both runs and both services, so every connection and every DNS flow
// is attributed to the backend IPVS really chose.
//
// Timeline (seconds): b2 is black-holed at 6 and back at 22 (the nft drop set drops by address: HTTP and DNS);
// b3's listeners are killed at 28 (httpd answers RST, dnsmasq's port ICMP port unreachable) and back at 40; the
// run ends at 46. When scripts/jaeger.sh has built Jaeger, it runs beside vipguard and the vipguard run's spans are
// exported to it; since the VM has no network device, the end of the demo prints what its query API holds.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Topology } from '../lab/topology';
import { Receiver, ReceiverSink } from '../receiver/receiver';
import { Attempt } from '../receiver/lifecycle';
import { monotonicNow } from '../native/clock';
import { labConfig, startVipguard, stopVipguard, VipguardProcess, vgStatus } from '../lab/vipguard-process';
import { renderHtml } from './plot';
import { IpvsClient } from '../actuator/ipvs';
import { JaegerProcess, findTraces, jaegerBinaryIfBuilt, jaegerBinaryPath, rescueIn, startJaeger, stopJaeger } from '../lab/jaeger';
import { DnsLoad, Lookup, RESOLVER_POLICY } from '../lab/dns-load';
import type { Exchange } from '../receiver/udp-flows';

export interface Step { at: number; backend: string; state: 'healthy' | 'blackhole' | 'refuse'; label: string }

export const TIMELINE: Step[] = [
  { at: 6, backend: 'b2', state: 'blackhole', label: 'b2 black-holed (packets dropped)' },
  { at: 22, backend: 'b2', state: 'healthy', label: 'b2 back' },
  { at: 28, backend: 'b3', state: 'refuse', label: "b3's listeners killed (RST, port unreachable)" },
  { at: 40, backend: 'b3', state: 'healthy', label: 'b3 back' },
];
export const DURATION_S = 46;
// Clients: unmodified HTTP clients, one process per request. Under emulation a dynamically linked curl costs
// ~0.3-0.8 s of CPU to start and the guest has about one CPU, so the default client is busybox's static wget
// (~0.03 s); `--client curl` uses curl at a rate the guest can sustain.
const CLIENT = process.env.VIPGUARD_DEMO_CLIENT === 'curl' ? 'curl' : 'wget';
const RATE = CLIENT === 'curl' ? 1 : 5; // requests started per second
const CLIENT_TIMEOUT_S = 10; // the application's patience
// DNS clients: lookups made the way the C library's resolver makes them (src/lab/dns-load.ts: a fresh socket per
// lookup, 5 s timeout, 2 tries; the retry after a timeout on the same socket, after a refusal on a new one), in this
// process. A getent or dig process per lookup would cost 0.1-0.5 s of the guest's one vCPU each under emulation and
// slow the HTTP clients beside them; these cost next to nothing.
const DNS_PORT = 53;
const DNS_NAME = 'who.vipguard.test';
const DNS_RATE = 2; // lookups started per second
const SLOW_MS = 2000;

export interface ClientResult { at: number; doneAt: number; ms: number; ok: boolean; backend?: string; error?: string }
export interface AttemptRecord { at: number; ms: number; backend?: string; outcome: string; index: number }
/** A UDP exchange the receiver classified (the kernel's view of the DNS flows): answered, unanswered, refused. */
export interface ExchangeRecord { at: number; backend?: string; outcome: string; count: number }
/** protocol: which virtual service the backend was held out of (tcp: weight 0; udp: removed) */
export interface QuarantineSpan { backend: string; protocol: 'tcp' | 'udp'; from: number; to?: number }
export interface RunRecord {
  name: 'bare IPVS' | 'vipguard';
  clients: ClientResult[];
  /** the DNS lookups, in the clients' terms: ok when answered; backend = who answered */
  lookups: ClientResult[];
  attempts: AttemptRecord[];
  exchanges: ExchangeRecord[];
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

/** One finished lookup in the clients' terms. */
function lookupResult(l: Lookup, backendOf: Map<string, string>): ClientResult {
  const at = l.at / 1000;
  const tries = l.tries > 1 ? ` (${l.tries} tries)` : '';
  const error = l.outcome === 'ok' ? undefined
    : l.outcome === 'timeout' ? `no answer within ${RESOLVER_POLICY.attempts} × ${RESOLVER_POLICY.timeoutMs / 1000} s`
      : l.outcome === 'refused' ? `refused${tries}` : `${l.errno ?? 'error'}${tries}`;
  return { at, doneAt: at + l.ms / 1000, ms: l.ms, ok: l.outcome === 'ok', backend: l.answeredBy && (backendOf.get(l.answeredBy) ?? l.answeredBy), error };
}

/**
 * `traces`: Jaeger's OTLP endpoint, when it runs beside vipguard (straight from the receiver: no collector here).
 * The DNS service is watched with the restore probe asking dnsmasq the demo's name; a UDP destination is quarantined
 * by removing it, which needs expire_nodest_conn (the schema's default, true) so its flows move at their next datagram.
 */
const VG_CONFIG = (vip: string, port: number, traces?: string) => labConfig({ address: vip, port, name: 'demo' }, {
  services: [
    { name: 'demo', address: vip, port },
    { name: 'dns', address: vip, port: DNS_PORT, protocol: 'udp', probe: { dns: DNS_NAME } },
  ],
  actuator: { reconcileInterval: '1s', quarantine: { base: '1s', max: '30s' }, expireNodestConn: true },
  ...(traces ? { receiver: { export: { enabled: true, endpoint: traces } } } : {}),
});

async function playRun(name: RunRecord['name'], topo: Topology, ipvs: IpvsClient, log: (l: string) => void, jaeger?: JaegerProcess): Promise<RunRecord> {
  const backendOf = new Map<string, string>(topo.backends.map((b) => [b.ip, b.name]));
  const rec: RunRecord = { name, clients: [], lookups: [], attempts: [], exchanges: [], quarantines: [], steps: TIMELINE };
  let t0 = performance.now();
  let t0mono = monotonicNow();
  const rel = () => (performance.now() - t0) / 1000;
  const sink: ReceiverSink = {
    attemptEnded: (a: Attempt) => rec.attempts.push({
      at: Number(a.startNs - t0mono) / 1e9, ms: Number(a.endNs - a.startNs) / 1e6,
      backend: a.backend ? backendOf.get(a.backend.addr) : undefined, outcome: a.outcome, index: a.index,
    }),
    connectionStarted: () => {},
    connectionEnded: () => {},
    exchange: (e: Exchange) => rec.exchanges.push({
      at: Number(e.startNs - t0mono) / 1e9, backend: e.backend ? backendOf.get(e.backend.addr) : undefined, outcome: e.outcome, count: e.count,
    }),
  };
  const receiver = new Receiver({
    services: [{ name: 'demo', address: topo.vip.host, port: topo.vip.port }, { name: 'dns', address: topo.vip.host, port: DNS_PORT, protocol: 'udp' }],
    sinks: [sink],
  });
  let vg: VipguardProcess | undefined;
  if (name === 'vipguard') vg = await startVipguard(VG_CONFIG(topo.vip.host, topo.vip.port, jaeger && `127.0.0.1:${jaeger.ports.otlp}`));
  // The clock of the run starts once everything is up.
  t0 = performance.now();
  t0mono = monotonicNow();
  const dns = new DnsLoad({ host: topo.vip.host, port: DNS_PORT, name: DNS_NAME, rate: DNS_RATE, flows: 0, flowEveryMs: 1000, epoch: t0 });
  log(`--- ${name}: ${RATE} ${CLIENT} requests/s to http://${topo.vip.host}:${topo.vip.port}/ (each gives up after ${CLIENT_TIMEOUT_S} s) ` +
    `and ${DNS_RATE} DNS lookups/s of ${DNS_NAME} at ${topo.vip.host}:${DNS_PORT} (resolver defaults: ${RESOLVER_POLICY.timeoutMs / 1000} s timeout, ` +
    `${RESOLVER_POLICY.attempts} tries) for ${DURATION_S} s${vg ? ', vipguard running' : ', no health management'}`);
  await dns.start();
  // The load appends each lookup as it ends; copied into the record as they come.
  const syncLookups = () => { for (const l of dns.lookups.slice(rec.lookups.length)) rec.lookups.push(lookupResult(l, backendOf)); };

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
      const inUdp = new Set((await ipvs.listDestinations(`udp/${topo.vip.host}:${DNS_PORT}`)).map((d) => d.id.address));
      for (const protocol of ['tcp', 'udp'] as const) {
        for (const d of serviceStatus(st, protocol)?.destinations ?? []) {
          const b = backendOf.get(String(d.destination).split(':')[0]) ?? d.destination;
          const k = `${protocol} ${b}`;
          // Probing is still out of service (weight 0, or removed): the band lasts until the restore.
          const out = d.state === 'quarantined' || d.state === 'probing';
          if (out && !open.has(k)) { const q = { backend: b, protocol, from: now }; open.set(k, q); rec.quarantines.push(q); }
          if (!out && open.has(k)) { open.get(k)!.to = now; open.delete(k); }
        }
      }
      syncLookups();
      log(view(rec, lastSecond, topo, { weights, inUdp }, st));
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  // No lookup starts after this; the ones under way end within the resolver's 2 × 5 s, as the requests within 10 s.
  await Promise.all([Promise.all(pending), dns.stop()]);
  syncLookups();
  await switching;
  for (const q of open.values()) q.to = rel();
  receiver.drain();
  receiver.close();
  await stopVipguard(vg);
  for (const b of topo.backends) await topo.set(b.name, 'healthy');
  return rec;
}

/** The status of the demo's TCP (HTTP) or UDP (DNS) service, as vipguard reports it. */
function serviceStatus(st: any, protocol: 'tcp' | 'udp'): any { // eslint-disable-line @typescript-eslint/no-explicit-any
  return st?.services?.find((s: { name: string }) => s.name === (protocol === 'tcp' ? 'demo' : 'dns'));
}

/** ok (fast), slow and failed among results that ended in [second - 1, second), as a fixed-width column. */
function outcomes(results: ClientResult[], second: number): string {
  const inSec = results.filter((c) => c.doneAt >= second - 1 && c.doneAt < second);
  const slow = inSec.filter((c) => c.ok && c.ms > SLOW_MS).length;
  const ok = inSec.filter((c) => c.ok).length - slow;
  return `${String(ok).padStart(2)} ok ${String(slow).padStart(2)} slow ${String(inSec.length - ok - slow).padStart(2)} failed`;
}

/** A backend's quarantine in one service, as the line shows it. */
function held(d: { state?: string; until?: string } | undefined): string {
  return d?.state === 'quarantined' ? ` HELD ${Math.max(0, Math.round((Date.parse(d.until!) - Date.now()) / 1000))}s`
    : d?.state === 'probing' ? ' OUT, PROBING' : '';
}

/**
 * One line per second: the HTTP clients' and the DNS lookups' outcomes in the last second, and each backend as IPVS,
 * the receiver and vipguard see it — HTTP: weight, handshakes (✓ answered, ✗ not) and quarantine; DNS: exchanges
 * (✓ answered, ✗ unanswered or refused), and its removal from the UDP service.
 */
function view(rec: RunRecord, second: number, topo: Topology, ipvs: { weights: Map<string, number>; inUdp: Set<string> }, st: any): string { // eslint-disable-line @typescript-eslint/no-explicit-any
  const backends = topo.backends.map((b) => {
    const att = rec.attempts.filter((a) => a.backend === b.name && a.at >= second - 1 && a.at < second);
    const bad = att.filter((a) => a.outcome !== 'established').length;
    const find = (p: 'tcp' | 'udp') => serviceStatus(st, p)?.destinations?.find((x: { destination: string }) => x.destination.startsWith(`${b.ip}:`));
    const ex = rec.exchanges.filter((e) => e.backend === b.name && e.at >= second - 1 && e.at < second);
    const answered = ex.filter((e) => e.outcome === 'answered').reduce((n, e) => n + e.count, 0);
    const http = `${b.state.padEnd(9)} w${ipvs.weights.get(b.ip) ?? '?'} ${att.length - bad}✓ ${bad}✗${held(find('tcp'))}`;
    const dns = `dns ${answered}✓ ${ex.length - ex.filter((e) => e.outcome === 'answered').length}✗${held(find('udp')) || (ipvs.inUdp.has(b.ip) ? '' : ' OUT')}`;
    return `${b.name} ${http.padEnd(27)} ${dns.padEnd(16)}`;
  });
  const waiting = rec.clients.length < Math.floor(second * RATE) ? Math.floor(second * RATE) - rec.clients.length : 0;
  return `t=${String(second).padStart(3)}s  http ${outcomes(rec.clients, second)}, ${String(waiting).padStart(2)} waiting | ` +
    `dns ${outcomes(rec.lookups, second)} | ${backends.join(' | ')}`;
}

/** failed, slower than 2 s, p50, p99 and worst, as one row of the summary's table. */
function row(name: string, results: ClientResult[]): string {
  const ms = results.map((c) => c.ms).sort((a, b) => a - b);
  const q = (p: number) => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))] ?? NaN;
  return `${name.padEnd(12)} ${String(results.length).padStart(8)}  ${String(results.filter((c) => !c.ok).length).padStart(6)}  ` +
    `${String(results.filter((c) => c.ok && c.ms > SLOW_MS).length).padStart(15)}  ${q(0.5).toFixed(0).padStart(8)} ms  ${q(0.99).toFixed(0).padStart(8)} ms  ${(ms[ms.length - 1] ?? 0).toFixed(0).padStart(6)} ms`;
}

export function summarize(runs: RunRecord[]): string {
  const lines = ['', '=== summary: what the applications saw ==='];
  lines.push(`HTTP         requests  failed  slower than 2 s  p50 request  p99 request   worst   (${CLIENT}, ${RATE}/s, gives up after ${CLIENT_TIMEOUT_S} s)`);
  for (const r of runs) lines.push(row(r.name, r.clients));
  lines.push(`DNS           lookups  failed  slower than 2 s   p50 lookup   p99 lookup   worst   (resolver defaults, ${DNS_RATE}/s, ` +
    `gives up after ${RESOLVER_POLICY.attempts} × ${RESOLVER_POLICY.timeoutMs / 1000} s)`);
  for (const r of runs) {
    const by = [...new Set(r.lookups.map((l) => l.backend).filter(Boolean))].sort()
      .map((b) => `${b} ${r.lookups.filter((l) => l.backend === b).length}`).join(', ');
    const failures = new Map<string, number>();
    for (const l of r.lookups) if (!l.ok) failures.set(l.error ?? '?', (failures.get(l.error ?? '?') ?? 0) + 1);
    lines.push(`${row(r.name, r.lookups)}   answered by ${by || 'nobody'}` +
      (failures.size ? `; failed: ${[...failures].map(([e, n]) => `${n} ${e}`).join(', ')}` : ''));
  }
  const [bare, vg] = runs;
  if (bare && vg) {
    const bad = (rs: ClientResult[]) => rs.filter((c) => !c.ok || c.ms > SLOW_MS).length;
    lines.push(`bare IPVS: ${bad(bare.clients)} requests and ${bad(bare.lookups)} DNS lookups failed or took more than 2 s; ` +
      `with vipguard: ${bad(vg.clients)} and ${bad(vg.lookups)}.`);
    for (const q of vg.quarantines) {
      lines.push(`vipguard quarantined ${q.backend} in ${q.protocol === 'tcp' ? 'HTTP (weight 0)' : 'DNS (removed)'} from t=${q.from.toFixed(0)}s to ${q.to !== undefined ? `t=${q.to.toFixed(0)}s` : 'the end'}`);
    }
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
  // A UDP exchange is a vipguard.connect span only when it failed (or answered late): the DNS counts are failures.
  for (const b of topo.backends) {
    const count = (transport: string) => {
      const byOutcome = new Map<string, number>();
      for (const s of spans) {
        if (s.name === 'vipguard.connect' && s.tags['network.peer.address'] === b.ip && (s.tags['network.transport'] ?? 'tcp') === transport) {
          const o = String(s.tags['vipguard.outcome']);
          byOutcome.set(o, (byOutcome.get(o) ?? 0) + 1);
        }
      }
      return [...byOutcome].map(([o, n]) => `${n} ${o}`).join(', ');
    };
    lines.push(`  ${b.name} (${b.ip}): HTTP ${count('tcp') || 'no attempts'}; DNS ${count('udp') || 'no failed exchanges'}`);
  }
  for (const [outcome, backend] of [['unanswered', 'b2'], ['refused', 'b3']] as const) {
    const ip = topo.backend(backend).ip;
    const tags = { 'network.peer.address': ip, 'vipguard.outcome': outcome, 'network.transport': 'tcp' };
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
  const topo = await Topology.up({ backends: ['healthy', 'healthy', 'healthy'], ipv6: false, udpPort: DNS_PORT });
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
