// The BPF maps' key for a virtual service (`struct vg_service_key` in bpf/vipguard.h): address family, port and
// address as the socket sees them, and the protocol: a TCP and a UDP service may share an address and port. Shared by sensing (the receiver's service filter) and control (the SYN
// timeout's per-service table), so it lives here and neither imports the other.
import { parseAddr } from './addr';

const IPPROTO: Record<'tcp' | 'udp', number> = { tcp: 6, udp: 17 };

export function serviceKey(address: string, port: number, protocol: 'tcp' | 'udp' = 'tcp'): Buffer {
  const { family, bytes } = parseAddr(address);
  const key = Buffer.alloc(20);
  key[0] = family === 4 ? 2 : 10;
  key[1] = IPPROTO[protocol];
  key.writeUInt16LE(port, 2);
  bytes.copy(key, 4);
  return key;
}
