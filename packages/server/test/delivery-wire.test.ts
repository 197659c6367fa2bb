import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { uniquePrefix } from './helpers/broker-conformance.js';
import { Clients, createGroup, freshUsers, sendOk } from './helpers/messaging.js';
import { startServer, type TestServer } from './helpers/test-server.js';

/*
 * The `deliver` topic's payload is read by every node of a cluster, also by nodes of the
 * previous version during a rolling upgrade: what this version publishes is the layout
 * `JSON.stringify({m, c, s, x, t})` gave, and what that layout carries is delivered here.
 * A node alone (the in-process broker) publishes nothing for its own messages: it writes
 * them to its sockets directly. It still delivers what is published on its broker.
 */

const REDIS_URL = process.env.GATEHOUSE_TEST_REDIS_URL;

describe('deliver payloads a node publishes for the other nodes', {
  skip: REDIS_URL ? false : 'GATEHOUSE_TEST_REDIS_URL is not set (give it a server URL to run this suite)',
}, () => {
  let server: TestServer;
  const clients = new Clients();
  const users = freshUsers(() => server);

  before(async () => {
    server = await startServer({ broker: { url: REDIS_URL as string, prefix: uniquePrefix('wire') } });
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  it('publishes a group message in the layout of JSON.stringify({m, c, s, x, t}) and times the hop', async () => {
    // 17 members: long enough for the sending node to keep the list's JSON between messages.
    const { ids, tokens } = await users(...Array.from({ length: 17 }, (_, i) => `w${i}`));
    const groupId = await createGroup(server, ids);
    const sender = await clients.device(server, '/ws', tokens[0] as string);
    const reader = await clients.device(server, '/ws', tokens[1] as string);
    const seen: string[] = [];
    const stop = await server.gatehouse.services.broker.subscribe('deliver', (payload) => seen.push(payload));
    try {
      for (const text of ['first', 'second']) {
        await sendOk(sender.client, { conversation_id: groupId, text });
        assert.equal((await reader.client.next('message')).message.text, text);
      }
    } finally {
      await stop();
    }
    assert.equal(seen.length, 2);
    for (const [i, payload] of seen.entries()) {
      const header = payload.slice(0, payload.indexOf('\n'));
      const parsed = JSON.parse(header);
      assert.equal(header, JSON.stringify({ m: parsed.m, c: parsed.c, s: parsed.s, x: parsed.x, t: parsed.t }));
      assert.deepEqual(parsed.m, [...ids].sort());
      assert.equal(parsed.c, groupId);
      assert.equal(parsed.s, i + 1);
    }
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /gatehouse_delivery_latency_seconds_count\{node="[^"]+"\} [1-9]/);
    assert.match(metrics, /gatehouse_broker_publish_seconds_count\{node="[^"]+"\} [1-9]/);
  });
});

describe('deliver payloads on the broker of a node alone', () => {
  let server: TestServer;
  const clients = new Clients();
  const users = freshUsers(() => server);

  before(async () => {
    server = await startServer();
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  const publish = (payload: string) => server.gatehouse.services.broker.publish('deliver', payload);

  it('writes its own messages to its sockets without publishing them', async () => {
    const { ids, tokens } = await users('a1', 'a2', 'a3');
    const groupId = await createGroup(server, ids);
    const sender = await clients.device(server, '/ws', tokens[0] as string);
    const readers = [
      await clients.device(server, '/ws', tokens[1] as string),
      await clients.device(server, '/ws', tokens[2] as string),
    ];
    const seen: string[] = [];
    const stop = await server.gatehouse.services.broker.subscribe('deliver', (payload) => seen.push(payload));
    try {
      await sendOk(sender.client, { conversation_id: groupId, text: 'local' });
      for (const reader of readers) assert.equal((await reader.client.next('message')).message.text, 'local');
      await sendOk(sender.client, { to: ids[1] as string, text: 'direct' });
      assert.equal((await (readers[0] as (typeof readers)[0]).client.next('message')).message.text, 'direct');
    } finally {
      await stop();
    }
    assert.deepEqual(seen, []);
  });

  it('delivers what a node of the previous version publishes, with long and short member lists', async () => {
    const { ids, tokens } = await users('p1', 'p2');
    const reader = await clients.device(server, '/ws', tokens[1] as string);
    const long = [...Array.from({ length: 50 }, (_, i) => `absent-${i}`), ids[1] as string];
    for (const [i, m] of [
      [1, long],
      [2, long],
      [3, [ids[1]]],
    ] as const) {
      const header = JSON.stringify({ m, c: 'gr_elsewhere', s: i, x: null, t: Date.now() });
      await publish(`${header}\n{"type":"message","code":200,"message":{"seq":${i},"text":"old node ${i}"}}`);
      assert.equal((await reader.client.next('message')).message.text, `old node ${i}`);
    }
    const event = JSON.stringify({ m: [ids[1]], c: null, s: 0, x: null, t: Date.now() });
    await publish(`${event}\n{"type":"presence","code":200,"user_id":"${ids[0]}","online":true}`);
    assert.equal((await reader.client.next('presence')).user_id, ids[0]);
  });

  it('drops malformed payloads and keeps delivering', async () => {
    const { ids, tokens } = await users('b1');
    const reader = await clients.device(server, '/ws', tokens[0] as string);
    for (const bad of [
      'no newline',
      '{"m":["x"],"c":\n{}',
      '{"m":"not a list","c":null,"s":0,"x":null,"t":0}\n{}',
      '{"m":[1,2],"c":"gr_x","s":1,"x":null,"t":0}\n{}',
      `{"m":${JSON.stringify(Array.from({ length: 30 }, () => ids[0]))},"c":{"x":1},"s":1,"x":null,"t":0}\n{"type":"message","code":200,"message":{"text":"odd c"}}`,
      'not json at all\n{}',
    ])
      await publish(bad);
    const good = JSON.stringify({ m: [ids[0]], c: null, s: 0, x: null, t: Date.now() });
    await publish(`${good}\n{"type":"presence","code":200,"user_id":"someone","online":false}`);
    const next = await reader.client.next('presence');
    assert.equal(next.user_id, 'someone');
  });
});
