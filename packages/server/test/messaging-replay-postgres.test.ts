import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { eventually } from './helpers/broker-conformance.js';
import { createTestDatabase, POSTGRES_SKIP, type TestDatabase } from './helpers/postgres.js';
import { createAppKey, startServer, type TestServer, userToken } from './helpers/test-server.js';
import { connectWithToken, TestClient } from './helpers/ws-client.js';
import { within } from './helpers/ws-expect.js';

/*
 * With PostgreSQL the offline replay's reads start some round trips after the socket is bound
 * (greeted, and reachable by live delivery). A message stored in that gap must reach the device
 * once: held back until the replay is done, not sent live and then replayed again.
 */
describe('a message stored after the bind and before the replay reads (PostgreSQL)', { skip: POSTGRES_SKIP }, () => {
  let db: TestDatabase;
  let server: TestServer;

  before(async () => {
    db = await createTestDatabase();
    server = await startServer({ store: { url: db.url, poolSize: 4 } });
  });
  after(async () => {
    await server?.close();
    await db?.drop();
  });

  it('reaches the device once, after the replay, never both live and replayed', async () => {
    const appKey = await createAppKey(server);
    const bobToken = await userToken(server, appKey, 'bob');
    const alice = await connectWithToken(server.wsUrl, '/ws', await userToken(server, appKey, 'alice'));
    const first = await alice.client.request({ type: 'message', to: 'bob', text: 'before' });
    assert.equal(first.code, 200);

    // The device slot's claim commits after the greeting; a deferred trigger added here makes
    // that COMMIT wait for an advisory lock the test holds, so the socket stays bound and greeted,
    // its replay not yet started, for as long as the test needs.
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    try {
      await locker.query(`
        CREATE FUNCTION hold_commit() RETURNS trigger LANGUAGE plpgsql AS
          $$ BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NULL; END $$;
        CREATE CONSTRAINT TRIGGER hold_commit AFTER INSERT OR UPDATE ON gh_device_slots
          DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hold_commit();`);
      await locker.query('BEGIN');
      await locker.query('SELECT pg_advisory_xact_lock(4242)');
      const bobWeb = TestClient.connect(`${server.wsUrl}/ws`, {
        headers: { authorization: `Bearer ${bobToken}` },
      });
      await within(bobWeb.next('connected'), 'bob greeted');
      await eventually(
        async () => {
          const { rows } = await locker.query<{ n: string }>(
            `SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`,
          );
          assert.equal(Number(rows[0]?.n), 1);
        },
        undefined,
        "the claim's commit waiting",
      );
      const during = await alice.client.request({ type: 'message', to: 'bob', text: 'during' });
      assert.equal(during.code, 200);
      await locker.query('COMMIT');

      const complete = await within(bobWeb.next('offline_messages_complete'), 'replay complete');
      assert.equal(complete.count, 2);
      const after = await alice.client.request({ type: 'message', to: 'bob', text: 'after' });
      await within(
        bobWeb.next((f) => f.type === 'message' && f.message.text === 'after'),
        'live after the replay',
      );
      const received = bobWeb.frames
        .filter((f) => f.type === 'offline_message' || f.type === 'message')
        .map((f) => `${f.type}:${f.message.text}`);
      assert.deepEqual(received, ['offline_message:before', 'offline_message:during'], 'each once, in order');
      assert.equal(after.body.seq, 3);
      bobWeb.close();
    } finally {
      await locker.query('ROLLBACK').catch(() => {});
      await locker.query('DROP TRIGGER IF EXISTS hold_commit ON gh_device_slots').catch(() => {});
      await locker.end();
      alice.client.close();
    }
  });
});
