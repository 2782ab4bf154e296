// The lab's IPVS topology for TypeScript tests and benchmarks. A thin typed wrapper: scripts/lab/topology.sh is the
// one implementation (so a human in the lab shell and a test build exactly the same thing); read its header for the
// layout and what each backend state means.
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { repoRoot } from './kernels';

export type BackendState = 'healthy' | 'refuse' | 'blackhole' | 'slow';

export interface TopologyOptions {
  /** One entry per backend, b1…bN in this order. Default: healthy, refuse, blackhole. At most 15. */
  backends?: BackendState[];
  /** Port the backends listen on. Default 8080. */
  port?: number;
  /** Virtual service addresses and port. Defaults 10.99.0.1, fd00:99::1, 80. */
  vip?: string;
  vip6?: string;
  vipPort?: number;
  /** IPVS scheduler (rr, wrr, lc, wlc, sh, mh). Default rr. */
  scheduler?: string;
  /** Also build the IPv6 side (fd00:200::/64 and the VIP6 service). Default true. */
  ipv6?: boolean;
  /** Also UDP services on the VIPs at this port, each backend running dnsmasq there (see topology.sh). Default none. */
  udpPort?: number;
  /** Where the fixture records what it created. Default /run/vipguard-topology (a tmpfs in the lab). */
  stateDir?: string;
  /** Client hosts c1…cN (0–9): network namespaces, each with its own IPVS table and VIP over the same backends. */
  clients?: number;
}

export interface Endpoint {
  host: string;
  port: number;
}

export interface Backend {
  name: string;
  ip: string;
  /** undefined when ipv6 is off */
  ip6?: string;
  port: number;
  state: string;
}

/** A client host of `up --clients N`: a network namespace with its own IPVS service over the backends. */
export interface Client {
  name: string;
  /** the namespace, at /run/netns/<netns> */
  netns: string;
  /** its address on the link to the root netns (reachable from the root netns, e.g. by a central Prometheus) */
  ip: string;
  /** its virtual service */
  vip: Endpoint;
}

export interface TopologyStatus {
  vip: Endpoint;
  vip6?: Endpoint;
  /** the UDP services' port (same VIPs), when built with udpPort */
  udpPort?: number;
  backends: Backend[];
  clients: Client[];
}

export class Topology {
  private constructor(
    private readonly env: NodeJS.ProcessEnv,
    public status: TopologyStatus,
  ) {}

  get vip(): Endpoint {
    return this.status.vip;
  }

  get vip6(): Endpoint | undefined {
    return this.status.vip6;
  }

  get backends(): Backend[] {
    return this.status.backends;
  }

  get clients(): Client[] {
    return this.status.clients;
  }

  client(name: string): Client {
    const c = this.status.clients.find((x) => x.name === name);
    if (!c) throw new Error(`topology: no client ${name} — have ${this.status.clients.map((x) => x.name).join(', ') || 'none (up with clients: N)'}`);
    return c;
  }

  backend(name: string): Backend {
    const b = this.status.backends.find((x) => x.name === name);
    if (!b) throw new Error(`topology: no backend ${name} — have ${this.status.backends.map((x) => x.name).join(', ')}`);
    return b;
  }

  /** Builds the topology (tearing down a previous one of ours first). Needs root, IPVS and nftables. */
  static async up(opts: TopologyOptions = {}): Promise<Topology> {
    const env = { ...process.env, ...(opts.stateDir ? { VIPGUARD_TOPOLOGY_STATE: opts.stateDir } : {}) };
    const args = ['up', '--backends', (opts.backends ?? ['healthy', 'refuse', 'blackhole']).join(',')];
    if (opts.port !== undefined) args.push('--port', String(opts.port));
    if (opts.vip) args.push('--vip', opts.vip);
    if (opts.vip6) args.push('--vip6', opts.vip6);
    if (opts.vipPort !== undefined) args.push('--vip-port', String(opts.vipPort));
    if (opts.scheduler) args.push('--scheduler', opts.scheduler);
    if (opts.ipv6 === false) args.push('--no-ipv6');
    if (opts.udpPort !== undefined) args.push('--udp', String(opts.udpPort));
    if (opts.clients) args.push('--clients', String(opts.clients));
    try {
      return new Topology(env, parseStatus(await topologySh(args, env)));
    } catch (err) {
      // `up` records each creation as it goes: undo a half-built topology before reporting.
      await topologySh(['down'], env).catch(() => {});
      throw err;
    }
  }

  /** Switches a backend: healthy (listening), refuse (listener killed), blackhole (dropped), slow (delayed). */
  async set(name: string, state: Exclude<BackendState, 'slow'>): Promise<void>;
  async set(name: string, state: 'slow', delayMs: number): Promise<void>;
  async set(name: string, state: BackendState, delayMs?: number): Promise<void> {
    const args = ['backend', name, state];
    if (state === 'slow') args.push(String(delayMs));
    await topologySh(args, this.env);
    await this.refresh();
  }

  /** Drops what one client host sends to one backend, on that client's way out (`pass` undoes it): a failure of that path only. */
  async path(client: string, backend: string, state: 'drop' | 'pass'): Promise<void> {
    await topologySh(['path', client, backend, state], this.env);
  }

  /** IPVS weight of a backend in the v4 (and v6) service; 0 stops new connections to it. */
  async weight(name: string, weight: number): Promise<void> {
    await topologySh(['weight', name, String(weight)], this.env);
  }

  /** Every backend healthy, in the service at weight 1: the state each test starts from. */
  async reset(): Promise<void> {
    for (const b of this.backends) await this.set(b.name, 'healthy');
    for (const b of this.backends) await this.weight(b.name, 1);
  }

  async refresh(): Promise<TopologyStatus> {
    this.status = parseStatus(await topologySh(['status'], this.env));
    return this.status;
  }

  /** Removes everything up() created: listeners (by PID), IPVS services, the namespace with its nft table and qdiscs. */
  async down(): Promise<void> {
    await topologySh(['down'], this.env);
  }

  /** Tears down whatever topology of ours is left (e.g. from a test that crashed). */
  static async downAny(stateDir?: string): Promise<void> {
    await topologySh(['down'], { ...process.env, ...(stateDir ? { VIPGUARD_TOPOLOGY_STATE: stateDir } : {}) });
  }
}

export function parseStatus(text: string): TopologyStatus {
  let vip: Endpoint | undefined;
  let vip6: Endpoint | undefined;
  let udpPort: number | undefined;
  const backends: Backend[] = [];
  const clients: Client[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[0] === 'vip') vip = { host: f[1], port: Number(f[2]) };
    else if (f[0] === 'vip6') vip6 = { host: f[1], port: Number(f[2]) };
    else if (f[0] === 'udp') udpPort = Number(f[1]);
    else if (f[0] === 'backend')
      backends.push({ name: f[1], ip: f[2], ip6: f[3] === '-' ? undefined : f[3], port: Number(f[4]), state: f.slice(5).join(' ') });
    else if (f[0] === 'client') clients.push({ name: f[1], netns: f[2], ip: f[3], vip: { host: f[4], port: Number(f[5]) } });
  }
  if (!vip) throw new Error(`topology: status had no vip line: ${JSON.stringify(text)}`);
  return { vip, vip6, udpPort, backends, clients };
}

function topologySh(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const script = path.join(repoRoot(), 'scripts', 'lab', 'topology.sh');
  return new Promise((resolve, reject) => {
    execFile('bash', [script, ...args], { env, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`topology.sh ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}
