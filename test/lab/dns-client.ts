// DNS clients for the lab's UDP tests, against the topology's dnsmasq backends (scripts/lab/topology.sh --udp): each
// answers any name under vipguard.test with its own address, so every answer says which backend a datagram reached.
import * as dgram from 'node:dgram';
import { waitFor } from '../helpers';

export const NAME = 'who.vipguard.test';
const INTERVAL_MS = 50;

/** A DNS query for NAME (type A, RD) with the given id. */
function query(id: number): Buffer {
  const labels = NAME.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  return Buffer.concat([Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

/** The A record of dnsmasq's one-answer reply: its last four bytes. */
const answerIp = (m: Buffer): string | undefined => (m.length >= 16 && m.readUInt16BE(6) === 1 ? [...m.subarray(m.length - 4)].join('.') : undefined);

/**
 * One client flow: a connected UDP socket (one source port, so one IPVS connection entry) asking every
 * INTERVAL_MS, as a resolver library or a metrics shipper keeps one socket. Records who answered each query.
 */
export class DnsFlow {
  readonly sock = dgram.createSocket('udp4');
  readonly answers: { id: number; at: number; from: string }[] = [];
  sent = 0;
  private timer?: NodeJS.Timeout;

  static async open(host: string, port: number): Promise<DnsFlow> {
    const f = new DnsFlow();
    f.sock.on('message', (m) => { const from = answerIp(m); if (from) f.answers.push({ id: m.readUInt16BE(0), at: Date.now(), from }); });
    f.sock.on('error', () => { /* an ICMP error on the connected socket: counted as no answer */ });
    await new Promise<void>((r) => f.sock.connect(port, host, r));
    f.timer = setInterval(() => { if (f.sent < 20_000) f.sock.send(query(++f.sent & 0xffff)); }, INTERVAL_MS);
    return f;
  }

  get backend(): string | undefined { return this.answers.at(-1)?.from; }

  /** Until `n` more answers arrived (bounded), then who gave them. */
  async next(n: number, timeoutMs = 5000): Promise<string[]> {
    const start = this.answers.length;
    await waitFor(() => this.answers.length >= start + n, timeoutMs, `${n} DNS answers on one flow`);
    return this.answers.slice(start, start + n).map((a) => a.from);
  }

  close(): void {
    clearInterval(this.timer);
    this.sock.close();
  }
}
