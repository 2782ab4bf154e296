// Just enough of the DNS wire format (RFC 1035 §4.1) for the UDP restore probe: one query (header + one question,
// type A, class IN, RD set) and a check that a datagram is the answer to it. A probe asks "is a DNS server alive
// here?", not "is the answer right?", so any well-formed response to our query counts, whatever its RCODE: a server
// that says NXDOMAIN, REFUSED or SERVFAIL has parsed our query and answered it. No records are decoded.

/** Longest name on the wire, length octets and the root's zero included (RFC 1035 §2.3.4). */
const MAX_NAME_OCTETS = 255;
const MAX_LABEL_OCTETS = 63;
const HEADER_OCTETS = 12;
/** Header flags of the query: QR=0 (query), OPCODE=0 (standard query), RD=1 (recursion desired, as dig sends). */
const QUERY_FLAGS = 0x0100;
const QR_BIT = 0x8000;
const TYPE_A = 1;
const CLASS_IN = 1;

/** RCODE names (RFC 1035 §4.1.1, RFC 2136 §2.2); without an EDNS OPT record in the query, the header's 4 bits are all of it. */
const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET', 'NXRRSET', 'NOTAUTH', 'NOTZONE'];

/**
 * The labels of a host name, or a reason it is not one. A trailing dot is allowed ("example.org."); "." is the root.
 * Labels are letters, digits, '-' and '_' (for names like _sip._udp.example.org); an internationalized name must be
 * given in its ASCII (xn--) form, since the probe sends the octets as written.
 */
export function dnsNameLabels(name: string): string[] | string {
  if (name === '.') return [];
  const text = name.endsWith('.') ? name.slice(0, -1) : name;
  if (text === '') return 'is empty';
  const labels = text.split('.');
  for (const l of labels) {
    if (l === '') return 'has an empty label';
    if (l.length > MAX_LABEL_OCTETS) return `has a label of ${l.length} characters (at most ${MAX_LABEL_OCTETS})`;
    if (!/^[A-Za-z0-9_-]+$/.test(l)) return `has a label "${l}" with characters other than letters, digits, '-' and '_'`;
  }
  const octets = labels.reduce((n, l) => n + 1 + l.length, 1);
  if (octets > MAX_NAME_OCTETS) return `is ${octets} octets on the wire (at most ${MAX_NAME_OCTETS})`;
  return labels;
}

/** A standard query for the A record of `name` with message id `id` (0-65535). Throws if `name` is not a host name. */
export function encodeDnsQuery(name: string, id: number): Buffer {
  const labels = dnsNameLabels(name);
  if (typeof labels === 'string') throw new Error(`DNS name "${name}" ${labels}: expected a host name such as example.org`);
  if (!Number.isInteger(id) || id < 0 || id > 0xffff) throw new RangeError(`DNS message id ${id}: expected an integer 0-65535`);
  const qname = Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.of(l.length), Buffer.from(l, 'ascii')])), Buffer.of(0)]);
  const header = Buffer.alloc(HEADER_OCTETS);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(QUERY_FLAGS, 2);
  header.writeUInt16BE(1, 4); // QDCOUNT; ANCOUNT, NSCOUNT and ARCOUNT stay 0
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(TYPE_A, 0);
  tail.writeUInt16BE(CLASS_IN, 2);
  return Buffer.concat([header, qname, tail]);
}

export type DnsResponseCheck =
  | { ok: true; rcode: string; truncated: boolean }
  | { ok: false; why: string };

/**
 * Whether `msg` is a response to `query` (as made by encodeDnsQuery): at least a header, our id, QR set, our opcode,
 * and — when it echoes a question — our question. Names compare case-insensitively (RFC 4343), so a resolver that
 * randomizes case (DNS 0x20) still matches. A response with no question is accepted: some servers leave it out of
 * FORMERR and NOTIMP answers. TC (truncated) is still an answer: the server is alive, it only wants TCP for the rest.
 */
export function checkDnsResponse(msg: Buffer, query: Buffer): DnsResponseCheck {
  if (msg.length < HEADER_OCTETS) return { ok: false, why: `${msg.length} bytes, shorter than a DNS header (12)` };
  const id = msg.readUInt16BE(0);
  const want = query.readUInt16BE(0);
  if (id !== want) return { ok: false, why: `DNS id ${id}, not ours (${want})` };
  const flags = msg.readUInt16BE(2);
  if (!(flags & QR_BIT)) return { ok: false, why: 'a DNS query (QR clear), not a response' };
  const opcode = (flags >> 11) & 0xf;
  if (opcode !== ((query.readUInt16BE(2) >> 11) & 0xf)) return { ok: false, why: `DNS opcode ${opcode}, not our query's` };
  const qdcount = msg.readUInt16BE(4);
  if (qdcount > 1) return { ok: false, why: `${qdcount} questions echoed, we asked one` };
  if (qdcount === 1) {
    // The question is the first name in the message, so it cannot be compressed (pointers only point backwards).
    const question = query.subarray(HEADER_OCTETS);
    const echoed = msg.subarray(HEADER_OCTETS, HEADER_OCTETS + question.length);
    if (!sameQuestion(echoed, question)) return { ok: false, why: 'a DNS response to another question' };
  }
  const rcode = flags & 0xf;
  return { ok: true, rcode: RCODES[rcode] ?? `RCODE ${rcode}`, truncated: (flags & 0x0200) !== 0 };
}

/** Byte equality with ASCII letters folded. Our length octets (at most 63) and type/class octets lie below 'A', so folding cannot blur them. */
function sameQuestion(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  const fold = (c: number) => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c);
  for (let i = 0; i < a.length; i++) if (fold(a[i]) !== fold(b[i])) return false;
  return true;
}
