import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Gatehouse } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { eventually } from './helpers/broker-conformance.js';
import {
  adminQuery,
  createTestDatabase,
  POSTGRES_SKIP,
  POSTGRES_URL,
  TcpProxy,
  type TestDatabase,
  withAddress,
} from './helpers/postgres.js';
import { api, createAppKey, startServer, type TestServer, userToken } from './helpers/test-server.js';
import { connectWithToken, TestClient } from './helpers/ws-client.js';
import { expectHttpRejection } from './helpers/ws-expect.js';

/*
 * A node whose PostgreSQL is unreachable when it starts (issue 7, item 14): it listens all
 * the same, says why it cannot serve yet (503 everywhere but the health routes), and finishes
 * its start-up (migrations, cluster state, rate-limit tables) by itself once the database
 * answers. A proxy in front of the real server stands in for the database going away.
 */

/** Generous: the retries back off to 5 s between attempts. */
const START_WAIT_MS = 20_000;

describe('PostgreSQL unreachable at start', { skip: POSTGRES_SKIP }, () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let server: TestServer;

  before(async () => {
    db = await createTestDatabase();
    const target = new URL(POSTGRES_URL);
    proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
    // Take a free port, then close it: the node starts against a port nobody listens on.
    await proxy.up();
    await proxy.down();
    server = await startServer({
      store: { url: withAddress(db.url, '127.0.0.1', proxy.port), poolSize: 4, connectTimeout: '1s' },
    });
  });
  after(async () => {
    await server?.close();
    await proxy?.down();
    await db?.drop();
  });

  it('listens, not ready, refusing with 503 until the database answers, then finishes its start-up and serves', async () => {
    assert.equal((await api(server, 'GET', '/healthz')).status, 200, 'alive');
    const readyz = await api(server, 'GET', '/readyz');
    assert.equal(readyz.status, 503);
    assert.deepEqual(readyz.body, { status: 'not ready', store: 'unavailable', broker: 'ok' });

    const token = await api(server, 'POST', '/api/v1/public/customer-token', {
      body: { name: 'Early', channel: 'web' },
    });
    assert.equal(token.status, 503, JSON.stringify(token.body));
    assert.equal(token.body.error, 'STORE_UNAVAILABLE');
    assert.equal(token.headers.get('retry-after'), '1');
    const admin = await api(server, 'GET', '/api/v1/admin/stats', { headers: { 'x-admin-key': server.adminKey } });
    assert.equal(admin.status, 503, 'credentialed routes too');
    // Percent-encoded and odd paths do not slip past the gate either.
    for (const path of ['/api/v1/%61dmin/stats', '//api/v1/admin/stats', '/api/v1/admin/stats/']) {
      const res = await api(server, 'GET', path, { headers: { 'x-admin-key': server.adminKey } });
      assert.ok(res.status === 503 || res.status === 404, `${path}: ${res.status}`);
    }

    const early = TestClient.connect(`${server.wsUrl}/ws`, { headers: { authorization: 'Bearer not-looked-at' } });
    const refusal = await expectHttpRejection(early, 503, 'SERVER_BUSY');
    assert.match(refusal.body.err_msg, /starting/);

    await proxy.up();
    await eventually(
      async () => assert.equal((await api(server, 'GET', '/readyz')).status, 200),
      START_WAIT_MS,
      'ready once the database answers',
    );

    // The start-up work was done: schema, this node's heartbeat row, the rate-limit tables.
    const nodes = await adminQuery<{ node: string }>(db.url, 'SELECT node FROM gh_nodes');
    assert.equal(nodes.length, 1, 'the node registered its heartbeat');
    const tables = await adminQuery<{ tablename: string }>(
      db.url,
      "SELECT tablename FROM pg_tables WHERE tablename LIKE 'gh_rate_limits_%' ORDER BY tablename",
    );
    assert.ok(tables.length >= 5, `rate-limit tables: ${tables.map((t) => t.tablename)}`);

    const appKey = await createAppKey(server, 'after start-up');
    const { client, connected } = await connectWithToken(server.wsUrl, '/ws', await userToken(server, appKey, 'late'));
    assert.equal(connected.type, 'connected');
    client.close();
  });
});

describe('a start whose database refuses for a reason other than being unreachable', { skip: POSTGRES_SKIP }, () => {
  it('fails at once (a database that does not exist is a configuration to fix, not a wait)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-missing-db-'));
    const missing = new URL(POSTGRES_URL);
    missing.pathname = '/gh_no_such_database';
    const config = loadConfig({
      overrides: {
        server: { host: '127.0.0.1', port: 0 },
        dataDir,
        adminKey: 'test-admin-key',
        store: { url: missing.toString() },
        log: { level: 'silent' },
      },
    });
    try {
      await assert.rejects(Gatehouse.create({ config, logger: createLogger('silent') }), /does not exist/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
