import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { Clients, createGroup, freshUsers, sendOk } from './helpers/messaging.js';
import { api, startServer, type TestServer, userToken } from './helpers/test-server.js';

describe('history and the conversation list', () => {
  let server: TestServer;
  const clients = new Clients();
  const users = freshUsers(() => server);

  /** Alice sends `count` numbered messages to Bob; resolves with the conversation id. */
  async function conversationOf(count: number) {
    const made = await users('alice', 'bob');
    const alice = await clients.device(server, '/ws', made.tokens[0] as string);
    let conversationId = '';
    for (let i = 1; i <= count; i++)
      conversationId = (await sendOk(alice.client, { to: made.ids[1], text: `m${i}` })).conversation_id;
    return { ...made, alice, conversationId };
  }

  const seqs = (messages: { seq: number }[]) => messages.map((m) => m.seq);
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

  before(async () => {
    server = await startServer();
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  it('pages history with the history frame: the newest page first, oldest first within it, with has_more', async () => {
    const { alice, conversationId } = await conversationOf(12);
    const first = await alice.client.request({ id: 'h1', type: 'history', conversation_id: conversationId, limit: 5 });
    assert.equal(first.type, 'history');
    assert.equal(first.id, 'h1');
    assert.equal(first.code, 200);
    assert.equal(first.err_msg, '');
    assert.deepEqual(seqs(first.body.messages), range(8, 12));
    assert.equal(first.body.has_more, true);
    assert.deepEqual(Object.keys(first.body.messages[0]).sort(), [
      'conversation_id',
      'from',
      'id',
      'seq',
      'text',
      'ts',
    ]);

    const second = await alice.client.request({
      type: 'history',
      conversation_id: conversationId,
      before_seq: 8,
      limit: 5,
    });
    assert.deepEqual(seqs(second.body.messages), range(3, 7));
    assert.equal(second.body.has_more, true);
    const last = await alice.client.request({
      type: 'history',
      conversation_id: conversationId,
      before_seq: 3,
      limit: 5,
    });
    assert.deepEqual(seqs(last.body.messages), [1, 2]);
    assert.equal(last.body.has_more, false);

    const exact = await alice.client.request({
      type: 'history',
      conversation_id: conversationId,
      before_seq: 6,
      limit: 5,
    });
    assert.deepEqual(seqs(exact.body.messages), range(1, 5));
    assert.equal(exact.body.has_more, false, 'exactly the remaining messages: nothing more');

    const all = await alice.client.request({ type: 'history', conversation_id: conversationId });
    assert.deepEqual(seqs(all.body.messages), range(1, 12));
    assert.equal(all.body.has_more, false);

    const bad = await alice.client.request({ type: 'history', conversation_id: conversationId, before_seq: 'ten' });
    assert.equal(bad.code, 400);
    assert.equal(bad.error, 'INVALID_REQUEST');
  });

  it('pages history over GET /api/v1/conversations/{id}/messages with before_seq and limit', async () => {
    const { tokens, conversationId } = await conversationOf(12);
    const bobAuth = { authorization: `Bearer ${tokens[1]}` };
    const path = `/api/v1/conversations/${conversationId}/messages`;

    const first = await api(server, 'GET', `${path}?limit=5`, { headers: bobAuth });
    assert.equal(first.status, 200);
    assert.deepEqual(seqs(first.body.messages), range(8, 12));
    assert.equal(first.body.has_more, true);
    assert.equal(first.body.messages[4].text, 'm12');
    const second = await api(server, 'GET', `${path}?before_seq=8&limit=5`, { headers: bobAuth });
    assert.deepEqual(seqs(second.body.messages), range(3, 7));
    assert.equal(second.body.has_more, true);
    const last = await api(server, 'GET', `${path}?before_seq=3&limit=5`, { headers: bobAuth });
    assert.deepEqual(seqs(last.body.messages), [1, 2]);
    assert.equal(last.body.has_more, false);

    // The REST page carries the same message objects as the frame.
    const bob = await clients.device(server, '/ws', tokens[1] as string);
    const frame = await bob.client.request({ type: 'history', conversation_id: conversationId, limit: 5 });
    assert.deepEqual(first.body.messages, frame.body.messages);

    const bad = await api(server, 'GET', `${path}?before_seq=abc`, { headers: bobAuth });
    assert.equal(bad.status, 400);
    const anonymous = await api(server, 'GET', path);
    assert.equal(anonymous.status, 401);
  });

  it("lists the caller's conversations with unread counts for its device type", async () => {
    const {
      appKey,
      ids: [alice, bob, carol],
      tokens: [aliceToken, bobWebToken, carolToken],
    } = await users('alice', 'bob', 'carol');
    const bobIosToken = await userToken(server, appKey, bob as string, 'im_app_ios');
    const groupId = await createGroup(server, [alice as string, bob as string, carol as string], 'trio');
    const aliceWeb = await clients.device(server, '/ws', aliceToken as string);
    const carolWeb = await clients.device(server, '/ws', carolToken as string);
    const bobWeb = await clients.device(server, '/ws', bobWebToken as string);

    let directId = '';
    for (const text of ['1', '2', '3']) directId = (await sendOk(aliceWeb.client, { to: bob, text })).conversation_id;
    await sendOk(carolWeb.client, { conversation_id: groupId, text: 'from carol' });
    await sendOk(carolWeb.client, { conversation_id: groupId, text: 'again' });
    await sendOk(bobWeb.client, { conversation_id: groupId, text: 'from bob himself' });

    const list = async (token: string, query = '') => {
      const res = await api(server, 'GET', `/api/v1/conversations${query}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const byId = new Map<string, { unread: number; cursor: number; last_seq: number; kind: string }>(
        res.body.conversations.map((c: { id: string }) => [c.id, c]),
      );
      return { deviceType: res.body.device_type as string, byId };
    };

    const web = await list(bobWebToken as string);
    assert.equal(web.deviceType, 'im_web', "the device type comes from the token's dev claim");
    assert.equal(web.byId.size, 2);
    const direct = web.byId.get(directId);
    assert.deepEqual([direct?.kind, direct?.last_seq, direct?.cursor, direct?.unread], ['direct', 3, 0, 3]);
    assert.equal(web.byId.get(groupId)?.unread, 2, "one's own messages are not unread");
    assert.equal(web.byId.get(groupId)?.last_seq, 3);

    bobWeb.client.send({ type: 'ack', conversation_id: directId, seq: 2 });
    await bobWeb.client.request({ type: 'ack', conversation_id: groupId, seq: 3 });

    const webAfter = await list(bobWebToken as string);
    assert.equal(webAfter.byId.get(directId)?.unread, 1);
    assert.equal(webAfter.byId.get(directId)?.cursor, 2);
    assert.equal(webAfter.byId.get(groupId)?.unread, 0);

    const ios = await list(bobIosToken);
    assert.equal(ios.deviceType, 'im_app_ios');
    assert.equal(ios.byId.get(directId)?.unread, 3, 'read on im_web is still unread on im_app_ios');
    assert.equal(ios.byId.get(groupId)?.unread, 2);

    const asked = await list(bobIosToken, '?device_type=im_web');
    assert.equal(asked.deviceType, 'im_web', '?device_type= chooses the device type');
    assert.equal(asked.byId.get(directId)?.unread, 1);

    const aliceList = await list(aliceToken as string);
    assert.equal(aliceList.byId.get(directId)?.unread, 0);

    const anonymous = await api(server, 'GET', '/api/v1/conversations');
    assert.equal(anonymous.status, 401);
  });
});
