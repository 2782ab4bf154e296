// The receiver's span sampling, through ReceiverTelemetry, the in-process OTLP path (decoded with the official
// schema) and its real Prometheus endpoint. Seeded random connection histories; the invariants:
//   1. every failed, late, rescued (a success after a failure) or reset span is exported, whatever the ratio;
//   2. a connection with only successes is exported whole or not at all (its handshake and its close), and about
//      `ratio` of them are;
//   3. every exported span's parent is an exported span of the same trace (no dangling parents); a trace is one
//      connection's;
//   4. spans exported only because of the ratio carry tracestate ot=th:<threshold>, the rest ot=th:0 (ratio < 1);
//   5. metrics count every attempt and connection, exported or not.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReceiverTelemetry } from '../../src/receiver/telemetry';
import { Attempt, SocketInfo } from '../../src/receiver/lifecycle';
import { InProcessTraceExporter } from '../../src/telemetry/inprocess';
import { decode, TRACE_REQUEST } from '../../src/otlp/proto';
import { ATTEMPT_OUTCOME_VALUES } from '../../src/telemetry/metadata';
import { caseRng, FUZZ_SEED } from '../fuzz';

interface RawSpan { traceId: string; spanId: string; parentSpanId: string; traceState: string; name: string; attributes: Record<string, unknown>; error: boolean }

function readSpans(bytes: Uint8Array, into: RawSpan[]): void {
  const req = decode<{ resourceSpans: { scopeSpans: { spans: Record<string, unknown>[] }[] }[] }>(TRACE_REQUEST, bytes);
  const hex = (b: unknown) => (b ? Buffer.from(b as string, 'base64').toString('hex') : '');
  for (const rs of req.resourceSpans) for (const ss of rs.scopeSpans) for (const s of ss.spans) {
    const attributes: Record<string, unknown> = {};
    for (const kv of (s.attributes ?? []) as { key: string; value: Record<string, unknown> }[]) attributes[kv.key] = Object.values(kv.value)[0];
    into.push({
      traceId: hex(s.traceId), spanId: hex(s.spanId), parentSpanId: hex(s.parentSpanId), traceState: String(s.traceState ?? ''),
      name: String(s.name), attributes, error: (s.status as { code?: number } | undefined)?.code === 2,
    });
  }
}

type Step = { kind: 'attempt'; outcome: Attempt['outcome']; late?: boolean } | { kind: 'close'; reset: boolean } | { kind: 'gone' };

/** One socket's history: failures, maybe an answer (possibly late), then a close (or the socket vanishing). */
function history(r: ReturnType<typeof caseRng>): Step[] {
  const steps: Step[] = [];
  for (let n = r.chance(0.7) ? 0 : r.range(1, 3); n > 0; n--) steps.push({ kind: 'attempt', outcome: r.pick(['unanswered', 'refused', 'unreachable'] as const) });
  if (r.chance(0.9)) {
    steps.push({ kind: 'attempt', outcome: 'established', late: r.chance(0.05) });
    steps.push(r.chance(0.05) ? { kind: 'gone' } : { kind: 'close', reset: r.chance(0.1) });
  } else steps.push({ kind: 'attempt', outcome: 'abandoned' });
  return steps;
}

async function scrape(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

function sumOf(text: string, metric: string): number {
  let total = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${metric}{`) || line.startsWith(`${metric} `)) total += Number(line.split(' ').at(-1));
  return total;
}

describe('span sampling', () => {
  for (const ratio of [1, 0.3]) {
    it(`ratio ${ratio}: failures always exported, successful connections whole or not at all, metrics exact (seed ${FUZZ_SEED})`, async () => {
      const spans: RawSpan[] = [];
      const telemetry = new ReceiverTelemetry({
        spanExporters: [new InProcessTraceExporter((b) => readSpans(b, spans))], spanSampling: ratio,
        prometheus: { host: '127.0.0.1', port: 0 },
        metricIntervalMs: 60_000, spanDelayMs: 5, maxQueueSize: 1_000_000, maxBatchSize: 500,
        clock: { toEpochNs: (ns: bigint) => ns },
      });
      const port = (await telemetry.listen())!;
      try {
        const r = caseRng(0, Math.round(ratio * 1000));
        const must = new Map<string, number>(); // port -> spans that must be exported
        const total = new Map<string, number>(); // port -> spans the socket made
        const successOnly = new Set<number>();
        let attempts = 0, connections = 0;
        const N = 3000;
        for (let i = 0; i < N; i++) {
          const socket: SocketInfo = {
            sk: 0xffff000000000000n + BigInt(i), family: 4, pid: 100 + (i % 7), src: { addr: '10.0.0.1', port: 10000 + i },
            dst: { addr: '10.99.0.1', port: 80 }, service: 'web', startNs: BigInt(i) * 1_000_000n,
          };
          const backend = { addr: `10.0.1.${1 + (i % 3)}`, port: 8080 };
          let index = 0, failed = false, mustCount = 0, established: Attempt | undefined;
          const steps = history(r);
          for (const st of steps) {
            const t = socket.startNs + BigInt(index + 1) * 1000n;
            if (st.kind === 'attempt') {
              const a: Attempt = {
                socket, index, startNs: t - 500n, endNs: t, backend, outcome: st.outcome, synRetransmits: index, skErr: 0,
                final: st.outcome === 'established' || st.outcome === 'abandoned', early: false, late: !!st.late,
              };
              telemetry.attemptEnded(a);
              attempts++;
              if (st.outcome === 'established') {
                established = a;
                telemetry.connectionStarted({ socket, attempt: a, backend, startNs: t });
                if (failed || st.late || index > 0) mustCount++;
              } else {
                failed = true;
                mustCount++;
              }
              index++;
            } else if (st.kind === 'close') {
              telemetry.connectionEnded({ socket, attempt: established!, backend, startNs: established!.endNs, endNs: t, outcome: st.reset ? 'reset' : 'closed' });
              connections++;
              if (failed || st.reset || established!.late) mustCount++;
            } else telemetry.socketGone(socket.sk);
          }
          must.set(String(socket.src.port), mustCount);
          total.set(String(socket.src.port), steps.filter((st) => st.kind !== 'gone').length);
          if (!failed && !steps.some((s) => (s.kind === 'close' && s.reset) || (s.kind === 'attempt' && s.late)) && established) successOnly.add(socket.src.port);
        }
        await telemetry.flush();

        const byPort = new Map<string, RawSpan[]>();
        for (const s of spans) {
          const p = String(s.attributes['network.local.port']);
          byPort.set(p, [...(byPort.get(p) ?? []), s]);
        }
        const ids = new Map(spans.map((s) => [s.spanId, s]));
        let sampledWhole = 0;
        for (const [p, need] of must) {
          const got = byPort.get(p) ?? [];
          // 1. everything that had to be exported was, marked as exported with certainty when the ratio is < 1
          const forced = ratio === 1 ? got.length : got.filter((s) => s.traceState === 'ot=th:0').length;
          assert.ok(forced >= need, `port ${p}: ${forced} spans exported with certainty, ${need} required`);
          if (ratio === 1) assert.equal(got.length, total.get(p), `port ${p}: every span at ratio 1`);
          if (successOnly.has(Number(p))) {
            // 2. whole or nothing
            assert.ok(got.length === 0 || got.length === 2 || (got.length === 1 && got[0].name === 'vipguard.connect'), `port ${p}: ${got.map((s) => s.name)}`);
            if (got.length) sampledWhole++;
          }
          // 3. one trace per connection, every parent exported
          assert.ok(new Set(got.map((s) => s.traceId)).size <= 1, `port ${p}: one trace`);
          for (const s of got) if (s.parentSpanId) assert.equal(ids.get(s.parentSpanId)?.traceId, s.traceId, `port ${p}: parent of ${s.name} exported`);
          // 4. trace state
          for (const s of got) {
            if (ratio === 1) assert.equal(s.traceState, '', 'no trace state when every span is exported');
            else assert.ok(s.traceState === 'ot=th:0' || s.traceState === 'ot=th:b3333333333334', `port ${p}: ${s.traceState}`);
          }
        }
        const share = sampledWhole / successOnly.size;
        if (ratio === 1) assert.equal(share, 1);
        else assert.ok(Math.abs(share - ratio) < 0.06, `${sampledWhole} of ${successOnly.size} success-only connections exported at ratio ${ratio}`);
        // 5. metrics: every attempt and connection counted, exported or not
        const text = await scrape(port);
        assert.equal(sumOf(text, 'vipguard_connect_attempts_total'), attempts);
        assert.equal(sumOf(text, 'vipguard_connect_duration_seconds_count'), attempts);
        assert.equal(sumOf(text, 'vipguard_connection_duration_seconds_count'), connections);
        for (const o of ATTEMPT_OUTCOME_VALUES) assert.match(text, new RegExp(`vipguard_connect_attempts_total\\{[^}]*vipguard_outcome="${o}"`), `${o} series exists`);
        console.log(`# ratio ${ratio}: ${spans.length} spans exported for ${attempts} attempts and ${connections} closes; ${sampledWhole}/${successOnly.size} success-only connections; ${telemetry.spansSampledOut} spans sampled out`);
      } finally {
        await telemetry.shutdown();
      }
    });
  }
});
