import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { GatehouseClient } from '@gatehouse/client';
import type { Browser, Page } from 'playwright-core';
import WebSocket from 'ws';
import { CHROMIUM, launchChromium, WAIT_MS, WebGatehouse } from './helpers/web-gatehouse.js';

/** A customer on the SDK in Node: the other side of the console, without a second browser. */
async function nodeCustomer(server: WebGatehouse, name: string) {
  const res = await fetch(`${server.url}/api/v1/public/customer-token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, channel: 'web' }),
  });
  const body = (await res.json()) as { token: string; sessionId: string };
  const client = new GatehouseClient({
    WebSocket,
    url: `${server.url.replace(/^http/, 'ws')}/ws/chat`,
    token: body.token,
  });
  await client.connect();
  return { client, sessionId: body.sessionId };
}

describe('console: history paging and unread counts', {
  skip: existsSync(CHROMIUM) ? false : `no ${CHROMIUM}`,
  timeout: 120_000,
}, () => {
  let server: WebGatehouse;
  let browser: Browser;
  let agent: Page;
  const clients: GatehouseClient[] = [];
  const expect = { timeout: WAIT_MS };

  before(async () => {
    server = await WebGatehouse.start();
    await server.services.auth.createAccount({
      kind: 'agent',
      username: 'alice',
      password: 'agent-password-1',
      name: 'Alice',
    });
    browser = await launchChromium();
    agent = await (await browser.newContext()).newPage();
    await login(agent);
  });

  /** Until the console's device type has acked everything in the conversation (nothing left to replay). */
  async function ackedByAgent(conversationId: string) {
    const res = await fetch(`${server.url}/api/v1/public/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'alice', password: 'agent-password-1', device_type: 'web' }),
    });
    const { token } = (await res.json()) as { token: string };
    const started = Date.now();
    for (;;) {
      const list = await fetch(`${server.url}/api/v1/conversations`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const { conversations } = (await list.json()) as { conversations: { id: string; unread: number }[] };
      if (conversations.find((c) => c.id === conversationId)?.unread === 0) return;
      if (Date.now() - started > WAIT_MS) throw new Error('the console never acked the backlog');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function login(page: Page) {
    await page.goto(`${server.url}/console/`);
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill('agent-password-1');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('.gh-status[data-status="connected"]').waitFor(expect);
  }

  after(async () => {
    for (const c of clients) c.close();
    await browser?.close();
    await server?.close();
  });

  it('a long conversation opens on its latest page; "Load older messages" brings the rest, in order, once', async () => {
    const dan = await nodeCustomer(server, 'Dan');
    clients.push(dan.client);
    for (let i = 1; i <= 35; i++) await dan.client.send(dan.sessionId, `line ${i}`);
    await agent.locator('.queue-item', { hasText: 'Dan' }).locator('.claim').click();
    // The claim delivers the backlog live; a new login (reload: the token was in memory) reads history.
    await agent.locator('.log .msg', { hasText: 'line 35' }).waitFor(expect);
    await ackedByAgent(dan.sessionId);
    await login(agent);
    await agent.locator('.mine-item', { hasText: 'Dan' }).click();
    await agent.locator('.log .msg', { hasText: 'line 35' }).waitFor(expect);
    assert.equal(await agent.locator('.log .msg').count(), 30);
    await agent.getByRole('button', { name: 'Load older messages' }).click();
    await agent.locator('.log .msg', { hasText: 'line 1' }).first().waitFor(expect);
    const lines = await agent.locator('.log .msg .text').allTextContents();
    assert.deepEqual(
      lines,
      Array.from({ length: 35 }, (_, i) => `line ${i + 1}`),
    );
    assert.equal(await agent.getByRole('button', { name: 'Load older messages' }).count(), 0);
  });

  it('messages of a conversation not on screen count as unread until it is opened', async () => {
    const eve = await nodeCustomer(server, 'Eve');
    clients.push(eve.client);
    await eve.client.send(eve.sessionId, 'first from Eve');
    await agent.locator('.queue-item', { hasText: 'Eve' }).locator('.claim').click();
    await agent.locator('.conv-head h2', { hasText: 'Eve' }).waitFor(expect);
    // Back to Dan; Eve writes twice.
    await agent.locator('.mine-item', { hasText: 'Dan' }).click();
    await agent.locator('.conv-head h2', { hasText: 'Dan' }).waitFor(expect);
    await eve.client.send(eve.sessionId, 'are you there?');
    await eve.client.send(eve.sessionId, 'hello?');
    const badge = agent.locator('.mine-item', { hasText: 'Eve' }).locator('.unread');
    await badge.locator('.sr-only', { hasText: '2 unread' }).waitFor({ state: 'attached', ...expect });
    await agent.locator('.mine-item', { hasText: 'Eve' }).click();
    await agent.locator('.log .msg', { hasText: 'hello?' }).waitFor(expect);
    assert.equal(await badge.count(), 0);
  });
});
