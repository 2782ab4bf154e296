// net.ipv4.vs.expire_nodest_conn: with 1, IPVS expires a connection whose destination is unavailable or at
// weight 0 when its next packet arrives, and reschedules a SYN retransmit of a pending connect to another
// destination — the in-flight rescue (proven per kernel in test/lab/receiver.test.ts). vipguard sets it while it
// runs and puts the old value back when it stops.
import * as fs from 'node:fs';

export const EXPIRE_NODEST_CONN = '/proc/sys/net/ipv4/vs/expire_nodest_conn';

export class Sysctl {
  private previous?: string;

  constructor(private readonly path: string) {}

  read(): string {
    return fs.readFileSync(this.path, 'utf8').trim();
  }

  /** Sets the value, remembering the first value seen so restore() can put it back. */
  set(value: string): { changed: boolean; previous: string } {
    const cur = this.read();
    this.previous ??= cur;
    if (cur !== value) fs.writeFileSync(this.path, value);
    return { changed: cur !== value, previous: cur };
  }

  restore(): void {
    if (this.previous !== undefined && this.read() !== this.previous) fs.writeFileSync(this.path, this.previous);
    this.previous = undefined;
  }
}
