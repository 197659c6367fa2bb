import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { Cluster, type ClusterNode } from './helpers/cluster.js';
import { Clients, sendOk } from './helpers/messaging.js';
import { api } from './helpers/test-server.js';

/*
 * The support flow across two Gatehouse processes on a real PostgreSQL and a real Redis or
 * NATS: the queue, the one open session of a customer and the claim/close events hold
 * whichever node each party is on.
 */

const POSTGRES_URL = process.env.GATEHOUSE_TEST_POSTGRES_URL ?? '';
const BACKENDS = [
  { name: 'Redis', url: process.env.GATEHOUSE_TEST_REDIS_URL ?? '', variable: 'GATEHOUSE_TEST_REDIS_URL' },
  { name: 'NATS', url: process.env.GATEHOUSE_TEST_NATS_URL ?? '', variable: 'GATEHOUSE_TEST_NATS_URL' },
];
const notSet = (name: string) => `${name} is not set (give it a server URL to run the multi-node tests)`;
const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

for (const backend of BACKENDS) {
  const skip = !POSTGRES_URL ? notSet('GATEHOUSE_TEST_POSTGRES_URL') : !backend.url ? notSet(backend.variable) : false;

  describe(`the support flow on two Gatehouse processes, PostgreSQL + ${backend.name}`, { skip }, () => {
    let cluster: Cluster;
    let a: ClusterNode;
    let b: ClusterNode;
    const clients = new Clients();

    before(async () => {
      if (skip) return;
      cluster = await Cluster.start({ postgresUrl: POSTGRES_URL, brokerUrl: backend.url, nodes: ['a', 'b'] });
      [a, b] = ['a', 'b'].map((name) => cluster.node(name)) as [ClusterNode, ClusterNode];
    });
    afterEach(() => clients.closeAll());
    after(async () => {
      await clients.closeAll();
      await cluster?.close();
    });

    async function agent(node: ClusterNode, username: string) {
      const created = await cluster.admin(node, 'POST', '/api/v1/admin/agents', {
        username,
        password: 'correct-horse-battery',
        name: `Agent ${username}`,
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const login = await api(node, 'POST', '/api/v1/public/login', {
        body: { username, password: 'correct-horse-battery' },
      });
      assert.equal(login.status, 200, JSON.stringify(login.body));
      return login.body as { token: string; user: { id: string; name: string } };
    }

    it('queues on the first message, tells the customer and the other agents on another node of a claim and a close', async () => {
      const alice = await agent(a, 'alice');
      const bob = await agent(b, 'bob');
      const created = await api(b, 'POST', '/api/v1/public/customer-token', {
        body: { name: 'Visitor', channel: 'web' },
      });
      assert.equal(created.status, 200);
      const customer = created.body as { token: string; sessionId: string; customerId: string };
      // The same session from the other node: one open session per customer.
      const again = await api(a, 'POST', '/api/v1/sessions', bearer(customer.token));
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(again.body.sessionId, customer.sessionId);
      const queue = async (node: ClusterNode) =>
        (
          (await api(node, 'GET', '/api/v1/sessions?status=open', bearer(alice.token))).body.sessions as {
            id: string;
          }[]
        ).map((s) => s.id);
      assert.deepEqual(await queue(a), []);

      const atA = await clients.device(a, '/ws/chat', alice.token);
      const atB = await clients.device(b, '/ws/chat', bob.token);
      const visitor = await clients.device(b, '/ws/chat', customer.token);
      const first = await sendOk(visitor.client, { sessionId: customer.sessionId, text: 'hello from B' });
      for (const device of [atA, atB]) {
        const waiting = await device.client.next('session_waiting');
        assert.equal(waiting.session.id, customer.sessionId);
        assert.equal(waiting.session.waiting_since, first.ts);
      }
      assert.deepEqual(await queue(a), [customer.sessionId]);
      const [entry] = (await api(a, 'GET', '/api/v1/sessions?status=open', bearer(alice.token))).body.sessions;
      assert.equal(entry.channel, 'web');
      assert.equal(entry.first_message, 'hello from B');
      assert.equal(entry.waiting_since, first.ts);
      assert.equal(entry.customer.name, 'Visitor');

      const claim = await api(a, 'POST', `/api/v1/sessions/${customer.sessionId}/claim`, bearer(alice.token));
      assert.equal(claim.status, 200, JSON.stringify(claim.body));
      const claimed = {
        type: 'session_claimed',
        code: 200,
        session_id: customer.sessionId,
        agent: { id: alice.user.id, name: alice.user.name },
      };
      assert.deepEqual(await visitor.client.next('session_claimed'), claimed);
      assert.deepEqual(await atB.client.next('session_claimed'), claimed);
      assert.equal((await atA.client.next('offline_message')).message.text, 'hello from B');
      assert.deepEqual(await queue(b), []);

      const close = await api(a, 'POST', `/api/v1/sessions/${customer.sessionId}/close`, bearer(alice.token));
      assert.equal(close.status, 200);
      const closed = { type: 'session_closed', code: 200, session_id: customer.sessionId };
      assert.deepEqual(await visitor.client.next('session_closed'), closed);
      assert.deepEqual(await atB.client.next('session_closed'), closed);
    });
  });
}
