#!/usr/bin/env bash
# What docs/fleet.md's rule costs a central Prometheus over a large fleet (docs/fleet.md, "Scale"): synthetic series
# of N clients × B backends (15 s apart, two minutes, two of the clients failing on the last backend) backfilled with
# `promtool tsdb create-blocks-from openmetrics`, then each recording rule's expression, read from docs/fleet.md,
# timed through Debian's Prometheus query API at the end of that data (5 runs each). A rule reading an earlier
# rule's record gets that expression inline (backfilled data has no records), so it costs a little more than it
# would in a rule group.
#
#   scripts/fleet-rulecost.sh [N] [B]       default: 10000 clients, 3 backends
#
# Each client and backend has two series (established, unanswered); vipguard exports five outcomes, three of them
# usually 0 throughout. Loopback only; stops what it starts by PID; removes its temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-10000}
B=${2:-3}
DIR=$(mktemp -d /tmp/vipguard-rulecost.XXXXXX)
PROM=""
cleanup() {
  if [[ -n $PROM ]]; then kill "$PROM" 2>/dev/null || true; wait "$PROM" 2>/dev/null || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT
for tool in /usr/bin/prometheus /usr/bin/promtool; do
  [[ -x $tool ]] || { echo "fleet-rulecost: $tool missing — scripts/provision.sh installs Debian's prometheus" >&2; exit 1; }
done

END=$(($(date +%s) - 300))
node - "$N" "$B" "$END" "$DIR/series.om" <<'EOF'
const [n, b, end] = process.argv.slice(2, 5).map(Number);
const out = require('fs').createWriteStream(process.argv[5]);
const samples = 9;
out.write('# TYPE vipguard_connect_attempts counter\n');
for (let c = 0; c < n; c++) for (let k = 0; k < b; k++) for (const o of ['established', 'unanswered']) {
  const l = `vipguard_connect_attempts_total{instance="10.${(c >> 16) & 255}.${(c >> 8) & 255}.${c & 255}:9464",job="vipguard-receiver",` +
    `vipguard_service="web",network_peer_address="10.200.0.${k + 2}",network_peer_port="8080",vipguard_outcome="${o}"}`;
  for (let i = 0; i < samples; i++) {
    const failed = k === b - 1 && c < 2 && i >= samples - 2 ? 1 : 0;
    out.write(`${l} ${o === 'established' ? i * 15 : failed} ${end - (samples - 1 - i) * 15}\n`);
  }
}
out.end('# EOF\n');
EOF
promtool tsdb create-blocks-from openmetrics "$DIR/series.om" "$DIR/data" >/dev/null
rm "$DIR/series.om"

PORT=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
echo 'global: {}' >"$DIR/prometheus.yml"
/usr/bin/prometheus --config.file="$DIR/prometheus.yml" --storage.tsdb.path="$DIR/data" --web.listen-address="127.0.0.1:$PORT" \
  --log.level=warn >"$DIR/prometheus.log" 2>&1 &
PROM=$!
for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$PORT/-/ready" >/dev/null && break; sleep 0.2; done

node - "$PORT" "$END" "$N" "$B" <<'EOF'
const fs = require('fs');
const { parse } = require('yaml');
const [port, end, n, b] = process.argv.slice(2);
const doc = fs.readFileSync('docs/fleet.md', 'utf8');
const block = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]).find((x) => x.startsWith('# /etc/prometheus/rules/vipguard-fleet.yml\n'));
const rules = parse(block).groups.flatMap((g) => g.rules);
const records = new Map();
(async () => {
  let total = 0;
  for (const r of rules) {
    // In the group an alert reads the records, a few series per backend: inlined here it would time them again.
    if (!r.record) { console.log(`alert ${r.alert}: reads the records only, not timed`); continue; }
    let expr = r.expr;
    for (const [name, e] of records) expr = expr.split(name).join(`(${e})`);
    records.set(r.record, expr);
    const ms = [];
    let last;
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      last = await (await fetch(`http://127.0.0.1:${port}/api/v1/query?time=${end}&stats=all&query=${encodeURIComponent(expr)}`)).json();
      ms.push(performance.now() - t0);
      if (last.status !== 'success') throw new Error(`${r.record}: ${JSON.stringify(last)}`);
    }
    ms.sort((x, y) => x - y);
    total += ms[2];
    console.log(`${r.record}: median ${ms[2].toFixed(0)} ms (${ms.map((x) => x.toFixed(0)).join('/')}), ` +
      `${last.data.stats.samples.totalQueryableSamples} samples read, ${last.data.result.length} series out`);
  }
  console.log(`${n} clients × ${b} backends: the recording rules take ${total.toFixed(0)} ms of query time per evaluation (sum of medians)`);
})().catch((e) => { console.error(`fleet-rulecost: ${e.message}`); process.exit(1); });
EOF
