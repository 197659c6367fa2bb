import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GatehouseClient } from '../src/index.js';
import { type ClientOptions, ClientSet } from './helpers/clients.js';
import { keys, record } from './helpers/recorder.js';
import { agentLogin, api, createAppKey, newCustomer, TestGatehouse, until, userToken } from './helpers/server.js';

describe('GatehouseClient messages', { timeout: 60_000 }, () => {
  let server: TestGatehouse;
  let appKey: string;
  const clients = new ClientSet();
  const client = (options: ClientOptions) => clients.make(options);
  const user = (id: string, extra: Partial<ClientOptions> = {}) => clients.user(server, appKey, id, extra);

  before(async () => {
    server = await TestGatehouse.start();
    appKey = await createAppKey(server);
  });
  after(async () => {
    clients.closeAll();
    await server.close();
  });

  it('sends to a principal, gets the ack, and the peer gets the message once', async () => {
    const alice = user('m-alice');
    const bob = user('m-bob');
    const bobRec = record(bob);
    await Promise.all([alice.connect(), bob.connect()]);
    const ack = await alice.send({ to: 'm-bob' }, 'hello bob', { n: 1 });
    assert.equal(ack.seq, 1);
    assert.ok(ack.message_id);
    await until(() => bobRec.messages.length === 1, 'bob gets the message');
    assert.equal(bobRec.messages[0]?.text, 'hello bob');
    assert.deepEqual(bobRec.messages[0]?.data, { n: 1 });
    const again = await alice.send(ack.conversation_id, 'second');
    assert.equal(again.seq, 2);
    await until(() => bobRec.messages.length === 2, 'bob gets the second');
    const page = await bob.history(ack.conversation_id);
    assert.deepEqual(
      page.messages.map((m) => m.text),
      ['hello bob', 'second'],
    );
    // Acks went out on their own (batched): nothing stays unread for bob's device type.
    const deadline = Date.now() + 5000;
    let unread = -1;
    while (unread !== 0 && Date.now() < deadline) {
      const list = await bob.conversations();
      unread = list.conversations.find((x) => x.id === ack.conversation_id)?.unread ?? -1;
      if (unread !== 0) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(unread, 0);
  });

  it('replays what came while offline once, and never hands a message over twice', async () => {
    const carol = user('m-carol');
    const dave = user('m-dave');
    const daveRec = record(dave);
    await Promise.all([carol.connect(), dave.connect()]);
    const first = await carol.send({ to: 'm-dave' }, 'one');
    await until(() => daveRec.messages.length === 1, 'dave gets one');
    dave.close();
    await carol.send(first.conversation_id, 'two');
    await carol.send(first.conversation_id, 'three');
    await dave.connect();
    await until(() => daveRec.messages.length === 3, 'dave gets the replay');
    assert.deepEqual(
      daveRec.messages.map((m) => m.text),
      ['one', 'two', 'three'],
    );
    assert.equal(new Set(keys(daveRec.messages)).size, 3);
  });

  it('rejects a send the server refuses with its error code', async () => {
    const erin = user('m-erin');
    await erin.connect();
    await assert.rejects(erin.send('no-such-conversation', 'hi'), (err: any) => {
      assert.equal(err.name, 'GatehouseClientError');
      assert.equal(err.code, 'NOT_FOUND');
      return true;
    });
    assert.equal(erin.pendingSends, 0);
  });

  it('authenticates with a ticket and with the bearer subprotocol', async () => {
    for (const auth of ['ticket', 'subprotocol'] as const) {
      const c = user(`m-${auth}`, { auth });
      await c.connect();
      assert.equal(c.user?.id, `m-${auth}`);
      c.close();
    }
  });

  it('logs in over the socket on the root endpoint, with a token (auth frame) or a password (login frame)', async () => {
    const token = await userToken(server, appKey, 'm-inband');
    const viaAuth = client({ url: `${server.wsUrl}/`, token, auth: 'in-band' });
    await viaAuth.connect();
    assert.equal(viaAuth.user?.id, 'm-inband');
    viaAuth.close();
    await agentLogin(server, 'm-agent-login');
    const viaLogin = client({
      url: `${server.wsUrl}/`,
      login: { username: 'm-agent-login', password: 'agent-password-1' },
    });
    await viaLogin.connect();
    assert.equal(viaLogin.user?.kind, 'agent');
  });

  it('runs a support session: waiting, claim with backlog, messages both ways, close', async () => {
    const customer = await newCustomer(server);
    const agent = await agentLogin(server, 'm-agent');
    const visitor = client({ url: `${server.wsUrl}/ws/chat`, token: customer.token });
    const desk = client({ url: `${server.wsUrl}/ws/chat`, token: agent.token });
    const deskRec = record(desk);
    const visitorRec = record(visitor);
    await Promise.all([visitor.connect(), desk.connect()]);
    await visitor.send(customer.sessionId, 'I need help');
    await until(() => deskRec.events.some((e) => e.type === 'session_waiting'), 'session_waiting');
    const open = await desk.sessions('open');
    assert.ok(open.sessions.some((s) => s.id === customer.sessionId));
    await desk.claim(customer.sessionId);
    await until(() => deskRec.messages.some((m) => m.text === 'I need help'), 'the backlog');
    await desk.send(customer.sessionId, 'How can I help?');
    await until(() => visitorRec.messages.some((m) => m.text === 'How can I help?'), 'the reply');
    const mine = await desk.sessions('mine');
    assert.ok(mine.sessions.some((s) => s.id === customer.sessionId));
    await desk.closeSession(customer.sessionId);
    await assert.rejects(visitor.send(customer.sessionId, 'still there?'), { code: 'FORBIDDEN' });
  });

  it('refuses sends beyond the outbox limit while disconnected, and sends the rest once connected', async () => {
    await userToken(server, appKey, 'm-grace');
    const frank = user('m-frank', { outboxLimit: 2 });
    const p1 = frank.send({ to: 'm-grace' }, 'a');
    const p2 = frank.send({ to: 'm-grace' }, 'b');
    await assert.rejects(frank.send({ to: 'm-grace' }, 'c'), { code: 'OUTBOX_FULL' });
    await frank.connect();
    const [a, b] = await Promise.all([p1, p2]);
    assert.deepEqual([a.seq, b.seq], [1, 2]);
  });

  it('rejects waiting sends with CLOSED when closed', async () => {
    const henry = user('m-henry');
    const pending = henry.send({ to: 'm-ivy' }, 'never sent');
    henry.close();
    await assert.rejects(pending, { code: 'CLOSED' });
  });

  it('throws TypeError for options that cannot work', () => {
    assert.throws(() => new GatehouseClient({ url: server.wsUrl } as any), TypeError);
    assert.throws(
      () => new GatehouseClient({ url: server.wsUrl, login: { username: 'a', password: 'b' }, auth: 'header' }),
      TypeError,
    );
  });

  it('uses the REST API with the same token: a 401 asks getToken once', async () => {
    let calls = 0;
    const stale = await userToken(server, appKey, 'm-rest');
    await api(server, 'POST', '/api/v1/auth/logout', { headers: { authorization: `Bearer ${stale}` } });
    const c = user('m-rest', {
      token: stale,
      getToken: () => {
        calls++;
        return userToken(server, appKey, 'm-rest');
      },
    });
    const list = await c.conversations();
    assert.ok(Array.isArray(list.conversations));
    assert.equal(calls, 1);
  });
});
