// What each of the receiver's BPF hooks is doing, and the one way it is printed: in the log, `vipguard trace`,
// `vipguard status` and the benchmarks' notes.
export interface HookStatus {
  program: string;
  hook: string;
  active: boolean;
  /** loaded and not attached until it has something to trace (the UDP hooks while no UDP service is configured) */
  standby?: boolean;
  /** why it is not active, and what would make it so */
  reason?: string;
}

export function formatHook(h: Pick<HookStatus, 'active' | 'standby' | 'hook' | 'reason'>): string {
  return `${h.active ? 'active  ' : h.standby ? 'standby ' : 'INACTIVE'} ${h.hook}${h.reason ? ` — ${h.reason}` : ''}`;
}
