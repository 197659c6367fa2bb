import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Cluster, type ClusterNode, loginUser } from './helpers/cluster.js';
import { connectWithToken, type TestClient } from './helpers/ws-client.js';

/*
 * The admin API on two nodes sharing PostgreSQL and a broker: a listing shows the sockets of
 * every node, and kick / revoke / block count the sockets they close on every node.
 */
const POSTGRES_URL = process.env.GATEHOUSE_TEST_POSTGRES_URL ?? '';
const BROKERS = [
  { name: 'Redis', url: process.env.GATEHOUSE_TEST_REDIS_URL ?? '', variable: 'GATEHOUSE_TEST_REDIS_URL' },
  { name: 'NATS', url: process.env.GATEHOUSE_TEST_NATS_URL ?? '', variable: 'GATEHOUSE_TEST_NATS_URL' },
];

interface Listed {
  session_id: string;
  principal: { id: string; kind: string } | null;
  kind: string | null;
  device_type: string | null;
  node: string;
  connected_at: number;
}

for (const broker of BROKERS) {
  const skip = !POSTGRES_URL
    ? 'GATEHOUSE_TEST_POSTGRES_URL is not set'
    : !broker.url
      ? `${broker.variable} is not set`
      : false;

  describe(`admin answers across two nodes (PostgreSQL + ${broker.name})`, { skip }, () => {
    let cluster: Cluster;
    let a: ClusterNode;
    let b: ClusterNode;
    let appKey: string;
    const sockets: TestClient[] = [];

    before(async () => {
      cluster = await Cluster.start({ postgresUrl: POSTGRES_URL, brokerUrl: broker.url, nodes: ['a', 'b'] });
      a = cluster.node('a');
      b = cluster.node('b');
      appKey = await cluster.createAppKey(a);
    });
    after(async () => {
      for (const socket of sockets) socket.close();
      await cluster?.close();
    });

    const connect = async (node: ClusterNode, id: string, device: string) => {
      const { client, connected } = await connectWithToken(
        node.wsUrl,
        '/ws',
        await loginUser(node, appKey, id, device),
      );
      assert.equal(connected.code, 200);
      sockets.push(client);
      return client;
    };

    it('lists the sockets of every node, with node id, kind, device type and connected since', async () => {
      await connect(a, 'list-x', 'im_web');
      await connect(b, 'list-x', 'im_app_ios');
      await connect(b, 'list-y', 'im_web');
      for (const node of [a, b]) {
        const res = await cluster.admin(node, 'GET', '/api/v1/admin/connections');
        assert.equal(res.status, 200);
        assert.deepEqual(res.body.nodes.sort(), [a.nodeId, b.nodeId].sort(), `asked through ${node.name}`);
        assert.deepEqual(res.body.missingNodes, []);
        const mine = (res.body.connections as Listed[]).filter((c) => c.principal?.id.startsWith('list-'));
        assert.deepEqual(
          mine.map((c) => `${c.principal?.id} ${c.kind} ${c.device_type} ${c.node}`).sort(),
          [`list-x user im_app_ios ${b.nodeId}`, `list-x user im_web ${a.nodeId}`, `list-y user im_web ${b.nodeId}`],
          `asked through ${node.name}`,
        );
        for (const c of mine) assert.ok(Number.isInteger(c.connected_at) && c.connected_at > 0);
      }
      const one = await cluster.admin(a, 'GET', '/api/v1/admin/connections?principal=list-x');
      assert.deepEqual((one.body.connections as Listed[]).map((c) => c.node).sort(), [a.nodeId, b.nodeId].sort());
    });

    it('kick, revoke and block answer how many sockets they closed on every node', async () => {
      const xWeb = await connect(a, 'count-x', 'im_web');
      const xIos = await connect(b, 'count-x', 'im_app_ios');
      const xPc = await connect(b, 'count-x', 'im_pc_win');
      const y = await connect(a, 'count-y', 'im_web');

      const kicked = await cluster.admin(a, 'POST', '/api/v1/admin/principals/count-x/kick', {
        deviceType: 'im_app_ios',
      });
      assert.equal(kicked.status, 200);
      assert.deepEqual(kicked.body, { ok: true, closed: 1, missingNodes: [] });
      assert.equal((await xIos.closed).code, 4410, 'the socket on the other node was closed');

      const blocked = await cluster.admin(b, 'POST', '/api/v1/admin/principals/count-x/block');
      assert.deepEqual(blocked.body, { ok: true, closed: 2, missingNodes: [] });
      for (const socket of [xWeb, xPc]) assert.equal((await socket.closed).code, 4410);

      const revoked = await cluster.admin(b, 'POST', '/api/v1/admin/principals/count-y/revoke');
      assert.deepEqual(revoked.body, { ok: true, closed: 1, missingNodes: [] });
      assert.equal((await y.closed).code, 4410);

      const unknown = await cluster.admin(b, 'POST', '/api/v1/admin/principals/count-nobody/kick');
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.error, 'NOT_FOUND');
    });

    it('lists only the remaining node once the other one stopped', async () => {
      await b.stop();
      const res = await cluster.admin(a, 'GET', '/api/v1/admin/connections');
      assert.equal(res.status, 200);
      assert.deepEqual(res.body.nodes, [a.nodeId]);
      assert.ok((res.body.connections as Listed[]).every((c) => c.node === a.nodeId));
    });
  });
}
