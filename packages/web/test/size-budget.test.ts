import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildPages } from '../scripts/build.js';

describe('page size budgets (min+gzip)', () => {
  it('the widget with Preact and the SDK stays within 35 KB, the console within 150 KB', async () => {
    const pages = await buildPages();
    const widget = pages.find((p) => p.page === 'widget');
    const console = pages.find((p) => p.page === 'console');
    assert.ok(widget && console);
    // The SDK and Preact are really inside: a bundle that lost them would pass the budget trivially.
    assert.ok(widget.gzipped > 10 * 1024, `widget suspiciously small: ${widget.gzipped} bytes`);
    assert.ok(widget.gzipped <= widget.budget, `widget is ${widget.gzipped} bytes, budget ${widget.budget}`);
    assert.ok(console.gzipped <= console.budget, `console is ${console.gzipped} bytes, budget ${console.budget}`);
  });
});
