// UDP quarantine on real IPVS (issue 13), with Debian's dnsmasq as three DNS backends behind a UDP virtual service
// (scripts/lab/topology.sh --udp): each answers any name under vipguard.test with its own address, so every answer
// says which backend a datagram reached.
//
// First the kernel facts the actuator builds on (src/actuator/holdout.ts), kept as a test because they decide the
// mechanism: a UDP flow stays on its destination at weight 0; removing the destination moves it at its next
// datagram with expire_nodest_conn=1. Then `vipguard run` on a watched UDP service: an alert removes the destination
// (its flow moves, new lookups by an unmodified client — dig — never reach it); while its dnsmasq is dead the DNS
// restore probe keeps it out; once it answers it is added back exactly as its owner made it (weight, thresholds,
// forwarding method), and so is it on stop.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { describe, test } from 'node:test';
import type { Destination } from '../../src/actuator/ipvs/types';
import { authHeader, sleep, startVipguard, stopVipguard, vgStatus } from './harness';
import { labConfig } from '../../src/lab/vipguard-process';
import { waitFor, waitForAsync } from '../helpers';
import { NAME, dig } from './dns-client';
import { EXPIRE_NODEST_CONN as EXPIRE, udpLab } from './udp-fixture';

const KERNEL = process.env.VIPGUARD_LAB_KERNEL;
const SKIP = KERNEL && KERNEL !== 'host' ? false : 'needs IPVS: runs inside the lab VM';

describe('UDP quarantine on real IPVS (dnsmasq backends)', { skip: SKIP }, () => {
  const lab = udpLab();
  const { ip, dest, flowOn } = lab;

  test('kernel: a UDP flow stays on its destination at weight 0, and moves at its next datagram once the destination is removed (expire_nodest_conn=1)', async () => {
    fs.writeFileSync(EXPIRE, '1');
    const f = await flowOn('b2');
    const vip = `${lab.topo.vip.host}:${lab.topo.status.udpPort}`;
    execFileSync('ipvsadm', ['-e', '-u', vip, '-r', `${ip('b2')}:53`, '-m', '-w', '0']);
    const atZero = await f.next(10);
    assert.deepEqual([...new Set(atZero)], [ip('b2')], `at weight 0 the flow kept going to b2 (${atZero})`);
    const sentAtRemoval = f.sent;
    execFileSync('ipvsadm', ['-d', '-u', vip, '-r', `${ip('b2')}:53`]);
    const afterRemoval = await f.next(10);
    assert.ok(!afterRemoval.includes(ip('b2')), `after the removal no answer came from b2 (${afterRemoval})`);
    // Which query got the first answer from elsewhere: how many datagrams the move cost.
    const first = f.answers.find((a) => a.from !== ip('b2') && a.id > (sentAtRemoval & 0xffff));
    console.log(`# kernel ${KERNEL}: flow moved to ${first?.from} with query ${first ? first.id - sentAtRemoval : '?'} after the removal`);
    assert.ok(first && first.id - sentAtRemoval <= 3, `the flow moved within 3 datagrams of the removal (query ${first && first.id - sentAtRemoval})`);
  });

  test('vipguard: an alert removes a watched UDP destination, its flow moves and dig never reaches it; it comes back exactly as it was, after the hold and on stop', async () => {
    const vip = `${lab.topo.vip.host}:${lab.topo.status.udpPort}`;
    // The owner's settings that must survive a removal: weight 3, thresholds, masquerading.
    execFileSync('ipvsadm', ['-e', '-u', vip, '-r', `${ip('b2')}:53`, '-m', '-w', '3', '-x', '100', '-y', '10']);
    const owner = await dest('b2');
    assert.ok(owner && owner.weight === 3 && owner.upperThreshold === 100 && owner.lowerThreshold === 10);
    const settings = (d: Destination | undefined) => d && { weight: d.weight, forward: d.forward, upperThreshold: d.upperThreshold, lowerThreshold: d.lowerThreshold };

    lab.vg = await startVipguard(labConfig({ address: lab.topo.vip.host, port: lab.topo.status.udpPort!, name: 'dns' }, {
      services: [{ name: 'dns', address: lab.topo.vip.host, port: lab.topo.status.udpPort, protocol: 'udp', manage: false, probe: { dns: NAME } }],
      actuator: { reconcileInterval: '500ms', quarantine: { base: '60s', max: '60s', probeInterval: '300ms', probeTimeout: '500ms' } },
    }), { args: ['--only', 'actuator'] });
    assert.equal(fs.readFileSync(EXPIRE, 'utf8').trim(), '1', 'vipguard sets expire_nodest_conn, which moves the flows of a removed destination');
    const alert = async (name: string, resolved = false) => {
      const labels = { alertname: name, vipguard_service: 'dns', vipguard_backend: `${ip('b2')}:53` };
      const r = await fetch(`http://127.0.0.1:${lab.vg!.httpPort}/api/v2/alerts`, {
        method: 'POST', headers: { 'content-type': 'application/json', ...authHeader(lab.vg!.dir) },
        body: JSON.stringify([{ labels, ...(resolved ? { endsAt: new Date(Date.now() - 1000).toISOString() } : {}) }]),
      });
      assert.equal(r.status, 200, await r.text());
    };
    const f = await flowOn('b2');
    const t0 = Date.now();
    await alert('DnsDown');
    await waitForAsync(async () => (await dest('b2')) === undefined, 5000, 'b2 removed from the UDP service');
    const removedMs = Date.now() - t0;
    const moved = await f.next(5);
    assert.ok(!moved.includes(ip('b2')), `the flow on b2 moved (${moved})`);
    const looked = Array.from({ length: 12 }, () => dig(lab.topo.vip.host, lab.topo.status.udpPort!, 1).answer);
    assert.ok(looked.every((x) => x !== undefined && x !== ip('b2')), `every dig answered, none by b2: ${looked}`);
    const st = (await vgStatus(lab.vg)).services[0];
    const b2 = st.destinations.find((d: { destination: string }) => d.destination === `${ip('b2')}:53`);
    assert.ok(b2?.state === 'quarantined' && b2.removed === true, `status lists the removed destination as quarantined, removed: ${JSON.stringify(st)}`);
    console.log(`# kernel ${KERNEL}: alert → b2 removed in ${removedMs} ms; its flow moved; 12 digs answered by ${[...new Set(looked)]}`);

    // dnsmasq on b2 dies (ICMP port unreachable) and the alert resolves: the hold ends, but the DNS probe is refused,
    // so b2 stays out; once it answers again it is added back exactly as its owner made it.
    await lab.topo.set('b2', 'refuse');
    await alert('DnsDown', true);
    await sleep(2000);
    assert.equal(await dest('b2'), undefined, 'a refusing backend is not restored: its DNS probe fails');
    await lab.topo.set('b2', 'healthy');
    const healthyAt = Date.now();
    await waitForAsync(async () => (await dest('b2')) !== undefined, 10_000, 'b2 added back once its DNS probe answers');
    console.log(`# kernel ${KERNEL}: b2 answering again → added back in ${Date.now() - healthyAt} ms`);
    assert.deepEqual(settings(await dest('b2')), settings(owner), 'added back with the owner\'s weight, thresholds and forwarding method');
    await waitFor(() => fs.existsSync(`${lab.vg!.dir}/state.json`), 2000, 'state file');

    // Quarantined again, then vipguard stops: it gives the destination back.
    await alert('DnsDown');
    await waitForAsync(async () => (await dest('b2')) === undefined, 5000, 'b2 removed again');
    await stopVipguard(lab.vg);
    lab.vg = undefined;
    assert.deepEqual(settings(await dest('b2')), settings(owner), 'a stopped vipguard added it back as it was');
    await sleep(100);
  });
});
