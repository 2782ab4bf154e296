// IP address bytes <-> text, without the network stack: events carry raw 16-byte addresses.
import * as net from 'node:net';

export type Family = 4 | 6;

/** Formats 4 (IPv4) or 16 (IPv6) bytes; IPv6 in RFC 5952 form (lowercase, longest zero run compressed). */
export function formatAddr(family: Family, bytes: Uint8Array): string {
  if (family === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i] << 8) | bytes[i + 1]);
  let bestStart = -1;
  let bestLen = 1; // RFC 5952 4.2.2: a single 16-bit 0 field is not compressed
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  const head = hex.slice(0, bestStart).join(':');
  const tail = hex.slice(bestStart + bestLen).join(':');
  return `${head}::${tail}`;
}

/** Parses an IPv4 or IPv6 literal into 16 bytes (IPv4 in the first 4), or throws naming the input. */
export function parseAddr(text: string): { family: Family; bytes: Buffer } {
  const out = Buffer.alloc(16);
  if (net.isIPv4(text)) {
    text.split('.').forEach((p, i) => (out[i] = Number(p)));
    return { family: 4, bytes: out };
  }
  if (!net.isIPv6(text)) throw new Error(`invalid IP address '${text}': expected an IPv4 or IPv6 literal`);
  let s = text;
  // Embedded IPv4 tail (::ffff:1.2.3.4): turn it into two hex words first.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const b = v4[1].split('.').map(Number);
    s = s.slice(0, v4.index) + `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [headText, tailText] = s.includes('::') ? s.split('::') : [s, undefined];
  const head = headText ? headText.split(':') : [];
  const tail = tailText ? tailText.split(':') : [];
  const words = tailText === undefined ? head : [...head, ...Array(8 - head.length - tail.length).fill('0'), ...tail];
  words.forEach((w, i) => out.writeUInt16BE(parseInt(w, 16), i * 2));
  return { family: 6, bytes: out };
}

/** `10.0.0.1:80` or `[fd00::1]:80`. */
export function formatEndpoint(addr: string, port: number): string {
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}
