import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { agentLogin, api, createAppKey, startServer, type TestServer, userToken } from './helpers/test-server.js';
import { connectWithToken, TestClient } from './helpers/ws-client.js';

function sample(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.split(' ').at(-1)) : Number.NaN;
}

describe('GET /metrics', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  it('counts connections by kind, handshakes by outcome, frames and stored messages', async () => {
    const appKey = await createAppKey(server);
    const alice = await connectWithToken(server.wsUrl, '/ws', await userToken(server, appKey, 'm-alice'));
    const bob = await connectWithToken(server.wsUrl, '/ws', await userToken(server, appKey, 'm-bob'));
    const agent = await connectWithToken(server.wsUrl, '/ws/chat', (await agentLogin(server, 'm-agent')).token);
    const refused = TestClient.connect(`${server.wsUrl}/ws`, { headers: { authorization: 'Bearer not-a-jwt' } });
    assert.equal((await refused.rejection).status, 401);
    const ack = await alice.client.request({ type: 'message', to: 'm-bob', text: 'hi' });
    assert.equal(ack.code, 200);
    await bob.client.next('message');

    const res = await fetch(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    const text = await res.text();
    assert.equal(sample(text, 'gatehouse_connections', 'kind="user"'), 2);
    assert.equal(sample(text, 'gatehouse_connections', 'kind="agent"'), 1);
    assert.equal(sample(text, 'gatehouse_handshakes_total', 'outcome="ok"'), 3);
    assert.equal(sample(text, 'gatehouse_handshakes_total', 'outcome="TOKEN_INVALID"'), 1);
    assert.ok(sample(text, 'gatehouse_frames_in_total', 'node=') >= 1);
    assert.ok(sample(text, 'gatehouse_frames_out_total', 'node=') >= 6);
    assert.ok(sample(text, 'gatehouse_messages_stored_total', 'node=') >= 1);
    assert.match(text, /gatehouse_store_batch_seconds_count\{node="[^"]+"\} [1-9]/);
    assert.match(text, /gatehouse_delivery_latency_seconds_count\{node="[^"]+"\} [1-9]/);
    for (const c of [alice.client, bob.client, agent.client]) c.close();
    assert.equal((await api(server, 'GET', '/healthz')).status, 200);
  });
});
