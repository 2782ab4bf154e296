#!/usr/bin/env bash
# The lab's IPVS test topology, for tests (through src/lab/topology.ts), benchmarks and by hand inside the lab VM.
#
#   topology.sh up [--backends healthy,refuse,blackhole] [--port 8080] [--vip 10.99.0.1] [--vip6 fd00:99::1]
#                  [--vip-port 80] [--scheduler rr] [--no-ipv6] [--udp 53] [--clients N]
#   topology.sh backend NAME healthy|refuse|blackhole|slow MS
#   topology.sh path CLIENT BACKEND drop|pass   # drop what client host cK sends to bN (its path only), or not
#   topology.sh weight NAME W           # IPVS weight of the backend in both services (0: no new connections)
#   topology.sh status                  # key/value lines, parsed by src/lab/topology.ts
#   topology.sh down                    # removes everything `up` created; safe to run twice
#
# Layout (after ../shared/KERNEL-NOTES.md, "Topology that works"):
#
#   root netns                                   netns vg-srv
#   vg-cli 10.200.0.1/24, fd00:200::1/64  <──veth──>  vg-srv0 10.200.0.2…, fd00:200::2…  (backend bN = .N+1)
#   route 10.99.0.1/32 and fd00:99::1/128 dev vg-cli
#   IPVS  10.99.0.1:80, [fd00:99::1]:80  NAT (masquerade), scheduler rr, one real server per backend
#   --udp P: also UDP services 10.99.0.1:P, [fd00:99::1]:P, each backend running Debian's dnsmasq on port P, which
#         answers any name under vipguard.test with the backend's own addresses (A and AAAA): a lookup says who answered
#
# With --clients N (1…9), N client hosts besides the root netns, each a netns with its own IPVS table (IPVS state
# is per network namespace), for fleet tests (test/lab/fleet.test.ts):
#
#   netns vg-cK                                  root netns
#   vg-cK0 10.201.K.2/24, default via .1  <──veth──>  vg-cK 10.201.K.1/24; forwards to vg-cli (ip_forward=1)
#   IPVS  10.99.K.1:VPORT  NAT, same scheduler, the same backends      vg-srv routes 10.201.0.0/16 via 10.200.0.1
#   nft   inet vg_path: what cK sends to a backend in its drop set is dropped on cK's way out (`path`)
#
# Each client has a VIP of its own: the receiver's BPF tracepoints see the sockets of every namespace and keep the
# connects to the virtual services they are configured with, so a VIP per client keeps each client's vipguard to
# its own connects, as on separate hosts. The root netns's own service (above) stays, unused by the clients.
#
# The VIP is *routed* via vg-cli, not a local address: IPVS catches the client's SYN at LOCAL_OUT and DNATs it to a
# backend; a local VIP would become the source address of that connection and the replies could not come back.
#
# Backend states, switched at runtime:
#   healthy    busybox httpd listening on the backend's addresses (answers GET / with its name); dnsmasq with --udp
#   refuse     listeners killed: the kernel answers a SYN with RST → ECONNREFUSED, a datagram with ICMP port unreachable
#   blackhole  nft drop of everything addressed to the backend, inside vg-srv → SYN retransmits
#   slow MS    listener up, netem delay of MS on everything the backend sends (its band of a prio qdisc on vg-srv0);
#              "slow" in `up --backends` means 200 ms
#
# Everything created is recorded under $STATE (processes by PID) so `down` removes exactly that. Needs root,
# iproute2, nftables, ipvsadm and busybox (scripts/provision.sh installs them).
set -euo pipefail

STATE=${VIPGUARD_TOPOLOGY_STATE:-/run/vipguard-topology}
NS=vg-srv
CLI_DEV=vg-cli
SRV_DEV=vg-srv0
NFT_TABLE="inet vg_topology"

log() { echo "topology: $*" >&2; }
die() { log "$*"; exit 1; }

# ---- config -----------------------------------------------------------------------------------------------------

load_config() {
  [[ -f "$STATE/config" ]] || die "no topology is up (no $STATE/config) — run 'topology.sh up' first"
  # shellcheck source=/dev/null
  . "$STATE/config"
}

backend_index() { # NAME → N (bN)
  local n=${1#b}
  [[ "$1" == b* && "$n" =~ ^[0-9]+$ && $n -ge 1 && $n -le $COUNT ]] ||
    die "unknown backend '$1' — backends are b1…b$COUNT"
  echo "$n"
}
ip4_of() { echo "10.200.0.$(($1 + 1))"; }
ip6_of() { echo "fd00:200::$(printf '%x' $(($1 + 1)))"; }

# ---- pieces of a backend's state; each ensure_* is idempotent ---------------------------------------------------

listener_pids() { # N → live PIDs of its listeners (recorded by us, and still a busybox httpd or dnsmasq)
  local f pid
  for f in "$STATE/b$1".pid*; do
    [[ -f "$f" ]] || continue
    pid=$(<"$f")
    if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE 'httpd|dnsmasq'; then echo "$pid"; fi
  done
}

wait_listening() { # ADDR PORT [t|u] — until the listener is bound (httpd binds before it forks into the background)
  local i
  for i in $(seq 1 100); do
    if ip netns exec "$NS" ss "-Hl${3:-t}n" "sport = :$2" | grep -qF "$1"; then return 0; fi
    sleep 0.05
  done
  die "listener on $1 port $2 did not come up"
}

ensure_listening() {
  local n=$1 www="$STATE/www/b$1"
  [[ -n "$(listener_pids "$n")" ]] && return 0
  mkdir -p "$www"
  echo "b$n" >"$www/index.html"
  # `ip netns exec` execs the command itself, so $! is the listener's PID.
  ip netns exec "$NS" busybox httpd -f -p "$(ip4_of "$n"):$PORT" -h "$www" </dev/null >/dev/null 2>&1 &
  echo $! >"$STATE/b$n.pid4"
  if [[ $IPV6 == 1 ]]; then
    ip netns exec "$NS" busybox httpd -f -p "[$(ip6_of "$n")]:$PORT" -h "$www" </dev/null >/dev/null 2>&1 &
    echo $! >"$STATE/b$n.pid6"
  fi
  if [[ ${UDP:-0} != 0 ]]; then
    local -a dns=(--keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --no-poll --bind-interfaces
      --user=root --group=root --pid-file= --port="$UDP" --listen-address="$(ip4_of "$n")"
      --address="/vipguard.test/$(ip4_of "$n")")
    if [[ $IPV6 == 1 ]]; then dns+=(--listen-address="$(ip6_of "$n")" --address="/vipguard.test/$(ip6_of "$n")"); fi
    ip netns exec "$NS" dnsmasq "${dns[@]}" </dev/null >/dev/null 2>&1 &
    echo $! >"$STATE/b$n.piddns"
  fi
  wait_listening "$(ip4_of "$n")" "$PORT"
  if [[ $IPV6 == 1 ]]; then wait_listening "$(ip6_of "$n")" "$PORT"; fi
  if [[ ${UDP:-0} != 0 ]]; then
    wait_listening "$(ip4_of "$n")" "$UDP" u
    if [[ $IPV6 == 1 ]]; then wait_listening "$(ip6_of "$n")" "$UDP" u; fi
  fi
}

alive() { # PID → running (not a zombie)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

ensure_not_listening() {
  local n=$1 pid
  for pid in $(listener_pids "$n"); do
    kill "$pid" 2>/dev/null || true
    # Until the process is gone the socket may still be listening, and the caller expects RSTs now. A zombie has
    # closed its sockets already (and in the lab VM, PID 1 is a shell that reaps orphans only now and then).
    for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.02; done
  done
  rm -f "$STATE/b$n".pid*
}

ensure_blackholed() { # N 0|1
  local n=$1 on=$2 op
  if [[ $on == 1 ]]; then op=add; else op=delete; fi
  # delete of an absent element fails, add of a present one does not: ignore the former.
  ip netns exec "$NS" nft "$op" element $NFT_TABLE blackhole4 "{ $(ip4_of "$n") }" 2>/dev/null || [[ $op == delete ]]
  if [[ $IPV6 == 1 ]]; then
    ip netns exec "$NS" nft "$op" element $NFT_TABLE blackhole6 "{ $(ip6_of "$n") }" 2>/dev/null || [[ $op == delete ]]
  fi
}

ensure_delay() { # N MS (0 = none). Backend bN owns band N+1 of the prio qdisc on vg-srv0.
  local n=$1 ms=$2 band=$(($1 + 1))
  if [[ $ms == 0 ]]; then
    # Not `qdisc del`: prio would graft noop in the band's place, which drops everything.
    ip netns exec "$NS" tc qdisc replace dev "$SRV_DEV" parent "1:$band" pfifo
  else
    ip netns exec "$NS" tc qdisc replace dev "$SRV_DEV" parent "1:$band" netem delay "${ms}ms"
  fi
}

set_backend() { # NAME STATE [MS]
  local n
  n=$(backend_index "$1")
  case "$2" in
    healthy) ensure_blackholed "$n" 0; ensure_delay "$n" 0; ensure_listening "$n" ;;
    refuse) ensure_blackholed "$n" 0; ensure_delay "$n" 0; ensure_not_listening "$n" ;;
    blackhole) ensure_delay "$n" 0; ensure_listening "$n"; ensure_blackholed "$n" 1 ;;
    slow)
      [[ "${3:-}" =~ ^[0-9]+$ && $3 -gt 0 ]] || die "slow needs a delay in milliseconds, e.g. 'backend $1 slow 200'"
      ensure_blackholed "$n" 0; ensure_listening "$n"; ensure_delay "$n" "$3" ;;
    *) die "unknown state '$2' — use healthy, refuse, blackhole or slow MS" ;;
  esac
  if [[ $2 == slow ]]; then echo "slow $3" >"$STATE/b$n.state"; else echo "$2" >"$STATE/b$n.state"; fi
}

# ---- commands -----------------------------------------------------------------------------------------------------

cmd_up() {
  local backends="healthy,refuse,blackhole" port=8080 vip=10.99.0.1 vip6=fd00:99::1 vport=80 sched=rr ipv6=1 udp=0 clients=0
  while (($#)); do
    case "$1" in
      --backends) backends="$2"; shift 2 ;;
      --port) port="$2"; shift 2 ;;
      --vip) vip="$2"; shift 2 ;;
      --vip6) vip6="$2"; shift 2 ;;
      --vip-port) vport="$2"; shift 2 ;;
      --scheduler) sched="$2"; shift 2 ;;
      --no-ipv6) ipv6=0; shift ;;
      --udp) udp="$2"; shift 2 ;;
      --clients) clients="$2"; shift 2 ;;
      *) die "up: unknown option '$1'" ;;
    esac
  done
  local -a states
  IFS=, read -r -a states <<<"$backends"
  local count=${#states[@]}
  ((count >= 1 && count <= 15)) || die "up: 1 to 15 backends (one prio band each, prio has 16), got $count"
  [[ "$clients" =~ ^[0-9]$ ]] || die "up: --clients takes 0 to 9 client hosts, got '$clients'"
  [[ $(id -u) == 0 ]] || die "up: needs root (network namespaces, IPVS)"
  [[ "$udp" =~ ^[0-9]+$ && $udp -le 65535 ]] || die "up: --udp takes a port, got '$udp'"
  for tool in ip nft ipvsadm tc busybox ss; do command -v "$tool" >/dev/null || die "up: missing $tool — run scripts/provision.sh"; done
  if [[ $udp != 0 ]]; then command -v dnsmasq >/dev/null || die "up: missing dnsmasq (--udp) — run scripts/provision.sh"; fi

  # Start from nothing we made before (a test that died mid-way), never from someone else's objects.
  [[ -f "$STATE/config" ]] && cmd_down
  mkdir -p "$STATE"
  cat >"$STATE/config" <<EOF
COUNT=$count
PORT=$port
VIP=$vip
VIP6=$vip6
VPORT=$vport
SCHED=$sched
IPV6=$ipv6
UDP=$udp
CLIENTS=$clients
EOF
  load_config

  # Mark creations as we go so that a failure half-way still lets `down` undo them.
  ip netns add "$NS"
  ip link add "$CLI_DEV" type veth peer name "$SRV_DEV" netns "$NS"
  ip -n "$NS" link set lo up
  ip addr add 10.200.0.1/24 dev "$CLI_DEV"
  ip link set "$CLI_DEV" up
  ip -n "$NS" link set "$SRV_DEV" up
  ip route add "$VIP/32" dev "$CLI_DEV"
  if [[ $IPV6 == 1 ]]; then
    # nodad: duplicate address detection would keep the addresses tentative (unusable) for about a second.
    ip addr add fd00:200::1/64 dev "$CLI_DEV" nodad
    ip -6 route add "$VIP6/128" dev "$CLI_DEV"
  fi
  local n
  for ((n = 1; n <= COUNT; n++)); do
    ip -n "$NS" addr add "$(ip4_of "$n")/24" dev "$SRV_DEV"
    if [[ $IPV6 == 1 ]]; then ip -n "$NS" addr add "$(ip6_of "$n")/64" dev "$SRV_DEV" nodad; fi
  done

  ip netns exec "$NS" nft -f - <<EOF
table $NFT_TABLE {
  set blackhole4 { type ipv4_addr; }
  set blackhole6 { type ipv6_addr; }
  chain input {
    type filter hook input priority -10; policy accept;
    ip daddr @blackhole4 drop
    ip6 daddr @blackhole6 drop
  }
}
EOF

  # One prio band per backend (band 1 takes everything else), each selected by source address.
  local bands=$((COUNT + 1))
  ip netns exec "$NS" tc qdisc add dev "$SRV_DEV" root handle 1: prio bands "$bands" priomap 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
  for ((n = 1; n <= COUNT; n++)); do
    ip netns exec "$NS" tc filter add dev "$SRV_DEV" parent 1: protocol ip prio 1 u32 match ip src "$(ip4_of "$n")/32" flowid "1:$((n + 1))"
    if [[ $IPV6 == 1 ]]; then
      ip netns exec "$NS" tc filter add dev "$SRV_DEV" parent 1: protocol ipv6 prio 2 u32 match ip6 src "$(ip6_of "$n")/128" flowid "1:$((n + 1))"
    fi
  done

  ipvs_services -t "$VPORT" "$PORT" ipvs
  if [[ ${UDP:-0} != 0 ]]; then ipvs_services -u "$UDP" "$UDP" ipvsu; fi

  for ((n = 1; n <= COUNT; n++)); do
    if [[ ${states[n - 1]} == slow ]]; then set_backend "b$n" slow 200; else set_backend "b$n" "${states[n - 1]}"; fi
  done
  for ((n = 1; n <= CLIENTS; n++)); do add_client "$n"; done
  cmd_status
}

ipvs_services() { # -t|-u VPORT RPORT STATE-NAME — the virtual services (v4, v6) with every backend at weight 1
  local proto=$1 vport=$2 rport=$3 n
  ipvsadm -A "$proto" "$VIP:$vport" -s "$SCHED"
  echo "$VIP:$vport" >"$STATE/${4}4"
  if [[ $IPV6 == 1 ]]; then
    ipvsadm -A "$proto" "[$VIP6]:$vport" -s "$SCHED"
    echo "[$VIP6]:$vport" >"$STATE/${4}6"
  fi
  for ((n = 1; n <= COUNT; n++)); do
    ipvsadm -a "$proto" "$VIP:$vport" -r "$(ip4_of "$n"):$rport" -m -w 1
    if [[ $IPV6 == 1 ]]; then ipvsadm -a "$proto" "[$VIP6]:$vport" -r "[$(ip6_of "$n")]:$rport" -m -w 1; fi
  done
}

ipvs_weight() { # -t|-u VPORT RPORT N W — ensure-style: a destination a test (or a managed service) removed is added back
  local proto=$1 vport=$2 rport=$3 n=$4 w=$5
  ipvsadm -e "$proto" "$VIP:$vport" -r "$(ip4_of "$n"):$rport" -m -w "$w" 2>/dev/null ||
    ipvsadm -a "$proto" "$VIP:$vport" -r "$(ip4_of "$n"):$rport" -m -w "$w"
  if [[ $IPV6 == 1 ]]; then
    ipvsadm -e "$proto" "[$VIP6]:$vport" -r "[$(ip6_of "$n")]:$rport" -m -w "$w" 2>/dev/null ||
      ipvsadm -a "$proto" "[$VIP6]:$vport" -r "[$(ip6_of "$n")]:$rport" -m -w "$w"
  fi
}

# ---- client hosts (--clients) -------------------------------------------------------------------------------------

client_vip() { echo "10.99.$1.1"; }

add_client() { # K
  local k=$1 ns="vg-c$1" vip n
  vip=$(client_vip "$k")
  if [[ ! -f "$STATE/ip_forward" ]]; then
    cat /proc/sys/net/ipv4/ip_forward >"$STATE/ip_forward"
    echo 1 >/proc/sys/net/ipv4/ip_forward
    ip -n "$NS" route add 10.201.0.0/16 via 10.200.0.1
  fi
  ip netns add "$ns"
  echo "$ns" >>"$STATE/clients"
  ip link add "$ns" type veth peer name "${ns}0" netns "$ns"
  ip -n "$ns" link set lo up
  ip addr add "10.201.$k.1/24" dev "$ns"
  ip link set "$ns" up
  ip -n "$ns" addr add "10.201.$k.2/24" dev "${ns}0"
  ip -n "$ns" link set "${ns}0" up
  ip -n "$ns" route add default via "10.201.$k.1"
  ip netns exec "$ns" nft -f - <<EOF
table inet vg_path {
  set drop4 { type ipv4_addr; }
  chain output {
    type filter hook output priority 0; policy accept;
    ip daddr @drop4 drop
  }
}
EOF
  # IPVS NAT for a local client rewrites the SYN at LOCAL_OUT before this output chain (priority 0) sees it, so
  # the drop set holds backend addresses. ipvsadm's netlink socket lives in the namespace it runs in.
  ip netns exec "$ns" ipvsadm -A -t "$vip:$VPORT" -s "$SCHED"
  for ((n = 1; n <= COUNT; n++)); do ip netns exec "$ns" ipvsadm -a -t "$vip:$VPORT" -r "$(ip4_of "$n"):$PORT" -m -w 1; done
}

client_index() { # NAME → K (cK)
  local k=${1#c}
  [[ "$1" == c* && "$k" =~ ^[0-9]$ && $k -ge 1 && $k -le ${CLIENTS:-0} ]] ||
    die "unknown client '$1' — clients are c1…c${CLIENTS:-0} (up --clients N)"
  echo "$k"
}

set_path() { # CLIENT BACKEND drop|pass
  local k n
  k=$(client_index "$1")
  n=$(backend_index "$2")
  case "$3" in
    drop) ip netns exec "vg-c$k" nft add element inet vg_path drop4 "{ $(ip4_of "$n") }" ;;
    pass) ip netns exec "vg-c$k" nft delete element inet vg_path drop4 "{ $(ip4_of "$n") }" 2>/dev/null || true ;;
    *) die "path: drop or pass, got '$3'" ;;
  esac
}

cmd_down() {
  [[ -d "$STATE" ]] || return 0
  if [[ -f "$STATE/config" ]]; then
    # shellcheck source=/dev/null
    . "$STATE/config"
    local n
    for ((n = 1; n <= COUNT; n++)); do ensure_not_listening "$n"; done
  fi
  local f c
  # A client namespace takes its IPVS table, nft table and veth pair with it.
  if [[ -f "$STATE/clients" ]]; then
    for c in $(<"$STATE/clients"); do
      if ip netns list | grep -qw "$c"; then ip netns del "$c"; fi
      if ip link show "$c" >/dev/null 2>&1; then ip link del "$c"; fi
    done
  fi
  if [[ -f "$STATE/ip_forward" ]]; then cat "$STATE/ip_forward" >/proc/sys/net/ipv4/ip_forward; fi
  for f in "$STATE/ipvs4" "$STATE/ipvs6"; do
    [[ -f "$f" ]] && { ipvsadm -D -t "$(<"$f")" 2>/dev/null || true; }
  done
  for f in "$STATE/ipvsu4" "$STATE/ipvsu6"; do
    [[ -f "$f" ]] && { ipvsadm -D -u "$(<"$f")" 2>/dev/null || true; }
  done
  # The namespace takes vg-srv0, its nft table and qdiscs with it, and the veth peer vg-cli with its routes.
  if ip netns list | grep -qw "$NS"; then ip netns del "$NS"; fi
  if ip link show "$CLI_DEV" >/dev/null 2>&1; then ip link del "$CLI_DEV"; fi
  rm -rf "$STATE"
}

cmd_weight() { # NAME W — in the TCP service, and in the UDP one when there is one
  local n
  n=$(backend_index "$1")
  [[ "$2" =~ ^[0-9]+$ ]] || die "weight must be a number >= 0, got '$2'"
  ipvs_weight -t "$VPORT" "$PORT" "$n" "$2"
  if [[ ${UDP:-0} != 0 ]]; then ipvs_weight -u "$UDP" "$UDP" "$n" "$2"; fi
}

cmd_status() {
  load_config
  echo "vip $VIP $VPORT"
  if [[ $IPV6 == 1 ]]; then echo "vip6 $VIP6 $VPORT"; fi
  if [[ ${UDP:-0} != 0 ]]; then echo "udp $UDP"; fi
  local n
  for ((n = 1; n <= COUNT; n++)); do
    local ip6="-"
    if [[ $IPV6 == 1 ]]; then ip6=$(ip6_of "$n"); fi
    echo "backend b$n $(ip4_of "$n") $ip6 $PORT $(cat "$STATE/b$n.state" 2>/dev/null || echo unknown)"
  done
  for ((n = 1; n <= ${CLIENTS:-0}; n++)); do echo "client c$n vg-c$n 10.201.$n.2 $(client_vip "$n") $VPORT"; done
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  backend)
    (($# >= 3)) || die "usage: topology.sh backend NAME healthy|refuse|blackhole|slow MS"
    load_config
    set_backend "$2" "$3" "${4:-}"
    ;;
  weight)
    (($# == 3)) || die "usage: topology.sh weight NAME W"
    load_config
    cmd_weight "$2" "$3"
    ;;
  path)
    (($# == 4)) || die "usage: topology.sh path CLIENT BACKEND drop|pass"
    load_config
    set_path "$2" "$3" "$4"
    ;;
  *) die "usage: topology.sh up [options] | down | status | backend NAME STATE | weight NAME W | path CLIENT BACKEND drop|pass (see the top of $0)" ;;
esac
