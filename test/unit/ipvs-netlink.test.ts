// Netlink framing: attributes, messages, acks and dump termination, checked against byte fixtures written by hand
// from <linux/netlink.h> (struct nlmsghdr, struct nlattr, struct nlmsgerr, NLA_ALIGNTO = NLMSG_ALIGNTO = 4).
// Header integers are host order; the fixtures are little-endian (x86_64, arm64), the only hosts vipguard targets.
import { strict as assert } from 'node:assert';
import * as os from 'node:os';
import { describe, it } from 'node:test';
import {
  Attrs,
  NLM_F,
  NLMSG,
  NetlinkDecodeError,
  align4,
  encodeMessage,
  nla,
  parseAck,
  parseAttrs,
  parseDone,
  parseMessages,
} from '../../src/actuator/ipvs/netlink';

const hex = (s: string): Buffer => Buffer.from(s.replace(/#[^\n]*/g, '').replace(/\s+/g, ''), 'hex');
const le = { skip: os.endianness() !== 'LE' ? 'fixtures are little-endian' : false };

describe('netlink attributes', le, () => {
  it('aligns to 4 bytes', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 8, 9].map(align4), [0, 4, 4, 4, 4, 8, 8, 12]);
  });

  it('encodes integers with nla_len excluding the padding', () => {
    assert.deepEqual(nla.u8(13, 1), hex('0500 0d00 01 000000'));
    assert.deepEqual(nla.u16(1, 2), hex('0600 0100 0200 0000'));
    assert.deepEqual(nla.u32(4, 0x01020304), hex('0800 0400 04030201'));
    assert.deepEqual(nla.be16(4, 80), hex('0600 0400 0050 0000')); // port 80, network order
    assert.deepEqual(nla.u64(4, 600n), hex('0c00 0400 5802000000000000'));
  });

  it('NUL-terminates strings and pads them', () => {
    assert.deepEqual(nla.string(6, 'rr'), hex('0700 0600 727200 00'));
    assert.deepEqual(nla.string(2, 'IPVS'), hex('0900 0200 4950565300 000000'));
    assert.deepEqual(nla.string(6, 'wrr'), hex('0800 0600 77727200'));
  });

  it('nests with NLA_F_NESTED and a length covering padded children', () => {
    const n = nla.nested(2, [nla.u16(1, 2), nla.string(6, 'rr')]);
    assert.deepEqual(n, hex('1400 0280  0600 0100 0200 0000  0700 0600 727200 00'));
  });

  it('refuses values that do not fit', () => {
    assert.throws(() => nla.u8(1, 256), RangeError);
    assert.throws(() => nla.u16(1, -1), RangeError);
    assert.throws(() => nla.u32(1, 1.5), RangeError);
    assert.throws(() => nla.u32(1, 2 ** 32), RangeError);
    assert.throws(() => nla.binary(1, Buffer.alloc(65532)), /exceed/);
  });

  it('round-trips through parseAttrs and Attrs, nested included', () => {
    const body = Buffer.concat([
      nla.u8(1, 7),
      nla.u16(2, 513),
      nla.u32(3, 0xfffffffe),
      nla.u64(4, 2n ** 40n),
      nla.be16(5, 8080),
      nla.string(6, 'sip'),
      nla.nested(7, [nla.u32(1, 42), nla.nested(2, [nla.string(1, 'deep')])]),
    ]);
    const a = new Attrs(body, 'test');
    assert.equal(a.u8(1), 7);
    assert.equal(a.u16(2), 513);
    assert.equal(a.u32(3), 0xfffffffe);
    assert.equal(a.u64(4), 2 ** 40);
    assert.equal(a.be16(5), 8080);
    assert.equal(a.string(6), 'sip');
    const inner = a.nested(7, 'outer');
    assert.equal(inner?.u32(1), 42);
    assert.equal(inner?.nested(2, 'inner')?.string(1), 'deep');
    assert.equal(a.u32(99), undefined);
    assert.deepEqual(
      parseAttrs(body, 'test').map((x) => [x.type, x.nested]),
      [
        [1, false],
        [2, false],
        [3, false],
        [4, false],
        [5, false],
        [6, false],
        [7, true],
      ],
    );
  });

  it('checks sizes of typed reads and lengths of attributes', () => {
    const a = new Attrs(nla.u16(1, 5), 'svc');
    assert.throws(() => a.u32(1), /decoding svc: attribute 1 has 2 bytes, expected 4/);
    assert.throws(() => parseAttrs(hex('0800 0100 0000'), 'x'), NetlinkDecodeError); // claims 8, has 6
    assert.throws(() => parseAttrs(hex('0300 0100'), 'x'), /claims 3 bytes/); // shorter than its header
    // last occurrence wins, like the kernel's nla_parse()
    assert.equal(new Attrs(Buffer.concat([nla.u32(1, 1), nla.u32(1, 2)]), 'dup').u32(1), 2);
  });
});

describe('netlink messages', le, () => {
  it('encodes CTRL_CMD_GETFAMILY "IPVS" byte for byte', () => {
    const payload = Buffer.concat([hex('03 01 0000'), nla.string(2, 'IPVS')]);
    const msg = encodeMessage({ type: 0x10, flags: NLM_F.REQUEST | NLM_F.ACK, seq: 1 }, payload);
    assert.deepEqual(
      msg,
      hex(`
        20000000 1000 0500 01000000 00000000   # nlmsghdr: len 32, GENL_ID_CTRL, REQUEST|ACK, seq 1, pid 0
        03 01 0000                             # genlmsghdr: CTRL_CMD_GETFAMILY, version 1
        0900 0200 4950565300 000000            # CTRL_ATTR_FAMILY_NAME "IPVS\\0" + 3 pad
      `),
    );
  });

  it('splits a datagram holding several messages and keeps nlmsg_len unpadded', () => {
    const a = encodeMessage({ type: 0x20, flags: NLM_F.MULTI, seq: 9, pid: 77 }, hex('010203')); // len 19, padded 20
    assert.equal(a.readUInt32LE(0), 19);
    const b = encodeMessage({ type: NLMSG.DONE, flags: NLM_F.MULTI, seq: 9, pid: 77 }, hex('00000000'));
    const msgs = parseMessages(Buffer.concat([a, b]));
    assert.equal(msgs.length, 2);
    assert.deepEqual(msgs[0].payload, hex('010203'));
    assert.deepEqual([msgs[0].type, msgs[0].flags, msgs[0].seq, msgs[0].pid], [0x20, 2, 9, 77]);
    assert.equal(msgs[1].type, NLMSG.DONE);
    assert.throws(() => parseMessages(hex('40000000 1000 0000 00000000 00000000')), /claims 64 bytes/);
  });

  it('parses a capped success ack', () => {
    const ack = parseMessages(
      hex(`
        24000000 0200 0001 07000000 d2040000   # len 36, NLMSG_ERROR, NLM_F_CAPPED, seq 7, pid 1234
        00000000                               # error 0
        20000000 1000 0500 07000000 00000000   # our request's header
      `),
    )[0];
    const a = parseAck(ack);
    assert.equal(a.errno, 0);
    assert.deepEqual(a.request, { type: 0x10, flags: 5, seq: 7, pid: 0 });
    assert.equal(a.message, undefined);
  });

  it('parses a capped error ack with extended-ack TLVs', () => {
    const a = parseAck(
      parseMessages(
        hex(`
          40000000 0200 0003 08000000 d2040000   # len 64, NLMSG_ERROR, CAPPED|ACK_TLVS
          feffffff                               # -ENOENT
          30000000 2300 0500 08000000 00000000   # our request's header (48 bytes long)
          1200 0100 62616420 61747472 69627574 6500 0000  # NLMSGERR_ATTR_MSG "bad attribute\\0" (len 18) + pad
          0800 0200 24000000                     # NLMSGERR_ATTR_OFFS 36
        `),
      )[0],
    );
    assert.equal(a.errno, 2);
    assert.equal(a.message, 'bad attribute');
    assert.equal(a.badAttrOffset, 36);
  });

  it('finds TLVs after an echoed (uncapped) request', () => {
    // Without NETLINK_CAP_ACK the kernel copies our whole request (here 20 bytes: header + 4-byte payload).
    const a = parseAck(
      parseMessages(
        hex(`
          3c000000 0200 0002 05000000 00000000   # len 60, NLMSG_ERROR, ACK_TLVS only
          eaffffff                               # -EINVAL
          14000000 2300 0500 05000000 00000000   # request header, len 20
          05 01 0000                             # its payload, echoed
          0900 0100 6e6f706500 000000            # NLMSGERR_ATTR_MSG "nope\\0" + pad
          0800 0500 03000000                     # NLMSGERR_ATTR_MISS_TYPE 3
        `),
      )[0],
    );
    assert.equal(a.errno, 22);
    assert.equal(a.message, 'nope');
    assert.equal(a.missingType, 3);
  });

  it('reads the status of NLMSG_DONE, with and without TLVs', () => {
    const [ok] = parseMessages(hex('14000000 0300 0200 01000000 00000000 00000000'));
    assert.equal(parseDone(ok).errno, 0);
    const [bad] = parseMessages(
      hex(`
        1c000000 0300 0202 01000000 00000000   # len 28, NLMSG_DONE, MULTI|ACK_TLVS
        f0ffffff                               # -EBUSY (16)
        0800 0100 78797a00                     # NLMSGERR_ATTR_MSG "xyz"
      `),
    );
    const d = parseDone(bad);
    assert.equal(d.errno, 16);
    assert.equal(d.message, 'xyz');
    // Some families end dumps with a bare header.
    assert.equal(parseDone(parseMessages(hex('10000000 0300 0200 01000000 00000000'))[0]).errno, 0);
  });

  it('refuses to read a non-error message as an ack', () => {
    const [m] = parseMessages(hex('14000000 2300 0000 01000000 00000000 00000000'));
    assert.throws(() => parseAck(m), /not NLMSG_ERROR/);
  });
});
