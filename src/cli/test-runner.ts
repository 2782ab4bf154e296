// `npm test`: every level of vipguard's tests, in order, with one summary CI can read.
//   unit  pure logic (node --test dist/test/unit), on every supported Node.js line
//   host  BPF on this machine's kernel with real sockets (root), on every supported Node.js line
//   lab   real IPVS on Debian 5.10, 6.1 and 6.12 under qemu (root; kernels fetched and cached on first use), on the
//         node running npm test: the guest sees this machine's / read-only, so the same binary runs there
// The Node.js lines are the node running npm test plus package.json's vipguard.testNode, which
// scripts/provision.sh installs into the cache. Each stage's line in the summary names its node.
// Options (after `npm test --`): --only unit,host,lab   --kernel 6.1[,5.10]   --node 20,22,24   --timeout SEC
//   --lab-jobs N (lab VMs side by side; default: one per core)
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { killAllVms, runInLab, labOk } from '../lab/runner';
import { LAB_KERNELS, LabKernelName, cacheRoot, isLabKernel, prepareKernel } from '../lab/kernels';
import { REPO_ROOT } from '../common/paths';
import { buildLabPackages } from '../lab/package';

type Stage = 'unit' | 'host' | 'lab';
const STAGES: Stage[] = ['unit', 'host', 'lab'];

interface Result {
  name: string;
  ok: boolean;
  pass: number;
  fail: number;
  skipped: number;
  ms: number;
  note?: string;
  /** failed tests: name and first line of the error, repeated under the summary (CI logs are read from the end) */
  failures?: string[];
}

interface Options {
  only: Stage[];
  kernels: LabKernelName[];
  /** Node.js majors for the unit and host stages; empty = all */
  nodes: number[];
  timeoutSec: number;
  /** lab VMs booted side by side */
  labJobs: number;
}

function usage(msg: string): never {
  process.stderr.write(`npm test: ${msg}\nusage: npm test -- [--only unit,host,lab] [--kernel 5.10,6.1,6.12] [--node 20,22,24] [--timeout SEC] [--lab-jobs N]\n`);
  process.exit(2);
}

function parse(argv: string[]): Options {
  // Per lab kernel: 5.10 under TCG took ~1150 s of tests on 2026-12-05; a timeout is a failure, never a cut-off.
  // One VM per core (each TCG VM is one host thread), and never more VMs than there are kernels.
  const o: Options = { only: [...STAGES], kernels: [...LAB_KERNELS], nodes: [], timeoutSec: 1800, labJobs: Math.max(1, os.availableParallelism()) };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => argv[++i] ?? usage(`${a} needs a value`);
    if (a === '--only') {
      o.only = val().split(',').map((s) => (STAGES.includes(s as Stage) ? (s as Stage) : usage(`unknown stage '${s}'`)));
    } else if (a === '--kernel') {
      const v = val();
      o.kernels = v === 'all' ? [...LAB_KERNELS] : v.split(',').map((k) => (isLabKernel(k) ? k : usage(`unknown kernel '${k}'`)));
    } else if (a === '--node') {
      const v = val();
      o.nodes = v === 'all' ? [] : v.split(',').map((n) => (/^\d+$/.test(n) ? Number(n) : usage(`--node takes Node.js majors (20,22,24) or all, got '${n}'`)));
    } else if (a === '--lab-jobs') {
      o.labJobs = Number(val());
      if (!Number.isInteger(o.labJobs) || o.labJobs < 1) usage('--lab-jobs takes a whole number of VMs, at least 1');
    } else if (a === '--timeout') {
      o.timeoutSec = Number(val());
      if (!(o.timeoutSec > 0)) usage('--timeout takes a positive number of seconds');
    } else usage(`unknown argument '${a}'`);
  }
  return o;
}

/** Runs `f` over `items`, at most `jobs` at a time; results in the items' order. */
export async function pool<T, R>(items: readonly T[], jobs: number, f: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await f(items[i]);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, items.length)) }, worker));
  return out;
}

/** node --test's TAP summary lines: "# pass N", "# fail N", "# skipped N". */
export function tapSummary(text: string): { pass: number; fail: number; skipped: number } {
  const n = (k: string) => [...text.matchAll(new RegExp(`^# ${k} (\\d+)$`, 'gm'))].reduce((s, m) => s + Number(m[1]), 0);
  return { pass: n('pass'), fail: n('fail'), skipped: n('skipped') };
}

/** The failed tests of a TAP stream (suites failing only because a test in them did are left out). */
export function tapFailures(text: string): string[] {
  const lines = text.split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*not ok \d+ - (.*)$/.exec(lines[i]);
    if (!m) continue;
    let error = '';
    let suite = false;
    for (let j = i + 1; j < lines.length && j < i + 40 && !/^\s*(not )?ok \d+ /.test(lines[j]); j++) {
      if (/failureType: 'subtestsFailed'/.test(lines[j])) suite = true;
      const e = /^\s*error: (.*)$/.exec(lines[j]);
      if (e && !error) error = /^[|>]-?$/.test(e[1]) ? (lines[j + 1] ?? '').trim() : e[1].replace(/^'(.*)'$/, '$1');
    }
    if (!suite) out.push(`${m[1]}${error ? `: ${error.slice(0, 240)}` : ''}`);
  }
  return out;
}

export interface NodeBin {
  version: string;
  /** the binary, or undefined when it is not installed */
  path?: string;
}

/**
 * The node binaries the unit and host stages run on: `running` (the node of npm test) and every version in
 * `wanted` (package.json's vipguard.testNode) of another major, from `<cache>/node/<version>/bin/node`, by major.
 */
export function testNodes(running: NodeBin, wanted: string[], cache: string, exists: (file: string) => boolean = fs.existsSync): NodeBin[] {
  const major = (v: string) => Number(v.split('.')[0]);
  const out = [running];
  for (const v of wanted) {
    if (out.some((n) => major(n.version) === major(v))) continue;
    const bin = path.join(cache, 'node', v, 'bin', 'node');
    out.push({ version: v, path: exists(bin) ? bin : undefined });
  }
  return out.sort((a, b) => major(a.version) - major(b.version));
}

const TAP_MARK = '--- tap';

function nodeTestArgs(dir: string, tapFile: string, only?: string): string[] {
  // The files by name: node 20 searches a directory argument, node 22 and later take arguments as globs (a
  // directory would be run as one file), and node 20 has no globs.
  const files = fs.readdirSync(path.join(REPO_ROOT, dir)).filter((f) => f.endsWith('.test.js') && (!only || f === only)).sort().map((f) => path.join(dir, f));
  // One file at a time: lab files share one topology (fixed names), host files share the kernel's hooks.
  return ['--test', '--test-concurrency=1', '--test-reporter=spec', '--test-reporter-destination=stdout',
    '--test-reporter=tap', `--test-reporter-destination=${tapFile}`, ...files];
}

async function runLocal(name: string, dir: string, node: string): Promise<Result> {
  const start = Date.now();
  if (!fs.existsSync(path.join(REPO_ROOT, dir))) return { name, ok: false, pass: 0, fail: 0, skipped: 0, ms: 0, note: `${dir} missing — run npm run build` };
  const tap = path.join(os.tmpdir(), `vipguard-${name.replace(/\W+/g, '-')}-${process.pid}.tap`);
  const code = await new Promise<number>((resolve) => {
    process.stdout.write(`\n=== ${name} (${node}) ===\n`);
    const p = spawn(node, nodeTestArgs(dir, tap), { cwd: REPO_ROOT, stdio: 'inherit' });
    p.on('exit', (c, sig) => resolve(c ?? (sig ? 128 : 1)));
  });
  const text = fs.existsSync(tap) ? fs.readFileSync(tap, 'utf8') : '';
  const s = tapSummary(text);
  fs.rmSync(tap, { force: true });
  return { name, ok: code === 0 && s.fail === 0 && s.pass > 0, ...s, ms: Date.now() - start, note: code ? `exit ${code}` : undefined, failures: tapFailures(text) };
}

/**
 * One lab VM: every lab file on `kernel` with the lab's own init, or (`systemd`) the file that needs systemd as
 * PID 1, alone, in a VM booted that way.
 */
interface LabJob { kernel: LabKernelName; init?: 'systemd' }

/** The lab's VMs: each kernel, and the systemd unit's test on the kernel of the Debian release it is built on. */
export function labJobs(kernels: readonly LabKernelName[]): LabJob[] {
  return [...kernels.map((kernel) => ({ kernel })), ...(kernels.includes('6.1') ? [{ kernel: '6.1' as const, init: 'systemd' as const }] : [])];
}

const SYSTEMD_FILE = 'systemd.test.js';

async function runLab(job: LabJob, timeoutSec: number): Promise<Result> {
  const { kernel } = job;
  const label = job.init ? `${kernel}+${job.init}` : kernel;
  const start = Date.now();
  const tap = `/tmp/vipguard-lab.tap`;
  let tapFollows = false;
  const r = await runInLab({
    kernel,
    init: job.init,
    // Inside the VM /tmp is the overlay's; the TAP copy comes back through the output stream.
    command: ['sh', '-c', `${process.execPath} ${nodeTestArgs('dist/test/lab/', tap, job.init ? SYSTEMD_FILE : undefined).join(' ')}; rc=$?; echo '${TAP_MARK}'; cat ${tap}; exit $rc`],
    timeoutMs: timeoutSec * 1000,
    onLine: (line, stream) => {
      if (line === TAP_MARK) tapFollows = true;
      // The TAP copy is for the summary; the spec reporter already showed every test.
      if (!tapFollows || stream !== 'out') process.stdout.write(`[${label}]${stream === 'out' ? '' : ` (${stream})`} ${line}\n`);
    },
  });
  const tapText = r.output.includes(TAP_MARK) ? r.output.split(TAP_MARK).pop()! : '';
  const s = tapSummary(tapText);
  const note = r.timedOut ? `timed out after ${timeoutSec} s` : r.error ?? (r.exitCode ? `exit ${r.exitCode}` : undefined);
  const boot = r.bootMs !== null ? `boot ${(r.bootMs / 1000).toFixed(1)} s` : '';
  return {
    name: `lab ${label} node ${process.versions.node}`, ok: labOk(r) && s.fail === 0 && s.pass > 0, ...s, ms: Date.now() - start,
    note: [note, boot].filter(Boolean).join(', '), failures: tapFailures(tapText),
  };
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const started = Date.now();
  const root = process.getuid?.() === 0;
  const results: Result[] = [];
  const wanted = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')).vipguard?.testNode ?? []) as string[];
  const nodes = testNodes({ version: process.versions.node, path: process.execPath }, wanted, cacheRoot())
    .filter((n) => !o.nodes.length || o.nodes.includes(Number(n.version.split('.')[0])));
  for (const m of o.nodes) {
    if (!nodes.some((n) => Number(n.version.split('.')[0]) === m)) usage(`--node ${m}: neither the running node nor in package.json's vipguard.testNode`);
  }
  for (const stage of ['unit', 'host'] as const) {
    if (!o.only.includes(stage)) continue;
    for (const n of nodes) {
      const name = `${stage} node ${n.version}`;
      const missing = { name, ok: false, pass: 0, fail: 0, skipped: 0, ms: 0 };
      if (!n.path) results.push({ ...missing, note: `node ${n.version} not installed — run scripts/provision.sh` });
      else if (stage === 'host' && !root) results.push({ ...missing, note: 'needs root (BPF, network namespaces): run as root, or --only unit' });
      else results.push(await runLocal(name, `dist/test/${stage}/`, n.path));
    }
  }
  if (o.only.includes('lab')) {
    if (!root) {
      for (const k of o.kernels) results.push({ name: `lab ${k} node ${process.versions.node}`, ok: false, pass: 0, fail: 0, skipped: 0, ms: 0, note: 'needs root (qemu, kernel modules in the VM)' });
    } else {
      // Fetch and build every kernel first (one at a time: they share download caches), then boot them side by
      // side: a TCG VM runs on one host thread, so the lab's wall time divides by the cores it is given.
      const prepareStart = Date.now();
      for (const k of o.kernels) await prepareKernel(k, { log: (l) => process.stdout.write(`[${k}] lab: ${l}\n`) });
      process.stdout.write(`lab: kernels ready in ${((Date.now() - prepareStart) / 1000).toFixed(1)} s; ${o.labJobs} at a time\n`);
      const packStart = Date.now();
      buildLabPackages((l) => process.stdout.write(`lab: ${l} (${((Date.now() - packStart) / 1000).toFixed(1)} s)\n`));
      results.push(...await pool(labJobs(o.kernels), o.labJobs, (j) => runLab(j, o.timeoutSec)));
    }
  }
  const lines = results.map((r) =>
    `${r.ok ? 'PASS' : 'FAIL'}  ${r.name.padEnd(24)} ${String(r.pass).padStart(4)} passed ${String(r.fail).padStart(3)} failed ` +
    `${String(r.skipped).padStart(3)} skipped  ${(r.ms / 1000).toFixed(1).padStart(6)} s${r.note ? `  (${r.note})` : ''}`);
  const failed = results.flatMap((r) => (r.failures ?? []).map((f) => `  ${r.name}: ✖ ${f}`));
  const wall = `wall ${((Date.now() - started) / 1000).toFixed(0)} s in all (lab: ${o.labJobs} VM(s) side by side)`;
  process.stdout.write(`\n=== vipguard test summary ===\n${lines.join('\n')}\n${wall}\n${failed.length ? `failed:\n${failed.join('\n')}\n` : ''}`);
  process.exit(results.every((r) => r.ok) ? 0 : 1);
}

if (require.main === module) {
  // Stopped from outside (Ctrl-C, CI's timeout): the VMs are ours, and would outlive us.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAllVms();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
  main().catch((e: Error) => {
    process.stderr.write(`npm test: ${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
