#!/usr/bin/env bash
# Extracts the uncompressed ELF kernel from a bzImage:  scripts/lab/extract-vmlinux.sh VMLINUZ OUT
#
# Why: under TCG the bzImage's own decompressor (xz for 5.10/6.1, zstd for 6.12) takes ~4 s of an ~8 s boot.
# Debian builds with CONFIG_PVH=y, so qemu can boot the ELF directly through its PVH entry point instead. Same
# approach as the kernel's scripts/extract-vmlinux: find the compressed payload by its magic and decompress it.
set -euo pipefail
in="${1:?usage: extract-vmlinux.sh VMLINUZ OUT}"
out="${2:?usage: extract-vmlinux.sh VMLINUZ OUT}"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT

try() { # $1 = magic as printf escapes, $2 = decompressor
  local off
  for off in $(LC_ALL=C grep -obUaP "$1" "$in" | cut -d: -f1); do
    # The payload is followed by other data: the decompressor complains about it after writing the ELF.
    tail -c +"$((off + 1))" "$in" | $2 >"$tmp" 2>/dev/null || true
    if [[ -s "$tmp" ]] && [[ "$(head -c 4 "$tmp" | od -An -c | tr -d ' ')" == '177ELF' ]]; then
      mv "$tmp" "$out"
      return 0
    fi
  done
  return 1
}

try '\xFD7zXZ\x00' 'xz -dc' || try '\x28\xB5\x2F\xFD' 'zstd -dqc' || try '\x1F\x8B\x08' 'gzip -dc' ||
  { echo "extract-vmlinux: no xz, zstd or gzip payload with an ELF kernel in $in" >&2; exit 1; }
