// IP address text <-> bytes, with one canonical text form per address (dotted quad; RFC 5952 for IPv6) so that
// service and destination names compare as strings. Strict like inet_pton(3): no octal, no zone ids, no shorthand.

export type IpFamily = 4 | 6;

export interface IpAddress {
  readonly family: IpFamily;
  /** 4 or 16 bytes, network order. */
  readonly bytes: Buffer;
}

export function parseIPv4(text: string): Buffer | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out = Buffer.alloc(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    // Leading zeros are refused (inet_pton does): "010" means 8 to inet_aton and 10 to a human.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    out[i] = v;
  }
  return out;
}

function parseGroups(part: string, allowTrailingV4: boolean): number[] | undefined {
  if (part === '') return [];
  const out: number[] = [];
  const groups = part.split(':');
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i];
    if (allowTrailingV4 && i === groups.length - 1 && g.includes('.')) {
      const v4 = parseIPv4(g);
      if (v4 === undefined) return undefined;
      out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) {
      out.push(parseInt(g, 16));
    } else {
      return undefined;
    }
  }
  return out;
}

export function parseIPv6(text: string): Buffer | undefined {
  const gap = text.indexOf('::');
  if (gap !== text.lastIndexOf('::')) return undefined;
  let groups: number[] | undefined;
  if (gap < 0) {
    groups = parseGroups(text, true);
    if (groups === undefined || groups.length !== 8) return undefined;
  } else {
    const head = parseGroups(text.slice(0, gap), false);
    const tail = parseGroups(text.slice(gap + 2), true);
    // "::" stands for at least one zero group.
    if (head === undefined || tail === undefined || head.length + tail.length > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(g, 2 * i));
  return out;
}

export function parseIp(text: string): IpAddress | undefined {
  const v4 = parseIPv4(text);
  if (v4 !== undefined) return { family: 4, bytes: v4 };
  const v6 = parseIPv6(text);
  return v6 === undefined ? undefined : { family: 6, bytes: v6 };
}

export function formatIPv4(b: Buffer): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/** RFC 5952 §4: lowercase, no leading zeros, the longest (first on a tie) run of 2+ zero groups becomes "::". */
export function formatIPv6(b: Buffer): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(2 * i));
  // §5: IPv4-mapped addresses keep their dotted tail.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${formatIPv4(b.subarray(12, 16))}`;
  }
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (best < 0) return hex(groups);
  return `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`;
}

export function formatIp(a: IpAddress): string {
  return a.family === 4 ? formatIPv4(a.bytes) : formatIPv6(a.bytes);
}

/** The kernel's union nf_inet_addr: 16 bytes, IPv4 in the first four. */
export function toInetAddr(a: IpAddress): Buffer {
  const out = Buffer.alloc(16);
  a.bytes.copy(out, 0);
  return out;
}

export function fromInetAddr(family: IpFamily, raw: Buffer): IpAddress {
  const size = family === 4 ? 4 : 16;
  if (raw.length < size) throw new RangeError(`decoding an IPv${family} address: ${raw.length} bytes, need ${size}`);
  return { family, bytes: Buffer.from(raw.subarray(0, size)) };
}

/** Contiguous IPv4 mask of `prefix` leading ones, network order. */
export function ipv4Mask(prefix: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0, 0);
  return out;
}
