// Host kernel, real sockets on loopback: the receiver's tracepoints see a connection's whole lifecycle.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { ReceiverProbe } from '../../src/receiver/probe';
import { KernelEvent, TcpState, stateName } from '../../src/receiver/events';
import { requireRoot, waitFor } from '../helpers';

test('inet_sock_set_state delivers Close→SynSent→Established→…→Close with the right ports', { skip: requireRoot() }, async () => {
  const server = net.createServer((s) => s.end('bye'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const events: KernelEvent[] = [];
  let probe: ReceiverProbe | undefined;
  try {
    probe = new ReceiverProbe((evs) => events.push(...evs), { services: [{ address: '127.0.0.1', port, id: 0 }] });
    const hook = probe.hooks.find((h) => h.hook === 'tp_btf sock:inet_sock_set_state');
    assert.equal(hook?.active, true, `inet_sock_set_state not attached: ${hook?.reason}`);

    const client = net.connect(port, '127.0.0.1');
    const localPort = await new Promise<number>((resolve, reject) => {
      client.on('connect', () => resolve(client.localPort!));
      client.on('error', reject);
    });
    await new Promise((r) => client.on('close', r).resume());

    // Only the client socket connects *to* the service port; the server's accepted socket has it as sport.
    const isClient = (e: KernelEvent) => e.kind === 'state' && e.dst.port === port && e.dst.addr === '127.0.0.1';
    await waitFor(() => events.some((e) => isClient(e) && e.newState === TcpState.CLOSE), 5000, 'the client socket to reach CLOSE');
    const mine = events.filter(isClient);
    const sk = mine[0].sk;
    assert.ok(mine.every((e) => e.sk === sk), 'one socket identity from SynSent to Close');
    const path = mine.map((e) => `${stateName(e.oldState)}>${stateName(e.newState)}`);
    assert.equal(path[0], 'CLOSE>SYN_SENT');
    assert.equal(path[1], 'SYN_SENT>ESTABLISHED');
    assert.equal(path[path.length - 1].split('>')[1], 'CLOSE');
    assert.ok(mine.length >= 4, `expected the teardown states too, got ${path.join(' ')}`);
    // Source port is unbound at SynSent (tcp_v4_connect sets the state before inet_hash_connect) …
    assert.equal(mine[0].src.port, 0);
    assert.ok(mine[0].startNs > 0n, 'SynSent carries its start time');
    // … and known from Established on.
    for (const e of mine.slice(1)) assert.equal(e.src.port, localPort, `sport on ${stateName(e.newState)}`);
    assert.equal(mine[1].startNs, mine[0].startNs, 'Established carries the SynSent start time');
    assert.ok(mine[1].tsNs >= mine[0].tsNs);

    // Traffic to other ports is filtered out in the kernel.
    assert.ok(events.every((e) => e.dst.port === port || e.src.port === port), 'only the configured service is traced');
    const c = probe.counters();
    assert.equal(c.lost, 0n);
    assert.ok(c.events >= BigInt(mine.length));
  } finally {
    probe?.close();
    server.close();
  }
});
