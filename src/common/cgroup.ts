// Where cgroup v2 is mounted: cgroup BPF programs (sock_ops, cgroup_skb) attach to a directory of it.
import * as fs from 'node:fs';

/** The cgroup2 mount point (/sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones). */
export function cgroup2Root(mounts = fs.readFileSync('/proc/self/mounts', 'utf8')): string | undefined {
  for (const line of mounts.split('\n')) {
    const f = line.split(' ');
    if (f[2] === 'cgroup2') return f[1];
  }
  return undefined;
}
