// What each of the receiver's BPF hooks is doing, and the one way it is printed: in the log, `vipguard trace`,
// `vipguard status` and the benchmarks' notes.
export interface HookStatus {
  program: string;
  hook: string;
  active: boolean;
  /** loaded and not attached until it has something to trace (the UDP hooks while no UDP service is configured) */
  standby?: boolean;
  /** not loaded because this kernel has a better hook for the same thing (the other ICMP error hook): nothing missing */
  unused?: boolean;
  /** why it is not active, and what would make it so */
  reason?: string;
}

/** Whether the hook is as it should be (active, waiting for something to trace, or replaced by a better one). */
export function hookOk(h: Pick<HookStatus, 'active' | 'standby' | 'unused'>): boolean {
  return h.active || !!h.standby || !!h.unused;
}

export function formatHook(h: Pick<HookStatus, 'active' | 'standby' | 'unused' | 'hook' | 'reason'>): string {
  return `${h.active ? 'active  ' : h.standby ? 'standby ' : h.unused ? 'unused  ' : 'INACTIVE'} ${h.hook}${h.reason ? ` — ${h.reason}` : ''}`;
}
