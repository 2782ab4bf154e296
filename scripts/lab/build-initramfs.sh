#!/usr/bin/env bash
# Builds the lab's initramfs for one unpacked kernel (see fetch-kernel.sh):
#
#   scripts/lab/build-initramfs.sh KERNEL_DIR OUT.cpio.gz
#
# It holds only what it takes to reach the host's filesystem: busybox-static, the modules for virtio-pci, the
# virtio console and RNG, 9p over virtio and overlayfs (with their dependencies, in load order), and scripts/lab/init.
# Everything after that — mounts, module loading, running the command — happens in scripts/lab/guest-init.sh, read
# from the host at boot, so editing it needs no rebuild.
set -euo pipefail
kdir="${1:?usage: build-initramfs.sh KERNEL_DIR OUT.cpio.gz}"
out="${2:?usage: build-initramfs.sh KERNEL_DIR OUT.cpio.gz}"
here="$(cd "$(dirname "$0")" && pwd)"
log() { echo "build-initramfs: $*" >&2; }

release=$(sed -n 's/^release=//p' "$kdir/manifest.env")
[[ -n "$release" ]] || { log "no release in $kdir/manifest.env — fetch the kernel again"; exit 1; }
# busybox-static's binary; the dynamic busybox package would need the host's libc inside the initramfs.
busybox=/bin/busybox
[[ -x "$busybox" ]] || { log "no $busybox — install busybox-static (scripts/provision.sh)"; exit 1; }
if ldd "$busybox" >/dev/null 2>&1; then log "$busybox is dynamically linked — install busybox-static (scripts/provision.sh)"; exit 1; fi

work=$(mktemp -d "${TMPDIR:-/tmp}/vipguard-initramfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{bin,dev,proc,sys,lower,upper,newroot,modules}
cp "$busybox" "$work/bin/busybox"
ln -s busybox "$work/bin/sh"
install -m 0755 "$here/init" "$work/init"

# virtio_rng: TCG has no entropy source of its own; without it getrandom() (node calls it at start) can stall on 5.10.
# 6.12 builds virtio_pci and virtio_console in; modprobe reports those as "builtin".
: >"$work/modules/order"
for mod in virtio_pci virtio_console virtio_rng 9pnet_virtio 9p overlay; do
  modprobe -d "$kdir/root" -S "$release" --show-depends "$mod" ||
    { log "module $mod not found for $release"; exit 1; }
done | awk '$1 == "insmod" { print $2 }' | awk '!seen[$0]++' | while read -r path; do
  base=${path##*/}
  case "$base" in
    # busybox insmod passes the file to init_module() as is; decompress here rather than rely on the kernel's
    # in-kernel decompression (6.12 has it, but only through finit_module with a flag busybox does not set).
    *.ko.xz) xz -dc "$path" >"$work/modules/${base%.xz}"; base=${base%.xz} ;;
    *.ko.zst) zstd -qdc "$path" >"$work/modules/${base%.zst}"; base=${base%.zst} ;;
    *.ko) cp "$path" "$work/modules/$base" ;;
    *) log "unexpected module file $path"; exit 1 ;;
  esac
  echo "$base" >>"$work/modules/order"
done

tmp="$out.tmp.$$"
(cd "$work" && find . -print0 | cpio --null -o -H newc --owner=0:0 --quiet | gzip -1) >"$tmp"
mv "$tmp" "$out"
log "built $out ($(du -h "$out" | cut -f1); modules: $(tr '\n' ' ' <"$work/modules/order"))"
