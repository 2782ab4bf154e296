// Where build outputs live relative to the compiled code (dist/src/common/paths.js).
import * as path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

export function bpfObjectPath(name: string): string {
  return process.env.VIPGUARD_BPF_DIR
    ? path.join(process.env.VIPGUARD_BPF_DIR, `${name}.bpf.o`)
    : path.join(REPO_ROOT, 'build', 'bpf', `${name}.bpf.o`);
}
