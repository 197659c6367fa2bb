import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type Database from 'better-sqlite3';
import pino from 'pino';
import { ReadinessProbe } from '../src/http/readiness-probe.js';
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

/** The server's own SQLite connection (the real file). */
const sqlite = (server: TestServer) => (server.gatehouse.services.store as unknown as { db: Database.Database }).db;

/** Every write on the store's connection fails with SQLITE_READONLY, as on a full or read-only disk; reads work. */
function unwritable(server: TestServer): () => void {
  const db = sqlite(server);
  db.pragma('query_only = ON');
  return () => db.pragma('query_only = OFF');
}

/** A store read fails (a driver error on the table the check reads). */
function unreadable(server: TestServer, table: string): () => void {
  const db = sqlite(server);
  db.exec(`ALTER TABLE ${table} RENAME TO ${table}_away`);
  return () => db.exec(`ALTER TABLE ${table}_away RENAME TO ${table}`);
}

describe('store failures answer the retryable 503 STORE_UNAVAILABLE, never 500 INTERNAL', () => {
  let server: TestServer;
  let appKey: string;
  const admin = () => ({ 'x-admin-key': server.adminKey });

  before(async () => {
    server = await startServer();
    appKey = await createAppKey(server, 'store failure app');
    await userToken(server, appKey, 'member-1');
  });
  after(() => server.close());

  const assertUnavailable = (res: { status: number; headers: Headers; body: any }, what: string) => {
    assert.equal(res.status, 503, `${what}: ${JSON.stringify(res.body)}`);
    assert.equal(res.headers.get('retry-after'), '1', `${what}: Retry-After`);
    assert.doesNotMatch(JSON.stringify(res.body), /readonly|no such table|SQLITE|_away/i, `${what}: no driver detail`);
  };

  it('answers 503 when the check before a write cannot read the store (app key, principal lookups)', async () => {
    let restore = unreadable(server, 'app_keys');
    try {
      const group = await api(server, 'POST', '/api/v1/conversations', {
        headers: { 'x-app-key': appKey },
        body: { kind: 'group', name: 'g', members: ['member-1'] },
      });
      assertUnavailable(group, 'group creation with an app key');
      assert.equal(group.body.error, 'STORE_UNAVAILABLE');
      assert.equal(typeof group.body.message, 'string');

      const openApi = await api(server, 'POST', '/openapi/v1/user/login', {
        headers: { 'x-app-key': appKey },
        body: { id: 'u-503', nickname: 'U', device: 'im_web' },
      });
      assertUnavailable(openApi, 'open API login');
      assert.equal(openApi.body.code, 503, 'in the open API shape');
      assert.equal(openApi.body.error, 'STORE_UNAVAILABLE');
      assert.equal(typeof openApi.body.msg, 'string');
    } finally {
      restore();
    }

    restore = unreadable(server, 'principals');
    try {
      const block = await api(server, 'POST', '/api/v1/admin/principals/member-1/block', { headers: admin() });
      assertUnavailable(block, 'admin block');
      assert.equal(block.body.error, 'STORE_UNAVAILABLE');
      const login = await api(server, 'POST', '/api/v1/public/login', {
        body: { username: 'someone', password: 'some-password' },
      });
      assertUnavailable(login, 'password login');
    } finally {
      restore();
    }
  });

  it('answers 503 when the write itself fails, in each route shape', async () => {
    const restore = unwritable(server);
    try {
      const customer = await api(server, 'POST', '/api/v1/public/customer-token', {
        body: { name: 'Visitor', channel: 'web' },
      });
      assertUnavailable(customer, 'customer-token');
      assert.equal(customer.body.error, 'STORE_UNAVAILABLE');

      const agent = await api(server, 'POST', '/api/v1/admin/agents', {
        headers: admin(),
        body: { username: 'never', password: 'never-password' },
      });
      assertUnavailable(agent, 'agent creation');

      const refresh = await api(server, 'POST', '/api/refresh-token', { body: { refresh_token: 'grt_unknown' } });
      // An unknown refresh token is read first: a 401 when the read works is fine, a 500 never.
      assert.ok(refresh.status === 401 || refresh.status === 503, JSON.stringify(refresh.body));
      assert.ok('err_msg' in refresh.body && 'code' in refresh.body, 'in the refresh envelope');
    } finally {
      restore();
    }
    const after = await api(server, 'POST', '/api/v1/public/customer-token', {
      body: { name: 'Visitor', channel: 'web' },
    });
    assert.equal(after.status, 200, 'writes work again once the store does');
  });
});

describe('/readyz reflects the ability to write', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  /** Counts the readiness probe's writes with a trigger in the real file. */
  function countProbeWrites(): () => number {
    const db = sqlite(server);
    db.exec(`CREATE TABLE probe_writes (n INTEGER NOT NULL); INSERT INTO probe_writes VALUES (0);
      CREATE TRIGGER count_probe AFTER UPDATE ON readiness_probe BEGIN UPDATE probe_writes SET n = n + 1; END;`);
    return () => (db.prepare('SELECT n FROM probe_writes').get() as { n: number }).n;
  }

  const waitForReadyz = async (status: number) => {
    // The verdict is cached for one second: poll until it changes (bounded).
    for (let i = 0; i < 100; i++) {
      const res = await api(server, 'GET', '/readyz');
      if (res.status === status) return res;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail(`/readyz never answered ${status}`);
  };

  it('answers 503 while every write fails even though reads work, without the driver error, then 200 again', async () => {
    const ready = await api(server, 'GET', '/readyz');
    assert.deepEqual(ready.body, { status: 'ready', store: 'ok', broker: 'ok' });

    const restore = unwritable(server);
    try {
      assert.equal((await api(server, 'GET', '/healthz')).status, 200);
      const down = await waitForReadyz(503);
      assert.deepEqual(down.body, { status: 'not ready', store: 'unavailable', broker: 'ok' });
      assert.doesNotMatch(JSON.stringify(down.body), /readonly|SQLITE|attempt/i);
    } finally {
      restore();
    }
    const up = await waitForReadyz(200);
    assert.deepEqual(up.body, { status: 'ready', store: 'ok', broker: 'ok' });
  });

  it('writes at most one probe per second however many scrapes arrive', async () => {
    await api(server, 'GET', '/readyz');
    const writes = countProbeWrites();
    const parallel = await Promise.all(Array.from({ length: 100 }, () => api(server, 'GET', '/readyz')));
    assert.ok(parallel.every((r) => r.status === 200));
    for (let i = 0; i < 50; i++) assert.equal((await api(server, 'GET', '/readyz')).status, 200);
    // 150 scrapes: without the cache each would write; with it, one write per elapsed second.
    assert.ok(writes() < 25, `${writes()} probe writes for 150 scrapes`);
  });
});

describe('the readiness probe', () => {
  it('reuses a verdict for one second and probes again after it, on its own time source', async () => {
    const server = await startServer();
    try {
      let now = 0;
      const probe = new ReadinessProbe(
        server.gatehouse.services.store,
        server.gatehouse.services.broker,
        pino({ level: 'silent' }),
        () => true,
        () => now,
      );
      assert.deepEqual(await probe.check(), { store: true, broker: true });
      const restore = unwritable(server);
      try {
        assert.deepEqual(await probe.check(), { store: true, broker: true }, 'cached');
        now += 999;
        assert.deepEqual(await probe.check(), { store: true, broker: true }, 'still cached');
        now += 1;
        assert.deepEqual(await probe.check(), { store: false, broker: true }, 'probed again');
      } finally {
        restore();
      }
      now += 1000;
      assert.deepEqual(await probe.check(), { store: true, broker: true });
    } finally {
      await server.close();
    }
  });
});

describe('store failures on PostgreSQL answer 503 STORE_UNAVAILABLE', { skip: POSTGRES_SKIP }, () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let server: TestServer;
  let appKey: string;

  before(async () => {
    db = await createTestDatabase();
    const target = new URL(POSTGRES_URL);
    proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
    await proxy.up();
    server = await startServer({ store: { url: withAddress(db.url, '127.0.0.1', proxy.port), poolSize: 4 } });
    appKey = await createAppKey(server, 'pg failure app');
  });
  after(async () => {
    await server?.close();
    await proxy?.down();
    await db?.drop();
  });

  const waitForReadyz = async (status: number) => {
    for (let i = 0; i < 200; i++) {
      const res = await api(server, 'GET', '/readyz');
      if (res.status === status) return res;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail(`/readyz never answered ${status}`);
  };

  it('answers 503 when a write fails in the database (a trigger refuses it)', async () => {
    await adminQuery(
      db.url,
      `CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql;
       CREATE TRIGGER refuse_principals BEFORE INSERT ON principals FOR EACH ROW EXECUTE FUNCTION refuse();`,
    );
    try {
      const res = await api(server, 'POST', '/api/v1/public/customer-token', { body: { name: 'V', channel: 'web' } });
      assert.equal(res.status, 503, JSON.stringify(res.body));
      assert.equal(res.body.error, 'STORE_UNAVAILABLE');
      assert.doesNotMatch(JSON.stringify(res.body), /injected/);
    } finally {
      await adminQuery(db.url, 'DROP TRIGGER refuse_principals ON principals; DROP FUNCTION refuse();');
    }
  });

  it('answers 503 and turns not ready while PostgreSQL is unreachable, then recovers', async () => {
    await waitForReadyz(200);
    await proxy.down();
    try {
      const openApi = await api(server, 'POST', '/openapi/v1/user/login', {
        headers: { 'x-app-key': appKey },
        body: { id: 'pg-u', nickname: 'U', device: 'im_web' },
      });
      assert.equal(openApi.status, 503, JSON.stringify(openApi.body));
      assert.equal(openApi.body.error, 'STORE_UNAVAILABLE');
      const block = await api(server, 'POST', '/api/v1/admin/principals/pg-u/block', {
        headers: { 'x-admin-key': server.adminKey },
      });
      assert.equal(block.status, 503, JSON.stringify(block.body));
      const down = await waitForReadyz(503);
      assert.equal(down.body.store, 'unavailable');
      assert.doesNotMatch(JSON.stringify(down.body), /ECONN|terminated|timeout/i);
    } finally {
      await proxy.up();
    }
    await waitForReadyz(200);
    assert.equal(
      (await userToken(server, appKey, 'pg-u')).split('.').length,
      3,
      'writes work again once the database is back',
    );
  });
});
