// Span sampling for the receiver's successful handshakes and normal closes, consistent with OpenTelemetry's
// probability sampling (trace state `ot=th:…`): the decision is the trace id's randomness (its low 56 bits, the
// `rv` of the specification) against a rejection threshold T = (1 − ratio) · 2^56, so every party reading the same
// trace id agrees, and a consumer can weight each exported span by 1/ratio. What is exported regardless of the ratio
// (failures, late and rescued answers, resets) carries th:0 (exported with certainty).
const TWO_56 = 1n << 56n;

export class SpanSampler {
  readonly ratio: number;
  private readonly threshold: bigint;
  private readonly byRatio?: string;
  /** spans not exported because of the ratio */
  left = 0;

  constructor(ratio: number) {
    if (!(ratio > 0 && ratio <= 1)) throw new RangeError(`span sampling ratio ${ratio}: expected a number > 0 and ≤ 1`);
    this.ratio = ratio;
    // 2^56 · (1 − ratio), exactly for ratios whose complement has a short binary expansion, else to the nearest unit.
    this.threshold = ratio === 1 ? 0n : TWO_56 - BigInt(Math.round(ratio * Number(TWO_56)));
    this.byRatio = ratio === 1 ? undefined : `ot=th:${thresholdHex(this.threshold)}`;
  }

  /** Whether the ratio keeps the trace whose id this is (16 bytes). */
  sampled(traceId: Uint8Array): boolean {
    if (this.threshold === 0n) return true;
    let rv = 0n;
    for (let i = 9; i < 16; i++) rv = (rv << 8n) | BigInt(traceId[i]);
    return rv >= this.threshold;
  }

  /** The trace state of an exported span: by the ratio, or with certainty; none when every span is exported. */
  traceState(byRatio: boolean): string | undefined {
    if (!this.byRatio) return undefined;
    return byRatio ? this.byRatio : 'ot=th:0';
  }
}

/** The specification's encoding of T: 14 hex digits, trailing zeros dropped ("0" for T = 0). */
export function thresholdHex(t: bigint): string {
  if (t === 0n) return '0';
  return t.toString(16).padStart(14, '0').replace(/0+$/, '');
}
