// Which Debian mirror the lab fetches kernels from: the one this machine's own apt already uses, so no mirror's host
// name lives in the repository and a machine behind a local mirror or proxy keeps using it.
//
// apt reads two formats (sources.list(5)): one-line entries in /etc/apt/sources.list and sources.list.d/*.list, and
// deb822 stanzas in sources.list.d/*.sources. Entries are told apart by their suites, not their hosts: a Debian
// archive carries codename suites (bookworm, bookworm-updates, …), its security archive <codename>-security (or
// <codename>/updates before bullseye). Third-party repositories (nodistro, cloud-sdk-bookworm, …) match neither.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface AptEntry {
  uri: string;
  suites: string[];
  /** Where it was read, for error messages: "file:line". */
  origin: string;
}

export interface DebianMirrors {
  /** The archive (dists/bookworm, dists/trixie, …) */
  debian?: string;
  /** The security archive (dists/bullseye-security, …) */
  security?: string;
}

const CODENAMES = ['buster', 'bullseye', 'bookworm', 'trixie', 'forky', 'duke', 'sid', 'oldoldstable', 'oldstable', 'stable', 'testing', 'unstable'];
const ARCHIVE_SUITE = new RegExp(`^(${CODENAMES.join('|')})(-updates|-backports|-proposed-updates)?$`);
const SECURITY_SUITE = new RegExp(`^(${CODENAMES.join('|')})(-security|/updates)$`);

/** One-line format: `deb [opt=val …] URI SUITE [COMPONENT …]`; deb-src and commented lines are not package sources. */
export function parseOneLine(text: string, file: string): AptEntry[] {
  const out: AptEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const m = /^(deb|deb-src)\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
    if (!m) throw new Error(`reading ${file}:${i + 1}: expected 'deb [options] URI SUITE COMPONENT…', found '${line}'`);
    if (m[1] === 'deb') out.push({ uri: m[2], suites: [m[3]], origin: `${file}:${i + 1}` });
  });
  return out;
}

/** deb822 format: stanzas separated by blank lines; fields may continue on lines that start with white space. */
export function parseDeb822(text: string, file: string): AptEntry[] {
  const out: AptEntry[] = [];
  let fields = new Map<string, string>();
  let last = '';
  let startLine = 0;
  const flush = () => {
    if (fields.size) {
      const types = (fields.get('types') ?? '').split(/\s+/);
      const enabled = (fields.get('enabled') ?? 'yes').trim().toLowerCase() !== 'no';
      const uris = (fields.get('uris') ?? '').split(/\s+/).filter(Boolean);
      const suites = (fields.get('suites') ?? '').split(/\s+/).filter(Boolean);
      if (enabled && types.includes('deb')) {
        if (!uris.length || !suites.length) throw new Error(`reading ${file}:${startLine}: a stanza of Types: deb needs URIs: and Suites:`);
        for (const uri of uris) out.push({ uri, suites, origin: `${file}:${startLine}` });
      }
    }
    fields = new Map();
    last = '';
  };
  text.split('\n').forEach((raw, i) => {
    if (/^\s*#/.test(raw)) return;
    if (!raw.trim()) return flush();
    if (/^\s/.test(raw)) {
      if (!last) throw new Error(`reading ${file}:${i + 1}: a continuation line with no field before it`);
      fields.set(last, `${fields.get(last)} ${raw.trim()}`);
      return;
    }
    const colon = raw.indexOf(':');
    if (colon <= 0) throw new Error(`reading ${file}:${i + 1}: expected 'Field: value', found '${raw.trim()}'`);
    if (!fields.size) startLine = i + 1;
    last = raw.slice(0, colon).trim().toLowerCase();
    fields.set(last, raw.slice(colon + 1).trim());
  });
  flush();
  return out;
}

/** The first archive and the first security archive among the entries, in apt's reading order. */
export function pickDebianMirrors(entries: AptEntry[]): DebianMirrors {
  const usable = entries.filter((e) => !e.uri.startsWith('cdrom:'));
  const find = (re: RegExp) => usable.find((e) => e.suites.some((s) => re.test(s)))?.uri.replace(/\/+$/, '');
  return { debian: find(ARCHIVE_SUITE), security: find(SECURITY_SUITE) };
}

/** Every package source of the apt configuration under `root` (normally /), in the order apt reads them. */
export function readAptSources(root = '/'): AptEntry[] {
  const etc = path.join(root, 'etc', 'apt');
  const files: string[] = [];
  if (fs.existsSync(path.join(etc, 'sources.list'))) files.push(path.join(etc, 'sources.list'));
  const dir = path.join(etc, 'sources.list.d');
  // apt ignores other extensions (.disabled, .save, .dpkg-old …); so do we.
  if (fs.existsSync(dir)) files.push(...fs.readdirSync(dir).filter((f) => /^[\w.-]+\.(list|sources)$/.test(f)).sort().map((f) => path.join(dir, f)));
  return files.flatMap((f) => (f.endsWith('.sources') ? parseDeb822 : parseOneLine)(fs.readFileSync(f, 'utf8'), f));
}

/**
 * The mirrors to fetch from: VIPGUARD_DEBIAN_MIRROR / VIPGUARD_DEBIAN_SECURITY_MIRROR when set, else this machine's
 * apt configuration. Throws, naming both ways, when the one asked for is found in neither.
 */
export function debianMirrors(need: { security: boolean }, env = process.env, root = '/'): { debian: string; security?: string } {
  let fromApt: DebianMirrors | undefined;
  const apt = () => (fromApt ??= pickDebianMirrors(readAptSources(root)));
  const debian = env.VIPGUARD_DEBIAN_MIRROR || apt().debian;
  const security = env.VIPGUARD_DEBIAN_SECURITY_MIRROR || (need.security ? apt().security : undefined);
  const where = `${path.join(root, 'etc/apt/sources.list')} or ${path.join(root, 'etc/apt/sources.list.d')}/*.{list,sources}`;
  if (!debian) {
    throw new Error(`finding a Debian mirror: no entry for a Debian suite (${CODENAMES.slice(0, 5).join(', ')}, …) in ${where} — ` +
      'set VIPGUARD_DEBIAN_MIRROR to the URI of a Debian archive');
  }
  if (need.security && !security) {
    throw new Error(`finding a Debian security mirror: no entry for a <codename>-security suite in ${where} — ` +
      'set VIPGUARD_DEBIAN_SECURITY_MIRROR to the URI of the Debian security archive');
  }
  return { debian, security };
}
