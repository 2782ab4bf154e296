#!/usr/bin/env node
// vipguard command line. Each command lives in its own file; this one only parses arguments.
import * as fs from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { trace } from './trace';
import { run } from './run';
import { status } from './status';
import { ReceiverService } from '../receiver/receiver';
import { parseAddr } from '../common/addr';
import { ConfigError, loadConfig } from '../config/config';
import { CONFIG_SCHEMA } from '../config/schema';
import { writeDocs } from './docs';
import { DEFAULT_CONFIG, packageVersion } from '../common/paths';
import { LOG_FORMATS, LOG_LEVELS, createLogger } from '../common/log';
import { PrivilegeError } from '../common/privileges';

function choice<T extends string>(what: string, values: readonly T[]): (v: string) => T {
  return (v) => {
    if (!(values as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected a ${what} (${values.join(', ')}), got '${v}'`);
    return v as T;
  };
}

/** --config, else the default path, which must then exist: say so plainly rather than "cannot read". */
function configOrDefault(given: string | undefined): string {
  if (given) return given;
  if (!fs.existsSync(DEFAULT_CONFIG)) {
    throw new ConfigError(DEFAULT_CONFIG, [{ path: '', message: 'no such file (the default without --config); pass --config FILE (docs/config.md; `vipguard schema` prints its JSON Schema)' }]);
  }
  return DEFAULT_CONFIG;
}

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
    .version(packageVersion(), '-V, --version', 'print the version')
    .showHelpAfterError();

  p.command('run')
    .description('run the receiver and the actuator (sensing and control)')
    .option('-c, --config <file>', `vipguard.yaml (default ${DEFAULT_CONFIG})`)
    .option('--only <part>', 'run only the receiver or only the actuator (separate processes)', (v) => {
      if (v !== 'receiver' && v !== 'actuator') throw new InvalidArgumentError(`expected receiver or actuator, got '${v}'`);
      return v;
    })
    .option('--log-level <level>', `least severe record written: ${LOG_LEVELS.join(', ')}`, choice('log level', LOG_LEVELS), 'info')
    .option('--log-format <format>', `${LOG_FORMATS.join(', ')} (default: journal when stderr is the journal, else plain)`, choice('log format', LOG_FORMATS))
    .action(async (o) => run({ configPath: configOrDefault(o.config), only: o.only, log: createLogger({ level: o.logLevel, format: o.logFormat }) }));

  p.command('status')
    .description("show the running actuator's view: weights, quarantines, panic, hooks")
    .option('-c, --config <file>', 'find the actuator (and its token file) from this configuration')
    .option('--url <url>', 'actuator base URL (default: the configuration\'s actuator.listen, https with actuator.tls; else http://127.0.0.1:9095)')
    .option('--token-file <file>', 'file holding the bearer token (or set VIPGUARD_TOKEN; default: the configuration\'s actuator.tokenFile, else /var/lib/vipguard/token)')
    .option('--ca-file <file>', 'https: PEM CA certificate(s) the actuator\'s certificate must chain to (default: the system\'s)')
    .option('--cert-file <file>', 'https with mutual TLS: PEM client certificate signed by the actuator\'s actuator.tls.clientCAFile')
    .option('--key-file <file>', 'https with mutual TLS: PEM private key of --cert-file')
    .option('--json', 'machine-readable', false)
    .action(async (o) => status({
      configPath: o.config, url: o.url, tokenFile: o.tokenFile, caFile: o.caFile, certFile: o.certFile, keyFile: o.keyFile, json: o.json,
    }));

  p.command('check-config')
    .description('validate a configuration file; prints every problem with its line:column')
    .argument('[file]', `default ${DEFAULT_CONFIG}`)
    .action((given: string | undefined) => {
      const file = given ?? DEFAULT_CONFIG;
      try {
        const c = loadConfig(file);
        process.stdout.write(`${file}: ok (${c.services.length} service(s): ${c.services.map((s) => `${s.name}${s.manage ? ' managed' : ''}`).join(', ')})\n`);
      } catch (e) {
        process.stderr.write(`${(e as Error).message}\n`);
        process.exitCode = e instanceof ConfigError ? 1 : 2;
      }
    });

  p.command('schema')
    .description("print the configuration's JSON Schema (for editors)")
    .action(() => {
      process.stdout.write(JSON.stringify(CONFIG_SCHEMA, null, 2) + '\n');
    });

  p.command('docs')
    .description('regenerate docs/config.md, docs/telemetry.md and schema/vipguard.schema.json from their sources')
    .action(() => {
      const w = writeDocs();
      process.stdout.write(w.length ? `wrote ${w.join(', ')}\n` : 'docs are up to date\n');
    });

  p.command('trace')
    .description('stream the TCP lifecycle of connections to virtual services, with the real backend IPVS chose, and the UDP flows and exchanges of a configuration\'s UDP services; ' +
      'with no --service, --config or --all: every TCP virtual service the kernel lists')
    .option('-c, --config <file>', 'trace the services of this configuration')
    .option('-s, --service <[name=]addr:port>', 'a virtual service to trace (repeatable)', parseService, [])
    .option('-a, --all', 'trace every TCP connection, not only virtual services', false)
    .option('--json', 'one JSON object per line (fields documented in src/receiver/trace-output.ts)', false)
    .option('-d, --duration <seconds>', 'stop after this many seconds', (v) => {
      const n = Number(v);
      if (!(n > 0)) throw new InvalidArgumentError(`expected a positive number of seconds, got '${v}'`);
      return n;
    })
    .action(async (o) => {
      const services: ReceiverService[] = [...o.service, ...(o.config ? loadConfig(o.config, { tlsFiles: false }).services : [])];
      await trace({ services, all: o.all, json: o.json, durationSec: o.duration, kernelServices: !services.length && !o.all });
    });

  return p;
}

/**
 * Exit codes a service manager can act on (sysexits.h): a configuration or privilege problem will not go away by
 * restarting, so the unit's RestartPreventExitStatus names them; anything else may be transient (exit 1).
 */
export const EXIT = { config: 78, noPermission: 77, other: 1 } as const;

export function exitCodeOf(e: unknown): number {
  if (e instanceof ConfigError) return EXIT.config;
  if (e instanceof PrivilegeError) return EXIT.noPermission;
  return EXIT.other;
}

if (require.main === module) {
  program().parseAsync(process.argv).catch((e: Error) => {
    process.stderr.write(`vipguard: ${e.message}\n`);
    process.exit(exitCodeOf(e));
  });
}
