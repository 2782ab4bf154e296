// The fixture the UDP lab tests stand on: the topology with UDP services on port 53 (dnsmasq backends), a netlink
// client to read the UDP service back, the DNS flows a test opens, the vipguard it starts — all put back after each
// test (vipguard stopped, flows closed, backends healthy at weight 1, expire_nodest_conn as it was). IPv4 by
// default; `family: 6` builds the IPv6 side too and points vip(), dest(), addr() and flowOn() at the IPv6 service.
// Call it inside a describe(): it registers that suite's hooks.
import * as fs from 'node:fs';
import { after, afterEach, before } from 'node:test';
import { Topology } from '../../src/lab/topology';
import { IpvsClient, parseService } from '../../src/actuator/ipvs';
import { formatEndpoint } from '../../src/common/addr';
import type { Destination } from '../../src/actuator/ipvs/types';
import { stopVipguard, VipguardProcess } from './harness';
import { DnsFlow, openFlowOn } from './dns-client';

export const EXPIRE_NODEST_CONN = '/proc/sys/net/ipv4/vs/expire_nodest_conn';

export interface UdpLab {
  topo: Topology;
  ipvs: IpvsClient;
  /** the vipguard a test started: stopped after it */
  vg?: VipguardProcess;
  /** every flow opened: closed after each test */
  readonly flows: DnsFlow[];
  /** the UDP services' port */
  port(): number;
  /** the virtual address of the fixture's family: 10.99.0.1 or fd00:99::1 */
  vip(): string;
  /**
   * backend `name`'s IPv4 address: what its dnsmasq answers (the A record) whichever family the query came over, so
   * the address an answer carries names the backend that answered
   */
  ip(name: string): string;
  /** backend `name`'s address in the fixture's family: the destination's address in the UDP service */
  addr(name: string): string;
  /** backend `name` as the kernel lists it in the UDP service of the fixture's family, or undefined when it is not there */
  dest(name: string): Promise<Destination | undefined>;
  /** a steady flow IPVS sends to backend `name` */
  flowOn(name: string): Promise<DnsFlow>;
}

export function udpLab(opts: { family?: 4 | 6 } = {}): UdpLab {
  const v6 = opts.family === 6;
  let expireBefore = '';
  const lab: UdpLab = {
    topo: undefined as unknown as Topology,
    ipvs: undefined as unknown as IpvsClient,
    flows: [],
    port: () => lab.topo.status.udpPort!,
    vip: () => (v6 ? lab.topo.vip6!.host : lab.topo.vip.host),
    ip: (name) => lab.topo.backend(name).ip,
    addr: (name) => (v6 ? lab.topo.backend(name).ip6! : lab.topo.backend(name).ip),
    dest: async (name) => (await lab.ipvs.listDestinations(parseService(`udp/${formatEndpoint(lab.vip(), lab.port())}`))).find((d) => d.id.address === lab.addr(name)),
    flowOn: (name) => openFlowOn(lab.vip(), lab.port(), lab.ip(name), lab.flows),
  };

  before(async () => {
    expireBefore = fs.readFileSync(EXPIRE_NODEST_CONN, 'utf8').trim();
    lab.topo = await Topology.up({ backends: ['healthy', 'healthy', 'healthy'], ipv6: v6, udpPort: 53 });
    lab.ipvs = await IpvsClient.open();
  });

  afterEach(async (t) => {
    if (lab.vg && process.env.VIPGUARD_TEST_DEBUG) console.log(`--- vipguard log (${(t as { name?: string }).name}):\n${lab.vg.lines.join('\n')}`);
    await stopVipguard(lab.vg);
    lab.vg = undefined;
    for (const f of lab.flows.splice(0)) f.close();
    await lab.topo.reset();
    fs.writeFileSync(EXPIRE_NODEST_CONN, expireBefore);
  });

  after(async () => {
    lab.ipvs?.close();
    await lab.topo?.down();
  });

  return lab;
}
