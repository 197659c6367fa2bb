import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fillProtocolTables, renderProtocolTables } from '../src/doc-tables.js';

const docPath = new URL('../../../../docs/protocol.md', import.meta.url);

describe('docs/protocol.md', () => {
  it('has every table rendered from the protocol package, unchanged (run npm run docs to refresh)', () => {
    const doc = readFileSync(docPath, 'utf8');
    for (const name of Object.keys(renderProtocolTables()))
      assert.ok(doc.includes(`<!-- table:${name} -->`), `docs/protocol.md lacks the ${name} table`);
    assert.equal(doc, fillProtocolTables(doc));
  });
});
