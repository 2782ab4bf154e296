// `vipguard trace`: a live stream of IPVS-enriched TCP lifecycle events, human-readable or JSON lines.
import { Receiver, ReceiverService } from '../receiver/receiver';
import { TracePrinter } from '../receiver/trace-output';
import { KernelClock } from '../native/clock';
import { IpvsClient, describeService } from '../actuator/ipvs';
import { formatEndpoint } from '../common/addr';

export interface TraceOptions {
  services: ReceiverService[];
  all: boolean;
  json: boolean;
  durationSec?: number;
  /** trace the TCP virtual services the kernel lists now (nothing named on the command line) */
  kernelServices?: boolean;
}

/**
 * The kernel's TCP virtual services (address services; the receiver matches a socket's destination address and
 * port, so firewall-mark and UDP services are named as skipped), each named by its address:port.
 */
export async function kernelServices(open: () => Promise<IpvsClient> = () => IpvsClient.open()): Promise<{ services: ReceiverService[]; skipped: string[] }> {
  let ipvs: IpvsClient;
  try {
    ipvs = await open();
  } catch (e) {
    throw new Error(`trace: no service named, and the kernel's IPVS table cannot be read (${(e as Error).message}); ` +
      'name one (--service web=10.99.0.1:80, --config FILE) or pass --all');
  }
  try {
    const services: ReceiverService[] = [];
    const skipped: string[] = [];
    for (const s of await ipvs.listServices()) {
      if (s.id.kind === 'address' && s.id.protocol === 'tcp') {
        services.push({ name: formatEndpoint(s.id.address, s.id.port), address: s.id.address, port: s.id.port });
      } else {
        skipped.push(describeService(s.id));
      }
    }
    return { services, skipped };
  } finally {
    ipvs.close();
  }
}

export async function trace(opts: TraceOptions): Promise<void> {
  if (opts.kernelServices) {
    const k = await kernelServices();
    if (k.skipped.length) process.stderr.write(`vipguard trace: not traced (TCP address services only): ${k.skipped.join(', ')}\n`);
    if (!k.services.length) {
      throw new Error('trace: the kernel lists no TCP virtual service (ipvsadm -Ln); name one (--service web=10.99.0.1:80, --config FILE) or pass --all');
    }
    process.stderr.write(`vipguard trace: tracing the kernel's virtual services ${k.services.map((s) => s.name).join(', ')} (as listed at start)\n`);
    opts = { ...opts, services: [...opts.services, ...k.services] };
  }
  if (!opts.services.length && !opts.all) {
    throw new Error('trace: name at least one virtual service (--service web=10.99.0.1:80, or --config FILE) or pass --all');
  }
  const clock = new KernelClock();
  const out = (line: string) => process.stdout.write(line + '\n');
  const printer = new TracePrinter(out, opts.json, (ns) => clock.toEpochNs(ns));
  const receiver = new Receiver({
    services: opts.services, traceAll: opts.all, sinks: [printer],
    onEvent: (ev, lc) => printer.event(ev, lc),
  });
  for (const { line } of receiver.describeHooks()) process.stderr.write(`vipguard trace: ${line}\n`);
  // Whichever comes first; the other is disarmed, so a signal ends the process now, not when --duration is up.
  let timer: NodeJS.Timeout | undefined;
  let stop: () => void = () => {};
  await new Promise<void>((resolve) => {
    stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (opts.durationSec) timer = setTimeout(stop, opts.durationSec * 1000);
  });
  clearTimeout(timer);
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  receiver.drain();
  const c = receiver.counters();
  receiver.close();
  process.stderr.write(`vipguard trace: ${c.events} events, ${c.lost} lost (ring buffer full), ${c.untracked} sockets untracked\n`);
}
