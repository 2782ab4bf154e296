/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Every kernel-version difference vipguard's BPF code meets, each behind one accessor that probes the running
 * kernel's BTF (bpf_core_type_exists / bpf_core_field_exists) instead of comparing version numbers.
 */
#ifndef VIPGUARD_CORE_FIXES_H
#define VIPGUARD_CORE_FIXES_H

#include <bpf/bpf_core_read.h>

/*
 * struct ip_vs_conn_param lives in the ip_vs module. CO-RE finds it in the module's BTF where the kernel has
 * module BTF (Debian 6.1, 6.12). Debian 5.10 ships ip_vs without BTF, so there we fall back to the layout the
 * struct has had since "ipvs: Pass ipvs not net to ip_vs_conn_fill_param" (v4.5) — unchanged through 6.12:
 *   struct netns_ipvs *ipvs; const union nf_inet_addr *caddr, *vaddr; __be16 cport, vport; __u16 protocol, af;
 */
struct ip_vs_conn_param___vg {
	void *ipvs;
	const union nf_inet_addr *caddr;
	const union nf_inet_addr *vaddr;
	__be16 cport;
	__be16 vport;
	__u16 protocol;
	__u16 af;
} __attribute__((preserve_access_index));

struct ip_vs_conn_param___fixed {
	void *ipvs;
	const union nf_inet_addr *caddr;
	const union nf_inet_addr *vaddr;
	__be16 cport;
	__be16 vport;
	__u16 protocol;
	__u16 af;
};

struct vg_ipvs_param {
	const union nf_inet_addr *caddr;
	const union nf_inet_addr *vaddr;
	__be16 cport;
	__be16 vport;
	__u16 protocol;
	__u16 af;
};

static __always_inline int read_ipvs_param(const void *p, struct vg_ipvs_param *out)
{
	if (bpf_core_type_exists(struct ip_vs_conn_param___vg)) {
		const struct ip_vs_conn_param___vg *q = p;
		out->caddr = BPF_CORE_READ(q, caddr);
		out->vaddr = BPF_CORE_READ(q, vaddr);
		out->cport = BPF_CORE_READ(q, cport);
		out->vport = BPF_CORE_READ(q, vport);
		out->protocol = BPF_CORE_READ(q, protocol);
		out->af = BPF_CORE_READ(q, af);
		return 0;
	}
	struct ip_vs_conn_param___fixed q;
	if (bpf_probe_read_kernel(&q, sizeof(q), p))
		return -1;
	out->caddr = q.caddr;
	out->vaddr = q.vaddr;
	out->cport = q.cport;
	out->vport = q.vport;
	out->protocol = q.protocol;
	out->af = q.af;
	return 0;
}

#endif /* VIPGUARD_CORE_FIXES_H */
