#!/usr/bin/env node
// Regenerates the generated parts of the docs: the protocol tables in docs/protocol.md and the
// configuration table in README.md. Tests fail when these drift from the code.
import { readFileSync, writeFileSync } from 'node:fs';
import { fillProtocolTables } from '../packages/protocol/dist/src/doc-tables.js';
import { fillConfigTable } from '../packages/server/dist/src/config-docs.js';

const write = (path, fill) => {
  const before = readFileSync(path, 'utf8');
  const after = fill(before);
  if (after !== before) writeFileSync(path, after);
  console.log(`${path}: ${after === before ? 'up to date' : 'updated'}`);
};
write('docs/protocol.md', fillProtocolTables);
write('README.md', fillConfigTable);
