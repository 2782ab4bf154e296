// Service and destination names: canonical forms, parsing, and errors that say what was expected.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { formatIPv6, parseIPv4, parseIPv6 } from '../../src/actuator/ipvs/address';
import {
  IdentityError,
  describeService,
  destinationKey,
  parseDestination,
  parseService,
  sameDestination,
  sameService,
  serviceKey,
  toDestinationId,
  toServiceId,
} from '../../src/actuator/ipvs/identity';

describe('IPv6 canonical text (RFC 5952)', () => {
  const canon = (s: string): string => {
    const b = parseIPv6(s);
    assert.ok(b, `${s} should parse`);
    return formatIPv6(b);
  };
  it('compresses the longest zero run, the first on a tie, never a single group', () => {
    assert.equal(canon('FD00:0000:0000:0000:0000:0000:0000:0001'), 'fd00::1');
    assert.equal(canon('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
    assert.equal(canon('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1');
    assert.equal(canon('2001:0db8::0001'), '2001:db8::1');
    assert.equal(canon('::'), '::');
    assert.equal(canon('::1'), '::1');
    assert.equal(canon('1::'), '1::');
    assert.equal(canon('::ffff:10.0.0.1'), '::ffff:10.0.0.1');
    assert.equal(canon('::ffff:a00:1'), '::ffff:10.0.0.1');
    assert.equal(canon('64:ff9b::192.0.2.33'), '64:ff9b::c000:221');
  });
  it('refuses malformed addresses', () => {
    for (const bad of [
      '1:2:3:4:5:6:7',
      '1::2::3',
      ':1::',
      '1:2:3:4:5:6:7:8:9',
      '12345::',
      'fe80::1%eth0',
      '1.2.3.4::',
      'g::1',
    ]) {
      assert.equal(parseIPv6(bad), undefined, bad);
    }
    for (const bad of ['10.0.0', '10.0.0.256', '010.0.0.1', '10.0.0.1.', ' 10.0.0.1', '1e1.0.0.1']) {
      assert.equal(parseIPv4(bad), undefined, bad);
    }
  });
});

describe('service identities', () => {
  it('parses and prints the canonical forms', () => {
    const cases: [string, string, string][] = [
      ['tcp/10.99.0.1:80', 'tcp/10.99.0.1:80', 'TCP 10.99.0.1:80'],
      ['TCP/10.99.0.1:80', 'tcp/10.99.0.1:80', 'TCP 10.99.0.1:80'],
      ['udp/[FD00:0::1]:53', 'udp/[fd00::1]:53', 'UDP [fd00::1]:53'],
      ['sctp/10.0.0.1:3868', 'sctp/10.0.0.1:3868', 'SCTP 10.0.0.1:3868'],
      ['tcp/10.0.0.1:0', 'tcp/10.0.0.1:0', 'TCP 10.0.0.1:0'],
      ['fwmark/7', 'fwmark/7', 'FWM 7'],
      ['fwmark6/4294967295', 'fwmark6/4294967295', 'FWM 4294967295 IPv6'],
      // protocols IPVS does not schedule, which the kernel nonetheless accepts
      ['ipproto1/10.0.0.1:0', 'ipproto1/10.0.0.1:0', 'IPPROTO1 10.0.0.1:0'],
      ['ipproto6/10.0.0.1:80', 'tcp/10.0.0.1:80', 'TCP 10.0.0.1:80'],
    ];
    for (const [input, key, described] of cases) {
      const id = parseService(input);
      assert.equal(serviceKey(id), key, input);
      assert.equal(describeService(id), described, input);
      assert.deepEqual(parseService(serviceKey(id)), id, `${input} round-trips`);
    }
    assert.deepEqual(parseService('tcp/[fd00::1]:80'), {
      kind: 'address',
      protocol: 'tcp',
      family: 6,
      address: 'fd00::1',
      port: 80,
    });
    assert.deepEqual(parseService('fwmark/7'), { kind: 'fwmark', family: 4, fwmark: 7 });
  });

  it('explains what was wrong and what was expected', () => {
    const cases: [string, RegExp][] = [
      ['10.99.0.1:80', /missing "<protocol>\/"/],
      ['icmp/10.99.0.1:80', /unknown protocol "icmp"/],
      ['ipproto256/10.99.0.1:80', /unknown protocol "ipproto256"/],
      ['tcp/10.99.0.1', /missing :<port>/],
      ['tcp/10.99.0.1:http', /port "http" is not a number 0-65535/],
      ['tcp/10.99.0.1:65536', /port "65536"/],
      ['tcp/fd00::1:80', /IPv6 addresses need brackets, as in \[fd00::1\]:80/],
      ['tcp/[fd00::1]80', /must be followed by :<port>/],
      ['tcp/[10.0.0.1]:80', /brackets are for IPv6 addresses only/],
      ['tcp/example.com:80', /"example.com" is not an IPv4 or IPv6 address/],
      ['fwmark/0', /firewall mark "0" is not a number 1-4294967295/],
      ['fwmark/x', /firewall mark "x"/],
    ];
    for (const [input, why] of cases) {
      assert.throws(
        () => parseService(input),
        (e: unknown) => {
          assert.ok(e instanceof IdentityError);
          assert.equal(e.code, 'EINVAL');
          assert.match(e.message, new RegExp(`^parsing IPVS service "${input.replace(/[[\]/.]/g, '\\$&')}": `));
          assert.match(e.message, why);
          assert.match(e.message, /expected tcp\|udp\|sctp\/<address>:<port> \(tcp\/10\.99\.0\.1:80/);
          return true;
        },
        input,
      );
    }
  });

  it('validates and canonicalizes identities given as objects', () => {
    const id = toServiceId({ kind: 'address', protocol: 'tcp', family: 6, address: 'FD00:0:0::1', port: 80 });
    assert.equal(serviceKey(id), 'tcp/[fd00::1]:80');
    assert.throws(
      () => toServiceId({ kind: 'address', protocol: 'tcp', family: 4, address: 'fd00::1', port: 80 }),
      /family 4 does not match address fd00::1/,
    );
    assert.throws(() => toServiceId({ kind: 'fwmark', family: 4, fwmark: 0 }), IdentityError);
    assert.ok(
      sameService('tcp/[fd00:0::1]:80', { kind: 'address', protocol: 'tcp', family: 6, address: 'fd00::1', port: 80 }),
    );
    assert.ok(!sameService('tcp/10.0.0.1:80', 'udp/10.0.0.1:80'));
  });
});

describe('destination identities', () => {
  it('parses and prints host:port', () => {
    assert.deepEqual(parseDestination('10.200.0.2:80'), { family: 4, address: '10.200.0.2', port: 80 });
    assert.equal(destinationKey(parseDestination('[FD00::0002]:8080')), '[fd00::2]:8080');
    assert.ok(sameDestination('[fd00::2]:80', { family: 6, address: 'fd00:0::2', port: 80 }));
    assert.equal(destinationKey(toDestinationId({ family: 4, address: '10.0.0.1', port: 0 })), '10.0.0.1:0');
  });

  it('explains bad destinations', () => {
    assert.throws(
      () => parseDestination('10.200.0.2'),
      /^IdentityError: parsing IPVS destination "10.200.0.2": missing :<port> — expected <address>:<port> \(10.200.0.2:80, \[fd00::2\]:80\)$/,
    );
    assert.throws(
      () => toDestinationId({ family: 4, address: '10.0.0.1', port: -1 }),
      /port -1 is not a number 0-65535/,
    );
  });
});
