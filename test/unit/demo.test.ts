// The demo's summary and plot without a VM: made-up runs with HTTP requests and DNS lookups, checked for the counts
// the README quotes (failed or slower than 2 s, per protocol, and which backend answered the lookups).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ClientResult, RunRecord, summarize, TIMELINE } from '../../src/demo/inside';
import { renderHtml } from '../../src/demo/plot';

const result = (at: number, ms: number, backend?: string, error?: string): ClientResult =>
  ({ at, doneAt: at + ms / 1000, ms, ok: !error, backend, error });

function run(name: RunRecord['name'], lookups: ClientResult[]): RunRecord {
  return {
    name, steps: TIMELINE,
    clients: [result(1, 50, 'b1'), result(7, 10_000, undefined, 'no answer within 10 s'), result(8, 2100, 'b3')],
    lookups,
    attempts: [{ at: 7, ms: 700, backend: 'b2', outcome: 'unanswered', index: 0 }],
    exchanges: [{ at: 7, backend: 'b2', outcome: 'unanswered', count: 1 }, { at: 8, backend: 'b1', outcome: 'answered', count: 1 }],
    quarantines: name === 'vipguard' ? [{ backend: 'b2', protocol: 'udp', from: 8 }] : [],
  };
}

test('the summary counts DNS lookups failed and slow per run, and who answered them', () => {
  const bare = run('bare IPVS', [result(1, 20, 'b1'), result(7, 10_000, undefined, 'no answer within 2 × 5 s'), result(8, 30, 'b3')]);
  const vg = run('vipguard', [result(1, 20, 'b1'), result(7, 5020, 'b3'), result(8, 30, 'b3')]);
  const text = summarize([bare, vg]);
  assert.match(text, /^bare IPVS +3 +1 +0 .*answered by b1 1, b3 1; failed: 1 no answer within 2 × 5 s$/m);
  assert.match(text, /^vipguard +3 +0 +1 .*answered by b1 1, b3 2$/m);
  // HTTP: one failed, one slow; DNS: one failed (bare), one slow (vipguard).
  assert.match(text, /bare IPVS: 2 requests and 1 DNS lookups failed or took more than 2 s; with vipguard: 2 and 1\./);
  assert.match(text, /vipguard quarantined b2 in DNS \(removed\) from t=8s to the end/);
});

test('the plot has a lane for DNS lookups and marks the UDP exchanges and removals', () => {
  const html = renderHtml([run('vipguard', [result(7, 10_000, undefined, 'no answer within 2 × 5 s')])], 'kernel test');
  assert.match(html, />dns<\/text>/);
  assert.match(html, /lookup failed after 10000 ms: no answer within 2 × 5 s/);
  assert.match(html, /DNS exchange unanswered/);
  assert.match(html, /removed from DNS 8\.0/);
  assert.match(html, /3 HTTP requests, 1 failed, 1 slower than 2 s; 1 DNS lookups, 1 failed, 0 slower than 2 s/);
});
