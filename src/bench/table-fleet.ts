// Fleet results → markdown (issue 17): one fleet-wide table (a row per system) and one per client host, every figure
// min / median / max over runs. Pure (unit-tested in test/unit/bench-fleet.test.ts).
import { markdownTable } from './markdown';
import { fmtMs, fmtNum, fmtSpread, type Sample, spread } from './stats';
import { FLEET, FLEET_SYSTEMS, type FleetRun, type FleetSystem } from './types';

const ms = (xs: Sample[]) => fmtSpread(spread(xs), fmtMs);
const num = (xs: Sample[], d = 0) => fmtSpread(spread(xs), (v) => fmtNum(v, d));

export const FLEET_SYSTEM_LABELS: Record<FleetSystem, string> = {
  ipvs: 'bare IPVS',
  vipguard: 'vipguard, each host alone',
  'vipguard-fleet': 'vipguard + fleet rule (central Prometheus)',
};

export function fleetIntro(failSec: number, rate: number, clientTimeoutMs: number, prometheus?: { scrapeS: number; evalS: number }): string {
  return `${FLEET.clients} client hosts (network namespaces c1–c${FLEET.clients}), each with its own IPVS service (rr, NAT) over the same ` +
    `three backends and, but for bare IPVS, its own vipguard; ${rate} connect/s from each host through its own VIP, each with a ` +
    `${clientTimeoutMs / 1000} s timeout. After the warm-up, b3 is black-holed (nft drop) for ${failSec} s, then restored. ` +
    `vipguard + fleet rule adds one central Prometheus scraping every host's receiver over mutual TLS and evaluating docs/fleet.md's rule` +
    `${prometheus ? ` (scrape ${prometheus.scrapeS} s, evaluation ${prometheus.evalS} s: the lab's; docs/fleet.md suggests 15 s, which adds up to 30 s to the fleet path)` : ''}, ` +
    'its alert delivered to every vipguard\'s /api/v2/alerts. Connects are counted across the fleet when started between injecting ' +
    'the failure and recovering it. first failure = the start of the first connect anywhere whose SYN went to b3 and that did not ' +
    'complete at once (a black hole answers nothing). weight 0 = b3 at weight 0 in that host\'s own IPVS table (/proc/PID/net/ip_vs ' +
    'every 25 ms); everywhere = in all of them. by fleet alert = hosts whose quarantine of b3 the fleet alert started (their log: ' +
    '`alertmanager VipguardBackendDownFleetWide`), the others by their own embedded rule. fleet alert active = its activeAt at ' +
    'Prometheus; applied = the vipguard logged the POST /api/v2/alerts that carried it. restore = b3 back in service for good after ' +
    'recovery (the drop\'s removal confirmed), on the last host; 0 = already back by then.';
}

export function fleetTable(runs: FleetRun[], kernel: string): string | undefined {
  const rows: string[][] = [];
  for (const system of FLEET_SYSTEMS) {
    const rs = runs.filter((r) => r.system === system && r.kernel === kernel);
    if (!rs.length) continue;
    const f = (k: 'rateAchieved' | 'connects' | 'failed' | 'slow2s' | 'bad' | 'landedOnDead' | 'weight0FirstMs' | 'weight0EverywhereMs' | 'byFleet' | 'restoreAllMs') =>
      rs.map((r) => r[k] as Sample);
    const fleetRule = rs.some((r) => r.alertActiveMs !== undefined);
    const alert = fleetRule ? ms(rs.map((r) => r.alertActiveMs ?? null)) : '—';
    const delivered = fleetRule ? ms(rs.map((r) => r.alertEverywhereMs ?? null)) : '—';
    rows.push([FLEET_SYSTEM_LABELS[system], String(rs.length), num(f('rateAchieved'), 2), num(f('connects')), num(f('failed')), num(f('slow2s')),
      num(f('bad')), num(f('landedOnDead')), ms(f('weight0FirstMs')), ms(f('weight0EverywhereMs')), alert, delivered,
      system === 'ipvs' ? '—' : num(f('byFleet')), ms(f('restoreAllMs'))]);
  }
  if (!rows.length) return undefined;
  return markdownTable(['system', 'runs', 'connects/s per host', 'connects while failing (fleet)', 'failed', '> 2 s', 'failed or > 2 s',
    'landed on b3', 'first failure → weight 0, first host', 'first failure → weight 0 everywhere', 'first failure → fleet alert active',
    'first failure → fleet alert applied on every host',
    `hosts taken out by the fleet alert (of ${FLEET.clients})`, 'restore, last host'], rows);
}

/** Per host: its own connects and its own table, and which input took b3 out there in each run ("local, fleet, local"). */
export function fleetClientTable(runs: FleetRun[], kernel: string): string | undefined {
  const rows: string[][] = [];
  for (const system of FLEET_SYSTEMS) {
    const rs = runs.filter((r) => r.system === system && r.kernel === kernel).sort((a, b) => a.run - b.run);
    const names = [...new Set(rs.flatMap((r) => r.clients.map((c) => c.name)))].sort();
    for (const name of names) {
      const cs = rs.map((r) => r.clients.find((c) => c.name === name)).filter((c) => c !== undefined);
      const f = (k: 'connects' | 'failed' | 'slow2s' | 'bad' | 'landedOnDead' | 'weight0Ms' | 'alertReceivedMs' | 'restoreMs') => cs.map((c) => (c[k] ?? null) as Sample);
      const firstHere = rs.filter((r) => r.firstFailureClient === name).length;
      rows.push([FLEET_SYSTEM_LABELS[system], name, num(f('connects')), num(f('failed')), num(f('slow2s')), num(f('bad')), num(f('landedOnDead')),
        `${firstHere} of ${rs.length}`, ms(f('weight0Ms')), ms(f('alertReceivedMs')), system === 'ipvs' ? '—' : cs.map((c) => c.quarantinedBy ?? 'none').join(', '),
        ms(f('restoreMs'))]);
    }
  }
  if (!rows.length) return undefined;
  return markdownTable(['system', 'host', 'connects while failing', 'failed', '> 2 s', 'failed or > 2 s', 'landed on b3', 'first failure here',
    'first failure (anywhere) → weight 0 here', 'first failure → fleet alert applied here', 'taken out by (per run)', 'restore'], rows);
}
