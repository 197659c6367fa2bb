import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Clients, imUsers, sendOk } from './helpers/messaging.js';
import { type ServerProcess, spawnServer } from './helpers/server-process.js';
import { api, type TestServer } from './helpers/test-server.js';
import type { Frame } from './helpers/ws-client.js';

/** Messages in flight at once while the server is killed. */
const WINDOW = 20;
/** The server is killed the moment this many acks have arrived. */
const KILL_AFTER_ACKS = 100;

describe('ack after commit', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-durability-'));
  const processes: ServerProcess[] = [];
  const clients = new Clients();

  async function start(): Promise<ServerProcess> {
    const server = await spawnServer(dataDir);
    processes.push(server);
    return server;
  }

  after(async () => {
    await clients.closeAll();
    for (const p of processes) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(processes.map((p) => p.exited));
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('keeps every acknowledged message through a SIGKILL and replays it to the device that never acked', {
    timeout: 30_000,
  }, async () => {
    const first = await start();
    // The shared helpers only need url, wsUrl and adminKey.
    const { tokens } = await imUsers(first as unknown as TestServer, ['alice', 'bob']);
    const bob = await clients.device(first, '/ws', tokens.bob as string);
    const alice = await clients.device(first, '/ws', tokens.alice as string);

    // Alice keeps WINDOW messages in flight; the server is killed the moment the
    // KILL_AFTER_ACKS-th ack arrives. Acks already on their way are still counted: the
    // server sent them, so it had committed those messages.
    const acked = new Map<string, { message_id: string; conversation_id: string; seq: number }>();
    const refused: Frame[] = [];
    const sent: string[] = [];
    let killed = false;
    const sendNext = () => {
      const key = `k${sent.length}`;
      sent.push(key);
      alice.client.send({ type: 'message', id: key, to: 'bob', text: `message ${key}`, client_msg_id: key });
    };
    alice.client.ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as Frame;
      if (frame.type !== 'ack') return;
      if (frame.code !== 200) refused.push(frame);
      else acked.set(frame.id, frame.body);
      if (killed) return;
      if (acked.size >= KILL_AFTER_ACKS) {
        first.child.kill('SIGKILL');
        killed = true;
      } else sendNext();
    });
    for (let i = 0; i < WINDOW; i++) sendNext();
    const { signal } = await first.exited;
    assert.equal(signal, 'SIGKILL');
    await alice.client.closed;
    await bob.client.closed;
    assert.deepEqual(refused, []);
    assert.ok(acked.size >= KILL_AFTER_ACKS);

    // The same data folder, a new process.
    const second = await start();
    const bobAgain = await clients.device(second, '/ws', tokens.bob as string);
    const replayed = new Map<string, Frame['message']>(bobAgain.offline.map((f) => [f.message.id, f.message]));
    for (const [key, ack] of acked) {
      const message = replayed.get(ack.message_id);
      assert.ok(message, `acked message ${key} (seq ${ack.seq}) was replayed`);
      assert.equal(message.seq, ack.seq);
      assert.equal(message.text, `message ${key}`);
    }
    const seqs = bobAgain.offline.map((f) => f.message.seq);
    assert.deepEqual(
      seqs,
      Array.from({ length: seqs.length }, (_, i) => i + 1),
      'gap-free, oldest first',
    );
    assert.equal(bobAgain.complete.count, seqs.length);

    // Alice retries everything she has no ack for: each message ends up stored exactly once.
    const aliceAgain = await clients.device(second, '/ws', tokens.alice as string);
    for (const key of sent) {
      const ack = await sendOk(aliceAgain.client, { to: 'bob', text: `message ${key}`, client_msg_id: key });
      const before = acked.get(key);
      if (before) assert.deepEqual(ack, before, `${key} keeps its original ack`);
    }
    const conversationId = acked.values().next().value?.conversation_id as string;
    const history = await api(second, 'GET', `/api/v1/conversations/${conversationId}/messages?limit=200`, {
      headers: { authorization: `Bearer ${tokens.alice}` },
    });
    assert.equal(history.status, 200);
    const texts = history.body.messages.map((m: { text: string }) => m.text);
    assert.equal(texts.length, sent.length);
    assert.deepEqual([...texts].sort(), sent.map((key) => `message ${key}`).sort());
    assert.deepEqual(
      history.body.messages.map((m: { seq: number }) => m.seq),
      Array.from({ length: sent.length }, (_, i) => i + 1),
    );
  });
});
