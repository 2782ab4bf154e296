// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * vipguard receiver: the TCP connection lifecycle of sockets connecting to IPVS virtual services, with the real
 * backend IPVS chose. Events go to userspace through one ring buffer (ordered across CPUs); see vipguard.h.
 *
 * Identity without a kprobe on tcp_connect: a connection is keyed by its socket address from the
 * Close->SynSent transition on. At that moment tcp_v4_connect()/tcp_v6_connect() have set the destination
 * (the virtual service) but not yet the source port, so the event carries socket, destination and start time;
 * the source port arrives with the next event of the same socket.
 *
 * Which backend: IPVS schedules the first SYN in the connecting thread (LOCAL_OUT hook, inside connect()), so
 * ip_vs_conn_new() finds the socket through `connecting` (thread -> socket, verified against the 4-tuple).
 * A SYN retransmit that IPVS reschedules (destination quarantined, expire_nodest_conn=1) runs from the
 * retransmit timer, so it finds the socket through `tuples` (4-tuple -> socket) filled on the first SYN.
 *
 * Refusals: tcp:tcp_receive_reset fires only for an RST the socket processes. The actuator may hold back the RST
 * that refuses a connect (rsthold.bpf.c, a cgroup_skb ingress program) so that IPVS can reschedule the SYN; the
 * refusal must still be reported, against the backend that refused. So a cgroup_skb ingress *observer* of our own
 * sees every such RST first: the kernel runs every program of a cgroup's effective array and ANDs their verdicts
 * (BPF_PROG_RUN_ARRAY / bpf_prog_run_array_cg), so it sees the RST whether or not another program drops it, and
 * it never drops anything itself. It depends on nothing of the actuator's.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "vipguard.h"
#include "core_fixes.bpf.h"
#include "rst.bpf.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define TCP_SYN_SENT 2
#define TCP_CLOSE 7

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by userspace before load: the verifier prunes what is off. */
const volatile bool cfg_trace_all = false; /* emit every TCP socket, not only configured services */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20); /* bytes; userspace may resize before load */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct vg_service_key);
	__type(value, __u32); /* service index in userspace config */
} services SEC(".maps");

struct vg_handshake {
	__u64 start_ns;
	__u8 backend_addr[16];
	__u16 backend_port;
	__u8 backend_family;
	__u8 pad;
	__u16 syn_retransmits;
	__u16 pad2;
};

/*
 * Sockets in SYN_SENT. Entries leave on the socket's next state change, which always comes (every SYN_SENT
 * socket ends in ESTABLISHED or CLOSE through tcp_set_state), so the map cannot leak; it is sized for the
 * concurrent handshakes of a busy host, and a full map is counted (VG_C_HANDSHAKE_FULL), never silent.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* socket address */
	__type(value, struct vg_handshake);
} handshakes SEC(".maps");

/* Thread -> the socket it is connecting. A cache: LRU, because threads come and go without telling us. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} connecting SEC(".maps");

struct vg_tuple_key {
	__u8 family;
	__u8 pad;
	__u16 sport; /* host order */
	__u16 dport; /* host order */
	__u16 pad2;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* 4-tuple -> socket for handshakes IPVS has scheduled; deleted with the handshake. LRU as a second bound. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct vg_tuple_key);
	__type(value, __u64);
} tuples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VG_C__MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

VG_DEFINE_COUNT(count, counters)

/* A socket's addresses, normalised: IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes AF_INET, as IPVS sees it. */
struct vg_tuple {
	__u8 saddr[16]; /* first, so 4-byte word access stays aligned on the stack */
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 family;
} __attribute__((aligned(8)));

static __always_inline bool is_v4_mapped(const __u8 *a)
{
	return ((const __u32 *)a)[0] == 0 && ((const __u32 *)a)[1] == 0 &&
	       ((const __u32 *)a)[2] == bpf_htonl(0x0000ffff);
}

static __always_inline void normalise(struct vg_tuple *t)
{
	if (t->family == AF_INET6 && is_v4_mapped(t->daddr) && is_v4_mapped(t->saddr)) {
		t->family = AF_INET;
		__builtin_memcpy(t->saddr, t->saddr + 12, 4);
		__builtin_memcpy(t->daddr, t->daddr + 12, 4);
		__builtin_memset(t->saddr + 4, 0, 12);
		__builtin_memset(t->daddr + 4, 0, 12);
	}
}

static __always_inline void tuple_from_sock(const struct sock *sk, struct vg_tuple *t)
{
	__builtin_memset(t, 0, sizeof(*t));
	t->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	t->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	t->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (t->family == AF_INET) {
		BPF_CORE_READ_INTO((__u32 *)t->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)t->daddr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO((struct in6_addr *)t->saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO((struct in6_addr *)t->daddr, sk, __sk_common.skc_v6_daddr);
		normalise(t);
	}
}

static __always_inline __u32 *service_of(const struct vg_tuple *t, __u8 protocol)
{
	struct vg_service_key key = {};
	key.family = t->family;
	key.protocol = protocol;
	key.port = t->dport;
	__builtin_memcpy(key.addr, t->daddr, 16);
	return bpf_map_lookup_elem(&services, &key);
}

static __always_inline bool is_service(const struct vg_tuple *t)
{
	return service_of(t, IPPROTO_TCP) != NULL;
}

static __always_inline void tuple_key(const struct vg_tuple *t, struct vg_tuple_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->family = t->family;
	k->sport = t->sport;
	k->dport = t->dport;
	__builtin_memcpy(k->saddr, t->saddr, 16);
	__builtin_memcpy(k->daddr, t->daddr, 16);
}

/* clang has no BPF lowering for memcmp: compare the 40-byte key as five words. */
static __always_inline bool tuple_key_eq(const struct vg_tuple_key *a, const struct vg_tuple_key *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
	_Static_assert(sizeof(*a) == 40, "vg_tuple_key is compared as five u64");
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && x[4] == y[4];
}

static __always_inline struct vg_event *emit_begin(__u8 kind, __u64 sk, const struct vg_tuple *t, __u8 old_state,
						   __u8 new_state, const struct vg_handshake *hs, __u8 flags,
						   __u32 pid)
{
	struct vg_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(VG_C_LOST);
		return NULL;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->sk = sk;
	e->pid = pid;
	e->sport = t->sport;
	e->dport = t->dport;
	e->kind = kind;
	e->family = t->family;
	e->old_state = old_state;
	e->new_state = new_state;
	e->flags = flags;
	e->sk_err = 0;
	e->pad1 = 0;
	__builtin_memset(&e->udp, 0, sizeof(e->udp));
	__builtin_memcpy(e->saddr, t->saddr, 16);
	__builtin_memcpy(e->daddr, t->daddr, 16);
	if (hs) {
		e->start_ns = hs->start_ns;
		e->backend_port = hs->backend_port;
		e->backend_family = hs->backend_family;
		e->syn_retransmits = hs->syn_retransmits;
		__builtin_memcpy(e->backend_addr, hs->backend_addr, 16);
	} else {
		e->start_ns = 0;
		e->backend_port = 0;
		e->backend_family = 0;
		e->syn_retransmits = 0;
		__builtin_memset(e->backend_addr, 0, 16);
	}
	return e;
}

static __always_inline void emit_end(struct vg_event *e)
{
	bpf_ringbuf_submit(e, 0);
	count(VG_C_EVENTS);
}

static __always_inline void emit(__u8 kind, __u64 sk, const struct vg_tuple *t, __u8 old_state, __u8 new_state,
				 const struct vg_handshake *hs, __u8 flags, __u32 pid)
{
	struct vg_event *e = emit_begin(kind, sk, t, old_state, new_state, hs, flags, pid);
	if (e)
		emit_end(e);
}

/*
 * The TCP hooks are BTF-typed raw tracepoints (tp_btf): the tracepoint's own arguments (the socket), attached through a
 * BPF link (BPF_RAW_TRACEPOINT_OPEN) — no tracefs to find a tracepoint id, no perf_event_open, which Debian's
 * perf_event_paranoid=3 refuses without CAP_SYS_ADMIN, and no record to fill per event. tp_btf needs the kernel's BTF,
 * which the receiver requires anyway (CO-RE, the fentry UDP hooks): every kernel it runs on has it, so there is no
 * classic-tracepoint fallback. The socket is read as the classic records were filled (TP_STORE_ADDRS, include/trace/
 * events/sock.h): inet_sport and inet_saddr, not skc_num and skc_rcv_saddr — on ->CLOSE, tcp_set_state() runs
 * inet_put_port(), which zeroes inet_num, before the tracepoint fires.
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(vg_inet_sock_set_state, const struct sock *skp, int oldstate, int newstate)
{
	/*
	 * This runs on every TCP state change of the host: read the socket directly (a BTF-typed argument, loads the
	 * verifier checks) rather than through bpf_probe_read_kernel() calls — but for the source port: inet_sport lies
	 * beyond struct sock (the verifier refuses a direct load there), and skc_num will not do: it is zeroed when the
	 * port is released, before the socket's last change to Close. Addresses as the old tracepoint record had them:
	 * skc_rcv_saddr is inet_saddr once connect() has routed.
	 */
	if (skp->sk_protocol != IPPROTO_TCP)
		return 0;

	__u64 sk = (__u64)skp;
	struct vg_tuple t = {};
	t.family = skp->__sk_common.skc_family;
	t.sport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)skp, inet_sport));
	t.dport = bpf_ntohs(skp->__sk_common.skc_dport);
	if (t.family == AF_INET) {
		*(__u32 *)t.saddr = skp->__sk_common.skc_rcv_saddr;
		*(__u32 *)t.daddr = skp->__sk_common.skc_daddr;
	} else {
		__builtin_memcpy(t.saddr, &skp->__sk_common.skc_v6_rcv_saddr, 16);
		__builtin_memcpy(t.daddr, &skp->__sk_common.skc_v6_daddr, 16);
		normalise(&t);
	}

	bool svc = is_service(&t);
	if (!svc && !cfg_trace_all)
		return 0;
	__u8 flags = svc ? VG_F_SERVICE : 0;
	__u64 id = bpf_get_current_pid_tgid();

	if (oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT) {
		struct vg_handshake hs = { .start_ns = bpf_ktime_get_ns() };
		if (bpf_map_update_elem(&handshakes, &sk, &hs, BPF_ANY))
			count(VG_C_HANDSHAKE_FULL);
		__u32 tid = (__u32)id;
		bpf_map_update_elem(&connecting, &tid, &sk, BPF_ANY);
		emit(VG_EV_STATE, sk, &t, oldstate, newstate, &hs, flags, id >> 32);
		return 0;
	}

	if (oldstate == TCP_SYN_SENT) {
		struct vg_handshake *hs = bpf_map_lookup_elem(&handshakes, &sk);
		struct vg_event *e = emit_begin(VG_EV_STATE, sk, &t, oldstate, newstate, hs, flags, id >> 32);
		if (e) {
			/* Why the handshake ended: tcp_write_err() leaves ETIMEDOUT, tcp_reset() ECONNREFUSED,
			 * an ICMP error EHOSTUNREACH & co; an application closing the socket leaves 0. */
			e->sk_err = skp->sk_err;
			emit_end(e);
		}
		if (hs) {
			struct vg_tuple_key k;
			tuple_key(&t, &k);
			bpf_map_delete_elem(&tuples, &k);
			bpf_map_delete_elem(&handshakes, &sk);
		}
		return 0;
	}

	emit(VG_EV_STATE, sk, &t, oldstate, newstate, NULL, flags, id >> 32);
	return 0;
}

/* Retransmits and resets: the socket is the tracepoint's first argument on every kernel (tcp_retransmit_skb gained a
 * third, err, around 6.17; we read only the first). The state is the socket's, as the classic records had it. */
static __always_inline int on_sock_event(__u8 kind, const struct sock *sk)
{
	int state = BPF_CORE_READ(sk, __sk_common.skc_state);
	struct vg_tuple t;
	tuple_from_sock(sk, &t);
	bool svc = is_service(&t);
	if (!svc && !cfg_trace_all)
		return 0;

	__u64 key = (__u64)sk;
	struct vg_handshake *hs = NULL;
	if (state == TCP_SYN_SENT) {
		hs = bpf_map_lookup_elem(&handshakes, &key);
		/* Retransmits of one socket are serialised by its lock: no atomic needed. */
		if (hs && kind == VG_EV_RETRANSMIT)
			hs->syn_retransmits++;
	}
	emit(kind, key, &t, state, state, hs, svc ? VG_F_SERVICE : 0, 0);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(vg_tcp_retransmit_skb, const struct sock *sk)
{
	return on_sock_event(VG_EV_RETRANSMIT, sk);
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(vg_tcp_receive_reset, struct sock *sk)
{
	return on_sock_event(VG_EV_RESET, sk);
}

static __always_inline void read_inet_addr(__u8 *dst, __u16 family, const union nf_inet_addr *src)
{
	if (family == AF_INET)
		bpf_probe_read_kernel(dst, 4, src);
	else
		bpf_probe_read_kernel(dst, 16, src);
}

/*
 * UDP flows (issue 13; the kernel facts are in docs/udp.md, proven on 5.10, 6.1 and 6.12). A flow is a client
 * socket sending to a configured UDP service. Its counters live in `udp_flows`, keyed by the socket's address as
 * TCP handshakes are (5.10's verifier refuses bpf_sk_storage_get() to fentry programs: 5.11+), and userspace polls
 * them; the ring buffer carries only a flow's backend (ip_vs_conn_new), an ICMP error on it, and its end.
 *
 *   datagram out   fentry udp_sendmsg / udpv6_sendmsg  every datagram, with the socket and the VIP (cgroup_skb
 *                                                      egress never sees IPVS-NATed datagrams)
 *   backend        kprobe(.multi) ip_vs_conn_new       once per flow, inside its first udp_sendmsg, on the same thread
 *   datagram back  fentry __udp_enqueue_schedule_skb   UDP datagrams queued to a socket only (cgroup_skb ingress would
 *                                                      run for every packet of every protocol)
 *   ICMP error     tp_btf sock:inet_sk_error_report    5.14+, both families, connected sockets; before it (5.10),
 *                  fentry __udp4_lib_err               with the flow found by the quoted header's 4-tuple
 *   end            fentry udp_destroy_sock / udpv6_destroy_sock
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* socket address */
	__type(value, struct vg_udp_flow);
} udp_flows SEC(".maps");

/* Thread -> the socket whose first datagram it is sending: ip_vs_conn_new runs inside that udp_sendmsg. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} udp_sending SEC(".maps");

/*
 * Client 4-tuple (as IPVS and the ICMP error's quoted header have it) -> socket: finds the flow when IPVS schedules it
 * again (its destination was removed) and for an ICMP error on 5.10. Never deleted: LRU, and a stale entry names a
 * socket that has no flow any more.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct vg_tuple_key);
	__type(value, __u64);
} udp_tuples SEC(".maps");

static __always_inline void udp_sent(const struct sock *sk, const struct vg_tuple *t)
{
	__u32 *svc = service_of(t, IPPROTO_UDP);
	if (!svc)
		return;
	__u64 key = (__u64)sk;
	__u64 now = bpf_ktime_get_ns();
	struct vg_udp_flow *f = bpf_map_lookup_elem(&udp_flows, &key);
	if (!f) {
		struct vg_udp_flow init = { .start_ns = now, .service = *svc };
		bpf_map_update_elem(&udp_flows, &key, &init, BPF_NOEXIST);
		f = bpf_map_lookup_elem(&udp_flows, &key);
		if (!f)
			return;
		__u32 tid = (__u32)bpf_get_current_pid_tgid();
		bpf_map_update_elem(&udp_sending, &tid, &key, BPF_ANY);
	}
	/* Several threads may send on one socket: the counters are atomic, the times last-writer-wins. */
	__sync_fetch_and_add(&f->sent, 1);
	f->last_send_ns = now;
	if (!f->oldest_ns)
		f->oldest_ns = now;
}

SEC("fentry/udp_sendmsg")
int BPF_PROG(vg_udp_sendmsg, struct sock *sk, struct msghdr *msg)
{
	struct vg_tuple t = {};
	t.family = AF_INET;
	const struct sockaddr_in *usin = BPF_CORE_READ(msg, msg_name);
	if (usin) {
		struct sockaddr_in a = {};
		bpf_probe_read_kernel(&a, sizeof(a), usin);
		if (a.sin_family != AF_INET)
			return 0;
		t.dport = bpf_ntohs(a.sin_port);
		__builtin_memcpy(t.daddr, &a.sin_addr.s_addr, 4);
	} else {
		/* connected (also an IPv6 socket connected to a v4-mapped address: udpv6_sendmsg hands it here) */
		t.dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
		BPF_CORE_READ_INTO((__u32 *)t.daddr, sk, __sk_common.skc_daddr);
	}
	udp_sent(sk, &t);
	return 0;
}

SEC("fentry/udpv6_sendmsg")
int BPF_PROG(vg_udpv6_sendmsg, struct sock *sk, struct msghdr *msg)
{
	struct vg_tuple t = {};
	t.family = AF_INET6;
	const struct sockaddr_in6 *sin6 = BPF_CORE_READ(msg, msg_name);
	if (sin6) {
		struct sockaddr_in6 a = {};
		bpf_probe_read_kernel(&a, sizeof(a), sin6);
		if (a.sin6_family != AF_INET6) /* AF_INET: udpv6_sendmsg hands it to udp_sendmsg, which counts it */
			return 0;
		t.dport = bpf_ntohs(a.sin6_port);
		__builtin_memcpy(t.daddr, &a.sin6_addr, 16);
	} else {
		t.dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
		BPF_CORE_READ_INTO((struct in6_addr *)t.daddr, sk, __sk_common.skc_v6_daddr);
	}
	if (is_v4_mapped(t.daddr)) /* sent through udp_sendmsg, counted there */
		return 0;
	udp_sent(sk, &t);
	return 0;
}

static __always_inline struct vg_event *udp_emit_begin(__u8 kind, __u64 sk, const struct vg_tuple *t,
						       const struct vg_handshake *hs, __u8 flags, __u32 pid,
						       const struct vg_udp_flow *f)
{
	struct vg_event *e = emit_begin(kind, sk, t, 0, 0, hs, flags, pid);
	if (e)
		__builtin_memcpy(&e->udp, f, sizeof(*f));
	return e;
}

/* ip_vs_conn_new for a UDP flow: which backend the client socket's datagrams go to, from now on. */
static __always_inline int udp_flow_scheduled(const struct vg_ipvs_param *p, int dest_af,
					      const union nf_inet_addr *daddr, __be16 dport)
{
	struct vg_tuple t = {};
	t.family = p->af;
	t.sport = bpf_ntohs(p->cport);
	t.dport = bpf_ntohs(p->vport);
	read_inet_addr(t.saddr, p->af, p->caddr);
	read_inet_addr(t.daddr, p->af, p->vaddr);
	struct vg_tuple_key k;
	tuple_key(&t, &k);

	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	__u64 sk = 0;
	bool first = false;
	__u64 *skp = bpf_map_lookup_elem(&udp_sending, &tid);
	/* Softirq work for other flows can run on top of this thread: only trust the socket if its port matches. */
	if (skp && BPF_CORE_READ((const struct sock *)*skp, __sk_common.skc_num) == t.sport) {
		sk = *skp;
		first = true;
		bpf_map_delete_elem(&udp_sending, &tid);
		bpf_map_update_elem(&udp_tuples, &k, &sk, BPF_ANY);
	} else {
		skp = bpf_map_lookup_elem(&udp_tuples, &k);
		if (skp)
			sk = *skp;
	}
	struct vg_udp_flow *f = sk ? bpf_map_lookup_elem(&udp_flows, &sk) : NULL;
	if (!f) {
		count(VG_C_IPVS_UNMATCHED);
		return 0;
	}
	/* Scheduled again (its destination was removed, or its IPVS entry expired): what was outstanding went to the
	 * old backend; the wait for the new one starts with the datagram being sent now. */
	if (!first)
		f->oldest_ns = bpf_ktime_get_ns();
	struct vg_handshake b = {};
	b.backend_family = dest_af;
	b.backend_port = bpf_ntohs(dport);
	read_inet_addr(b.backend_addr, dest_af, daddr);
	b.start_ns = f->start_ns;
	struct vg_event *e = udp_emit_begin(VG_EV_UDP_FLOW, sk, &t, &b, VG_F_SERVICE | (first ? 0 : VG_F_RESCHEDULED),
					    id >> 32, f);
	if (e)
		emit_end(e);
	return 0;
}

SEC("fentry/__udp_enqueue_schedule_skb")
int BPF_PROG(vg_udp_reply, struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct vg_udp_flow *f = bpf_map_lookup_elem(&udp_flows, &key);
	if (!f)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	__sync_fetch_and_add(&f->replies, 1);
	__u64 since = f->oldest_ns;
	if (since && now > since) {
		__u64 rt = now - since;
		f->oldest_ns = 0;
		__sync_fetch_and_add(&f->reply_ns_sum, rt);
		__sync_fetch_and_add(&f->waits, 1);
		if (rt > f->reply_ns_max)
			f->reply_ns_max = rt;
	}
	return 0;
}

static __always_inline void udp_error(const struct sock *sk, __u16 err)
{
	__u64 key = (__u64)sk;
	struct vg_udp_flow *f = bpf_map_lookup_elem(&udp_flows, &key);
	if (!f || !err)
		return;
	__sync_fetch_and_add(&f->errors, 1);
	f->oldest_ns = 0; /* the error answered the wait: not also unanswered */
	struct vg_tuple t;
	tuple_from_sock(sk, &t);
	struct vg_event *e = udp_emit_begin(VG_EV_UDP_ERROR, key, &t, NULL, VG_F_SERVICE, 0, f);
	if (e) {
		e->sk_err = err;
		emit_end(e);
	}
}

/* sock:inet_sk_error_report arrived in 5.14 with sk_error_report() ("net: sock: introduce sk_error_report"). */
SEC("tp_btf/inet_sk_error_report")
int BPF_PROG(vg_udp_error_report, const struct sock *sk)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_UDP)
		return 0;
	udp_error(sk, BPF_CORE_READ(sk, sk_err));
	return 0;
}

/* include/net/icmp.h's icmp_err_convert, for the errors a UDP client can get; 0: not an error of the flow. */
static __always_inline __u16 icmp_errno(__u8 type, __u8 code)
{
	if (type == 3) { /* ICMP_DEST_UNREACH */
		if (code == 3)
			return 111; /* ICMP_PORT_UNREACH: ECONNREFUSED */
		if (code == 4)
			return 0; /* ICMP_FRAG_NEEDED: path MTU, not a failure */
		if (code == 0)
			return 101; /* ENETUNREACH */
		return 113;        /* EHOSTUNREACH */
	}
	if (type == 11) /* ICMP_TIME_EXCEEDED */
		return 113;
	return 0;
}

/*
 * Before sock:inet_sk_error_report (5.10): the IPv4 ICMP error handler. skb->data is the quoted IP header (IPVS
 * translated it back: destination = the VIP), the transport header the ICMP header. IPv6 needs no counterpart on
 * 5.10: IPVS drops the ICMPv6 error there before it reaches UDP (docs/udp.md).
 */
SEC("fentry/__udp4_lib_err")
int BPF_PROG(vg_udp4_lib_err, struct sk_buff *skb)
{
	unsigned char *data = BPF_CORE_READ(skb, data);
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 th = BPF_CORE_READ(skb, transport_header);
	__u8 icmp[2];
	__u8 ip[20];
	__u16 ports[2];
	if (bpf_probe_read_kernel(icmp, sizeof(icmp), head + th) || bpf_probe_read_kernel(ip, sizeof(ip), data))
		return 0;
	__u16 err = icmp_errno(icmp[0], icmp[1]);
	if (!err || bpf_probe_read_kernel(ports, sizeof(ports), data + ((ip[0] & 0x0f) << 2)))
		return 0;
	struct vg_tuple t = {};
	t.family = AF_INET;
	t.sport = bpf_ntohs(ports[0]);
	t.dport = bpf_ntohs(ports[1]);
	__builtin_memcpy(t.saddr, ip + 12, 4);
	__builtin_memcpy(t.daddr, ip + 16, 4);
	struct vg_tuple_key k;
	tuple_key(&t, &k);
	__u64 *skp = bpf_map_lookup_elem(&udp_tuples, &k);
	if (skp)
		udp_error((const struct sock *)*skp, err);
	return 0;
}

static __always_inline void udp_destroyed(const struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct vg_udp_flow *f = bpf_map_lookup_elem(&udp_flows, &key);
	if (!f)
		return;
	struct vg_tuple t;
	tuple_from_sock(sk, &t);
	struct vg_event *e = udp_emit_begin(VG_EV_UDP_END, key, &t, NULL, VG_F_SERVICE, 0, f);
	if (e)
		emit_end(e);
	bpf_map_delete_elem(&udp_flows, &key);
}

SEC("fentry/udp_destroy_sock")
int BPF_PROG(vg_udp_destroy_sock, struct sock *sk)
{
	udp_destroyed(sk);
	return 0;
}

SEC("fentry/udpv6_destroy_sock")
int BPF_PROG(vg_udpv6_destroy_sock, struct sock *sk)
{
	udp_destroyed(sk);
	return 0;
}

/*
 * ip_vs_conn_new(p, dest_af, daddr, dport, flags, dest, fwmark): same signature 5.10 .. 6.12. The real
 * destination is in daddr/dport; the client and virtual addresses are in *p.
 *
 * Two programs, one body; userspace attaches one (src/receiver/probe.ts). ip_vs is a module: fentry on it needs the
 * module's BTF, which Debian 5.10 lacks and which libbpf (and the kernel: BPF_BTF_GET_NEXT_ID, BPF_BTF_GET_FD_BY_ID)
 * hands out only with CAP_SYS_ADMIN. kprobe.multi (fprobe, 5.18+, CONFIG_FPROBE) attaches through a BPF link by
 * symbol name: no perf_event_open, no tracefs, no /proc/kallsyms. Where the kernel has no fprobe (Debian 5.10, and
 * Debian 12's 6.1, built without CONFIG_FPROBE) the classic kprobe remains, attached with perf_event_open.
 */
static __always_inline int ip_vs_conn_new_seen(const void *param, int dest_af, const union nf_inet_addr *daddr,
					       __be16 dport)
{
	count(VG_C_IPVS_SEEN);
	struct vg_ipvs_param p = {};
	if (read_ipvs_param(param, &p))
		return 0;
	if (p.protocol == IPPROTO_UDP)
		return udp_flow_scheduled(&p, dest_af, daddr, dport);
	if (p.protocol != IPPROTO_TCP)
		return 0;

	struct vg_tuple t = {};
	t.family = p.af;
	t.sport = bpf_ntohs(p.cport);
	t.dport = bpf_ntohs(p.vport);
	read_inet_addr(t.saddr, p.af, p.caddr);
	read_inet_addr(t.daddr, p.af, p.vaddr);

	struct vg_tuple_key k;
	tuple_key(&t, &k);
	__u64 sk = 0;
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	__u64 *skp = bpf_map_lookup_elem(&connecting, &tid);
	if (skp) {
		/* Softirq work for other flows can run on top of this thread: only trust an exact 4-tuple match. */
		struct vg_tuple st;
		tuple_from_sock((const struct sock *)*skp, &st);
		struct vg_tuple_key sk_key;
		tuple_key(&st, &sk_key);
		if (tuple_key_eq(&sk_key, &k)) {
			sk = *skp;
			bpf_map_delete_elem(&connecting, &tid);
			bpf_map_update_elem(&tuples, &k, &sk, BPF_ANY);
		}
	}
	if (!sk) {
		skp = bpf_map_lookup_elem(&tuples, &k);
		if (skp)
			sk = *skp;
	}

	bool svc = is_service(&t);
	__u8 flags = svc ? VG_F_SERVICE : 0;
	struct vg_handshake *hs = sk ? bpf_map_lookup_elem(&handshakes, &sk) : NULL;
	if (!hs) {
		count(VG_C_IPVS_UNMATCHED);
		if (!svc && !cfg_trace_all)
			return 0;
		struct vg_handshake tmp = {};
		tmp.backend_family = dest_af;
		tmp.backend_port = bpf_ntohs(dport);
		read_inet_addr(tmp.backend_addr, dest_af, daddr);
		emit(VG_EV_IPVS_CONN, sk, &t, 0, 0, &tmp, flags | VG_F_NO_SOCKET, 0);
		return 0;
	}

	if (hs->backend_family)
		flags |= VG_F_RESCHEDULED;
	hs->backend_family = dest_af;
	hs->backend_port = bpf_ntohs(dport);
	__builtin_memset(hs->backend_addr, 0, 16);
	read_inet_addr(hs->backend_addr, dest_af, daddr);
	/* pid only when IPVS ran inside connect(); a rescheduled retransmit runs from a timer. */
	emit(VG_EV_IPVS_CONN, sk, &t, TCP_SYN_SENT, TCP_SYN_SENT, hs, flags, (flags & VG_F_RESCHEDULED) ? 0 : id >> 32);
	return 0;
}

SEC("kprobe.multi/ip_vs_conn_new")
int BPF_KPROBE(vg_ip_vs_conn_new_multi, const void *param, int dest_af, const union nf_inet_addr *daddr, __be16 dport)
{
	return ip_vs_conn_new_seen(param, dest_af, daddr, dport);
}

SEC("kprobe/ip_vs_conn_new")
int BPF_KPROBE(vg_ip_vs_conn_new, const void *param, int dest_af, const union nf_inet_addr *daddr, __be16 dport)
{
	return ip_vs_conn_new_seen(param, dest_af, daddr, dport);
}

/*
 * Every RST that will refuse a SYN-SENT socket's connect (rst.bpf.h), as VG_EV_RST_IN with the socket's address as
 * its identity (the same pointer the tracepoints carry as skaddr). Always returns 1: an observer, never a filter.
 */
SEC("cgroup_skb/ingress")
int vg_rst_in(struct __sk_buff *skb)
{
	struct vg_rst r;
	__u32 isn = 0;
	struct bpf_sock *sk = vg_refusing_rst(skb, &r, &isn);
	if (!sk)
		return 1;
	struct vg_tuple t = {};
	t.family = r.family;
	t.sport = r.local_port;
	t.dport = r.peer_port;
	__builtin_memcpy(t.saddr, r.local, 16);
	__builtin_memcpy(t.daddr, r.peer, 16);
	bool svc = is_service(&t);
	if (!svc && !cfg_trace_all)
		return 1;
	__u64 key = (__u64)sk;
	struct vg_handshake *hs = bpf_map_lookup_elem(&handshakes, &key);
	emit(VG_EV_RST_IN, key, &t, TCP_SYN_SENT, TCP_SYN_SENT, hs, svc ? VG_F_SERVICE : 0, 0);
	return 1;
}
