// IpvsClient and NetlinkConnection against a scripted fake kernel: what goes out on the wire for each call, how
// multipart dumps, stale replies, timeouts and kernel errors come back.
import { strict as assert } from 'node:assert';
import * as os from 'node:os';
import { describe, it } from 'node:test';
import { NetlinkConnection, NetlinkError, NetlinkTransport } from '../../src/actuator/ipvs/connection';
import { IPVS_CMD, IPVS_CMD_ATTR, IPVS_DEST_ATTR, IPVS_SVC_ATTR } from '../../src/actuator/ipvs/constants';
import { IpvsError } from '../../src/actuator/ipvs/errors';
import { GENL_ID_CTRL, decodeGenl, encodeGenl } from '../../src/actuator/ipvs/genl';
import { IpvsClient } from '../../src/actuator/ipvs/ipvs';
import { Attrs, NLM_F, NLMSG, NlMessage, encodeMessage, nla, parseMessages } from '../../src/actuator/ipvs/netlink';

const IPVS_ID = 0x23;
const PORT_ID = 4242;
const E = os.constants.errno;

type Handler = (req: NlMessage, k: FakeKernel) => Buffer[];

/** Answers each request with datagrams computed by `handler`; records what was sent. */
class FakeKernel implements NetlinkTransport {
  readonly portId = PORT_ID;
  readonly sent: NlMessage[] = [];
  private queue: Buffer[] = [];
  closed = false;

  constructor(private readonly handler: Handler) {}

  send(data: Buffer): void {
    const [req] = parseMessages(data);
    this.sent.push(req);
    if (req.type === GENL_ID_CTRL) {
      const fam = encodeGenl(1, 2, [nla.u16(1, IPVS_ID), nla.string(2, 'IPVS'), nla.u32(3, 1)]);
      this.queue.push(Buffer.concat([this.msg(req, GENL_ID_CTRL, 0, fam), this.ack(req, 0)]));
      return;
    }
    this.queue.push(...this.handler(req, this));
  }
  receive(): Buffer | null {
    return this.queue.shift() ?? null;
  }
  close(): void {
    this.closed = true;
  }

  msg(req: NlMessage, type: number, flags: number, payload: Buffer): Buffer {
    return encodeMessage({ type, flags, seq: req.seq, pid: PORT_ID }, payload);
  }
  ack(req: NlMessage, errno: number, message?: string): Buffer {
    const p = Buffer.alloc(20);
    p.writeInt32LE(-errno, 0);
    encodeMessage({ type: req.type, flags: req.flags, seq: req.seq, pid: req.pid }, Buffer.alloc(0)).copy(p, 4);
    const tlv = message === undefined ? Buffer.alloc(0) : nla.string(1, message);
    const flags = NLM_F.CAPPED | (message === undefined ? 0 : NLM_F.ACK_TLVS);
    return this.msg(req, NLMSG.ERROR, flags, Buffer.concat([p, tlv]));
  }
  done(req: NlMessage): Buffer {
    return this.msg(req, NLMSG.DONE, NLM_F.MULTI, Buffer.alloc(4));
  }
  ipvs(req: NlMessage, cmd: number, nested: Buffer, flags = NLM_F.MULTI): Buffer {
    return this.msg(req, IPVS_ID, flags, encodeGenl(cmd, 1, [nested]));
  }
}

const genlOf = (m: NlMessage) => decodeGenl(m, 'request');
const cmdOf = (m: NlMessage): number => genlOf(m).cmd;

/** A destination as the kernel lists it: NAT, thresholds 100/10, weight `weight`. */
function kernelDest(addr: number[], port: number, weight: number): Buffer {
  const a = Buffer.alloc(16);
  Buffer.from(addr).copy(a);
  return nla.binary(
    IPVS_CMD_ATTR.DEST,
    Buffer.concat([
      nla.binary(1, a),
      nla.be16(2, port),
      nla.u32(3, 0),
      nla.u32(4, weight),
      nla.u8(13, 0),
      nla.be16(14, 0),
      nla.u16(15, 0),
      nla.u32(5, 100),
      nla.u32(6, 10),
      nla.u32(7, 2),
      nla.u32(8, 1),
      nla.u32(9, 0),
      nla.u16(11, 2),
    ]),
  );
}

function kernelService(): Buffer {
  const a = Buffer.alloc(16);
  Buffer.from([10, 99, 0, 1]).copy(a);
  return nla.binary(
    IPVS_CMD_ATTR.SERVICE,
    Buffer.concat([
      nla.u16(1, 2),
      nla.u16(2, 6),
      nla.binary(3, a),
      nla.be16(4, 80),
      nla.string(6, 'wrr'),
      nla.binary(7, Buffer.from('02000000ffffffff', 'hex')),
      nla.u32(8, 0),
      nla.binary(9, Buffer.from('ffffffff', 'hex')),
    ]),
  );
}

async function rejects(p: Promise<unknown>, message: string, code: string): Promise<IpvsError> {
  let err: unknown;
  await p.then(
    () => assert.fail('expected a rejection'),
    (e: unknown) => (err = e),
  );
  assert.ok(err instanceof IpvsError, String(err));
  assert.equal(err.message, message);
  assert.equal(err.code, code);
  return err;
}

describe('IpvsClient over a fake kernel', { skip: os.endianness() !== 'LE' ? 'little-endian fake' : false }, () => {
  it('resolves the family, then lists services from a dump split over datagrams', async () => {
    const k = new FakeKernel((req, k) => [
      k.msg({ ...req, seq: req.seq - 1 }, IPVS_ID, NLM_F.MULTI, encodeGenl(1, 1, [])), // stale, must be ignored
      Buffer.concat([
        k.ipvs(req, IPVS_CMD.NEW_SERVICE, kernelService()),
        k.ipvs(req, IPVS_CMD.NEW_SERVICE, kernelService()),
      ]),
      Buffer.concat([k.ipvs(req, IPVS_CMD.NEW_SERVICE, kernelService()), k.done(req)]),
    ]);
    const c = await IpvsClient.connect(k);
    assert.equal(c.family.id, IPVS_ID);
    const svcs = await c.listServices();
    assert.equal(svcs.length, 3);
    assert.equal(svcs[0].key, 'tcp/10.99.0.1:80');
    assert.equal(svcs[0].scheduler, 'wrr');
    const req = k.sent[1];
    assert.equal(req.type, IPVS_ID);
    assert.equal(req.flags, NLM_F.REQUEST | NLM_F.DUMP);
    assert.equal(cmdOf(req), IPVS_CMD.GET_SERVICE);
    c.close();
    assert.ok(k.closed);
    await rejects(c.listServices(), 'listing IPVS services: bad file descriptor (EBADF)', 'EBADF');
  });

  it('sets a weight by resending the destination as listed, and reports the previous weight', async () => {
    const k = new FakeKernel((req, k) => {
      if (cmdOf(req) === IPVS_CMD.GET_DEST) {
        return [Buffer.concat([k.ipvs(req, IPVS_CMD.NEW_DEST, kernelDest([10, 200, 0, 4], 80, 3)), k.done(req)])];
      }
      return [k.ack(req, 0)];
    });
    const c = await IpvsClient.connect(k);
    assert.deepEqual(await c.setDestinationWeight('tcp/10.99.0.1:80', '10.200.0.4:80', 0), {
      previousWeight: 3,
      changed: true,
    });
    const set = k.sent[k.sent.length - 1];
    assert.equal(cmdOf(set), IPVS_CMD.SET_DEST);
    assert.equal(set.flags, NLM_F.REQUEST | NLM_F.ACK);
    const g = genlOf(set);
    const svc = g.attrs.nested(IPVS_CMD_ATTR.SERVICE, 'service');
    assert.deepEqual(svc?.raw(IPVS_SVC_ATTR.ADDR)?.subarray(0, 4), Buffer.from([10, 99, 0, 1]));
    const d = g.attrs.nested(IPVS_CMD_ATTR.DEST, 'dest') as Attrs;
    assert.equal(d.u32(IPVS_DEST_ATTR.WEIGHT), 0);
    assert.equal(d.u32(IPVS_DEST_ATTR.U_THRESH), 100);
    assert.equal(d.u32(IPVS_DEST_ATTR.L_THRESH), 10);
    assert.equal(d.u32(IPVS_DEST_ATTR.FWD_METHOD), 0);
    assert.equal(d.has(IPVS_DEST_ATTR.ACTIVE_CONNS), false);

    // Same weight again: nothing is sent after the listing.
    const before = k.sent.length;
    assert.deepEqual(await c.setDestinationWeight('tcp/10.99.0.1:80', '10.200.0.4:80', 3), {
      previousWeight: 3,
      changed: false,
    });
    assert.equal(k.sent.length, before + 1);
    assert.equal(cmdOf(k.sent[before]), IPVS_CMD.GET_DEST);
  });

  it('names the operation, service and destination in errors', async () => {
    const k = new FakeKernel((req, k) => {
      switch (cmdOf(req)) {
        case IPVS_CMD.GET_DEST: {
          const svc = genlOf(req).attrs.nested(IPVS_CMD_ATTR.SERVICE, 's')?.raw(IPVS_SVC_ATTR.ADDR);
          // 10.99.0.1 has one destination; any other service has none (the kernel's empty dump)
          return svc?.[3] === 1
            ? [Buffer.concat([k.ipvs(req, IPVS_CMD.NEW_DEST, kernelDest([10, 200, 0, 2], 80, 1)), k.done(req)])]
            : [k.done(req)];
        }
        case IPVS_CMD.GET_SERVICE:
          return [k.ack(req, E.ESRCH)];
        case IPVS_CMD.NEW_DEST:
          return [k.ack(req, E.EEXIST)];
        case IPVS_CMD.NEW_SERVICE:
          return [k.ack(req, E.EINVAL, 'Attribute failed policy validation')];
        default:
          return [k.ack(req, E.ENOENT)];
      }
    });
    const c = await IpvsClient.connect(k);
    const e = await rejects(
      c.setDestinationWeight('tcp/10.99.0.1:80', '10.200.0.4:80', 0),
      'setting weight of 10.200.0.4:80 in TCP 10.99.0.1:80 to 0: no such destination (ENOENT)',
      'ENOENT',
    );
    assert.equal(e.errno, E.ENOENT);
    assert.equal(e.service, 'tcp/10.99.0.1:80');
    assert.equal(e.destination, '10.200.0.4:80');
    assert.equal(e.operation, 'editDestination');
    await rejects(
      c.setDestinationWeight('tcp/10.99.0.9:80', '10.200.0.4:80', 0),
      'setting weight of 10.200.0.4:80 in TCP 10.99.0.9:80 to 0: no such service (ESRCH)',
      'ESRCH',
    );
    await rejects(
      c.listDestinations('udp/[fd00::1]:53'),
      'listing destinations of UDP [fd00::1]:53: no such service (ESRCH)',
      'ESRCH',
    );
    await rejects(
      c.removeDestination('tcp/10.99.0.1:80', '10.200.0.9:80'),
      'removing 10.200.0.9:80 from TCP 10.99.0.1:80: no such destination (ENOENT)',
      'ENOENT',
    );
    await rejects(
      c.addDestination('tcp/10.99.0.1:80', '10.200.0.2:80'),
      'adding 10.200.0.2:80 to TCP 10.99.0.1:80: destination already exists (EEXIST)',
      'EEXIST',
    );
    const inval = await rejects(
      c.addService('fwmark/7', { scheduler: 'rr' }),
      'adding FWM 7: invalid argument (EINVAL) — kernel: Attribute failed policy validation',
      'EINVAL',
    );
    assert.equal(inval.kernelMessage, 'Attribute failed policy validation');
    assert.equal(await c.findService('tcp/10.0.0.1:80'), undefined);
    assert.equal(await c.findDestination('tcp/10.99.0.1:80', '10.200.0.3:80'), undefined);
    assert.equal((await c.findDestination('tcp/10.99.0.1:80', '10.200.0.2:80'))?.activeConns, 2);
  });

  it('refuses bad arguments before sending anything', async () => {
    const k = new FakeKernel(() => assert.fail('nothing should reach the kernel'));
    const c = await IpvsClient.connect(k);
    await rejects(
      c.getService('tcp/10.99.0.1'),
      'reading "tcp/10.99.0.1": parsing IPVS service "tcp/10.99.0.1": missing :<port> — expected tcp|udp|sctp/<address>:<port> (tcp/10.99.0.1:80, tcp/[fd00::1]:80) or fwmark/<mark> (EINVAL)',
      'EINVAL',
    );
    await rejects(
      c.addService('tcp/10.0.0.1:80', { scheduler: 'round robin' }),
      'adding TCP 10.0.0.1:80: scheduler "round robin" must be 1-15 characters of a-z, 0-9, _ (EINVAL)',
      'EINVAL',
    );
  });

  it('reports a missing IPVS family as ENOENT with what to do, and closes the socket', async () => {
    let closed = false;
    const queue: Buffer[] = [];
    const t: NetlinkTransport = {
      portId: PORT_ID,
      send(data: Buffer) {
        const [req] = parseMessages(data);
        const p = Buffer.alloc(20);
        p.writeInt32LE(-E.ENOENT, 0);
        data.copy(p, 4, 0, 16);
        queue.push(encodeMessage({ type: NLMSG.ERROR, flags: NLM_F.CAPPED, seq: req.seq, pid: PORT_ID }, p));
      },
      receive: () => queue.shift() ?? null,
      close() {
        closed = true;
      },
    };
    await rejects(
      IpvsClient.connect(t),
      'resolving the IPVS generic netlink family: not registered — is the ip_vs module loaded? (modprobe ip_vs) (ENOENT)',
      'ENOENT',
    );
    assert.ok(closed);
  });
});

describe('NetlinkConnection', () => {
  it('times out when the kernel never answers, and drains afterwards', () => {
    let receives = 0;
    const conn = new NetlinkConnection({ portId: 1, send() {}, receive: () => (receives++, null), close() {} }, 30);
    assert.throws(
      () => conn.request(0x23, 0, Buffer.alloc(4)),
      (e: unknown) => e instanceof NetlinkError && e.code === 'ETIMEDOUT' && /within 30 ms/.test(e.message),
    );
    assert.equal(receives, 2);
  });

  it('fails a dump whose NLMSG_DONE carries an error', () => {
    const k = new FakeKernel((req, k) => {
      const p = Buffer.alloc(4);
      p.writeInt32LE(-E.EMSGSIZE, 0);
      return [Buffer.concat([k.ipvs(req, 1, kernelService()), k.msg(req, NLMSG.DONE, NLM_F.MULTI, p)])];
    });
    const conn = new NetlinkConnection(k);
    assert.throws(
      () => conn.dump(IPVS_ID, 0, encodeGenl(4, 1, [])),
      (e: unknown) => e instanceof NetlinkError && e.code === 'EMSGSIZE',
    );
  });
});
