// Fleet mode as docs/fleet.md describes it, built in the lab: one vipguard per client host of the topology (the
// network namespaces c1…cN, each with its own IPVS table), and optionally one central Debian Prometheus that scrapes
// every client's receiver over mutual TLS, evaluates the fleet rule — read from docs/fleet.md itself — and delivers
// its alerts to every vipguard's Alertmanager v2 endpoint, found through file_sd, over TLS with the fleet's token.
// The embedded rules stay on in every vipguard: local decisions go on beside the fleet's.
// Used by the fleet lab test (test/lab/fleet.test.ts) and the fleet benchmark (src/bench/fleet.ts), so both measure
// the same set-up.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { docsYamlBlock } from '../common/docs';
import { REPO_ROOT } from '../common/paths';
import { freePort } from '../common/ports';
import { Daemon, promQuery } from './daemon';
import { makeServerPki, type ServerPki } from './pki';
import type { Client, Topology } from './topology';
import { labConfig, startVipguard, stopVipguard, type VipguardProcess } from './vipguard-process';

export const PROMETHEUS = '/usr/bin/prometheus';
export const FLEET_ALERT = 'VipguardBackendDownFleetWide';
/**
 * The lab's Prometheus intervals (docs/fleet.md suggests 15 s for both in production): the rule leaves evaluation to
 * the ruler's evaluation_interval. Short here so a test waits seconds, not minutes; the benchmark states them.
 */
export const FLEET_LAB_INTERVALS = { scrapeS: 1, evalS: 1 } as const;

/** The rule file docs/fleet.md shows, exactly as written there. */
export const fleetRuleFile = (): string => docsYamlBlock('fleet.md', '# /etc/prometheus/rules/vipguard-fleet.yml');

/** How a fleet alert's quarantine reads in vipguard's log: the source (v2 API) and the alert's name. */
export const FLEET_QUARANTINE = new RegExp(`alertmanager ${FLEET_ALERT}`);

export interface FleetClient {
  c: Client;
  vg: VipguardProcess;
  /** scrape target of its receiver, as Prometheus labels it (instance) */
  scrape: string;
  actuator: string;
}

/**
 * The fleet's files (PKI, token, Prometheus's configuration and storage), its vipguards and its Prometheus. Build
 * with `new Fleet(topo)`, then startVipguards() and, for fleet mode, startPrometheus(); stop() ends whatever did start
 * (by PID) and removes the files, also after a start that failed half-way.
 */
export class Fleet {
  readonly clients: FleetClient[] = [];
  prom?: Daemon;
  promBase = '';
  readonly dir: string;
  readonly tokenFile: string;
  private pki?: ServerPki;

  constructor(private readonly topo: Topology) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-fleet-'));
    this.tokenFile = path.join(this.dir, 'fleet-token');
    fs.writeFileSync(this.tokenFile, `${crypto.randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  }

  private get certs(): ServerPki {
    this.pki ??= makeServerPki(this.topo.clients.map((c) => c.ip));
    return this.pki;
  }

  /**
   * One vipguard per client host, started in parallel, each with its receiver's scrape endpoint (mutual TLS) and its
   * actuator (TLS, the fleet's token) on the client's own address. Sorted by client name once all are up.
   */
  async startVipguards(): Promise<void> {
    const pki = this.certs;
    const tls = { certFile: pki.server.cert, keyFile: pki.server.key };
    const starting = this.topo.clients.map(async (c) => {
      // Any port is free in a fresh namespace; freePort() only keeps them apart from the root netns's for reading.
      const [scrapePort, actuatorPort] = [await freePort(), await freePort()];
      const yaml = labConfig({ address: c.vip.host, port: c.vip.port }, {
        receiver: { prometheus: { enabled: true, listen: `${c.ip}:${scrapePort}`, tls: { ...tls, clientCAFile: pki.ca } } },
        actuator: { listen: `${c.ip}:${actuatorPort}`, tls, tokenFile: this.tokenFile, holdRefusals: { enabled: false } },
      });
      // nsenter switches the network namespace only: `ip netns exec` would remount /sys and hide tracefs and bpffs.
      const vg = await startVipguard(yaml, {
        command: ['nsenter', `--net=/run/netns/${c.netns}`, process.execPath, path.join(REPO_ROOT, 'dist/src/cli/main.js')],
        readyTimeoutMs: 150_000,
      });
      this.clients.push({ c, vg, scrape: `${c.ip}:${scrapePort}`, actuator: `${c.ip}:${actuatorPort}` });
    });
    // Every vipguard that did start is in `clients` for stop() to end, also when another one failed.
    const failed = (await Promise.allSettled(starting)).find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    this.clients.sort((a, b) => a.c.name.localeCompare(b.c.name));
  }

  /**
   * The central Prometheus: docs/fleet.md's prometheus.yml with the lab's files and `intervals`, the rule file from
   * docs/fleet.md. Returns once it is ready and scrapes every receiver over mutual TLS (within `timeoutMs`).
   */
  async startPrometheus(intervals: { scrapeS: number; evalS: number } = FLEET_LAB_INTERVALS, timeoutMs = 60_000): Promise<void> {
    const { dir } = this;
    const pki = this.certs;
    fs.writeFileSync(path.join(dir, 'vipguard-fleet.yml'), fleetRuleFile());
    fs.writeFileSync(path.join(dir, 'receivers.json'), JSON.stringify([{ targets: this.clients.map((x) => x.scrape) }]));
    fs.writeFileSync(path.join(dir, 'vipguards.json'), JSON.stringify([{ targets: this.clients.map((x) => x.actuator) }]));
    fs.writeFileSync(path.join(dir, 'prometheus.yml'), `
global: { scrape_interval: ${intervals.scrapeS}s, evaluation_interval: ${intervals.evalS}s }
rule_files: ['${dir}/vipguard-fleet.yml']
scrape_configs:
  - job_name: vipguard-receiver
    scheme: https
    tls_config: { ca_file: ${pki.ca}, cert_file: ${pki.client.cert}, key_file: ${pki.client.key} }
    file_sd_configs: [{ files: ['${dir}/receivers.json'] }]
alerting:
  alertmanagers:
    - api_version: v2
      scheme: https
      tls_config: { ca_file: ${pki.ca} }
      authorization: { credentials_file: ${this.tokenFile} }
      file_sd_configs: [{ files: ['${dir}/vipguards.json'] }]
`);
    const promPort = await freePort();
    this.promBase = `http://127.0.0.1:${promPort}`;
    fs.mkdirSync(path.join(dir, 'prometheus'));
    this.prom = Daemon.start('prometheus', [PROMETHEUS, `--config.file=${dir}/prometheus.yml`, `--storage.tsdb.path=${dir}/prometheus`,
      `--web.listen-address=127.0.0.1:${promPort}`, '--storage.tsdb.retention.time=1h', '--log.level=warn']);
    await this.prom.ready(`${this.promBase}/-/ready`, 120_000);
    const deadline = Date.now() + timeoutMs;
    const n = this.clients.length;
    while ((await this.query('up{job="vipguard-receiver"} == 1').catch(() => [])).length !== n) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for Prometheus scraping all ${n} receivers over mutual TLS`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** An instant query against the central Prometheus. */
  query(q: string): ReturnType<typeof promQuery> {
    if (!this.prom) throw new Error('Fleet: no Prometheus started (startPrometheus)');
    return promQuery(this.promBase, q);
  }

  /** A fleet recording rule's value for one backend address (undefined when it has no series). */
  async backendSeries(record: string, backendIp: string): Promise<string | undefined> {
    return (await this.query(`${record}{network_peer_address="${backendIp}"}`))[0]?.value[1];
  }

  /** Ends Prometheus and every vipguard that started (by PID), and removes the fleet's files. */
  async stop(): Promise<void> {
    await Promise.all([this.prom?.stop(), ...this.clients.map((x) => stopVipguard(x.vg))]);
    fs.rmSync(this.dir, { recursive: true, force: true });
    this.pki?.cleanup();
  }
}
