// systemd's readiness protocol, for real on the host: `vipguard run --only receiver` (no IPVS needed) started the
// way a Type=notify unit starts it — NOTIFY_SOCKET naming an AF_UNIX datagram socket, here bound by a python3
// listener standing in for systemd (the protocol is the datagram; systemd itself is not PID 1 on this machine) —
// says READY=1 once the receiver is attached, RELOADING=1 with its monotonic time then READY=1 around a SIGHUP
// reload, and STOPPING=1 before a graceful stop. Path and abstract socket names both.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { notifyMessage, sdNotify } from '../../src/native/notify';
import { requireRoot, waitFor } from '../helpers';

const MAIN = path.join(__dirname, '..', '..', 'src', 'cli', 'main.js');

// Binds the socket (a path, or @abstract), prints "bound", then one JSON string per datagram, for `seconds`.
const LISTENER = `
import json, socket, sys
name, seconds = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\\0' + name[1:] if name.startswith('@') else name)
s.settimeout(seconds)
print('bound', flush=True)
try:
    while True:
        print(json.dumps(s.recv(4096).decode()), flush=True)
except socket.timeout:
    pass
`;

interface Listener { proc: ChildProcess; messages: string[]; bound: Promise<void> }

function listen(name: string, seconds: number): Listener {
  const proc = spawn('python3', ['-c', LISTENER, name, String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: string[] = [];
  let onBound: () => void;
  const bound = new Promise<void>((r) => { onBound = r; });
  readline.createInterface({ input: proc.stdout! }).on('line', (l) => {
    if (l === 'bound') onBound();
    else messages.push(JSON.parse(l) as string);
  });
  return { proc, messages, bound };
}

function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((r) => { p.once('exit', () => r()); p.kill('SIGTERM'); });
}

test('the message: KEY=value lines, a status kept to one line', () => {
  assert.equal(notifyMessage({ READY: 1, STATUS: 'receiver running\n 1 service(s)' }), 'READY=1\nSTATUS=receiver running; 1 service(s)');
  assert.equal(sdNotify({ READY: 1 }, {}), false, 'no NOTIFY_SOCKET: nothing asked, nothing sent');
  assert.throws(() => sdNotify({ READY: 1 }, { NOTIFY_SOCKET: 'relative/path' }), /absolute path or @abstract/);
});

for (const kind of ['path', 'abstract'] as const) {
  test(`vipguard run tells the service manager ready, reloading and stopping (${kind} socket)`, { skip: requireRoot() }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipguard-notify-'));
    const socketName = kind === 'path' ? path.join(dir, 'notify') : `@vipguard-notify-test-${process.pid}`;
    const listener = listen(socketName, 120);
    let vg: ChildProcess | undefined;
    try {
      await listener.bound;
      const config = path.join(dir, 'vipguard.yaml');
      fs.writeFileSync(config, [
        'services:', '  - { name: web, address: 127.0.0.1, port: 9 }',
        'receiver:', '  export: { enabled: false }', '  prometheus: { enabled: false }',
        'actuator:', '  enabled: false', '',
      ].join('\n'));
      vg = spawn(process.execPath, [MAIN, 'run', '--only', 'receiver', '--config', config, '--log-format', 'plain'],
        { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NOTIFY_SOCKET: socketName } });
      const log: string[] = [];
      readline.createInterface({ input: vg.stderr! }).on('line', (l) => log.push(l));
      const exited = new Promise<number | null>((r) => vg!.once('exit', (code) => r(code)));

      await waitFor(() => listener.messages.length > 0 || vg!.exitCode !== null, 60_000, 'READY=1');
      assert.match(listener.messages[0], /^READY=1\nSTATUS=receiver running; 1 service\(s\): web$/, `${listener.messages[0]}\n${log.join('\n')}`);
      assert.ok(log.some((l) => /receiver: tracing web=tcp\/127\.0\.0\.1:9/.test(l)), 'ready only once the receiver is attached');

      vg.kill('SIGHUP');
      await waitFor(() => listener.messages.length >= 3, 10_000, 'RELOADING=1 then READY=1');
      const m = /^RELOADING=1\nMONOTONIC_USEC=(\d+)$/.exec(listener.messages[1]);
      assert.ok(m, listener.messages[1]);
      const nowUsec = Number(process.hrtime.bigint() / 1000n);
      assert.ok(Math.abs(nowUsec - Number(m[1])) < 10_000_000, `MONOTONIC_USEC is CLOCK_MONOTONIC (${m[1]} vs ${nowUsec})`);
      assert.match(listener.messages[2], /^READY=1\nSTATUS=receiver running; 1 service\(s\): web$/);

      vg.kill('SIGTERM');
      assert.equal(await exited, 0, log.join('\n'));
      assert.match(listener.messages[3] ?? '', /^STOPPING=1\nSTATUS=stopping/);
      assert.equal(listener.messages.length, 4, JSON.stringify(listener.messages));
    } finally {
      if (vg) await stop(vg);
      await stop(listener.proc);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
