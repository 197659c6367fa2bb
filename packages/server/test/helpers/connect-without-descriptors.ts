/**
 * Run as a child process with a low open-files limit (`ulimit -n`): takes every descriptor
 * left, then connects to PostgreSQL (argv[2]) with the real driver, and prints how the failure
 * is classified: `{code, storeFailure}` as JSON.
 */
import { openSync } from 'node:fs';
import pg from 'pg';
import { isStoreFailure } from '../../src/store/connection-failures.js';

const held: number[] = [];
try {
  for (;;) held.push(openSync('/dev/null', 'r'));
} catch {}
const client = new pg.Client({ connectionString: process.argv[2], connectionTimeoutMillis: 2000 });
client.on('error', () => {});
try {
  await client.connect();
  console.log(JSON.stringify({ connected: true }));
} catch (err) {
  console.log(JSON.stringify({ code: (err as { code?: string }).code, storeFailure: isStoreFailure(err) }));
}
process.exit(0);
