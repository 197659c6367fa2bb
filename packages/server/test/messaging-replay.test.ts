import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type Database from 'better-sqlite3';
import { Clients, createGroup, imUsers, nextFrames, sendOk } from './helpers/messaging.js';
import { api, startServer, type TestServer, userToken } from './helpers/test-server.js';
import { TestClient } from './helpers/ws-client.js';
import { within } from './helpers/ws-expect.js';

/** Fresh users of one app for each test. */
function userFactory(getServer: () => TestServer) {
  let run = 0;
  return async (...names: string[]) => {
    run++;
    const ids = names.map((n) => `${n}-${run}`);
    const { appKey, tokens } = await imUsers(getServer(), ids);
    return { appKey, ids, tokens: ids.map((id) => tokens[id] as string) };
  };
}

describe('offline replay and delivery cursors', () => {
  let server: TestServer;
  const clients = new Clients();
  const users = userFactory(() => server);

  before(async () => {
    server = await startServer();
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  it('closes with 1013 STORE_UNAVAILABLE when the replay fails, so the client reconnects and the replay runs again', async () => {
    const {
      ids: [, bob],
      tokens: [aliceToken, bobToken],
    } = await users('alice', 'bob');
    const aliceWeb = await clients.device(server, '/ws', aliceToken as string);
    for (const text of ['r1', 'r2']) await sendOk(aliceWeb.client, { to: bob, text });

    // The replay's read fails (a driver error on the messages table); authentication does not read it.
    const db = (server.gatehouse.services.store as unknown as { db: Database.Database }).db;
    db.exec('ALTER TABLE messages RENAME TO messages_away');
    try {
      const bobWeb = clients.track(
        TestClient.connect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${bobToken}` } }),
      );
      await bobWeb.next('connected');
      const error = await bobWeb.next('error');
      assert.equal(error.error, 'STORE_UNAVAILABLE');
      assert.deepEqual(await within(bobWeb.closed, 'close after a failed replay'), {
        code: 1013,
        reason: 'STORE_UNAVAILABLE',
      });
    } finally {
      db.exec('ALTER TABLE messages_away RENAME TO messages');
    }
    const again = await clients.device(server, '/ws', bobToken as string);
    assert.deepEqual(
      again.offline.map((f) => f.message.text),
      ['r1', 'r2'],
      'nothing was lost: the next connection replays it',
    );
  });

  it('replays what was sent while the device was offline, oldest first, then offline_messages_complete', async () => {
    const {
      ids: [alice, bob, carol],
      tokens: [aliceToken, bobToken],
    } = await users('alice', 'bob', 'carol');
    const groupId = await createGroup(server, [alice as string, bob as string, carol as string]);
    const aliceWeb = await clients.device(server, '/ws', aliceToken as string);

    const direct = [];
    for (const text of ['one', 'two', 'three']) direct.push(await sendOk(aliceWeb.client, { to: bob, text }));
    const group = [];
    for (const text of ['g1', 'g2']) group.push(await sendOk(aliceWeb.client, { conversation_id: groupId, text }));

    const bobWeb = await clients.device(server, '/ws', bobToken as string);
    assert.deepEqual(bobWeb.complete, { type: 'offline_messages_complete', code: 200, count: 5, truncated: false });
    assert.equal(bobWeb.offline.length, 5);
    for (const frame of bobWeb.offline) assert.equal(frame.code, 200);
    const directConversation = direct[0]?.conversation_id;
    const replayedDirect = bobWeb.offline.filter((f) => f.message.conversation_id === directConversation);
    const replayedGroup = bobWeb.offline.filter((f) => f.message.conversation_id === groupId);
    assert.deepEqual(
      replayedDirect.map((f) => [f.message.id, f.message.seq, f.message.text]),
      direct.map((a, i) => [a.message_id, a.seq, ['one', 'two', 'three'][i]]),
    );
    assert.deepEqual(
      replayedGroup.map((f) => [f.message.id, f.message.seq, f.message.text]),
      group.map((a, i) => [a.message_id, a.seq, ['g1', 'g2'][i]]),
    );
    // The replayed message is the same object the live event and history carry.
    const page = await bobWeb.client.request({ type: 'history', conversation_id: directConversation });
    assert.deepEqual(
      replayedDirect.map((f) => f.message),
      page.body.messages,
    );
    assert.deepEqual(replayedDirect[0]?.message.from, { id: alice, kind: 'user', name: `User ${alice}` });
  });

  it('sends offline_messages_complete with count 0 when nothing is pending', async () => {
    const {
      tokens: [token],
    } = await users('loner');
    const device = await clients.device(server, '/ws', token as string);
    assert.deepEqual(device.complete, { type: 'offline_messages_complete', code: 200, count: 0, truncated: false });
    assert.deepEqual(device.offline, []);
  });

  it('stops replaying acknowledged messages to that device type but still replays them to another', async () => {
    const {
      appKey,
      ids: [, bob],
      tokens: [aliceToken, bobWebToken],
    } = await users('alice', 'bob');
    const bobIosToken = await userToken(server, appKey, bob as string, 'im_app_ios');
    const alice = await clients.device(server, '/ws', aliceToken as string);
    let conversationId = '';
    for (const text of ['a', 'b', 'c', 'd'])
      conversationId = (await sendOk(alice.client, { to: bob, text })).conversation_id;

    const web = await clients.device(server, '/ws', bobWebToken as string);
    assert.equal(web.complete.count, 4);
    web.client.send({ type: 'ack', conversation_id: conversationId, seq: 4 });
    const confirmed = await web.client.request({ id: 'sync', type: 'ack', conversation_id: conversationId, seq: 4 });
    assert.equal(confirmed.code, 200);
    web.client.close();
    await web.client.closed;

    const webAgain = await clients.device(server, '/ws', bobWebToken as string);
    assert.equal(webAgain.complete.count, 0, 'im_web acknowledged everything');
    assert.deepEqual(webAgain.offline, []);

    // Read on im_web, still unread on im_app_ios.
    const ios = await clients.device(server, '/ws', bobIosToken);
    assert.deepEqual(
      ios.offline.map((f) => f.message.text),
      ['a', 'b', 'c', 'd'],
    );
    assert.equal(ios.complete.count, 4);
    // A partial ack: only what lies above it comes back; an older ack never moves the cursor back.
    await ios.client.request({ type: 'ack', conversation_id: conversationId, seq: 2 });
    await ios.client.request({ type: 'ack', conversation_id: conversationId, seq: 1 });
    ios.client.close();
    await ios.client.closed;
    const iosAgain = await clients.device(server, '/ws', bobIosToken);
    assert.deepEqual(
      iosAgain.offline.map((f) => f.message.seq),
      [3, 4],
    );
  });

  it('keeps live-delivered messages pending until the device acknowledges them', async () => {
    const {
      ids: [, bob],
      tokens: [aliceToken, bobToken],
    } = await users('alice', 'bob');
    const alice = await clients.device(server, '/ws', aliceToken as string);
    const bobWeb = await clients.device(server, '/ws', bobToken as string);
    const sent = await sendOk(alice.client, { to: bob, text: 'live' });
    assert.equal((await bobWeb.client.next('message')).message.id, sent.message_id);
    bobWeb.client.close();
    await bobWeb.client.closed;

    // Delivered live but never acknowledged: at-least-once means it comes again.
    const again = await clients.device(server, '/ws', bobToken as string);
    assert.deepEqual(
      again.offline.map((f) => f.message.id),
      [sent.message_id],
    );
  });

  it('answers an ack that carries an id, and sends nothing for one without', async () => {
    const {
      ids: [, bob],
      tokens: [aliceToken, bobToken],
    } = await users('alice', 'bob');
    const alice = await clients.device(server, '/ws', aliceToken as string);
    const first = await sendOk(alice.client, { to: bob, text: 'x' });
    await sendOk(alice.client, { to: bob, text: 'y' });
    const bobWeb = await clients.device(server, '/ws', bobToken as string);

    bobWeb.client.send({ type: 'ack', conversation_id: first.conversation_id, seq: 1 });
    bobWeb.client.send({ type: 'ack', id: 'with-id', conversation_id: first.conversation_id, seq: 2 });
    const reply = await bobWeb.client.next();
    assert.deepEqual(reply, {
      type: 'ack',
      id: 'with-id',
      code: 200,
      body: { conversation_id: first.conversation_id, seq: 2 },
      err_msg: '',
    });

    const numeric = await bobWeb.client.request({ cmd_id: 2002, conversation_id: first.conversation_id, seq: 2 });
    assert.equal(numeric.type, 'ack');
    assert.equal(numeric.cmd_id, 2002);
    assert.equal(numeric.code, 200);

    const beyond = await bobWeb.client.request({ type: 'ack', conversation_id: first.conversation_id, seq: 3 });
    assert.equal(beyond.code, 400);
    assert.equal(beyond.error, 'INVALID_REQUEST');
    const missing = await bobWeb.client.request({ type: 'ack', conversation_id: first.conversation_id });
    assert.equal(missing.error, 'INVALID_REQUEST');
    assert.deepEqual(bobWeb.client.frames, [], 'no other frame was sent');
  });
});

describe('offline replay cap', () => {
  let server: TestServer;
  const clients = new Clients();
  const users = userFactory(() => server);

  before(async () => {
    server = await startServer({ messages: { replayLimit: 5 } });
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  it('replays the newest replayLimit messages of a conversation and says truncated', async () => {
    const {
      ids: [alice, bob, carol],
      tokens: [aliceToken, bobToken],
    } = await users('alice', 'bob', 'carol');
    const groupId = await createGroup(server, [alice as string, bob as string, carol as string]);
    const aliceWeb = await clients.device(server, '/ws', aliceToken as string);
    let directId = '';
    for (let i = 1; i <= 8; i++) directId = (await sendOk(aliceWeb.client, { to: bob, text: `d${i}` })).conversation_id;
    for (let i = 1; i <= 2; i++) await sendOk(aliceWeb.client, { conversation_id: groupId, text: `g${i}` });

    const bobWeb = await clients.device(server, '/ws', bobToken as string);
    assert.deepEqual(
      bobWeb.offline.filter((f) => f.message.conversation_id === directId).map((f) => f.message.text),
      ['d4', 'd5', 'd6', 'd7', 'd8'],
    );
    assert.deepEqual(
      bobWeb.offline.filter((f) => f.message.conversation_id === groupId).map((f) => f.message.text),
      ['g1', 'g2'],
    );
    assert.equal(bobWeb.complete.count, 7);
    assert.equal(bobWeb.complete.truncated, true);
    assert.deepEqual(bobWeb.complete.truncated_conversations, [directId]);

    // The older ones are still in history.
    const older = await bobWeb.client.request({ type: 'history', conversation_id: directId, before_seq: 4 });
    assert.deepEqual(
      older.body.messages.map((m: { text: string }) => m.text),
      ['d1', 'd2', 'd3'],
    );

    // Exactly 5 pending is not truncated.
    await bobWeb.client.request({ type: 'ack', conversation_id: groupId, seq: 2 });
    await bobWeb.client.request({ type: 'ack', conversation_id: directId, seq: 3 });
    bobWeb.client.close();
    await bobWeb.client.closed;
    const again = await clients.device(server, '/ws', bobToken as string);
    assert.deepEqual(again.complete, { type: 'offline_messages_complete', code: 200, count: 5, truncated: false });
    assert.deepEqual(
      again.offline.map((f) => f.message.seq),
      [4, 5, 6, 7, 8],
    );
    const live = await sendOk(aliceWeb.client, { to: bob, text: 'd9' });
    const [event] = await nextFrames(again.client, 'message', 1);
    assert.equal(event?.message.seq, live.seq);
  });
});

describe("a sender's own messages in the replay", () => {
  let server: TestServer;
  const clients = new Clients();
  const users = userFactory(() => server);

  before(async () => {
    server = await startServer();
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  const reconnect = async (
    device: { client: { close(): void; closed: Promise<unknown> } },
    token: string,
    type?: string,
  ) => {
    device.client.close();
    await device.client.closed;
    return clients.device(server, '/ws', token, type);
  };

  it('are not replayed to the device type that sent them, and are to her other device types', async () => {
    const {
      appKey,
      ids: [alice, bob],
      tokens: [aliceWebToken, bobToken],
    } = await users('alice', 'bob');
    const aliceIosToken = await userToken(server, appKey, alice as string, 'im_app_ios');
    let aliceWeb = await clients.device(server, '/ws', aliceWebToken as string);
    const hi = await sendOk(aliceWeb.client, { to: bob, text: 'hi bob' });

    // Her client acknowledges nothing (not even its own seq): still not replayed to im_web.
    aliceWeb = await reconnect(aliceWeb, aliceWebToken as string);
    assert.deepEqual(aliceWeb.offline, []);
    assert.equal(aliceWeb.complete.count, 0);
    aliceWeb = await reconnect(aliceWeb, aliceWebToken as string);
    assert.deepEqual(aliceWeb.offline, []);

    // Her phone has not seen it: it gets it.
    const aliceIos = await clients.device(server, '/ws', aliceIosToken);
    assert.deepEqual(
      aliceIos.offline.map((f) => [f.message.id, f.message.text]),
      [[hi.message_id, 'hi bob']],
    );
    // Bob gets it, of course.
    const bobWeb = await clients.device(server, '/ws', bobToken as string);
    assert.deepEqual(
      bobWeb.offline.map((f) => f.message.text),
      ['hi bob'],
    );
  });

  it('never cause an unacknowledged message of another member to be skipped', async () => {
    const {
      ids: [alice, bob],
      tokens: [aliceToken, bobToken],
    } = await users('alice', 'bob');
    let aliceWeb = await clients.device(server, '/ws', aliceToken as string);
    const bobWeb = await clients.device(server, '/ws', bobToken as string);
    const a1 = await sendOk(aliceWeb.client, { to: bob, text: 'a1' });
    await bobWeb.client.next('message');
    await sendOk(bobWeb.client, { to: alice, text: 'b2' });
    // Delivered live to alice's im_web, not acknowledged.
    assert.equal((await aliceWeb.client.next('message')).message.text, 'b2');
    await sendOk(aliceWeb.client, { to: bob, text: 'a3' });
    await sendOk(aliceWeb.client, { to: bob, text: 'a4' });
    await sendOk(bobWeb.client, { to: alice, text: 'b5' });
    assert.equal((await aliceWeb.client.next('message')).message.text, 'b5');
    await sendOk(aliceWeb.client, { to: bob, text: 'a6' });

    aliceWeb = await reconnect(aliceWeb, aliceToken as string);
    assert.deepEqual(
      aliceWeb.offline.map((f) => [f.message.seq, f.message.text]),
      [
        [2, 'b2'],
        [5, 'b5'],
      ],
    );
    assert.equal(aliceWeb.complete.count, 2);
    // Again on the next reconnect: nothing of bob's was acknowledged.
    aliceWeb = await reconnect(aliceWeb, aliceToken as string);
    assert.deepEqual(
      aliceWeb.offline.map((f) => f.message.text),
      ['b2', 'b5'],
    );
    // Acknowledging b2 only: b5 still comes.
    await aliceWeb.client.request({ type: 'ack', conversation_id: a1.conversation_id, seq: 2 });
    aliceWeb = await reconnect(aliceWeb, aliceToken as string);
    assert.deepEqual(
      aliceWeb.offline.map((f) => f.message.text),
      ['b5'],
    );
    await aliceWeb.client.request({ type: 'ack', conversation_id: a1.conversation_id, seq: 5 });
    aliceWeb = await reconnect(aliceWeb, aliceToken as string);
    assert.deepEqual(aliceWeb.offline, []);
  });

  it('count as read for unread, and the cursor follows once only own messages lie above it', async () => {
    const {
      ids: [, bob],
      tokens: [aliceToken, bobToken],
    } = await users('alice', 'bob');
    let aliceWeb = await clients.device(server, '/ws', aliceToken as string);
    const first = await sendOk(aliceWeb.client, { to: bob, text: 'one' });
    await sendOk(aliceWeb.client, { to: bob, text: 'two' });
    const list = async (token: string, deviceType: string) => {
      const res = await api(server, 'GET', `/api/v1/conversations?device_type=${deviceType}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(res.status, 200);
      return res.body.conversations.find((c: { id: string }) => c.id === first.conversation_id);
    };
    assert.equal((await list(aliceToken as string, 'im_web')).unread, 0);
    assert.equal((await list(bobToken as string, 'im_web')).unread, 2);
    aliceWeb = await reconnect(aliceWeb, aliceToken as string);
    assert.deepEqual(aliceWeb.offline, []);
    // The replay found nothing but her own sends above the cursor and moved it past them.
    const after = await list(aliceToken as string, 'im_web');
    assert.equal(after.cursor, 2);
    assert.equal(after.unread, 0);
    assert.equal((await list(aliceToken as string, 'im_app_ios')).cursor, 0, 'other device types keep theirs');
  });
});
