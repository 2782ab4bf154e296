// The IPVS netlink client against real kernels (5.10, 6.1, 6.12 in the lab VM), cross-checked with ipvsadm.
//
//   npm run lab -- --kernel all -- node --test dist/test/lab/ipvs-netlink.test.js
//
// Each test works in a network namespace of its own (IPVS tables are per namespace), so nothing here can touch the
// lab's topology fixture or anything else; one test uses the VM's own namespace and removes what it made. Addresses
// are made-up ones in 10.99.0.0/16, 10.200.0.0/16 and fd00:99::/32: services and destinations only, no traffic.
// Outside the lab (no ip_vs, not root) the file skips; inside it (VIPGUARD_LAB_KERNEL set) a missing IPVS fails.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { before, describe, it } from 'node:test';
import { NETLINK_GENERIC, NetlinkSocket } from '../../src/native/netlink';
import { IpvsClient, IpvsError, parseService } from '../../src/actuator/ipvs';
import { encodeServiceId } from '../../src/actuator/ipvs/codec';
import { NetlinkConnection } from '../../src/actuator/ipvs/connection';
import { IPVS_CMD, IPVS_CMD_ATTR, IPVS_DEST_ATTR } from '../../src/actuator/ipvs/constants';
import { encodeGenl } from '../../src/actuator/ipvs/genl';
import { nla } from '../../src/actuator/ipvs/netlink';

const inLab = process.env.VIPGUARD_LAB_KERNEL !== undefined && process.env.VIPGUARD_LAB_KERNEL !== 'host';
const haveIpvs = fs.existsSync('/proc/net/ip_vs');
const skip = !inLab && (process.getuid?.() !== 0 || !haveIpvs) ? 'needs root and ip_vs (run it in the lab)' : false;

let nsCounter = 0;

/** A fresh network namespace with its own empty IPVS table, and a client bound to it. */
class Sandbox {
  readonly name = `vg-ipvs-${process.pid}-${++nsCounter}`;
  client!: IpvsClient;

  async open(): Promise<this> {
    execFileSync('ip', ['netns', 'add', this.name]);
    // IPVS refuses an IPv4 destination unless inet_addr_type() calls it unicast, which needs the namespace's local
    // routing table — and that only exists once an address is up. Bringing lo up creates it.
    execFileSync('ip', ['-n', this.name, 'link', 'set', 'lo', 'up']);
    this.client = await IpvsClient.open({ netns: `/run/netns/${this.name}` });
    return this;
  }
  ipvsadm(args: string[], input?: string): string {
    return execFileSync('ip', ['netns', 'exec', this.name, 'ipvsadm', ...args], { input, encoding: 'utf8' });
  }
  /** ipvsadm -S -n: the table as ipvsadm would restore it, one rule per line. It omits thresholds (see views()). */
  save(): string[] {
    return this.ipvsadm(['-S', '-n']).split('\n').filter(Boolean);
  }
  /** [upper, lower] threshold of a destination, from ipvsadm -Ln --thresholds (destinations unique per test). */
  thresholds(dest: string): [number, number] {
    const line = this.ipvsadm(['-Ln', '--thresholds'])
      .split('\n')
      .find((l) => l.trim().startsWith(`-> ${dest} `));
    assert.ok(line, `${dest} not in ipvsadm -Ln --thresholds`);
    const [, , u, l] = line.trim().split(/\s+/);
    return [Number(u), Number(l)];
  }
  /**
   * Everything ipvsadm can show about each service, keyed by "TCP 10.99.6.1:80": its -S rules, and its blocks in
   * -Ln --thresholds, --tun-info, --persistent-conn and --exact --stats. Together these cover every field the
   * kernel reports for services and destinations.
   */
  views(): Map<string, string> {
    const out = new Map<string, string>();
    const add = (key: string, text: string): void => {
      out.set(key, (out.get(key) ?? '') + text + '\n');
    };
    const proto: Record<string, string> = { t: 'TCP', u: 'UDP', f: 'FWM' };
    for (const line of this.save()) {
      const m = /^-[Aa] -([tuf]) (\S+)( -6)?/.exec(line);
      assert.ok(m, `unexpected ipvsadm -S line ${line}`);
      add(`${proto[m[1]]} ${m[2]}${m[3] ? ' IPv6' : ''}`, line);
    }
    for (const view of [['--thresholds'], ['--tun-info'], ['--persistent-conn'], ['--exact', '--stats']]) {
      let key = '';
      for (const line of this.ipvsadm(['-Ln', ...view])
        .split('\n')
        .slice(3)) {
        const svc = /^(TCP|UDP|SCTP|FWM)\s+(\S+)( IPv6)?/.exec(line);
        if (svc) key = `${svc[1]} ${svc[2]}${svc[3] ?? ''}`;
        if (line) add(key, line);
      }
    }
    return out;
  }
  close(): void {
    try {
      this.client?.close();
    } finally {
      // Deleting the namespace deletes its whole IPVS table with it.
      execFileSync('ip', ['netns', 'del', this.name]);
    }
  }
}

async function withSandbox(f: (s: Sandbox) => Promise<void>): Promise<void> {
  const s = new Sandbox();
  try {
    await s.open();
    await f(s);
  } finally {
    s.close();
  }
}

async function rejectsWith(p: Promise<unknown>, code: string, message: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof IpvsError, String(e));
    assert.equal(e.code, code);
    assert.equal(e.message, message);
    return true;
  });
}

describe(`IPVS netlink client on ${process.env.VIPGUARD_LAB_KERNEL ?? 'this machine'}`, { skip }, () => {
  before(() => {
    assert.ok(haveIpvs, 'ip_vs is not loaded in the lab VM (/proc/net/ip_vs missing)');
  });

  it('reads info and timeouts as ipvsadm shows them', () =>
    withSandbox(async (s) => {
      const info = await s.client.getInfo();
      const header = s.ipvsadm(['-Ln']).split('\n')[0];
      assert.equal(header, `IP Virtual Server version ${info.version} (size=${info.connTableSize})`);
      await s.client.setTimeouts({ tcp: 901, udp: 301 });
      assert.match(s.ipvsadm(['-Ln', '--timeout']), /Timeout \(tcp tcpfin udp\): 901 120 301/);
      assert.deepEqual(await s.client.getTimeouts(), { tcp: 901, tcpFin: 120, udp: 301 });
    }));

  it('creates services and destinations that ipvsadm then shows (IPv4, IPv6, NAT/DR/tunnel, rr/wrr)', () =>
    withSandbox(async (s) => {
      const c = s.client;
      await c.addService('tcp/10.99.1.1:80', { scheduler: 'wrr' });
      await c.addDestination('tcp/10.99.1.1:80', '10.200.1.2:80', { weight: 3 });
      await c.addDestination('tcp/10.99.1.1:80', '10.200.1.3:80', {
        forward: 'dr',
        upperThreshold: 100,
        lowerThreshold: 10,
      });
      await c.addDestination('tcp/10.99.1.1:80', '10.200.1.4:80', { forward: 'tunnel', weight: 0 });
      await c.addService('udp/[fd00:99::1]:53', { scheduler: 'rr', flags: 1, timeout: 600, netmask: '64' });
      await c.addDestination('udp/[fd00:99::1]:53', '[fd00:99::2]:53', { weight: 2 });
      await c.addService('fwmark/7', { scheduler: 'rr' });
      await c.addDestination('fwmark/7', '10.200.1.5:0', { forward: 'dr' });
      assert.deepEqual(
        s.save().sort(),
        [
          '-A -f 7 -s rr',
          '-A -t 10.99.1.1:80 -s wrr',
          '-A -u [fd00:99::1]:53 -s rr -p 600 -M 64',
          '-a -f 7 -r 10.200.1.5:0 -g -w 1',
          '-a -t 10.99.1.1:80 -r 10.200.1.2:80 -m -w 3',
          '-a -t 10.99.1.1:80 -r 10.200.1.3:80 -g -w 1',
          '-a -t 10.99.1.1:80 -r 10.200.1.4:80 -i -w 0 --tun-type ipip',
          '-a -u [fd00:99::1]:53 -r [fd00:99::2]:53 -m -w 2',
        ].sort(),
      );
      assert.deepEqual(s.thresholds('10.200.1.3:80'), [100, 10]);
      assert.deepEqual(s.thresholds('10.200.1.2:80'), [0, 0]);
    }));

  it('lists what ipvsadm created, field by field', () =>
    withSandbox(async (s) => {
      s.ipvsadm(
        ['-R'],
        [
          '-A -t 10.99.2.1:443 -s wrr -p 300 -M 255.255.255.0',
          '-a -t 10.99.2.1:443 -r 10.200.2.2:443 -m -w 5 -x 50 -y 5',
          '-a -t 10.99.2.1:443 -r 10.200.2.3:443 -g -w 0',
          '-a -t 10.99.2.1:443 -r 10.200.2.4:443 -i -w 1',
          '-A -t [fd00:99::10]:80 -s rr',
          '-a -t [fd00:99::10]:80 -r [fd00:99::11]:8080 -m -w 1',
          '-A -f 9 -6 -s sh',
          '',
        ].join('\n'),
      );
      const services = await s.client.listServices();
      const byKey = new Map(services.map((x) => [x.key, x]));
      assert.deepEqual([...byKey.keys()].sort(), ['fwmark6/9', 'tcp/10.99.2.1:443', 'tcp/[fd00:99::10]:80']);
      const v4 = byKey.get('tcp/10.99.2.1:443')!;
      assert.deepEqual(
        { scheduler: v4.scheduler, flags: v4.flags, timeout: v4.timeout, netmask: v4.netmask },
        { scheduler: 'wrr', flags: 1, timeout: 300, netmask: '255.255.255.0' },
      );
      assert.equal(v4.stats?.conns, 0);
      assert.equal(byKey.get('fwmark6/9')!.scheduler, 'sh');
      assert.equal(byKey.get('tcp/[fd00:99::10]:80')!.netmask, '128');

      // The kernel lists destinations newest first; ipvsadm sorts them. Compare sorted.
      const dests = (await s.client.listDestinations('tcp/10.99.2.1:443')).sort((a, b) => a.key.localeCompare(b.key));
      assert.deepEqual(
        dests.map((d) => [
          d.key,
          d.forward,
          d.weight,
          d.upperThreshold,
          d.lowerThreshold,
          d.activeConns,
          d.inactiveConns,
        ]),
        [
          ['10.200.2.2:443', 'nat', 5, 50, 5, 0, 0],
          ['10.200.2.3:443', 'dr', 0, 0, 0, 0, 0],
          ['10.200.2.4:443', 'tunnel', 1, 0, 0, 0, 0],
        ],
      );
      assert.deepEqual(dests[2].tunnel, { type: 'ipip', port: 0, flags: 0 });
      const v6 = await s.client.getDestination('tcp/[fd00:99::10]:80', '[fd00:99::11]:8080');
      assert.deepEqual([v6.id.family, v6.forward, v6.weight], [6, 'nat', 1]);
      assert.deepEqual(await s.client.listDestinations('fwmark6/9'), []);
    }));

  it('quarantines with weight 0 and restores, keeping method, thresholds and tunnel settings', () =>
    withSandbox(async (s) => {
      s.ipvsadm(['-A', '-t', '10.99.3.1:80', '-s', 'wrr']);
      s.ipvsadm(['-a', '-t', '10.99.3.1:80', '-r', '10.200.3.2:80', '-g', '-w', '4', '-x', '30', '-y', '3']);
      s.ipvsadm([
        '-a',
        '-t',
        '10.99.3.1:80',
        '-r',
        '10.200.3.3:80',
        '-i',
        '-w',
        '2',
        '--tun-type',
        'gue',
        '--tun-port',
        '6080',
        '--tun-csum',
      ]);
      const before = s.save();
      const beforeViews = s.views();
      for (const dest of ['10.200.3.2:80', '10.200.3.3:80']) {
        const was = await s.client.getDestination('tcp/10.99.3.1:80', dest);
        assert.deepEqual(await s.client.setDestinationWeight('tcp/10.99.3.1:80', dest, 0), {
          previousWeight: was.weight,
          changed: true,
        });
        const line = s.save().find((l) => l.includes(`-r ${dest}`));
        assert.equal(line, before.find((l) => l.includes(`-r ${dest}`))!.replace(`-w ${was.weight}`, '-w 0'));
        assert.deepEqual(await s.client.setDestinationWeight('tcp/10.99.3.1:80', dest, 0), {
          previousWeight: 0,
          changed: false,
        });
        await s.client.setDestinationWeight('tcp/10.99.3.1:80', dest, was.weight);
      }
      assert.deepEqual(s.views(), beforeViews);
      assert.deepEqual(s.thresholds('10.200.3.2:80'), [30, 3]);
      const tun = await s.client.getDestination('tcp/10.99.3.1:80', '10.200.3.3:80');
      assert.deepEqual(tun.tunnel, { type: 'gue', port: 6080, flags: 1 });
    }));

  it('edits and removes services and destinations', () =>
    withSandbox(async (s) => {
      const c = s.client;
      await c.addService('tcp/10.99.4.1:80', { scheduler: 'rr' });
      await c.addDestination('tcp/10.99.4.1:80', '10.200.4.2:80', { forward: 'dr', weight: 7, upperThreshold: 9 });
      await c.editService('tcp/10.99.4.1:80', { scheduler: 'wlc', flags: 1, timeout: 120 });
      await c.editDestination('tcp/10.99.4.1:80', '10.200.4.2:80', { lowerThreshold: 2 });
      assert.deepEqual(s.save(), ['-A -t 10.99.4.1:80 -s wlc -p 120', '-a -t 10.99.4.1:80 -r 10.200.4.2:80 -g -w 7']);
      assert.deepEqual(s.thresholds('10.200.4.2:80'), [9, 2]);
      await c.removeDestination('tcp/10.99.4.1:80', '10.200.4.2:80');
      assert.deepEqual(s.save(), ['-A -t 10.99.4.1:80 -s wlc -p 120']);
      await c.removeService('tcp/10.99.4.1:80');
      assert.deepEqual(s.save(), []);
    }));

  it('reports kernel errors with the operation, service, destination and code', () =>
    withSandbox(async (s) => {
      const c = s.client;
      await c.addService('tcp/10.99.5.1:80', { scheduler: 'rr' });
      await c.addDestination('tcp/10.99.5.1:80', '10.200.5.2:80');
      await rejectsWith(
        c.setDestinationWeight('tcp/10.99.5.1:80', '10.200.5.4:80', 0),
        'ENOENT',
        'setting weight of 10.200.5.4:80 in TCP 10.99.5.1:80 to 0: no such destination (ENOENT)',
      );
      await rejectsWith(
        c.setDestinationWeight('tcp/10.99.5.9:80', '10.200.5.2:80', 0),
        'ESRCH',
        'setting weight of 10.200.5.2:80 in TCP 10.99.5.9:80 to 0: no such service (ESRCH)',
      );
      await rejectsWith(
        c.removeDestination('tcp/10.99.5.1:80', '10.200.5.4:80'),
        'ENOENT',
        'removing 10.200.5.4:80 from TCP 10.99.5.1:80: no such destination (ENOENT)',
      );
      await rejectsWith(
        c.removeService('udp/[fd00:99::5]:53'),
        'ESRCH',
        'removing UDP [fd00:99::5]:53: no such service (ESRCH)',
      );
      await rejectsWith(
        c.addDestination('tcp/10.99.5.1:80', '10.200.5.2:80'),
        'EEXIST',
        'adding 10.200.5.2:80 to TCP 10.99.5.1:80: destination already exists (EEXIST)',
      );
      await rejectsWith(
        c.addService('tcp/10.99.5.1:80', { scheduler: 'rr' }),
        'EEXIST',
        'adding TCP 10.99.5.1:80: service already exists (EEXIST)',
      );
      await rejectsWith(
        c.addService('tcp/10.99.5.2:80', { scheduler: 'nosuchsched' }),
        'ENOENT',
        'adding TCP 10.99.5.2:80: unknown scheduler or persistence engine — is its ip_vs_<name> module available? (ENOENT)',
      );
      await rejectsWith(
        c.addDestination('tcp/10.99.5.1:80', '10.200.5.3:80', { upperThreshold: 1, lowerThreshold: 5 }),
        'ERANGE',
        'adding 10.200.5.3:80 to TCP 10.99.5.1:80: out of range — weight must be >= 0 and the lower threshold <= the upper (ERANGE)',
      );
      await rejectsWith(
        c.listDestinations('tcp/10.99.5.9:80'),
        'ESRCH',
        'listing destinations of TCP 10.99.5.9:80: no such service (ESRCH)',
      );
      assert.equal(await c.findService('tcp/10.99.5.9:80'), undefined);
      assert.deepEqual(s.save(), ['-A -t 10.99.5.1:80 -s rr', '-a -t 10.99.5.1:80 -r 10.200.5.2:80 -m -w 1']);
    }));

  it('leaves an unrelated service byte-identical while editing another (ownership)', () =>
    withSandbox(async (s) => {
      s.ipvsadm(
        ['-R'],
        [
          '-A -t 10.99.6.1:80 -s wrr -p 60',
          '-a -t 10.99.6.1:80 -r 10.200.6.2:80 -m -w 3 -x 10 -y 1',
          '-a -t 10.99.6.1:80 -r 10.200.6.3:80 -g -w 0',
          '-A -u [fd00:99::6]:53 -s rr',
          '-a -u [fd00:99::6]:53 -r [fd00:99::7]:53 -m -w 1',
          '',
        ].join('\n'),
      );
      const before = s.views();
      assert.equal(before.size, 2);
      const c = s.client;
      await c.addService('tcp/10.99.6.100:80', { scheduler: 'rr' });
      await c.addDestination('tcp/10.99.6.100:80', '10.200.6.2:80', { weight: 3 });
      await c.setDestinationWeight('tcp/10.99.6.100:80', '10.200.6.2:80', 0);
      await c.editService('tcp/10.99.6.100:80', { scheduler: 'wrr' });
      await c.editDestination('tcp/10.99.6.100:80', '10.200.6.2:80', { upperThreshold: 5 });
      const during = s.views();
      assert.equal(during.size, 3);
      for (const [key, text] of before) assert.equal(during.get(key), text, key);
      await c.removeDestination('tcp/10.99.6.100:80', '10.200.6.2:80');
      await c.removeService('tcp/10.99.6.100:80');
      assert.deepEqual(s.views(), before);
    }));

  it('assembles large multipart dumps', () =>
    withSandbox(async (s) => {
      const rules: string[] = [];
      for (let i = 0; i < 300; i++) rules.push(`-A -t 10.99.${10 + (i >> 8)}.${i & 255}:80 -s rr`);
      for (let i = 0; i < 300; i++)
        rules.push(`-a -t 10.99.10.0:80 -r 10.200.${10 + (i >> 8)}.${i & 255}:80 -m -w ${i}`);
      s.ipvsadm(['-R'], rules.join('\n') + '\n');
      assert.equal((await s.client.listServices()).length, 300);
      const dests = await s.client.listDestinations('tcp/10.99.10.0:80');
      assert.equal(dests.length, 300);
      assert.deepEqual(
        dests.map((d) => d.weight).sort((a, b) => a - b),
        [...Array(300).keys()],
      );
    }));

  it('accepts a mixed-family tunnel destination (IPv6 real server behind an IPv4 service)', () =>
    withSandbox(async (s) => {
      await s.client.addService('tcp/10.99.7.1:80', { scheduler: 'rr' });
      await s.client.addDestination('tcp/10.99.7.1:80', '[fd00:99::71]:80', { forward: 'tunnel' });
      const [d] = await s.client.listDestinations('tcp/10.99.7.1:80');
      assert.deepEqual([d.key, d.id.family, d.forward], ['[fd00:99::71]:80', 6, 'tunnel']);
      assert.match(s.ipvsadm(['-Ln']), /-> \[fd00:99::71\]:80\s+Tunnel\s+1/);
    }));

  it('lists and edits around entries the kernel accepts but nobody can name', () =>
    withSandbox(async (s) => {
      // A service for IP protocol 1 (ipvsadm: "--xxx-service"), and a destination with forwarding method 5, which
      // only a raw netlink request can make; no traffic is ever sent to either.
      await s.client.addService('ipproto1/10.99.8.1:0', { scheduler: 'rr' });
      await s.client.addService('tcp/10.99.8.2:80', { scheduler: 'rr' });
      const raw = new NetlinkConnection(
        NetlinkSocket.open({ protocol: NETLINK_GENERIC, netns: `/run/netns/${s.name}` }),
      );
      try {
        const addr = Buffer.alloc(16);
        Buffer.from([10, 200, 8, 7]).copy(addr);
        const dest = nla.nested(IPVS_CMD_ATTR.DEST, [
          nla.binary(IPVS_DEST_ATTR.ADDR, addr),
          nla.be16(IPVS_DEST_ATTR.PORT, 80),
          nla.u32(IPVS_DEST_ATTR.FWD_METHOD, 5),
          nla.u32(IPVS_DEST_ATTR.WEIGHT, 4),
          nla.u32(IPVS_DEST_ATTR.U_THRESH, 0),
          nla.u32(IPVS_DEST_ATTR.L_THRESH, 0),
        ]);
        const svc = encodeServiceId(parseService('tcp/10.99.8.2:80'));
        raw.request(s.client.family.id, 0, encodeGenl(IPVS_CMD.NEW_DEST, 1, [svc, dest]));
      } finally {
        raw.close();
      }
      assert.deepEqual((await s.client.listServices()).map((x) => x.key).sort(), [
        'ipproto1/10.99.8.1:0',
        'tcp/10.99.8.2:80',
      ]);
      assert.ok(s.save().includes('-A --xxx-service 10.99.8.1:0 -s rr'));
      assert.equal((await s.client.getDestination('tcp/10.99.8.2:80', '10.200.8.7:80')).forward, 'unknown');
      await s.client.setDestinationWeight('tcp/10.99.8.2:80', '10.200.8.7:80', 0);
      // The weight changed and the unnamed method survived: SET_DEST got back the raw value it had listed.
      assert.match(s.ipvsadm(['-Ln']), /-> 10\.200\.8\.7:80\s+\(null\)\s+0\s/);
      await s.client.removeService('ipproto1/10.99.8.1:0');
      assert.deepEqual(
        (await s.client.listServices()).map((x) => x.key),
        ['tcp/10.99.8.2:80'],
      );
    }));

  it("works in the process's own namespace too, and times each call", async () => {
    const c = await IpvsClient.open();
    const svc = 'tcp/10.99.250.1:8080';
    try {
      await c.addService(svc, { scheduler: 'rr' });
      await c.addDestination(svc, '10.200.250.2:8080', { weight: 2 });
      const t0 = process.hrtime.bigint();
      const n = 50;
      for (let i = 0; i < n; i++) await c.setDestinationWeight(svc, '10.200.250.2:8080', i % 2);
      const perCall = Number(process.hrtime.bigint() - t0) / n / 1e6;
      console.log(`setDestinationWeight: ${perCall.toFixed(2)} ms per call (list + set) under TCG`);
      assert.match(
        execFileSync('ipvsadm', ['-Ln', '-t', '10.99.250.1:8080'], { encoding: 'utf8' }),
        /10\.200\.250\.2:8080\s+Masq\s+1\s/,
      );
    } finally {
      await c.removeService(svc).catch(() => undefined);
      c.close();
    }
    assert.doesNotMatch(execFileSync('ipvsadm', ['-Ln'], { encoding: 'utf8' }), /10\.99\.250\.1/);
  });
});
