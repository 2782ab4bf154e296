// The UDP restore probe's pure parts: the DNS query it sends, the check of what comes back, and the config form.
// The probe on real sockets against dnsmasq is test/host/udp-probe.test.ts.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkDnsResponse, dnsNameLabels, encodeDnsQuery } from '../../src/actuator/dns-message';
import { MAX_UDP_PROBE_BYTES, parseUdpProbeSpec, udpProbe } from '../../src/actuator/udp-probe';

/** A response to `query` as a server would build it: QR set, RCODE, the question echoed, no records. */
function responseTo(query: Buffer, opts: { rcode?: number; tc?: boolean; id?: number; question?: boolean } = {}): Buffer {
  const r = Buffer.from(opts.question === false ? query.subarray(0, 12) : query);
  if (opts.question === false) r.writeUInt16BE(0, 4);
  if (opts.id !== undefined) r.writeUInt16BE(opts.id, 0);
  r.writeUInt16BE(0x8000 | 0x0100 | 0x0080 | (opts.tc ? 0x0200 : 0) | (opts.rcode ?? 0), 2); // QR, RD, RA
  return r;
}

describe('DNS query', () => {
  it('is a header with RD and one question, A/IN, byte for byte', () => {
    assert.equal(encodeDnsQuery('example.org', 0x1234).toString('hex'),
      '1234' + '0100' + '0001' + '0000' + '0000' + '0000' + '076578616d706c65' + '036f7267' + '00' + '0001' + '0001');
    assert.deepEqual(encodeDnsQuery('example.org.', 7).subarray(2), encodeDnsQuery('example.org', 7).subarray(2), 'a trailing dot is the same name');
    assert.equal(encodeDnsQuery('.', 0).subarray(12).toString('hex'), '0000010001', 'the root: one zero octet');
  });

  it('refuses what is not a host name, saying why', () => {
    assert.equal(dnsNameLabels(''), 'is empty');
    assert.equal(dnsNameLabels('a..b'), 'has an empty label');
    assert.equal(dnsNameLabels(`${'x'.repeat(64)}.org`), 'has a label of 64 characters (at most 63)');
    assert.equal(dnsNameLabels('exa mple.org'), `has a label "exa mple" with characters other than letters, digits, '-' and '_'`);
    assert.equal(dnsNameLabels('bücher.example'), `has a label "bücher" with characters other than letters, digits, '-' and '_'`);
    const long = Array.from({ length: 4 }, () => 'x'.repeat(63)).join('.'); // 4 x 64 + 1 = 257 octets
    assert.equal(dnsNameLabels(long), 'is 257 octets on the wire (at most 255)');
    assert.deepEqual(dnsNameLabels(long.slice(2)), long.slice(2).split('.'), '255 octets is allowed');
    assert.deepEqual(dnsNameLabels('_sip._udp.xn--bcher-kva.example'), ['_sip', '_udp', 'xn--bcher-kva', 'example']);
    assert.throws(() => encodeDnsQuery('a..b', 1), /^Error: DNS name "a..b" has an empty label: expected a host name such as example.org$/);
    assert.throws(() => encodeDnsQuery('a.b', 65536), RangeError);
  });
});

describe('DNS response check', () => {
  const q = encodeDnsQuery('www.probe.test', 0xbeef);

  it('takes any RCODE from a live server, and TC', () => {
    assert.deepEqual(checkDnsResponse(responseTo(q), q), { ok: true, rcode: 'NOERROR', truncated: false });
    assert.deepEqual(checkDnsResponse(responseTo(q, { rcode: 3 }), q), { ok: true, rcode: 'NXDOMAIN', truncated: false });
    assert.deepEqual(checkDnsResponse(responseTo(q, { rcode: 5, tc: true }), q), { ok: true, rcode: 'REFUSED', truncated: true });
    assert.deepEqual(checkDnsResponse(responseTo(q, { rcode: 2 }), q), { ok: true, rcode: 'SERVFAIL', truncated: false });
    assert.deepEqual(checkDnsResponse(responseTo(q, { rcode: 12 }), q), { ok: true, rcode: 'RCODE 12', truncated: false });
    assert.deepEqual(checkDnsResponse(responseTo(q, { rcode: 1, question: false }), q), { ok: true, rcode: 'FORMERR', truncated: false },
      'no question echoed (some servers do that on errors)');
  });

  it('matches the echoed name case-insensitively (DNS 0x20)', () => {
    const r = responseTo(q);
    r.write('WwW', 13, 'ascii');
    assert.equal(checkDnsResponse(r, q).ok, true);
  });

  it('refuses what is not the answer to our query, saying why', () => {
    const why = (m: Buffer) => { const r = checkDnsResponse(m, q); return r.ok ? 'ok' : r.why; };
    assert.equal(why(Buffer.from('PONG')), '4 bytes, shorter than a DNS header (12)');
    assert.equal(why(responseTo(q, { id: 0xbeee })), 'DNS id 48878, not ours (48879)');
    assert.equal(why(q), 'a DNS query (QR clear), not a response');
    const notify = responseTo(q);
    notify[2] |= 4 << 3; // opcode 4, NOTIFY
    assert.equal(why(notify), 'DNS opcode 4, not our query\'s');
    const two = responseTo(q);
    two.writeUInt16BE(2, 4);
    assert.equal(why(two), '2 questions echoed, we asked one');
    assert.equal(why(responseTo(encodeDnsQuery('www.probe.tesu', 0xbeef))), 'a DNS response to another question');
    const aaaa = responseTo(q);
    aaaa.writeUInt16BE(28, aaaa.length - 4);
    assert.equal(why(aaaa), 'a DNS response to another question', 'same name, type AAAA');
    assert.equal(why(responseTo(q).subarray(0, 20)), 'a DNS response to another question', 'question cut short');
  });

  it('property: a response to the query passes, and one with another id or name does not', () => {
    const label = fc.stringMatching(/^[A-Za-z0-9_-]{1,63}$/);
    const name = fc.array(label, { minLength: 1, maxLength: 3 }).map((ls) => ls.join('.'));
    fc.assert(fc.property(name, fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 15 }), (n, id, rcode) => {
      const query = encodeDnsQuery(n, id);
      assert.equal(checkDnsResponse(responseTo(query, { rcode }), query).ok, true);
      assert.equal(checkDnsResponse(responseTo(query, { id: id ^ 1 }), query).ok, false);
      assert.equal(checkDnsResponse(responseTo(encodeDnsQuery(`x.${n}`, id)), query).ok, false);
    }), { numRuns: 300 });
  });
});

describe('UDP probe config form', () => {
  it('reads the three kinds', () => {
    assert.deepEqual(parseUdpProbeSpec({ dns: 'example.org' }), { kind: 'dns', name: 'example.org' });
    assert.deepEqual(parseUdpProbeSpec({ silence: true }), { kind: 'silence' });
    assert.deepEqual(parseUdpProbeSpec({ payload: 'PING\n' }), { kind: 'payload', send: Buffer.from('PING\n') });
    assert.deepEqual(parseUdpProbeSpec({ payload: 'hex:ff ff ff ff 54 53 6f', expect: 'hex:FFFF' }),
      { kind: 'payload', send: Buffer.from('ffffffff54536f', 'hex'), expect: Buffer.from([0xff, 0xff]) });
    assert.deepEqual(parseUdpProbeSpec({ payload: 'hex:' }), { kind: 'payload', send: Buffer.alloc(0) }, 'an empty datagram, on purpose');
    assert.deepEqual(parseUdpProbeSpec({ payload: 'ping', expect: 'pong' }).kind, 'payload');
    assert.equal(parseUdpProbeSpec({ payload: 'x'.repeat(MAX_UDP_PROBE_BYTES) }).kind, 'payload');
  });

  it('says what is wrong and what was expected', () => {
    const forms = ': expected {dns: <host name>}, {payload: <bytes>, expect?: <bytes>} or {silence: true}, where <bytes> is text or hex:<pairs of hex digits>';
    const cases: [unknown, string][] = [
      ['example.org', 'is the string "example.org"'],
      [null, 'is null'],
      [[], 'is a list'],
      [{}, 'names no kind'],
      [{ dns: 'a.org', silence: true }, 'has "dns" and "silence", only one may be given'],
      [{ dns: 'a.org', port: 53 }, 'has unknown key "port"'],
      [{ expect: 'x' }, 'names no kind'],
      [{ dns: 'a.org', expect: 'x' }, 'has "expect" without "payload"'],
      [{ dns: 53 }, 'dns is number 53, not a host name'],
      [{ dns: 'a..org' }, 'dns name "a..org" has an empty label'],
      [{ silence: 'yes' }, 'silence is the string "yes", only true means anything'],
      [{ silence: false }, 'silence is boolean false, only true means anything'],
      [{ payload: { hex: 'ff' } }, 'payload is an object, not a string'],
      [{ payload: 'hex:abc' }, 'payload "hex:abc" is not hex: followed by pairs of hex digits'],
      [{ payload: 'hex:zz' }, 'payload "hex:zz" is not hex: followed by pairs of hex digits'],
      [{ payload: 'x'.repeat(MAX_UDP_PROBE_BYTES + 1) }, 'payload is 1233 bytes (at most 1232, so it is never fragmented)'],
      [{ payload: 'ping', expect: '' }, 'expect is empty (every reply would contain it; leave expect out instead)'],
      [{ payload: 'ping', expect: null }, 'expect is null, not a string'],
    ];
    for (const [raw, why] of cases) {
      assert.throws(() => parseUdpProbeSpec(raw), (e: Error) => { assert.equal(e.message, `UDP probe ${why}${forms}`); return true; });
    }
  });
});

it('udpProbe rejects arguments no probe can use, before opening anything', async () => {
  const dest = { family: 4, address: '127.0.0.1', port: 53 } as const;
  for (const t of [0, -1, NaN, Infinity]) await assert.rejects(udpProbe(dest, { kind: 'silence' }, t), RangeError);
  await assert.rejects(udpProbe(dest, { kind: 'dns', name: 'a..b' }, 1000), /DNS name "a..b" has an empty label/);
});
