import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SqliteStore } from '../src/store/sqlite-store.js';
import { startServer } from './helpers/test-server.js';

describe('the SQLite file', () => {
  let dir: string;
  let umask: number;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-sqlite-files-'));
    // The most permissive umask: the modes below must not come from it.
    umask = process.umask(0);
  });
  after(() => {
    process.umask(umask);
    rmSync(dir, { recursive: true, force: true });
  });

  it('is created 0600 with its -wal and -shm, in a new folder created 0700', async () => {
    const file = join(dir, 'new-folder', 'gatehouse.db');
    const store = new SqliteStore(file);
    try {
      await store.migrate();
      for (const f of [file, `${file}-wal`, `${file}-shm`]) assert.equal(statSync(f).mode & 0o777, 0o600, f);
      assert.equal(statSync(join(dir, 'new-folder')).mode & 0o777, 0o700);
    } finally {
      await store.close();
    }
  });

  it('fsyncs every commit (synchronous=FULL) by default, and NORMAL only when configured', async () => {
    const full = await startServer({}, { dataDir: join(dir, 'full') });
    const normal = await startServer({ store: { sqliteSynchronous: 'NORMAL' } }, { dataDir: join(dir, 'normal') });
    try {
      const level = (server: typeof full) =>
        (server.gatehouse.services.store as SqliteStore).db.pragma('synchronous', { simple: true });
      assert.equal(level(full), 2, 'FULL');
      assert.equal(level(normal), 1, 'NORMAL');
      // The data folder Gatehouse creates is owner-only.
      assert.equal(statSync(join(dir, 'full')).mode & 0o777, 0o700);
    } finally {
      await full.close();
      await normal.close();
    }
  });
});
