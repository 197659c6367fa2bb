import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Clients, imUsers, sendMessage } from './helpers/messaging.js';
import { api, startServer, type TestServer } from './helpers/test-server.js';

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

  it('refuses NUL characters in ids and REST input before they reach the store', async () => {
    const { tokens, appKey } = await imUsers(server, ['nul-a', 'nul-b']);
    const a = await clients.device(server, '/ws', tokens['nul-a'] as string);
    const bad = await sendMessage(a.client, { to: 'nul-b', text: 'x', client_msg_id: 'id\u0000' });
    assert.equal(bad.code, 400);
    assert.equal(bad.error, 'INVALID_REQUEST');
    const badTo = await sendMessage(a.client, { to: 'nul-b\u0000', text: 'x' });
    assert.equal(badTo.error, 'INVALID_REQUEST');
    // NUL inside text is fine: it is stored escaped in the message JSON.
    const ok = await sendMessage(a.client, { to: 'nul-b', text: 'a\u0000b' });
    assert.equal(ok.code, 200);
    const rest = await api(server, 'POST', '/openapi/v1/user/login', {
      headers: { 'x-app-key': appKey },
      body: { id: 'nul\u0000user', nickname: 'N', device: 'im_web' },
    });
    assert.equal(rest.status, 400);
    const admin = await api(server, 'POST', '/api/v1/admin/principals/a%00b/kick', {
      headers: { 'x-admin-key': server.adminKey },
      body: {},
    });
    assert.equal(admin.status, 400);
    assert.equal(admin.body.error, 'INVALID_REQUEST');
  });
});
