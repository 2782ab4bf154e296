/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Shared by the receiver's RST observer (receiver.bpf.c) and the actuator's hold-back (rsthold.bpf.c): is this
 * packet, arriving at a cgroup_skb ingress hook, the RST that refuses a connect — the one tcp_reset() would act on?
 *
 * Where the hook runs: sk_filter() from tcp_v4_rcv()/tcp_v6_rcv(), after the socket lookup and before
 * tcp_rcv_state_process(), so skb->sk is the connecting socket, and after netfilter's LOCAL_IN, so an IPVS (NAT)
 * reply already carries the virtual address as its source. __cgroup_bpf_run_filter_skb() pushes skb->data back
 * to the network header: offset 0 is the IP header.
 *
 * Which RSTs count: tcp_rcv_synsent_state_process() acts on an RST in SYN-SENT only with ACK set and
 * snd_una < ack_seq <= snd_nxt (RFC 793 p.66-67; RFC 5961 leaves SYN-SENT as it was); any other RST is dropped by
 * the kernel itself, so it is neither a refusal to report nor one to hold back. The socket is not locked here:
 * an RST that arrives while connect() still owns it is checked by the kernel later, from the backlog.
 */
#ifndef VIPGUARD_RST_H
#define VIPGUARD_RST_H

#include <bpf/bpf_endian.h>

#define VG_ETH_P_IP 0x0800
#define VG_ETH_P_IPV6 0x86DD
#define VG_IPPROTO_TCP 6
#define VG_AF_INET 2
#define VG_AF_INET6 10

/* The refusing packet, addresses as the socket sees them: peer = the RST's source (the virtual service). */
struct vg_rst {
	__u8 peer[16];  /* network order; IPv4 in the first 4 bytes */
	__u8 local[16];
	__u16 peer_port; /* host order */
	__u16 local_port;
	__u8 family; /* AF_INET or AF_INET6, of the packet */
	__u8 pad[3];
} __attribute__((aligned(8)));

/* Fills *r and returns the socket when skb is an RST that will refuse a SYN-SENT TCP socket's connect. */
static __always_inline struct bpf_sock *vg_refusing_rst(struct __sk_buff *skb, struct vg_rst *r, __u32 *isn)
{
	__u32 l4 = 0;
	__builtin_memset(r, 0, sizeof(*r));
	/* The socket first: nearly every packet belongs to one that is not connecting, and leaves here. */
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return NULL;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->protocol != VG_IPPROTO_TCP || sk->state != BPF_TCP_SYN_SENT)
		return NULL;
	/* Header fields at their RFC 791 / 8200 / 9293 offsets: packet layouts, not kernel types to relocate. */
	if (skb->protocol == bpf_htons(VG_ETH_P_IP)) {
		__u8 ip[20];
		if (bpf_skb_load_bytes(skb, 0, ip, sizeof(ip)) || ip[9] != VG_IPPROTO_TCP)
			return NULL;
		if ((ip[6] & 0x3f) || ip[7]) /* a fragment (MF or offset): not a bare RST */
			return NULL;
		r->family = VG_AF_INET;
		__builtin_memcpy(r->peer, ip + 12, 4);
		__builtin_memcpy(r->local, ip + 16, 4);
		l4 = (ip[0] & 0x0f) * 4;
	} else if (skb->protocol == bpf_htons(VG_ETH_P_IPV6)) {
		__u8 ip6[40];
		/* An RST with extension headers would be odd; skipping it only means the kernel handles it as usual. */
		if (bpf_skb_load_bytes(skb, 0, ip6, sizeof(ip6)) || ip6[6] != VG_IPPROTO_TCP)
			return NULL;
		r->family = VG_AF_INET6;
		__builtin_memcpy(r->peer, ip6 + 8, 16);
		__builtin_memcpy(r->local, ip6 + 24, 16);
		l4 = 40;
	} else {
		return NULL;
	}
	if (l4 < 20 || l4 > 60)
		return NULL;
	__u8 th[16]; /* ports, seq, ack_seq, data offset, flags */
	if (bpf_skb_load_bytes(skb, l4, th, sizeof(th)))
		return NULL;
	__u8 flags = th[13];
	if ((flags & 0x14) != 0x14) /* RST and ACK */
		return NULL;

	struct bpf_tcp_sock *tp = bpf_tcp_sock(sk);
	if (!tp)
		return NULL;
	__u32 ack = ((__u32)th[8] << 24) | ((__u32)th[9] << 16) | ((__u32)th[10] << 8) | th[11];
	/* snd_nxt may still equal snd_una here: over loopback or a veth the RST can come back in the softirq that
	 * runs when tcp_transmit_skb() re-enables BHs inside connect(), before tcp_connect() advances snd_nxt past
	 * the SYN (measured on 6.18); the kernel checks later, from the socket backlog. The SYN counts for one. */
	__u32 una = tp->snd_una, span = tp->snd_nxt - una, d = ack - una;
	if (span == 0)
		span = 1;
	if (d == 0 || d > span)
		return NULL;
	r->peer_port = ((__u16)th[0] << 8) | th[1];
	r->local_port = ((__u16)th[2] << 8) | th[3];
	/* In SYN-SENT snd_una is the ISN (tcp_connect_init()): it names this connect, not just this socket. */
	*isn = una;
	return sk;
}

#endif /* VIPGUARD_RST_H */
