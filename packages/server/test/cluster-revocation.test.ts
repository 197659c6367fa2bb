import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ManualClock } from '../src/clock.js';
import { generateKeysFile } from '../src/tokens/signing-keys.js';
import { eventually, uniquePrefix } from './helpers/broker-conformance.js';
import { type BrokerServerProcess, startNatsServer, startRedisServer } from './helpers/broker-server-process.js';
import { Cluster, loginUser } from './helpers/cluster.js';
import { Clients } from './helpers/messaging.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';
import { api, createAppKey, startServer, type TestServer, userToken } from './helpers/test-server.js';
import { TestClient, WAIT_MS } from './helpers/ws-client.js';
import { within } from './helpers/ws-expect.js';

/*
 * Revocations across nodes when the broker is away (issue 7, item 2): the store is the
 * truth, each node's revocation cache forgets within `auth.revocationCacheTtl`, and a node
 * re-checks its live sockets when its broker connection comes back. Separate processes run
 * on the real clock, so the tests poll for each outcome with a generous bound instead of
 * asserting how long it took.
 */

const POSTGRES_URL = process.env.GATEHOUSE_TEST_POSTGRES_URL ?? '';
const notSet = (name: string) => `${name} is not set (give it a server URL to run the multi-node tests)`;
/** A short cache lifetime for these clusters, so the bound is reached in a test's time. */
const CACHE_TTL = '1s';
/** Generous: the TTL plus two cores' worth of slack; polled, never asserted as a duration. */
const CONVERGE_MS = 4 * WAIT_MS;

const BACKENDS = [
  { name: 'Redis', variable: 'GATEHOUSE_TEST_REDIS_URL', startServer: startRedisServer },
  { name: 'NATS', variable: 'GATEHOUSE_TEST_NATS_URL', startServer: startNatsServer },
];

const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

/**
 * How `node` answers a handshake with `token` now: `open`, or the refusal's status and code.
 * As another device type than the tests' live sockets, so that an accepted probe replaces none.
 */
async function handshake(clients: Clients, node: { wsUrl: string }, token: string): Promise<string> {
  const client = clients.track(
    TestClient.connect(`${node.wsUrl}/ws`, { headers: { authorization: `Bearer ${token}`, devicetype: 'im_pc' } }),
  );
  const outcome = await within(
    Promise.race([
      client.opened.then(() => 'open'),
      client.rejection.then((r) => `${r.status} ${r.headers['x-websocket-error-code']}`),
    ]),
    'handshake outcome',
  );
  client.ws.terminate();
  return outcome;
}

async function readiness(node: { name?: string; url: string }, status: number): Promise<void> {
  await eventually(
    async () => assert.equal((await api(node, 'GET', '/readyz')).status, status),
    CONVERGE_MS,
    `node ${node.name ?? node.url} /readyz ${status}`,
  );
}

for (const backend of BACKENDS) {
  const skip = !POSTGRES_URL
    ? notSet('GATEHOUSE_TEST_POSTGRES_URL')
    : !process.env[backend.variable]
      ? notSet(backend.variable)
      : false;

  describe(`revocations across Gatehouse processes on PostgreSQL + a ${backend.name} server that goes away`, {
    skip,
  }, () => {
    let brokerServer: BrokerServerProcess | undefined;
    let cluster: Cluster | undefined;
    const clients = new Clients();
    after(async () => {
      await clients.closeAll();
      await cluster?.close();
      await brokerServer?.stop();
    });

    it('logs out, revokes and blocks on A while the broker is down, B refuses those tokens within the cache lifetime, and closes their live sockets once the broker is back', async () => {
      brokerServer = await backend.startServer();
      cluster = await Cluster.start({
        postgresUrl: POSTGRES_URL,
        brokerUrl: brokerServer.url,
        nodes: ['a', 'b'],
        env: { GATEHOUSE_AUTH_REVOCATION_CACHE_TTL: CACHE_TTL },
      });
      const [a, b] = [cluster.node('a'), cluster.node('b')];
      const appKey = await cluster.createAppKey(a);
      const loggedOut = await loginUser(a, appKey, 'lou');
      const revoked = await loginUser(a, appKey, 'rae');
      const blocked = await loginUser(a, appKey, 'bo');
      const bystander = await loginUser(a, appKey, 'sam');
      // Live sockets on B; each handshake also put "not revoked, not blocked" in B's cache.
      const live = {
        loggedOut: await clients.device(b, '/ws', loggedOut),
        revoked: await clients.device(b, '/ws', revoked),
        blocked: await clients.device(b, '/ws', blocked),
        bystander: await clients.device(b, '/ws', bystander),
      };
      for (const token of [loggedOut, revoked, blocked]) assert.equal(await handshake(clients, b, token), 'open');

      await brokerServer.kill();
      await readiness(a, 503);
      await readiness(b, 503);

      // Each answers success once the store committed, though nothing could be published.
      assert.equal((await api(a, 'POST', '/api/v1/auth/logout', bearer(loggedOut))).status, 204);
      assert.equal((await cluster.admin(a, 'POST', '/api/v1/admin/principals/rae/revoke')).status, 200);
      assert.equal((await cluster.admin(a, 'POST', '/api/v1/admin/principals/bo/block')).status, 200);

      // B heard nothing, but its cache entries expire: new handshakes are refused.
      await eventually(
        async () => {
          assert.equal(await handshake(clients, b, loggedOut), '401 TOKEN_REVOKED');
          assert.equal(await handshake(clients, b, revoked), '401 TOKEN_REVOKED');
          assert.equal(await handshake(clients, b, blocked), '403 FORBIDDEN');
        },
        CONVERGE_MS,
        'B refusing the revoked tokens while the broker is down',
      );
      // And so does B's REST API.
      assert.equal((await api(b, 'GET', '/api/v1/conversations', bearer(loggedOut))).status, 401);

      // When the broker is back, B re-checks its live sockets against the store.
      await brokerServer.start();
      const closes = await Promise.all(
        [live.loggedOut, live.revoked, live.blocked].map((device) =>
          within(device.client.closed, 'a revoked socket on B closing after the broker is back', CONVERGE_MS),
        ),
      );
      assert.deepEqual(closes, [
        { code: 4410, reason: 'REVOKED' },
        { code: 4410, reason: 'REVOKED' },
        { code: 4410, reason: 'BLOCKED' },
      ]);
      await readiness(b, 200);
      assert.equal((await live.bystander.client.request({ type: 'whoami' })).code, 200, 'the others stay');
    });

    it('answers the in-band logout frame once the session is revoked, with the broker down', async () => {
      assert.ok(brokerServer && cluster);
      const [a, b] = [cluster.node('a'), cluster.node('b')];
      const appKey = await cluster.createAppKey(a);
      const token = await loginUser(a, appKey, 'lin');
      const onA = await clients.device(a, '/ws', token);
      assert.equal(await handshake(clients, b, token), 'open');
      await brokerServer.kill();
      await readiness(a, 503);
      const reply = await onA.client.request({ type: 'logout' });
      assert.equal(reply.code, 200, JSON.stringify(reply));
      assert.deepEqual(await within(onA.client.closed, 'the logged-out socket closing'), {
        code: 1000,
        reason: 'normal',
      });
      // Committed before the reply: this node refuses the token at once.
      assert.equal(await handshake(clients, a, token), '401 TOKEN_REVOKED');
      await eventually(
        async () => assert.equal(await handshake(clients, b, token), '401 TOKEN_REVOKED'),
        CONVERGE_MS,
        'B refusing the logged-out token while the broker is down',
      );
      await brokerServer.start();
      await readiness(a, 200);
    });
  });
}

for (const backend of BACKENDS) {
  const skip = !POSTGRES_URL
    ? notSet('GATEHOUSE_TEST_POSTGRES_URL')
    : !process.env[backend.variable]
      ? notSet(backend.variable)
      : false;

  describe(`two Gatehouse nodes in one process on one ManualClock, PostgreSQL + a ${backend.name} server that goes away`, {
    skip,
  }, () => {
    let brokerServer: BrokerServerProcess | undefined;
    let db: TestDatabase | undefined;
    let dir: string | undefined;
    const nodes: TestServer[] = [];
    const clients = new Clients();
    after(async () => {
      await clients.closeAll();
      for (const node of nodes) await node.close();
      await brokerServer?.stop();
      await db?.drop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('refuses a token logged out on A on node B once auth.revocationCacheTtl has passed on the clock, while the broker is down', async () => {
      brokerServer = await backend.startServer();
      db = await createTestDatabase();
      dir = mkdtempSync(join(tmpdir(), 'gatehouse-two-nodes-'));
      const keysFile = join(dir, 'keys.json');
      writeFileSync(keysFile, JSON.stringify(generateKeysFile()), { mode: 0o600 });
      const clock = new ManualClock(Date.now());
      const prefix = uniquePrefix('two-nodes');
      for (const name of ['a', 'b'])
        nodes.push(
          await startServer(
            {
              nodeId: `${prefix}-${name}`,
              store: { url: db.url, poolSize: 3 },
              broker: { url: brokerServer.url, prefix },
              tokens: { keysFile },
              auth: { revocationCacheTtl: '5s' },
              demo: { seed: false },
            },
            { clock },
          ),
        );
      const [a, b] = nodes as [TestServer, TestServer];
      const appKey = await createAppKey(a);
      const token = await userToken(a, appKey, 'uma');
      const live = await clients.device(b, '/ws', token);
      assert.equal(await handshake(clients, b, token), 'open', "B's cache now says: not revoked");

      await brokerServer.kill();
      for (const node of nodes)
        await eventually(
          () => assert.notEqual(node.gatehouse.services.broker.status(), 'ready'),
          WAIT_MS,
          'the broker seen as away',
        );
      assert.equal((await api(a, 'POST', '/api/v1/auth/logout', bearer(token))).status, 204);
      assert.equal(await handshake(clients, a, token), '401 TOKEN_REVOKED', 'A knows at once');
      // B heard nothing and trusts its entry for the configured lifetime, not one moment longer.
      clock.advance(4999);
      assert.equal(await handshake(clients, b, token), 'open', 'within the lifetime');
      clock.advance(1);
      assert.equal(await handshake(clients, b, token), '401 TOKEN_REVOKED');
      assert.equal((await api(b, 'GET', '/api/v1/conversations', bearer(token))).status, 401);

      // B's live socket of that session closes once B's broker connection is back.
      await brokerServer.start();
      assert.deepEqual(await within(live.client.closed, 'the live socket on B closing', CONVERGE_MS), {
        code: 4410,
        reason: 'REVOKED',
      });
    });

    it('starts a node on PostgreSQL while the broker is down: it serves, answers /readyz 503, and is ready once the broker is back', async () => {
      assert.ok(brokerServer && db && dir);
      const [a] = nodes as [TestServer];
      await brokerServer.kill();
      const prefix = a.gatehouse.services.config.broker.prefix;
      const c = await within(
        startServer(
          {
            nodeId: `${prefix}-c`,
            store: { url: db.url, poolSize: 3 },
            broker: { url: brokerServer.url, prefix },
            tokens: { keysFile: join(dir, 'keys.json') },
            demo: { seed: false },
          },
          { clock: a.clock },
        ),
        'a start with the broker down',
      );
      nodes.push(c);
      assert.equal((await api(c, 'GET', '/readyz')).status, 503);
      const appKey = await createAppKey(c);
      const token = await userToken(c, appKey, 'newcomer');
      assert.equal(await handshake(clients, c, token), 'open', 'it serves without the broker');
      await brokerServer.start();
      await readiness(c, 200);
    });
  });
}
