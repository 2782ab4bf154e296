// Reading configuration straight out of the docs, so that what the lab and the benchmark run is exactly what a
// reader copies (the Prometheus rule files of docs/alerts.md and docs/fleet.md), not a copy that can drift.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from './paths';

/**
 * A YAML block of a page in docs/, exactly as written there: the ```yaml block whose first line is `firstLine`
 * (the rule files carry their path as a comment).
 */
export function docsYamlBlock(page: string, firstLine: string): string {
  const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs', page), 'utf8');
  const block = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]).find((b) => b.startsWith(`${firstLine}\n`));
  if (!block) throw new Error(`docs/${page} has no \`\`\`yaml block starting with "${firstLine}"`);
  return block;
}
