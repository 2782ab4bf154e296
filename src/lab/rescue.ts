// Judging a black hole's client connects by the kernel's SYN schedule (used by the lab tests; pure, unit-tested).
/** Linux's SYN retransmits of a connect started at `at` (initial RTO 1 s, doubling), before its `timeoutMs`. */
export function synRetransmits(at: number, timeoutMs: number): number[] {
  const out: number[] = [];
  for (let rto = 1000, t = at + rto; t < at + timeoutMs && out.length < 8; rto *= 2, t += rto) out.push(t);
  return out;
}

export interface RescueVerdict<T extends Attempt = Attempt> {
  /** failed or slow although a SYN retransmit was due after the quarantine: the rescue did not work */
  broken: T[];
  /** failed or slow because every retransmit before its deadline came before the quarantine: a late reaction */
  late: T[];
}
/** a client connect: when it started (ms), how long it took, how it ended */
export type Attempt = { at: number; ms: number; outcome: string };

/**
 * Judges a black hole's connects against the kernel's own schedule rather than the emulator's speed. A connect that
 * went to the dead backend completes at its first SYN retransmit after the weight 0 (IPVS reschedules it,
 * expire_nodest_conn); one started after the weight 0 (plus `slackMs`) completes at once. If that chance came before the client's
 * deadline, the connect must be ok by then (within `slackMs`, for timers and the client's own loop under TCG). If it
 * did not, the reaction came too late for it: counted as late, which the caller bounds and reports separately (how
 * fast vipguard reacts in an emulator is not what the rescue mechanism is). `quarantinedAt` is on the connects' clock.
 */
export function rescueVerdict<T extends Attempt>(results: readonly T[], quarantinedAt: number, timeoutMs: number, slackMs = 400): RescueVerdict<T> {
  const v: RescueVerdict<T> = { broken: [], late: [] };
  for (const r of results) {
    // The decision is logged just before its netlink call: a connect within `slackMs` after it may still have
    // met the old weight, and is judged by its retransmits like those before it.
    const chance = r.at >= quarantinedAt + slackMs ? r.at : synRetransmits(r.at, timeoutMs).find((t) => t >= quarantinedAt + slackMs);
    if (r.outcome === 'ok' && (chance === undefined || r.at + r.ms <= chance + slackMs)) continue;
    (chance === undefined ? v.late : v.broken).push(r);
  }
  return v;
}
