import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { Gatehouse } from '../src/app.js';
import { type ConfigInput, loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { eventually, uniquePrefix } from './helpers/broker-conformance.js';
import { adminQuery, createTestDatabase, POSTGRES_SKIP, type TestDatabase } from './helpers/postgres.js';
import { WAIT_MS } from './helpers/ws-client.js';

/*
 * A start that fails after the store opened (here: the TLS files cannot be read, which is
 * found last, when the HTTP server is made) must close what it opened: the PostgreSQL pool,
 * the broker connections, the rate-limit client and the cluster heartbeat (issue 7, item 15).
 */

const REDIS_URL = process.env.GATEHOUSE_TEST_REDIS_URL ?? '';
const NATS_URL = process.env.GATEHOUSE_TEST_NATS_URL ?? '';
/** The compiled app next to this compiled test (dist/test → dist/src/app.js). */
const APP = pathToFileURL(join(import.meta.dirname, '..', 'src', 'app.js')).href;

/** How many connections the PostgreSQL server has for this application name (as a string). */
async function connectionCount(url: string, application: string): Promise<string | undefined> {
  const rows = await adminQuery<{ n: string }>(
    url,
    'SELECT COUNT(*) AS n FROM pg_stat_activity WHERE application_name = $1',
    [application],
  );
  return rows[0]?.n;
}

function failingConfig(storeUrl: string, brokerUrl: string, prefix: string, dataDir: string): ConfigInput {
  return {
    server: {
      host: '127.0.0.1',
      port: 0,
      tlsCert: join(dataDir, 'missing-cert.pem'),
      tlsKey: join(dataDir, 'missing-key.pem'),
    },
    dataDir,
    adminKey: 'test-admin-key',
    store: { url: storeUrl, poolSize: 3 },
    broker: { url: brokerUrl, prefix },
    log: { level: 'silent' },
    demo: { seed: false },
  };
}

describe('a start that fails after the store opened', { skip: POSTGRES_SKIP }, () => {
  let db: TestDatabase;
  let dir: string;
  before(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-failed-start-'));
  });
  after(async () => {
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('leaves no PostgreSQL connection and no Redis connection open', {
    skip: REDIS_URL ? false : 'GATEHOUSE_TEST_REDIS_URL is not set',
  }, async () => {
    const application = `gh_failed_start_${randomBytes(4).toString('hex')}`;
    const storeUrl = new URL(db.url);
    storeUrl.searchParams.set('application_name', application);
    const prefix = uniquePrefix('failed-start');
    const config = loadConfig({ overrides: failingConfig(storeUrl.toString(), REDIS_URL, prefix, dir) });
    await assert.rejects(Gatehouse.create({ config, logger: createLogger('silent') }), /ENOENT/);

    const connections = async () =>
      (
        await adminQuery<{ n: string }>(
          db.url,
          'SELECT COUNT(*) AS n FROM pg_stat_activity WHERE application_name = $1',
          [application],
        )
      )[0]?.n;
    // A backend ends a moment after its client said goodbye.
    await eventually(async () => assert.equal(await connections(), '0'), WAIT_MS, 'no PostgreSQL connection left');
    const redis = new Redis(REDIS_URL);
    try {
      const clients = ((await redis.client('LIST')) as string)
        .split('\n')
        .filter((line) => line.includes(`name=${prefix}`));
      assert.deepEqual(clients, [], 'no Redis connection left');
    } finally {
      redis.disconnect();
    }
  });

  it('closes its PostgreSQL connections when it cannot listen (the port is taken)', async () => {
    const application = `gh_port_taken_${randomBytes(4).toString('hex')}`;
    const storeUrl = new URL(db.url);
    storeUrl.searchParams.set('application_name', application);
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as AddressInfo;
    try {
      const config = loadConfig({
        overrides: {
          server: { host: '127.0.0.1', port },
          dataDir: dir,
          adminKey: 'test-admin-key',
          store: { url: storeUrl.toString(), poolSize: 3 },
          log: { level: 'silent' },
          demo: { seed: false },
        },
      });
      const gatehouse = await Gatehouse.create({ config, logger: createLogger('silent') });
      assert.ok(Number(await connectionCount(db.url, application)) > 0, 'the started node holds connections');
      await assert.rejects(gatehouse.listen(), /EADDRINUSE/);
      await eventually(
        async () => assert.equal(await connectionCount(db.url, application), '0'),
        WAIT_MS,
        'no PostgreSQL connection left',
      );
    } finally {
      blocker.close();
    }
  });

  for (const broker of [
    { name: 'Redis', url: REDIS_URL },
    { name: 'NATS', url: NATS_URL },
  ])
    it(`lets its process exit by itself (no handle left open) with a ${broker.name} broker`, {
      skip: broker.url ? false : `the ${broker.name} URL is not set`,
    }, async () => {
      const script = join(dir, `start-${broker.name}.mjs`);
      const config = failingConfig(db.url, broker.url, uniquePrefix('failed-start'), dir);
      writeFileSync(
        script,
        `import { Gatehouse } from ${JSON.stringify(APP)};
         import { loadConfig } from ${JSON.stringify(APP.replace(/app\.js$/, 'config.js'))};
         const config = loadConfig({ overrides: ${JSON.stringify(config)} });
         Gatehouse.create({ config }).then(
           () => { console.log('started?'); process.exitCode = 2; },
           (err) => { console.log('failed:', err.code); process.exitCode = 3; },
         );`,
      );
      const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      child.stderr.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      // 'close': the output is read to its end by then.
      const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
      // Generous: the start itself takes a moment on two busy cores.
      const timer = setTimeout(() => child.kill('SIGKILL'), 4 * WAIT_MS);
      const code = await exited;
      clearTimeout(timer);
      assert.equal(code, 3, `the process did not exit by itself after the failed start: ${output}`);
      assert.match(output, /failed: ENOENT/);
    });
});
