/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Layout shared by bpf/lab/udpfacts.bpf.c and its only reader, test/lab/udp-hooks.test.ts (UDP_SEEN_* there).
 * A lab instrument, not part of vipguard: it answers "which hook sees what of a UDP flow through IPVS".
 */
#ifndef VIPGUARD_UDPFACTS_H
#define VIPGUARD_UDPFACTS_H

/* Keep in step with HOOKS in test/lab/udp-hooks.test.ts. */
enum udpf_hook {
	UF_IPVS_CONN = 0,   /* kprobe ip_vs_conn_new: peer = the real destination IPVS chose, other = the virtual
	                     * service, ret = the destination's family */
	UF_SEND_FENTRY,     /* fentry udp_sendmsg / udpv6_sendmsg: peer = the socket's destination or msg_name */
	UF_SEND_FEXIT,      /* fexit of the same: ret = bytes sent or -errno */
	UF_SEND_KPROBE,     /* kprobe udp_sendmsg (IPv4 only): peer as for fentry */
	UF_CG_EGRESS,       /* cgroup_skb/egress: peer = the packet's destination, other = its source */
	UF_CG_INGRESS,      /* cgroup_skb/ingress: peer = the packet's source, other = its destination */
	UF_ENQUEUE,         /* fentry __udp_enqueue_schedule_skb: a datagram queued to the socket; peer = its source */
	UF_ICMP_ERR,        /* fentry __udp4_lib_err / __udp6_lib_err: peer = the ICMP error's inner destination,
	                     * other = the ICMP packet's outer source, ret = type << 8 | code */
	UF_ERR_REPORT,      /* tp_btf inet_sk_error_report (5.14+): peer = the socket's destination, ret = sk_err */
	UF_SEND_LEN,        /* tp_btf sock_send_length (6.3+): ret = sendmsg's result */
	UF_RECV_LEN,        /* tp_btf sock_recv_length (6.3+): ret = recvmsg's result */
	UF_ICMP_ERR_KPROBE, /* kprobe __udp4_lib_err / __udp6_lib_err: as UF_ICMP_ERR */
	UF_UDPV6_ERR,       /* fentry udpv6_err (6 arguments; in BTF from 6.1): as UF_ICMP_ERR */
	UF_DESTROY,         /* fentry udp_destroy_sock / udpv6_destroy_sock: the socket is closed; peer as for sends */
	UF__MAX,
};

/* What one hook saw of one client socket, keyed by (family, hook, the client's local port). */
struct udpf_key {
	__u8 family; /* 2 or 10 */
	__u8 hook;   /* enum udpf_hook */
	__u16 lport; /* host order */
};

#define UDPF_F_IN_SENDMSG 1 /* UF_IPVS_CONN: ran inside udp_sendmsg on the sending thread */

struct udpf_seen {
	__u64 count;
	__u64 first_ns; /* bpf_ktime_get_ns() */
	__u64 last_ns;
	__u8 peer[16];  /* network order; IPv4 in the first 4 bytes; the last one seen */
	__u8 other[16];
	__u16 peer_port; /* host order */
	__u16 other_port;
	__s32 ret;
	__u32 peer_changes; /* times peer differed from the one before */
	__u32 flags;
};

#define UDPF_SEEN_SIZE 72

#endif /* VIPGUARD_UDPFACTS_H */
