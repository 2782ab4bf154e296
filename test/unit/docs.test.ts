// The committed reference docs and schema file are what their sources generate (run `vipguard docs` to update).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GENERATED } from '../../src/cli/docs';
import { REPO_ROOT } from '../../src/common/paths';
import { ATTRIBUTES, METRICS, SPANS } from '../../src/telemetry/metadata';

for (const [rel, gen] of Object.entries(GENERATED)) {
  test(`${rel} is up to date with its source`, () => {
    const file = path.join(REPO_ROOT, rel);
    assert.ok(fs.existsSync(file), `${rel} missing: run node dist/src/cli/main.js docs`);
    assert.equal(fs.readFileSync(file, 'utf8'), gen(), `${rel} is stale: run node dist/src/cli/main.js docs`);
  });
}

test('every attribute a span or metric names is declared', () => {
  const declared = new Set(Object.keys(ATTRIBUTES));
  for (const [name, s] of Object.entries(SPANS)) {
    for (const a of [...s.attributes, ...s.optional]) assert.ok(declared.has(a), `${name} names undeclared ${a}`);
  }
  for (const [name, m] of Object.entries(METRICS)) {
    for (const a of m.attributes) assert.ok(declared.has(a), `${name} names undeclared ${a}`);
  }
});
