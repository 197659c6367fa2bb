import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { agentLogin, startServer, type TestServer } from './helpers/test-server.js';
import { connectWithToken } from './helpers/ws-client.js';

describe('an agent on /ws/chat', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  it('connects with its token and gets the authenticated connected frame', async () => {
    const agent = await agentLogin(server, 'smoke-agent');
    const { client, connected } = await connectWithToken(server.wsUrl, '/ws/chat', agent.token);
    assert.equal(connected.code, 200);
    assert.equal(connected.body.message, 'Connected and authenticated successfully');
    assert.deepEqual(connected.body.user, { id: 'smoke-agent', kind: 'agent', name: 'Agent smoke-agent' });
    client.close();
    await client.closed;
  });
});
