// The demo's timeline plot: one self-contained HTML file with an inline SVG per run — a lane per backend, one
// mark per handshake attempt (dot) and per UDP exchange (square) at its start time coloured by outcome, quarantines
// as shaded bands, the failure timeline as vertical markers, and along the bottom every HTTP request and every DNS
// lookup.
import type { ClientResult, RunRecord } from './inside';

const COLORS: Record<string, string> = {
  established: '#2e7d32', refused: '#c62828', unanswered: '#ef6c00', unreachable: '#6a1b9a', abandoned: '#757575',
};
/** A UDP exchange's outcome in the handshake's colours (answered is a DNS flow's established). */
const exchangeColor = (outcome: string) => COLORS[outcome === 'answered' ? 'established' : outcome] ?? '#000';
const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

function svg(run: RunRecord, duration: number): string {
  const W = 960, laneH = 46, left = 70, top = 24;
  const backends = [...new Set([...run.attempts, ...run.exchanges].map((a) => a.backend ?? '?'))].sort();
  const lanes = [...backends, 'http', 'dns'];
  const H = top + lanes.length * laneH + 30;
  const x = (t: number) => left + (Math.max(0, Math.min(duration, t)) / duration) * (W - left - 10);
  const y = (lane: string) => top + lanes.indexOf(lane) * laneH + laneH / 2;
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`];
  // HTTP (weight 0): the lane's upper half; DNS (removed): its lower half.
  for (const q of run.quarantines) {
    const udp = q.protocol === 'udp';
    const yy = y(q.backend) - laneH / 2 + 3 + (udp ? (laneH - 6) / 2 : 0);
    parts.push(`<rect x="${x(q.from)}" y="${yy}" width="${Math.max(2, x(q.to ?? duration) - x(q.from))}" height="${(laneH - 6) / 2}" fill="${udp ? '#dbeafe' : '#fff3cd'}" stroke="${udp ? '#93c5fd' : '#e0c068'}"><title>${udp ? 'removed from DNS' : 'HTTP weight 0'} ${q.from.toFixed(1)}–${(q.to ?? duration).toFixed(1)} s</title></rect>`);
  }
  for (const s of run.steps) {
    parts.push(`<line x1="${x(s.at)}" x2="${x(s.at)}" y1="${top - 6}" y2="${H - 24}" stroke="#999" stroke-dasharray="4 3"/>`);
    parts.push(`<text x="${x(s.at) + 3}" y="${top - 10}" fill="#555">${esc(s.label)}</text>`);
  }
  for (const lane of lanes) {
    parts.push(`<text x="6" y="${y(lane) + 4}">${esc(lane)}</text><line x1="${left}" x2="${W - 10}" y1="${y(lane)}" y2="${y(lane)}" stroke="#eee"/>`);
  }
  for (const a of run.attempts) {
    const c = COLORS[a.outcome] ?? '#000';
    parts.push(`<circle cx="${x(a.at).toFixed(1)}" cy="${y(a.backend ?? '?') - 6 + (a.index ? 8 : 0)}" r="3" fill="${c}"><title>HTTP handshake ${a.outcome}${a.index ? ` (retransmit ${a.index})` : ''} ${a.ms.toFixed(0)} ms</title></circle>`);
  }
  for (const e of run.exchanges) {
    parts.push(`<rect x="${(x(e.at) - 2.5).toFixed(1)}" y="${y(e.backend ?? '?') + 10}" width="5" height="5" fill="${exchangeColor(e.outcome)}"><title>DNS exchange ${e.outcome}${e.count > 1 ? ` ×${e.count}` : ''}</title></rect>`);
  }
  const results = (lane: string, rs: ClientResult[], what: string) => {
    for (const cl of rs) {
      const c = !cl.ok ? '#c62828' : cl.ms > 2000 ? '#ef6c00' : '#2e7d32';
      parts.push(`<rect x="${x(cl.at).toFixed(1)}" y="${y(lane) - 6}" width="2" height="12" fill="${c}"><title>${what} ${cl.ok ? `ok ${cl.ms.toFixed(0)} ms via ${cl.backend}` : `failed after ${cl.ms.toFixed(0)} ms: ${esc(cl.error ?? '')}`}</title></rect>`);
    }
  };
  results('http', run.clients, 'request');
  results('dns', run.lookups, 'lookup');
  for (let t = 0; t <= duration; t += 5) parts.push(`<text x="${x(t) - 6}" y="${H - 8}" fill="#777">${t}s</text>`);
  parts.push('</svg>');
  return parts.join('');
}

export function renderHtml(runs: RunRecord[], subtitle: string): string {
  const duration = Math.max(...runs.flatMap((r) => [...r.clients.map((c) => c.at), ...r.lookups.map((c) => c.at), ...r.steps.map((s) => s.at)]), 1) + 1;
  const legend = Object.entries(COLORS).map(([k, c]) => `<span style="color:${c}">● ${k}</span>`).join(' &nbsp; ');
  const sections = runs.map((r) => {
    const counts = (rs: ClientResult[]) => `${rs.filter((c) => !c.ok).length} failed, ${rs.filter((c) => c.ok && c.ms > 2000).length} slower than 2 s`;
    return `<h2>${esc(r.name)}: ${r.clients.length} HTTP requests, ${counts(r.clients)}; ${r.lookups.length} DNS lookups, ${counts(r.lookups)}</h2>${svg(r, duration)}`;
  });
  return `<!doctype html><html><head><meta charset="utf-8"><title>vipguard demo</title></head>
<body style="font-family:sans-serif;max-width:1000px;margin:20px auto">
<h1>vipguard demo — handshakes and DNS flows per backend</h1><p>${esc(subtitle)}. Each dot is one HTTP handshake
attempt, at its start time (a row lower: retransmitted SYNs); each square below them one DNS exchange the receiver
classified (answered, unanswered past its deadline, refused by an ICMP port unreachable). Shaded: the backend was
quarantined — yellow, upper half: HTTP at weight 0; blue, lower half: removed from the DNS service. Bottom lanes:
each HTTP request and each DNS lookup — green ok, orange slower than 2 s, red failed.</p><p>${legend}</p>${sections.join('\n')}</body></html>\n`;
}
