#!/usr/bin/env bash
# Builds vipguard's Debian package from this tree's build outputs (run scripts/build.sh first; `npm run package`
# does both):
#
#   scripts/package.sh [--version V] [--out DIR]     → DIR/vipguard_V_ARCH.deb (default build/deb/)
#
# What a host then needs is Node (≥ 20.17) and libbpf at run time, no compiler: the package holds the compiled BPF
# objects, the native addon (N-API, so one build serves Node 20, 22 and 24), the JavaScript with its production
# dependencies, the systemd unit, the sysusers snippet and a default /etc/vipguard/vipguard.yaml. The sysctl snippet
# for kernels without kprobe.multi is only an example (/usr/share/doc/vipguard/examples/): installing it is an opt-in.
# Layout under /usr/lib/vipguard mirrors the repository's, which is where the code looks for its parts
# (src/common/paths.ts, src/native/addon.ts). --version (default: package.json's) lets the lab build a second
# package to test upgrades with.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
log() { echo "package: $*" >&2; }

version=$(node -p "require('./package.json').version")
out=build/deb
while (($#)); do
  case "$1" in
    --version) version="${2:?--version needs a value}"; shift 2 ;;
    --out) out="${2:?--out needs a directory}"; [[ "$out" == /* ]] || out="$caller/$out"; shift 2 ;;
    *) log "unknown argument '$1' (expected --version V or --out DIR)"; exit 2 ;;
  esac
done
[[ "$version" =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || { log "version '$version' is not a Debian version (digits first, then [A-Za-z0-9.+~-])"; exit 2; }
arch=$(dpkg --print-architecture)

for f in dist/src/cli/main.js native/build/Release/vipguard_native.node build/bpf/receiver.bpf.o build/otlp-proto/.version; do
  [[ -f "$f" ]] || { log "$f missing — run scripts/build.sh (or npm run package) first"; exit 1; }
done

stage=$(mktemp -d "${TMPDIR:-/tmp}/vipguard-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
lib=$root/usr/lib/vipguard
mkdir -p "$lib/dist" "$lib/native/build/Release" "$lib/build/bpf" "$root/usr/bin" "$root/etc/vipguard" \
  "$root/lib/systemd/system" "$root/usr/lib/sysusers.d" "$root/usr/share/doc/vipguard/examples" \
  "$root/DEBIAN"

# The daemon's code: dist/src without what only the repository uses (lab, benchmarks, demo, the test runner).
cp -a dist/src "$lib/dist/"
rm -rf "$lib/dist/src/lab" "$lib/dist/src/bench" "$lib/dist/src/demo" "$lib/dist/src/cli/test-runner.js"
find "$lib/dist" -name '*.map' -delete
# package.json with its version set (`vipguard --version` reads it) and the lock it was resolved with.
node -e '
  const fs = require("fs"); const p = JSON.parse(fs.readFileSync("package.json", "utf8"));
  p.version = process.argv[1]; delete p.devDependencies; delete p.scripts;
  fs.writeFileSync(process.argv[2], JSON.stringify(p, null, 2) + "\n");' "$version" "$lib/package.json"
cp package-lock.json "$lib/"
# Production dependencies exactly as locked; from npm's cache when it has them. No install scripts: none of them
# has one that matters at run time, and the native part is ours (below).
(cd "$lib" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error >/dev/null)
rm -f "$lib/package-lock.json"
# What only a debugger or a compiler reads: source maps and TypeScript sources the dependencies ship.
# (@types/node comes as a dependency of protobufjs: declarations only.)
rm -rf "$lib/node_modules/@types"
find "$lib/node_modules" \( -name '*.map' -o \( -name '*.ts' ! -name '*.d.ts' \) \) -type f -delete
install -m 0644 native/build/Release/vipguard_native.node "$lib/native/build/Release/"
install -m 0644 build/bpf/*.bpf.o "$lib/build/bpf/"
cp -a build/otlp-proto "$lib/build/"

# /usr/bin/vipguard: Node from the nodejs package, the CLI from the package's tree.
cat >"$root/usr/bin/vipguard" <<'EOF'
#!/bin/sh
exec /usr/bin/node @NODE_FLAGS@ /usr/lib/vipguard/dist/src/cli/main.js "$@"
EOF
# Node's flags: src/common/node-flags.ts (the benchmarks measure with the same), read from the staged tree.
node_flags=$(node -p 'require(process.argv[1]).NODE_FLAGS.join(" ")' "$lib/dist/src/common/node-flags.js")
sed -i "s|@NODE_FLAGS@|$node_flags|" "$root/usr/bin/vipguard"
chmod 0755 "$root/usr/bin/vipguard"

install -m 0644 deploy/vipguard.service "$root/lib/systemd/system/"
install -m 0644 deploy/sysusers.d/vipguard.conf "$root/usr/lib/sysusers.d/"
install -m 0644 deploy/sysctl.d/60-vipguard.conf "$root/usr/share/doc/vipguard/examples/"
install -m 0644 packaging/vipguard.yaml "$root/etc/vipguard/"
install -m 0644 README.md "$root/usr/share/doc/vipguard/"
install -m 0644 deploy/README.md "$root/usr/share/doc/vipguard/deploy.md"
install -m 0644 docs/config.md docs/telemetry.md docs/alerts.md "$root/usr/share/doc/vipguard/"
install -m 0644 schema/vipguard.schema.json "$root/usr/share/doc/vipguard/"

# Everything readable by all, whatever umask or temporary directory it was built under: the daemon runs as vipguard.
chmod -R u=rwX,go=rX "$root"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" packaging/debian/control >"$root/DEBIAN/control"

# Smoke test of the staged tree before it is packed: the CLI loads its modules and the addon from there.
got=$(node "$lib/dist/src/cli/main.js" --version)
[[ "$got" == "$version" ]] || { log "the staged CLI says version '$got', expected '$version'"; exit 1; }
node "$lib/dist/src/cli/main.js" check-config packaging/vipguard.yaml >/dev/null
node -e 'require(process.argv[1])' "$lib/native/build/Release/vipguard_native.node"

mkdir -p "$out"
deb="$out/vipguard_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >/dev/null
log "$deb ($(du -h "$deb" | cut -f1), ${size} KiB installed)"
realpath "$deb"
