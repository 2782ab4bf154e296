// Failure injection that costs no exec at the moment it matters. Under TCG every exec of a dynamically linked tool
// costs 0.1–0.5 s of a starved vCPU, and `topology.sh backend …` runs a dozen of them: under client load it took
// 8–24 s to black-hole a backend, stalling everything else in the VM meanwhile. So:
//   blackhole  one `nft -i` session inside vg-srv, started before the load, adds/removes the backend in the
//              fixture's own drop set (scripts/lab/topology.sh: table inet vg_topology, set blackhole4)
//   refusal    the fixture's listener is killed by the PID it recorded (as topology.sh does); recovery goes through
//              the fixture (`backend bN healthy`), and the moment the backend accepts again is found by connecting
//              to it directly (not through the VIP: no system under test sees those connects)
//   udp refusal the same for a backend's dnsmasq (its PID recorded as bN.piddns, ICMP port unreachable from then on);
//              its listener goes too, so that the fixture's `backend bN healthy` starts both again, and the moment the
//              backend answers again is found by the restore probe's DNS query to it directly
import * as fs from 'node:fs';
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import type { Backend, Topology } from '../lab/topology';
import { Proc, sleep, waitUntil } from './proc';

const STATE = process.env.VIPGUARD_TOPOLOGY_STATE ?? '/run/vipguard-topology';
const NETNS = 'vg-srv';
const NFT_SET = 'inet vg_topology blackhole4';

/** A long-lived `nft -i` in the server namespace; each command is acknowledged by listing the set after it. */
export class NftSession {
  private readonly proc: Proc;
  private marker = 0;

  constructor() {
    this.proc = Proc.start('nft -i', 'ip', ['netns', 'exec', NETNS, 'nft', '-i'], { stdin: true });
  }

  private async run(cmd: string, expect: (setListing: string) => boolean): Promise<void> {
    const from = this.proc.lines.length;
    const tag = ++this.marker;
    this.proc.child.stdin?.write(`${cmd}\nlist set ${NFT_SET}\n`);
    // The listing ends with the table's closing brace alone on a line; errors go to stderr, which we read too.
    const done = await waitUntil(() => this.proc.lines.slice(from).some((l) => l === '}' || /^Error/.test(l)) || !this.proc.running, 30_000, 2);
    const out = this.proc.lines.slice(from).join('\n');
    if (!done || /^Error/m.test(out) || !expect(out)) {
      throw new Error(`nft -i: '${cmd}' not confirmed (#${tag}, ${this.proc.running ? 'running' : 'exited'}):\n${this.proc.lines.join('\n')}`);
    }
  }

  blackhole(ip: string, on: boolean): Promise<void> {
    return on
      ? this.run(`add element ${NFT_SET} { ${ip} }`, (o) => o.includes(ip))
      : this.run(`delete element ${NFT_SET} { ${ip} }`, (o) => !o.includes(ip));
  }

  async close(): Promise<void> {
    this.proc.child.stdin?.end();
    await this.proc.stop(3000);
  }
}

/** A backend's server as the fixture records it: its TCP listener (busybox httpd) or its DNS server (dnsmasq). */
export type ServerKind = 'httpd' | 'dnsmasq';
const PID_FILE: Record<ServerKind, string> = { httpd: 'pid4', dnsmasq: 'piddns' };

function listenerPid(b: Backend, kind: ServerKind = 'httpd'): number | undefined {
  try {
    return Number(fs.readFileSync(`${STATE}/${b.name}.${PID_FILE[kind]}`, 'utf8').trim()) || undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Kills the backend's listener or DNS server (by the PID the fixture recorded) and waits until it is gone: RST, or
 * ICMP port unreachable, from now on.
 */
export async function killListener(b: Backend, kind: ServerKind = 'httpd'): Promise<void> {
  const pid = listenerPid(b, kind);
  if (!pid || !fs.existsSync(`/proc/${pid}`) || !fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(kind)) {
    throw new Error(`no ${kind} of ${b.name} to kill (pid file ${STATE}/${b.name}.${PID_FILE[kind]}: ${pid ?? 'missing'}) — was the topology built with${kind === 'dnsmasq' ? ' --udp' : ''} topology.sh?`);
  }
  process.kill(pid, 'SIGTERM');
  await waitUntil(() => !alive(pid), 5000, 2);
}

/** A direct connect to the backend, closed with an RST: a FIN would leave a TIME_WAIT on (port, backend) that can
 * capture the SYN-ACK of a client connect through the VIP from the same port (src/actuator/probes.ts tcpProbe). */
function accepts(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: ip, port });
    const done = (ok: boolean) => { clearTimeout(t); s.destroy(); resolve(ok); };
    const t = setTimeout(() => done(false), 500);
    s.once('connect', () => { clearTimeout(t); s.resetAndDestroy(); resolve(true); });
    s.once('error', () => done(false));
  });
}

/**
 * Brings a killed listener back through the fixture; returns when (clock of `now`) it first accepted a connect — or,
 * with `serves`, first passed that check instead (the UDP scenarios ask the backend's DNS server directly).
 */
export async function restartListener(topo: Topology, b: Backend, now: () => number, serves?: () => Promise<boolean>): Promise<number> {
  let firstAccept: number | undefined;
  let probing = true;
  const probe = (async () => {
    while (probing && firstAccept === undefined) {
      const t = now();
      if (await (serves ? serves() : accepts(b.ip, b.port))) firstAccept = t;
      else await sleep(25);
    }
  })();
  await topo.set(b.name, 'healthy');
  await waitUntil(() => firstAccept !== undefined, 5000, 5);
  probing = false;
  await probe;
  return firstAccept ?? now();
}

/**
 * Starts a killed listener again the way the fixture does (busybox httpd in vg-srv, its PID recorded where
 * `topology.sh` looks for it, so `down` ends it) but with one exec instead of a dozen: a flapping backend is down for
 * 2 s, and the fixture's script costs seconds under TCG. Returns when (clock of `now`) it first accepted a connect.
 */
export async function startListener(b: Backend, now: () => number): Promise<number> {
  const www = `${STATE}/www/${b.name}`;
  if (!fs.existsSync(www)) throw new Error(`no web root of ${b.name} at ${www}: was the topology built by topology.sh?`);
  // `ip netns exec` execs the command itself, so the child's PID is the listener's.
  const child = spawn('ip', ['netns', 'exec', NETNS, 'busybox', 'httpd', '-f', '-p', `${b.ip}:${b.port}`, '-h', www], { stdio: 'ignore' });
  if (!child.pid) throw new Error(`could not start the listener of ${b.name}`);
  child.unref();
  fs.writeFileSync(`${STATE}/${b.name}.pid4`, `${child.pid}\n`);
  const deadline = now() + 10_000;
  while (now() < deadline) {
    const t = now();
    if (await accepts(b.ip, b.port)) return t;
    await sleep(25);
  }
  throw new Error(`the listener of ${b.name} did not accept within 10 s of its start`);
}
