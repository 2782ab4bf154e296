// The receiver builds a host benchmark compares in one run: this tree, and an earlier revision built in a git
// worktree of its own (`--baseline REV`), so "before" and "after" share the machine, its load and the same minutes.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT } from '../common/paths';

export interface ReceiverBuild {
  /** how tables name it: `current`, `current, spans 1/10`, `baseline 226cda5` */
  label: string;
  /** the tree whose dist/src/cli/main.js runs */
  root: string;
  /** receiver.export.spanSampling, when the build has the setting */
  spanSampling?: number;
}

const git = (...args: string[]) => execFileSync('git', ['-C', REPO_ROOT, ...args], { encoding: 'utf8' }).trim();

/**
 * A worktree of `rev` beside the system's temporary files, built with its own `npm run build`; reused while its
 * build is complete. node_modules is this tree's (a symlink): a baseline whose dependencies differ from this tree's
 * may not build, and says so.
 */
export function prepareBaseline(rev: string, log: (l: string) => void): ReceiverBuild {
  let sha: string;
  try {
    sha = git('rev-parse', '--verify', `${rev}^{commit}`);
  } catch {
    throw new Error(`--baseline: '${rev}' is not a commit of ${REPO_ROOT}`);
  }
  const short = sha.slice(0, 7);
  const dir = path.join(os.tmpdir(), `vipguard-baseline-${short}`);
  const built = () => fs.existsSync(path.join(dir, 'dist/src/cli/main.js')) && fs.existsSync(path.join(dir, 'native/build/Release/vipguard_native.node'));
  if (!built()) {
    if (!fs.existsSync(path.join(dir, '.git'))) {
      try { git('worktree', 'prune'); } catch { /* nothing to prune */ }
      git('worktree', 'add', '--force', '--detach', dir, sha);
    }
    if (!fs.existsSync(path.join(dir, 'node_modules'))) fs.symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'node_modules'));
    const proto = path.join(REPO_ROOT, 'build/otlp-proto');
    if (fs.existsSync(proto) && !fs.existsSync(path.join(dir, 'build/otlp-proto'))) {
      fs.mkdirSync(path.join(dir, 'build'), { recursive: true });
      fs.cpSync(proto, path.join(dir, 'build/otlp-proto'), { recursive: true });
    }
    log(`baseline ${short}: building in ${dir}`);
    try {
      // Through npm, as `npm run build` here: npm's configuration (nodedir: where Node's headers are) reaches node-gyp.
      execFileSync('npm', ['run', '--silent', 'build'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 15 * 60_000 });
    } catch (e) {
      throw new Error(`--baseline ${rev}: its build failed in ${dir}: ${String((e as { stderr?: Buffer }).stderr ?? e).slice(-2000)}`);
    }
  }
  return { label: `baseline ${short}`, root: dir };
}

/** The builds of a host run: the baseline first (if any), then this tree at each span sampling ratio asked. */
export function receiverBuilds(o: { baseline?: string; spanSampling?: number[] }, log: (l: string) => void): ReceiverBuild[] {
  const builds: ReceiverBuild[] = o.baseline ? [prepareBaseline(o.baseline, log)] : [];
  for (const ratio of o.spanSampling ?? [1]) {
    builds.push({ label: ratio === 1 ? 'current' : `current, spans ${ratio}`, root: REPO_ROOT, spanSampling: ratio });
  }
  return builds;
}
