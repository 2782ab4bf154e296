#!/usr/bin/env node
// vipguard command line. Each command lives in its own file; this one only parses arguments.
import { Command, InvalidArgumentError } from 'commander';
import { trace } from './trace';
import { ReceiverService } from '../receiver/receiver';
import { parseAddr } from '../common/addr';

function parseService(spec: string, prev: ReceiverService[] = []): ReceiverService[] {
  // name=addr:port, addr:port, name=[v6]:port
  const m = /^(?:([A-Za-z0-9_.-]+)=)?(?:\[([^\]]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(spec);
  const usage = `expected [name=]ADDRESS:PORT (e.g. web=10.99.0.1:80 or [fd00::1]:80), got '${spec}'`;
  if (!m) throw new InvalidArgumentError(usage);
  const address = m[2] ?? m[3];
  const port = Number(m[4]);
  try {
    parseAddr(address);
  } catch (e) {
    throw new InvalidArgumentError(`${(e as Error).message}; ${usage}`);
  }
  if (port < 1 || port > 65535) throw new InvalidArgumentError(`port ${port} out of range 1..65535; ${usage}`);
  return [...prev, { name: m[1] ?? spec, address, port }];
}

export function program(): Command {
  const p = new Command('vipguard')
    .description('eBPF sensing and netlink control for IPVS virtual services')
    .showHelpAfterError();

  p.command('trace')
    .description('stream the TCP lifecycle of connections to virtual services, with the real backend IPVS chose')
    .option('-s, --service <[name=]addr:port>', 'a virtual service to trace (repeatable)', parseService, [])
    .option('-a, --all', 'trace every TCP connection, not only virtual services', false)
    .option('--json', 'one JSON object per line (fields documented in src/receiver/trace-output.ts)', false)
    .option('-d, --duration <seconds>', 'stop after this many seconds', (v) => {
      const n = Number(v);
      if (!(n > 0)) throw new InvalidArgumentError(`expected a positive number of seconds, got '${v}'`);
      return n;
    })
    .action(async (o) => trace({ services: o.service, all: o.all, json: o.json, durationSec: o.duration }));

  return p;
}

if (require.main === module) {
  program().parseAsync(process.argv).catch((e: Error) => {
    process.stderr.write(`vipguard: ${e.message}\n`);
    process.exit(1);
  });
}
