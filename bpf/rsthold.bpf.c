// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * vipguard actuator: hold back the RST that refuses a connect to a configured virtual service, once, so that the
 * connect is rescued by IPVS instead of failing.
 *
 * A backend that restarts answers SYNs with RST for a few seconds. IPVS has already translated that RST back to
 * the virtual address when a cgroup_skb ingress program sees it (see rst.bpf.h). Dropped there, it never reaches
 * tcp_rcv_synsent_state_process(): the socket stays in SYN-SENT and retransmits its SYN at its RTO (1 s, or
 * actuator.synTimeout's). IPVS put its connection entry in CLOSE when the RST went through, and with
 * conn_reuse_mode (default 1) a new SYN on a CLOSE entry is scheduled afresh (ip_vs_in(): is_new_conn_expected())
 * — onto another destination, and never onto the refusing one once the actuator has quarantined it from the
 * receiver's report of this very refusal. Proven on Debian 5.10, 6.1 and 6.12: test/lab/rsthold.test.ts.
 *
 * Bounded harm, decided here and not in userspace:
 *   - only RSTs answering a SYN to a service in `in_service` (userspace writes the configured services);
 *   - at most one per connect attempt (the socket's sk_storage remembers the ISN it held an RST for): the
 *     rescued retransmit refused again reaches the application, one RTO later than without us;
 *   - never when the service has fewer than 2 destinations in service (weight > 0, as userspace last listed
 *     them): with nowhere else to go, the application gets its ECONNREFUSED at once, as without vipguard;
 *   - not for `cfg_fail_open_ns` after a held connect was refused again — evidence that several destinations
 *     refuse (every backend down, or the cap reached) that arrives before userspace could say so.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "vipguard.h"
#include "rst.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u64 cfg_fail_open_ns = 2000000000ULL;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct vg_service_key);
	__type(value, __u32); /* destinations in service (weight > 0) */
} in_service SEC(".maps");

/* Per service: when a connect whose RST we held was refused again (bpf_ktime_get_ns). Written only here. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct vg_service_key);
	__type(value, __u64);
} rescue_failed SEC(".maps");

struct vg_held {
	__u32 isn;  /* the connect (its ISN) whose RST was held */
	__u32 held; /* 0 until one was */
};

/* Lives and dies with the socket: no table to size, nothing to expire. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct vg_held);
} held SEC(".maps");

/* Keep in step with HOLD_COUNTERS in src/actuator/rsthold.ts. */
enum vg_hold_counter {
	VG_H_REFUSALS = 0, /* RSTs refusing a connect to a configured service */
	VG_H_HELD,         /* of which held back */
	VG_H_PASS_AGAIN,   /* passed: this connect had one held already */
	VG_H_PASS_FEW,     /* passed: fewer than 2 destinations in service */
	VG_H_PASS_FAILING, /* passed: a held connect of this service was refused again recently */
	VG_H_PASS_NOMEM,   /* passed: no socket storage */
	VG_H__MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VG_H__MAX);
	__type(key, __u32);
	__type(value, __u64);
} hold_counters SEC(".maps");

VG_DEFINE_COUNT(count, hold_counters)

SEC("cgroup_skb/ingress")
int vg_hold_rst(struct __sk_buff *skb)
{
	struct vg_rst r;
	__u32 isn = 0;
	struct bpf_sock *sk = vg_refusing_rst(skb, &r, &isn);
	if (!sk)
		return 1;

	struct vg_service_key key = { .protocol = 6 /* IPPROTO_TCP */ };
	key.family = r.family;
	key.port = r.peer_port;
	__builtin_memcpy(key.addr, r.peer, 16);
	__u32 *n = bpf_map_lookup_elem(&in_service, &key);
	if (!n)
		return 1;
	count(VG_H_REFUSALS);

	struct vg_held *h = bpf_sk_storage_get(&held, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!h) {
		count(VG_H_PASS_NOMEM);
		return 1;
	}
	__u64 now = bpf_ktime_get_ns();
	if (h->held && h->isn == isn) {
		bpf_map_update_elem(&rescue_failed, &key, &now, BPF_ANY);
		count(VG_H_PASS_AGAIN);
		return 1;
	}
	if (*n < 2) {
		count(VG_H_PASS_FEW);
		return 1;
	}
	__u64 *failed = bpf_map_lookup_elem(&rescue_failed, &key);
	if (failed && now - *failed < cfg_fail_open_ns) {
		count(VG_H_PASS_FAILING);
		return 1;
	}
	h->isn = isn;
	h->held = 1;
	count(VG_H_HELD);
	return 0;
}
