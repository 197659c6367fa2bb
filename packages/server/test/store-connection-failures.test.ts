import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { isStoreFailure } from '../src/store/connection-failures.js';
import { freePort } from './helpers/broker-server-process.js';
import { POSTGRES_SKIP, POSTGRES_URL } from './helpers/postgres.js';

/** Which store errors are the store's (503 STORE_UNAVAILABLE, retried), with real driver errors. */
describe('store failures the client may retry', () => {
  it('counts a refused connection as the store being away', async () => {
    const client = new pg.Client({ host: '127.0.0.1', port: await freePort(), connectionTimeoutMillis: 2000 });
    client.on('error', () => {});
    const err = await client.connect().then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(err, 'nothing listens there');
    assert.equal(isStoreFailure(err), true);
    assert.equal(isStoreFailure(new Error('a bug')), false);
  });

  it('counts a node out of descriptors (EMFILE) as the store being away, not an internal error', {
    skip: POSTGRES_SKIP,
  }, () => {
    const script = fileURLToPath(new URL('./helpers/connect-without-descriptors.js', import.meta.url));
    const run = spawnSync(
      'bash',
      ['-c', 'ulimit -n 64 && exec "$0" "$1" "$2"', process.execPath, script, POSTGRES_URL],
      {
        encoding: 'utf8',
        timeout: 20_000,
      },
    );
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout.trim().split('\n').at(-1) as string), {
      code: 'EMFILE',
      storeFailure: true,
    });
  });
});
