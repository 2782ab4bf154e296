// npm run lab -- [--kernel 5.10|6.1|6.12|all|host[,…]] [--timeout SEC] [--env K=V]… [--artifacts DIR] [--init systemd] [--prepare]
//                -- <command …>
//
// Runs the command on each named kernel in turn (2 cores and TCG: parallel VMs would only slow each other down),
// streams its output prefixed with the kernel ("[6.1] …"), prints boot and wall times, and exits non-zero if the
// command failed, timed out or could not run on any kernel. --prepare only fetches kernels and builds initramfses.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LAB_KERNELS, isLabKernel, prepareKernel } from './kernels';
import { killAllVms, labOk, runInLab, type LabResult, type LabStream, type LabTarget } from './runner';

const USAGE = `usage: npm run lab -- [--kernel 5.10|6.1|6.12|all|host] [--timeout SEC] [--env K=V] [--artifacts DIR] [--init systemd] -- <command …>
       npm run lab -- --prepare [--kernel …]     fetch kernels and build initramfses only`;

interface CliOptions {
  kernels: LabTarget[];
  timeoutMs: number;
  env: Record<string, string>;
  artifacts?: string;
  prepare: boolean;
  command: string[];
  init?: 'busybox' | 'systemd';
}

export function parseArgs(argv: string[]): CliOptions {
  const o: CliOptions = { kernels: [...LAB_KERNELS], timeoutMs: 600_000, env: {}, prepare: false, command: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === '--') {
      o.command = argv.slice(i + 1);
      break;
    } else if (a === '--kernel' || a === '-k') {
      o.kernels = [];
      for (const k of value().split(',')) {
        if (k === 'all') o.kernels.push(...LAB_KERNELS);
        else if (k === 'host' || isLabKernel(k)) o.kernels.push(k);
        else throw new Error(`unknown kernel '${k}' — use 5.10, 6.1, 6.12, all or host`);
      }
    } else if (a === '--timeout') {
      const s = Number(value());
      if (!(s > 0)) throw new Error(`--timeout takes seconds > 0\n${USAGE}`);
      o.timeoutMs = s * 1000;
    } else if (a === '--env') {
      const kv = value();
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new Error(`--env takes NAME=VALUE, got '${kv}'`);
      o.env[kv.slice(0, eq)] = kv.slice(eq + 1);
    } else if (a === '--artifacts') {
      o.artifacts = path.resolve(value());
    } else if (a === '--prepare') {
      o.prepare = true;
    } else if (a === '--init') {
      const v = value();
      if (v !== 'busybox' && v !== 'systemd') throw new Error(`--init takes busybox or systemd, got '${v}'`);
      o.init = v;
    } else if (a === '--help' || a === '-h') {
      throw new Error(USAGE);
    } else {
      // Without a "--", the first unknown word starts the command (npm may swallow the second "--").
      o.command = argv.slice(i);
      break;
    }
  }
  if (!o.prepare && o.command.length === 0) throw new Error(`no command given\n${USAGE}`);
  return o;
}

function fmtS(ms: number | null): string {
  return ms === null ? '—' : `${(ms / 1000).toFixed(1)} s`;
}

function verdict(r: LabResult, timeoutMs: number): string {
  if (r.timedOut) return `TIMEOUT after ${fmtS(timeoutMs)}`;
  if (r.error) return `LAB FAILURE: ${r.error}`;
  return r.exitCode === 0 ? 'ok' : `FAILED (exit ${r.exitCode})`;
}

async function main(argv: string[]): Promise<number> {
  let o: CliOptions;
  try {
    o = parseArgs(argv);
  } catch (err) {
    console.error(`lab: ${(err as Error).message}`);
    return 2;
  }

  if (o.prepare) {
    for (const k of o.kernels) {
      if (k === 'host') continue;
      const pk = await prepareKernel(k, { log: (l) => console.log(`[${k}] ${l}`) });
      console.log(`[${k}] ready: ${pk.release} (${pk.packageName} ${pk.packageVersion})`);
    }
    return 0;
  }

  const results: LabResult[] = [];
  for (const k of o.kernels) {
    const tag = `[${k}]`;
    const print = (line: string, stream: LabStream) => {
      const prefix = stream === 'out' ? `${tag} ` : stream === 'kernel' ? `${tag} kernel: ` : `${tag} lab: `;
      process.stdout.write(prefix + line + '\n');
    };
    let r: LabResult;
    try {
      r = await runInLab({
        kernel: k,
        command: o.command,
        timeoutMs: o.timeoutMs,
        env: o.env,
        onLine: print,
        artifactsDir: o.artifacts ? path.join(o.artifacts, k) : undefined,
        init: o.init,
      });
    } catch (err) {
      console.log(`${tag} lab: ${(err as Error).message}`);
      results.push({
        kernel: k, release: '?', exitCode: null, timedOut: false, bootMs: null, wallMs: 0, output: '', kernelLog: '',
        modulesLoaded: [], modulesFailed: [], error: (err as Error).message,
      });
      continue;
    }
    if (r.modulesFailed.length) print(`modules that did not load: ${r.modulesFailed.join(' ')}`, 'lab');
    if (!labOk(r) && r.kernelLog) {
      const logPath = path.join(os.tmpdir(), `vipguard-lab-${k}-console.log`);
      fs.writeFileSync(logPath, r.kernelLog);
      print(`full kernel console: ${logPath}`, 'lab');
    }
    print(`${verdict(r, o.timeoutMs)} · ${r.release} · boot-to-command ${fmtS(r.bootMs)} · wall ${fmtS(r.wallMs)}`, 'lab');
    results.push(r);
  }

  console.log('lab summary:');
  for (const r of results) {
    console.log(
      `  ${r.kernel.padEnd(5)} ${verdict(r, o.timeoutMs).padEnd(16)} boot-to-command ${fmtS(r.bootMs).padStart(7)}   wall ${fmtS(r.wallMs).padStart(7)}   ${r.release}`,
    );
  }
  const bad = results.filter((r) => !labOk(r));
  console.log(bad.length ? `lab: failed on ${bad.map((r) => r.kernel).join(', ')}` : `lab: ok on ${results.map((r) => r.kernel).join(', ')}`);
  return bad.length ? 1 : 0;
}

if (require.main === module) {
  // 'exit' handlers do not run when a signal kills the process: end our VMs (by PID) first.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAllVms();
      console.error(`lab: ${sig}: stopped the VMs this run started`);
      process.exit(130);
    });
  }
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      console.error(`lab: ${(err as Error).message}`);
      process.exitCode = 1;
    },
  );
}
