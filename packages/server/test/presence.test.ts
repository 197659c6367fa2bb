import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, POSTGRES_SKIP, type TestDatabase } from './helpers/postgres.js';
import { createAppKey, startServer, type TestServer, userToken } from './helpers/test-server.js';
import { connectWithToken } from './helpers/ws-client.js';

describe('presence', () => {
  let server: TestServer;
  let appKey: string;
  before(async () => {
    server = await startServer();
    appKey = await createAppKey(server);
  });
  after(() => server.close());

  it('tells a direct-conversation peer when a user comes online and when its last socket goes', async () => {
    const alice = await connectWithToken(server.wsUrl, '/ws', await userToken(server, appKey, 'p-alice'));
    const bobToken = await userToken(server, appKey, 'p-bob', 'im_web');
    const bobWeb = await connectWithToken(server.wsUrl, '/ws', bobToken);
    assert.equal((await alice.client.request({ type: 'message', to: 'p-bob', text: 'hi' })).code, 200);
    bobWeb.client.close();
    assert.deepEqual((await alice.client.next((f) => f.type === 'presence' && f.online === false)).user_id, 'p-bob');

    const bobIos = await connectWithToken(server.wsUrl, '/ws', await userToken(server, appKey, 'p-bob', 'im_app_ios'), {
      devicetype: 'im_app_ios',
    });
    const online = await alice.client.next('presence');
    assert.deepEqual(online, { type: 'presence', code: 200, user_id: 'p-bob', online: true });

    // A second device of an online principal is no presence change.
    const bobWeb2 = await connectWithToken(server.wsUrl, '/ws', bobToken);
    bobIos.client.close();
    await bobIos.client.closed;
    bobWeb2.client.close();
    const offline = await alice.client.next('presence');
    assert.deepEqual(offline, { type: 'presence', code: 200, user_id: 'p-bob', online: false });
    assert.equal(alice.client.frames.filter((f) => f.type === 'presence').length, 0);
    alice.client.close();
  });

  it('reports online principals cluster-wide through the cluster state', async () => {
    const { cluster } = server.gatehouse.services;
    const carol = await connectWithToken(server.wsUrl, '/ws', await userToken(server, appKey, 'p-carol'));
    assert.deepEqual([...(await cluster.online(['p-carol', 'p-nobody']))], ['p-carol']);
    carol.client.close();
    await carol.client.closed;
  });
});

describe('presence at shutdown', { skip: POSTGRES_SKIP }, () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase();
  });
  after(() => db?.drop());

  it('lets the offline updates of the sockets it closes finish before the store closes (nothing logged)', async () => {
    const lines: string[] = [];
    const server = await startServer(
      { store: { url: db.url }, log: { level: 'warn' } },
      { logStream: { write: (line) => lines.push(line) } },
    );
    const key = await createAppKey(server);
    const alice = await connectWithToken(server.wsUrl, '/ws', await userToken(server, key, 'sd-alice'));
    const peers = [];
    for (let i = 0; i < 5; i++) {
      peers.push(await connectWithToken(server.wsUrl, '/ws', await userToken(server, key, `sd-peer-${i}`)));
      // A direct conversation: the peer is told when Alice goes.
      assert.equal((await alice.client.request({ type: 'message', to: `sd-peer-${i}`, text: 'hi' })).code, 200);
    }
    // Presence writes wait on a lock while the node shuts down, so its offline updates outlast
    // the gateway's close: the store must stay open until they are done.
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE gh_presence IN EXCLUSIVE MODE');
      // The lock goes when the store starts to close, or after a second if that never comes
      // (the shutdown waiting, as it should, for the updates the lock holds up).
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        void locker.query('COMMIT');
      };
      const store = server.gatehouse.services.store;
      const closeStore = store.close.bind(store);
      store.close = async () => {
        release();
        await closeStore();
      };
      const fallback = setTimeout(release, 1000);
      await server.close();
      clearTimeout(fallback);
    } finally {
      await locker.end();
    }
    assert.equal(peers.length, 5);
    // An update left running after the close would fail against the ended pool a moment later.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(
      lines.map((line) => JSON.parse(line).msg),
      [],
      'no "presence update failed" against a closed pool',
    );
  });

  it('announces a burst of changes one at a time, every one of them, in order', async () => {
    const server = await startServer({ store: { url: db.url }, log: { level: 'warn' } });
    try {
      const key = await createAppKey(server);
      const watcher = await connectWithToken(server.wsUrl, '/ws', await userToken(server, key, 'burst-watcher'));
      const ids = Array.from({ length: 30 }, (_, i) => `burst-${i}`);
      const tokens = [];
      for (const id of ids) {
        tokens.push(await userToken(server, key, id));
        // A direct conversation with the watcher: the watcher is told of each one's presence.
        const peer = await connectWithToken(server.wsUrl, '/ws', tokens.at(-1) as string);
        assert.equal((await peer.client.request({ type: 'message', to: 'burst-watcher', text: 'hi' })).code, 200);
        peer.client.close();
        await watcher.client.next((f) => f.type === 'presence' && f.user_id === id && f.online === false);
      }
      // Peers are looked up through the real store, with a count of how many run at once.
      const store = server.gatehouse.services.store;
      const peersOf = store.peersOf.bind(store);
      let running = 0;
      let most = 0;
      store.peersOf = async (id, limit) => {
        most = Math.max(most, ++running);
        try {
          return await peersOf(id, limit);
        } finally {
          running--;
        }
      };
      // All thirty at once: their presence is written together, and each goes online.
      const sockets = await Promise.all(tokens.map((token) => connectWithToken(server.wsUrl, '/ws', token)));
      const online = new Set<string>();
      while (online.size < ids.length) {
        const event = await watcher.client.next((f) => f.type === 'presence' && f.online === true);
        online.add(event.user_id);
      }
      assert.deepEqual([...online].sort(), [...ids].sort());
      assert.equal(most, 1, 'one peer lookup at a time');
      // Nothing left in flight when the server closes: every one is seen going offline again.
      for (const socket of sockets) socket.client.close();
      const offline = new Set<string>();
      while (offline.size < ids.length) {
        const event = await watcher.client.next((f) => f.type === 'presence' && f.online === false);
        offline.add(event.user_id);
      }
      watcher.client.close();
    } finally {
      await server.close();
    }
  });
});
