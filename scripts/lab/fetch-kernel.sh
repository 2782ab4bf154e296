#!/usr/bin/env bash
# Fetches one Debian kernel image package through a *private* apt configuration and unpacks it.
#
#   scripts/lab/fetch-kernel.sh --name 6.1 --abi 6.1 --dest DIR --mirror URI --source "URI SUITE" [--source …]
#
# --mirror is the Debian archive (the one the machine's apt uses, found by src/lab/apt-mirrors.ts), read only when
# the installed keyring is too old and the newest debian-archive-keyring must be fetched from its bookworm suite.
#
# Writes DIR/root/ (dpkg -x of the package: boot/vmlinuz-*, lib/modules/<release>/ with a fresh depmod index) and
# DIR/manifest.env (package, version, release; its presence means "cached"). Does nothing if DIR/manifest.env
# exists. Works in DIR.partial and renames it into place, under a lock, so concurrent runs fetch once and a
# half-fetched kernel is never mistaken for a cached one.
#
# Why a private configuration: the machine's own /etc/apt stays untouched (it tracks one release), while the lab
# needs bullseye, bullseye-security and trixie. apt still does all the verification — InRelease signatures against
# debian-archive-keyring, Packages hashes, then the .deb's hash — so nothing here trusts the network.
set -euo pipefail

name="" abi="" dest="" mirror="" sources=()
while (($#)); do
  case "$1" in
    --name) name="$2"; shift 2 ;;
    --abi) abi="$2"; shift 2 ;;
    --dest) dest="$2"; shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    --source) sources+=("$2"); shift 2 ;;
    *) echo "fetch-kernel: unknown argument '$1' (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
done
[[ -n "$name" && -n "$abi" && -n "$dest" && -n "$mirror" && ${#sources[@]} -gt 0 ]] ||
  { echo "fetch-kernel: need --name, --abi, --dest, --mirror and at least one --source" >&2; exit 2; }
log() { echo "fetch-kernel[$name]: $*" >&2; }

mkdir -p "$(dirname "$dest")"
exec 9>"$dest.lock"
flock 9
[[ -f "$dest/manifest.env" ]] && { log "already cached in $dest"; exit 0; }
final="$dest"
dest="$dest.partial"
rm -rf "$dest" "$final"
for tool in apt-get apt-cache dpkg-deb depmod flock; do
  command -v "$tool" >/dev/null || { log "missing $tool — run scripts/provision.sh"; exit 1; }
done

# VIPGUARD_DEBIAN_KEYRING exists to exercise the keyring fallback below; normally the installed keyring is used.
system_keyring=${VIPGUARD_DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
[[ -r "$system_keyring" ]] || { log "missing $system_keyring — run scripts/provision.sh (debian-archive-keyring)"; exit 1; }

# Everything apt writes lives under $dest/apt, next to the kernel it produced; lists are reused by nothing else.
aptdir="$dest/apt"
mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial" "$aptdir/download" "$dest/root"
: >"$aptdir/status"
# apt drops privileges to _apt for downloads; let it write where it downloads.
if [[ $(id -u) == 0 ]] && id _apt >/dev/null 2>&1; then chown -R _apt "$aptdir/lists" "$aptdir/download"; fi

apt_opts() { # $1 = keyring
  echo "-q"
  echo "-o=Dir::Etc::SourceList=$aptdir/sources.list"
  echo "-o=Dir::Etc::SourceParts=$aptdir/none"      # ignore /etc/apt/sources.list.d
  echo "-o=Dir::Etc::Preferences=$aptdir/none"      # and the machine's pins
  echo "-o=Dir::Etc::PreferencesParts=$aptdir/none"
  echo "-o=Dir::State::Lists=$aptdir/lists"
  echo "-o=Dir::State::status=$aptdir/status"       # candidates must not depend on what the host has installed
  echo "-o=Dir::Cache=$aptdir/cache"
  echo "-o=APT::Architecture=amd64"
  echo "-o=APT::Architectures::=amd64"
  echo "-o=Acquire::Languages=none"                 # Packages indexes only: ~10 MB per suite
  echo "-o=Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
  echo "-o=Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false"
  echo "-o=Debug::NoLocking=true"
}

write_sources() { # $1 = keyring
  : >"$aptdir/sources.list"
  local s
  for s in "${sources[@]}"; do echo "deb [signed-by=$1] $s main" >>"$aptdir/sources.list"; done
}

update() { # $1 = keyring; output in $aptdir/update.log
  write_sources "$1"
  mapfile -t opts < <(apt_opts)
  apt-get "${opts[@]}" --error-on=any update >"$aptdir/update.log" 2>&1
}

keyring="$system_keyring"
log "updating package lists (${sources[*]})"
if ! update "$keyring"; then
  if grep -qE 'NO_PUBKEY|not signed|signatures couldn.t be verified|EXPKEYSIG' "$aptdir/update.log"; then
    # The installed keyring predates this suite's key. Take the newest debian-archive-keyring that bookworm (which
    # the installed keyring does verify) ships, and retry with it: the trust chain stays apt's all the way.
    log "installed debian-archive-keyring cannot verify these suites; fetching the newest keyring through bookworm"
    saved=("${sources[@]}")
    # bookworm alone (not -updates): point releases carry keyring updates, and its Release is signed by the
    # stable key as well as the automatic one, so the fewest installed keys still verify it.
    sources=("$mirror bookworm")
    update "$system_keyring" || { cat "$aptdir/update.log" >&2; log "could not update bookworm lists to fetch the keyring"; exit 1; }
    mapfile -t opts < <(apt_opts)
    (cd "$aptdir/download" && apt-get "${opts[@]}" download debian-archive-keyring >>"$aptdir/update.log" 2>&1) ||
      { cat "$aptdir/update.log" >&2; log "could not download debian-archive-keyring"; exit 1; }
    dpkg-deb -x "$aptdir/download"/debian-archive-keyring_*.deb "$aptdir/keyring"
    keyring="$aptdir/keyring/usr/share/keyrings/debian-archive-keyring.gpg"
    rm -f "$aptdir/download"/*.deb "$aptdir/lists"/*_* 
    sources=("${saved[@]}")
    update "$keyring" || { cat "$aptdir/update.log" >&2; log "apt-get update failed even with the newest keyring"; exit 1; }
  else
    tail -15 "$aptdir/update.log" >&2
    log "could not read the Debian archive (apt-get update failed; full log: $aptdir/update.log) — check the network or proxy, or point VIPGUARD_DEBIAN_MIRROR / VIPGUARD_DEBIAN_SECURITY_MIRROR at a reachable mirror"
    exit 1
  fi
fi

mapfile -t opts < <(apt_opts)
# The flavour we want is plain amd64: not cloud (lacks drivers), not rt, not -dbg. Debian names the image
# linux-image-<abi>.<patch>-<abiname>-amd64 (5.10, 6.1) or linux-image-<abi>.<patch>+deb13-amd64 (6.12).
abi_re=${abi//./\\.}
mapfile -t candidates < <(apt-cache "${opts[@]}" pkgnames linux-image- |
  grep -E "^linux-image-${abi_re}[.-][^ ]*-amd64(-unsigned)?\$" | grep -vE -- '-(cloud|rt)-amd64' | sed 's/-unsigned$//' | sort -uV)
((${#candidates[@]})) || { log "no linux-image-${abi}*-amd64 in ${sources[*]} — did the suite names change?"; exit 1; }
pkg="${candidates[-1]}"

# Signed and unsigned images carry the same vmlinuz and modules; take the signed one, fall back to -unsigned.
got=""
for p in "$pkg" "$pkg-unsigned"; do
  if (cd "$aptdir/download" && apt-get "${opts[@]}" download "$p" >>"$aptdir/download.log" 2>&1); then got="$p"; break; fi
done
[[ -n "$got" ]] || { tail -15 "$aptdir/download.log" >&2; log "could not download $pkg (log: $aptdir/download.log)"; exit 1; }
deb=$(ls "$aptdir/download"/*.deb)
version=$(dpkg-deb -f "$deb" Version)
log "unpacking $got $version ($(du -h "$deb" | cut -f1))"
dpkg-deb -x "$deb" "$dest/root"
sha256=$(sha256sum "$deb" | cut -d' ' -f1)
rm -f "$deb"

# trixie ships modules under usr/lib/modules (merged /usr); give both layouts one path.
if [[ -d "$dest/root/usr/lib/modules" && ! -e "$dest/root/lib" ]]; then ln -s usr/lib "$dest/root/lib"; fi
vmlinuz=$(ls "$dest"/root/boot/vmlinuz-* 2>/dev/null | head -1)
[[ -n "$vmlinuz" ]] || { log "$got has no boot/vmlinuz-* — cannot boot it"; exit 1; }
release=${vmlinuz##*/vmlinuz-}
[[ -d "$dest/root/lib/modules/$release/kernel" ]] || { log "$got has no modules for $release"; exit 1; }
# The package's postinst would run depmod; dpkg -x does not.
depmod -b "$dest/root" "$release"

cat >"$dest/manifest.env" <<MANIFEST
package=$got
version=$version
release=$release
sha256=$sha256
sources=${sources[*]}
fetched=$(date -u +%Y-%m-%dT%H:%M:%SZ)
MANIFEST
mv "$dest" "$final"
log "ready: $release in $final"
