// The Debian packages the lab's package test installs (test/lab/package.test.ts): this tree's, built by
// scripts/package.sh twice — as package.json's version and as a later one — so that installing, upgrading while
// vipguard runs, and purging are done by the VM's own dpkg. Built on the host (the VM has no network for npm).
// Both hold the same code: the upgrade under test is the package's mechanics (maintainer scripts, files replaced
// under a running daemon, the handover restart), not a change between two releases.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT, packageVersion } from '../common/paths';

export const LAB_DEB_DIR = path.join(REPO_ROOT, 'build', 'deb-lab');

export interface LabPackages {
  from: { version: string; file: string };
  to: { version: string; file: string };
}

export function labPackages(): LabPackages {
  const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
  const at = (version: string) => ({ version, file: path.join(LAB_DEB_DIR, `vipguard_${version}_${arch}.deb`) });
  const v = packageVersion();
  return { from: at(v), to: at(`${v}+upgrade1`) };
}

/** Builds both (a few seconds each); `npm test` does this before the lab stage. */
export function buildLabPackages(log: (line: string) => void): LabPackages {
  const p = labPackages();
  fs.rmSync(LAB_DEB_DIR, { recursive: true, force: true });
  for (const { version } of [p.from, p.to]) {
    execFileSync(path.join(REPO_ROOT, 'scripts', 'package.sh'), ['--version', version, '--out', LAB_DEB_DIR], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  log(`packages ${p.from.version} and ${p.to.version} in ${path.relative(REPO_ROOT, LAB_DEB_DIR)}/`);
  return p;
}
