import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { Clients, nextFrames, sendMessage, sendOk } from './helpers/messaging.js';
import { agentLogin, api, newCustomer, startServer, type TestServer } from './helpers/test-server.js';

describe('the support flow', () => {
  let server: TestServer;
  const clients = new Clients();

  const asBearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const sessions = async (token: string, status: 'open' | 'mine') => {
    const res = await api(server, 'GET', `/api/v1/sessions?status=${status}`, { headers: asBearer(token) });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.sessions as { id: string; status: string; customer_id: string; agent_id: string | null }[];
  };

  before(async () => {
    server = await startServer();
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  it('takes a customer from waiting to claimed to closed with two agents', async () => {
    const agentA = await agentLogin(server, 'support-a');
    const agentB = await agentLogin(server, 'support-b');
    const customer = await newCustomer(server, 'Visitor One');
    assert.match(customer.sessionId, /\S/);

    const a = await clients.device(server, '/ws/chat', agentA.token);
    const b = await clients.device(server, '/ws/chat', agentB.token);
    const c = await clients.device(server, '/ws/chat', customer.token);
    assert.equal(c.complete.count, 0);

    // The customer writes in its unclaimed session: every online agent is told.
    const first = await sendOk(c.client, { sessionId: customer.sessionId, text: 'I need help', client_msg_id: 'q1' });
    assert.equal(first.conversation_id, customer.sessionId);
    assert.equal(first.seq, 1);
    for (const agent of [a, b]) {
      const waiting = await agent.client.next('session_waiting');
      assert.equal(waiting.code, 200);
      assert.equal(waiting.session.id, customer.sessionId);
      assert.equal(waiting.session.status, 'open');
      assert.equal(waiting.session.customer_id, customer.customerId);
      assert.equal(waiting.session.agent_id, null);
      assert.equal(waiting.session.last_seq, 1);
      assert.deepEqual(waiting.session.customer, { id: customer.customerId, kind: 'customer', name: 'Visitor One' });
      assert.equal(waiting.message.id, first.message_id);
      assert.equal(waiting.message.text, 'I need help');
    }
    const second = await sendOk(c.client, { sessionId: customer.sessionId, text: 'anyone there?' });
    for (const agent of [a, b]) {
      const waiting = await agent.client.next('session_waiting');
      assert.equal(waiting.message.seq, 2);
      assert.equal(waiting.session.last_seq, 2);
    }

    const open = await sessions(agentA.token, 'open');
    const listed = open.find((s) => s.id === customer.sessionId);
    assert.equal(listed?.status, 'open');
    assert.equal(listed?.customer_id, customer.customerId);
    assert.equal(listed?.agent_id, null);
    const asCustomer = await api(server, 'GET', '/api/v1/sessions?status=open', { headers: asBearer(customer.token) });
    assert.equal(asCustomer.status, 403);

    // Agent A claims: it joins, and its socket receives the backlog.
    const claimed = await api(server, 'POST', `/api/v1/sessions/${customer.sessionId}/claim`, {
      headers: asBearer(agentA.token),
    });
    assert.equal(claimed.status, 200, JSON.stringify(claimed.body));
    assert.equal(claimed.body.session.status, 'claimed');
    assert.equal(claimed.body.session.agent_id, agentA.user.id);
    const backlog = await nextFrames(a.client, 'offline_message', 2);
    assert.deepEqual(
      backlog.map((f) => [f.message.id, f.message.seq, f.message.text]),
      [
        [first.message_id, 1, 'I need help'],
        [second.message_id, 2, 'anyone there?'],
      ],
    );
    const complete = await a.client.next('offline_messages_complete');
    assert.equal(complete.count, 2);
    assert.equal(complete.truncated, false);

    const secondClaim = await api(server, 'POST', `/api/v1/sessions/${customer.sessionId}/claim`, {
      headers: asBearer(agentB.token),
    });
    assert.equal(secondClaim.status, 409);
    assert.equal(secondClaim.body.error, 'CONFLICT');
    const byCustomer = await api(server, 'POST', `/api/v1/sessions/${customer.sessionId}/claim`, {
      headers: asBearer(customer.token),
    });
    assert.equal(byCustomer.status, 403);

    assert.deepEqual(
      (await sessions(agentA.token, 'mine')).map((s) => s.id),
      [customer.sessionId],
    );
    assert.deepEqual(await sessions(agentB.token, 'mine'), []);
    assert.equal(
      (await sessions(agentB.token, 'open')).find((s) => s.id === customer.sessionId),
      undefined,
    );

    // Messages both ways between A and the customer.
    const fromCustomer = await sendOk(c.client, { sessionId: customer.sessionId, text: 'my order is late' });
    const atA = await a.client.next('message');
    assert.equal(atA.message.id, fromCustomer.message_id);
    assert.deepEqual(atA.message.from, { id: customer.customerId, kind: 'customer', name: 'Visitor One' });
    const fromAgent = await sendOk(a.client, { conversation_id: customer.sessionId, text: 'let me check' });
    assert.equal(fromAgent.seq, 4);
    const atCustomer = await c.client.next('message');
    assert.equal(atCustomer.message.text, 'let me check');
    assert.deepEqual(atCustomer.message.from, agentA.user);

    // A claimed session no longer pages every agent: B's next notice is another customer's.
    const other = await newCustomer(server, 'Visitor Two');
    const otherSocket = await clients.device(server, '/ws/chat', other.token);
    await sendOk(otherSocket.client, { sessionId: other.sessionId, text: 'hello?' });
    const nextNotice = await b.client.next('session_waiting');
    assert.equal(nextNotice.session.id, other.sessionId);

    // B is not in the session.
    const intrusion = await sendMessage(b.client, { conversation_id: customer.sessionId, text: 'hi' });
    assert.equal(intrusion.error, 'NOT_MEMBER');

    // Only A can close it.
    const closeByB = await api(server, 'POST', `/api/v1/sessions/${customer.sessionId}/close`, {
      headers: asBearer(agentB.token),
    });
    assert.equal(closeByB.status, 403);
    const closeByA = await api(server, 'POST', `/api/v1/sessions/${customer.sessionId}/close`, {
      headers: asBearer(agentA.token),
    });
    assert.equal(closeByA.status, 200);
    assert.deepEqual(await sessions(agentA.token, 'mine'), []);

    // A closed session takes no more messages, from either side.
    const refused = await sendMessage(c.client, { sessionId: customer.sessionId, text: 'one more thing' });
    assert.equal(refused.type, 'ack');
    assert.equal(refused.code, 403);
    assert.equal(refused.error, 'FORBIDDEN');
    const refusedAgent = await sendMessage(a.client, { conversation_id: customer.sessionId, text: 'bye' });
    assert.equal(refusedAgent.code, 403);

    const history = await c.client.request({ type: 'history', conversation_id: customer.sessionId });
    assert.deepEqual(
      history.body.messages.map((m: { text: string }) => m.text),
      ['I need help', 'anyone there?', 'my order is late', 'let me check'],
    );
    const reclaim = await api(server, 'POST', `/api/v1/sessions/${customer.sessionId}/claim`, {
      headers: asBearer(agentB.token),
    });
    assert.equal(reclaim.status, 409, 'a closed session cannot be claimed');
  });

  it('answers 404 for claiming or closing an unknown session', async () => {
    const agent = await agentLogin(server, 'support-c');
    for (const action of ['claim', 'close']) {
      const res = await api(server, 'POST', `/api/v1/sessions/ss_unknown/${action}`, {
        headers: asBearer(agent.token),
      });
      assert.equal(res.status, 404, action);
      assert.equal(res.body.error, 'NOT_FOUND');
    }
  });
});
