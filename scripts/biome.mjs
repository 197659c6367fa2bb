#!/usr/bin/env node
// Runs Biome (lint + format) from its platform package. The `@biomejs/biome` wrapper lists
// binaries for every platform, and a registry that lacks some of them makes `npm ci` refuse
// the lock file; so the project depends on the platform packages directly (optional, so other
// platforms install cleanly) and this launcher picks the one for this machine.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const pkg = `@biomejs/cli-${process.platform}-${process.arch}`;
let binary;
try {
  binary = join(dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`)), 'biome');
} catch {
  console.error(`biome: ${pkg} is not installed for this platform; install it with npm i -D ${pkg}@2.6.8`);
  process.exit(1);
}
const result = spawnSync(binary, process.argv.slice(2), { stdio: 'inherit' });
process.exit(result.status ?? 1);
