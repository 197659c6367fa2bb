import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { Clients, createGroup, freshUsers, nextFrames, sendMessage, sendOk } from './helpers/messaging.js';
import { api, startServer, type TestServer } from './helpers/test-server.js';
import type { Frame, TestClient } from './helpers/ws-client.js';

const SENDERS = 4;
const PER_SENDER = 100;

describe('ordering, idempotency and store failures', () => {
  let server: TestServer;
  const clients = new Clients();
  const users = freshUsers(() => server);

  const history = async (client: TestClient, conversationId: string) =>
    (await client.request({ type: 'history', conversation_id: conversationId, limit: 200 })).body.messages as {
      id: string;
      seq: number;
      text: string;
    }[];

  before(async () => {
    // The concurrency test sends 100 frames per socket at once, with the clock standing still.
    server = await startServer({ limits: { messagesPerSecond: 10_000 } });
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  it('gives concurrent senders unique, gap-free seqs and delivers them to every member in seq order', async () => {
    const senderNames = Array.from({ length: SENDERS }, (_, i) => `sender${i}`);
    const { ids, tokens } = await users(...senderNames, 'reader0', 'reader1');
    const groupId = await createGroup(server, ids, 'busy');
    const devices = await Promise.all(tokens.map((t) => clients.device(server, '/ws', t)));
    const senders = devices.slice(0, SENDERS);
    const readers = devices.slice(SENDERS);
    const total = SENDERS * PER_SENDER;

    // Every sender pipelines its frames, interleaved with the others, without waiting for acks.
    const replies: Promise<Frame>[][] = senders.map(() => []);
    for (let i = 0; i < PER_SENDER; i++)
      for (const [s, sender] of senders.entries())
        replies[s]?.push(
          sendMessage(sender.client, { conversation_id: groupId, text: `s${s}-${i}`, client_msg_id: `s${s}-${i}` }),
        );
    const acks = await Promise.all(replies.map((list) => Promise.all(list)));

    const allSeqs: number[] = [];
    for (const [s, list] of acks.entries()) {
      const seqs = list.map((reply) => {
        assert.equal(reply.code, 200, JSON.stringify(reply));
        return reply.body.seq as number;
      });
      // One sender's messages are numbered in the order it sent them.
      assert.deepEqual(
        seqs,
        [...seqs].sort((a, b) => a - b),
        `sender ${s}'s seqs follow its sending order`,
      );
      allSeqs.push(...seqs);
    }
    assert.equal(new Set(allSeqs).size, total, 'every seq is unique');
    assert.deepEqual(
      [...allSeqs].sort((a, b) => a - b),
      Array.from({ length: total }, (_, i) => i + 1),
      'the seqs are exactly 1..N',
    );

    const textBySeq = new Map<number, string>();
    for (const [s, list] of acks.entries())
      for (const [i, reply] of list.entries()) textBySeq.set(reply.body.seq, `s${s}-${i}`);

    for (const reader of readers) {
      const events = await nextFrames(reader.client, 'message', total);
      assert.deepEqual(
        events.map((e) => e.message.seq),
        Array.from({ length: total }, (_, i) => i + 1),
      );
      for (const e of events) assert.equal(e.message.text, textBySeq.get(e.message.seq));
    }
    for (const [s, sender] of senders.entries()) {
      const own = new Set(acks[s]?.map((reply) => reply.body.seq as number));
      const expected = Array.from({ length: total }, (_, i) => i + 1).filter((seq) => !own.has(seq));
      const events = await nextFrames(sender.client, 'message', expected.length);
      assert.deepEqual(
        events.map((e) => e.message.seq),
        expected,
        `sender ${s} gets the others' messages in seq order`,
      );
    }
    const stored = await history(readers[0]?.client as TestClient, groupId);
    assert.equal(stored.length, 200);
    assert.equal(stored.at(-1)?.seq, total);
  });

  it('returns the original ack for a repeated client_msg_id and stores and delivers nothing more', async () => {
    const {
      ids: [, bob],
      tokens: [aliceToken, bobToken],
    } = await users('alice', 'bob');
    const alice = await clients.device(server, '/ws', aliceToken as string);
    const bobWeb = await clients.device(server, '/ws', bobToken as string);

    const first = await sendOk(alice.client, { to: bob, text: 'once', client_msg_id: 'same-id' });
    assert.equal((await bobWeb.client.next('message')).message.seq, 1);
    server.clock.advance(1000);
    const again = await sendMessage(alice.client, { to: bob, text: 'once (retry)', client_msg_id: 'same-id' });
    assert.equal(again.type, 'ack');
    assert.equal(again.code, 200);
    assert.deepEqual(again.body, first, 'same message_id, conversation_id, seq and ts');
    const viaConversation = await sendOk(alice.client, {
      conversation_id: first.conversation_id,
      text: 'once',
      client_msg_id: 'same-id',
    });
    assert.deepEqual(viaConversation, first);

    // Bob gets nothing for the retries: his next event is the next new message.
    const next = await sendOk(alice.client, { to: bob, text: 'next' });
    assert.equal(next.seq, 2);
    const event = await bobWeb.client.next('message');
    assert.equal(event.message.text, 'next');
    assert.equal(event.message.seq, 2);

    const stored = await history(alice.client, first.conversation_id);
    assert.deepEqual(
      stored.map((m) => [m.seq, m.text]),
      [
        [1, 'once'],
        [2, 'next'],
      ],
    );

    // The key belongs to its sender: Bob may use the same client_msg_id for his own message.
    const bobs = await sendOk(bobWeb.client, {
      to: alice.connected.body.user.id,
      text: 'mine',
      client_msg_id: 'same-id',
    });
    assert.equal(bobs.seq, 3);
    assert.notEqual(bobs.message_id, first.message_id);
  });

  it('stores a message once when the same client_msg_id arrives twice at once', async () => {
    const {
      ids: [, bob],
      tokens: [aliceToken, bobToken],
    } = await users('alice', 'bob');
    const alice = await clients.device(server, '/ws', aliceToken as string);
    const bobWeb = await clients.device(server, '/ws', bobToken as string);

    // Both frames are sent before the first ack can arrive, so they reach the same store batch.
    const [a, b] = await Promise.all([
      sendMessage(alice.client, { to: bob, text: 'double tap', client_msg_id: 'dup' }),
      sendMessage(alice.client, { to: bob, text: 'double tap', client_msg_id: 'dup' }),
    ]);
    assert.equal(a?.code, 200);
    assert.deepEqual(b?.body, a?.body);

    await sendOk(alice.client, { to: bob, text: 'marker' });
    assert.equal((await bobWeb.client.next('message')).message.text, 'double tap');
    const second = await bobWeb.client.next('message');
    assert.equal(second.message.text, 'marker');
    assert.equal(second.message.seq, 2);
    assert.equal((await history(alice.client, a?.body.conversation_id)).length, 2);
  });

  it('answers STORE_UNAVAILABLE without an ack when the store fails, and the same client_msg_id then stores once', async () => {
    const {
      ids: [, bob, , dave],
      tokens: [aliceToken, bobToken, carolToken],
    } = await users('alice', 'bob', 'carol', 'dave');
    const aliceWeb = await clients.device(server, '/ws', aliceToken as string);
    const bobWeb = await clients.device(server, '/ws', bobToken as string);
    const carolWeb = await clients.device(server, '/ws', carolToken as string);
    const first = await sendOk(aliceWeb.client, { to: bob, text: 'before the failure' });
    await bobWeb.client.next('message');

    const { db } = server.gatehouse.services.store as unknown as { db: import('better-sqlite3').Database };
    db.exec("CREATE TRIGGER fail_insert BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'injected'); END;");
    let dropped = false;
    try {
      const failed = await sendMessage(aliceWeb.client, {
        id: 'try-1',
        to: bob,
        text: 'retry me',
        client_msg_id: 'k1',
      });
      assert.equal(failed.type, 'ack');
      assert.equal(failed.code, 503);
      assert.equal(failed.error, 'STORE_UNAVAILABLE');
      assert.equal(failed.body, null);
      assert.doesNotMatch(failed.err_msg, /injected/, 'the store error itself stays in the server log');

      // A first message that would create a direct conversation fails as a whole.
      const failedCreate = await sendMessage(carolWeb.client, { to: dave, text: 'hello?', client_msg_id: 'k2' });
      assert.equal(failedCreate.error, 'STORE_UNAVAILABLE');
      const carolList = await api(server, 'GET', '/api/v1/conversations', {
        headers: { authorization: `Bearer ${carolToken}` },
      });
      assert.deepEqual(carolList.body.conversations, [], 'no conversation was created');

      db.exec('DROP TRIGGER fail_insert');
      dropped = true;
    } finally {
      if (!dropped) db.exec('DROP TRIGGER IF EXISTS fail_insert');
    }

    const retried = await sendMessage(aliceWeb.client, { id: 'try-2', to: bob, text: 'retry me', client_msg_id: 'k1' });
    assert.equal(retried.code, 200);
    assert.equal(retried.body.seq, 2, 'the failed attempt used no seq');
    const retriedAgain = await sendOk(aliceWeb.client, { to: bob, text: 'retry me', client_msg_id: 'k1' });
    assert.deepEqual(retriedAgain, retried.body);
    assert.equal(
      aliceWeb.client.frames.filter((f) => f.id === 'try-1').length,
      0,
      'no success ack followed the failure',
    );

    const event = await bobWeb.client.next('message');
    assert.equal(event.message.seq, 2);
    assert.equal(event.message.text, 'retry me');
    const stored = await history(aliceWeb.client, first.conversation_id);
    assert.deepEqual(
      stored.map((m) => m.text),
      ['before the failure', 'retry me'],
    );

    const created = await sendOk(carolWeb.client, { to: dave, text: 'hello?', client_msg_id: 'k2' });
    assert.equal(created.seq, 1);
  });
});
