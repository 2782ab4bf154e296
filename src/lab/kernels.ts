// The lab's kernel matrix: which Debian kernels, where they come from, and where they are cached.
//
// Kernels are fetched by scripts/lab/fetch-kernel.sh (apt through a private configuration, so apt verifies
// signatures and hashes) from the Debian mirror this machine's apt uses (apt-mirrors.ts) and booted with an initramfs built by scripts/lab/build-initramfs.sh. Both land in
// ${VIPGUARD_CACHE:-~/.cache/vipguard}/kernels/<name>/, outside the repo, and are reused: a cached kernel needs no
// network at all.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { debianMirrors } from './apt-mirrors';

export const LAB_KERNELS = ['5.10', '6.1', '6.12'] as const;
export type LabKernelName = (typeof LAB_KERNELS)[number];

interface KernelSpec {
  /** Upstream series; the image package is linux-image-<abi>.*-amd64. */
  abi: string;
  /** Suites of the Debian archive and of its security archive, for the private sources.list (component main). */
  suites: string[];
  securitySuites: string[];
}

const SPECS: Record<LabKernelName, KernelSpec> = {
  // bullseye's own 5.10 is frozen at its last point release; the newer 5.10 builds are in bullseye-security.
  '5.10': { abi: '5.10', suites: ['bullseye'], securitySuites: ['bullseye-security'] },
  '6.1': { abi: '6.1', suites: ['bookworm'], securitySuites: [] },
  '6.12': { abi: '6.12', suites: ['trixie'], securitySuites: [] },
};

/** "URI SUITE" pairs for fetch-kernel.sh, from the mirrors this machine's apt uses (or the overrides). */
export function kernelSources(name: LabKernelName, env = process.env, aptRoot = '/'): { mirror: string; sources: string[] } {
  const spec = SPECS[name];
  const m = debianMirrors({ security: spec.securitySuites.length > 0 }, env, aptRoot);
  return {
    mirror: m.debian,
    sources: [...spec.suites.map((s) => `${m.debian} ${s}`), ...spec.securitySuites.map((s) => `${m.security} ${s}`)],
  };
}

export function isLabKernel(name: string): name is LabKernelName {
  return (LAB_KERNELS as readonly string[]).includes(name);
}

/** The repository root, from dist/src/lab/ (compiled) or src/lab/ (ts-node style). */
export function repoRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'scripts', 'lab'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error(`locating the vipguard repository from ${__dirname}: no package.json with scripts/lab/ above it`);
}

export function cacheRoot(): string {
  return process.env.VIPGUARD_CACHE || path.join(os.homedir(), '.cache', 'vipguard');
}

export interface PreparedKernel {
  name: LabKernelName;
  /** uname -r inside the guest, e.g. 6.1.0-50-amd64 */
  release: string;
  /** Debian package and version it came from */
  packageName: string;
  packageVersion: string;
  /** dpkg -x of the package: boot/, lib/modules/<release>/ */
  tree: string;
  /** What qemu boots: the uncompressed ELF (PVH entry) when it could be extracted, else the bzImage. */
  kernelImage: string;
  initrd: string;
}

export interface PrepareOptions {
  /** Progress lines (fetching, building). */
  log?: (line: string) => void;
}

/**
 * Makes sure kernel `name` is unpacked and has an up-to-date initramfs, fetching it on first use.
 * Throws with the script's own explanation (e.g. the archive is unreachable) when that fails.
 */
export async function prepareKernel(name: LabKernelName, opts: PrepareOptions = {}): Promise<PreparedKernel> {
  const log = opts.log ?? (() => {});
  const dir = path.join(cacheRoot(), 'kernels', name);
  const manifestPath = path.join(dir, 'manifest.env');
  const scripts = path.join(repoRoot(), 'scripts', 'lab');

  if (!fs.existsSync(manifestPath)) {
    const { mirror, sources } = kernelSources(name);
    log(`fetching Debian kernel ${name} into ${dir}`);
    const args = [path.join(scripts, 'fetch-kernel.sh'), '--name', name, '--abi', SPECS[name].abi, '--dest', dir, '--mirror', mirror];
    for (const s of sources) args.push('--source', s);
    await runScript('bash', args, log, `fetching kernel ${name}`);
  }

  const manifest = parseManifest(fs.readFileSync(manifestPath, 'utf8'));
  const release = manifest.get('release');
  if (!release) throw new Error(`reading ${manifestPath}: no release= line — delete ${dir} and run again to refetch`);
  const tree = path.join(dir, 'root');
  const vmlinuz = path.join(tree, 'boot', `vmlinuz-${release}`);
  if (!fs.existsSync(vmlinuz)) throw new Error(`kernel ${name}: ${vmlinuz} is missing — delete ${dir} to refetch`);

  // Booting the uncompressed ELF through PVH skips the bzImage decompressor, ~4 s under TCG.
  const vmlinux = path.join(dir, 'vmlinux');
  if (!fs.existsSync(vmlinux)) {
    try {
      await runScript('bash', [path.join(scripts, 'extract-vmlinux.sh'), vmlinuz, vmlinux], log, `extracting vmlinux of ${name}`);
    } catch (err) {
      log(`${(err as Error).message} — booting the compressed image instead (about 4 s slower)`);
    }
  }

  // Rebuild the initramfs whenever what goes into it changed (its init, its builder, busybox, the kernel).
  const initrd = path.join(dir, 'initramfs.cpio.gz');
  const stampPath = path.join(dir, 'initramfs.stamp');
  const stamp = initramfsStamp(scripts, manifest.get('sha256') ?? release);
  const current = fs.existsSync(stampPath) ? fs.readFileSync(stampPath, 'utf8').trim() : '';
  if (current !== stamp || !fs.existsSync(initrd)) {
    log(`building the initramfs for ${release}`);
    await runScript('bash', [path.join(scripts, 'build-initramfs.sh'), dir, initrd], log, `building the initramfs of ${name}`);
    fs.writeFileSync(stampPath, stamp + '\n');
  }

  return {
    name,
    release,
    packageName: manifest.get('package') ?? '?',
    packageVersion: manifest.get('version') ?? '?',
    tree,
    kernelImage: fs.existsSync(vmlinux) ? vmlinux : vmlinuz,
    initrd,
  };
}

function parseManifest(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) m.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return m;
}

function initramfsStamp(scripts: string, kernelId: string): string {
  const h = createHash('sha256');
  for (const f of ['init', 'build-initramfs.sh']) h.update(fs.readFileSync(path.join(scripts, f)));
  try {
    const st = fs.statSync('/bin/busybox');
    h.update(`${st.size}:${st.mtimeMs}`);
  } catch {
    // build-initramfs.sh reports the missing busybox with what to install.
  }
  h.update(kernelId);
  return h.digest('hex');
}

function runScript(cmd: string, args: string[], log: (line: string) => void, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const onData = (buf: Buffer) => {
      for (const line of buf.toString('utf8').split('\n')) {
        if (!line) continue;
        tail.push(line);
        if (tail.length > 20) tail.shift();
        log(line);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (err) => reject(new Error(`${what}: cannot run ${cmd}: ${err.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else {
        const last = tail.length ? tail[tail.length - 1] : '';
        reject(new Error(`${what} failed (${signal ?? `exit ${code}`}): ${last}`));
      }
    });
  });
}
