// `npm run demo`: boots the lab (Debian 6.1 unless --kernel says otherwise), plays the failure timeline on bare
// IPVS and then with vipguard (HTTP clients and DNS lookups through the same VIP), streams a per-second view, and
// writes demo.html and demo.json to results/demo/. Ends with its wall time, boot included.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runInLab, labOk } from '../lab/runner';
import { isLabKernel, LabKernelName } from '../lab/kernels';
import { REPO_ROOT } from '../common/paths';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const ki = args.indexOf('--kernel');
  const kernel = ki >= 0 ? args[ki + 1] : '6.1';
  if (!isLabKernel(kernel)) throw new Error(`--kernel: expected 5.10, 6.1 or 6.12, got '${kernel}'`);
  const ci = args.indexOf('--client');
  const client = ci >= 0 ? args[ci + 1] : 'wget';
  if (client !== 'wget' && client !== 'curl') throw new Error(`--client: expected wget or curl, got '${client}'`);
  const t0 = performance.now();
  const out = path.join(REPO_ROOT, 'results', 'demo');
  fs.mkdirSync(out, { recursive: true });
  process.stdout.write(`demo: booting Debian ${kernel} in the lab (qemu, no network device); two runs of ~55 s follow (HTTP and DNS clients)\n`);
  const r = await runInLab({
    kernel: kernel as LabKernelName,
    command: [process.execPath, 'dist/src/demo/inside.js'],
    env: { VIPGUARD_DEMO_CLIENT: client },
    timeoutMs: 600_000,
    artifactsDir: out,
    onLine: (line, stream) => {
      if (stream === 'out') process.stdout.write(`${line}\n`);
      else if (stream === 'kernel') process.stdout.write(`[kernel] ${line}\n`);
    },
  });
  if (!labOk(r)) throw new Error(`the demo failed in the lab: ${r.error ?? (r.timedOut ? 'timed out' : `exit ${r.exitCode}`)}`);
  const html = [path.join(out, kernel, 'demo.html'), path.join(out, 'demo.html')].find((f) => fs.existsSync(f));
  process.stdout.write(`\ndemo: timeline plot written to ${html ?? `${out}/…/demo.html`}\n`);
  process.stdout.write(`demo: wall time ${((performance.now() - t0) / 1000).toFixed(0)} s (boot, both runs, shutdown)\n`);
}

main().catch((e) => {
  process.stderr.write(`demo: ${(e as Error).message}\n`);
  process.exit(1);
});
