// `npm test`: every level of vipguard's tests, in order, with one summary CI can read.
//   unit  pure logic (node --test dist/test/unit)
//   host  BPF on this machine's kernel with real sockets (root)
//   lab   real IPVS on Debian 5.10, 6.1 and 6.12 under qemu (root; kernels fetched and cached on first use)
// Options (after `npm test --`): --only unit,host,lab   --kernel 6.1[,5.10]   --timeout SEC (per lab kernel)
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runInLab, labOk } from '../lab/runner';
import { LAB_KERNELS, LabKernelName, isLabKernel } from '../lab/kernels';
import { REPO_ROOT } from '../common/paths';

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
  timeoutSec: number;
}

function usage(msg: string): never {
  process.stderr.write(`npm test: ${msg}\nusage: npm test -- [--only unit,host,lab] [--kernel 5.10,6.1,6.12] [--timeout SEC]\n`);
  process.exit(2);
}

function parse(argv: string[]): Options {
  const o: Options = { only: [...STAGES], kernels: [...LAB_KERNELS], timeoutSec: 1200 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => argv[++i] ?? usage(`${a} needs a value`);
    if (a === '--only') {
      o.only = val().split(',').map((s) => (STAGES.includes(s as Stage) ? (s as Stage) : usage(`unknown stage '${s}'`)));
    } else if (a === '--kernel') {
      const v = val();
      o.kernels = v === 'all' ? [...LAB_KERNELS] : v.split(',').map((k) => (isLabKernel(k) ? k : usage(`unknown kernel '${k}'`)));
    } else if (a === '--timeout') {
      o.timeoutSec = Number(val());
      if (!(o.timeoutSec > 0)) usage('--timeout takes a positive number of seconds');
    } else usage(`unknown argument '${a}'`);
  }
  return o;
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

const TAP_MARK = '--- tap';

function nodeTestArgs(dir: string, tapFile: string): string[] {
  // One file at a time: lab files share one topology (fixed names), host files share the kernel's hooks.
  return ['--test', '--test-concurrency=1', '--test-reporter=spec', '--test-reporter-destination=stdout',
    '--test-reporter=tap', `--test-reporter-destination=${tapFile}`, dir];
}

async function runLocal(name: string, dir: string): Promise<Result> {
  const start = Date.now();
  if (!fs.existsSync(dir)) return { name, ok: false, pass: 0, fail: 0, skipped: 0, ms: 0, note: `${dir} missing — run npm run build` };
  const tap = path.join(os.tmpdir(), `vipguard-${name}-${process.pid}.tap`);
  const code = await new Promise<number>((resolve) => {
    const p = spawn(process.execPath, nodeTestArgs(dir, tap), { cwd: REPO_ROOT, stdio: 'inherit' });
    p.on('exit', (c, sig) => resolve(c ?? (sig ? 128 : 1)));
  });
  const text = fs.existsSync(tap) ? fs.readFileSync(tap, 'utf8') : '';
  const s = tapSummary(text);
  fs.rmSync(tap, { force: true });
  return { name, ok: code === 0 && s.fail === 0 && s.pass > 0, ...s, ms: Date.now() - start, note: code ? `exit ${code}` : undefined, failures: tapFailures(text) };
}

async function runLab(kernel: LabKernelName, timeoutSec: number): Promise<Result> {
  const start = Date.now();
  const tap = `/tmp/vipguard-lab.tap`;
  let tapFollows = false;
  const r = await runInLab({
    kernel,
    // Inside the VM /tmp is the overlay's; the TAP copy comes back through the output stream.
    command: ['sh', '-c', `node ${nodeTestArgs('dist/test/lab/', tap).join(' ')}; rc=$?; echo '${TAP_MARK}'; cat ${tap}; exit $rc`],
    timeoutMs: timeoutSec * 1000,
    onLine: (line, stream) => {
      if (line === TAP_MARK) tapFollows = true;
      // The TAP copy is for the summary; the spec reporter already showed every test.
      if (!tapFollows || stream !== 'out') process.stdout.write(`[${kernel}]${stream === 'out' ? '' : ` (${stream})`} ${line}\n`);
    },
  });
  const tapText = r.output.includes(TAP_MARK) ? r.output.split(TAP_MARK).pop()! : '';
  const s = tapSummary(tapText);
  const note = r.timedOut ? `timed out after ${timeoutSec} s` : r.error ?? (r.exitCode ? `exit ${r.exitCode}` : undefined);
  const boot = r.bootMs !== null ? `boot ${(r.bootMs / 1000).toFixed(1)} s` : '';
  return {
    name: `lab ${kernel}`, ok: labOk(r) && s.fail === 0 && s.pass > 0, ...s, ms: Date.now() - start,
    note: [note, boot].filter(Boolean).join(', '), failures: tapFailures(tapText),
  };
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const root = process.getuid?.() === 0;
  const results: Result[] = [];
  if (o.only.includes('unit')) results.push(await runLocal('unit', 'dist/test/unit/'));
  if (o.only.includes('host')) {
    results.push(root ? await runLocal('host', 'dist/test/host/')
      : { name: 'host', ok: false, pass: 0, fail: 0, skipped: 0, ms: 0, note: 'needs root (BPF, network namespaces): run as root, or --only unit' });
  }
  if (o.only.includes('lab')) {
    for (const k of o.kernels) {
      results.push(root ? await runLab(k, o.timeoutSec)
        : { name: `lab ${k}`, ok: false, pass: 0, fail: 0, skipped: 0, ms: 0, note: 'needs root (qemu, kernel modules in the VM)' });
    }
  }
  const lines = results.map((r) =>
    `${r.ok ? 'PASS' : 'FAIL'}  ${r.name.padEnd(10)} ${String(r.pass).padStart(4)} passed ${String(r.fail).padStart(3)} failed ` +
    `${String(r.skipped).padStart(3)} skipped  ${(r.ms / 1000).toFixed(1).padStart(6)} s${r.note ? `  (${r.note})` : ''}`);
  const failed = results.flatMap((r) => (r.failures ?? []).map((f) => `  ${r.name}: ✖ ${f}`));
  process.stdout.write(`\n=== vipguard test summary ===\n${lines.join('\n')}\n${failed.length ? `failed:\n${failed.join('\n')}\n` : ''}`);
  process.exit(results.every((r) => r.ok) ? 0 : 1);
}

if (require.main === module) {
  main().catch((e: Error) => {
    process.stderr.write(`npm test: ${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
