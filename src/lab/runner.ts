// Runs one command on one lab kernel: a Debian kernel under qemu (TCG, no NIC) with this machine's filesystem
// shared read-only underneath a RAM overlay, or natively on the host ("host").
//
// Guest side: scripts/lab/init (stage 1, initramfs) and scripts/lab/guest-init.sh (stage 2). Three channels come
// back from the guest, each a pipe of ours that qemu writes to:
//   fd 1  serial console  kernel messages (filtered to the ones that matter, all kept in kernelLog)
//   fd 3  vipguard.out    the command's stdout+stderr, nothing else
//   fd 4  vipguard.ctl    stage 2's status lines: "modules loaded …", "modules failed …", "start UPTIME", "exit N"
// The exit status travels on its own channel so console noise can never garble or fake it.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { isLabKernel, prepareKernel, repoRoot, type LabKernelName, type PreparedKernel } from './kernels';

export type LabTarget = LabKernelName | 'host';
/** out: the command's output; lab: the runner's and stage 2's notes; kernel: kernel messages worth seeing. */
export type LabStream = 'out' | 'lab' | 'kernel';

/** Loaded before the command; what fails is reported, not fatal (ip_vs_mh, for one, is not in every kernel). */
export const DEFAULT_MODULES = [
  'ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_lc', 'ip_vs_wlc', 'ip_vs_sh', 'ip_vs_mh',
  'nf_conntrack', 'nf_tables', 'nft_chain_nat', 'veth',
  // the topology fixture's per-backend delay (prio bands + u32 filters + netem) and ss -i / inet_diag
  'sch_prio', 'sch_netem', 'cls_u32', 'inet_diag', 'tcp_diag',
];

export interface LabRunOptions {
  kernel: LabTarget;
  command: string[];
  /** Hard limit for the whole run, boot included; the VM is killed when it passes. Default 10 min. */
  timeoutMs?: number;
  /** Added to the command's environment (PATH, HOME, VIPGUARD_LAB_KERNEL and VIPGUARD_LAB_OUT are always set). */
  env?: Record<string, string>;
  /** Working directory of the command; default: the repository root. */
  cwd?: string;
  modules?: string[];
  /** Every line as it arrives (lines of the kernel stream only when they look like trouble). */
  onLine?: (line: string, stream: LabStream) => void;
  /** Copy what the command wrote to $VIPGUARD_LAB_OUT here after the run. */
  artifactsDir?: string;
  memoryMb?: number;
  cpus?: number;
  /** PID 1 that runs the command: the lab's busybox script (default), or systemd — the host's, booted to a target
   * of the command alone (scripts/lab/guest-init.sh), for tests of the systemd unit. */
  init?: 'busybox' | 'systemd';
}

export interface LabResult {
  kernel: LabTarget;
  /** uname -r of the kernel that ran the command */
  release: string;
  /** The command's exit status; null when it never reported one (timeout, VM died, lab failure). */
  exitCode: number | null;
  timedOut: boolean;
  /** qemu's start until the command started (boot, mounts, module loading); null if it never started. Fetching
   * and building a kernel on first use is not included, nor counted against the timeout. */
  bootMs: number | null;
  wallMs: number;
  /** The command's stdout and stderr, interleaved as written. */
  output: string;
  /** The whole serial console (empty for host). */
  kernelLog: string;
  modulesLoaded: string[];
  modulesFailed: string[];
  /** Why the lab itself failed, when it did (as opposed to the command failing). */
  error?: string;
}

export function labOk(r: LabResult): boolean {
  return r.exitCode === 0 && !r.timedOut && !r.error;
}

const DEFAULT_TIMEOUT_MS = 600_000;
const GUEST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

// Kernel console lines worth surfacing while tests run: oopses, BUG/WARN splats (whole, from "cut here" to "end
// trace"), IPVS and BPF complaints, OOM kills, hung tasks. Stage 2 sends everything to the console once the modules
// are in (console loglevel 8), so the full kernel log is in kernelLog and this picks what to show.
const KERNEL_TROUBLE =
  /Oops|BUG[: ]|WARNING|cut here|Call Trace|RIP:|Kernel panic|general protection|IPVS|ip_vs|bpf|BPF|verifier|segfault|hung_task|blocked for more than|Out of memory|Killed process|stage 1:/;
const SPLAT_START = /cut here|WARNING: CPU|BUG: |Oops|general protection|Kernel panic|Call Trace/;
const SPLAT_END = /---\[ end (trace|Kernel panic)/;
// Routine IPVS chatter (module load; 6.2+ starting and stopping estimator kthreads), and the host kmod 30's first
// try at a .ko.xz: it hands the compressed file to finit_module(), 6.12 rejects it with this line, then kmod
// decompresses it itself and the load succeeds.
const KERNEL_NOISE =
  /scheduler (un)?registered|ipvs loaded|ipvs unloaded|Connection hash table configured|Registered protocols|estimator thread|ests per chain|Invalid ELF header magic: != ELF|reboot: Power down/;

const liveVms = new Set<ChildProcess>();
const liveJobDirs = new Set<string>();
let exitHookInstalled = false;
function trackVm(child: ChildProcess): void {
  liveVms.add(child);
  child.once('close', () => liveVms.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // A VM must not outlive its runner (e.g. a test process that throws): kill the ones we started, by PID.
    process.once('exit', killAllVms);
  }
}

/** Kills every VM this process started (by PID); for signal handlers of a CLI that is about to exit. */
export function killAllVms(): void {
  for (const vm of liveVms) if (vm.pid) safeKill(vm.pid);
  for (const dir of liveJobDirs) fs.rmSync(dir, { recursive: true, force: true });
}

function safeKill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

export async function runInLab(opts: LabRunOptions): Promise<LabResult> {
  if (opts.command.length === 0) throw new Error('runInLab: command is empty — pass the program and its arguments');
  if (opts.kernel === 'host') return runOnHost(opts);
  if (!isLabKernel(opts.kernel)) throw new Error(`runInLab: unknown kernel '${opts.kernel}' — use 5.10, 6.1, 6.12 or host`);
  // Fetching and building (first use only) is not part of the run's time or timeout.
  const kernel = await prepareKernel(opts.kernel, { log: (l) => opts.onLine?.(l, 'lab') });
  return runInVm(kernel, opts);
}

async function runInVm(kernel: PreparedKernel, opts: LabRunOptions): Promise<LabResult> {
  const root = repoRoot();
  const stage2 = path.join(root, 'scripts', 'lab', 'guest-init.sh');
  // These travel on the kernel command line, which splits on whitespace.
  for (const [what, p] of [['repository', stage2], ['temporary directory', os.tmpdir()], ['kernel cache', kernel.tree]]) {
    if (/\s/.test(p)) throw new Error(`booting ${kernel.name}: the ${what} path '${p}' contains whitespace — move it`);
  }
  const jobDir = fs.mkdtempSync(path.join(os.tmpdir(), `vipguard-lab-${kernel.name}-`));
  liveJobDirs.add(jobDir);
  const outDir = path.join(jobDir, 'out');
  fs.mkdirSync(outDir);
  const cwd = opts.cwd ?? root;

  const env: Record<string, string> = {
    PATH: GUEST_PATH,
    HOME: '/root',
    USER: 'root',
    LANG: 'C.UTF-8',
    ...opts.env,
    VIPGUARD_LAB_KERNEL: kernel.name,
    VIPGUARD_LAB_OUT: outDir,
  };
  const modules = opts.modules ?? DEFAULT_MODULES;
  for (const m of modules) if (!/^[\w-]+$/.test(m)) throw new Error(`runInLab: bad module name '${m}'`);
  fs.writeFileSync(
    path.join(jobDir, 'job.sh'),
    [
      '# written by src/lab/runner.ts, sourced by scripts/lab/guest-init.sh (busybox sh)',
      `LAB_MODULES=${shq(modules.join(' '))}`,
      `LAB_CWD=${shq(cwd)}`,
      `LAB_INIT=${shq(opts.init ?? 'busybox')}`,
      `set -- env -i ${Object.entries(env).map(([k, v]) => shq(`${k}=${v}`)).join(' ')} ${opts.command.map(shq).join(' ')}`,
      '',
    ].join('\n'),
  );

  const append = [
    'console=ttyS0',
    'loglevel=4', // errors and worse while booting (serial output is slow under TCG); stage 2 then raises it
    'panic=-1', // a panic reboots, and -no-reboot turns that into qemu exiting
    'random.trust_cpu=on', // TCG's RDRAND seeds the CRNG at once: 5.10's getrandom() would otherwise block
    'tsc=reliable',
    'no_timer_check',
    `vipguard.stage2=${stage2}`,
    `vipguard.job=${jobDir}`,
    `vipguard.ktree=${kernel.tree}`,
  ].join(' ');
  const args = [
    // TCG with one host thread for both vCPUs. Multi-threaded TCG once let a 6.12 guest execute a stale int3 left
    // by the kernel's own text patching (text_poke_bp) on the other vCPU: "Oops: int3" in enqueue_timer, panic at
    // boot. Single-threaded TCG applies code changes to all vCPUs at once, and boots as fast here (it also competes
    // less with whatever else runs on a 2-core machine). VIPGUARD_LAB_ACCEL=tcg brings multi-threading back.
    '-machine', 'q35', '-accel', process.env.VIPGUARD_LAB_ACCEL ?? 'tcg,thread=single', '-cpu', 'max',
    '-m', String(opts.memoryMb ?? 2048), '-smp', String(opts.cpus ?? 2),
    '-nographic', '-no-reboot',
    '-nic', 'none', // never any network path out of the VM
    '-kernel', kernel.kernelImage, '-initrd', kernel.initrd, '-append', append,
    '-virtfs', 'local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap',
    '-virtfs', `local,path=${jobDir},mount_tag=job,security_model=none,multidevs=remap`,
    '-device', 'virtio-rng-pci',
    '-device', 'virtio-serial-pci',
    '-chardev', 'socket,id=out,fd=3,server=off', '-device', 'virtserialport,chardev=out,name=vipguard.out',
    '-chardev', 'socket,id=ctl,fd=4,server=off', '-device', 'virtserialport,chardev=ctl,name=vipguard.ctl',
  ];

  const result: LabResult = {
    kernel: kernel.name,
    release: kernel.release,
    exitCode: null,
    timedOut: false,
    bootMs: null,
    wallMs: 0,
    output: '',
    kernelLog: '',
    modulesLoaded: [],
    modulesFailed: [],
  };
  const emit = (line: string, stream: LabStream) => opts.onLine?.(line, stream);

  const started = Date.now();
  const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'] });
  trackVm(child);
  const qemuStderr: string[] = [];

  let inSplat = false;
  lines(child.stdout!, (raw) => {
    let line = stripTerminalNoise(raw);
    // The first kernel line shares the console line with SeaBIOS's "Booting from ROM.." (no newline after it).
    const stamp = line.search(/\[\s*\d+\.\d+\] /);
    if (stamp > 0) line = line.slice(stamp);
    result.kernelLog += line + '\n';
    if (!line.trim() || /^SeaBIOS|^Booting from ROM|^Probing EDD/.test(line)) return;
    if (SPLAT_START.test(line)) inSplat = true;
    if (inSplat || (KERNEL_TROUBLE.test(line) && !KERNEL_NOISE.test(line))) emit(line, 'kernel');
    if (SPLAT_END.test(line)) inSplat = false;
  });
  lines(child.stderr!, (line) => {
    qemuStderr.push(line);
    emit(`qemu: ${line}`, 'lab');
  });
  lines(child.stdio[3] as Readable, (line) => {
    result.output += line + '\n';
    emit(line, 'out');
  });
  lines(child.stdio[4] as Readable, (line) => {
    const [verb, ...rest] = line.split(' ');
    if (verb === 'start') {
      result.bootMs = Date.now() - started;
    } else if (verb === 'exit') {
      result.exitCode = Number(rest[0]);
    } else if (verb === 'modules' && rest[0] === 'loaded') {
      result.modulesLoaded = rest.slice(1).filter(Boolean);
    } else if (verb === 'modules' && rest[0] === 'failed') {
      result.modulesFailed = rest.slice(1).filter(Boolean);
    } else if (verb === 'msg') {
      emit(rest.join(' '), 'lab');
    }
  });

  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const timer = setTimeout(() => {
    result.timedOut = true;
    if (child.pid) safeKill(child.pid);
  }, timeoutMs);

  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', (err) => {
      result.error = `starting qemu-system-x86_64: ${err.message} — install qemu-system-x86 (scripts/provision.sh)`;
    });
    child.once('close', (c, s) => resolve({ code: c, signal: s }));
  });
  clearTimeout(timer);
  result.wallMs = Date.now() - started;

  if (result.timedOut) {
    result.exitCode = null;
  } else if (!result.error && result.exitCode === null) {
    const panic = /Kernel panic[^\n]*/.exec(result.kernelLog)?.[0];
    const why = panic ?? (qemuStderr.length ? `qemu: ${qemuStderr[qemuStderr.length - 1]}` : `qemu ${signal ?? `exit ${code}`}`);
    result.error = `the VM stopped before the command reported an exit status (${why}) — see the kernel log`;
  }

  try {
    if (opts.artifactsDir) {
      fs.mkdirSync(opts.artifactsDir, { recursive: true });
      fs.cpSync(outDir, opts.artifactsDir, { recursive: true });
    }
  } finally {
    fs.rmSync(jobDir, { recursive: true, force: true });
    liveJobDirs.delete(jobDir);
  }
  return result;
}

async function runOnHost(opts: LabRunOptions): Promise<LabResult> {
  const started = Date.now();
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipguard-lab-host-'));
  const result: LabResult = {
    kernel: 'host',
    release: os.release(),
    exitCode: null,
    timedOut: false,
    bootMs: 0,
    wallMs: 0,
    output: '',
    kernelLog: '',
    modulesLoaded: [],
    modulesFailed: [],
  };
  const emit = (line: string) => {
    result.output += line + '\n';
    opts.onLine?.(line, 'out');
  };
  // Own process group, so a timeout ends the command and everything it started (by that group's id, which is ours).
  const child = spawn(opts.command[0], opts.command.slice(1), {
    cwd: opts.cwd ?? repoRoot(),
    env: { ...process.env, ...opts.env, VIPGUARD_LAB_KERNEL: 'host', VIPGUARD_LAB_OUT: outDir },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  lines(child.stdout!, emit);
  lines(child.stderr!, emit);
  const timer = setTimeout(() => {
    result.timedOut = true;
    if (child.pid) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        safeKill(child.pid);
      }
    }
  }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const code = await new Promise<number | null>((resolve) => {
    child.once('error', (err) => {
      result.error = `starting ${opts.command[0]}: ${err.message}`;
      resolve(null);
    });
    child.once('close', (c) => resolve(c));
  });
  clearTimeout(timer);
  result.wallMs = Date.now() - started;
  result.exitCode = result.timedOut ? null : code;
  try {
    if (opts.artifactsDir) {
      fs.mkdirSync(opts.artifactsDir, { recursive: true });
      fs.cpSync(outDir, opts.artifactsDir, { recursive: true });
    }
  } finally {
    fs.rmSync(outDir, { recursive: true, force: true });
  }
  return result;
}

/** Calls onLine for each complete line, and for a trailing partial line when the stream ends. */
function lines(stream: Readable, onLine: (line: string) => void): void {
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      onLine(pending.slice(0, nl).replace(/\r$/, ''));
      pending = pending.slice(nl + 1);
    }
  });
  stream.on('end', () => {
    if (pending) onLine(pending.replace(/\r$/, ''));
    pending = '';
  });
}

// SeaBIOS and the serial console paint with escape sequences and carriage returns.
function stripTerminalNoise(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1bc/g, '').replace(/\r/g, '');
}

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
