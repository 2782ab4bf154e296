// Every run starts from the same kernel state, whatever system or run came before it in the VM (lab-main.ts runs
// them all in one boot, back to back). Two kinds of state outlive a run and reach into the next one:
//
//   TIME_WAIT sockets of direct connects from this host to the backends: keepalived's TCP_CHECK makes three a
//     second, each left in TIME_WAIT for 60 s. A connect through the VIP that picks the same local port and is
//     scheduled (NAT) onto the same backend has, on the wire, that socket's 4-tuple; TCP early demux hands its
//     SYN-ACK to the TIME_WAIT socket before IPVS translates it back to the VIP, and the connect completes at its
//     retransmit or ends in ECONNRESET. On 2026-12-06 this failed connects of the vipguard runs that came right
//     after a keepalived run (a capture showed both of a 2-run repeat to be ports of keepalived checks 52–53 s
//     earlier; see docs/benchmarks.md). A system's own direct connects inside its own run are its behaviour and
//     stay.
//   IPVS connection entries (TIME_WAIT 2 min, SYN_SENT 2 min…): a reused client port meets an earlier run's entry,
//     which IPVS follows (or reschedules) instead of scheduling afresh. They belong to no service (the topology is
//     rebuilt), cannot be flushed through ipvsadm, and go only when they expire or with the module: ip_vs is
//     reloaded. Its sysctls return to the kernel's defaults, which is what each run sets anyway.
//
// Returns the note for the run's record: what was cleared, or why it could not be.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

/** Addresses of scripts/lab/topology.sh: the backends' subnet and the VIPs. */
const LAB_PREFIXES = ['10.200.0.0/24', '10.99.0.0/24'];
/** What the lab runner loads (src/lab/runner.ts DEFAULT_MODULES) and has to come back after the reload. */
const IPVS_MODULES = ['ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_lc', 'ip_vs_wlc', 'ip_vs_sh', 'ip_vs_mh'];

const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });

function timeWaitToLab(): number {
  const filter = LAB_PREFIXES.map((p) => `dst ${p}`).join(' or ');
  return run('ss', ['-Htan', 'state', 'time-wait', `( ${filter} )`]).split('\n').filter((l) => l.trim()).length;
}

function ipvsConnEntries(): number {
  try {
    return fs.readFileSync('/proc/net/ip_vs_conn', 'utf8').split('\n').slice(1).filter((l) => l.trim()).length;
  } catch {
    return 0; // no ip_vs loaded: no entries
  }
}

function loadedModules(): Set<string> {
  return new Set(fs.readFileSync('/proc/modules', 'utf8').split('\n').map((l) => l.split(' ')[0]).filter(Boolean));
}

export function cleanSlate(): string {
  const words: string[] = [];
  try {
    const before = timeWaitToLab();
    const filter = LAB_PREFIXES.map((p) => `dst ${p}`).join(' or ');
    // SOCK_DESTROY (CONFIG_INET_DIAG_DESTROY) ends TIME_WAIT sockets too (tcp_abort()).
    if (before) run('ss', ['-K', 'state', 'time-wait', `( ${filter} )`]);
    const left = timeWaitToLab();
    words.push(`${before - left} TIME_WAIT socket(s) to the lab's addresses ended${left ? `, ${left} left` : ''}`);
  } catch (e) {
    words.push(`TIME_WAIT sockets not cleared: ${(e as Error).message.split('\n')[0]}`);
  }
  const entries = ipvsConnEntries();
  if (entries) {
    const loaded = IPVS_MODULES.filter((m) => loadedModules().has(m));
    try {
      // Schedulers first: they hold ip_vs.
      run('modprobe', ['-r', ...[...loaded].reverse()]);
    } catch (e) {
      words.push(`IPVS connection table not emptied (${entries} entries; removing ip_vs: ${(e as Error).message.split('\n')[0]})`);
    }
    for (const m of loaded) {
      if (!loadedModules().has(m)) run('modprobe', [m]);
    }
    if (!words.some((w) => w.startsWith('IPVS'))) words.push(`IPVS connection table emptied (${entries} entries; ip_vs reloaded, ${ipvsConnEntries()} now)`);
  } else {
    words.push('IPVS connection table already empty');
  }
  return `clean start: ${words.join('; ')}`;
}
