import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { CHROMIUM, HostPage, launchChromium, WAIT_MS, WebGatehouse } from './helpers/web-gatehouse.js';

/** Embeds the widget on a page of its own origin (another loopback port). */
function site(server: () => WebGatehouse) {
  return new HostPage(
    () => `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title></head>
<body><main><h1>Shop</h1></main><script src="${server().url}/widget.js" data-channel="web" async></script></body></html>`,
  );
}

describe('widget on another origin: server.cors.origins', {
  skip: existsSync(CHROMIUM) ? false : `no ${CHROMIUM}`,
  timeout: 120_000,
}, () => {
  let open: WebGatehouse;
  let closed: WebGatehouse;
  let openSite: HostPage;
  let closedSite: HostPage;
  let browser: Browser;
  const expect = { timeout: WAIT_MS };

  before(async () => {
    // `*` opens the public token routes only: that is all the widget needs.
    open = await WebGatehouse.start({ server: { cors: { origins: ['*'] } } });
    closed = await WebGatehouse.start();
    openSite = site(() => open);
    closedSite = site(() => closed);
    await openSite.listen();
    await closedSite.listen();
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await openSite?.close();
    await closedSite?.close();
    await open?.close();
    await closed?.close();
  });

  it('with `*` the widget starts a chat and its message is stored', async () => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(openSite.url);
    const w = (s: string) => page.locator(`[data-gatehouse-widget] ${s}`);
    await w('.gh-bubble').click();
    await w('.gh-start').click();
    await w('.gh-status[data-status="connected"]').waitFor(expect);
    await w('.gh-input').fill('hello from anywhere');
    await w('.gh-input').press('Enter');
    await w('.gh-mark.gh-stored').waitFor(expect);
  });

  it('without a CORS origin the widget says it could not start, instead of failing silently', async () => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(closedSite.url);
    const w = (s: string) => page.locator(`[data-gatehouse-widget] ${s}`);
    await w('.gh-bubble').click();
    await w('.gh-start').click();
    await w('.gh-error').waitFor(expect);
    assert.match(String(await w('.gh-error').textContent()), /^Could not start the chat/);
  });
});
