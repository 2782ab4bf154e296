// The lab takes its Debian mirrors from the machine's apt configuration. Sample configurations in both formats,
// with the third-party repositories and disabled files real machines carry, written to a temporary /etc/apt.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { debianMirrors, parseDeb822, parseOneLine, pickDebianMirrors } from '../../src/lab/apt-mirrors';
import { kernelSources } from '../../src/lab/kernels';

function aptRoot(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vipguard-apt-'));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    fs.writeFileSync(path.join(root, name), text);
  }
  return root;
}

const DEB822 = `Types: deb
# a snapshot URI in a comment is not a source
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`;

test('deb822: stanzas, comments, several URIs, continuation lines, Enabled: no and deb-src only', () => {
  const text = `Types: deb deb-src
URIs: http://a.example/debian/
 http://b.example/debian
Suites: trixie
Components: main

Types: deb
Enabled: no
URIs: http://off.example/debian
Suites: trixie

Types: deb-src
URIs: http://src.example/debian
Suites: trixie
`;
  assert.deepEqual(parseDeb822(text, 'x.sources'), [
    { uri: 'http://a.example/debian/', suites: ['trixie'], origin: 'x.sources:1' },
    { uri: 'http://b.example/debian', suites: ['trixie'], origin: 'x.sources:1' },
  ]);
  assert.throws(() => parseDeb822('Types: deb\nSuites: trixie\n', 'y.sources'), /y\.sources:1: a stanza of Types: deb needs URIs:/);
  assert.throws(() => parseDeb822('Types: deb\nnot a field\n', 'z.sources'), /z\.sources:2: expected 'Field: value', found 'not a field'/);
});

test('one-line: options in brackets, comments and deb-src skipped, bad lines named', () => {
  const text = `# deb http://old.example/debian buster main
deb [ arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg ] http://m.example/debian bullseye main
deb-src http://m.example/debian bullseye main
deb http://s.example/debian-security bullseye-security main contrib  # trailing comment
`;
  assert.deepEqual(parseOneLine(text, 'sources.list'), [
    { uri: 'http://m.example/debian', suites: ['bullseye'], origin: 'sources.list:2' },
    { uri: 'http://s.example/debian-security', suites: ['bullseye-security'], origin: 'sources.list:4' },
  ]);
  assert.throws(() => parseOneLine('deb http://only-a-uri.example\n', 'l.list'), /l\.list:1: expected 'deb \[options\] URI SUITE/);
});

test('the Debian archives are told from third-party repositories by their suites, not their hosts', () => {
  const m = pickDebianMirrors([
    { uri: 'https://vendor.example/node_20.x', suites: ['nodistro'], origin: 'a' },
    { uri: 'https://cloud.example/apt', suites: ['cloud-sdk-bookworm'], origin: 'b' },
    { uri: 'cdrom:[Debian 12]/', suites: ['bookworm'], origin: 'c' },
    { uri: 'http://m.example/debian/', suites: ['bookworm-backports'], origin: 'd' },
    { uri: 'http://s.example/security', suites: ['buster/updates'], origin: 'e' },
  ]);
  assert.deepEqual(m, { debian: 'http://m.example/debian', security: 'http://s.example/security' });
  assert.deepEqual(pickDebianMirrors([{ uri: 'http://u.example/ubuntu', suites: ['noble'], origin: 'x' }]), { debian: undefined, security: undefined });
});

test('a machine configuration: sources.list first, then sources.list.d in order; disabled files ignored', () => {
  const root = aptRoot({
    'etc/apt/sources.list.d/debian.sources': DEB822,
    'etc/apt/sources.list.d/vendor.sources.disabled-by-farm': 'Types: deb\nURIs: http://x.example/debian\nSuites: bookworm\n',
    'etc/apt/sources.list.d/cloud.list': 'deb https://cloud.example/apt cloud-sdk-bookworm main\n',
  });
  try {
    assert.deepEqual(debianMirrors({ security: true }, {}, root), {
      debian: 'http://mirror.example/debian', security: 'http://security.example/debian-security',
    });
    assert.deepEqual(kernelSources('5.10', {}, root), {
      mirror: 'http://mirror.example/debian',
      sources: ['http://mirror.example/debian bullseye', 'http://security.example/debian-security bullseye-security'],
    });
    assert.deepEqual(kernelSources('6.12', {}, root).sources, ['http://mirror.example/debian trixie']);
    fs.writeFileSync(path.join(root, 'etc/apt/sources.list'), 'deb http://first.example/debian bookworm main\n');
    assert.equal(debianMirrors({ security: false }, {}, root).debian, 'http://first.example/debian');
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('the overrides win; with neither a mirror nor an override the error names both', () => {
  const root = aptRoot({ 'etc/apt/sources.list.d/vendor.list': 'deb https://vendor.example/apt nodistro main\n' });
  try {
    const env = { VIPGUARD_DEBIAN_MIRROR: 'http://local.example/debian', VIPGUARD_DEBIAN_SECURITY_MIRROR: 'http://local.example/sec' };
    assert.deepEqual(kernelSources('5.10', env, root).sources, ['http://local.example/debian bullseye', 'http://local.example/sec bullseye-security']);
    assert.throws(() => kernelSources('6.1', {}, root), (e: Error) =>
      /no entry for a Debian suite/.test(e.message) && e.message.includes(path.join(root, 'etc/apt/sources.list.d')) &&
      /set VIPGUARD_DEBIAN_MIRROR/.test(e.message));
    // 6.1 needs no security archive; 5.10 does.
    assert.deepEqual(kernelSources('6.1', { VIPGUARD_DEBIAN_MIRROR: 'http://l.example/d' }, root).sources, ['http://l.example/d bookworm']);
    assert.throws(() => kernelSources('5.10', { VIPGUARD_DEBIAN_MIRROR: 'http://l.example/d' }, root),
      /no entry for a <codename>-security suite .* set VIPGUARD_DEBIAN_SECURITY_MIRROR/);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
