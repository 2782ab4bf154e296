// Reader of bpf/lab/udpfacts.bpf.c for the lab tests: loads and attaches every program the running kernel has (probing
// its BTF for the optional ones, recording the attaches it refuses), and decodes struct udpf_seen — the one place
// that knows its layout (bpf/lab/udpfacts.h).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { BpfObject, openBpfObject } from '../../src/native/bpf';
import { bpfObjectPath } from '../../src/common/paths';
import { cgroup2Root } from '../../src/common/cgroup';
import { formatAddr, formatEndpoint } from '../../src/common/addr';

/** enum udpf_hook in bpf/lab/udpfacts.h, in order. */
export const HOOKS = ['ipvs_conn', 'send_fentry', 'send_fexit', 'send_kprobe', 'cg_egress', 'cg_ingress', 'enqueue', 'icmp_err',
  'err_report', 'send_len', 'recv_len', 'icmp_err_kprobe', 'udpv6_err', 'destroy'] as const;
export type Hook = (typeof HOOKS)[number];
const SEEN_SIZE = 72; // UDPF_SEEN_SIZE

/** What one hook saw of one client socket (struct udpf_seen). */
export interface Seen {
  count: number;
  firstNs: bigint;
  lastNs: bigint;
  peer: string;
  other: string;
  ret: number;
  peerChanges: number;
  inSendmsg: boolean;
  /** UF_SEND_FEXIT: some call returned an error */
  retError: boolean;
}

/** Programs whose hook may be missing, and the BTF name that says the running kernel has it (probed, not versioned). */
export const OPTIONAL: Record<string, string> = {
  uf_error_report: 'btf_trace_inet_sk_error_report', // 5.14+
  uf_send_length: 'btf_trace_sock_send_length', // 6.3+
  uf_recv_length: 'btf_trace_sock_recv_length',
  uf_udpv6_err: 'udpv6_err', // static: Debian 5.10's BTF leaves it out
};

export class Facts {
  readonly obj: BpfObject;
  readonly attached: string[] = [];
  readonly missing: string[] = [];
  /** program → the attach error */
  readonly refused = new Map<string, string>();

  constructor() {
    this.obj = openBpfObject(bpfObjectPath('lab/udpfacts'));
    const btf = fs.readFileSync('/sys/kernel/btf/vmlinux');
    for (const [prog, type] of Object.entries(OPTIONAL)) {
      if (!btf.includes(Buffer.from(`\0${type}\0`))) {
        this.obj.setAutoload(prog, false);
        this.missing.push(prog);
      }
    }
    this.obj.load();
    const cgroup = cgroup2Root();
    assert.ok(cgroup, 'a cgroup2 mount for the cgroup_skb programs');
    for (const p of this.obj.programs()) {
      if (!p.autoload) continue;
      try {
        this.obj.attach(p.name, p.type === 'cgroup_skb' ? { cgroup } : undefined);
        this.attached.push(p.name);
      } catch (e) {
        this.refused.set(p.name, (e as Error).message);
      }
    }
  }

  clear(): void {
    for (const k of this.obj.mapKeys('seen')) this.obj.mapDelete('seen', k);
  }

  calls(): Record<Hook, number> {
    const sums = this.obj.percpuSums('calls', HOOKS.length);
    return Object.fromEntries(HOOKS.map((h, i) => [h, Number(sums[i])])) as Record<Hook, number>;
  }

  /** Everything the hooks saw of the socket with local port `lport`, by hook. */
  of(family: 2 | 10, lport: number): Partial<Record<Hook, Seen>> {
    const out: Partial<Record<Hook, Seen>> = {};
    const fam = family === 2 ? 4 : 6;
    HOOKS.forEach((h, i) => {
      const key = Buffer.alloc(4);
      key.writeUInt8(family, 0);
      key.writeUInt8(i, 1);
      key.writeUInt16LE(lport, 2);
      const v = this.obj.mapLookup('seen', key);
      if (!v) return;
      assert.equal(v.length, SEEN_SIZE, 'udpf_seen layout');
      out[h] = {
        count: Number(v.readBigUInt64LE(0)), firstNs: v.readBigUInt64LE(8), lastNs: v.readBigUInt64LE(16),
        peer: formatEndpoint(formatAddr(fam, v.subarray(24, 40)), v.readUInt16LE(56)),
        other: formatEndpoint(formatAddr(fam, v.subarray(40, 56)), v.readUInt16LE(58)),
        ret: v.readInt32LE(60), peerChanges: v.readUInt32LE(64), inSendmsg: (v.readUInt32LE(68) & 1) === 1, retError: (v.readUInt32LE(68) & 2) === 2,
      };
    });
    return out;
  }

  close(): void {
    this.obj.close();
  }
}

export const brief = (s: Partial<Record<Hook, Seen>>) =>
  Object.entries(s).map(([h, x]) => `${h}×${x!.count} peer ${x!.peer}${x!.other.startsWith('0.0.0.0') || x!.other.startsWith('[::]') ? '' : ` other ${x!.other}`} ret ${x!.ret}`).join('; ');
