// Where build outputs live relative to the compiled code (dist/src/common/paths.js).
import * as fs from 'node:fs';
import * as path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

/** Where `vipguard run` and `check-config` look without --config (the package installs one there). */
export const DEFAULT_CONFIG = '/etc/vipguard/vipguard.yaml';

/** package.json's version, for `vipguard --version`. */
export function packageVersion(): string {
  return (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

export function bpfObjectPath(name: string): string {
  return process.env.VIPGUARD_BPF_DIR
    ? path.join(process.env.VIPGUARD_BPF_DIR, `${name}.bpf.o`)
    : path.join(REPO_ROOT, 'build', 'bpf', `${name}.bpf.o`);
}
