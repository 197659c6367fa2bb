import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { bundle } from '../scripts/bundle.js';
import { ClientSet } from './helpers/clients.js';
import { PageServer } from './helpers/page-server.js';
import { record } from './helpers/recorder.js';
import { admin, api, createAppKey, TestGatehouse, until, userToken, WAIT_MS } from './helpers/server.js';

const run = promisify(execFile);
/** The repository root, from packages/client/dist/test. */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const EXAMPLES = join(ROOT, 'examples');
const CHROMIUM = '/usr/bin/chromium';

/** A python3 that has `websockets` (the PATH one first, then Debian's), or null. */
function pythonWithWebsockets(): string | null {
  for (const python of ['python3', '/usr/bin/python3']) {
    const probe = spawnSync(python, ['-c', 'import websockets'], { stdio: 'ignore' });
    if (probe.status === 0) return python;
  }
  return null;
}
const python = pythonWithWebsockets();

describe('examples/', { timeout: 120_000 }, () => {
  let server: TestGatehouse;
  let appKey: string;
  const clients = new ClientSet();
  const user = (id: string) => clients.user(server, appKey, id);

  before(async () => {
    server = await TestGatehouse.start();
    appKey = await createAppKey(server);
  });
  after(async () => {
    clients.closeAll();
    await server.close();
  });

  it('node-bot.mjs answers a message sent with the SDK', async () => {
    const bot = spawn(process.execPath, [join(EXAMPLES, 'node-bot.mjs')], {
      env: { ...process.env, GATEHOUSE_URL: server.url, GATEHOUSE_APP_KEY: appKey, BOT_ID: 'x-bot' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    bot.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    bot.stderr.on('data', (c: Buffer) => {
      out += c.toString();
    });
    try {
      await until(() => out.includes('bot x-bot ready'), `the bot to start; output: ${out}`);
      const alice = user('x-alice');
      const rec = record(alice);
      await alice.connect();
      await alice.send({ to: 'x-bot' }, 'ping');
      await until(() => rec.messages.some((m) => m.text === 'echo: ping'), 'the echo');
      assert.match(out, /< x-alice: ping/);
    } finally {
      bot.kill('SIGTERM');
    }
  });

  it('browser/index.html connects, sends and shows a reply in Chromium', { skip: !existsSync(CHROMIUM) }, async () => {
    const code = readFileSync((await bundle()).path, 'utf8');
    const pages = new PageServer(
      {
        '/': { type: 'text/html', body: () => readFileSync(join(EXAMPLES, 'browser', 'index.html'), 'utf8') },
        '/gatehouse-client.js': { type: 'text/javascript', body: () => code },
        '/token': { type: 'text/plain', body: () => userToken(server, appKey, 'x-page') },
      },
      server.port,
    );
    await pages.listen();
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    try {
      const page = await browser.newPage();
      const peer = user('x-peer');
      const rec = record(peer);
      await peer.connect();
      await page.goto(`${pages.url}/`);
      await page.waitForFunction(() => document.getElementById('status')?.textContent === 'connected', undefined, {
        timeout: WAIT_MS,
      });
      await page.fill('#to', 'x-peer');
      await page.fill('#text', 'hello from the page');
      await page.click('button');
      await until(() => rec.messages.some((m) => m.text === 'hello from the page'), 'the page message');
      await peer.send(rec.messages[0]?.conversation_id as string, 'hello page');
      await page.waitForFunction(() => document.getElementById('log')?.textContent?.includes('hello page'), undefined, {
        timeout: WAIT_MS,
      });
    } finally {
      await browser.close();
      await pages.close();
    }
  });

  it('python/client.py: token on the root endpoint, and in-band login', {
    skip: python ? false : 'python3 with websockets is not installed (Debian: apt-get install python3-websockets)',
  }, async () => {
    const script = join(EXAMPLES, 'python', 'client.py');
    const token = await userToken(server, appKey, 'x-py');
    await userToken(server, appKey, 'x-py-peer');
    const viaToken = await run(python as string, [
      script,
      '--url',
      `${server.wsUrl}/`,
      '--token',
      token,
      '--to',
      'x-py-peer',
    ]);
    assert.match(viaToken.stdout, /whoami x-py user/);
    assert.match(viaToken.stdout, /sent seq 1 in /);
    assert.match(viaToken.stdout, /pong \d+/);
    const created = await api(server, 'POST', '/api/v1/admin/agents', {
      headers: admin(server),
      body: { username: 'x-py-agent', password: 'agent-password-1', name: 'Py Agent' },
    });
    assert.equal(created.status, 201);
    const viaLogin = await run(python as string, [
      script,
      '--url',
      `${server.wsUrl}/`,
      '--username',
      'x-py-agent',
      '--password',
      'agent-password-1',
    ]);
    assert.match(viaLogin.stdout, /logged in as x-py-agent/);
    assert.match(viaLogin.stdout, /whoami x-py-agent agent/);
  });

  it('curl.sh walks the REST side', async () => {
    const alice = user('x-curl');
    await userToken(server, appKey, 'x-curl-peer');
    await alice.connect();
    await alice.send({ to: 'x-curl-peer' }, 'for the history');
    const { stdout } = await run('bash', [join(EXAMPLES, 'curl.sh'), 'x-curl'], {
      env: { ...process.env, GATEHOUSE_URL: server.url, GATEHOUSE_APP_KEY: appKey },
    });
    assert.match(stdout, /"valid":true/);
    assert.match(stdout, /ticket: gtk_/);
    assert.match(stdout, /"messages":\[\{.*"text":"for the history"/);
    assert.match(stdout, /^ok$/m);
  });
});
