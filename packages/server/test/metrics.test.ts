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
    // A node alone writes a message's frames in its commit's turn: there is no broker hop to time
    // (delivery-wire.test.ts checks both histograms on a node with Redis).
    assert.match(text, /gatehouse_delivery_latency_seconds_count\{node="[^"]+"\} 0$/m);
    assert.match(text, /gatehouse_broker_publish_seconds_count\{node="[^"]+"\} 0$/m);
    for (const c of [alice.client, bob.client, agent.client]) c.close();
    assert.equal((await api(server, 'GET', '/healthz')).status, 200);
  });
});

describe('GET /metrics: process and Node.js metrics, and optional protection', () => {
  it('serves the default process and Node.js metrics beside the gateway ones', async () => {
    const server = await startServer();
    try {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      for (const name of [
        'process_cpu_user_seconds_total',
        'process_resident_memory_bytes',
        'nodejs_eventloop_lag_seconds',
        'nodejs_heap_size_used_bytes',
        'nodejs_version_info',
      ])
        assert.match(text, new RegExp(`^${name}\\{[^}]*node="`, 'm'), `${name} with the node label`);
    } finally {
      await server.close();
    }
  });

  it('is open by default, and with server.metricsAuth needs the admin key as X-Admin-Key or a bearer token', async () => {
    const open = await startServer();
    try {
      assert.equal((await fetch(`${open.url}/metrics`)).status, 200);
    } finally {
      await open.close();
    }
    const server = await startServer({ server: { metricsAuth: true } });
    try {
      for (const headers of [{}, { 'x-admin-key': 'wrong' }, { authorization: 'Bearer wrong' }] as Record<
        string,
        string
      >[]) {
        const res = await api(server, 'GET', '/metrics', { headers });
        assert.equal(res.status, 401, JSON.stringify(headers));
        assert.equal(res.body.error, 'TOKEN_INVALID');
      }
      for (const path of ['/%6Detrics', '/metrics/', '/METRICS', '//metrics'])
        assert.ok([401, 404].includes((await api(server, 'GET', path)).status), path);
      for (const headers of [
        { 'x-admin-key': server.adminKey },
        { authorization: `Bearer ${server.adminKey}` },
      ] as Record<string, string>[]) {
        const res = await fetch(`${server.url}/metrics`, { headers });
        assert.equal(res.status, 200);
        assert.match(await res.text(), /gatehouse_connections/);
      }
      assert.equal((await api(server, 'GET', '/healthz')).status, 200, 'health stays open');
      assert.equal((await api(server, 'GET', '/openapi.json')).status, 200, 'openapi is protected on its own');
    } finally {
      await server.close();
    }
  });

  it('protects /openapi.json with server.openapiAuth', async () => {
    const server = await startServer({ server: { openapiAuth: true } });
    try {
      assert.equal((await api(server, 'GET', '/openapi.json')).status, 401);
      assert.equal((await api(server, 'GET', '/openapi.json', { headers: { 'x-admin-key': 'nope' } })).status, 401);
      const res = await api(server, 'GET', '/openapi.json', {
        headers: { authorization: `Bearer ${server.adminKey}` },
      });
      assert.equal(res.status, 200);
      assert.match(res.body.openapi, /^3\./);
      assert.equal((await api(server, 'GET', '/metrics')).status, 200, 'metrics is protected on its own');
    } finally {
      await server.close();
    }
  });
});
