import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, POSTGRES_SKIP, type TestDatabase } from './helpers/postgres.js';
import { api, startServer, type TestServer } from './helpers/test-server.js';

const REDIS_URL = process.env.GATEHOUSE_TEST_REDIS_URL ?? '';

async function failLogin(server: TestServer, username: string) {
  return api(server, 'POST', '/api/v1/public/login', { body: { username, password: 'wrong-password' } });
}

/** Two nodes: a login limit of 3 per account, counted wherever the attempts land. */
function sharedLimitTest(nodes: () => [TestServer, TestServer]) {
  return async () => {
    const [one, two] = nodes();
    const account = `victim-${randomBytes(4).toString('hex')}`;
    assert.equal((await failLogin(one, account)).status, 401);
    assert.equal((await failLogin(two, account)).status, 401);
    assert.equal((await failLogin(one, account)).status, 401);
    const limited = await failLogin(two, account);
    assert.equal(limited.status, 429);
    assert.equal(limited.body.error, 'RATE_LIMITED');
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
  };
}

describe('rate limits shared by the nodes through Redis', {
  skip: REDIS_URL ? undefined : 'GATEHOUSE_TEST_REDIS_URL is not set',
}, () => {
  let one: TestServer;
  let two: TestServer;
  before(async () => {
    const broker = { url: REDIS_URL, prefix: `rl-${randomBytes(4).toString('hex')}` };
    const limits = { loginAttemptsPerAccount: 3 };
    one = await startServer({ broker, limits });
    two = await startServer({ broker, limits });
  });
  after(async () => {
    await one?.close();
    await two?.close();
  });

  it(
    'refuses the fourth failed login of an account with 429 even when the attempts went to different nodes',
    sharedLimitTest(() => [one, two]),
  );
});

describe('rate limits shared by the nodes through PostgreSQL', { skip: POSTGRES_SKIP }, () => {
  let database: TestDatabase;
  let one: TestServer;
  let two: TestServer;
  before(async () => {
    database = await createTestDatabase();
    const store = { url: database.url };
    const limits = { loginAttemptsPerAccount: 3 };
    // Started together on a fresh database: both create the rate-limit tables at once, and the
    // one that loses the race on CREATE TABLE IF NOT EXISTS must still start.
    const started = await Promise.allSettled([startServer({ store, limits }), startServer({ store, limits })]);
    [one, two] = started.map((s) => (s.status === 'fulfilled' ? s.value : (undefined as unknown as TestServer))) as [
      TestServer,
      TestServer,
    ];
    // A node that failed to start fails the suite; the one that did is still closed after.
    for (const s of started) if (s.status === 'rejected') throw s.reason;
  });
  after(async () => {
    await one?.close();
    await two?.close();
    await database?.drop();
  });

  it(
    'refuses the fourth failed login of an account with 429 even when the attempts went to different nodes',
    sharedLimitTest(() => [one, two]),
  );
});
