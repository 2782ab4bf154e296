// The fingerprint Alertmanager gives an alert (prometheus/common model.LabelSet.Fingerprint): 64-bit FNV-1a over
// the label names in byte order, each name and value followed by a 0xff separator, printed as 16 hex digits.
// Computing the same value for v2 alerts (which carry none) makes one alert arriving over both inputs one alert
// for the policy's idempotence, and vipguard need not trust the fingerprint a webhook sender claims.

const SEPARATOR = 0xff;
const utf8 = new TextEncoder();

/** FNV-1a 64 state in four 16-bit limbs (low first), so it stays in plain numbers rather than BigInt. */
class Fnv64 {
  private h = [0x2325, 0x8422, 0x9ce4, 0xcbf2]; // offset basis 0xcbf29ce484222325

  add(byte: number): void {
    const [h0, h1, h2, h3] = this.h;
    const x0 = h0 ^ byte;
    // × prime 0x100000001b3 = × 0x1b3 plus the value shifted left by 40 bits, mod 2^64.
    const t0 = x0 * 0x1b3;
    const t1 = h1 * 0x1b3 + (t0 >>> 16);
    const t2 = h2 * 0x1b3 + (t1 >>> 16) + ((x0 & 0xff) << 8);
    const t3 = h3 * 0x1b3 + (t2 >>> 16) + (x0 >>> 8) + ((h1 & 0xff) << 8);
    this.h = [t0 & 0xffff, t1 & 0xffff, t2 & 0xffff, t3 & 0xffff];
  }

  addBytes(bytes: Uint8Array): void {
    for (const b of bytes) this.add(b);
  }

  hex(): string {
    return this.h.map((l) => l.toString(16).padStart(4, '0')).reverse().join('');
  }
}

/** Alertmanager's fingerprint of a label set (labels with empty values must already be dropped, as it does). */
export function labelsFingerprint(labels: Readonly<Record<string, string>>): string {
  const names = Object.keys(labels).map((n) => ({ n, bytes: utf8.encode(n) }));
  // Go sorts label names as byte strings; UTF-16 order differs above U+FFFF, so compare the UTF-8 bytes.
  names.sort((a, b) => Buffer.compare(a.bytes, b.bytes));
  const h = new Fnv64();
  for (const { n, bytes } of names) {
    h.addBytes(bytes);
    h.add(SEPARATOR);
    h.addBytes(utf8.encode(labels[n]));
    h.add(SEPARATOR);
  }
  return h.hex();
}
