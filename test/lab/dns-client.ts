// A DNS client for the lab's UDP services (scripts/lab/topology.sh --udp: dnsmasq backends answering any name under
// vipguard.test with their own address, so every answer says which backend a datagram reached): a steady flow on
// one connected socket, and dig, an unmodified client.
import * as dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { waitFor } from '../helpers';

export const NAME = 'who.vipguard.test';
/** how often a DnsFlow asks */
export const INTERVAL_MS = 50;

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
  /** when the connected socket reported an ICMP error (ECONNREFUSED: the backend's server is gone), Date.now() */
  readonly errors: number[] = [];
  private timer?: NodeJS.Timeout;

  static async open(host: string, port: number): Promise<DnsFlow> {
    const f = new DnsFlow();
    f.sock.on('message', (m) => { const from = answerIp(m); if (from) f.answers.push({ id: m.readUInt16BE(0), at: Date.now(), from }); });
    f.sock.on('error', () => { f.errors.push(Date.now()); /* an ICMP error on the connected socket: no answer */ });
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

/** dig, an unmodified client: one lookup from a fresh socket (a new flow), the answering backend or undefined. */
export function dig(vip: string, port: number): string | undefined {
  try {
    const out = execFileSync('dig', ['+short', '+tries=1', '+time=1', '-p', String(port), `@${vip}`, NAME], { encoding: 'utf8', timeout: 5000 });
    return out.trim().split('\n').find((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l));
  } catch {
    return undefined;
  }
}

/** A flow whose datagrams IPVS sends to `backendIp` (rr: a few new sockets are enough); every flow opened is pushed to `opened`. */
export async function openFlowOn(host: string, port: number, backendIp: string, opened: DnsFlow[]): Promise<DnsFlow> {
  for (let i = 0; i < 8; i++) {
    const f = await DnsFlow.open(host, port);
    opened.push(f);
    await f.next(2);
    if (f.backend === backendIp) return f;
  }
  throw new Error(`no flow landed on ${backendIp} in 8 tries`);
}
