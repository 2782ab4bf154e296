// systemd's readiness protocol (sd_notify(3)): tell the service manager when vipguard is ready, reloading or
// stopping, so `Type=notify` units start their dependents only once the kernel is reconciled and the receiver
// attached, and `systemctl reload` waits for the reload. The datagram itself is sent by the addon (notify.cc).
import { addon } from './addon';
import { monotonicNow } from './clock';

interface Native {
  notify(socketName: string, state: string): void;
}

export type NotifyState = Partial<Record<'READY' | 'RELOADING' | 'STOPPING' | 'STATUS' | 'MONOTONIC_USEC' | 'MAINPID', string | number>>;

/** `KEY=value` lines, as the protocol wants them; a STATUS is kept to one line. */
export function notifyMessage(state: NotifyState): string {
  return Object.entries(state).filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${String(v).replace(/\s*\n\s*/g, '; ')}`).join('\n');
}

/**
 * Sends `state` to $NOTIFY_SOCKET. Returns false when nothing asked for it (no NOTIFY_SOCKET: not run by a
 * service manager with Type=notify); throws when the socket is named but cannot be reached.
 */
export function sdNotify(state: NotifyState, env: NodeJS.ProcessEnv = process.env): boolean {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return false;
  addon<Native>().notify(socket, notifyMessage(state));
  return true;
}

/** RELOADING=1 wants the CLOCK_MONOTONIC time of the reload, in microseconds (systemd 253+ checks it). */
export function monotonicUsec(): string {
  return (monotonicNow() / 1000n).toString();
}
