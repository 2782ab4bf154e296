// A loopback port that was free a moment ago: bound to 0 and released, for daemons that need their port written
// into a configuration before they start (a race with other binders is possible, and fine for tests and benches).
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
