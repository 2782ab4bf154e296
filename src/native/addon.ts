// Loads the native addon (native/build/Release/vipguard_native.node) once. Each part of the addon has its own
// typed face next to this file (bpf.ts, netlink.ts, clock.ts); nothing else should require() the addon.
import * as path from 'node:path';
import * as fs from 'node:fs';

let cached: unknown;

export function addon<T>(): T {
  if (cached === undefined) {
    // dist/src/native/addon.js -> <repo>/native/build/Release
    const repo = path.resolve(__dirname, '..', '..', '..');
    const file = path.join(repo, 'native', 'build', 'Release', 'vipguard_native.node');
    if (!fs.existsSync(file)) {
      throw new Error(`loading native addon: ${file} not found — run \`npm run build\` first`);
    }
    cached = require(file);
  }
  return cached as T;
}
