import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createAppKey, startServer, type TestServer, userToken } from './helpers/test-server.js';
import { connectWithToken } from './helpers/ws-client.js';

describe('presence', () => {
  let server: TestServer;
  let appKey: string;
  before(async () => {
    server = await startServer();
    appKey = await createAppKey(server);
  });
  after(() => server.close());

  it('tells a direct-conversation peer when a user comes online and when its last socket goes', async () => {
    const alice = await connectWithToken(server.wsUrl, '/ws', await userToken(server, appKey, 'p-alice'));
    const bobToken = await userToken(server, appKey, 'p-bob', 'im_web');
    const bobWeb = await connectWithToken(server.wsUrl, '/ws', bobToken);
    assert.equal((await alice.client.request({ type: 'message', to: 'p-bob', text: 'hi' })).code, 200);
    bobWeb.client.close();
    assert.deepEqual((await alice.client.next((f) => f.type === 'presence' && f.online === false)).user_id, 'p-bob');

    const bobIos = await connectWithToken(server.wsUrl, '/ws', await userToken(server, appKey, 'p-bob', 'im_app_ios'), {
      devicetype: 'im_app_ios',
    });
    const online = await alice.client.next('presence');
    assert.deepEqual(online, { type: 'presence', code: 200, user_id: 'p-bob', online: true });

    // A second device of an online principal is no presence change.
    const bobWeb2 = await connectWithToken(server.wsUrl, '/ws', bobToken);
    bobIos.client.close();
    await bobIos.client.closed;
    bobWeb2.client.close();
    const offline = await alice.client.next('presence');
    assert.deepEqual(offline, { type: 'presence', code: 200, user_id: 'p-bob', online: false });
    assert.equal(alice.client.frames.filter((f) => f.type === 'presence').length, 0);
    alice.client.close();
  });

  it('reports online principals cluster-wide through the cluster state', async () => {
    const { cluster } = server.gatehouse.services;
    const carol = await connectWithToken(server.wsUrl, '/ws', await userToken(server, appKey, 'p-carol'));
    assert.deepEqual([...(await cluster.online(['p-carol', 'p-nobody']))], ['p-carol']);
    carol.client.close();
    await carol.client.closed;
  });
});
