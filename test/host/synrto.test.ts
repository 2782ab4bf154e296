// Host kernel: the sock_ops program really lowers the initial SYN timeout of connections to a configured
// destination, and of no other. A black hole in a network namespace of our own makes the SYN go unanswered;
// the receiver's tracepoints time the first retransmit.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { execFileSync } from 'node:child_process';
import { SynTimeoutController, roundHz } from '../../src/actuator/synrto';
import { DEFAULT_DEADLINE } from '../../src/common/rtt';
import { ReceiverProbe } from '../../src/receiver/probe';
import { KernelEvent } from '../../src/receiver/events';
import { requireRoot, waitFor } from '../helpers';
import { lineLogger } from '../../src/common/log';

const NS = `vgt-rto-${process.pid}`;
const sh = (...args: string[]) => execFileSync(args[0], args.slice(1), { stdio: 'pipe' });

function setupBlackhole(): void {
  sh('ip', 'netns', 'add', NS);
  sh('ip', 'link', 'add', 'vgt-rto0', 'type', 'veth', 'peer', 'name', 'vgt-rto1', 'netns', NS);
  sh('ip', 'addr', 'add', '10.201.0.1/24', 'dev', 'vgt-rto0');
  sh('ip', 'link', 'set', 'vgt-rto0', 'up');
  sh('ip', '-n', NS, 'addr', 'add', '10.201.0.2/24', 'dev', 'vgt-rto1');
  sh('ip', '-n', NS, 'link', 'set', 'vgt-rto1', 'up');
  sh('ip', '-n', NS, 'link', 'set', 'lo', 'up');
  // Drop SYNs to ports 9 and 10 inside our namespace: the connects stay pending and retransmit.
  sh('ip', 'netns', 'exec', NS, 'nft', 'add table inet vgt; add chain inet vgt in { type filter hook input priority 0; }; add rule inet vgt in tcp dport { 9, 10 } drop');
}

function teardown(): void {
  try { sh('ip', 'link', 'del', 'vgt-rto0'); } catch { /* gone with the namespace */ }
  try { sh('ip', 'netns', 'del', NS); } catch { /* never made */ }
}

async function firstRetransmitMs(events: KernelEvent[], port: number): Promise<number> {
  const s = net.connect(port, '10.201.0.2');
  s.on('error', () => {});
  try {
    await waitFor(() => events.some((e) => e.kind === 'retransmit' && e.dst.port === port), 3000, `a SYN retransmit to port ${port}`);
  } finally {
    s.destroy();
  }
  const syn = events.find((e) => e.kind === 'state' && e.dst.port === port)!;
  const retx = events.find((e) => e.kind === 'retransmit' && e.dst.port === port)!;
  return Number(retx.tsNs - syn.tsNs) / 1e6;
}

test('HZ rounding', () => {
  assert.equal(roundHz(249.2), 250);
  assert.equal(roundHz(1003), 1000);
  assert.equal(roundHz(512.4), 512);
});

test('sock_ops lowers the initial SYN timeout for configured destinations only', { skip: requireRoot() }, async () => {
  teardown();
  setupBlackhole();
  const events: KernelEvent[] = [];
  let probe: ReceiverProbe | undefined;
  const ctl = new SynTimeoutController({ marginMs: 100, floorMs: 200, ceilingMs: 300 }, DEFAULT_DEADLINE, lineLogger(() => {}));
  try {
    probe = new ReceiverProbe((evs) => events.push(...evs), {
      services: [{ address: '10.201.0.2', port: 9, id: 0 }, { address: '10.201.0.2', port: 10, id: 1 }],
    });
    const st = ctl.start([{ name: 'guarded', address: '10.201.0.2', port: 9 }]);
    assert.equal(st.active, true, st.reason);
    await waitFor(() => ctl.status.hz !== undefined && ctl.status.services.length === 1, 15_000, 'HZ measured and the timeout written');
    const guarded = await firstRetransmitMs(events, 9);
    const other = await firstRetransmitMs(events, 10);
    console.log(`first SYN retransmit: ${guarded.toFixed(0)} ms with vipguard's timeout (${ctl.status.services[0].timeoutMs} ms, HZ ${ctl.status.hz}), ` +
      `${other.toFixed(0)} ms for an unconfigured destination`);
    assert.ok(guarded > 250 && guarded < 450, `guarded destination retransmits at ~300 ms, got ${guarded}`);
    assert.ok(other > 900, `other destinations keep the kernel's 1 s, got ${other}`);
    assert.ok((ctl.status.lowered ?? 0) >= 1);
  } finally {
    ctl.close();
    probe?.close();
    teardown();
  }
});
