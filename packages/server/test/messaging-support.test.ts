import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { eventually } from './helpers/broker-conformance.js';
import { Clients, nextFrames, sendMessage, sendOk } from './helpers/messaging.js';
import { agentLogin, api, newCustomer, startServer, type TestServer } from './helpers/test-server.js';

describe('the support flow', () => {
  let server: TestServer;
  const clients = new Clients();

  const asBearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const sessions = async (token: string, status: 'open' | 'mine') => {
    const res = await api(server, 'GET', `/api/v1/sessions?status=${status}`, { headers: asBearer(token) });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.sessions as {
      id: string;
      status: string;
      customer_id: string;
      agent_id: string | null;
      customer_online?: boolean;
    }[];
  };

  before(async () => {
    server = await startServer();
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  it('says in the queue whether the customer is connected: offline once its socket closed', async () => {
    const agent = await agentLogin(server, 'support-presence');
    const customer = await newCustomer(server, 'Gone Visitor');
    const c = await clients.device(server, '/ws/chat', customer.token);
    await sendOk(c.client, { sessionId: customer.sessionId, text: 'hello?' });
    const listed = async () => (await sessions(agent.token, 'open')).find((s) => s.id === customer.sessionId);
    assert.equal((await listed())?.customer_online, true);
    c.client.ws.close();
    await c.client.closed;
    await eventually(
      async () => assert.equal((await listed())?.customer_online, false),
      undefined,
      'offline in the queue',
    );
  });

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
    // The queue says whether the customer is connected now (a console shows it before any presence change).
    assert.equal(listed?.customer_online, true);
    const asCustomer = await api(server, 'GET', '/api/v1/sessions?status=open', { headers: asBearer(customer.token) });
    assert.equal(asCustomer.status, 403);

    // Agent A claims: it joins, and its socket receives the backlog.
    const claimed = await api(server, 'POST', `/api/v1/sessions/${customer.sessionId}/claim`, {
      headers: asBearer(agentA.token),
    });
    assert.equal(claimed.status, 200, JSON.stringify(claimed.body));
    assert.equal(claimed.body.session.status, 'claimed');
    assert.equal(claimed.body.session.customer_online, true);
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
  it('tells the customer and the other online agents when an agent claims and closes a session', async () => {
    const agentA = await agentLogin(server, 'support-events-a');
    const agentB = await agentLogin(server, 'support-events-b');
    const customer = await newCustomer(server, 'Visitor Three');
    const a = await clients.device(server, '/ws/chat', agentA.token);
    const b = await clients.device(server, '/ws/chat', agentB.token);
    const c = await clients.device(server, '/ws/chat', customer.token);
    await sendOk(c.client, { sessionId: customer.sessionId, text: 'hello?' });
    await a.client.next('session_waiting');
    await b.client.next('session_waiting');

    const claimed = await api(server, 'POST', `/api/v1/sessions/${customer.sessionId}/claim`, {
      headers: asBearer(agentA.token),
    });
    assert.equal(claimed.status, 200);
    const expected = {
      type: 'session_claimed',
      code: 200,
      session_id: customer.sessionId,
      agent: { id: agentA.user.id, name: agentA.user.name },
    };
    assert.deepEqual(await c.client.next('session_claimed'), expected);
    assert.deepEqual(await b.client.next('session_claimed'), expected);
    // Claiming again changes nothing and announces nothing.
    const again = await api(server, 'POST', `/api/v1/sessions/${customer.sessionId}/claim`, {
      headers: asBearer(agentA.token),
    });
    assert.equal(again.status, 200);

    const closed = await api(server, 'POST', `/api/v1/sessions/${customer.sessionId}/close`, {
      headers: asBearer(agentA.token),
    });
    assert.equal(closed.status, 200);
    const closedEvent = { type: 'session_closed', code: 200, session_id: customer.sessionId };
    assert.deepEqual(await c.client.next('session_closed'), closedEvent);
    assert.deepEqual(await b.client.next('session_closed'), closedEvent);

    // Events to agents travel in order: once B has the next customer's notice, A has it too,
    // and A (who claimed and closed) never got its own events; nobody got the second claim.
    const other = await newCustomer(server, 'Visitor Four');
    const otherSocket = await clients.device(server, '/ws/chat', other.token);
    await sendOk(otherSocket.client, { sessionId: other.sessionId, text: 'marker' });
    await b.client.next((f) => f.type === 'session_waiting' && f.session.id === other.sessionId);
    await a.client.next((f) => f.type === 'session_waiting' && f.session.id === other.sessionId);
    const eventTypes = (frames: { type: string }[]) =>
      frames.filter((f) => f.type === 'session_claimed' || f.type === 'session_closed');
    assert.deepEqual(eventTypes(a.client.frames), []);
    assert.deepEqual(eventTypes(b.client.frames), []);
    assert.deepEqual(eventTypes(c.client.frames), []);
  });

  it('puts a session in the queue with its first customer message, with name, channel, preview and waiting time', async () => {
    const agent = await agentLogin(server, 'support-queue');
    const customer = await newCustomer(server, 'Visitor Five');
    // Reloads of the page: each makes a customer with a session, none of them in the queue.
    const reloads = [await newCustomer(server, 'Reload'), await newCustomer(server, 'Reload')];
    const queued = async () => (await sessions(agent.token, 'open')).map((s) => s.id);
    for (const id of [customer.sessionId, ...reloads.map((r) => r.sessionId)])
      assert.ok(!(await queued()).includes(id), 'an empty session is not in the queue');

    const a = await clients.device(server, '/ws/chat', agent.token);
    const c = await clients.device(server, '/ws/chat', customer.token);
    const long = `I need help with order 42. ${'x'.repeat(400)}`;
    const first = await sendOk(c.client, { sessionId: customer.sessionId, text: long });
    const waiting = await a.client.next((f) => f.type === 'session_waiting' && f.session.id === customer.sessionId);
    assert.equal(waiting.session.waiting_since, first.ts);
    await sendOk(c.client, { sessionId: customer.sessionId, text: 'second' });

    const listed = (await sessions(agent.token, 'open')).find((s) => s.id === customer.sessionId) as Record<
      string,
      unknown
    >;
    assert.ok(listed, 'in the queue after the first message');
    assert.deepEqual(listed, {
      id: customer.sessionId,
      status: 'open',
      customer_id: customer.customerId,
      customer: { id: customer.customerId, kind: 'customer', name: 'Visitor Five' },
      channel: 'web',
      agent_id: null,
      last_seq: 2,
      created_at: listed.created_at,
      waiting_since: first.ts,
      first_message: long.slice(0, 200),
      customer_online: true,
    });
    assert.equal(typeof listed.created_at, 'number');
  });

  it('gives a returning customer its session back on refresh and on POST /api/v1/sessions, and a new one once closed', async () => {
    const agent = await agentLogin(server, 'support-return');
    const customer = await newCustomer(server, 'Visitor Six');
    const refreshed = await api(server, 'POST', `/api/v1/customers/${customer.customerId}/token`, {
      body: { refreshToken: customer.refreshToken },
    });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    assert.equal(refreshed.body.sessionId, customer.sessionId);
    const token = refreshed.body.token as string;

    const opened = await api(server, 'POST', '/api/v1/sessions', { headers: asBearer(token) });
    assert.equal(opened.status, 200, JSON.stringify(opened.body));
    assert.deepEqual(opened.body, { sessionId: customer.sessionId });

    const c = await clients.device(server, '/ws/chat', token);
    await sendOk(c.client, { sessionId: customer.sessionId, text: 'help' });
    const claim = await api(server, 'POST', `/api/v1/sessions/${customer.sessionId}/claim`, {
      headers: asBearer(agent.token),
    });
    assert.equal(claim.status, 200);
    // Claimed is still the customer's one session.
    const whileClaimed = await api(server, 'POST', '/api/v1/sessions', { headers: asBearer(token) });
    assert.deepEqual(whileClaimed.body, { sessionId: customer.sessionId });
    await api(server, 'POST', `/api/v1/sessions/${customer.sessionId}/close`, { headers: asBearer(agent.token) });

    const fresh = await api(server, 'POST', '/api/v1/sessions', { headers: asBearer(token) });
    assert.equal(fresh.status, 201, JSON.stringify(fresh.body));
    assert.notEqual(fresh.body.sessionId, customer.sessionId);
    const refreshedAgain = await api(server, 'POST', '/api/v1/customers/token', {
      body: { customerId: customer.customerId, refreshToken: refreshed.body.refreshToken },
    });
    assert.equal(refreshedAgain.status, 200, JSON.stringify(refreshedAgain.body));
    assert.equal(refreshedAgain.body.sessionId, fresh.body.sessionId);
    const newSession = await sendOk(c.client, { sessionId: fresh.body.sessionId, text: 'me again' });
    assert.equal(newSession.seq, 1);
  });
});

describe('support session creation limits', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ server: { trustProxy: true }, limits: { supportSessionsPerMinute: 3 } });
  });
  after(() => server.close());

  const open = (token: string, ip: string) =>
    api(server, 'POST', '/api/v1/sessions', { headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': ip } });

  it('keeps one open session per customer however often it asks', async () => {
    const customer = await newCustomer(server, 'Spammer');
    const ids = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const res = await open(customer.token, `10.0.1.${i}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      ids.add(res.body.sessionId);
    }
    assert.deepEqual([...ids], [customer.sessionId]);
  });

  it('answers 429 RATE_LIMITED with Retry-After per customer and per IP address', async () => {
    const customer = await newCustomer(server, 'Busy');
    for (let i = 0; i < 3; i++) assert.equal((await open(customer.token, `10.0.2.${i}`)).status, 200);
    const limited = await open(customer.token, '10.0.2.99');
    assert.equal(limited.status, 429, JSON.stringify(limited.body));
    assert.equal(limited.body.error, 'RATE_LIMITED');
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);

    // Another customer from a fresh address is not affected; from a spent address it is.
    const others = [
      await newCustomer(server, 'Other'),
      await newCustomer(server, 'Other'),
      await newCustomer(server, 'Other'),
    ];
    for (const other of others) assert.equal((await open(other.token, '10.0.3.1')).status, 200);
    const fromSameIp = await newCustomer(server, 'Neighbour');
    assert.equal((await open(fromSameIp.token, '10.0.3.1')).status, 429);
    assert.equal((await open(fromSameIp.token, '10.0.3.2')).status, 200);
  });

  it('lets only customers open sessions', async () => {
    const agent = await agentLogin(server, 'not-a-customer');
    const res = await open(agent.token, '10.0.4.1');
    assert.equal(res.status, 403);
  });
});
