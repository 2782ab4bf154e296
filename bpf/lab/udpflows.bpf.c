// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * Lab instrument for issue 13: per-flow UDP counters kept in the client socket's own storage (BPF_MAP_TYPE_SK_STORAGE),
 * written by fentry udp_sendmsg (datagrams out) and cgroup_skb ingress (datagrams back) — the design that counts
 * every datagram without a ring-buffer event for each, and needs no table to size or expire: the storage dies with
 * the socket. Tracing programs may use bpf_sk_storage_get() from 5.11 ("bpf: Allow using bpf_sk_storage in
 * FENTRY/FEXIT/RAW_TP", commit 8e4597c627fb), so Debian 5.10 refuses to load this object; cgroup_skb programs have
 * had it since 5.2. test/lab/udp-hooks.test.ts reads the counters back through the socket's file descriptor.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u16 cfg_port = 53;

struct udpflow {
	__u64 sent;     /* datagrams handed to udp_sendmsg/udpv6_sendmsg for cfg_port */
	__u64 received; /* datagrams from cfg_port at ingress */
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct udpflow);
} flows SEC(".maps");

static __always_inline void on_send(struct sock *sk)
{
	if (bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport)) != cfg_port)
		return;
	struct udpflow *f = bpf_sk_storage_get(&flows, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (f)
		__sync_fetch_and_add(&f->sent, 1);
}

SEC("fentry/udp_sendmsg")
int BPF_PROG(uflow_udp_sendmsg, struct sock *sk)
{
	on_send(sk);
	return 0;
}

SEC("fentry/udpv6_sendmsg")
int BPF_PROG(uflow_udpv6_sendmsg, struct sock *sk)
{
	on_send(sk);
	return 0;
}

SEC("cgroup_skb/ingress")
int uflow_ingress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	/* dst_port is a 16-bit field from 5.18 ("bpf: Make dst_port field in struct bpf_sock 16-bit wide"); this object
	 * loads on 6.1+ only anyway (see above). */
	if (!sk || sk->protocol != 17 || bpf_ntohs(sk->dst_port) != cfg_port)
		return 1;
	struct udpflow *f = bpf_sk_storage_get(&flows, sk, 0, 0);
	if (f)
		__sync_fetch_and_add(&f->received, 1);
	return 1;
}
