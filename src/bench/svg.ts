// Plots as hand-written SVG (no plotting dependency): the failover timelines — every connect as a dot, time since
// the failure on x, connect latency on a log y axis, one panel per system — the capacity steps and the latency CDFs.
// Pure: data in, SVG text out.
import { ALL_SYSTEMS, LATENCY_MODES, LATENCY_TARGET_MS, type LatencyMode, SYSTEM_LABELS, type CapacityStep, type FailoverRun, type FailoverScenario, type LatencyRun } from './types';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const f1 = (x: number) => (Math.round(x * 10) / 10).toString();

interface Frame { x: number; y: number; w: number; h: number }

function text(x: number, y: number, s: string, o: { size?: number; anchor?: string; color?: string; weight?: string } = {}): string {
  return `<text x="${f1(x)}" y="${f1(y)}" font-size="${o.size ?? 11}" text-anchor="${o.anchor ?? 'start'}" fill="${o.color ?? '#222'}"` +
    `${o.weight ? ` font-weight="${o.weight}"` : ''}>${esc(s)}</text>`;
}

/** A round axis step (1, 2 or 5 × 10^n) giving about `ticks` ticks up to `max`. */
export function niceStep(max: number, ticks = 5): number {
  const raw = Math.max(max, 1e-9) / ticks;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

const kLabel = (v: number) => (v >= 1000 ? `${Math.round(v / 100) / 10}k` : String(Math.round(v)));

function svg(w: number, h: number, body: string[]): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif">\n` +
    `<rect width="${w}" height="${h}" fill="white"/>\n${body.join('\n')}\n</svg>\n`;
}

/** Log-scale y mapping for latencies in ms. */
function logY(fr: Frame, lo: number, hi: number) {
  const a = Math.log10(lo);
  const b = Math.log10(hi);
  return (v: number) => fr.y + fr.h - ((Math.log10(Math.min(hi, Math.max(lo, v))) - a) / (b - a)) * fr.h;
}

const COLORS = { ok: '#7a8a99', rescued: '#e08a00', failed: '#d62728', kernelDown: '#1f77b4', recover: '#2ca02c' };

export function failoverSvg(runs: FailoverRun[], scenario: FailoverScenario, kernel: string): string | undefined {
  const systems = ALL_SYSTEMS.filter((s) => runs.some((r) => r.scenario === scenario && r.system === s && r.kernel === kernel));
  if (!systems.length) return undefined;
  const W = 960;
  const panelH = 150;
  const top = 62;
  const left = 70;
  const H = top + systems.length * (panelH + 40) + 30;
  const body: string[] = [];
  const shown = (s: string) => runs.filter((r) => r.scenario === scenario && r.system === s && r.kernel === kernel).sort((a, b) => a.run - b.run)[0];
  const first = shown(systems[0])!;
  const xMin = -3000;
  const xMax = Math.max(...systems.map((s) => shown(s)!.recoveredAtMs)) + 12_000;
  body.push(text(W / 2, 22, `${{ blackout: 'Blackout', refusal: 'Refusal', far: 'Far backend' }[scenario]} on ${kernel}: every connect (run 1 of each system), ` +
    `${first.rateTarget}/s, client timeout ${first.clientTimeoutMs / 1000} s`, { size: 14, anchor: 'middle', weight: 'bold' }));
  body.push(text(W / 2, 38, 'grey: connected · orange: its SYN went to the failing backend, and it connected in the end (rescued or recovered) · red: failed', { size: 10, anchor: 'middle' }));
  body.push(text(W / 2, 51, 'red dashes: failure injected · blue band: failing destination out of service in the kernel · green line: backend recovered', { size: 10, anchor: 'middle' }));
  systems.forEach((s, i) => {
    const r = shown(s)!;
    const fr: Frame = { x: left, y: top + i * (panelH + 40) + 20, w: W - left - 20, h: panelH };
    const X = (t: number) => fr.x + ((Math.min(xMax, Math.max(xMin, t)) - xMin) / (xMax - xMin)) * fr.w;
    const Y = logY(fr, 1, 20_000);
    body.push(text(fr.x, fr.y - 6, `${SYSTEM_LABELS[s]} — failed ${r.failed}, > 2 s ${r.slow2s}, stop ${fmt(r.stopKernelMs)} (kernel)`, { size: 12, weight: 'bold' }));
    body.push(`<rect x="${fr.x}" y="${fr.y}" width="${fr.w}" height="${fr.h}" fill="#fafafa" stroke="#ccc"/>`);
    // Dead destination out of service: weight <= 0 intervals.
    let downAt: number | undefined;
    const bands: [number, number][] = [];
    for (const [t, w] of r.kernelWeights) {
      if (w <= 0 && downAt === undefined) downAt = t;
      if (w > 0 && downAt !== undefined) { bands.push([downAt, t]); downAt = undefined; }
    }
    if (downAt !== undefined) bands.push([downAt, xMax]);
    for (const [a, b] of bands) body.push(`<rect x="${f1(X(a))}" y="${fr.y}" width="${f1(Math.max(1, X(b) - X(a)))}" height="${fr.h}" fill="${COLORS.kernelDown}" opacity="0.12"/>`);
    for (const v of [1, 10, 100, 1000, 10_000]) {
      body.push(`<line x1="${fr.x}" x2="${fr.x + fr.w}" y1="${f1(Y(v))}" y2="${f1(Y(v))}" stroke="#e4e4e4"/>`);
      body.push(text(fr.x - 6, Y(v) + 4, v >= 1000 ? `${v / 1000} s` : `${v} ms`, { size: 10, anchor: 'end' }));
    }
    for (let t = Math.ceil(xMin / 5000) * 5000; t <= xMax; t += 5000) {
      body.push(`<line x1="${f1(X(t))}" x2="${f1(X(t))}" y1="${fr.y}" y2="${fr.y + fr.h}" stroke="#eee"/>`);
      body.push(text(X(t), fr.y + fr.h + 13, `${t / 1000} s`, { size: 10, anchor: 'middle' }));
    }
    body.push(`<line x1="${f1(X(0))}" x2="${f1(X(0))}" y1="${fr.y}" y2="${fr.y + fr.h}" stroke="${COLORS.failed}" stroke-dasharray="4 3"/>`);
    body.push(`<line x1="${f1(X(r.recoveredAtMs))}" x2="${f1(X(r.recoveredAtMs))}" y1="${fr.y}" y2="${fr.y + fr.h}" stroke="${COLORS.recover}" stroke-width="1.5"/>`);
    for (const [at, lat, outcome, dead] of r.timeline) {
      const color = outcome !== 0 ? COLORS.failed : dead ? COLORS.rescued : COLORS.ok;
      body.push(`<circle cx="${f1(X(at))}" cy="${f1(Y(Math.max(1, lat)))}" r="2" fill="${color}" opacity="0.75"/>`);
    }
  });
  body.push(text(W / 2, H - 8, 'time since the failure was injected', { size: 11, anchor: 'middle' }));
  return svg(W, H, body);
}

function fmt(v: number | 'never' | null): string {
  return v === null ? '—' : v === 'never' ? 'never' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`;
}

export function capacitySvg(steps: CapacityStep[]): string | undefined {
  if (!steps.length) return undefined;
  const W = 720;
  const H = 380;
  const fr: Frame = { x: 80, y: 50, w: W - 160, h: H - 110 };
  const stepX = niceStep(Math.max(...steps.map((s) => s.connRate * 5), 1));
  const stepY = niceStep(Math.max(...steps.map((s) => s.eventRate), 1));
  const stepC = niceStep(Math.max(...steps.map((s) => (Number.isFinite(s.cpuPer10k) ? s.cpuPer10k : 0)), 1));
  const maxX = Math.ceil(Math.max(...steps.map((s) => s.connRate * 5), 1) / stepX) * stepX;
  const maxY = Math.ceil(Math.max(...steps.map((s) => s.eventRate), 1) / stepY) * stepY;
  const maxC = Math.ceil(Math.max(...steps.map((s) => (Number.isFinite(s.cpuPer10k) ? s.cpuPer10k : 0)), 1) / stepC) * stepC;
  const X = (v: number) => fr.x + (v / maxX) * fr.w;
  const Y = (v: number) => fr.y + fr.h - (v / maxY) * fr.h;
  const Yc = (v: number) => fr.y + fr.h - (v / maxC) * fr.h;
  const body: string[] = [
    text(W / 2, 22, 'Receiver capacity (host, loopback churn): events ingested vs offered', { size: 14, anchor: 'middle', weight: 'bold' }),
    text(W / 2, 38, 'dots: events/s ingested (red ring: events were lost) · squares: CPU ms per 10k events (right axis)', { size: 10, anchor: 'middle' }),
    `<rect x="${fr.x}" y="${fr.y}" width="${fr.w}" height="${fr.h}" fill="#fafafa" stroke="#ccc"/>`,
    `<line x1="${X(0)}" y1="${Y(0)}" x2="${f1(X(Math.min(maxX, maxY)))}" y2="${f1(Y(Math.min(maxX, maxY)))}" stroke="#bbb" stroke-dasharray="4 3"/>`,
  ];
  for (let v = 0; v <= maxX + 1e-9; v += stepX) body.push(text(X(v), fr.y + fr.h + 15, kLabel(v), { size: 10, anchor: 'middle' }));
  for (let v = 0; v <= maxY + 1e-9; v += stepY) {
    body.push(`<line x1="${fr.x}" x2="${fr.x + fr.w}" y1="${f1(Y(v))}" y2="${f1(Y(v))}" stroke="#eee"/>`);
    body.push(text(fr.x - 6, Y(v) + 4, kLabel(v), { size: 10, anchor: 'end' }));
  }
  for (let v = 0; v <= maxC + 1e-9; v += stepC) body.push(text(fr.x + fr.w + 6, Yc(v) + 4, kLabel(v), { size: 10 }));
  for (const s of steps) {
    const offered = s.connRate * 5;
    body.push(`<circle cx="${f1(X(offered))}" cy="${f1(Y(s.eventRate))}" r="4" fill="#1f77b4" stroke="${s.lost ? COLORS.failed : 'none'}" stroke-width="2"/>`);
    if (Number.isFinite(s.cpuPer10k)) body.push(`<rect x="${f1(X(offered) - 3)}" y="${f1(Yc(s.cpuPer10k) - 3)}" width="6" height="6" fill="#e08a00"/>`);
  }
  body.push(text(fr.x + fr.w / 2, H - 30, 'events/s offered (connections/s × 5 state changes)', { size: 11, anchor: 'middle' }));
  body.push(text(20, fr.y + fr.h / 2, 'events/s ingested', { size: 11, anchor: 'middle' }).replace('<text', `<text transform="rotate(-90 20 ${f1(fr.y + fr.h / 2)})"`));
  body.push(text(W - 14, fr.y + fr.h / 2, 'CPU ms / 10k events', { size: 11, anchor: 'middle' }).replace('<text', `<text transform="rotate(90 ${W - 14} ${f1(fr.y + fr.h / 2)})"`));
  return svg(W, H, body);
}

export function latencySvg(runs: LatencyRun[], kernel: string): string | undefined {
  const modes = LATENCY_MODES.filter((m) => runs.some((r) => r.mode === m && r.kernel === kernel && r.independentMs.length));
  if (!modes.length) return undefined;
  const W = 720;
  const H = 360;
  const fr: Frame = { x: 70, y: 56, w: W - 100, h: H - 106 };
  const all = modes.flatMap((m) => runs.filter((r) => r.mode === m && r.kernel === kernel).flatMap((r) => r.independentMs));
  const lo = Math.max(0.5, Math.min(...all));
  const hi = Math.max(...all, 10) * 1.2;
  const X = (v: number) => fr.x + ((Math.log10(Math.max(lo, v)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * fr.w;
  const Y = (q: number) => fr.y + fr.h - q * fr.h;
  const body: string[] = [
    text(W / 2, 22, `Detection → weight 0 on ${kernel} (TCG): CDF over every sample`, { size: 14, anchor: 'middle', weight: 'bold' }),
    text(W / 2, 38, 'independent measurement: the client\'s ECONNREFUSED → first 1 ms poll of /proc/net/ip_vs showing weight 0', { size: 10, anchor: 'middle' }),
    `<rect x="${fr.x}" y="${fr.y}" width="${fr.w}" height="${fr.h}" fill="#fafafa" stroke="#ccc"/>`,
  ];
  for (const v of [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]) {
    if (v < lo || v > hi) continue;
    body.push(`<line x1="${f1(X(v))}" x2="${f1(X(v))}" y1="${fr.y}" y2="${fr.y + fr.h}" stroke="#eee"/>`);
    body.push(text(X(v), fr.y + fr.h + 14, v >= 1000 ? `${v / 1000} s` : `${v} ms`, { size: 10, anchor: 'middle' }));
  }
  for (const q of [0, 0.25, 0.5, 0.75, 0.9, 1]) {
    body.push(`<line x1="${fr.x}" x2="${fr.x + fr.w}" y1="${f1(Y(q))}" y2="${f1(Y(q))}" stroke="#eee"/>`);
    body.push(text(fr.x - 6, Y(q) + 4, String(q), { size: 10, anchor: 'end' }));
  }
  for (const [limit, label] of [[LATENCY_TARGET_MS['in-process'], `in-process target ${LATENCY_TARGET_MS['in-process']} ms`], [LATENCY_TARGET_MS.otlp, `OTLP and collector target ${LATENCY_TARGET_MS.otlp} ms`]] as const) {
    if (limit < lo || limit > hi) continue;
    body.push(`<line x1="${f1(X(limit))}" x2="${f1(X(limit))}" y1="${fr.y}" y2="${fr.y + fr.h}" stroke="#d62728" stroke-dasharray="4 3"/>`);
    body.push(text(X(limit) + 3, fr.y + fr.h - 6, label, { size: 9, color: '#d62728' }));
  }
  const colors: Record<LatencyMode, string> = { 'in-process': '#1f77b4', otlp: '#e08a00', collector: '#2ca02c' };
  modes.forEach((m, i) => {
    const xs = runs.filter((r) => r.mode === m && r.kernel === kernel).flatMap((r) => r.independentMs).sort((a, b) => a - b);
    const pts = xs.map((v, j) => `${f1(X(v))},${f1(Y((j + 1) / xs.length))}`);
    body.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${colors[m]}" stroke-width="2"/>`);
    body.push(text(fr.x + fr.w - 10, fr.y + fr.h - 40 + i * 16, `${m} (n=${xs.length})`, { size: 11, color: colors[m], weight: 'bold', anchor: 'end' }));
  });
  return svg(W, H, body);
}
