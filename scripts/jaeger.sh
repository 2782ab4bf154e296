#!/usr/bin/env bash
# Builds Jaeger v2 (github.com/jaegertracing/jaeger/cmd/jaeger: itself an OpenTelemetry Collector distribution with
# Jaeger's storage and query extensions) into ${VIPGUARD_CACHE:-~/.cache/vipguard}/jaeger/<version>/jaeger. The lab
# test test/lab/jaeger.test.ts sends vipguard's spans through the real collector into it and asks its query API for
# them; the demo runs it when present. Outside the repository, like the collector; Go's module and build caches stay
# in Go's default places.
#
# Pinned to the module version below — Jaeger v2.13.0, tagged v1.76.0 for Go (the module path has no /v2, so its
# v2.x tags are not Go versions). It is the newest Jaeger the Go module proxy serves, and it pins collector 0.140.0
# (core v1.46.0), not otelcol/'s 0.165.0 (v1.71.0): no release shares those modules, so a cold build compiles its own
# (otel-config/README.md has the times). `go install …@version` refuses a module with replace directives (Jaeger
# has one), so the release's module is downloaded and built in place, with the go.sum it ships.
#
# Idempotent: a binary already cached for the pinned version is reused without touching Go or the network.
# Prints one line with the wall time.
#
#   scripts/jaeger.sh            build if needed; prints where the binary is
#   scripts/jaeger.sh --path     print only the binary's path (nothing built)
set -euo pipefail
cd "$(dirname "$0")/.."

version=v1.76.0  # = Jaeger v2.13.0; src/lab/jaeger.ts reads this line
log() { echo "jaeger: $*" >&2; }

dir="${VIPGUARD_CACHE:-$HOME/.cache/vipguard}/jaeger/$version"
bin="$dir/jaeger"

if [[ "${1:-}" == --path ]]; then echo "$bin"; exit 0; fi

t0=$EPOCHREALTIME
elapsed() { awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
if [[ -x "$bin" ]]; then log "cached $bin ($(elapsed) s)"; exit 0; fi

command -v go >/dev/null || [[ ! -x /usr/local/go/bin/go ]] || PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null ||
  { log "go not found: building Jaeger needs the Go toolchain (modules come from the Go module proxy)"; exit 1; }

mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
if [[ -x "$bin" ]]; then log "cached $bin, built meanwhile by another process ($(elapsed) s)"; exit 0; fi

log "building $bin (a cold build takes minutes)"
tmp="$dir/.jaeger.$$"
# The module's own directory in Go's module cache (read-only; the build writes nothing there).
if ! src=$(go mod download -json "github.com/jaegertracing/jaeger@$version" 2>"$dir/build.log" |
           sed -n 's/^\t"Dir": "\(.*\)",$/\1/p') || [[ -z "$src" ]]; then
  tail -20 "$dir/build.log" >&2; log "could not download github.com/jaegertracing/jaeger@$version (log: $dir/build.log)"; exit 1
fi
# Static (CGO off) so the same file runs inside the lab VM; -trimpath, no VCS stamp; -s -w as for the collector.
if ! (cd "$src" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags='-s -w' -o "$tmp" ./cmd/jaeger) >>"$dir/build.log" 2>&1; then
  tail -20 "$dir/build.log" >&2; rm -f "$tmp"
  log "go build failed (full log: $dir/build.log)"; exit 1
fi
"$tmp" --help >/dev/null 2>&1 || { rm -f "$tmp"; log "the built binary does not run"; exit 1; }
mv -f "$tmp" "$bin"
log "built $bin in $(elapsed) s"
