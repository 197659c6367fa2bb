import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, it } from 'node:test';
import type { Logger } from 'pino';
import type { Broker, BrokerStatus } from '../../src/broker/broker.js';
import { createLogger } from '../../src/logger.js';
import type { BrokerServerProcess } from './broker-server-process.js';
import { WAIT_MS } from './ws-client.js';

export interface BrokerTarget {
  /** Shown in the suite's title. */
  name: string;
  /** Set when the suite cannot run here (say, its server URL is not set): the reason shown for the skip. */
  skip?: string | undefined;
  /**
   * A new broker node. Nodes created with the same prefix form one cluster; `url` points the
   * node at another server than the target's usual one (the restart test's own process).
   */
  create(options: { prefix: string; logger?: Logger; url?: string }): Broker;
  /** Separate nodes with the same prefix see each other's messages (false for the in-process broker). */
  shared: boolean;
  /** Starts a private server process that the restart test may kill (absent for the in-process broker). */
  startServer?: () => Promise<BrokerServerProcess>;
  /** How many publications a private server has received so far, read from the server itself. */
  countPublications?: (server: BrokerServerProcess) => Promise<number>;
}

/** A unique prefix per run, so the suites can run again and in parallel against one server. */
export function uniquePrefix(label = 'test'): string {
  return `gh-${label}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Retries `probe` until it stops throwing; a bound on waiting, not an assertion on timing. */
export async function eventually<T>(probe: () => Promise<T> | T, timeoutMs = WAIT_MS, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await probe();
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms: ${(err as Error).message}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Records what a subscription receives; `until(n)` waits (bounded) for the n-th message. */
export class Inbox {
  readonly messages: string[] = [];
  private waiters: { count: number; resolve: () => void }[] = [];
  readonly handler = (payload: string): void => {
    this.messages.push(payload);
    this.waiters = this.waiters.filter((w) => {
      if (this.messages.length < w.count) return true;
      w.resolve();
      return false;
    });
  };

  async until(count: number, timeoutMs = WAIT_MS): Promise<string[]> {
    if (this.messages.length < count) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve, reject) => {
        this.waiters.push({ count, resolve });
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `got ${this.messages.length} of ${count} messages within ${timeoutMs} ms: ${JSON.stringify(this.messages.slice(-5)).slice(0, 300)}`,
              ),
            ),
          timeoutMs,
        );
      }).finally(() => clearTimeout(timer));
    }
    return this.messages;
  }
}

/** A logger whose JSON lines are kept in `entries`. */
export function capturingLogger(level = 'debug'): { logger: Logger; entries: { msg: string; level: number }[] } {
  const entries: { msg: string; level: number }[] = [];
  const logger = createLogger(level, { write: (line: string) => entries.push(JSON.parse(line)) });
  return { logger, entries };
}

/**
 * The Broker conformance suite (packages/server/src/broker/broker.ts): every guarantee of the
 * interface, run through a factory against each implementation.
 */
export function brokerConformance(target: BrokerTarget): void {
  describe(`Broker conformance: ${target.name}`, { skip: target.skip ?? false }, () => {
    const runPrefix = uniquePrefix(target.name.toLowerCase());
    let testNumber = 0;
    let opened: Broker[] = [];
    /** A prefix of its own for each test, so no test hears another's leftovers. */
    let prefix = '';
    const node = (options: { prefix?: string; logger?: Logger; url?: string } = {}): Broker => {
      const broker = target.create({ prefix: options.prefix ?? prefix, ...options });
      opened.push(broker);
      return broker;
    };
    /** A second node of the same cluster where the broker is shared, else the same node. */
    const peerOf = (broker: Broker): Broker => (target.shared ? node() : broker);
    const notShared = target.shared ? false : 'the in-process broker has one node only';

    const nextPrefix = () => {
      testNumber += 1;
      prefix = `${runPrefix}-${testNumber}`;
    };
    nextPrefix();
    afterEach(async () => {
      const closing = opened;
      opened = [];
      await Promise.all(closing.map((broker) => broker.close()));
      nextPrefix();
    });

    it('delivers a publication to the subscribers of its topic and nothing published on other topics', async () => {
      const broker = node();
      const alpha = new Inbox();
      const beta = new Inbox();
      await broker.subscribe('alpha', alpha.handler);
      await broker.subscribe('beta', beta.handler);
      await broker.publish('beta', 'b1');
      await broker.publish('alpha', 'a1');
      await broker.publish('gamma', 'g1');
      await broker.publish('alpha', 'a2');
      await broker.publish('beta', 'b2');
      assert.deepEqual(await alpha.until(2), ['a1', 'a2']);
      assert.deepEqual(await beta.until(2), ['b1', 'b2']);
      // A last message on each topic: anything that leaked would have arrived before it.
      await broker.publish('alpha', 'a3');
      await broker.publish('beta', 'b3');
      assert.deepEqual(await alpha.until(3), ['a1', 'a2', 'a3']);
      assert.deepEqual(await beta.until(3), ['b1', 'b2', 'b3']);
    });

    it('delivers 1,000 messages from one publisher in the order they were published', async () => {
      const subscriber = node();
      const publisher = peerOf(subscriber);
      const inbox = new Inbox();
      await subscriber.subscribe('ordered', inbox.handler);
      const expected = Array.from({ length: 1000 }, (_, i) => `m${i}`);
      // Published without waiting for each other: the order of the calls is the order required.
      await Promise.all(expected.map((payload) => publisher.publish('ordered', payload)));
      assert.deepEqual(await inbox.until(1000), expected);
      // And once more with each publication awaited before the next.
      for (let i = 0; i < 50; i++) await publisher.publish('ordered', `n${i}`);
      const all = await inbox.until(1050);
      assert.deepEqual(
        all.slice(1000),
        Array.from({ length: 50 }, (_, i) => `n${i}`),
      );
    });

    it('delivers a node its own publications', async () => {
      const broker = node();
      const inbox = new Inbox();
      await broker.subscribe('self', inbox.handler);
      await broker.publish('self', 'hello me');
      assert.deepEqual(await inbox.until(1), ['hello me']);
    });

    it('delivers a publication of one node to the subscribers on every node of its cluster', {
      skip: notShared,
    }, async () => {
      const a = node();
      const b = node();
      const c = node();
      const inboxes = [new Inbox(), new Inbox(), new Inbox()];
      await Promise.all([a, b, c].map((broker, i) => broker.subscribe('fanout', inboxes[i]!.handler)));
      await b.publish('fanout', 'from b');
      for (const inbox of inboxes) assert.deepEqual(await inbox.until(1), ['from b']);
    });

    it('stops delivering to a handler once its unsubscribe function was called', async () => {
      const broker = node();
      const publisher = peerOf(broker);
      const first = new Inbox();
      const second = new Inbox();
      const unsubscribeFirst = await broker.subscribe('topic', first.handler);
      const unsubscribeSecond = await broker.subscribe('topic', second.handler);
      await publisher.publish('topic', 'both');
      assert.deepEqual(await first.until(1), ['both']);
      assert.deepEqual(await second.until(1), ['both']);

      await unsubscribeFirst();
      await unsubscribeFirst(); // a second call changes nothing
      await publisher.publish('topic', 'second only');
      assert.deepEqual(await second.until(2), ['both', 'second only']);
      assert.deepEqual(first.messages, ['both']);

      // The last handler of the topic goes, then a new one comes: only the new one hears.
      await unsubscribeSecond();
      const third = new Inbox();
      await broker.subscribe('topic', third.handler);
      await publisher.publish('topic', 'third only');
      assert.deepEqual(await third.until(1), ['third only']);
      assert.deepEqual(first.messages, ['both']);
      assert.deepEqual(second.messages, ['both', 'second only']);
    });

    it('gives every message to each of several subscribers of one topic, in order', async () => {
      const broker = node();
      const publisher = peerOf(broker);
      const inboxes = [new Inbox(), new Inbox(), new Inbox()];
      for (const inbox of inboxes) await broker.subscribe('many', inbox.handler);
      // The same function subscribed twice is called once per subscription.
      const twice = new Inbox();
      await broker.subscribe('many', twice.handler);
      const unsubscribeTwiceAgain = await broker.subscribe('many', twice.handler);
      const expected = Array.from({ length: 100 }, (_, i) => `x${i}`);
      await Promise.all(expected.map((payload) => publisher.publish('many', payload)));
      for (const inbox of inboxes) assert.deepEqual(await inbox.until(100), expected);
      const counts = new Map<string, number>();
      for (const payload of await twice.until(200)) counts.set(payload, (counts.get(payload) ?? 0) + 1);
      assert.deepEqual([...counts.keys()], expected);
      assert.ok(
        [...counts.values()].every((count) => count === 2),
        'each message twice',
      );
      await unsubscribeTwiceAgain();
      await publisher.publish('many', 'last');
      for (const inbox of inboxes) assert.equal((await inbox.until(101)).at(-1), 'last');
      assert.deepEqual((await twice.until(201)).slice(200), ['last']);
    });

    it('keeps two clusters with different prefixes apart on one server while nodes of one prefix talk', {
      skip: notShared,
    }, async () => {
      const red = node({ prefix: `${prefix}-red` });
      const redPeer = node({ prefix: `${prefix}-red` });
      const blue = node({ prefix: `${prefix}-blue` });
      const redInbox = new Inbox();
      const redPeerInbox = new Inbox();
      const blueInbox = new Inbox();
      await red.subscribe('shared-topic', redInbox.handler);
      await redPeer.subscribe('shared-topic', redPeerInbox.handler);
      await blue.subscribe('shared-topic', blueInbox.handler);

      await red.publish('shared-topic', 'red says hi');
      // publish resolved: the server has routed it. A message blue publishes afterwards
      // reaches blue's subscription after anything of red's that could have leaked to it.
      await blue.publish('shared-topic', 'blue says hi');
      assert.deepEqual(await blueInbox.until(1), ['blue says hi']);
      assert.deepEqual(await redPeerInbox.until(1), ['red says hi']);
      await red.publish('shared-topic', 'red again');
      assert.deepEqual(await redInbox.until(2), ['red says hi', 'red again']);
      assert.deepEqual(await redPeerInbox.until(2), ['red says hi', 'red again']);
      await blue.publish('shared-topic', 'blue again');
      assert.deepEqual(await blueInbox.until(2), ['blue says hi', 'blue again']);
    });

    it('keeps topics apart that differ only in punctuation, wildcards, spaces or non-ASCII characters', async () => {
      const broker = node();
      const topics = ['a.b', 'a_b', 'a b', 'a-b', 'a:b', 'a%2Eb', 'a*', 'a>', '*', '>', 'ä', 'a', 'A'];
      const inboxes = new Map(topics.map((topic) => [topic, new Inbox()]));
      for (const [topic, inbox] of inboxes) await broker.subscribe(topic, inbox.handler);
      for (const topic of topics) await broker.publish(topic, topic);
      for (const [topic, inbox] of inboxes) assert.deepEqual(await inbox.until(1), [topic]);
      for (const topic of topics) await broker.publish(topic, 'end');
      for (const [topic, inbox] of inboxes) assert.deepEqual(await inbox.until(2), [topic, 'end'], `topic ${topic}`);
    });

    it('delivers payloads with newlines, unicode, control characters and 64 KiB unchanged', async () => {
      const broker = node();
      const publisher = peerOf(broker);
      const inbox = new Inbox();
      await broker.subscribe('payloads', inbox.handler);
      const payloads = [
        'line one\nline two\r\nline three\n',
        'héllo wörld — 你好 👋🏽 ∑ عربى',
        '',
        '{"m":["a"],"c":"c1"}\n{"type":"message","text":"quotes \\" and \\\\ backslashes"}',
        '\u0000\u0001\t\u001b[31m\u007f',
        `${'x'.repeat(64 * 1024)}é`,
      ];
      for (const payload of payloads) await publisher.publish('payloads', payload);
      assert.deepEqual(await inbox.until(payloads.length), payloads);
    });

    it('recovers when its server restarts: ping fails and publish is refused while it is down, then a publication reaches the existing subscription', {
      skip: target.startServer ? false : 'no server process to restart for this broker',
    }, async () => {
      const server = await target.startServer!();
      try {
        const { logger, entries } = capturingLogger();
        const subscriber = node({ url: server.url, logger });
        const publisher = node({ url: server.url });
        const inbox = new Inbox();
        await subscriber.subscribe('restart', inbox.handler);
        await publisher.publish('restart', 'before');
        assert.deepEqual(await inbox.until(1), ['before']);
        await subscriber.ping();
        await publisher.ping();

        await server.kill();
        await eventually(() => assert.rejects(subscriber.ping()), WAIT_MS, 'subscriber ping failing');
        await eventually(() => assert.rejects(publisher.ping()), WAIT_MS, 'publisher ping failing');
        await eventually(() => assert.rejects(publisher.publish('restart', 'while down')), WAIT_MS, 'publish refused');

        await server.start();
        await eventually(() => subscriber.ping(), 3 * WAIT_MS, 'subscriber ping succeeding again');
        await eventually(() => publisher.ping(), 3 * WAIT_MS, 'publisher ping succeeding again');
        await publisher.publish('restart', 'after');
        assert.deepEqual(await inbox.until(2), ['before', 'after']);
        await subscriber.publish('restart', 'own after');
        assert.deepEqual(await inbox.until(3), ['before', 'after', 'own after']);

        const said = entries.map((e) => e.msg);
        assert.ok(said.includes('broker connection lost'), `logged: ${said.join(' | ')}`);
        assert.ok(said.includes('broker reconnected'), `logged: ${said.join(' | ')}`);
      } finally {
        await Promise.all(opened.map((broker) => broker.close()));
        opened = [];
        await server.stop();
      }
    });

    it('reports its status: ready once connected, reconnecting while its server is down, ready again once back, closed after close', {
      skip: target.startServer ? false : 'no server process to restart for this broker',
    }, async () => {
      const server = await target.startServer!();
      try {
        const broker = node({ url: server.url });
        const heard: BrokerStatus[] = [];
        broker.onStatus((status) => heard.push(status));
        await broker.subscribe('status', () => {}); // waits for the first connection
        await eventually(() => assert.equal(broker.status(), 'ready'), WAIT_MS, 'ready');
        await server.kill();
        await eventually(() => assert.equal(broker.status(), 'reconnecting'), WAIT_MS, 'reconnecting');
        await server.start();
        await eventually(() => assert.equal(broker.status(), 'ready'), 3 * WAIT_MS, 'ready again');
        await broker.ping();
        await broker.close();
        assert.equal(broker.status(), 'closed');
        // Each change told once, in order (a change back and forth may repeat while it is down).
        assert.equal(heard.at(-1), 'closed');
        assert.equal(heard.at(-2), 'ready');
        assert.ok(heard.indexOf('reconnecting') > heard.indexOf('ready'), heard.join(' → '));
        for (let i = 1; i < heard.length; i++) assert.notEqual(heard[i], heard[i - 1], heard.join(' → '));
      } finally {
        await Promise.all(opened.map((broker) => broker.close()));
        opened = [];
        await server.stop();
      }
    });

    it('reports connecting, then reconnecting after a failed first attempt, when its server is down at the start', {
      skip: target.startServer ? false : 'no server process to stop for this broker',
    }, async () => {
      const server = await target.startServer!();
      try {
        await server.kill();
        const broker = node({ url: server.url });
        assert.notEqual(broker.status(), 'ready');
        await eventually(() => assert.equal(broker.status(), 'reconnecting'), WAIT_MS, 'reconnecting');
        await server.start();
        await eventually(() => assert.equal(broker.status(), 'ready'), 3 * WAIT_MS, 'ready');
      } finally {
        await Promise.all(opened.map((broker) => broker.close()));
        opened = [];
        await server.stop();
      }
    });

    it('is ready from the start and closed after close when it is the in-process broker', {
      skip: target.shared ? 'a networked broker connects first' : false,
    }, async () => {
      const broker = node();
      assert.equal(broker.status(), 'ready');
      const heard: BrokerStatus[] = [];
      broker.onStatus((status) => heard.push(status));
      await broker.close();
      assert.equal(broker.status(), 'closed');
      assert.deepEqual(heard, ['closed']);
    });

    it('waits for a server that is down when the broker starts, and can be closed while still waiting', {
      skip: target.startServer ? false : 'no server process to stop for this broker',
    }, async () => {
      const server = await target.startServer!();
      try {
        await server.kill();
        const broker = node({ url: server.url });
        const inbox = new Inbox();
        const subscribed = broker.subscribe('late', inbox.handler);
        // Waits for the first connection rather than failing (who hears it is not promised:
        // the subscription above may not be in place yet).
        const published = broker.publish('early', 'sent once connected');
        await assert.rejects(broker.ping());

        const abandoned = node({ url: server.url });
        const abandonedSubscribe = abandoned.subscribe('late', () => {});
        await abandoned.close();
        await assert.rejects(abandonedSubscribe);

        await server.start();
        await subscribed;
        await published;
        await broker.publish('late', 'after the first connection');
        assert.deepEqual(await inbox.until(1), ['after the first connection']);
        await broker.ping();
      } finally {
        await Promise.all(opened.map((broker) => broker.close()));
        opened = [];
        await server.stop();
      }
    });

    it('resolves publish only once the server has the message', {
      skip: target.countPublications ? false : 'no server-side count of publications for this broker',
    }, async () => {
      const server = await target.startServer!();
      try {
        const broker = node({ url: server.url });
        await broker.subscribe('counted', () => {}); // waits for the first connection
        const before = await target.countPublications!(server);
        await Promise.all(Array.from({ length: 100 }, (_, i) => broker.publish('counted', `c${i}`)));
        assert.equal((await target.countPublications!(server)) - before, 100);
        await broker.publish('counted', 'one more');
        assert.equal((await target.countPublications!(server)) - before, 101);
      } finally {
        await Promise.all(opened.map((broker) => broker.close()));
        opened = [];
        await server.stop();
      }
    });

    it('rejects publish, subscribe and ping once closed', {
      skip: target.shared ? false : 'the in-process broker holds no connection to close',
    }, async () => {
      const broker = node();
      await broker.subscribe('closed', () => {}); // waits for the first connection
      await broker.ping();
      await broker.close();
      await broker.close(); // closing twice is harmless
      await assert.rejects(broker.publish('closed', 'x'));
      await assert.rejects(broker.subscribe('closed', () => {}));
      await assert.rejects(broker.ping());
    });
  });
}
