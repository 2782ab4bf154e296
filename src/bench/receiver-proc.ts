// The receiver under test on the host: `vipguard run --only receiver` (the product process, nothing else in it),
// tracing one loopback service, exporting OTLP/gRPC to the counting sink, with its Prometheus endpoint on so its
// own counters can be read. CPU and memory come from /proc/PID, from outside.
import { readProcStat } from './procfs';
import { startVipguard, VipguardProc } from './proc';
import type { ReceiverBuild } from './baseline';

export interface ReceiverCounters {
  /** events read from the ring buffer (vipguard.receiver.events) */
  events: number;
  /** by reason: ring_buffer_full, handshake_map_full, untracked, export_queue_full, export_failed */
  lost: Record<string, number>;
}

/** Sums of the receiver's event counters in Prometheus text exposition. */
export function parseReceiverMetrics(text: string): ReceiverCounters {
  let events = 0;
  const lost: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^(vipguard_receiver_events(?:_lost)?)(?:_total)?(\{[^}]*\})?\s+([0-9.eE+-]+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    if (m[1] === 'vipguard_receiver_events') events += v;
    else {
      const reason = /vipguard_reason="([^"]+)"/.exec(m[2] ?? '')?.[1] ?? 'unknown';
      lost[reason] = (lost[reason] ?? 0) + v;
    }
  }
  return { events, lost };
}

export function receiverConfig(o: { servicePort: number; sinkPort: number; promPort: number; spanSampling?: number }): string {
  return `services:
  - name: churn
    address: 127.0.0.1
    port: ${o.servicePort}
receiver:
  export: { enabled: true, endpoint: "127.0.0.1:${o.sinkPort}"${o.spanSampling !== undefined ? `, spanSampling: ${o.spanSampling}` : ''} }
  prometheus: { enabled: true, listen: "127.0.0.1:${o.promPort}" }
actuator:
  enabled: false
`;
}

export class ReceiverUnderTest {
  private constructor(readonly vg: VipguardProc, private readonly promPort: number) {}

  static async start(o: { servicePort: number; sinkPort: number; promPort: number; build?: ReceiverBuild }): Promise<ReceiverUnderTest> {
    const vg = await startVipguard(receiverConfig({ ...o, spanSampling: o.build?.spanSampling }), { only: 'receiver', readyMs: 60_000, root: o.build?.root });
    return new ReceiverUnderTest(vg, o.promPort);
  }

  get pid(): number {
    return this.vg.proc.pid;
  }

  hooks(): string[] {
    return this.vg.proc.lines.filter((l) => /receiver: (active|standby|unused|INACTIVE)/.test(l)).map((l) => l.replace(/^.*receiver: /, ''));
  }

  stat() {
    return readProcStat(this.pid);
  }

  async counters(): Promise<ReceiverCounters> {
    const r = await fetch(`http://127.0.0.1:${this.promPort}/metrics`, { signal: AbortSignal.timeout(10_000) });
    return parseReceiverMetrics(await r.text());
  }

  /** Waits until the events counter stops moving (the ring buffer is drained), bounded. */
  async settled(maxMs = 10_000): Promise<ReceiverCounters> {
    const deadline = performance.now() + maxMs;
    let prev = await this.counters();
    for (;;) {
      await new Promise((r) => setTimeout(r, 300));
      const cur = await this.counters();
      if (cur.events === prev.events || performance.now() > deadline) return cur;
      prev = cur;
    }
  }

  async stop(): Promise<void> {
    await this.vg.proc.stop();
  }
}
