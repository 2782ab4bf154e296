// The flags vipguard's launcher gives Node (/usr/bin/vipguard, written by scripts/package.sh; the DaemonSet runs it
// too), and the benchmarks give the process they measure, so what is measured is what ships.
//
// --max-semi-space-size=4 (MB): V8 sizes its young generation up to 3 × 16 MB on 64-bit hosts when allocation is
// fast, and the receiver allocates per kernel event. Capped at 4 MB semi-spaces, the receiver's peak RSS at 60k
// events/s fell by ~25 MB (161–164 → 130–138 MB, this machine, 2026-12-06) with no measurable change in CPU per
// event (docs/benchmarks.md, Receiver capacity).
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];
