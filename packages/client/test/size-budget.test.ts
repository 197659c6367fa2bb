import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { bundle, SIZE_BUDGET } from '../scripts/bundle.js';

describe('browser bundle', () => {
  it(`stays within ${SIZE_BUDGET / 1024} KB minified and gzipped, with no import of ws or node: modules`, async () => {
    const report = await bundle();
    assert.ok(report.gzipped <= SIZE_BUDGET, `${report.gzipped} bytes min+gzip > budget ${SIZE_BUDGET}`);
    const code = readFileSync(report.path, 'utf8');
    assert.doesNotMatch(code, /from"ws"|import\("ws"\)|node:/);
    assert.match(code, /export\{/);
  });
});
