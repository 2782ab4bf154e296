#!/usr/bin/env bash
# Builds the OpenTelemetry Collector that runs beside vipguard (otel-config/otelcol/: exactly the components the
# configurations in otel-config/ use) into ${VIPGUARD_CACHE:-~/.cache/vipguard}/otelcol/<key>/otelcol-vipguard,
# where <key> is a hash of that directory's go.mod, go.sum and *.go — the same key src/lab/collector.ts computes,
# so tests always run the binary of the manifest they see. Outside the repository, like the lab's kernels; Go's
# module and build caches stay in Go's default places.
#
# Idempotent: a binary already cached under the current key is reused without touching Go or the network.
# Prints one line with the wall time. Cold (empty module and build caches) it downloads ~200 modules through the
# machine's Go module proxy and compiles them: minutes on 2 cores (docs/collector.md has the figures).
#
#   scripts/collector.sh            build if needed; prints where the binary is
#   scripts/collector.sh --path     print only the binary's path (nothing built)
set -euo pipefail
cd "$(dirname "$0")/.."

src=otel-config/otelcol
log() { echo "collector: $*" >&2; }

# The key: sha256 of `sha256sum` over the manifest's files in byte order (src/lab/collector.ts mirrors this).
files=$(cd "$src" && ls go.mod go.sum *.go | LC_ALL=C sort)
key=$(cd "$src" && sha256sum $files | sha256sum | cut -c1-16)
dir="${VIPGUARD_CACHE:-$HOME/.cache/vipguard}/otelcol/$key"
bin="$dir/otelcol-vipguard"

if [[ "${1:-}" == --path ]]; then echo "$bin"; exit 0; fi

t0=$EPOCHREALTIME
elapsed() { awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
if [[ -x "$bin" ]]; then log "cached $bin ($(elapsed) s)"; exit 0; fi

# The Go toolchain's usual install place, for shells whose PATH lacks it (a service's, a minimal CI environment).
command -v go >/dev/null || [[ ! -x /usr/local/go/bin/go ]] || PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null ||
  { log "go not found: building the collector needs Go ≥ $(sed -n 's/^go //p' "$src/go.mod") (the Go toolchain, from the Go module proxy for modules)"; exit 1; }

mkdir -p "$dir"
# Two sessions building at once would both download and compile; the second waits, then finds the binary.
exec 9>"$dir/.lock"
flock 9
if [[ -x "$bin" ]]; then log "cached $bin, built meanwhile by another process ($(elapsed) s)"; exit 0; fi

log "building $bin (a cold build takes minutes)"
tmp="$dir/.otelcol-vipguard.$$"
# Static (CGO off) so the same file runs anywhere, including inside the lab VM; -trimpath and no VCS stamp so the
# binary depends only on the manifest; -s -w drops ~30 % of symbols nobody reads here.
if ! (cd "$src" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags='-s -w' -o "$tmp" .) >"$dir/build.log" 2>&1; then
  tail -20 "$dir/build.log" >&2; rm -f "$tmp"
  log "go build failed (full log: $dir/build.log)"; exit 1
fi
"$tmp" --version >/dev/null || { rm -f "$tmp"; log "the built binary does not run"; exit 1; }
mv -f "$tmp" "$bin"
log "built $bin in $(elapsed) s"
