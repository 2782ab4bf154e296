// A loopback port that was free a moment ago: bound to 0 and released, for daemons that need their port written
// into a configuration before they start (a race with other binders is possible, and fine for tests and benches).
import * as dgram from 'node:dgram';
import * as net from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * A UDP port free a moment ago on both 127.0.0.1 and ::1, for a daemon listening on both (dnsmasq in the UDP probe
 * tests). Port 0 picks one on IPv4; the same number may be taken on IPv6, so it tries a few.
 */
export async function freeUdpPort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const v4 = dgram.createSocket('udp4');
    const v6 = dgram.createSocket({ type: 'udp6', ipv6Only: true });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        v4.once('error', reject);
        v4.bind(0, '127.0.0.1', () => resolve(v4.address().port));
      });
      const both = await new Promise<boolean>((resolve) => {
        v6.once('error', () => resolve(false));
        v6.bind(port, '::1', () => resolve(true));
      });
      if (both) return port;
    } finally {
      await Promise.all([v4, v6].map((s) => new Promise<void>((r) => { try { s.close(() => r()); } catch { r(); } })));
    }
  }
  throw new Error('finding a UDP port free on 127.0.0.1 and ::1: 20 tries, all taken — is the ephemeral range exhausted?');
}
