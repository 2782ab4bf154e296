/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The one contract between vipguard's BPF programs and userspace.
 *
 * Fixed-width fields only and no libc includes: this header is compiled into the BPF object and into the
 * native addon (which checks sizeof(struct vg_event) at build time), and src/receiver/events.ts decodes the
 * same layout — the only decoder. Change a field here and change VG_EVENT_SIZE there.
 */
#ifndef VIPGUARD_H
#define VIPGUARD_H

#define VG_EVENT_SIZE 160

enum vg_event_kind {
	VG_EV_STATE = 1,      /* tp_btf inet_sock_set_state, old_state -> new_state */
	VG_EV_RETRANSMIT = 2, /* tp_btf tcp_retransmit_skb; new_state = the socket's state */
	VG_EV_RESET = 3,      /* tp_btf tcp_receive_reset; new_state = the socket's state */
	VG_EV_IPVS_CONN = 4,  /* kprobe ip_vs_conn_new: IPVS chose backend_* for this socket */
	VG_EV_RST_IN = 5,     /* cgroup_skb ingress: an RST refusing this SYN-SENT socket's connect arrived (it may
	                       * be held back by the actuator, and then never reaches tcp:tcp_receive_reset) */
	VG_EV_UDP_FLOW = 6,   /* kprobe ip_vs_conn_new for a UDP flow: IPVS chose backend_* for this client socket
	                       * (again, with VG_F_RESCHEDULED, when its destination went and the flow moved) */
	VG_EV_UDP_ERROR = 7,  /* an ICMP error reached the flow: sk_err = the errno it means (ECONNREFUSED, ...) */
	VG_EV_UDP_END = 8,    /* the flow's socket was destroyed; udp = its final counters */
};

enum vg_event_flags {
	VG_F_SERVICE = 1 << 0,     /* daddr:dport is a configured virtual service */
	VG_F_RESCHEDULED = 1 << 1, /* IPVS_CONN for a socket that already had a backend */
	VG_F_NO_SOCKET = 1 << 2,   /* IPVS_CONN that matched no traced socket (sk = 0) */
};

/*
 * One UDP flow (a client socket sending to a configured UDP service): the value of the `udp_flows` map, which
 * userspace polls, and the tail of every UDP event. Counted in the kernel per datagram, never one event each.
 * A reply answers everything outstanding: oldest_ns goes to 0 and the next datagram starts a new wait, so
 * reply_ns_* measure "first unanswered datagram -> next datagram back", exact for one request in flight.
 */
struct vg_udp_flow {
	__u64 start_ns;     /* first datagram seen (CLOCK_MONOTONIC) */
	__u64 last_send_ns; /* latest datagram sent */
	__u64 oldest_ns;    /* send time of the oldest unanswered datagram; 0 when none */
	__u64 reply_ns_sum; /* sum of reply times, over `waits` */
	__u64 reply_ns_max; /* longest reply time */
	__u32 sent;         /* datagrams sent (udp_sendmsg/udpv6_sendmsg) */
	__u32 replies;      /* datagrams queued to the socket */
	__u32 waits;        /* replies that ended a wait (oldest_ns was set): the count reply_ns_sum is over */
	__u32 errors;       /* ICMP errors that reached the flow */
	__u32 service;      /* the `services` map value: index into userspace's service list */
	__u32 pad;
};

struct vg_event {
	__u64 ts_ns;    /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 sk;       /* kernel socket address: the connection's identity from Close->SynSent on */
	__u64 start_ns; /* when the socket entered SYN_SENT, 0 if not seen */
	__u32 pid;      /* tgid if in the connecting process's context, else 0 (softirq, timers) */
	__u16 sport;    /* host byte order; 0 before inet_hash_connect() binds it */
	__u16 dport;    /* host byte order; the port the socket connected to (the virtual service) */
	__u16 backend_port; /* host byte order; real destination chosen by IPVS, 0 if unknown */
	__u8 kind;          /* enum vg_event_kind */
	__u8 family;        /* AF_INET (2) or AF_INET6 (10) */
	__u8 old_state;     /* TCP_* as in include/net/tcp_states.h */
	__u8 new_state;
	__u8 backend_family; /* 0 while unknown */
	__u8 flags;          /* enum vg_event_flags */
	__u16 syn_retransmits; /* SYN retransmits of this socket so far */
	__u16 sk_err;          /* sk->sk_err on leaving SYN_SENT: ETIMEDOUT, ECONNREFUSED, EHOSTUNREACH, 0 */
	__u32 pad1;
	__u8 saddr[16]; /* IPv4 in the first 4 bytes; network byte order */
	__u8 daddr[16];
	__u8 backend_addr[16];
	struct vg_udp_flow udp; /* UDP events: the flow's counters when the event was made; zero otherwise */
};

/* Per-CPU counters, read by userspace as sums (native: readPercpuCounters). */
enum vg_counter {
	VG_C_EVENTS = 0,       /* events submitted to the ring buffer */
	VG_C_LOST,             /* ring buffer full: event dropped */
	VG_C_HANDSHAKE_FULL,   /* handshake map full: socket traced without start time / backend */
	VG_C_IPVS_UNMATCHED,   /* ip_vs_conn_new for no socket we trace (forwarded traffic, other netns) */
	VG_C_IPVS_SEEN,        /* ip_vs_conn_new calls seen */
	VG_C__MAX,
};

/*
 * BPF side only (the addon never expands it): defines `static void fn(__u32 which)`, adding one to entry `which` of
 * `map`, a BPF_MAP_TYPE_PERCPU_ARRAY of __u64 — each CPU its own slot, so no atomic — which userspace reads as sums
 * (native: percpuSums). One definition for the receiver's, rsthold's and synrto's counters.
 */
#define VG_DEFINE_COUNT(fn, map)                                        \
	static __always_inline void fn(__u32 which)                     \
	{                                                               \
		__u64 *v = bpf_map_lookup_elem(&(map), &which);         \
		if (v)                                                  \
			*v += 1;                                        \
	}

/* Key of the `services` map: a virtual service the kernel side filters on. */
struct vg_service_key {
	__u8 family;
	__u8 protocol; /* IPPROTO_TCP (6) or IPPROTO_UDP (17): a TCP and a UDP service may share address and port */
	__u16 port; /* host byte order */
	__u8 addr[16];
};

#endif /* VIPGUARD_H */
