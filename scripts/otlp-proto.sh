#!/usr/bin/env bash
# The OTLP protocol definitions vipguard decodes with (src/otlp/proto.ts): the .proto files of one OTLP release as
# the OpenTelemetry project publishes them in its artifact io.opentelemetry.proto:opentelemetry-proto (Maven
# Central), fetched by Maven through the machine's own Maven configuration, checked against the digest pinned here,
# and unpacked into build/otlp-proto/ — a build output, like the BPF objects; the Debian package carries it.
#
#   scripts/otlp-proto.sh      fetch (once, cached in ~/.cache/vipguard/otlp-proto/) and unpack if needed
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "otlp-proto: $*" >&2; }

ARTIFACT=io.opentelemetry.proto:opentelemetry-proto
VERSION=1.8.0-alpha   # OTLP 1.8.0: the Java artifact carries the protocol's version with an -alpha for its generated code
SHA256=c551873983e22b308c738860da0903cdff2e47182140cf2a8dd9abb1adf31d08
PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

out=build/otlp-proto
[[ -f "$out/.version" && "$(cat "$out/.version")" == "$VERSION" ]] && exit 0

cache="${VIPGUARD_CACHE:-$HOME/.cache/vipguard}/otlp-proto"
jar="$cache/opentelemetry-proto-$VERSION.jar"
if [[ ! -f "$jar" ]] || ! echo "$SHA256  $jar" | sha256sum -c --status; then
  command -v mvn >/dev/null || { log "no mvn: install maven (scripts/provision.sh does)"; exit 1; }
  log "fetching $ARTIFACT:$VERSION with Maven"
  mkdir -p "$cache"
  mvn -B -q -C "$PLUGIN:copy" -Dartifact="$ARTIFACT:$VERSION" -DoutputDirectory="$cache" >/tmp/vipguard-mvn.log 2>&1 ||
    { tail -20 /tmp/vipguard-mvn.log >&2; log "Maven could not fetch $ARTIFACT:$VERSION (log: /tmp/vipguard-mvn.log)"; exit 1; }
  echo "$SHA256  $jar" | sha256sum -c --status ||
    { log "$jar does not have the pinned SHA-256 $SHA256"; rm -f "$jar"; exit 1; }
fi

# Only the .proto files, into a fresh directory renamed into place: never half a tree.
mkdir -p build
tmp=$(mktemp -d build/.otlp-proto.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
python3 - "$jar" "$tmp" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    names = [n for n in z.namelist() if n.startswith('opentelemetry/proto/') and n.endswith('.proto')]
    if not names:
        sys.exit('no opentelemetry/proto/**/*.proto in ' + sys.argv[1])
    for n in names:
        z.extract(n, sys.argv[2])
PY
echo "$VERSION" >"$tmp/.version"
chmod -R u=rwX,go=rX "$tmp"   # mktemp made it 0700: the package installs it as is, for a daemon that is not root
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
log "OTLP definitions $VERSION in $out"
