import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AckBody } from '../src/index.js';
import { type ClientOptions, ClientSet } from './helpers/clients.js';
import { keys, record } from './helpers/recorder.js';
import { createAppKey, ServerProcess, TestGatehouse, until } from './helpers/server.js';

/** Quick backoff so a test does not wait seconds; the policy is the same. */
const quick = { initial: 100, max: 400, spread: 100, long: 300 };

describe('GatehouseClient reconnect', { timeout: 60_000 }, () => {
  describe('server killed (SIGKILL) and restarted mid-conversation', () => {
    let server: ServerProcess;
    let appKey: string;
    const clients = new ClientSet();
    const user = (id: string, extra: Partial<ClientOptions> = {}) =>
      clients.user(server, appKey, id, { backoff: quick, ...extra });

    before(async () => {
      server = await ServerProcess.start();
      appKey = await createAppKey(server);
    });
    after(async () => {
      clients.closeAll();
      await server.close();
    });

    it('goes reconnecting → connected, drains the outbox, and loses or duplicates nothing on either side', async () => {
      const alice = user('r-alice');
      const bob = user('r-bob');
      const aliceRec = record(alice);
      const bobRec = record(bob);
      await Promise.all([alice.connect(), bob.connect()]);
      const acks: AckBody[] = [];
      const first = await alice.send({ to: 'r-bob' }, 'm1');
      acks.push(first);
      const conversation = first.conversation_id;
      for (let i = 2; i <= 5; i++) acks.push(await alice.send(conversation, `m${i}`));
      await until(() => bobRec.messages.length === 5, 'bob has m1..m5');

      // In flight when the server dies: stored or not, the resend after the restart must not duplicate it.
      const inFlight = alice.send(conversation, 'm6');
      await server.kill();
      await until(() => alice.status === 'reconnecting' && bob.status === 'reconnecting', 'both reconnecting');
      const queued: Promise<AckBody>[] = [inFlight];
      for (let i = 7; i <= 10; i++) queued.push(alice.send(conversation, `m${i}`));
      assert.ok(alice.pendingSends >= 4, 'the sends wait in the outbox');

      await server.start();
      acks.push(...(await Promise.all(queued)));
      await until(() => alice.status === 'connected' && bob.status === 'connected', 'both connected again');
      await until(() => bobRec.messages.length >= 10, 'bob has m1..m10');
      assert.equal(alice.pendingSends, 0);

      assert.deepEqual(
        acks.map((a) => a.seq),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      );
      assert.deepEqual(
        bobRec.messages.map((m) => m.text),
        ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8', 'm9', 'm10'],
      );
      assert.equal(new Set(keys(bobRec.messages)).size, 10);
      const history = await alice.history(conversation);
      assert.deepEqual(
        history.messages.map((m) => m.text),
        ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8', 'm9', 'm10'],
      );
      for (const rec of [aliceRec, bobRec]) {
        const i = rec.statuses.indexOf('reconnecting');
        assert.ok(i > 0, 'went reconnecting');
        assert.equal(rec.statuses.at(-1), 'connected');
        assert.ok(
          rec.reconnecting.every((r) => r.delay <= quick.max),
          'backoff stays under its cap',
        );
        assert.equal(rec.connected, 2);
      }
    });
  });

  describe('graceful restart (1001)', () => {
    let server: TestGatehouse;
    let appKey: string;
    const clients = new ClientSet();
    before(async () => {
      server = await TestGatehouse.start();
      appKey = await createAppKey(server);
    });
    // Closed here too, so a failed assertion cannot leave a client retrying (and the process alive).
    after(async () => {
      clients.closeAll();
      await server.close();
    });

    it('spreads its retries after 1001: a random place in the window, one window apart while down, a new place next time', async () => {
      const backoff = { initial: 200, max: 800, spread: 400, long: 1000 };
      // The random source answers 0.5 for the first restart's phase, 0.25 for the second's.
      const draws = [0.5, 0.25];
      const random = () => draws.shift() ?? 0.9;
      const c = clients.user(server, appKey, 'g-user', { backoff, random });
      const rec = record(c);
      await c.connect();

      await server.stop();
      await until(() => rec.reconnecting.length >= 3, 'three attempts while down');
      assert.deepEqual(rec.reconnecting[0], { code: 1001, reason: 'SHUTTING_DOWN', attempt: 1, delay: 200 });
      assert.deepEqual(
        rec.reconnecting.slice(0, 3).map((r) => r.attempt),
        [1, 2, 3],
      );
      // Later attempts keep to the client's slots (phase + k · spread): at most one window away, and
      // a refusal while the server shuts down (503, 1013) waits its long floor first.
      for (const r of rec.reconnecting.slice(1)) {
        const floor = r.code === 1013 ? backoff.long : 0;
        assert.ok(
          r.delay >= floor && r.delay <= floor + backoff.spread,
          `attempt ${r.attempt} (${r.code}): ${r.delay} ms`,
        );
      }
      await server.start();
      await until(() => c.status === 'connected', 'connected again');

      // Connected, the schedule is over: the next 1001 draws a new place.
      const before = rec.reconnecting.length;
      await server.stop();
      await until(() => rec.reconnecting.length > before, 'retrying after the second stop');
      const again = rec.reconnecting[before];
      assert.deepEqual({ code: again?.code, delay: again?.delay }, { code: 1001, delay: 100 });
      await server.start();
      await until(() => c.status === 'connected', 'connected after the second restart');
      c.close();
      assert.equal(c.status, 'disconnected');
    });

    it('never waits a NaN delay when the random source answers outside [0, 1)', async () => {
      const backoff = { initial: 200, max: 800, spread: 400, long: 1000 };
      const c = clients.user(server, appKey, 'g-nan', { backoff, random: () => Number.NaN });
      const rec = record(c);
      await c.connect();
      await server.stop();
      await until(() => rec.reconnecting.length >= 1, 'retrying');
      const delay = rec.reconnecting[0]?.delay ?? Number.NaN;
      assert.ok(Number.isInteger(delay) && delay >= 0 && delay < backoff.spread, `delay ${delay}`);
      await server.start();
      await until(() => c.status === 'connected', 'connected again');
    });

    it('refuses backoff options that are not usable delays', () => {
      assert.throws(() => clients.user(server, appKey, 'g-bad', { backoff: { spread: 0 } }), {
        name: 'TypeError',
        message: /backoff\.spread/,
      });
      assert.throws(() => clients.user(server, appKey, 'g-bad', { backoff: { max: Number.NaN } }), /backoff\.max/);
      assert.throws(() => clients.user(server, appKey, 'g-bad', { random: 0.5 as unknown as () => number }), /random/);
    });
  });
});
