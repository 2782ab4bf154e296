#!/usr/bin/env bash
# Builds everything vipguard runs from: BPF objects (build/bpf/), the native addon (native/build/) and the
# TypeScript (dist/). Outputs are never committed. Incremental: make and node-gyp rebuild only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

make -s -C bpf OUT="$PWD/build/bpf"

# node-gyp configure once (it writes native/build/Makefile), then incremental builds.
if [[ ! -f native/build/Makefile || native/binding.gyp -nt native/build/Makefile ]]; then
  (cd native && ../node_modules/.bin/node-gyp configure --loglevel=error >/dev/null)
fi
(cd native && ../node_modules/.bin/node-gyp build --loglevel=error -j 2 >/tmp/vipguard-gyp.log 2>&1) ||
  { cat /tmp/vipguard-gyp.log >&2; echo "build: native addon failed" >&2; exit 1; }

node_modules/.bin/tsc -p tsconfig.json
chmod +x dist/src/cli/main.js 2>/dev/null || true

# The lab's client load generator (src/lab/load.ts runs it, also inside the lab VMs, which see this tree).
mkdir -p build
if [[ ! -x build/connload || src/lab/connload.c -nt build/connload ]]; then
  cc -O2 -Wall -Wextra -o build/connload src/lab/connload.c
fi
