#!/usr/bin/env bash
# Fleet fan-out: how long Debian's Prometheus takes to deliver one alert to N vipguards, and what it costs it
# (docs/fleet.md, "Scale"). One always-firing alert with the fleet alert's labels, N alertmanager targets found
# through file_sd, resent every 5 s; the N "vipguards" are one Node process on loopback answering 200 on a path per
# target (relabelled into __alerts_path__), so the figure is Prometheus's notifier, not N hosts' networks or TLS.
#
#   scripts/fleet-fanout.sh [N …]        default: 1000 10000; FANOUT_SECONDS per run (default 30)
#
# Prints per N every round's spread (first to last delivery), failed posts, and Prometheus's CPU seconds per round.
# Loopback only; everything it starts it stops by PID; its files go in a temporary directory it removes.
set -euo pipefail

PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}
SECONDS_PER_RUN=${FANOUT_SECONDS:-30}
[[ -x $PROMETHEUS ]] || { echo "fleet-fanout: $PROMETHEUS missing — scripts/provision.sh installs Debian's prometheus" >&2; exit 1; }
DIR=$(mktemp -d /tmp/vipguard-fanout.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

cat >"$DIR/sink.js" <<'EOF'
// N targets on one port: a round is complete when every path got the alert once.
const http = require('http');
const n = Number(process.argv[2]);
let first = 0, seen = new Set(), round = 0;
const srv = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const t = Date.now();
    if (!first) first = t;
    seen.add(req.url);
    if (seen.size === n) {
      console.log(`round ${++round} ${t - first}`);
      first = 0;
      seen = new Set();
    }
    res.writeHead(200).end();
  });
});
// Prometheus keeps connections to its alertmanagers: closing them idle (Node's default 5 s) races its next post.
srv.keepAliveTimeout = 120_000;
srv.listen(0, '127.0.0.1', () => console.log(`port ${srv.address().port}`));
EOF

free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
cpu_s() { awk '{ printf "%.1f", ($14 + $15) / '"$(getconf CLK_TCK)"' }' "/proc/$1/stat"; }

run() {
  local n=$1 d="$DIR/n$1"
  mkdir -p "$d"
  node "$d/../sink.js" "$n" >"$d/sink.log" 2>&1 &
  local sink=$!
  PIDS+=("$sink")
  local port=""
  for _ in $(seq 1 100); do port=$(sed -n 's/^port //p' "$d/sink.log"); [[ -n $port ]] && break; sleep 0.1; done
  [[ -n $port ]] || { echo "fleet-fanout: the sink did not start: $(cat "$d/sink.log")" >&2; exit 1; }
  node -e "console.log(JSON.stringify(Array.from({ length: $n }, (_, i) => ({ targets: ['127.0.0.1:$port'], labels: { client: 'c' + i } }))))" >"$d/vipguards.json"
  cat >"$d/rules.yml" <<EOF
groups:
  - name: fanout
    rules:
      - alert: VipguardBackendDownFleetWide
        expr: vector(2)
        labels: { vipguard_service: web, network_peer_address: 10.200.0.4, network_peer_port: "8080" }
        annotations: { summary: "10.200.0.4:8080 of web: 2 client hosts saw failed handshakes to it in the last minute" }
EOF
  cat >"$d/prometheus.yml" <<EOF
global: { evaluation_interval: 1s }
rule_files: [$d/rules.yml]
alerting:
  alertmanagers:
    - api_version: v2
      file_sd_configs: [{ files: [$d/vipguards.json] }]
      relabel_configs: [{ source_labels: [client], target_label: __alerts_path__, replacement: '/\$1/api/v2/alerts' }]
EOF
  "$PROMETHEUS" --config.file="$d/prometheus.yml" --storage.tsdb.path="$d/data" --web.listen-address="127.0.0.1:$(free_port)" \
    --rules.alert.resend-delay=5s --log.level=warn >"$d/prometheus.log" 2>&1 &
  local prom=$!
  PIDS+=("$prom")
  sleep "$SECONDS_PER_RUN"
  local cpu rounds failed
  cpu=$(cpu_s "$prom")
  kill "$prom" "$sink"
  wait "$prom" "$sink" 2>/dev/null || true
  rounds=$(grep -c '^round' "$d/sink.log" || true)
  failed=$(grep -c 'Error sending alert' "$d/prometheus.log" || true)
  echo "N=$n: $rounds rounds in ${SECONDS_PER_RUN} s; first to last delivery per round (ms): $(awk '/^round/ { printf "%s ", $3 }' "$d/sink.log");" \
    "failed posts $failed; Prometheus CPU ${cpu} s in all (startup included)"
}

for n in "${@:-1000 10000}"; do
  # shellcheck disable=SC2086
  for m in $n; do run "$m"; done
done
