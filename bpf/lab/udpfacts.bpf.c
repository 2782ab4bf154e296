// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * Lab instrument for issue 13 (UDP): counts, per client socket and per hook, what each candidate hook sees of UDP
 * flows to one service port through IPVS. test/lab/udp-hooks.test.ts asserts the answers on Debian 5.10, 6.1 and
 * 6.12; docs/udp.md keeps them. Not shipped (built to build/bpf/lab/, which packaging leaves out).
 *
 * Every hook keys what it saw by the client socket's local port, the one identity every hook can name: the socket
 * hooks from the socket, the packet hooks from the UDP header, ip_vs_conn_new from the connection parameters (cport),
 * the ICMP error handlers from the error's inner (quoted) header. Only traffic whose remote port is cfg_port (the
 * service's, 53) is recorded, so the backends' own sockets (lport 53) and anything else on the host stay out.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "core_fixes.bpf.h"
#include "lab/udpfacts.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_UDP 17
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u16 cfg_port = 53;

_Static_assert(sizeof(struct udpf_seen) == UDPF_SEEN_SIZE, "udpf_seen layout is decoded in the lab test");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct udpf_key);
	__type(value, struct udpf_seen);
} seen SEC(".maps");

/* Every invocation per hook, matching or not: what each costs in calls per datagram. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, UF__MAX);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

/* Threads inside udp_sendmsg/udpv6_sendmsg now (fentry -> fexit), for UDPF_F_IN_SENDMSG. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u32);
} sending SEC(".maps");

static __always_inline void called(__u32 hook)
{
	__u64 *v = bpf_map_lookup_elem(&calls, &hook);
	if (v)
		*v += 1;
}

static __always_inline bool addr_eq(const __u8 *a, const __u8 *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/* peer/other: 16 bytes each, zero-padded for IPv4. */
static __always_inline void record(__u8 family, __u8 hook, __u16 lport, const __u8 *peer, __u16 peer_port,
				   const __u8 *other, __u16 other_port, __s32 ret, __u32 flags)
{
	struct udpf_key k = { .family = family, .hook = hook, .lport = lport };
	__u64 now = bpf_ktime_get_ns();
	struct udpf_seen *s = bpf_map_lookup_elem(&seen, &k);
	if (!s) {
		struct udpf_seen init = {};
		init.first_ns = now;
		__builtin_memcpy(init.peer, peer, 16);
		init.peer_port = peer_port;
		bpf_map_update_elem(&seen, &k, &init, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&seen, &k);
		if (!s)
			return;
	}
	if (s->count && (!addr_eq(s->peer, peer) || s->peer_port != peer_port))
		__sync_fetch_and_add(&s->peer_changes, 1);
	__sync_fetch_and_add(&s->count, 1);
	s->last_ns = now;
	__builtin_memcpy(s->peer, peer, 16);
	s->peer_port = peer_port;
	__builtin_memcpy(s->other, other, 16);
	s->other_port = other_port;
	s->ret = ret;
	s->flags |= flags;
}

static const __u8 zero16[16] = {};

/* ---- IPVS ------------------------------------------------------------------------------------------------ */

SEC("kprobe/ip_vs_conn_new")
int BPF_KPROBE(uf_ip_vs_conn_new, const void *param, int dest_af, const union nf_inet_addr *daddr, __be16 dport)
{
	called(UF_IPVS_CONN);
	struct vg_ipvs_param p = {};
	if (read_ipvs_param(param, &p) || p.protocol != IPPROTO_UDP || bpf_ntohs(p.vport) != cfg_port)
		return 0;
	__u8 dest[16] = {}, vip[16] = {};
	bpf_probe_read_kernel(dest, dest_af == AF_INET ? 4 : 16, daddr);
	bpf_probe_read_kernel(vip, p.af == AF_INET ? 4 : 16, p.vaddr);
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u32 flags = bpf_map_lookup_elem(&sending, &tid) ? UDPF_F_IN_SENDMSG : 0;
	record(p.af, UF_IPVS_CONN, bpf_ntohs(p.cport), dest, bpf_ntohs(dport), vip, bpf_ntohs(p.vport), dest_af, flags);
	return 0;
}

/* ---- the client socket's sends ---------------------------------------------------------------------------- */

/* The destination a send goes to: msg_name when given (sendto), else the connected socket's. */
static __always_inline __u8 send_dest(const struct sock *sk, const struct msghdr *msg, __u8 *addr, __u16 *port)
{
	__u8 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	const void *name = BPF_CORE_READ(msg, msg_name);
	if (name) {
		struct sockaddr_in6 sa = {};
		bpf_probe_read_kernel(&sa, sizeof(sa), name);
		if (sa.sin6_family == AF_INET) {
			const struct sockaddr_in *in = (const void *)&sa;
			__builtin_memcpy(addr, &in->sin_addr, 4);
			*port = bpf_ntohs(in->sin_port);
			return AF_INET;
		}
		__builtin_memcpy(addr, &sa.sin6_addr, 16);
		*port = bpf_ntohs(sa.sin6_port);
		return AF_INET6;
	}
	*port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET)
		BPF_CORE_READ_INTO((__u32 *)addr, sk, __sk_common.skc_daddr);
	else
		BPF_CORE_READ_INTO((struct in6_addr *)addr, sk, __sk_common.skc_v6_daddr);
	return family;
}

static __always_inline void on_send(__u8 hook, const struct sock *sk, const struct msghdr *msg, __s32 ret)
{
	called(hook);
	__u8 addr[16] = {};
	__u16 port = 0;
	__u8 family = send_dest(sk, msg, addr, &port);
	if (port != cfg_port)
		return;
	record(family, hook, BPF_CORE_READ(sk, __sk_common.skc_num), addr, port, zero16, 0, ret, 0);
}

static __always_inline void enter_send(const struct sock *sk, const struct msghdr *msg)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid(), one = 1;
	bpf_map_update_elem(&sending, &tid, &one, BPF_ANY);
	on_send(UF_SEND_FENTRY, sk, msg, 0);
}

static __always_inline void exit_send(const struct sock *sk, const struct msghdr *msg, int ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	bpf_map_delete_elem(&sending, &tid);
	on_send(UF_SEND_FEXIT, sk, msg, ret);
}

SEC("fentry/udp_sendmsg")
int BPF_PROG(uf_udp_sendmsg, struct sock *sk, struct msghdr *msg, size_t len)
{
	enter_send(sk, msg);
	return 0;
}

SEC("fexit/udp_sendmsg")
int BPF_PROG(uf_udp_sendmsg_exit, struct sock *sk, struct msghdr *msg, size_t len, int ret)
{
	exit_send(sk, msg, ret);
	return 0;
}

SEC("fentry/udpv6_sendmsg")
int BPF_PROG(uf_udpv6_sendmsg, struct sock *sk, struct msghdr *msg, size_t len)
{
	enter_send(sk, msg);
	return 0;
}

SEC("fexit/udpv6_sendmsg")
int BPF_PROG(uf_udpv6_sendmsg_exit, struct sock *sk, struct msghdr *msg, size_t len, int ret)
{
	exit_send(sk, msg, ret);
	return 0;
}

SEC("kprobe/udp_sendmsg")
int BPF_KPROBE(uf_udp_sendmsg_kprobe, struct sock *sk, struct msghdr *msg)
{
	on_send(UF_SEND_KPROBE, sk, msg, 0);
	return 0;
}

/* ---- packets at the cgroup hooks ---------------------------------------------------------------------------- */

/* A UDP packet's addresses and ports; the hook runs with skb->data at the IP header (both directions). */
static __always_inline __u8 parse_udp(struct __sk_buff *skb, __u8 *src, __u8 *dst, __u16 *sport, __u16 *dport)
{
	__u32 l4;
	__u8 family;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		__u8 ip[20];
		if (bpf_skb_load_bytes(skb, 0, ip, sizeof(ip)) || ip[9] != IPPROTO_UDP)
			return 0;
		__builtin_memcpy(src, ip + 12, 4);
		__builtin_memcpy(dst, ip + 16, 4);
		l4 = (ip[0] & 0x0f) * 4;
		family = AF_INET;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		__u8 ip6[40];
		if (bpf_skb_load_bytes(skb, 0, ip6, sizeof(ip6)) || ip6[6] != IPPROTO_UDP)
			return 0;
		__builtin_memcpy(src, ip6 + 8, 16);
		__builtin_memcpy(dst, ip6 + 24, 16);
		l4 = 40;
		family = AF_INET6;
	} else {
		return 0;
	}
	__u8 uh[4];
	if (l4 < 20 || l4 > 60 || bpf_skb_load_bytes(skb, l4, uh, sizeof(uh)))
		return 0;
	*sport = ((__u16)uh[0] << 8) | uh[1];
	*dport = ((__u16)uh[2] << 8) | uh[3];
	return family;
}

SEC("cgroup_skb/egress")
int uf_cg_egress(struct __sk_buff *skb)
{
	called(UF_CG_EGRESS);
	__u8 src[16] = {}, dst[16] = {};
	__u16 sport = 0, dport = 0;
	__u8 family = parse_udp(skb, src, dst, &sport, &dport);
	if (family && dport == cfg_port)
		record(family, UF_CG_EGRESS, sport, dst, dport, src, sport, 0, 0);
	return 1;
}

SEC("cgroup_skb/ingress")
int uf_cg_ingress(struct __sk_buff *skb)
{
	called(UF_CG_INGRESS);
	__u8 src[16] = {}, dst[16] = {};
	__u16 sport = 0, dport = 0;
	__u8 family = parse_udp(skb, src, dst, &sport, &dport);
	if (family && sport == cfg_port)
		record(family, UF_CG_INGRESS, dport, src, sport, dst, dport, 0, 0);
	return 1;
}

/* ---- datagrams queued to the socket, and ICMP errors ------------------------------------------------------------ */

SEC("fentry/__udp_enqueue_schedule_skb")
int BPF_PROG(uf_enqueue, struct sock *sk, struct sk_buff *skb)
{
	called(UF_ENQUEUE);
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header), th = BPF_CORE_READ(skb, transport_header);
	__u8 v = 0, src[16] = {};
	__u16 uh[2] = {};
	bpf_probe_read_kernel(&v, 1, head + nh);
	bpf_probe_read_kernel(uh, sizeof(uh), head + th);
	__u8 family = (v >> 4) == 4 ? AF_INET : AF_INET6;
	if (family == AF_INET)
		bpf_probe_read_kernel(src, 4, head + nh + 12);
	else
		bpf_probe_read_kernel(src, 16, head + nh + 8);
	if (bpf_ntohs(uh[0]) != cfg_port)
		return 0;
	record(family, UF_ENQUEUE, BPF_CORE_READ(sk, __sk_common.skc_num), src, bpf_ntohs(uh[0]), zero16, 0, 0, 0);
	return 0;
}

/*
 * icmp_unreach() / icmpv6_notify() hand the error handler the ICMP packet with skb->data at the quoted (inner) IP
 * header — the datagram the client sent, as it came back — while the network header is still the ICMP packet's own.
 */
static __always_inline void on_udp4_err(__u8 hook, const struct sk_buff *skb)
{
	called(hook);
	unsigned char *head = BPF_CORE_READ(skb, head), *data = BPF_CORE_READ(skb, data);
	__u16 nh = BPF_CORE_READ(skb, network_header), th = BPF_CORE_READ(skb, transport_header);
	__u8 ip[20] = {}, outer[16] = {}, icmp[2] = {}, dst[16] = {};
	__u16 uh[2] = {};
	bpf_probe_read_kernel(ip, sizeof(ip), data);
	bpf_probe_read_kernel(uh, sizeof(uh), data + (ip[0] & 0x0f) * 4);
	bpf_probe_read_kernel(outer, 4, head + nh + 12);
	bpf_probe_read_kernel(icmp, sizeof(icmp), head + th);
	if (bpf_ntohs(uh[1]) != cfg_port)
		return;
	__builtin_memcpy(dst, ip + 16, 4);
	record(AF_INET, hook, bpf_ntohs(uh[0]), dst, bpf_ntohs(uh[1]), outer, 0, (icmp[0] << 8) | icmp[1], 0);
}

/* __udp6_lib_err() and udpv6_err() get the inner UDP header's offset from skb->data as an argument. */
static __always_inline void on_udp6_err(__u8 hook, const struct sk_buff *skb, __u8 type, __u8 code, int offset)
{
	called(hook);
	unsigned char *head = BPF_CORE_READ(skb, head), *data = BPF_CORE_READ(skb, data);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u8 dst[16] = {}, outer[16] = {};
	__u16 uh[2] = {};
	bpf_probe_read_kernel(dst, 16, data + 24);
	bpf_probe_read_kernel(uh, sizeof(uh), data + (offset & 0xff));
	bpf_probe_read_kernel(outer, 16, head + nh + 8);
	if (bpf_ntohs(uh[1]) != cfg_port)
		return;
	record(AF_INET6, hook, bpf_ntohs(uh[0]), dst, bpf_ntohs(uh[1]), outer, 0, (type << 8) | code, 0);
}

SEC("fentry/__udp4_lib_err")
int BPF_PROG(uf_udp4_err, struct sk_buff *skb, u32 info)
{
	on_udp4_err(UF_ICMP_ERR, skb);
	return 0;
}

/* Seven arguments: x86's BPF trampoline takes at most six before 6.6 ("bpf, x86: allow function arguments up to
 * 12 for TRACING"), so this attaches on 6.12 only (ENOTSUPP before). */
SEC("fentry/__udp6_lib_err")
int BPF_PROG(uf_udp6_err, struct sk_buff *skb, struct inet6_skb_parm *opt, u8 type, u8 code, int offset)
{
	on_udp6_err(UF_ICMP_ERR, skb, type, code, offset);
	return 0;
}

SEC("fentry/udpv6_err")
int BPF_PROG(uf_udpv6_err, struct sk_buff *skb, struct inet6_skb_parm *opt, u8 type, u8 code, int offset)
{
	on_udp6_err(UF_UDPV6_ERR, skb, type, code, offset);
	return 0;
}

SEC("kprobe/__udp4_lib_err")
int BPF_KPROBE(uf_udp4_err_kprobe, struct sk_buff *skb)
{
	on_udp4_err(UF_ICMP_ERR_KPROBE, skb);
	return 0;
}

SEC("kprobe/__udp6_lib_err")
int BPF_KPROBE(uf_udp6_err_kprobe, struct sk_buff *skb, void *opt, u8 type, u8 code, int offset)
{
	on_udp6_err(UF_ICMP_ERR_KPROBE, skb, type, code, offset);
	return 0;
}

/* ---- socket tracepoints through BTF (no tracefs): loaded only where the kernel has them --------------------------- */

static __always_inline void on_sock(__u8 hook, const struct sock *sk, __s32 ret)
{
	called(hook);
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_UDP)
		return;
	__u16 port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (port != cfg_port)
		return;
	__u8 family = BPF_CORE_READ(sk, __sk_common.skc_family), addr[16] = {};
	if (family == AF_INET)
		BPF_CORE_READ_INTO((__u32 *)addr, sk, __sk_common.skc_daddr);
	else
		BPF_CORE_READ_INTO((struct in6_addr *)addr, sk, __sk_common.skc_v6_daddr);
	record(family, hook, BPF_CORE_READ(sk, __sk_common.skc_num), addr, port, zero16, 0, ret, 0);
}

SEC("tp_btf/inet_sk_error_report")
int BPF_PROG(uf_error_report, const struct sock *sk)
{
	on_sock(UF_ERR_REPORT, sk, BPF_CORE_READ(sk, sk_err));
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(uf_send_length, struct sock *sk, int ret, int flags)
{
	on_sock(UF_SEND_LEN, sk, ret);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(uf_recv_length, struct sock *sk, int ret, int flags)
{
	on_sock(UF_RECV_LEN, sk, ret);
	return 0;
}

/* The end of a UDP socket (sk_common_release() -> sk_prot->destroy), while its ports are still set: where a
 * per-socket table keyed by the socket's address can drop its entry — UDP has no state tracepoint to do it. */
SEC("fentry/udp_destroy_sock")
int BPF_PROG(uf_udp_destroy_sock, struct sock *sk)
{
	on_sock(UF_DESTROY, sk, 0);
	return 0;
}

SEC("fentry/udpv6_destroy_sock")
int BPF_PROG(uf_udpv6_destroy_sock, struct sock *sk)
{
	on_sock(UF_DESTROY, sk, 0);
	return 0;
}
