import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { Broker } from '../src/broker/broker.js';
import { MemoryBroker } from '../src/broker/memory-broker.js';
import { NatsBroker } from '../src/broker/nats-broker.js';
import { RedisBroker } from '../src/broker/redis-broker.js';
import { loadConfig } from '../src/config.js';
import { brokerConformance, eventually, uniquePrefix } from './helpers/broker-conformance.js';
import { type BrokerServerProcess, startNatsServer, startRedisServer } from './helpers/broker-server-process.js';
import { api, createAppKey, startServer, type TestServer, userToken } from './helpers/test-server.js';
import { connectWithToken, WAIT_MS } from './helpers/ws-client.js';
import { within } from './helpers/ws-expect.js';

const REDIS_URL = process.env.GATEHOUSE_TEST_REDIS_URL;
const NATS_URL = process.env.GATEHOUSE_TEST_NATS_URL;
const notSet = (name: string) => `${name} is not set (give it a server URL to run this suite)`;

brokerConformance({
  name: 'MemoryBroker',
  shared: false,
  create: () => new MemoryBroker(),
});

brokerConformance({
  name: 'RedisBroker',
  skip: REDIS_URL ? undefined : notSet('GATEHOUSE_TEST_REDIS_URL'),
  shared: true,
  create: ({ prefix, logger, url }) => new RedisBroker(url ?? (REDIS_URL as string), { prefix, logger }),
  startServer: startRedisServer,
  async countPublications(server) {
    const client = new Redis(server.url);
    try {
      const stats = await client.info('commandstats');
      return Number(/^cmdstat_publish:calls=(\d+)/m.exec(stats)?.[1] ?? 0);
    } finally {
      client.disconnect();
    }
  },
});

brokerConformance({
  name: 'NatsBroker',
  skip: NATS_URL ? undefined : notSet('GATEHOUSE_TEST_NATS_URL'),
  shared: true,
  create: ({ prefix, logger, url }) => new NatsBroker(url ?? (NATS_URL as string), { prefix, logger }),
  startServer: startNatsServer,
  async countPublications(server) {
    const varz = (await (await fetch(`${server.monitorUrl}/varz`)).json()) as { in_msgs: number };
    return varz.in_msgs;
  },
});

describe('broker.prefix', () => {
  it('accepts dot-separated tokens of letters, digits, _ and - and defaults to gatehouse', () => {
    assert.equal(loadConfig().broker.prefix, 'gatehouse');
    for (const prefix of ['prod', 'eu-west_1', 'acme.prod.eu'])
      assert.equal(loadConfig({ overrides: { broker: { prefix } } }).broker.prefix, prefix);
    assert.equal(loadConfig({ env: { GATEHOUSE_BROKER_PREFIX: 'from-env' } }).broker.prefix, 'from-env');
  });

  it('refuses a prefix that could mix two clusters or is not a valid subject token', () => {
    for (const prefix of ['', 'a:b', 'a b', 'a..b', '.a', 'a.', 'a*', 'a>', 'ä'])
      assert.throws(() => loadConfig({ overrides: { broker: { prefix } } }), TypeError, `prefix "${prefix}"`);
  });
});

/** Alice sends Bob a direct message over the gateway; resolves once Bob's socket has it. */
async function directMessageArrives(server: TestServer, text: string): Promise<void> {
  const appKey = await createAppKey(server);
  const alice = await connectWithToken(server.wsUrl, '/ws', await userToken(server, appKey, 'alice'));
  const bob = await connectWithToken(server.wsUrl, '/ws', await userToken(server, appKey, 'bob'));
  try {
    const ack = await alice.client.request({ type: 'message', to: 'bob', text });
    assert.equal(ack.type, 'ack');
    assert.equal(ack.code, 200);
    const received = await bob.client.next((f) => f.type === 'message' && f.message?.text === text);
    assert.equal(received.message.from.id, 'alice');
    assert.equal(received.message.conversation_id, ack.body.conversation_id);
  } finally {
    for (const { client } of [alice, bob]) {
      client.close();
      await client.closed;
    }
  }
}

for (const backend of [
  { name: 'Redis', url: REDIS_URL, env: 'GATEHOUSE_TEST_REDIS_URL', startServer: startRedisServer },
  { name: 'NATS', url: NATS_URL, env: 'GATEHOUSE_TEST_NATS_URL', startServer: startNatsServer },
]) {
  describe(`a Gatehouse whose broker is ${backend.name}`, { skip: backend.url ? false : notSet(backend.env) }, () => {
    it('delivers a direct message between two users and reports the broker ok on /readyz', async () => {
      const server = await startServer({ broker: { url: backend.url as string, prefix: uniquePrefix('app') } });
      try {
        const broker: Broker = server.gatehouse.services.broker;
        assert.ok(broker instanceof (backend.name === 'Redis' ? RedisBroker : NatsBroker));
        const ready = await api(server, 'GET', '/readyz');
        assert.equal(ready.status, 200);
        assert.equal(ready.body.broker, 'ok');
        await directMessageArrives(server, `hello over ${backend.name} ✓\nsecond line`);
      } finally {
        await server.close();
      }
    });

    it('serves while its broker server is down at the start: /readyz answers 503 until the broker is up, then 200 and messages flow', async () => {
      const brokerServer = await backend.startServer();
      let server: TestServer | undefined;
      try {
        await brokerServer.kill();
        server = await within(
          startServer({ broker: { url: brokerServer.url, prefix: uniquePrefix('app') } }),
          'a start with the broker down',
        );
        assert.equal((await api(server, 'GET', '/healthz')).status, 200);
        const down = await api(server, 'GET', '/readyz');
        assert.equal(down.status, 503);
        assert.equal(down.body.store, 'ok');
        await brokerServer.start();
        const up = server;
        await eventually(
          async () => assert.equal((await api(up, 'GET', '/readyz')).status, 200),
          3 * WAIT_MS,
          '/readyz reporting 200 once the broker is up',
        );
        await directMessageArrives(server, 'after a start without the broker');
      } finally {
        await server?.close();
        await brokerServer.stop();
      }
    });

    describe('when its broker server restarts', () => {
      let brokerServer: BrokerServerProcess;
      let server: TestServer;
      after(async () => {
        await server?.close();
        await brokerServer?.stop();
      });

      it('reports not ready while the broker is down, then ready again and delivers messages', async () => {
        brokerServer = await backend.startServer();
        server = await startServer({ broker: { url: brokerServer.url, prefix: uniquePrefix('app') } });
        assert.equal((await api(server, 'GET', '/readyz')).status, 200);

        await brokerServer.kill();
        const down = await eventually(
          async () => {
            const res = await api(server, 'GET', '/readyz');
            assert.equal(res.status, 503);
            return res;
          },
          WAIT_MS,
          '/readyz reporting 503',
        );
        assert.equal(down.body.status, 'not ready');
        assert.equal(down.body.store, 'ok');
        assert.equal(down.body.broker, 'unavailable', 'the reason is in the log only');

        await brokerServer.start();
        const up = await eventually(
          async () => {
            const res = await api(server, 'GET', '/readyz');
            assert.equal(res.status, 200);
            return res;
          },
          3 * WAIT_MS,
          '/readyz reporting 200 again',
        );
        assert.equal(up.body.broker, 'ok');
        await directMessageArrives(server, 'after the restart');
      });
    });
  });
}
