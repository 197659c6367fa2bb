import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MAX_BATCH, MessageWriter } from '../src/messaging/message-writer.js';
import { SqliteStore } from '../src/store/sqlite-store.js';
import type { NewMessage } from '../src/store/store.js';

describe('MessageWriter (group commit) on a real SQLite file', () => {
  let dir: string;
  let store: SqliteStore;
  /** The batch sizes the store was given, in order. */
  const batches: number[] = [];
  let writer: MessageWriter;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-writer-'));
    store = new SqliteStore(join(dir, 'gatehouse.db'));
    await store.migrate();
    const appendMessages = store.appendMessages.bind(store);
    store.appendMessages = (batch) => {
      batches.push(batch.length);
      return appendMessages(batch);
    };
    writer = new MessageWriter(store, (err) => assert.fail(String(err)));
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  let n = 0;
  const message = (conversationId: string, clientMsgId: string | null = null): NewMessage => {
    const id = `m-${++n}`;
    return {
      id,
      conversationId,
      fromId: 'alice',
      fromDevice: 'im_web',
      clientMsgId,
      ts: n,
      serialize: (seq) => `{"id":"${id}","seq":${seq}}`,
      createDirect: { members: ['alice', 'bob'] },
    };
  };

  it("runs the store's upkeep once per batch, after the batch's acks were handed to the sockets", async () => {
    const order: string[] = [];
    const upkeep = store.upkeep.bind(store);
    store.upkeep = () => {
      order.push('upkeep');
      upkeep();
    };
    try {
      // What a sender does once its message is stored: the ack is queued, and the frame writer
      // hands the turn's frames to the sockets in an immediate (frame-writer.ts).
      const sends = Array.from({ length: 3 }, () =>
        writer.append(message('dm_upkeep')).then(() => {
          order.push('ack');
          setImmediate(() => order.push('written'));
        }),
      );
      await Promise.all(sends);
      while (!order.includes('upkeep')) await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(order, ['ack', 'ack', 'ack', 'written', 'written', 'written', 'upkeep']);
    } finally {
      store.upkeep = upkeep;
    }
  });

  it('stores a backlog in batches of at most MAX_BATCH, in order, with consecutive seqs', async () => {
    batches.length = 0;
    const count = MAX_BATCH * 2 + 100;
    const results = await Promise.all(Array.from({ length: count }, () => writer.append(message('dm_backlog'))));
    assert.deepEqual(batches, [MAX_BATCH, MAX_BATCH, 100]);
    assert.deepEqual(
      results.map((r) => r.record.seq),
      results.map((_, i) => i + 1),
    );
    assert.equal((await store.getConversation('dm_backlog'))?.lastSeq, count);
  });

  it('answers a client_msg_id repeated in the same batch and in a later one with the first record', async () => {
    batches.length = 0;
    const [first, sameBatch] = await Promise.all([
      writer.append(message('dm_retry', 'c-1')),
      writer.append(message('dm_retry', 'c-1')),
    ]);
    const later = await writer.append(message('dm_retry', 'c-1'));
    assert.deepEqual(batches, [2, 1]);
    assert.equal(first.duplicate, false);
    assert.deepEqual(sameBatch, { record: first.record, duplicate: true });
    assert.deepEqual(later, { record: first.record, duplicate: true });
    assert.equal((await store.getConversation('dm_retry'))?.lastSeq, 1);
  });
});
