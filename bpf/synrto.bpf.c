// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * vipguard actuator: a lower initial SYN timeout for connections to configured virtual services.
 *
 * The kernel retransmits an unanswered SYN after TCP_TIMEOUT_INIT (1 s). IPVS reschedules a SYN retransmit of
 * a connect pending on a quarantined destination to a healthy one (expire_nodest_conn=1), so the first
 * retransmit is where a dead backend's pending connects are rescued — and where its failure is seen. A cgroup
 * sock_ops program answers BPF_SOCK_OPS_TIMEOUT_INIT (tcp_timeout_init(), called from tcp_connect_init()
 * before the SYN is built) with a shorter timeout, in jiffies, for sockets whose destination is a configured
 * virtual service; every other socket keeps the kernel's default (reply 0 / no entry).
 *
 * Userspace derives each service's timeout from the handshake times it observes and writes it, in jiffies, to
 * `syn_timeouts`. The kernel's HZ is measured, not assumed: every call records (jiffies, ktime) so userspace
 * can compute the tick rate from two samples.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "vipguard.h"

#define AF_INET 2
#define AF_INET6 10

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct vg_service_key);
	__type(value, __u32); /* initial SYN timeout in jiffies; 0 = kernel default */
} syn_timeouts SEC(".maps");

enum vg_synrto_counter {
	VG_RTO_CALLS = 0, /* TIMEOUT_INIT callbacks seen */
	VG_RTO_SET,       /* of which got a lowered timeout */
	VG_RTO__MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VG_RTO__MAX);
	__type(key, __u32);
	__type(value, __u64);
} rto_counters SEC(".maps");

/* Clock samples for measuring HZ: the first and the latest callback. Races between CPUs only blur a sample. */
struct vg_clock_sample {
	__u64 jiffies;
	__u64 ns;
};
struct vg_clock_sample clock_first = {};
struct vg_clock_sample clock_last = {};

VG_DEFINE_COUNT(count, rto_counters)

SEC("sockops")
int vg_syn_rto(struct bpf_sock_ops *skops)
{
	if (skops->op != BPF_SOCK_OPS_TIMEOUT_INIT)
		return 1;
	count(VG_RTO_CALLS);

	__u64 j = bpf_jiffies64(), ns = bpf_ktime_get_ns();
	if (!clock_first.ns) {
		clock_first.jiffies = j;
		clock_first.ns = ns;
	}
	clock_last.jiffies = j;
	clock_last.ns = ns;

	struct vg_service_key key = { .protocol = 6 /* IPPROTO_TCP */ };
	/* remote_port holds the port in network order in its upper 16 bits on little-endian hosts */
	key.port = bpf_ntohl(skops->remote_port) & 0xffff;
	if (skops->family == AF_INET) {
		key.family = AF_INET;
		__u32 a = skops->remote_ip4;
		__builtin_memcpy(key.addr, &a, 4);
	} else if (skops->family == AF_INET6) {
		__u32 a0 = skops->remote_ip6[0], a1 = skops->remote_ip6[1], a2 = skops->remote_ip6[2], a3 = skops->remote_ip6[3];
		if (a0 == 0 && a1 == 0 && a2 == bpf_htonl(0x0000ffff)) {
			/* IPv4-mapped: IPVS and our service keys see it as IPv4 */
			key.family = AF_INET;
			__builtin_memcpy(key.addr, &a3, 4);
		} else {
			key.family = AF_INET6;
			__builtin_memcpy(key.addr, &a0, 4);
			__builtin_memcpy(key.addr + 4, &a1, 4);
			__builtin_memcpy(key.addr + 8, &a2, 4);
			__builtin_memcpy(key.addr + 12, &a3, 4);
		}
	} else {
		return 1;
	}

	__u32 *timeout = bpf_map_lookup_elem(&syn_timeouts, &key);
	if (timeout && *timeout) {
		skops->reply = *timeout;
		count(VG_RTO_SET);
	}
	return 1;
}
