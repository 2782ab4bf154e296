// Detection → action latency with the embedded rules, inside the lab VM: backend b3 refuses; the client connects
// through the VIP until one connect lands there and is refused; vipguard quarantines b3 (weight 0); a short
// quarantine without restore probe gives it back, and the next sample starts. Three layouts:
//   in-process  one `vipguard run` (receiver spans reach the rules in-process)
//   otlp        `vipguard run --only receiver` exporting OTLP/gRPC to a separate `vipguard run --only actuator`
//   collector   the same two processes with the real collector between them, on the shipped sidecar
//               configuration (otel-config/collector.yaml: its actuator pipeline, batch/actuator, queue, retry)
// Two measurements: vipguard's own (status reactionMs: failed handshake span end → weight 0 applied), and an
// independent one: the client's ECONNREFUSED → the first 1 ms poll of /proc/net/ip_vs that shows weight 0.
import * as fs from 'node:fs';
import type { Topology } from '../lab/topology';
import { topologyUp } from './failover';
import { connectOnce } from '../lab/load';
import { procKey } from './procfs';
import { sleep, startVipguard, tempDir, VipguardProc, vipguardStatus, waitUntil } from './proc';
import type { LatencyMode, LatencyRun } from './types';
import { freePort } from '../common/ports';
import { sidecarConfig, startCollector, stopCollector, type CollectorProcess } from '../lab/collector';
import { DestinationWatch } from './watch';

export interface LatencyOptions {
  mode: LatencyMode;
  run: number;
  kernel: string;
  samples: number;
  log: (line: string) => void;
}

const QUARANTINE = `  quarantine:
    base: 300ms
    multiplier: 1
    probeBeforeRestore: false
`;

function configs(topo: Topology, otlpPort?: number): { combined: string; actuator: string; receiver: string } {
  const svc = `services:
  - name: web
    address: ${topo.vip.host}
    port: ${topo.vip.port}
`;
  // holdRefusals off: the independent measurement starts at the ECONNREFUSED the client sees, which the hold-back
  // (on by default) would turn into a rescued connect.
  const actuator = `actuator:
  listen: 127.0.0.1:0
  otlpListen: 127.0.0.1:0
  stateFile: $DIR/state.json
  holdRefusals: { enabled: false }
${QUARANTINE}`;
  return {
    combined: `${svc}receiver:\n  export: { enabled: false }\n  prometheus: { enabled: false }\n${actuator}`,
    actuator: `${svc}receiver:\n  enabled: false\n${actuator}`,
    receiver: `${svc}receiver:\n  export: { enabled: true, endpoint: "127.0.0.1:${otlpPort ?? 4319}", tokenFile: $DIR/token }\n  prometheus: { enabled: false }\nactuator:\n  enabled: false\n`,
  };
}

export function latencyBudgetMs(samples: number): number {
  return 120_000 + samples * 6000;
}

export async function runLatency(o: LatencyOptions): Promise<LatencyRun> {
  const { topo, clean } = await topologyUp(o.log);
  const procs: VipguardProc[] = [];
  const dir = tempDir('vg-bench-latency-');
  const notes: string[] = [clean];
  const independentMs: number[] = [];
  let missed = 0;
  let reaction: LatencyRun['reaction'] = { n: 0 };
  let collector: CollectorProcess | undefined;
  try {
    await topo.set('b3', 'refuse');
    let actuator: VipguardProc;
    if (o.mode === 'in-process') {
      actuator = await startVipguard(configs(topo).combined, { dir });
      procs.push(actuator);
    } else {
      actuator = await startVipguard(configs(topo).actuator, { dir, only: 'actuator' });
      procs.push(actuator);
      let exportTo = actuator.otlpPort;
      if (o.mode === 'collector') {
        // The collector's trace and metric backends: a loopback port where nothing listens (nothing leaves the VM).
        const dead = await freePort();
        const ports = { otlp: await freePort(), actuator: actuator.otlpPort!, telemetry: await freePort() };
        collector = await startCollector(sidecarConfig(ports, `${dir}/token`), {
          env: { VIPGUARD_TRACES_ENDPOINT: `127.0.0.1:${dead}`, VIPGUARD_REMOTE_WRITE_URL: `http://127.0.0.1:${dead}/api/v1/write` },
        });
        exportTo = ports.otlp;
      }
      procs.push(await startVipguard(configs(topo, exportTo).receiver, { dir, only: 'receiver' }));
    }
    const dead = topo.backend('b3');
    const watch = new DestinationWatch(procKey(topo.vip.host, topo.vip.port), procKey(dead.ip, dead.port), 0);
    for (let i = 0; i < o.samples; i++) {
      if (!(await waitUntil(() => watch.weight() === 1, 5000, 20))) {
        notes.push(`sample ${i}: b3 not back in service within 5 s; stopped sampling`);
        break;
      }
      await sleep(50);
      let refusedAt: number | undefined;
      // rr over three backends: one of three consecutive connects lands on b3.
      for (let k = 0; k < 6 && refusedAt === undefined; k++) {
        const c = await connectOnce(topo.vip.host, topo.vip.port, 2000);
        if (c.outcome === 'refused') refusedAt = c.at + c.ms;
      }
      if (refusedAt === undefined) {
        notes.push(`sample ${i}: no refused connect in 6 tries`);
        continue;
      }
      let zeroAt: number | undefined;
      const deadline = performance.now() + 3000;
      while (performance.now() < deadline) {
        if (watch.weight() === 0) { zeroAt = performance.now(); break; }
        await sleep(1);
      }
      if (zeroAt === undefined) missed++;
      else independentMs.push(Math.round((zeroAt - refusedAt) * 10) / 10);
    }
    const st = await vipguardStatus(actuator);
    reaction = (st?.reactionMs as LatencyRun['reaction'] | undefined) ?? { n: 0 };
    if (!st) notes.push('status endpoint did not answer');
    o.log(`latency ${o.mode} run ${o.run}: ${independentMs.length} samples, vipguard reaction p50 ${reaction.p50} p99 ${reaction.p99} ms`);
  } finally {
    for (const p of procs.reverse()) await p.proc.stop().catch(() => undefined);
    await stopCollector(collector).catch(() => undefined);
    await topo.down().catch((e: Error) => o.log(`topology down: ${e.message}`));
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return { mode: o.mode, run: o.run, kernel: o.kernel, samples: o.samples, reaction, independentMs, missed, notes };
}
