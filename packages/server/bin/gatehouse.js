#!/usr/bin/env node
// The `gatehouse` command. A checked-in shim, so npm can link the bin at install time, before
// the build has produced dist/ (`npm ci` builds it through the root `prepare` script).
import { existsSync } from 'node:fs';

const cli = new URL('../dist/src/cli.js', import.meta.url);
if (!existsSync(cli)) {
  console.error('gatehouse: not built yet; run `npm run build` in the repository root');
  process.exit(1);
}
await import(cli.href);
