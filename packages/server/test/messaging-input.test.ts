import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Clients, imUsers, sendMessage } from './helpers/messaging.js';
import { startServer, type TestServer } from './helpers/test-server.js';

describe('message input that cannot be stored', () => {
  let server: TestServer;
  const clients = new Clients();
  before(async () => {
    server = await startServer({ ws: { maxFrameBytes: 1_048_576 }, limits: { messagesPerSecond: 10_000 } });
  });
  after(async () => {
    await clients.closeAll();
    await server.close();
  });

  it('refuses data nested too deeply for its own send only, while messages in the same batch are stored', async () => {
    const { tokens } = await imUsers(server, ['deep-a', 'deep-b']);
    const a = await clients.device(server, '/ws', tokens['deep-a'] as string);
    const b = await clients.device(server, '/ws', tokens['deep-b'] as string);
    const deep = `${'{"x":'.repeat(20_000)}1${'}'.repeat(20_000)}`;
    // Sent back to back, so the three messages meet in one event-loop turn (one group commit).
    a.client.send(`{"type":"message","id":"before","to":"deep-b","text":"before"}`);
    a.client.send(`{"type":"message","id":"deep","to":"deep-b","data":${deep}}`);
    a.client.send(`{"type":"message","id":"after","to":"deep-b","text":"after"}`);
    const [before, bad, afterReply] = await Promise.all(
      ['before', 'deep', 'after'].map((id) => a.client.next((f) => f.id === id)),
    );
    assert.equal(bad?.code, 400);
    assert.equal(bad?.error, 'INVALID_REQUEST');
    assert.equal(before?.code, 200);
    assert.equal(afterReply?.code, 200);
    assert.equal(afterReply?.body.seq, (before?.body.seq as number) + 1);
    assert.equal((await b.client.next('message')).message.text, 'before');
    assert.equal((await b.client.next('message')).message.text, 'after');
    const again = await sendMessage(a.client, { to: 'deep-b', text: 'still fine' });
    assert.equal(again.code, 200);
  });
});
