import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import WebSocket from 'ws';
import { bundle } from '../scripts/bundle.js';
import { GatehouseClient } from '../src/index.js';
import { PageServer } from './helpers/page-server.js';
import { record } from './helpers/recorder.js';
import { createAppKey, TestGatehouse, until, userToken, WAIT_MS } from './helpers/server.js';

const CHROMIUM = '/usr/bin/chromium';

/** The page: the bundled SDK from a `<script type=module>`, a few globals the test reads. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>sdk</title>
<script type="module">
  import { GatehouseClient } from '/gatehouse-client.js';
  const state = { statuses: [], messages: [], reconnecting: [], errors: [] };
  const client = new GatehouseClient({
    url: location.origin.replace(/^http/, 'ws') + '/ws',
    getToken: () => window.getToken(),
    pingInterval: 500,
    pongTimeout: 500,
    backoff: { initial: 200, max: 1000, spread: 100, long: 1000 },
  });
  client.on('status', (s) => state.statuses.push(s));
  client.on('reconnecting', (r) => state.reconnecting.push(r));
  client.on('message', (m) => { state.messages.push(m.text); });
  client.on('error', (e) => state.errors.push(e.code));
  window.state = state;
  window.client = client;
  window.sendTo = (to, text) => client.send({ to }, text).then((a) => a.seq);
  client.connect().then(() => { window.connected = true; });
</script>`;

/** A page that authenticates with the bearer subprotocol: a refused handshake is a bare 1006 there. */
const SUBPROTOCOL_PAGE = `<!doctype html><meta charset="utf-8"><title>sdk</title>
<script type="module">
  import { GatehouseClient } from '/gatehouse-client.js';
  const state = { statuses: [], reconnecting: [], tokens: 0 };
  const client = new GatehouseClient({
    url: location.origin.replace(/^http/, 'ws') + '/ws',
    auth: 'subprotocol',
    getToken: () => { state.tokens++; return window.getCarolToken(); },
    backoff: { initial: 200, max: 1000, spread: 100, long: 1000 },
  });
  client.on('status', (s) => state.statuses.push(s));
  client.on('reconnecting', (r) => state.reconnecting.push({ code: r.code, reason: r.reason }));
  window.state = state;
  client.connect().then(() => { window.connected = true; });
</script>`;

describe('GatehouseClient in Chromium', {
  skip: existsSync(CHROMIUM) ? false : `no ${CHROMIUM}`,
  timeout: 120_000,
}, () => {
  let server: TestGatehouse;
  let appKey: string;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let bob: GatehouseClient;
  let code: string;
  let pages: PageServer;

  before(async () => {
    code = readFileSync((await bundle()).path, 'utf8');
    server = await TestGatehouse.start();
    appKey = await createAppKey(server);
    browser = await chromium.launch({
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
    context = await browser.newContext();
    // One loopback origin for the page, the bundle, REST and WebSockets (as behind a proxy).
    pages = new PageServer(
      {
        '/app.html': { type: 'text/html', body: () => PAGE },
        '/gatehouse-client.js': { type: 'text/javascript', body: () => code },
        '/subprotocol.html': { type: 'text/html', body: () => SUBPROTOCOL_PAGE },
      },
      server.port,
    );
    await pages.listen();
    page = await context.newPage();
    await page.exposeFunction('getToken', () => userToken(server, appKey, 'b-alice'));
    await context.exposeFunction('getCarolToken', () => userToken(server, appKey, 'b-carol'));
    bob = new GatehouseClient({
      WebSocket,
      url: `${server.wsUrl}/ws`,
      getToken: () => userToken(server, appKey, 'b-bob'),
      backoff: { initial: 100, max: 500, spread: 100, long: 500 },
    });
  });

  after(async () => {
    bob?.close();
    await browser?.close();
    await pages?.close();
    await server?.close();
  });

  const pageState = () =>
    page.evaluate(() => (window as any).state) as Promise<{
      statuses: string[];
      messages: string[];
      reconnecting: { code: number; reason: string }[];
      errors: string[];
    }>;
  const pageUntil = (fn: string) => page.waitForFunction(fn, undefined, { timeout: WAIT_MS });

  it('holds a conversation with a Node client (ticket auth, no token in the URL)', async () => {
    const bobRec = record(bob);
    await bob.connect();
    await page.goto(`${pages.url}/app.html`);
    await pageUntil('window.connected === true');
    const seq = await page.evaluate(() => (window as any).sendTo('b-bob', 'hi from the browser'));
    assert.equal(seq, 1);
    await until(() => bobRec.messages.length === 1, 'bob gets it');
    const conversation = bobRec.messages[0]?.conversation_id as string;
    await bob.send(conversation, 'hi from node');
    await pageUntil(`window.state.messages.includes('hi from node')`);
  });

  it('recovers from context.setOffline(true/false): reconnects and gets what it missed, once', async () => {
    await context.setOffline(true);
    await pageUntil(`window.state.statuses.at(-1) === 'reconnecting'`);
    const conversation = (await bob.conversations()).conversations[0]?.id as string;
    await bob.send(conversation, 'sent while the browser was offline');
    const sending = page.evaluate(() => (window as any).sendTo('b-bob', 'queued while offline'));
    await context.setOffline(false);
    await pageUntil(`window.state.statuses.at(-1) === 'connected'`);
    assert.equal(await sending, 4);
    await pageUntil(`window.state.messages.includes('sent while the browser was offline')`);
    const state = await pageState();
    assert.deepEqual(state.messages, ['hi from node', 'sent while the browser was offline']);
  });

  it('recovers from a server restart: reconnecting → connected, outbox drained, nothing duplicated', async () => {
    const bobRec = record(bob);
    await server.stop();
    await pageUntil(`window.state.statuses.at(-1) === 'reconnecting'`);
    const sending = page.evaluate(() => (window as any).sendTo('b-bob', 'queued during the restart'));
    await server.start();
    await pageUntil(`window.state.statuses.at(-1) === 'connected'`);
    assert.equal(await sending, 5);
    await until(() => bob.status === 'connected', 'bob back');
    await until(() => bobRec.messages.some((m) => m.text === 'queued during the restart'), 'bob gets it');
    const page1 = await bob.history((await bob.conversations()).conversations[0]?.id as string);
    assert.deepEqual(
      page1.messages.map((m) => m.text),
      [
        'hi from the browser',
        'hi from node',
        'sent while the browser was offline',
        'queued while offline',
        'queued during the restart',
      ],
    );
    const state = await pageState();
    assert.ok(state.reconnecting.some((r) => r.code === 1001));
  });

  it('asks validate-token after a bare 1006 and calls getToken once when the token expired', async () => {
    const carol = await context.newPage();
    try {
      await carol.goto(`${pages.url}/subprotocol.html`);
      await carol.waitForFunction('window.connected === true', undefined, { timeout: WAIT_MS });
      await server.stop();
      await carol.waitForFunction(`window.state.statuses.at(-1) === 'reconnecting'`, undefined, { timeout: WAIT_MS });
      // While the server is down, the token's 30 days pass (the server's clock is a ManualClock).
      server.clock.advance(31 * 24 * 3600_000);
      await server.start();
      await carol.waitForFunction(`window.state.statuses.at(-1) === 'connected'`, undefined, { timeout: WAIT_MS });
      const state = (await carol.evaluate(() => (window as any).state)) as {
        tokens: number;
        reconnecting: { code: number; reason: string }[];
      };
      assert.equal(state.tokens, 2, 'one getToken at start, one after the refusal');
      assert.ok(
        state.reconnecting.some((r) => r.code === 4401 && r.reason === 'TOKEN_EXPIRED'),
        JSON.stringify(state.reconnecting),
      );
    } finally {
      await carol.close();
    }
  });
});
