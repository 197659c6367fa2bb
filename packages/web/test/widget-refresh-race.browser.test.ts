import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { recordCloses } from './helpers/close-codes.js';
import { CHROMIUM, launchChromium, WAIT_MS, WebGatehouse } from './helpers/web-gatehouse.js';

const REFRESH_ROUTE = '**/api/v1/customers/*/token';

interface Stored {
  customerId: string;
  token: string;
  refreshToken: string;
  expiresAt: number;
  sessionId: string;
}

/** A customer page whose WebSocket closes are recorded. */
async function customerPage(browser: Browser): Promise<{ page: Page; closes: string[] }> {
  const context = await browser.newContext({ locale: 'en-US' });
  const closes = await recordCloses(context);
  return { page: await context.newPage(), closes };
}

/**
 * Starts a chat with one stored message, then loses a refresh answer to a reload: the stored
 * access token is made stale so the next load refreshes at once; that refresh reaches the server
 * (which rotates) but its answer never reaches the page, which is reloaded meanwhile. Returns the
 * credentials before the race and the pair the server issued and the page never saw.
 */
async function loseARefreshToAReload(server: WebGatehouse, page: Page) {
  const w = (s: string) => page.locator(`[data-gatehouse-widget] ${s}`);
  await page.goto(`${server.url}/demo/`);
  await w('.gh-bubble').click();
  await w('.gh-start').click();
  await w('.gh-status[data-status="connected"]').waitFor({ timeout: WAIT_MS });
  await w('.gh-input').fill('before the race');
  await w('.gh-input').press('Enter');
  await w('.gh-mark.gh-stored').waitFor({ timeout: WAIT_MS });
  const key = await page.evaluate(() => Object.keys(localStorage).find((k) => k.startsWith('gatehouse.widget:')));
  assert.ok(key);
  const read = () => page.evaluate((k) => JSON.parse(localStorage.getItem(k) ?? 'null') as Stored | null, key);
  const before = (await read()) as Stored;
  await page.evaluate(([k, stored]) => localStorage.setItem(k, JSON.stringify({ ...stored, expiresAt: 0 })), [
    key,
    before,
  ] as const);

  let rotated!: (pair: { status: number; refreshToken: string }) => void;
  const lostAnswer = new Promise<{ status: number; refreshToken: string }>((resolve) => {
    rotated = resolve;
  });
  // The first refresh reaches the server (which rotates) but its answer never reaches the page:
  // the request stays paused until the reload cancels it. Later ones pass. The route stays in
  // place: removing it would release the paused request to the server (a second presentation).
  let held = false;
  await page.route(REFRESH_ROUTE, async (route) => {
    if (held) return route.continue();
    held = true;
    const response = await route.fetch();
    rotated({ status: response.status(), refreshToken: (await response.json()).refreshToken });
  });
  await page.reload();
  const lost = await lostAnswer;
  assert.equal(lost.status, 200, 'the server rotated the refresh token');
  assert.equal((await read())?.refreshToken, before.refreshToken, 'the page never stored the new pair');
  // The tab goes away mid-refresh; the next load presents the old refresh token.
  await page.reload();
  return { before, lost, read, w };
}

describe('widget: a refresh answer lost to a reload (rotated refresh tokens)', {
  skip: existsSync(CHROMIUM) ? false : `no ${CHROMIUM}`,
  timeout: 120_000,
}, () => {
  let browser: Browser;
  before(async () => {
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
  });

  describe('with the grace period', () => {
    let server: WebGatehouse;
    before(async () => {
      // 60 s, the longest allowed: the window bounds a slow machine's reload, it is not what is measured.
      server = await WebGatehouse.start({ auth: { refreshReuseGrace: '60s' } });
    });
    after(() => server?.close());

    it('the reloaded page continues the same conversation with its history, and nothing is closed with 44xx', async () => {
      const { page, closes } = await customerPage(browser);
      const { before, lost, read, w } = await loseARefreshToAReload(server, page);
      await w('.gh-bubble').click();
      await w('.gh-status[data-status="connected"]').waitFor({ timeout: WAIT_MS });
      await w('.gh-mark.gh-stored').first().waitFor({ timeout: WAIT_MS });
      assert.deepEqual(await w('.gh-text').allTextContents(), ['before the race']);
      const after = (await read()) as Stored;
      assert.equal(after.customerId, before.customerId);
      assert.equal(after.sessionId, before.sessionId, 'the same support session');
      assert.notEqual(after.refreshToken, before.refreshToken);
      assert.notEqual(after.refreshToken, lost.refreshToken, 'a new pair, not the lost one');
      // The conversation goes on: a new message lands in the same session, beside the old one.
      await w('.gh-input').fill('after the race');
      await w('.gh-input').press('Enter');
      await w('.gh-mark.gh-stored').nth(1).waitFor({ timeout: WAIT_MS });
      await page.reload();
      await w('.gh-bubble').click();
      await w('.gh-text').nth(1).waitFor({ timeout: WAIT_MS });
      assert.deepEqual(await w('.gh-text').allTextContents(), ['before the race', 'after the race']);
      assert.deepEqual(
        closes.filter((close) => Number.parseInt(close, 10) >= 4000),
        [],
        'no socket was revoked, kicked or refused',
      );
      await page.context().close();
    });
  });

  describe('with auth.refreshReuseGrace 0 (the control: the race is real)', () => {
    let server: WebGatehouse;
    before(async () => {
      server = await WebGatehouse.start({ auth: { refreshReuseGrace: 0 } });
    });
    after(() => server?.close());

    it('the old refresh token counts as reuse: the session is revoked and the widget starts afresh', async () => {
      const { page } = await customerPage(browser);
      const { read, w } = await loseARefreshToAReload(server, page);
      await w('.gh-bubble').click();
      await w('.gh-start').waitFor({ timeout: WAIT_MS });
      assert.equal(await read(), null, 'the dead credentials were dropped');
      assert.equal(await w('.gh-text').count(), 0);
      await page.context().close();
    });
  });
});
