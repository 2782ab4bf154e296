// The demo's timeline plot: one self-contained HTML file with an inline SVG per run — a lane per backend, one
// mark per handshake attempt at its start time coloured by outcome, quarantines as shaded bands, the failure
// timeline as vertical markers, and the clients' slow or failed requests along the bottom.
import type { RunRecord } from './inside';

const COLORS: Record<string, string> = {
  established: '#2e7d32', refused: '#c62828', unanswered: '#ef6c00', unreachable: '#6a1b9a', abandoned: '#757575',
};
const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

function svg(run: RunRecord, duration: number): string {
  const W = 960, laneH = 46, left = 70, top = 24;
  const backends = [...new Set(run.attempts.map((a) => a.backend ?? '?'))].sort();
  const lanes = [...backends, 'clients'];
  const H = top + lanes.length * laneH + 30;
  const x = (t: number) => left + (Math.max(0, Math.min(duration, t)) / duration) * (W - left - 10);
  const y = (lane: string) => top + lanes.indexOf(lane) * laneH + laneH / 2;
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`];
  for (const q of run.quarantines) {
    const yy = y(q.backend) - laneH / 2 + 3;
    parts.push(`<rect x="${x(q.from)}" y="${yy}" width="${Math.max(2, x(q.to ?? duration) - x(q.from))}" height="${laneH - 6}" fill="#fff3cd" stroke="#e0c068"><title>quarantined ${q.from.toFixed(1)}–${(q.to ?? duration).toFixed(1)} s</title></rect>`);
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
    parts.push(`<circle cx="${x(a.at).toFixed(1)}" cy="${y(a.backend ?? '?') + (a.index ? 8 : 0)}" r="3" fill="${c}"><title>${a.outcome}${a.index ? ` (retransmit ${a.index})` : ''} ${a.ms.toFixed(0)} ms</title></circle>`);
  }
  for (const cl of run.clients) {
    const c = !cl.ok ? '#c62828' : cl.ms > 2000 ? '#ef6c00' : '#2e7d32';
    parts.push(`<rect x="${x(cl.at).toFixed(1)}" y="${y('clients') - 6}" width="2" height="12" fill="${c}"><title>${cl.ok ? `ok ${cl.ms.toFixed(0)} ms via ${cl.backend}` : `failed after ${cl.ms.toFixed(0)} ms: ${esc(cl.error ?? '')}`}</title></rect>`);
  }
  for (let t = 0; t <= duration; t += 5) parts.push(`<text x="${x(t) - 6}" y="${H - 8}" fill="#777">${t}s</text>`);
  parts.push('</svg>');
  return parts.join('');
}

export function renderHtml(runs: RunRecord[], subtitle: string): string {
  const duration = Math.max(...runs.flatMap((r) => [...r.clients.map((c) => c.at), ...r.steps.map((s) => s.at)]), 1) + 1;
  const legend = Object.entries(COLORS).map(([k, c]) => `<span style="color:${c}">● ${k}</span>`).join(' &nbsp; ');
  const sections = runs.map((r) => {
    const failed = r.clients.filter((c) => !c.ok).length;
    const slow = r.clients.filter((c) => c.ok && c.ms > 2000).length;
    return `<h2>${esc(r.name)}: ${r.clients.length} requests, ${failed} failed, ${slow} slower than 2 s</h2>${svg(r, duration)}`;
  });
  return `<!doctype html><html><head><meta charset="utf-8"><title>vipguard demo</title></head>
<body style="font-family:sans-serif;max-width:1000px;margin:20px auto">
<h1>vipguard demo — handshakes per backend</h1><p>${esc(subtitle)}. Each dot is one handshake attempt, at its start time
(lower row: retransmitted SYNs). Shaded: the backend was quarantined (weight 0). Bottom lane: each client request —
green ok, orange slower than 2 s, red failed.</p><p>${legend}</p>${sections.join('\n')}</body></html>\n`;
}
