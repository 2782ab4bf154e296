// The actuator's token: generated once into a private file, read back by vipguard and by `vipguard status`, never
// taken from a command line; loopback without a token only when asked for (issue 12, "Who may act").
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { readTokenFile, resolveToken } from '../../src/common/token-file';
import { statusToken } from '../../src/cli/status';
import { lineLogger } from '../../src/common/log';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'vg-token-'));

test('generates a token at first start into a 0600 file, and reads the same one after', () => {
  const dir = tmp();
  const file = path.join(dir, 'sub', 'token');
  const logs: string[] = [];
  const first = resolveToken({ tokenFile: file, allowLoopbackWithoutToken: false }, lineLogger((l) => logs.push(l)));
  assert.equal(first.source, 'generated');
  assert.match(first.token ?? '', /^[0-9a-f]{64}$/);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.equal(fs.readFileSync(file, 'utf8'), first.token, 'exactly the token, no newline: the collector puts the bytes in a header');
  assert.match(logs[0], /generated a bearer token into .*token \(mode 0600\)/);
  const again = resolveToken({ tokenFile: file, allowLoopbackWithoutToken: false });
  assert.deepEqual(again, { token: first.token, source: 'file', file });
  fs.rmSync(dir, { recursive: true });
});

test('an inline token wins; without one, loopback without a token only on request', () => {
  const dir = tmp();
  const file = path.join(dir, 'token');
  assert.deepEqual(resolveToken({ token: 'x'.repeat(16), tokenFile: file, allowLoopbackWithoutToken: false }), { token: 'x'.repeat(16), source: 'config' });
  assert.deepEqual(resolveToken({ tokenFile: file, allowLoopbackWithoutToken: true }), { token: undefined, source: 'none' });
  assert.equal(fs.existsSync(file), false, 'nothing generated when opted out');
  fs.rmSync(dir, { recursive: true });
});

test('refuses token files that hold no usable token, and warns when every user can read one', () => {
  const dir = tmp();
  const file = path.join(dir, 'token');
  fs.writeFileSync(file, 'short\n', { mode: 0o600 });
  assert.throws(() => readTokenFile(file), /token file .* holds 5 characters: expected one token of at least 16 characters/);
  fs.writeFileSync(file, 'abcdefgh ijklmnopq\n');
  assert.throws(() => readTokenFile(file), /whitespace inside the token/);
  assert.throws(() => readTokenFile(path.join(dir, 'absent')), /reading the token file .*absent: ENOENT/);
  fs.writeFileSync(file, `${'a'.repeat(32)}\n`);
  fs.chmodSync(file, 0o644);
  const logs: string[] = [];
  resolveToken({ tokenFile: file, allowLoopbackWithoutToken: false }, lineLogger((l) => logs.push(l)));
  assert.match(logs[0], /readable by every user \(mode 644\)/);
  fs.rmSync(dir, { recursive: true });
});

test('vipguard status: --token-file, then VIPGUARD_TOKEN, then the configuration\'s token file', () => {
  const dir = tmp();
  const a = path.join(dir, 'a');
  fs.writeFileSync(a, `${'a'.repeat(20)}\n`, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'token'), `${'c'.repeat(20)}\n`, { mode: 0o600 });
  const config = path.join(dir, 'vipguard.yaml');
  fs.writeFileSync(config, `services: [{ name: web, address: 10.99.0.1, port: 80 }]\nactuator: { stateFile: ${dir}/state.json }\n`);
  assert.equal(statusToken({ tokenFile: a, configPath: config, json: false, env: { VIPGUARD_TOKEN: 'b'.repeat(20) } }), 'a'.repeat(20));
  assert.equal(statusToken({ configPath: config, json: false, env: { VIPGUARD_TOKEN: 'b'.repeat(20) } }), 'b'.repeat(20));
  assert.equal(statusToken({ configPath: config, json: false, env: {} }), 'c'.repeat(20));
  fs.rmSync(dir, { recursive: true });
});
