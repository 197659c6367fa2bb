import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import {
  MIGRATIONS as POSTGRES_MIGRATIONS,
  PostgresStore,
  type PostgresStoreOptions,
} from '../src/store/postgres-store.js';
import { MIGRATIONS as SQLITE_MIGRATIONS, SqliteStore } from '../src/store/sqlite-store.js';
import type { NewMessage, Store } from '../src/store/store.js';
import {
  adminQuery,
  createTestDatabase,
  POSTGRES_SKIP,
  POSTGRES_URL,
  TcpProxy,
  type TestDatabase,
  withAddress,
} from './helpers/postgres.js';
import { type StoreFixture, storeConformance } from './helpers/store-conformance.js';
import { createAppKey, startServer, userToken } from './helpers/test-server.js';
import { connectWithToken } from './helpers/ws-client.js';

storeConformance('SqliteStore', async (): Promise<StoreFixture> => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-store-'));
  const file = join(dir, 'gatehouse.db');
  const store = new SqliteStore(file);
  await store.migrate();
  const peers: SqliteStore[] = [];
  return {
    store,
    async openPeer() {
      const peer = new SqliteStore(file);
      await peer.migrate();
      peers.push(peer);
      return peer;
    },
    async cleanup() {
      for (const s of [store, ...peers]) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

/** A PostgresStore on its own fresh database; peers are further pools on it, as other nodes. */
async function postgresFixture(): Promise<StoreFixture> {
  const db = await createTestDatabase();
  const stores: PostgresStore[] = [];
  const open = async () => {
    const store = new PostgresStore({ url: db.url, poolSize: 3 });
    stores.push(store);
    await store.migrate();
    return store;
  };
  return {
    store: await open(),
    openPeer: open,
    async cleanup() {
      for (const s of stores) await s.close();
      await db.drop();
    },
  };
}

storeConformance('PostgresStore', postgresFixture, POSTGRES_SKIP ? { skip: POSTGRES_SKIP } : {});

/**
 * Data as schema version 2 held it (before groups had owners and customers one session):
 * plain SQL that both stores accept.
 */
const VERSION_2_DATA = `
  INSERT INTO principals (id, kind, name, app_key_id, created_at) VALUES
    ('u1', 'user', 'U1', 'app-a', 1), ('u2', 'user', 'U2', 'app-a', 1), ('u3', 'user', 'U3', 'app-b', 1),
    ('ag1', 'agent', 'Agent', NULL, 1), ('c1', 'customer', 'C1', NULL, 1), ('c2', 'customer', 'C2', NULL, 1);
  INSERT INTO conversations (id, kind, name, last_seq, created_at, customer_id, agent_id, status) VALUES
    ('g-a', 'group', 'A', 0, 1, NULL, NULL, NULL), ('g-mixed', 'group', 'M', 0, 1, NULL, NULL, NULL),
    ('g-empty', 'group', 'E', 0, 1, NULL, NULL, NULL), ('g-agent', 'group', 'G', 0, 1, NULL, NULL, NULL),
    ('s1', 'support', NULL, 0, 1, 'c1', NULL, 'open'), ('s2', 'support', NULL, 1, 2, 'c1', NULL, 'open'),
    ('s3', 'support', NULL, 0, 3, 'c1', NULL, 'open'), ('s4', 'support', NULL, 2, 1, 'c2', 'ag1', 'claimed'),
    ('s5', 'support', NULL, 1, 2, 'c2', NULL, 'open'), ('s6', 'support', NULL, 0, 1, 'c3', NULL, 'closed'),
    ('s7', 'support', NULL, 0, 2, 'c3', NULL, 'open');
  INSERT INTO members (conversation_id, principal_id) VALUES
    ('g-a', 'u1'), ('g-a', 'u2'), ('g-mixed', 'u1'), ('g-mixed', 'u3'), ('g-agent', 'u1'), ('g-agent', 'ag1'),
    ('s1', 'c1'), ('s2', 'c1'), ('s3', 'c1'), ('s4', 'c2'), ('s4', 'ag1'), ('s5', 'c2'), ('s6', 'c3'), ('s7', 'c3');
  INSERT INTO messages (conversation_id, seq, id, from_id, client_msg_id, ts, body) VALUES
    ('s2', 1, 'm1', 'c1', NULL, 100, '{}'), ('s5', 1, 'm2', 'c2', NULL, 200, '{}'),
    ('s4', 1, 'm3', 'ag1', NULL, 50, '{}'), ('s4', 2, 'm4', 'c2', NULL, 60, '{}');
  INSERT INTO refresh_tokens (hash, family_id, sid, principal_id, kind, created_at, expires_at, used_at) VALUES
    ('r-unused', 'f1', 'f1', 'c1', 'customer', 1, 9000000000000, NULL),
    ('r-spent', 'f2', 'f2', 'c2', 'customer', 1, 9000000000000, 100);`;

/** Checks what the third and fourth migrations made of VERSION_2_DATA. */
async function assertMigratedVersion2(store: Store): Promise<void> {
  // A token spent before the upgrade has no recorded successor: no grace, however recent.
  assert.equal((await store.rotateRefreshToken('r-spent', 'r-next-1', 101, 60_000)).status, 'reused');
  assert.equal((await store.rotateRefreshToken('r-unused', 'r-next-2', 101, 60_000)).status, 'ok');
  const get = async (id: string) => {
    const c = await store.getConversation(id);
    return [c?.appKeyId, c?.status, c?.waitingSince];
  };
  assert.deepEqual(await get('g-a'), ['app-a', null, null], "all members one app's users: that app");
  assert.deepEqual(await get('g-mixed'), [null, null, null]);
  assert.deepEqual(await get('g-empty'), [null, null, null], 'an empty group goes to no app');
  assert.deepEqual(await get('g-agent'), [null, null, null]);
  // One session not closed per customer: the claimed one, else the newest with messages, else the newest.
  assert.deepEqual(await get('s1'), [null, 'closed', null]);
  assert.deepEqual(await get('s2'), [null, 'open', 100]);
  assert.deepEqual(await get('s3'), [null, 'closed', null]);
  assert.deepEqual(await get('s4'), [null, 'claimed', 60]);
  assert.deepEqual(await get('s5'), [null, 'closed', 200]);
  assert.deepEqual(await get('s6'), [null, 'closed', null]);
  assert.deepEqual(await get('s7'), [null, 'open', null]);
  assert.deepEqual(
    (await store.listSupport('open', 'ag1', 10)).map((l) => l.conversation.id),
    ['s2'],
  );
  const again = await store.openSupportSession({
    id: 'new',
    kind: 'support',
    name: null,
    lastSeq: 0,
    createdAt: 9,
    customerId: 'c1',
    agentId: null,
    status: 'open',
    appKeyId: null,
    waitingSince: null,
  });
  assert.deepEqual([again.conversation.id, again.created], ['s2', false]);
  // Messages survive every migration (SQLite's fourth moves them into a table in insertion order)…
  assert.deepEqual(
    (await store.messagesAfter('s4', 0, 10)).map((m) => [m.seq, m.id, m.fromId, m.ts, m.body]),
    [
      [1, 'm3', 'ag1', 50, '{}'],
      [2, 'm4', 'c2', 60, '{}'],
    ],
  );
  // …and new ones follow them, with seq and client_msg_id still unique.
  const retry = {
    id: 'm5',
    conversationId: 's4',
    fromId: 'c2',
    fromDevice: 'web',
    clientMsgId: 'after-upgrade',
    ts: 70,
    serialize: (seq: number) => `{"seq":${seq}}`,
  };
  const [stored, repeated] = await store.appendMessages([retry, { ...retry, id: 'm6' }]);
  assert.deepEqual(
    [stored?.record.seq, stored?.duplicate, repeated?.record.id, repeated?.duplicate],
    [3, false, 'm5', true],
  );
}

describe('upgrading a store of schema version 2', () => {
  it('SqliteStore: gives groups their app, closes extra customer sessions, fills waiting_since', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-store-'));
    const file = join(dir, 'gatehouse.db');
    try {
      const old = new Database(file);
      for (const sql of SQLITE_MIGRATIONS.slice(0, 2)) old.exec(sql);
      old.pragma('user_version = 2');
      old.exec(VERSION_2_DATA);
      old.close();
      const store = new SqliteStore(file);
      await store.migrate();
      try {
        await assertMigratedVersion2(store);
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('PostgresStore: the same', POSTGRES_SKIP ? { skip: POSTGRES_SKIP } : {}, async () => {
    const db = await createTestDatabase();
    const store = new PostgresStore({ url: db.url, poolSize: 2 });
    try {
      await adminQuery(
        db.url,
        `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL);
         ${POSTGRES_MIGRATIONS.slice(0, 2).join(';\n')};
         INSERT INTO schema_migrations (version, applied_at) VALUES (1, 0), (2, 0);
         ${VERSION_2_DATA}`,
      );
      await store.migrate();
      await assertMigratedVersion2(store);
    } finally {
      await store.close();
      await db.drop();
    }
  });
});

function newMessage(conversationId: string, fromId: string, createDirect?: [string, string]): NewMessage {
  const id = `m-${randomBytes(4).toString('hex')}`;
  return {
    id,
    conversationId,
    fromId,
    fromDevice: null,
    clientMsgId: null,
    ts: 1,
    serialize: (seq) => JSON.stringify({ id, seq }),
    ...(createDirect ? { createDirect: { members: createDirect } } : {}),
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof address === 'object' && address ? address.port : 0;
}

/** Polls `probe` until it returns true; fails after 5 s. */
async function waitFor(what: string, probe: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('PostgresStore on a real PostgreSQL', POSTGRES_SKIP ? { skip: POSTGRES_SKIP } : {}, () => {
  let db: TestDatabase;
  const stores: Store[] = [];
  const open = (options: Partial<PostgresStoreOptions> = {}) => {
    const store = new PostgresStore({ url: db.url, poolSize: 3, ...options });
    stores.push(store);
    return store;
  };

  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => {
    // Dropped first (closing its connections): a store stuck on a broken connection cannot keep the database.
    await db?.drop();
    for (const s of stores) await s.close();
  });

  it('migrates once when several nodes start at the same time, and again without effect', async () => {
    const fresh = await createTestDatabase();
    const nodes = Array.from({ length: 4 }, () => new PostgresStore({ url: fresh.url, poolSize: 2 }));
    try {
      await Promise.all(nodes.map((n) => n.migrate()));
      await Promise.all(nodes.map((n) => n.migrate()));
      const versions = await adminQuery(fresh.url, 'SELECT version FROM schema_migrations ORDER BY version');
      assert.deepEqual(
        versions.map((r) => r.version),
        [1, 2, 3, 4],
      );
      const tables = await adminQuery(
        fresh.url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
      );
      assert.deepEqual(
        tables.map((r) => r.table_name),
        [
          'app_keys',
          'conversations',
          'cursors',
          'login_sessions',
          'members',
          'messages',
          'principals',
          'refresh_tokens',
          'schema_migrations',
          'tickets',
        ],
      );
    } finally {
      for (const n of nodes) await n.close();
      await fresh.drop();
    }
  });

  it('rejects every call, ping included, while the database cannot be reached, without crashing', {
    timeout: 20_000,
  }, async () => {
    const store = new PostgresStore({
      url: withAddress(POSTGRES_URL, '127.0.0.1', await freePort()),
      connectTimeoutMs: 2000,
    });
    try {
      await assert.rejects(store.ping());
      await assert.rejects(store.migrate());
      await assert.rejects(store.getPrincipal('alice'));
      await assert.rejects(store.appendMessages([newMessage('c', 'alice')]));
      await assert.rejects(store.rotateRefreshToken('hash', 'next-hash', 1, 10_000));
    } finally {
      await store.close();
    }
  });

  it('replaces idle connections the server terminated, and the next calls succeed', async () => {
    const applicationName = `gh-idle-${randomBytes(4).toString('hex')}`;
    const errors: Error[] = [];
    const store = open({ applicationName, onError: (err) => errors.push(err) });
    await store.migrate();
    await store.createConversation(
      {
        id: 'idle',
        kind: 'group',
        name: null,
        lastSeq: 0,
        createdAt: 1,
        customerId: null,
        agentId: null,
        status: null,
        appKeyId: null,
        waitingSince: null,
      },
      ['alice'],
    );
    await Promise.all([store.ping(), store.ping(), store.ping()]);
    const terminated = await adminQuery(
      db.url,
      'SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1',
      [applicationName],
    );
    assert.ok(terminated.length >= 1);
    await waitFor('the pool to see every connection drop', () => errors.length === terminated.length);
    await store.ping();
    const [result] = await store.appendMessages([newMessage('idle', 'alice')]);
    assert.equal(result?.record.seq, 1);
  });

  it('rejects a call whose connection is cut mid-transaction and keeps nothing of it; the retry is stored', {
    timeout: 20_000,
  }, async () => {
    const applicationName = `gh-cut-${randomBytes(4).toString('hex')}`;
    const store = open({ applicationName });
    await store.migrate();
    await store.createConversation(
      {
        id: 'cut',
        kind: 'group',
        name: null,
        lastSeq: 0,
        createdAt: 1,
        customerId: null,
        agentId: null,
        status: null,
        appKeyId: null,
        waitingSince: null,
      },
      ['alice', 'bob'],
    );
    // Another connection holds the conversation's row lock, so the append stops halfway, after creating the direct one.
    const holder = new pg.Client({ connectionString: db.url });
    holder.on('error', () => {});
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query("SELECT * FROM conversations WHERE id = 'cut' FOR UPDATE");
      const batch = [newMessage('dm-cut', 'alice', ['alice', 'bob']), newMessage('cut', 'alice')];
      const append = store.appendMessages(batch);
      append.catch(() => {});
      await waitFor('the append to wait for the row lock', async () => {
        const rows = await adminQuery(
          db.url,
          "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
          [applicationName],
        );
        return rows.length === 1;
      });
      await adminQuery(db.url, 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [
        applicationName,
      ]);
      await assert.rejects(append);
      await holder.query('ROLLBACK');

      assert.equal(await store.getConversation('dm-cut'), null);
      assert.deepEqual(await store.members('dm-cut'), []);
      assert.equal((await store.getConversation('cut'))?.lastSeq, 0);
      assert.deepEqual(await store.messagesAfter('cut', 0, 10), []);
      const retried = await store.appendMessages(batch);
      assert.deepEqual(
        retried.map((r) => [r.record.conversationId, r.record.seq]),
        [
          ['dm-cut', 1],
          ['cut', 1],
        ],
      );
    } finally {
      await holder.end();
    }
  });

  it('rejects calls while the database is gone and works again, without gaps, once it is back', {
    timeout: 20_000,
  }, async () => {
    const target = new URL(db.url);
    const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
    await proxy.up();
    const errors: Error[] = [];
    const store = open({ url: withAddress(db.url, '127.0.0.1', proxy.port), onError: (err) => errors.push(err) });
    try {
      await store.migrate();
      await store.createConversation(
        {
          id: 'outage',
          kind: 'group',
          name: null,
          lastSeq: 0,
          createdAt: 1,
          customerId: null,
          agentId: null,
          status: null,
          appKeyId: null,
          waitingSince: null,
        },
        ['alice'],
      );
      const [first] = await store.appendMessages([newMessage('outage', 'alice')]);
      assert.equal(first?.record.seq, 1);

      await proxy.down();
      await assert.rejects(store.ping());
      await assert.rejects(store.appendMessages([newMessage('outage', 'alice')]));
      await assert.rejects(store.getConversation('outage'));

      await proxy.up();
      await store.ping();
      const [next] = await store.appendMessages([newMessage('outage', 'alice')]);
      assert.equal(next?.record.seq, 2);
    } finally {
      await proxy.down();
    }
  });

  it('rejects calls instead of hanging while the database does not answer, and works again after', {
    timeout: 20_000,
  }, async () => {
    const target = new URL(db.url);
    const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
    await proxy.up();
    const store = open({
      url: withAddress(db.url, '127.0.0.1', proxy.port),
      connectTimeoutMs: 300,
      queryTimeoutMs: 300,
    });
    try {
      await store.migrate();
      await store.createConversation(
        {
          id: 'silent',
          kind: 'group',
          name: null,
          lastSeq: 0,
          createdAt: 1,
          customerId: null,
          agentId: null,
          status: null,
          appKeyId: null,
          waitingSince: null,
        },
        ['alice'],
      );
      await Promise.all([store.ping(), store.ping()]);

      proxy.freeze();
      // Idle connections whose statements go unanswered, then new connections that never open.
      await assert.rejects(store.ping(), /timeout/i);
      await assert.rejects(store.appendMessages([newMessage('silent', 'alice')]), /timeout/i);
      await assert.rejects(store.ping(), /timeout/i);
      await assert.rejects(store.getConversation('silent'), /timeout/i);

      await proxy.down();
      await proxy.up();
      await store.ping();
      assert.equal((await store.getConversation('silent'))?.lastSeq, 0);
      const [stored] = await store.appendMessages([newMessage('silent', 'alice')]);
      assert.equal(stored?.record.seq, 1);
    } finally {
      await proxy.down();
    }
  });
});

describe('a Gatehouse node on PostgreSQL', POSTGRES_SKIP ? { skip: POSTGRES_SKIP } : {}, () => {
  it('logs users in, stores their messages in PostgreSQL and replays them from the cursor', async () => {
    const db = await createTestDatabase();
    const server = await startServer({ store: { url: db.url, poolSize: 4 } });
    try {
      assert.ok(server.gatehouse.services.store instanceof PostgresStore);
      const appKey = await createAppKey(server);
      const alice = await connectWithToken(server.wsUrl, '/ws', await userToken(server, appKey, 'alice'));
      const bob = await connectWithToken(server.wsUrl, '/ws', await userToken(server, appKey, 'bob'));
      assert.equal(alice.connected.body.user.id, 'alice');

      const ack = await alice.client.request({ type: 'message', to: 'bob', text: 'hello bob', client_msg_id: 'c1' });
      assert.equal(ack.type, 'ack');
      assert.equal(ack.code, 200);
      assert.equal(ack.body.seq, 1);
      const delivered = await bob.client.next('message');
      assert.equal(delivered.message.text, 'hello bob');
      assert.equal(delivered.message.seq, 1);
      const again = await alice.client.request({ type: 'message', to: 'bob', text: 'hello bob', client_msg_id: 'c1' });
      assert.deepEqual(again.body, ack.body);

      const rows = await adminQuery(db.url, 'SELECT conversation_id, seq, from_id, body FROM messages');
      assert.equal(rows.length, 1);
      assert.equal(rows[0].conversation_id, ack.body.conversation_id);
      assert.equal(JSON.parse(rows[0].body).text, 'hello bob');

      bob.client.send({ type: 'ack', conversation_id: ack.body.conversation_id, seq: 1 });
      await waitFor('the cursor to reach 1', async () => {
        const cursors = await adminQuery(db.url, "SELECT seq FROM cursors WHERE principal_id = 'bob'");
        return cursors[0]?.seq === '1';
      });
      bob.client.close();
      await bob.client.closed;

      const second = await alice.client.request({ type: 'message', to: 'bob', text: 'are you there?' });
      assert.equal(second.body.seq, 2);
      const back = await connectWithToken(server.wsUrl, '/ws', await userToken(server, appKey, 'bob'));
      const offline = await back.client.next('offline_message');
      assert.equal(offline.message.seq, 2);
      assert.equal(offline.message.text, 'are you there?');
      const complete = await back.client.next('offline_messages_complete');
      assert.equal(complete.count, 1);

      const ready = await fetch(`${server.url}/readyz`);
      assert.equal(ready.status, 200);
      assert.equal(((await ready.json()) as { store: string }).store, 'ok');
      alice.client.close();
      back.client.close();
      await Promise.all([alice.client.closed, back.client.closed]);
    } finally {
      await server.close();
      await db.drop();
    }
  });
});
