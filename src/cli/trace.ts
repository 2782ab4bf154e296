// `vipguard trace`: a live stream of IPVS-enriched TCP lifecycle events, human-readable or JSON lines.
import { Receiver, ReceiverService } from '../receiver/receiver';
import { TracePrinter } from '../receiver/trace-output';
import { KernelClock } from '../native/clock';

export interface TraceOptions {
  services: ReceiverService[];
  all: boolean;
  json: boolean;
  durationSec?: number;
}

export async function trace(opts: TraceOptions): Promise<void> {
  if (!opts.services.length && !opts.all) {
    throw new Error('vipguard trace: name at least one virtual service (--service web=10.99.0.1:80, or --config FILE) or pass --all');
  }
  const clock = new KernelClock();
  const out = (line: string) => process.stdout.write(line + '\n');
  const printer = new TracePrinter(out, opts.json, (ns) => clock.toEpochNs(ns));
  const receiver = new Receiver({
    services: opts.services, traceAll: opts.all, sinks: [printer],
    onEvent: (ev, lc) => printer.event(ev, lc),
  });
  for (const line of receiver.describeHooks()) process.stderr.write(`vipguard trace: ${line}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (opts.durationSec) setTimeout(stop, opts.durationSec * 1000);
  });
  receiver.drain();
  const c = receiver.counters();
  receiver.close();
  process.stderr.write(`vipguard trace: ${c.events} events, ${c.lost} lost (ring buffer full), ${c.untracked} sockets untracked\n`);
}
