// Small shared test helpers. No fakes of the kernel here: tests that need the kernel use the real one.

/** For node:test's `skip`: a reason string when not root, false when root. */
export function requireRoot(): string | false {
  return process.getuid && process.getuid() === 0 ? false : 'needs root (BPF, namespaces): run as root';
}

/** Polls `cond` every 10 ms until true; fails after `timeoutMs` naming what was awaited. */
export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Polls an async `cond` every 200 ms (a failing check counts as false) until true; fails after `timeoutMs`. */
export async function waitForAsync(cond: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Tests run the rules the docs show, not a copy of them (shared with the benchmark, hence in src/). */
export { docsYamlBlock } from '../src/common/docs';
