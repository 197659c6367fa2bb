#!/usr/bin/env node
// `npm test`: every test file under node:test, one at a time, then one line naming the backend
// suites that were skipped because their GATEHOUSE_TEST_* variable is not set.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const BACKENDS = [
  ['GATEHOUSE_TEST_POSTGRES_URL', 'PostgreSQL'],
  ['GATEHOUSE_TEST_REDIS_URL', 'Redis'],
  ['GATEHOUSE_TEST_NATS_URL', 'NATS'],
];
const missing = BACKENDS.filter(([name]) => !process.env[name]);
const summary =
  missing.length === 0
    ? 'backend suites: PostgreSQL, Redis and NATS all run'
    : `backend suites SKIPPED for ${missing.map(([, what]) => what).join(', ')}: ${missing
        .map(([name]) => name)
        .join(', ')} not set (run \`npm run test:services\` to use the local services, see README "Development")`;

const files = ['packages/protocol', 'packages/client', 'packages/server', 'packages/web'].flatMap((pkg) => {
  const dir = join(pkg, 'dist', 'test');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.test.js'))
    .sort()
    .map((f) => join(dir, f));
});
const args = ['--test', '--test-concurrency=1', ...process.argv.slice(2), ...files];
if (missing.length > 0) console.log(`# ${summary}`);
const result = spawnSync(process.execPath, args, { stdio: 'inherit' });
console.log(`# ${summary}`);
process.exit(result.status ?? 1);
