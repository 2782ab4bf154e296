// IPVS attribute encoding/decoding against fixtures written by hand from <linux/ip_vs.h> and the kernel's
// ip_vs_genl_fill_service/_dest: 16-byte nf_inet_addr, __be16 ports, struct ip_vs_flags, nested stats.
import { strict as assert } from 'node:assert';
import * as os from 'node:os';
import { describe, it } from 'node:test';
import {
  decodeDestination,
  decodeInfo,
  decodeService,
  decodeTimeouts,
  encodeDestinationId,
  encodeEditedDestination,
  encodeEditedService,
  encodeNewDestination,
  encodeNewService,
  encodeServiceId,
  encodeTimeouts,
} from '../../src/actuator/ipvs/codec';
import { IPVS_DEST_ATTR, IPVS_SVC_ATTR } from '../../src/actuator/ipvs/constants';
import { parseDestination, parseService } from '../../src/actuator/ipvs/identity';
import { Attrs, nla } from '../../src/actuator/ipvs/netlink';

const hex = (s: string): Buffer => Buffer.from(s.replace(/#[^\n]*/g, '').replace(/\s+/g, ''), 'hex');
const le = { skip: os.endianness() !== 'LE' ? 'fixtures are little-endian' : false };
/** The attributes inside a nested attribute we encoded (skips its 4-byte header). */
const inner = (nested: Buffer): Attrs => new Attrs(nested.subarray(4), 'test');

const SVC_TCP_10_99_0_1_80 = `
  0600 0100 0200 0000                                  # IPVS_SVC_ATTR_AF AF_INET
  0600 0200 0600 0000                                  # IPVS_SVC_ATTR_PROTOCOL IPPROTO_TCP
  1400 0300 0a630001 00000000 00000000 00000000        # IPVS_SVC_ATTR_ADDR 10.99.0.1 as nf_inet_addr
  0600 0400 0050 0000                                  # IPVS_SVC_ATTR_PORT 80, network order
`;

describe('IPVS encoding', le, () => {
  it('encodes a service identity', () => {
    assert.deepEqual(
      encodeServiceId(parseService('tcp/10.99.0.1:80')),
      hex(`3000 0180  # IPVS_CMD_ATTR_SERVICE, nested, 48 bytes\n${SVC_TCP_10_99_0_1_80}`),
    );
    assert.deepEqual(
      encodeServiceId(parseService('fwmark6/7')),
      hex('1400 0180  0600 0100 0a00 0000  0800 0500 07000000'), // AF_INET6, FWMARK 7
    );
  });

  it('encodes NEW_SERVICE with every field the kernel requires', () => {
    const got = encodeNewService(parseService('tcp/10.99.0.1:80'), {
      scheduler: 'wrr',
      flags: 0x1 | 0x2, // PERSISTENT, and HASHED which must be dropped
      timeout: 300,
      netmask: '255.255.255.0',
    });
    assert.deepEqual(
      got,
      hex(`
        5400 0180                                      # 84 bytes
        ${SVC_TCP_10_99_0_1_80}
        0800 0600 77727200                             # IPVS_SVC_ATTR_SCHED_NAME "wrr"
        0c00 0700 01000000 ffffffff                    # IPVS_SVC_ATTR_FLAGS {flags PERSISTENT, mask ~0}
        0800 0800 2c010000                             # IPVS_SVC_ATTR_TIMEOUT 300
        0800 0900 ffffff00                             # IPVS_SVC_ATTR_NETMASK 255.255.255.0, network order
      `),
    );
  });

  it('encodes an IPv6 netmask as a prefix length, not a mask', () => {
    const got = inner(
      encodeNewService(parseService('udp/[fd00::1]:53'), { scheduler: 'rr', flags: 0, timeout: 0, netmask: '64' }),
    );
    assert.deepEqual(got.raw(IPVS_SVC_ATTR.NETMASK), hex('40000000'));
    assert.deepEqual(got.raw(IPVS_SVC_ATTR.ADDR), hex('fd000000 00000000 00000000 00000001'));
    assert.equal(got.u16(IPVS_SVC_ATTR.AF), 10);
    assert.equal(got.u16(IPVS_SVC_ATTR.PROTOCOL), 17);
    assert.throws(
      () =>
        encodeNewService(parseService('udp/[fd00::1]:53'), {
          scheduler: 'rr',
          flags: 0,
          timeout: 0,
          netmask: '255.255.255.0',
        }),
      /IPv6 prefix/,
    );
    assert.throws(
      () =>
        encodeNewService(parseService('tcp/10.0.0.1:80'), { scheduler: 'r r', flags: 0, timeout: 0, netmask: '24' }),
      /scheduler/,
    );
  });

  it('encodes NEW_DEST with identity, family and all required options', () => {
    assert.deepEqual(
      encodeNewDestination(parseDestination('10.200.0.4:80'), {
        weight: 0,
        forward: 'dr',
        upperThreshold: 100,
        lowerThreshold: 10,
      }),
      hex(`
        4800 0280                                      # IPVS_CMD_ATTR_DEST, nested, 72 bytes
        1400 0100 0ac80004 00000000 00000000 00000000  # IPVS_DEST_ATTR_ADDR 10.200.0.4
        0600 0200 0050 0000                            # IPVS_DEST_ATTR_PORT 80
        0600 0b00 0200 0000                            # IPVS_DEST_ATTR_ADDR_FAMILY AF_INET
        0800 0300 03000000                             # IPVS_DEST_ATTR_FWD_METHOD IP_VS_CONN_F_DROUTE
        0800 0400 00000000                             # IPVS_DEST_ATTR_WEIGHT 0
        0800 0500 64000000                             # IPVS_DEST_ATTR_U_THRESH 100
        0800 0600 0a000000                             # IPVS_DEST_ATTR_L_THRESH 10
      `),
    );
    assert.deepEqual(
      encodeDestinationId(parseDestination('[fd00::2]:8080')),
      hex('2800 0280  1400 0100 fd000000 00000000 00000000 00000002  0600 0200 1f90 0000  0600 0b00 0a00 0000'),
    );
  });

  it('encodes tunnel settings and refuses bad values', () => {
    const d = inner(
      encodeNewDestination(parseDestination('10.0.0.2:80'), {
        weight: 1,
        forward: 'tunnel',
        upperThreshold: 0,
        lowerThreshold: 0,
        tunnel: { type: 'gue', port: 6080, flags: 1 },
      }),
    );
    assert.equal(d.u32(IPVS_DEST_ATTR.FWD_METHOD), 2);
    assert.equal(d.u8(IPVS_DEST_ATTR.TUN_TYPE), 1);
    assert.deepEqual(d.raw(IPVS_DEST_ATTR.TUN_PORT), hex('17c0'));
    assert.equal(d.u16(IPVS_DEST_ATTR.TUN_FLAGS), 1);
    const base = { forward: 'nat', upperThreshold: 0, lowerThreshold: 0 } as const;
    assert.throws(() => encodeNewDestination(parseDestination('10.0.0.2:80'), { ...base, weight: -1 }), /weight -1/);
    assert.throws(() => encodeNewDestination(parseDestination('10.0.0.2:80'), { ...base, weight: 2 ** 31 }), /weight/);
  });

  it('encodes timeouts only where given', () => {
    assert.deepEqual(
      Buffer.concat(encodeTimeouts({ tcp: 900, udp: 300 })),
      hex('0800 0400 84030000  0800 0600 2c010000'),
    );
  });
});

/** A destination as ip_vs_genl_fill_dest (5.3+) lays it out, nested without NLA_F_NESTED like the kernel does. */
const KERNEL_DEST = hex(`
  1400 0100 0ac80003 00000000 00000000 00000000        # ADDR 10.200.0.3
  0600 0200 1f90 0000                                  # PORT 8080
  0800 0300 02000000                                   # FWD_METHOD tunnel
  0800 0400 05000000                                   # WEIGHT 5
  0500 0d00 01 000000                                  # TUN_TYPE GUE
  0600 0e00 17c0 0000                                  # TUN_PORT 6080
  0600 0f00 0300 0000                                  # TUN_FLAGS CSUM|REMCSUM
  0800 0500 64000000                                   # U_THRESH 100
  0800 0600 0a000000                                   # L_THRESH 10
  0800 0700 03000000                                   # ACTIVE_CONNS 3
  0800 0800 04000000                                   # INACT_CONNS 4
  0800 0900 00000000                                   # PERSIST_CONNS 0
  0600 0b00 0200 0000                                  # ADDR_FAMILY AF_INET
  2800 0a00                                            # STATS (40 bytes)
    0800 0100 07000000                                 #   CONNS 7
    0c00 0400 e803000000000000                         #   INBYTES 1000 (u64 even here)
    0800 0600 02000000                                 #   CPS 2
    0800 0700 00000000                                 #   INPPS 0
`);

describe('IPVS decoding', le, () => {
  it('decodes a service as the kernel fills it, preferring 64-bit stats', () => {
    const svc = decodeService(
      new Attrs(
        hex(`
          ${SVC_TCP_10_99_0_1_80}
          0700 0600 727200 00                          # SCHED_NAME "rr"
          0c00 0700 03000000 ffffffff                  # FLAGS PERSISTENT|HASHED, mask ~0
          0800 0800 2c010000                           # TIMEOUT 300
          0800 0900 ffffff00                           # NETMASK 255.255.255.0
          1400 0a00  0800 0100 05000000  0800 0200 09000000   # STATS: CONNS 5, INPKTS 9
          1800 0c00  0c00 0100 0600000000000000  0800 0b00 00000000  # STATS64: CONNS 6, PAD
        `),
        'service',
      ),
    );
    assert.deepEqual(svc.id, { kind: 'address', protocol: 'tcp', family: 4, address: '10.99.0.1', port: 80 });
    assert.equal(svc.key, 'tcp/10.99.0.1:80');
    assert.equal(svc.scheduler, 'rr');
    assert.equal(svc.flags, 1, 'HASHED is kernel bookkeeping and is not reported');
    assert.equal(svc.timeout, 300);
    assert.equal(svc.netmask, '255.255.255.0');
    assert.equal(svc.persistenceEngine, undefined);
    assert.equal(svc.stats?.conns, 6);
    assert.equal(svc.stats?.inPackets, 0, 'STATS64 wins entirely over STATS');
  });

  it('decodes an IPv6 firewall-mark service', () => {
    const svc = decodeService(
      new Attrs(
        Buffer.concat([
          nla.u16(1, 10),
          nla.u32(5, 7),
          nla.string(6, 'sh'),
          nla.binary(7, hex('18000000 ffffffff')),
          nla.u32(8, 0),
          nla.binary(9, hex('40000000')),
          nla.string(11, 'sip'),
        ]),
        'service',
      ),
    );
    assert.equal(svc.key, 'fwmark6/7');
    assert.equal(svc.netmask, '64');
    assert.equal(svc.flags, 0x18);
    assert.equal(svc.persistenceEngine, 'sip');
    assert.equal(svc.stats, undefined);
  });

  it('decodes a destination with tunnel fields, counters and 32-bit stats', () => {
    const d = decodeDestination(new Attrs(KERNEL_DEST, 'destination'), 4);
    assert.deepEqual(d.id, { family: 4, address: '10.200.0.3', port: 8080 });
    assert.equal(d.key, '10.200.0.3:8080');
    assert.equal(d.weight, 5);
    assert.equal(d.forward, 'tunnel');
    assert.deepEqual(d.tunnel, { type: 'gue', port: 6080, flags: 3 });
    assert.deepEqual([d.upperThreshold, d.lowerThreshold], [100, 10]);
    assert.deepEqual([d.activeConns, d.inactiveConns, d.persistentConns], [3, 4, 0]);
    assert.equal(d.stats?.conns, 7);
    assert.equal(d.stats?.inBytes, 1000);
    assert.equal(d.stats?.cps, 2);
  });

  it('takes the service family when ADDR_FAMILY is absent (kernels before 4.3)', () => {
    const d = decodeDestination(
      new Attrs(
        Buffer.concat([
          nla.binary(1, hex('fd000000 00000000 00000000 00000002')),
          nla.be16(2, 80),
          nla.u32(3, 0),
          nla.u32(4, 1),
        ]),
        'destination',
      ),
      6,
    );
    assert.equal(d.key, '[fd00::2]:80');
    assert.equal(d.forward, 'nat');
    assert.equal(d.tunnel, undefined);
  });

  it('lists values the kernel stores but that have no name, instead of failing', () => {
    const d = decodeDestination(
      new Attrs(
        Buffer.concat([nla.binary(1, Buffer.alloc(16)), nla.be16(2, 80), nla.u32(3, 7), nla.u32(4, 1)]),
        'destination',
      ),
      4,
    );
    assert.equal(d.forward, 'unknown');
    const t = decodeDestination(
      new Attrs(
        Buffer.concat([nla.binary(1, Buffer.alloc(16)), nla.be16(2, 80), nla.u32(3, 2), nla.u32(4, 1), nla.u8(13, 7)]),
        'destination',
      ),
      4,
    );
    assert.deepEqual(t.tunnel, { type: 'unknown', port: 0, flags: 0 });
    const svc = decodeService(
      new Attrs(
        Buffer.concat([
          hex('0600 0100 0200 0000  0600 0200 0100 0000'),
          nla.binary(3, Buffer.alloc(16)),
          nla.be16(4, 0),
          nla.string(6, 'rr'),
          nla.binary(7, Buffer.alloc(8)),
          nla.u32(8, 0),
          nla.binary(9, hex('ffffffff')),
        ]),
        'service',
      ),
    );
    assert.equal(svc.key, 'ipproto1/0.0.0.0:0');
    assert.deepEqual(inner(encodeServiceId(svc.id)).u16(IPVS_SVC_ATTR.PROTOCOL), 1);
  });

  it('names what is missing or malformed', () => {
    assert.throws(
      () => decodeDestination(new Attrs(nla.be16(2, 80), 'destination'), 4),
      /decoding destination: missing address/,
    );
    assert.throws(() => decodeService(new Attrs(nla.u16(1, 99), 'service')), /unknown address family 99/);
  });

  it('decodes info and timeouts', () => {
    assert.deepEqual(decodeInfo(new Attrs(hex('0800 0100 01020100  0800 0200 00100000'), 'info')), {
      version: '1.2.1',
      versionCode: 0x010201,
      connTableSize: 4096,
    });
    assert.deepEqual(
      decodeTimeouts(new Attrs(hex('0800 0400 84030000 0800 0500 78000000 0800 0600 2c010000'), 'config')),
      {
        tcp: 900,
        tcpFin: 120,
        udp: 300,
      },
    );
  });
});

describe('IPVS edits resend what they keep', le, () => {
  it('SET_DEST for a weight change carries the kernel-reported fields, minus counters and stats', () => {
    const sent = inner(encodeEditedDestination(new Attrs(KERNEL_DEST, 'destination'), { weight: 0 }));
    assert.deepEqual(
      sent
        .entries()
        .map(([t]) => t)
        .sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6, 11, 13, 14, 15],
    );
    assert.equal(sent.u32(IPVS_DEST_ATTR.WEIGHT), 0);
    assert.equal(sent.u32(IPVS_DEST_ATTR.FWD_METHOD), 2);
    assert.equal(sent.u32(IPVS_DEST_ATTR.U_THRESH), 100);
    assert.equal(sent.u32(IPVS_DEST_ATTR.L_THRESH), 10);
    assert.equal(sent.u8(IPVS_DEST_ATTR.TUN_TYPE), 1);
    assert.equal(sent.be16(IPVS_DEST_ATTR.TUN_PORT), 6080);
    assert.equal(sent.u16(IPVS_DEST_ATTR.TUN_FLAGS), 3);
    assert.deepEqual(sent.raw(IPVS_DEST_ATTR.ADDR), KERNEL_DEST.subarray(4, 20));
  });

  it('SET_SERVICE keeps scheduler, persistence and engine, drops HASHED and stats', () => {
    const current = new Attrs(
      Buffer.concat([
        hex(SVC_TCP_10_99_0_1_80),
        nla.string(6, 'rr'),
        nla.string(11, 'sip'),
        nla.binary(7, hex('03000000 ffffffff')),
        nla.u32(8, 300),
        nla.binary(9, hex('ffffffff')),
        nla.nested(10, [nla.u32(1, 5)]),
      ]),
      'service',
    );
    const sent = inner(encodeEditedService(current, 4, { scheduler: 'wlc' }));
    assert.equal(sent.string(IPVS_SVC_ATTR.SCHED_NAME), 'wlc');
    assert.equal(sent.string(IPVS_SVC_ATTR.PE_NAME), 'sip');
    assert.deepEqual(sent.raw(IPVS_SVC_ATTR.FLAGS), hex('01000000 ffffffff'));
    assert.equal(sent.u32(IPVS_SVC_ATTR.TIMEOUT), 300);
    assert.deepEqual(sent.raw(IPVS_SVC_ATTR.NETMASK), hex('ffffffff'));
    assert.equal(sent.has(IPVS_SVC_ATTR.STATS), false);
    assert.equal(sent.be16(IPVS_SVC_ATTR.PORT), 80);
  });
});
