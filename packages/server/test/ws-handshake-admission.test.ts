import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { connectWhenAdmitted, tryConnect } from './helpers/auth-fixtures.js';
import { eventually } from './helpers/broker-conformance.js';
import { adminQuery, createTestDatabase, POSTGRES_SKIP, type TestDatabase } from './helpers/postgres.js';
import { createAppKey, startServer, type TestServer, userToken } from './helpers/test-server.js';
import { TestClient } from './helpers/ws-client.js';

/**
 * `limits.maxHandshakesInProgress`: a node in a reconnect storm refuses what it cannot finish
 * (503 SERVER_BUSY with Retry-After, which the SDK answers with its long backoff) instead of
 * taking every handshake and letting all of them time out. A handshake is held in progress
 * here the way a slow database holds it: the device-slot table is locked, so its claim waits.
 */
describe('handshakes in progress', { skip: POSTGRES_SKIP }, () => {
  let db: TestDatabase;
  let server: TestServer;
  let appKey: string;
  let locker: pg.Client;
  before(async () => {
    db = await createTestDatabase();
    server = await startServer({ store: { url: db.url }, limits: { maxHandshakesInProgress: 2 } });
    appKey = await createAppKey(server);
    locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
  });
  after(async () => {
    await locker?.end();
    await server?.close();
    await db?.drop();
  });

  const connect = async (user: string) =>
    tryConnect(`${server.wsUrl}/ws`, {
      headers: { authorization: `Bearer ${await userToken(server, appKey, user)}` },
    });
  /**
   * Slot claims waiting on the locked table (releases of closed sockets may wait there too).
   * Asked on a connection of its own: inside the locker's transaction pg_stat_activity would
   * be the snapshot of its start.
   */
  const waitingClaims = async () =>
    Number(
      (
        await adminQuery(
          db.url,
          `SELECT count(*) AS n FROM pg_stat_activity
           WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO gh_device_slots%'`,
        )
      )[0].n,
    );
  const lockSlots = async () => {
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE gh_device_slots IN EXCLUSIVE MODE');
  };

  it('refuses a handshake above the limit with 503 SERVER_BUSY and Retry-After, and takes it again once one is done', async () => {
    const tokens = { carol: await userToken(server, appKey, 'adm-carol') };
    await lockSlots();
    const alice = connect('adm-alice');
    const bob = connect('adm-bob');
    await eventually(async () => assert.equal(await waitingClaims(), 2), undefined, 'both claims waiting');

    const refused = await tryConnect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${tokens.carol}` } });
    assert.equal(refused.kind, 'rejected');
    if (refused.kind !== 'rejected') return;
    assert.equal(refused.status, 503);
    assert.equal(refused.code, 'SERVER_BUSY');
    assert.match(refused.body.err_msg ?? refused.message ?? '', /handshakes in progress/);

    await locker.query('COMMIT');
    const opened: TestClient[] = [];
    for (const outcome of [await alice, await bob]) {
      assert.equal(outcome.kind, 'connected');
      if (outcome.kind === 'connected') opened.push(outcome.client);
    }
    // Both finished (greeted, replayed): the node takes new handshakes again.
    const carol = await connectWhenAdmitted(server, tokens.carol);
    opened.push(carol.client);
    for (const client of opened) client.close();
  });

  it('counts a handshake whose client went away as done', async () => {
    await lockSlots();
    const dave = TestClient.connect(`${server.wsUrl}/ws`, {
      headers: { authorization: `Bearer ${await userToken(server, appKey, 'adm-dave')}` },
    });
    const erin = connect('adm-erin');
    await eventually(async () => assert.equal(await waitingClaims(), 2), undefined, 'both claims waiting');
    // Dave's client gives up while his claim waits: his place is free at once, though his
    // claim is still queued in the database (it is given up when it gets the lock).
    dave.ws.terminate();
    await dave.closed;
    const frank = connect('adm-frank');
    await eventually(async () => assert.equal(await waitingClaims(), 3), undefined, "frank's claim waiting too");
    await locker.query('COMMIT');
    for (const outcome of [await erin, await frank]) {
      assert.equal(outcome.kind, 'connected');
      if (outcome.kind === 'connected') outcome.client.close();
    }
  });
});
