import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../src/clock.js';
import { Connection } from '../src/gateway/connection.js';
import { SqliteStore, type SqliteStoreOptions } from '../src/store/sqlite-store.js';
import type { NewMessage } from '../src/store/store.js';
import { WalFrames } from '../src/store/wal-frames.js';
import { Clients, freshUsers, sendOk } from './helpers/messaging.js';
import { startServer } from './helpers/test-server.js';

const CONVERSATIONS = 40;
const TEXT = 'x'.repeat(300);

/** A store on a real file with `CONVERSATIONS` direct conversations, and a writer of batches spread over them. */
async function openStore(file: string, options: SqliteStoreOptions = {}) {
  const store = new SqliteStore(file, { checkpointThread: true, ...options });
  await store.migrate();
  return { store, ...batches() };
}

/** Batches of messages spread over `CONVERSATIONS` direct conversations (created by their first message). */
function batches() {
  let n = 0;
  const batch = (size: number): NewMessage[] =>
    Array.from({ length: size }, () => {
      n++;
      const conversationId = `dm_${n % CONVERSATIONS}`;
      return {
        id: `m-${n}`,
        conversationId,
        fromId: 'alice',
        fromDevice: 'im_web',
        clientMsgId: `c-${n}`,
        ts: n,
        serialize: (seq: number) => `{"conversation_id":"${conversationId}","seq":${seq},"text":"${TEXT}"}`,
        createDirect: { members: ['alice', 'bob'] as [string, string] },
      };
    });
  return { batch, written: () => n };
}

const walBytes = (file: string) => (existsSync(`${file}-wal`) ? statSync(`${file}-wal`).size : 0);

/** Appends 150 batches of 25 without a pause; the largest the WAL file got meanwhile. */
async function largestWalOver(store: SqliteStore, batch: (size: number) => NewMessage[]): Promise<number> {
  let largest = 0;
  for (let i = 0; i < 150; i++) {
    await store.appendMessages(batch(25));
    largest = Math.max(largest, walBytes(store.file));
  }
  return largest;
}

/** Everything acknowledged is in the file, read by a new store (a restart). */
async function assertStoredAfterRestart(file: string, written: number): Promise<void> {
  const { store } = await openStore(file, { checkpointThread: false });
  try {
    assert.equal(await storedCount(store), written);
  } finally {
    await store.close();
  }
}
/** A WAL of `pages` frames of 4096-byte pages: a 32-byte header, 24 bytes per frame header. */
const walSizeOf = (pages: number) => 32 + pages * (24 + 4096);

async function storedCount(store: SqliteStore): Promise<number> {
  let total = 0;
  for (let i = 0; i < CONVERSATIONS; i++) {
    const rows = await store.messagesAfter(`dm_${i}`, 0, 100_000);
    // Gap-free per conversation: seq k is the k-th row.
    assert.deepEqual(
      rows.map((row) => row.seq),
      rows.map((_, k) => k + 1),
    );
    total += rows.length;
  }
  return total;
}

/** A temporary folder of the suite's own, removed after it: a fresh database file per `nextFile()`. */
function suiteFolder(prefix: string) {
  let dir = '';
  let files = 0;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  return {
    nextFile: () => join(dir, `db-${++files}`, 'gatehouse.db'),
    inFolder: (name: string) => join(dir, name),
  };
}

describe('SQLite checkpoints on a worker thread', () => {
  const { nextFile, inFolder } = suiteFolder('gatehouse-checkpoints-');

  it('copies the WAL into the database file off the event loop, and the WAL starts over at the next write', async () => {
    const file = nextFile();
    // A trigger the writes below never reach: only the checkpoints asked for here run.
    const { store, batch } = await openStore(file, { checkpointFrames: 1_000_000, checkpointIdleMs: 3_600_000 });
    try {
      for (let i = 0; i < 20; i++) await store.appendMessages(batch(20));
      const wal = new WalFrames(file);
      const before = wal.read();
      assert.ok(before && before.waiting > 100, `frames waiting: ${JSON.stringify(before)}`);
      const result = await store.checkpointer?.checkpointNow();
      assert.ok(result && result.log > 100 && result.checkpointed === result.log, JSON.stringify(result));
      assert.equal(wal.read()?.waiting, 0);
      await store.appendMessages(batch(1));
      const after = wal.read();
      assert.ok(after && after.frames < 20, `the WAL started over: ${JSON.stringify(after)}`);
      wal.close();
    } finally {
      await store.close();
    }
  });

  it('keeps the WAL bounded under writes that never pause, and stores every message gap-free', async () => {
    const file = nextFile();
    const limit = 300;
    const { store, batch, written } = await openStore(file, { walLimitPages: limit, checkpointFrames: 100 });
    try {
      const wal = new WalFrames(file);
      let largest = 0;
      let startedOver = 0;
      let frames = 0;
      for (let i = 0; i < 150; i++) {
        await store.appendMessages(batch(25));
        largest = Math.max(largest, walBytes(file));
        const now = wal.read()?.frames ?? 0;
        if (now < frames) startedOver++;
        frames = now;
      }
      wal.close();
      // Far more was written than the bound: the WAL filled and started over many times…
      assert.ok(startedOver >= 5, `the WAL started over ${startedOver} times`);
      // …and stayed within the bound plus the commits in flight when it was reached.
      assert.ok(largest <= walSizeOf(limit * 2), `largest WAL ${largest} bytes, bound ${walSizeOf(limit)}`);
      assert.equal(await storedCount(store), written());
    } finally {
      await store.close();
    }
  });

  it('loses nothing when the thread dies: checkpoints go back to the committing connection', async () => {
    const file = nextFile();
    const failures: Error[] = [];
    const { store, batch, written } = await openStore(file, {
      walLimitPages: 4000,
      onCheckpointThreadFailure: (err) => failures.push(err),
    });
    try {
      for (let i = 0; i < 50; i++) await store.appendMessages(batch(25));
      const thread = store.checkpointer;
      await thread?.kill();
      assert.equal(failures.length, 1);
      assert.equal(thread?.alive, false);
      assert.equal(store.checkpointer, null);
      assert.equal(store.db.pragma('wal_autocheckpoint', { simple: true }), 1000);
      const largest = await largestWalOver(store, batch);
      assert.ok(largest <= walSizeOf(2000), `largest WAL ${largest} bytes`);
    } finally {
      await store.close();
    }
    await assertStoredAfterRestart(file, written());
  });

  it('stops the thread on close, and the last connection removes the WAL', async () => {
    const file = nextFile();
    const { store, batch } = await openStore(file);
    await store.appendMessages(batch(10));
    const thread = store.checkpointer;
    assert.equal(thread?.alive, true);
    await store.close();
    assert.equal(thread?.alive, false);
    assert.equal(existsSync(`${file}-wal`), false);
    await assert.rejects(thread?.checkpointNow() as Promise<unknown>, /not running/);
  });

  it('runs in a Gatehouse node with store.sqliteCheckpointThread, and not by default', async () => {
    const on = await startServer({ store: { sqliteCheckpointThread: true } }, { dataDir: inFolder('node-on') });
    const off = await startServer({}, { dataDir: inFolder('node-off') });
    try {
      const store = (server: typeof on) => server.gatehouse.services.store as SqliteStore;
      assert.equal(store(on).checkpointer?.alive, true);
      assert.equal(store(on).db.pragma('wal_autocheckpoint', { simple: true }), 4000);
      assert.equal(store(off).checkpointer, null);
      // Without the thread: checkpoints in upkeep, the commit's own only at the bound.
      assert.equal(store(off).db.pragma('wal_autocheckpoint', { simple: true }), 4000);
    } finally {
      await on.close();
      await off.close();
    }
  });
});

describe('SQLite checkpoints in upkeep, after the acks (the default)', () => {
  const { nextFile, inFolder } = suiteFolder('gatehouse-upkeep-');

  it('leaves the checkpoint out of the commits until 1000 pages wait; upkeep then empties the WAL, which starts over', async () => {
    const file = nextFile();
    const { store, batch } = await openStore(file, { checkpointThread: false });
    const wal = new WalFrames(file);
    try {
      let waiting = 0;
      let upkeepsBelowTheLine = 0;
      while (waiting < 1000) {
        await store.appendMessages(batch(25));
        const now = wal.read()?.waiting ?? 0;
        // No commit checkpointed: the WAL only grew.
        assert.ok(now > waiting, `waiting went from ${waiting} to ${now}`);
        waiting = now;
        if (waiting < 1000) {
          store.upkeep();
          upkeepsBelowTheLine++;
          assert.equal(wal.read()?.waiting, waiting, 'upkeep leaves a WAL below 1000 pages alone');
        }
      }
      assert.ok(upkeepsBelowTheLine > 5);
      store.upkeep();
      assert.equal(wal.read()?.waiting, 0);
      await store.appendMessages(batch(1));
      const restarted = wal.read();
      assert.ok(restarted && restarted.frames < 20, `the WAL started over: ${JSON.stringify(restarted)}`);
    } finally {
      wal.close();
      await store.close();
    }
  });

  it('keeps the WAL within its bound when no upkeep comes (writes other than messages), and stores every message gap-free', async () => {
    const file = nextFile();
    const limit = 300;
    const { store, batch, written } = await openStore(file, { checkpointThread: false, walLimitPages: limit });
    try {
      const largest = await largestWalOver(store, batch);
      assert.ok(largest > walSizeOf(limit / 2), `the WAL grew: ${largest} bytes`);
      assert.ok(largest <= walSizeOf(limit * 2), `largest WAL ${largest} bytes, bound ${walSizeOf(limit)}`);
      assert.equal(await storedCount(store), written());
    } finally {
      await store.close();
    }
    await assertStoredAfterRestart(file, written());
  });

  it('runs in a Gatehouse node once the acks of the batch are on their sockets', async () => {
    const server = await startServer({}, { dataDir: inFolder('node-upkeep') });
    const clients = new Clients();
    const users = freshUsers(() => server);
    try {
      const { ids, tokens } = await users('up-a', 'up-b');
      const sender = await clients.device(server, '/ws', tokens[0] as string);
      const conn = server.gatehouse.services.gateway.registry.connectionsOf(ids[0] as string);
      assert.ok(conn instanceof Connection);
      const socket = conn.socket as Socket;
      const store = server.gatehouse.services.store as SqliteStore;
      const upkeep = store.upkeep.bind(store);
      const seen: { queued: boolean; written: number }[] = [];
      store.upkeep = () => {
        seen.push({ queued: conn.queuedFrames !== null, written: socket.bytesWritten });
        upkeep();
      };
      for (let i = 0; i < 3; i++) {
        const before = socket.bytesWritten;
        const upkeeps = seen.length;
        await sendOk(sender.client, { to: ids[1], text: `message ${i}` });
        while (seen.length === upkeeps) await new Promise((resolve) => setImmediate(resolve));
        const at = seen[upkeeps] as { queued: boolean; written: number };
        assert.equal(at.queued, false, 'the ack is not waiting in the frame writer');
        assert.ok(at.written > before, 'the ack was handed to the socket');
      }
    } finally {
      clients.closeAll();
      await server.close();
    }
  });

  it('runs in a Gatehouse node every second too, for writes no batch of messages follows', async () => {
    const clock = new ManualClock(Date.now());
    const server = await startServer({}, { dataDir: inFolder('node-upkeep-timer'), clock });
    try {
      const store = server.gatehouse.services.store as SqliteStore;
      const wal = new WalFrames(store.file);
      const { batch } = batches();
      // Straight to the store, not through the group commit: nothing calls upkeep after them.
      while ((wal.read()?.waiting ?? 0) < 1000) await store.appendMessages(batch(25));
      clock.advance(999);
      assert.ok((wal.read()?.waiting ?? 0) >= 1000, 'no checkpoint before the second is up');
      clock.advance(1);
      assert.equal(wal.read()?.waiting, 0);
      wal.close();
    } finally {
      await server.close();
    }
  });

  it('does nothing on a closed store or one in memory', async () => {
    const file = nextFile();
    const { store, batch } = await openStore(file, { checkpointThread: false });
    for (let i = 0; i < 60; i++) await store.appendMessages(batch(25));
    await store.close();
    store.upkeep();
    const memory = new SqliteStore(':memory:');
    await memory.migrate();
    memory.upkeep();
    await memory.close();
  });
});
