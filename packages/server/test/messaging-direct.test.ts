import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { Clients, freshUsers, sendMessage, sendOk } from './helpers/messaging.js';
import { api, startServer, type TestServer, userToken } from './helpers/test-server.js';

describe('direct messages', () => {
  let server: TestServer;
  const clients = new Clients();
  const users = freshUsers(() => server);

  before(async () => {
    server = await startServer();
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  it('creates the direct conversation on the first message with to and acknowledges it after storing', async () => {
    const {
      ids: [alice, bob],
      tokens: [aliceToken, bobToken],
    } = await users('alice', 'bob');
    const aliceWeb = await clients.device(server, '/ws', aliceToken as string);
    const bobWeb = await clients.device(server, '/ws', bobToken as string);

    const reply = await sendMessage(aliceWeb.client, { id: 'm1', to: bob, text: 'hello Bob', client_msg_id: 'c-1' });
    assert.equal(reply.type, 'ack');
    assert.equal(reply.id, 'm1');
    assert.equal(reply.code, 200);
    assert.equal(reply.err_msg, '');
    assert.deepEqual(Object.keys(reply.body).sort(), ['conversation_id', 'message_id', 'seq', 'ts']);
    const ack = reply.body;
    assert.equal(ack.seq, 1);
    assert.equal(typeof ack.message_id, 'string');
    assert.equal(ack.ts, server.clock.now());

    const event = await bobWeb.client.next('message');
    assert.equal(event.code, 200);
    assert.deepEqual(
      {
        id: event.message.id,
        conversation_id: event.message.conversation_id,
        seq: event.message.seq,
        from: event.message.from,
        text: event.message.text,
        ts: event.message.ts,
      },
      {
        id: ack.message_id,
        conversation_id: ack.conversation_id,
        seq: 1,
        from: { id: alice, kind: 'user', name: `User ${alice}` },
        text: 'hello Bob',
        ts: ack.ts,
      },
    );
    assert.equal('data' in event.message, false, 'no data key when none was sent');

    // The conversation now exists for both, as a direct one.
    for (const token of [aliceToken, bobToken]) {
      const list = await api(server, 'GET', '/api/v1/conversations', {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(list.status, 200);
      const found = list.body.conversations.find((c: { id: string }) => c.id === ack.conversation_id);
      assert.equal(found?.kind, 'direct');
      assert.equal(found?.last_seq, 1);
    }
    // The second message goes to the same conversation with the next seq.
    const second = await sendOk(bobWeb.client, { to: alice, text: 'hi Alice' });
    assert.equal(second.conversation_id, ack.conversation_id);
    assert.equal(second.seq, 2);
  });

  it("delivers to the sender's other devices but not back to the sending socket", async () => {
    const {
      appKey,
      ids: [alice, bob],
      tokens: [aliceWebToken, bobToken],
    } = await users('alice', 'bob');
    const aliceIosToken = await userToken(server, appKey, alice as string, 'im_app_ios');
    const aliceWeb = await clients.device(server, '/ws', aliceWebToken as string);
    const aliceIos = await clients.device(server, '/ws', aliceIosToken);
    const bobWeb = await clients.device(server, '/ws', bobToken as string);

    const ack = await sendOk(aliceWeb.client, { to: bob, text: 'from my laptop' });
    const onIos = await aliceIos.client.next('message');
    assert.equal(onIos.message.id, ack.message_id);
    assert.equal(onIos.message.text, 'from my laptop');
    assert.equal((await bobWeb.client.next('message')).message.id, ack.message_id);

    // Bob answers: the first message event on Alice's sending socket is Bob's (seq 2), not her own.
    const answer = await sendOk(bobWeb.client, { to: alice, text: 'got it' });
    const onWeb = await aliceWeb.client.next('message');
    assert.equal(onWeb.message.seq, 2);
    assert.equal(onWeb.message.id, answer.message_id);
    assert.equal((await aliceIos.client.next('message')).message.seq, 2);
  });

  it('carries a data payload with or without text', async () => {
    const {
      ids: [, bob],
      tokens: [aliceToken, bobToken],
    } = await users('alice', 'bob');
    const alice = await clients.device(server, '/ws', aliceToken as string);
    const bobWeb = await clients.device(server, '/ws', bobToken as string);

    const data = { kind: 'image', url: 'https://example.test/cat.png', size: [640, 480], nested: { ok: true } };
    await sendOk(alice.client, { to: bob, data });
    const first = (await bobWeb.client.next('message')).message;
    assert.deepEqual(first.data, data);
    assert.equal(first.text, null);

    await sendOk(alice.client, { to: bob, text: 'caption', data: [1, 'two', null] });
    const second = (await bobWeb.client.next('message')).message;
    assert.equal(second.text, 'caption');
    assert.deepEqual(second.data, [1, 'two', null]);

    const history = await alice.client.request({ type: 'history', conversation_id: first.conversation_id });
    assert.deepEqual(
      history.body.messages.map((m: { data: unknown }) => m.data),
      [data, [1, 'two', null]],
    );
  });

  it('accepts sessionId as an alias of conversation_id', async () => {
    const {
      ids: [, bob],
      tokens: [aliceToken, bobToken],
    } = await users('alice', 'bob');
    const alice = await clients.device(server, '/ws', aliceToken as string);
    const bobWeb = await clients.device(server, '/ws', bobToken as string);
    const first = await sendOk(alice.client, { to: bob, text: 'one' });
    await bobWeb.client.next('message');

    const second = await sendOk(alice.client, { sessionId: first.conversation_id, text: 'two' });
    assert.equal(second.conversation_id, first.conversation_id);
    assert.equal(second.seq, 2);
    const event = await bobWeb.client.next('message');
    assert.equal(event.message.text, 'two');
    assert.equal(event.message.conversation_id, first.conversation_id);
  });

  it('refuses text over messages.maxTextBytes with PAYLOAD_TOO_LARGE and keeps the socket open', async () => {
    const {
      ids: [, bob],
      tokens: [aliceToken],
    } = await users('alice', 'bob');
    const alice = await clients.device(server, '/ws', aliceToken as string);
    const limit = server.gatehouse.services.config.messages.maxTextBytes;

    // Fewer characters than the limit, but more bytes: the limit counts UTF-8 bytes.
    const tooLarge = 'é'.repeat(limit / 2 + 1);
    assert.ok(tooLarge.length < limit);
    const refused = await sendMessage(alice.client, { to: bob, text: tooLarge });
    assert.equal(refused.type, 'ack');
    assert.equal(refused.code, 413);
    assert.equal(refused.error, 'PAYLOAD_TOO_LARGE');
    assert.equal(refused.body, null);
    assert.notEqual(refused.err_msg, '');

    // The socket stays open, and exactly the limit is accepted; the refused text was never stored.
    const accepted = await sendOk(alice.client, { to: bob, text: 'a'.repeat(limit) });
    assert.equal(accepted.seq, 1);
    assert.equal(alice.client.ws.readyState, alice.client.ws.OPEN);
  });

  it('refuses a message with neither text nor data, or without a single target, with INVALID_REQUEST', async () => {
    const {
      ids: [, bob],
      tokens: [aliceToken],
    } = await users('alice', 'bob');
    const alice = await clients.device(server, '/ws', aliceToken as string);

    for (const fields of [{ to: bob }, { to: bob, text: null }, { text: 'no target' }]) {
      const reply = await sendMessage(alice.client, fields);
      assert.equal(reply.type, 'ack', JSON.stringify(fields));
      assert.equal(reply.code, 400, JSON.stringify(fields));
      assert.equal(reply.error, 'INVALID_REQUEST', JSON.stringify(fields));
    }
    const first = await sendOk(alice.client, { to: bob, text: 'now with text' });
    assert.equal(first.seq, 1, 'nothing was stored for the refused frames');
    const both = await sendMessage(alice.client, { to: bob, conversation_id: first.conversation_id, text: 'x' });
    assert.equal(both.error, 'INVALID_REQUEST');
  });

  it('answers NOT_MEMBER (403) to writing to, reading or acknowledging a conversation one is not in', async () => {
    const {
      ids: [, bob],
      tokens: [aliceToken, , carolToken],
    } = await users('alice', 'bob', 'carol');
    const alice = await clients.device(server, '/ws', aliceToken as string);
    const carol = await clients.device(server, '/ws', carolToken as string);
    const { conversation_id } = await sendOk(alice.client, { to: bob, text: 'private' });

    const send = await sendMessage(carol.client, { conversation_id, text: 'let me in' });
    assert.equal(send.type, 'ack');
    assert.equal(send.code, 403);
    assert.equal(send.error, 'NOT_MEMBER');

    const history = await carol.client.request({ type: 'history', conversation_id });
    assert.equal(history.type, 'history');
    assert.equal(history.code, 403);
    assert.equal(history.error, 'NOT_MEMBER');
    assert.equal(history.body, null);

    const ack = await carol.client.request({ type: 'ack', conversation_id, seq: 1 });
    assert.equal(ack.code, 403);
    assert.equal(ack.error, 'NOT_MEMBER');

    const rest = await api(server, 'GET', `/api/v1/conversations/${conversation_id}/messages`, {
      headers: { authorization: `Bearer ${carolToken}` },
    });
    assert.equal(rest.status, 403);
    assert.equal(rest.body.error, 'NOT_MEMBER');

    const aliceHistory = await alice.client.request({ type: 'history', conversation_id });
    assert.equal(aliceHistory.body.messages.length, 1, 'the refused send stored nothing');
  });

  it('answers NOT_FOUND to an unknown conversation or an unknown recipient', async () => {
    const {
      ids: [aliceId],
      tokens: [aliceToken],
    } = await users('alice');
    const alice = await clients.device(server, '/ws', aliceToken as string);

    const unknownConversation = await sendMessage(alice.client, { conversation_id: 'gr_does-not-exist', text: 'x' });
    assert.equal(unknownConversation.code, 404);
    assert.equal(unknownConversation.error, 'NOT_FOUND');

    const unknownRecipient = await sendMessage(alice.client, { to: `nobody-for-${aliceId}`, text: 'x' });
    assert.equal(unknownRecipient.type, 'ack');
    assert.equal(unknownRecipient.code, 404);
    assert.equal(unknownRecipient.error, 'NOT_FOUND');

    const history = await alice.client.request({ type: 'history', conversation_id: 'gr_does-not-exist' });
    assert.equal(history.error, 'NOT_FOUND');

    const rest = await api(server, 'GET', '/api/v1/conversations/gr_does-not-exist/messages', {
      headers: { authorization: `Bearer ${aliceToken}` },
    });
    assert.equal(rest.status, 404);
    assert.equal(rest.body.error, 'NOT_FOUND');
  });
});
