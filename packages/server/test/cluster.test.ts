import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { systemClock } from '../src/clock.js';
import { PostgresClusterState } from '../src/cluster/postgres-cluster-state.js';
import { createLogger } from '../src/logger.js';
import { eventually } from './helpers/broker-conformance.js';
import { type BrokerServerProcess, startNatsServer, startRedisServer } from './helpers/broker-server-process.js';
import { Cluster, type ClusterNode, databaseExists, loginUser } from './helpers/cluster.js';
import { Clients, type Device, sendOk } from './helpers/messaging.js';
import { api } from './helpers/test-server.js';
import { type Frame, TestClient, WAIT_MS } from './helpers/ws-client.js';
import { expectHttpRejection, within } from './helpers/ws-expect.js';

/*
 * Gatehouse as a cluster of separate processes (test/helpers/cluster.ts) on a real
 * PostgreSQL and a real Redis or NATS: SPEC §9 "every behaviour holds across nodes".
 * Each cluster has a database and a broker prefix of its own, dropped at the end.
 */

const POSTGRES_URL = process.env.GATEHOUSE_TEST_POSTGRES_URL ?? '';
const notSet = (name: string) => `${name} is not set (give it a server URL to run the multi-node tests)`;

/** SPEC: a revocation closes the sockets on every node within 1 s; the bound adds a little slack for 2 cores. */
const REVOCATION_WAIT_MS = 1500;
/** The cluster's heartbeat (2 s) plus its timeout (1 s): a dead node's presence stops counting after this. */
const LIVE_WINDOW_MS = 3000;

const BACKENDS = [
  {
    name: 'Redis',
    url: process.env.GATEHOUSE_TEST_REDIS_URL ?? '',
    variable: 'GATEHOUSE_TEST_REDIS_URL',
    startServer: startRedisServer,
  },
  {
    name: 'NATS',
    url: process.env.GATEHOUSE_TEST_NATS_URL ?? '',
    variable: 'GATEHOUSE_TEST_NATS_URL',
    startServer: startNatsServer,
  },
];

const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

/** Every connection of a principal on the cluster's nodes (one admin call: a node lists every node's sockets). */
async function connectionsOf(cluster: Cluster, principal: string): Promise<{ session_id: string; node: string }[]> {
  const node = [...cluster.nodes.values()].find((n) => n.running);
  assert.ok(node, 'a running node');
  const res = await cluster.admin(node, 'GET', `/api/v1/admin/connections?principal=${principal}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.connections as { session_id: string; node: string }[];
}

/** A conversation's whole history through `node`'s REST API, oldest first. */
async function history(node: ClusterNode, token: string, conversationId: string): Promise<Frame['message'][]> {
  const messages: Frame['message'][] = [];
  let before: number | null = null;
  for (;;) {
    const query: string = before === null ? '?limit=200' : `?limit=200&before_seq=${before}`;
    const res = await api(node, 'GET', `/api/v1/conversations/${conversationId}/messages${query}`, bearer(token));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    messages.unshift(...res.body.messages);
    if (!res.body.has_more) return messages;
    before = res.body.messages[0].seq;
  }
}

/** Asserts that a conversation's stored seqs are 1..n without a gap and holds every acknowledged message at its seq. */
function assertHoldsEvery(stored: Frame['message'][], acked: { message_id: string; seq: number }[]): void {
  assert.deepEqual(
    stored.map((m) => m.seq),
    stored.map((_, i) => i + 1),
    'seqs without gaps',
  );
  const bySeq = new Map(stored.map((m) => [m.seq as number, m.id as string]));
  for (const ack of acked) assert.equal(bySeq.get(ack.seq), ack.message_id, `acknowledged seq ${ack.seq} is stored`);
}

/** Opens a socket with a credential in the query and says whether it opened or how it was refused. */
async function attempt(clients: Clients, url: string): Promise<{ client: TestClient; outcome: string }> {
  const client = clients.track(TestClient.connect(url));
  const outcome = await within(
    Promise.race([
      client.opened.then(() => 'open'),
      client.rejection.then((r) => `${r.status} ${r.headers['x-websocket-error-code']}`),
    ]),
    'handshake outcome',
  );
  return { client, outcome };
}

for (const backend of BACKENDS) {
  const skip = !POSTGRES_URL ? notSet('GATEHOUSE_TEST_POSTGRES_URL') : !backend.url ? notSet(backend.variable) : false;

  describe(`three Gatehouse processes on PostgreSQL + ${backend.name}`, { skip }, () => {
    let cluster: Cluster;
    let a: ClusterNode;
    let b: ClusterNode;
    let c: ClusterNode;
    let appKey: string;
    const clients = new Clients();

    before(async () => {
      if (skip) return;
      cluster = await Cluster.start({ postgresUrl: POSTGRES_URL, brokerUrl: backend.url });
      [a, b, c] = ['a', 'b', 'c'].map((name) => cluster.node(name)) as [ClusterNode, ClusterNode, ClusterNode];
      appKey = await cluster.createAppKey(a);
    });
    afterEach(() => clients.closeAll());
    after(async () => {
      await clients.closeAll();
      await cluster?.close();
    });

    it("delivers a message sent on node A to the recipient's devices on B and C and acks it with its seq", async () => {
      const alice = await clients.device(a, '/ws', await loginUser(a, appKey, 'alice'));
      const bobWeb = await clients.device(b, '/ws', await loginUser(b, appKey, 'bob', 'im_web'));
      const bobIos = await clients.device(c, '/ws', await loginUser(c, appKey, 'bob', 'im_app_ios'));
      for (const [seq, text] of [
        [1, 'hello from A'],
        [2, 'second, over the cluster ✓'],
      ] as const) {
        const ack = await sendOk(alice.client, { to: 'bob', text, client_msg_id: `alice-${seq}` });
        assert.equal(ack.seq, seq);
        for (const device of [bobWeb, bobIos]) {
          const { message } = await device.client.next('message');
          assert.equal(message.id, ack.message_id);
          assert.equal(message.conversation_id, ack.conversation_id);
          assert.equal(message.seq, seq);
          assert.equal(message.text, text);
          assert.equal(message.from.id, 'alice');
        }
      }
    });

    it('delivers the next group message by the new member list on every node after a member is added or removed on one', async () => {
      const [gina, hugo, ivan] = ['gina', 'hugo', 'ivan'];
      const ginaA = await clients.device(a, '/ws', await loginUser(a, appKey, gina));
      const hugoB = await clients.device(b, '/ws', await loginUser(b, appKey, hugo));
      const ivanA = await clients.device(a, '/ws', await loginUser(a, appKey, ivan));
      const created = await cluster.admin(c, 'POST', '/api/v1/conversations', {
        kind: 'group',
        name: 'moving',
        members: [gina, hugo],
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const groupId = created.body.id as string;
      // Both nodes send once, so each has the member list cached before it changes.
      await sendOk(ginaA.client, { conversation_id: groupId, text: 'from A' });
      assert.equal((await hugoB.client.next('message')).message.text, 'from A');
      await sendOk(hugoB.client, { conversation_id: groupId, text: 'from B' });
      assert.equal((await ginaA.client.next('message')).message.text, 'from B');

      // Added on C: the next message sent on A (same node as the new member) and on B reaches it.
      const added = await cluster.admin(c, 'POST', `/api/v1/conversations/${groupId}/members`, { members: [ivan] });
      assert.equal(added.status, 200, JSON.stringify(added.body));
      await sendOk(hugoB.client, { conversation_id: groupId, text: 'welcome, sent on B' });
      assert.equal((await ivanA.client.next('message')).message.text, 'welcome, sent on B');
      await sendOk(ginaA.client, { conversation_id: groupId, text: 'welcome, sent on A' });
      assert.equal((await ivanA.client.next('message')).message.text, 'welcome, sent on A');
      assert.equal((await ginaA.client.next('message')).message.text, 'welcome, sent on B');
      assert.equal((await hugoB.client.next('message')).message.text, 'welcome, sent on A');

      // Removed on C: the next message, sent on B and then on A, no longer reaches it; a direct
      // message sent after them is the next thing it gets.
      const removed = await cluster.admin(c, 'DELETE', `/api/v1/conversations/${groupId}/members/${ivan}`);
      assert.equal(removed.status, 204);
      await sendOk(hugoB.client, { conversation_id: groupId, text: 'after ivan left, sent on B' });
      await sendOk(ginaA.client, { conversation_id: groupId, text: 'after ivan left, sent on A' });
      await sendOk(hugoB.client, { to: ivan, text: 'marker' });
      assert.equal((await ivanA.client.next('message')).message.text, 'marker');
      assert.equal((await ginaA.client.next('message')).message.text, 'after ivan left, sent on B');
      assert.equal((await hugoB.client.next('message')).message.text, 'after ivan left, sent on A');
    });

    it('closes the older socket of a device type on A with kicked REPLACED and 4409 when it connects on B, and the newer one keeps working', async () => {
      const token = await loginUser(a, appKey, 'carol');
      const older = await clients.device(a, '/ws', token);
      const newer = await clients.device(b, '/ws', token);
      assert.deepEqual(await older.client.next('kicked'), { type: 'kicked', code: 200, reason: 'REPLACED' });
      assert.deepEqual(await within(older.client.closed, 'older socket closing'), { code: 4409, reason: 'REPLACED' });

      const whoami = await newer.client.request({ type: 'whoami' });
      assert.equal(whoami.code, 200);
      assert.equal(whoami.body.session_id, newer.connected.body.session_id);
      const dave = await clients.device(c, '/ws', await loginUser(c, appKey, 'dave'));
      const ack = await sendOk(dave.client, { to: 'carol', text: 'still there?' });
      assert.equal((await newer.client.next('message')).message.id, ack.message_id);
      assert.deepEqual(
        (await connectionsOf(cluster, 'carol')).map((conn) => [conn.session_id, conn.node]),
        [[newer.connected.body.session_id, b.nodeId]],
      );
    });

    it('closes the socket whose claim came first with 4409, after its `connected`, when the same device connects on two nodes at once (each ordered pair of nodes 10 times)', async () => {
      // Of two handshakes of one device at once, the newer is the one whose claim reaches the
      // slot's row in PostgreSQL later. The test sets that order instead of reading it off the
      // arrival of two `connected` frames (two TCP connections: on a machine starved of CPU the
      // kernel can hand over a frame written 10 ms later first). It holds the row locked while
      // both claims queue on it, one after the other; PostgreSQL gives a row to its waiters in
      // the order they came, so the first to queue claims first. (That a socket is greeted while
      // its claim holds the row, before any later claim is decided, is the cluster-state
      // conformance suite's "runs each claim's whileHeld before any later claim" test.)
      const token = await loginUser(a, appKey, 'ruth');
      const warmUp = await clients.device(a, '/ws', token);
      const locker = new pg.Client({ connectionString: cluster.database.url });
      // Another session: pg_stat_activity is read once per transaction, and the locker's stays open.
      const observer = new pg.Client({ connectionString: cluster.database.url });
      await Promise.all([locker.connect(), observer.connect()]);
      try {
        const [{ slot }] = (
          await locker.query<{ slot: string }>('SELECT slot FROM gh_device_slots WHERE connection_id = $1', [
            warmUp.connected.body.session_id,
          ])
        ).rows as [{ slot: string }];
        const slotReleased = (what: string) =>
          eventually(
            async () =>
              assert.equal((await observer.query('SELECT 1 FROM gh_device_slots WHERE slot = $1', [slot])).rowCount, 0),
            WAIT_MS,
            what,
          );
        warmUp.client.ws.terminate();
        await warmUp.client.closed;
        await slotReleased('warm-up slot released');
        const waitingClaims = async () =>
          Number(
            (
              await observer.query<{ n: string }>(
                `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()
                 AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO gh_device_slots%'`,
              )
            ).rows[0]?.n,
          );
        const pairs: [ClusterNode, ClusterNode][] = [
          [a, b],
          [b, c],
          [c, a],
        ];
        for (let round = 1; round <= 30; round++) {
          const [firstNode, laterNode] = pairs[round % pairs.length] as [ClusterNode, ClusterNode];
          // Held by no socket: the last round's socket, closing now, cannot take the row away. The
          // row is committed first and then locked (FOR UPDATE): claims queue on a committed row
          // in order, where on a row being written they would all wake at once.
          await locker.query(
            `INSERT INTO gh_device_slots (slot, connection_id, node, claimed_at) VALUES ($1, 'held-by-test', 'test', now())
             ON CONFLICT (slot) DO UPDATE SET connection_id = 'held-by-test', node = 'test'`,
            [slot],
          );
          await locker.query('BEGIN');
          await locker.query('SELECT 1 FROM gh_device_slots WHERE slot = $1 FOR UPDATE', [slot]);
          const first = clients.track(TestClient.connect(`${firstNode.wsUrl}/ws`, bearer(token)));
          await eventually(
            async () => assert.equal(await waitingClaims(), 1),
            WAIT_MS,
            `round ${round}: first claim waiting`,
          );
          const later = clients.track(TestClient.connect(`${laterNode.wsUrl}/ws`, bearer(token)));
          await eventually(
            async () => assert.equal(await waitingClaims(), 2),
            WAIT_MS,
            `round ${round}: both claims waiting`,
          );
          // Neither is greeted before its claim is decided.
          assert.deepEqual([first.frames, later.frames], [[], []], `round ${round}: nothing before the claims`);
          await locker.query('COMMIT');

          await within(first.next('connected'), `round ${round}: first greeted`);
          await within(later.next('connected'), `round ${round}: later greeted`);
          assert.deepEqual(await within(first.next('kicked'), `round ${round}: first kicked`, REVOCATION_WAIT_MS), {
            type: 'kicked',
            code: 200,
            reason: 'REPLACED',
          });
          assert.deepEqual(
            await within(first.closed, `round ${round}: first (on ${firstNode.name}) closing`, REVOCATION_WAIT_MS),
            { code: 4409, reason: 'REPLACED' },
          );
          assert.equal((await later.request({ type: 'whoami' })).code, 200, `round ${round}: the later socket stays`);
          later.ws.terminate();
          await later.closed;
          // Its release done, so the next round's claims are the only ones to queue on the row.
          await slotReleased(`round ${round}: slot released`);
        }
      } finally {
        await locker.query('ROLLBACK').catch(() => {});
        await Promise.all([locker.end(), observer.end()]);
      }
    });

    it('ends with exactly one open socket when the same device connects on A, B and C at once, round after round', async () => {
      const token = await loginUser(a, appKey, 'erin');
      const sockets: { client: TestClient; sessionId: string }[] = [];
      const closes = new Map<TestClient, { code: number; reason: string }>();
      let survivor: { client: TestClient; sessionId: string } | undefined;
      for (let round = 1; round <= 6; round++) {
        const opened = await Promise.all(
          [a, b, c, a, b, c].map(async (node) => {
            const client = clients.track(TestClient.connect(`${node.wsUrl}/ws`, bearer(token)));
            client.closed.then((closed) => closes.set(client, closed));
            const connected = await client.next('connected');
            return { client, sessionId: connected.body.session_id as string };
          }),
        );
        sockets.push(...opened);
        survivor = await eventually(
          async () => {
            const open = sockets.filter((s) => !closes.has(s.client));
            assert.equal(open.length, 1, `${open.length} sockets open`);
            const held = await connectionsOf(cluster, 'erin');
            assert.deepEqual(
              held.map((conn) => conn.session_id),
              [open[0]?.sessionId],
              'the nodes list the open socket only',
            );
            return open[0];
          },
          WAIT_MS,
          `round ${round}`,
        );
      }
      for (const [, closed] of closes) assert.deepEqual(closed, { code: 4409, reason: 'REPLACED' });
      assert.equal(closes.size, sockets.length - 1);
      const whoami = await (survivor as { client: TestClient }).client.request({ type: 'whoami' });
      assert.equal(whoami.code, 200);
    });

    it("closes a login session's sockets on A and B with 4410 within a second when it logs out on C", async () => {
      const token = await loginUser(a, appKey, 'frank');
      const onA = await clients.device(a, '/ws', token);
      const onB = await clients.device(b, '/ws', token, 'im_pc');
      const otherSession = await clients.device(b, '/ws', await loginUser(b, appKey, 'frank', 'im_app_ios'));

      const res = await api(c, 'POST', '/api/v1/auth/logout', bearer(token));
      assert.equal(res.status, 204);
      const closed = await Promise.all(
        [onA, onB].map((device) =>
          within(device.client.closed, 'a socket of the logged-out session closing', REVOCATION_WAIT_MS),
        ),
      );
      assert.deepEqual(closed, [
        { code: 4410, reason: 'REVOKED' },
        { code: 4410, reason: 'REVOKED' },
      ]);
      for (const device of [onA, onB])
        assert.deepEqual(await device.client.next('kicked'), { type: 'kicked', code: 200, reason: 'REVOKED' });

      assert.equal((await otherSession.client.request({ type: 'whoami' })).code, 200, 'another session stays');
      for (const node of [a, b])
        await expectHttpRejection(
          clients.track(TestClient.connect(`${node.wsUrl}/ws`, bearer(token))),
          401,
          'TOKEN_REVOKED',
        );
    });

    it("closes a principal's sockets on the other nodes when an admin kicks, revokes or blocks it on one node", async () => {
      const expectClosed = async (devices: Device[], reason: string) => {
        for (const device of devices) {
          assert.deepEqual(await within(device.client.closed, `${reason} close`, REVOCATION_WAIT_MS), {
            code: 4410,
            reason,
          });
          assert.deepEqual(await device.client.next('kicked'), { type: 'kicked', code: 200, reason });
        }
      };

      // Kick one device type, then all: through node A, sockets on B and C.
      const webOnB = await clients.device(b, '/ws', await loginUser(b, appKey, 'gina', 'im_web'));
      const iosOnC = await clients.device(c, '/ws', await loginUser(c, appKey, 'gina', 'im_app_ios'));
      const pcOnC = await clients.device(c, '/ws', await loginUser(c, appKey, 'gina', 'im_pc'));
      let res = await cluster.admin(a, 'POST', '/api/v1/admin/principals/gina/kick', { deviceType: 'im_app_ios' });
      assert.equal(res.status, 200);
      await expectClosed([iosOnC], 'KICKED');
      // Node C handled that event for all of gina's sockets at once: its other device type answers.
      assert.equal((await pcOnC.client.request({ type: 'whoami' })).code, 200);
      res = await cluster.admin(a, 'POST', '/api/v1/admin/principals/gina/kick');
      assert.equal(res.status, 200);
      await expectClosed([webOnB, pcOnC], 'KICKED');

      // Revoke through node B: sockets on A and C close, and the old tokens are refused everywhere.
      const oldToken = await loginUser(a, appKey, 'gina', 'im_web');
      const webOnA = await clients.device(a, '/ws', oldToken);
      const iosOnC2 = await clients.device(c, '/ws', await loginUser(c, appKey, 'gina', 'im_app_ios'));
      res = await cluster.admin(b, 'POST', '/api/v1/admin/principals/gina/revoke');
      assert.equal(res.status, 200);
      await expectClosed([webOnA, iosOnC2], 'REVOKED');
      await expectHttpRejection(
        clients.track(TestClient.connect(`${c.wsUrl}/ws`, bearer(oldToken))),
        401,
        'TOKEN_REVOKED',
      );

      // Block through node C: sockets on A and B close, no token works and no login is possible.
      const tokenBeforeBlock = await loginUser(a, appKey, 'gina', 'im_web');
      const webOnA2 = await clients.device(a, '/ws', tokenBeforeBlock);
      const iosOnB = await clients.device(b, '/ws', await loginUser(b, appKey, 'gina', 'im_app_ios'));
      res = await cluster.admin(c, 'POST', '/api/v1/admin/principals/gina/block');
      assert.equal(res.status, 200);
      await expectClosed([webOnA2, iosOnB], 'BLOCKED');
      await expectHttpRejection(
        clients.track(TestClient.connect(`${b.wsUrl}/ws`, bearer(tokenBeforeBlock))),
        403,
        'FORBIDDEN',
      );
      await assert.rejects(loginUser(a, appKey, 'gina'), /403/);

      // Unblock through node A: a new login on B connects on C.
      res = await cluster.admin(a, 'POST', '/api/v1/admin/principals/gina/unblock');
      assert.equal(res.status, 200);
      const back = await clients.device(c, '/ws', await loginUser(b, appKey, 'gina'));
      assert.equal(back.connected.body.user.id, 'gina');
    });

    it('accepts a ticket issued on A once on B and refuses it again on C', async () => {
      const token = await loginUser(a, appKey, 'hank');
      const issued = await api(a, 'POST', '/api/v1/ws-ticket', bearer(token));
      assert.equal(issued.status, 200, JSON.stringify(issued.body));
      const ticket = encodeURIComponent(issued.body.ticket);

      const first = clients.track(TestClient.connect(`${b.wsUrl}/ws?ticket=${ticket}`));
      const connected = await first.next('connected');
      assert.equal(connected.body.user.id, 'hank');
      await expectHttpRejection(
        clients.track(TestClient.connect(`${c.wsUrl}/ws?ticket=${ticket}`)),
        401,
        'TOKEN_INVALID',
      );
      assert.equal((await first.request({ type: 'whoami' })).body.user.id, 'hank');
    });

    it('accepts a ticket presented on A, B and C at the same moment exactly once', async () => {
      const token = await loginUser(a, appKey, 'hank');
      for (let round = 0; round < 5; round++) {
        const issued = await api(b, 'POST', '/api/v1/ws-ticket', bearer(token));
        assert.equal(issued.status, 200);
        const ticket = encodeURIComponent(issued.body.ticket);
        const outcomes = await Promise.all(
          [a, b, c].map((node) => attempt(clients, `${node.wsUrl}/ws?ticket=${ticket}`)),
        );
        assert.deepEqual(outcomes.map((o) => o.outcome).sort(), ['401 TOKEN_INVALID', '401 TOKEN_INVALID', 'open']);
        await clients.closeAll();
      }
    });

    it('tells a peer on A when a user comes online and goes offline on B', async () => {
      const ivy = await clients.device(a, '/ws', await loginUser(a, appKey, 'ivy'));
      const jackToken = await loginUser(b, appKey, 'jack');
      await sendOk(ivy.client, { to: 'jack', text: 'are you there?' });
      const jack = await clients.device(b, '/ws', jackToken);
      assert.deepEqual(await ivy.client.next('presence'), {
        type: 'presence',
        code: 200,
        user_id: 'jack',
        online: true,
      });
      jack.client.close();
      assert.deepEqual(await ivy.client.next('presence'), {
        type: 'presence',
        code: 200,
        user_id: 'jack',
        online: false,
      });
    });

    it('stops counting a user online within one heartbeat window after the node holding its only socket is killed, also once that node is back', async () => {
      // What a node that joins now would see: the cluster state as every node reads it.
      const pool = new pg.Pool({ connectionString: cluster.database.url, max: 1 });
      const view = new PostgresClusterState({
        pool,
        node: `${cluster.prefix}-observer`,
        heartbeatMs: 2000,
        liveWindowMs: LIVE_WINDOW_MS,
        clock: systemClock,
        log: createLogger('silent'),
      });
      const online = async () => [...(await view.online(['kate']))];
      try {
        const token = await loginUser(c, appKey, 'kate');
        const kate = await clients.device(c, '/ws', token);
        await eventually(async () => assert.deepEqual(await online(), ['kate']), WAIT_MS, 'kate counted online');
        const peer = await clients.device(a, '/ws', await loginUser(a, appKey, 'kate-peer'));
        await sendOk(peer.client, { to: 'kate', text: 'hello' });

        await c.kill();
        assert.equal((await within(kate.client.closed, 'socket of the killed node')).code, 1006);
        await eventually(
          async () => assert.deepEqual(await online(), []),
          LIVE_WINDOW_MS + 1000,
          'kate no longer counted online',
        );
        // A surviving node reaps the dead one and tells Kate's peers she went offline.
        assert.deepEqual(
          await peer.client.next((f) => f.type === 'presence' && f.user_id === 'kate', LIVE_WINDOW_MS + 5000),
          { type: 'presence', code: 200, user_id: 'kate', online: false },
        );

        // Node C comes back (same node id) without the connections it had: they stay uncounted.
        await c.restart();
        assert.deepEqual(await online(), []);
        await clients.device(c, '/ws', token);
        await eventually(async () => assert.deepEqual(await online(), ['kate']), WAIT_MS, 'kate online again');
      } finally {
        await view.stop();
        await pool.end();
      }
    });

    it('keeps every acknowledged message when node B is killed while its clients send, and replays them after the recipient reconnects elsewhere', async () => {
      const senders = ['leo', 'max'];
      const tokens = Object.fromEntries(
        await Promise.all([...senders, 'mia'].map(async (id) => [id, await loginUser(b, appKey, id)] as const)),
      ) as Record<string, string>;
      const senderDevices = await Promise.all(senders.map((id) => clients.device(b, '/ws', tokens[id] as string)));
      const mia = await clients.device(b, '/ws', tokens.mia as string);
      // Mia acknowledges what she receives live, as a client does: her delivery cursors move.
      const receivedLive = new Set<string>();
      mia.client.ws.on('message', (raw) => {
        const frame = JSON.parse(raw.toString()) as Frame;
        if (frame.type !== 'message') return;
        receivedLive.add(frame.message.id);
        mia.client.send({ type: 'ack', conversation_id: frame.message.conversation_id, seq: frame.message.seq });
      });

      const acked = new Map<string, { message_id: string; conversation_id: string; seq: number }[]>(
        senders.map((id) => [id, []]),
      );
      const refused: Frame[] = [];
      // Three requests in flight per sender, up to 100 each (below the replay cap of 500 per conversation).
      const workers = senderDevices.flatMap((device, s) =>
        [0, 1, 2].map(async (w) => {
          const sender = senders[s] as string;
          for (let i = 0; i < 100; i++) {
            const reply = await Promise.race([
              device.client
                .request({
                  type: 'message',
                  to: 'mia',
                  text: `${sender} ${w}.${i}`,
                  client_msg_id: `${sender}-${w}-${i}`,
                })
                .catch(() => null),
              device.client.closed.then(() => null),
            ]);
            if (!reply) return;
            if (reply.type === 'ack' && reply.code === 200) acked.get(sender)?.push(reply.body);
            else refused.push(reply);
          }
        }),
      );
      const ackCount = () => [...acked.values()].reduce((n, list) => n + list.length, 0);
      await eventually(() => assert.ok(ackCount() >= 60, `${ackCount()} acks`), WAIT_MS, 'traffic under way');
      await b.kill();
      await within(Promise.all(workers), 'senders noticing the dead node');
      assert.deepEqual(refused, []);
      assert.ok(ackCount() < 600, 'node B died mid-traffic');

      // Every acknowledged message is stored, read back through node A.
      const conversations = new Map<string, string>();
      for (const sender of senders) {
        const list = acked.get(sender) ?? [];
        const conversationId = list[0]?.conversation_id as string;
        conversations.set(sender, conversationId);
        assertHoldsEvery(await history(a, tokens.mia as string, conversationId), list);
      }

      // Mia reconnects to node A: the replay brings what she had not received live.
      const miaAgain = await clients.device(a, '/ws', tokens.mia as string);
      assert.equal(miaAgain.complete.truncated, false);
      const delivered = new Set([...receivedLive, ...miaAgain.offline.map((f) => f.message.id as string)]);
      for (const [sender, list] of acked)
        for (const ack of list) assert.ok(delivered.has(ack.message_id), `${sender} seq ${ack.seq} reached mia`);

      // The senders carry on from node C, and node B comes back and delivers again.
      const leo = await clients.device(c, '/ws', tokens.leo as string);
      const stored = await history(a, tokens.mia as string, conversations.get('leo') as string);
      const next = await sendOk(leo.client, { to: 'mia', text: 'back on C' });
      assert.equal(next.seq, stored.length + 1);
      assert.equal(
        (await miaAgain.client.next((f) => f.type === 'message' && f.message.id === next.message_id)).message.seq,
        next.seq,
      );
      await b.restart();
      const max = await clients.device(b, '/ws', tokens.max as string);
      const fromB = await sendOk(max.client, { to: 'mia', text: 'B is back' });
      assert.equal(
        (await miaAgain.client.next((f) => f.type === 'message' && f.message.id === fromB.message_id)).message.text,
        'B is back',
      );
    });

    it('stops every node process and drops its database when closed', async () => {
      await clients.closeAll();
      await cluster.close();
      for (const node of cluster.nodes.values()) assert.equal(node.running, false, `node ${node.name} stopped`);
      assert.equal(await databaseExists(POSTGRES_URL, cluster.database.name), false);
    });
  });

  describe(`Gatehouse processes on PostgreSQL + a ${backend.name} server that restarts`, { skip }, () => {
    let brokerServer: BrokerServerProcess | undefined;
    let cluster: Cluster | undefined;
    const clients = new Clients();
    after(async () => {
      await clients.closeAll();
      await cluster?.close();
      await brokerServer?.stop();
    });

    it('reports not ready while the broker is down, acks and keeps every message sent meanwhile, and delivers live again once it is back', async () => {
      brokerServer = await backend.startServer();
      cluster = await Cluster.start({ postgresUrl: POSTGRES_URL, brokerUrl: brokerServer.url, nodes: ['a', 'b'] });
      const [a, b] = [cluster.node('a'), cluster.node('b')];
      const appKey = await cluster.createAppKey(a);
      const patToken = await loginUser(a, appKey, 'pat');
      const quinnToken = await loginUser(b, appKey, 'quinn');
      const pat = await clients.device(a, '/ws', patToken);
      const quinn = await clients.device(b, '/ws', quinnToken);
      const first = await sendOk(pat.client, { to: 'quinn', text: 'before the outage' });
      assert.equal((await quinn.client.next('message')).message.id, first.message_id);

      // Pat keeps sending through the outage, one message at a time.
      const acked: { message_id: string; seq: number }[] = [first];
      const refused: Frame[] = [];
      let sending = true;
      const traffic = (async () => {
        for (let i = 0; sending; i++) {
          const reply = await pat.client
            .request({ type: 'message', to: 'quinn', text: `m${i}`, client_msg_id: `pat-${i}` })
            .catch((err: Error) => ({ type: 'no reply', error: err.message }) as Frame);
          if (reply.type === 'ack' && reply.code === 200) acked.push(reply.body);
          else refused.push(reply);
          await sleep(20);
        }
      })();
      const moreAcks = async (count: number, what: string) => {
        const target = acked.length + count;
        await eventually(() => assert.ok(acked.length >= target, `${acked.length} acks`), WAIT_MS, what);
      };
      const readiness = (node: ClusterNode, status: number) =>
        eventually(
          async () => {
            const res = await api(node, 'GET', '/readyz');
            assert.equal(res.status, status, JSON.stringify(res.body));
            return res.body;
          },
          3 * WAIT_MS,
          `node ${node.name} /readyz ${status}`,
        );
      let moved: Device | undefined;
      try {
        await moreAcks(5, 'traffic under way');
        await brokerServer.kill();
        for (const node of [a, b]) {
          const down = await readiness(node, 503);
          assert.equal(down.status, 'not ready');
          assert.equal(down.store, 'ok');
          assert.equal(down.broker, 'unavailable', 'the reason is in the log only');
        }
        await moreAcks(10, 'acks while the broker is down');
        // Quinn's web device moves to node A meanwhile: A claims its slot from B's socket and
        // cannot tell B (no broker), and serves it all the same.
        moved = await clients.device(a, '/ws', quinnToken);
        assert.equal((await moved.client.request({ type: 'whoami' })).code, 200);
        // B never hears the evict, but its own slot check (every heartbeat interval, against
        // PostgreSQL) finds the slot taken and closes the old socket.
        const replaced = await within(quinn.client.closed, "B's slot check closing the replaced socket");
        assert.equal(replaced.code, 4409);
        await brokerServer.start();
        for (const node of [a, b]) assert.equal((await readiness(node, 200)).broker, 'ok');
        await moreAcks(5, 'acks after the broker is back');
      } finally {
        sending = false;
        await traffic;
      }
      assert.deepEqual(refused, []);

      // Nothing acknowledged is lost: it is stored, and Quinn's next connection replays it.
      assertHoldsEvery(await history(b, quinnToken, first.conversation_id), acked);
      for (const device of [quinn, moved]) {
        device?.client.close();
        await device?.client.closed;
      }
      const quinnAgain = await clients.device(b, '/ws', quinnToken);
      assert.deepEqual(
        quinnAgain.offline.map((f) => f.message.id),
        acked.map((ack) => ack.message_id),
      );

      // Live delivery across the nodes works again.
      const live = await sendOk(pat.client, { to: 'quinn', text: 'after the outage' });
      assert.equal((await quinnAgain.client.next('message')).message.id, live.message_id);
    });

    it('stops every node process and drops its database when closed', async () => {
      assert.ok(cluster);
      await clients.closeAll();
      await cluster.close();
      for (const node of cluster.nodes.values()) assert.equal(node.running, false, `node ${node.name} stopped`);
      assert.equal(await databaseExists(POSTGRES_URL, cluster.database.name), false);
    });
  });
}
