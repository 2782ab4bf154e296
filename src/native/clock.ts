// Kernel timestamps (bpf_ktime_get_ns, CLOCK_MONOTONIC) to wall-clock time, with a measured offset.
import { addon } from './addon';

interface Native {
  monotonicToRealtime(options?: { samples?: number }): { offsetNs: bigint; uncertaintyNs: number; monotonicNs: bigint };
  monotonicNow(): bigint;
}

export function monotonicNow(): bigint {
  return addon<Native>().monotonicNow();
}

/**
 * Converts CLOCK_MONOTONIC nanoseconds to Unix-epoch nanoseconds. The offset is re-measured every
 * `refreshMs` because NTP slews the wall clock relative to the monotonic one.
 */
export class KernelClock {
  private offsetNs = 0n;
  private measuredAt = 0;
  uncertaintyNs = 0;

  constructor(private readonly refreshMs = 10_000) {
    this.measure();
  }

  measure(): void {
    const m = addon<Native>().monotonicToRealtime({ samples: 64 });
    this.offsetNs = m.offsetNs;
    this.uncertaintyNs = m.uncertaintyNs;
    this.measuredAt = Date.now();
  }

  toEpochNs(monotonicNs: bigint): bigint {
    if (Date.now() - this.measuredAt > this.refreshMs) this.measure();
    return monotonicNs + this.offsetNs;
  }

  /** [seconds, nanoseconds] as OpenTelemetry's HrTime. */
  toHrTime(monotonicNs: bigint): [number, number] {
    const ns = this.toEpochNs(monotonicNs);
    return [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
  }
}
