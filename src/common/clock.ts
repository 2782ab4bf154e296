// Two clocks, kept apart on purpose. Every duration, deadline, rate and backoff runs on the monotonic clock: the
// wall clock steps (NTP corrections, a VM resumed, an operator's `date -s`), and a one-hour step back once blocked
// every quarantine for an hour through a token bucket refilled by a negative amount. Wall time is only for what
// leaves the process: display, logs, telemetry timestamps, and the state file (monotonic time means nothing to the
// next process), converted at that boundary (`toWall` / `fromWall`).

export interface Clock {
  /** monotonic milliseconds (arbitrary origin, never steps) */
  mono(): number;
  /** wall-clock milliseconds since the epoch */
  wall(): number;
}

export const systemClock: Clock = {
  mono: () => performance.now(),
  wall: () => Date.now(),
};

/** A monotonic instant as wall time, for display and persistence. */
export function toWall(clock: Clock, mono: number): number {
  return clock.wall() + (mono - clock.mono());
}

/**
 * A persisted wall instant as monotonic time in this process, clamped to [now - maxPastMs, now + maxFutureMs]:
 * a file written before a wall-clock step (or by a hostile hand) cannot put a deadline hours ahead or behind.
 */
export function fromWall(clock: Clock, wall: number, bounds: { maxFutureMs: number; maxPastMs?: number }): number {
  const now = clock.mono();
  const m = now + (wall - clock.wall());
  return Math.min(now + bounds.maxFutureMs, Math.max(now - (bounds.maxPastMs ?? Number.MAX_SAFE_INTEGER / 4), m));
}
