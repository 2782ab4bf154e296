// The one markdown table writer of the benchmark's reports (table.ts, table-restarts.ts, table-udp.ts). Pure.

/** A markdown table; the first column left-aligned and the others right unless `align` says otherwise. */
export function markdownTable(headers: string[], rows: string[][], align?: ('l' | 'r')[]): string {
  const a = align ?? headers.map((_, i) => (i === 0 ? 'l' : 'r'));
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const line = (cells: string[]) => `| ${cells.map(esc).join(' | ')} |`;
  return [line(headers), `|${a.map((x) => (x === 'l' ? ':---' : '---:')).join('|')}|`, ...rows.map(line)].join('\n');
}
