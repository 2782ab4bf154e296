#!/bin/sh
# Inside the lab: copies the tracefs formats of the tracepoints vipguard reads, and what the kernel offers for the
# IPVS hooks (module BTF, the kprobe target), to $VIPGUARD_LAB_OUT. Run it across the matrix with
#   npm run lab -- --kernel all --artifacts /tmp/lab-formats -- scripts/lab/capture-tracepoints.sh
# and diff /tmp/lab-formats/<kernel>/*.format (5.10 lacks the `family` field of the two tcp events, for one).
set -u
out=${VIPGUARD_LAB_OUT:?run this inside the lab: npm run lab -- … -- scripts/lab/capture-tracepoints.sh}
t=/sys/kernel/tracing
for e in sock/inet_sock_set_state tcp/tcp_retransmit_skb tcp/tcp_receive_reset; do
  cp "$t/events/$e/format" "$out/${e#*/}.format" || echo "no tracepoint $e"
done
yesno() { if [ -e "$1" ]; then echo yes; else echo no; fi; }
{
  echo "release $(uname -r)"
  echo "btf/vmlinux $(yesno /sys/kernel/btf/vmlinux)"
  echo "btf/ip_vs $(yesno /sys/kernel/btf/ip_vs)"
  echo "kprobe target ip_vs_conn_new: $(grep -c '^ip_vs_conn_new ' "$t/available_filter_functions")"
  echo "tcp_syn_linear_timeouts: $(cat /proc/sys/net/ipv4/tcp_syn_linear_timeouts 2>/dev/null || echo absent)"
  echo "modules: $(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')"
} >"$out/summary.txt"
cat "$out/summary.txt"
