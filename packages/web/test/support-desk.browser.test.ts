import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { seriousViolations } from './helpers/axe.js';
import { CHROMIUM, freePort, HostPage, launchChromium, WAIT_MS, WebGatehouse } from './helpers/web-gatehouse.js';

describe('support desk in Chromium: widget on another origin, agent console', {
  skip: existsSync(CHROMIUM) ? false : `no ${CHROMIUM}`,
  timeout: 240_000,
}, () => {
  let server: WebGatehouse;
  let site: HostPage;
  let browser: Browser;
  let customerContext: BrowserContext;
  let customer: Page;
  let alice: Page;
  let bob: Page;
  const cspErrors: string[] = [];

  const expect = { timeout: WAIT_MS };
  /** The widget's elements live in its open shadow root; Playwright's CSS locators pierce it. */
  const w = (selector: string) => customer.locator(`[data-gatehouse-widget] ${selector}`);
  const texts = (page: Page, selector: string) => page.locator(selector).allInnerTexts();
  const waitText = (page: Page, selector: string, text: string) =>
    page.locator(selector, { hasText: text }).first().waitFor(expect);

  async function loginConsole(page: Page, username: string) {
    await page.goto(`${server.url}/console/`);
    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Password').fill('agent-password-1');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('.gh-status[data-status="connected"]').waitFor(expect);
  }

  before(async () => {
    const sitePort = await freePort();
    site = new HostPage(
      () => `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title>
<style>:root{--gh-accent:red} button{background:lime!important} * {font-size: 40px}</style></head>
<body><main><h1>Another origin</h1><p>A customer's site.</p></main>
<script src="${server.url}/widget.js" data-channel="web" data-lang="en" async></script></body></html>`,
    );
    // The widget's page is another origin: the server must list it for CORS.
    server = await WebGatehouse.start({
      server: { host: '127.0.0.1', cors: { origins: [`http://127.0.0.1:${sitePort}`] } },
    });
    await site.listen(sitePort);
    for (const [username, name] of [
      ['alice', 'Alice'],
      ['bob', 'Bob'],
    ] as const)
      await server.services.auth.createAccount({ kind: 'agent', username, password: 'agent-password-1', name });
    browser = await launchChromium();
    customerContext = await browser.newContext();
    customer = await customerContext.newPage();
    alice = await (await browser.newContext()).newPage();
    bob = await (await browser.newContext()).newPage();
    for (const page of [customer, alice, bob])
      page.on('console', (m) => {
        if (/Content Security Policy/i.test(m.text())) cspErrors.push(m.text());
      });
  });

  after(async () => {
    await browser?.close();
    await site?.close();
    await server?.close();
  });

  it('customer writes → queue shows it live → claim (and a second claim is "taken") → joined → both ways', async () => {
    await loginConsole(alice, 'alice');
    await loginConsole(bob, 'bob');

    await customer.goto(site.url);
    // Styles isolated: the host page's rules do not reach into the widget, nothing leaks out.
    await w('.gh-bubble').click();
    assert.notEqual(await w('.gh-bubble').evaluate((el) => getComputedStyle(el).backgroundColor), 'rgb(0, 255, 0)');
    assert.equal(
      await customer.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue('--gh-accent')),
      'red',
    );
    await w('#gh-name').fill('Carol');
    await w('.gh-start').click();
    await w('.gh-status[data-status="connected"]').waitFor(expect);
    await w('.gh-input').fill('Hello, I need help');
    await w('.gh-input').press('Enter');
    await w('.gh-mark.gh-stored').first().waitFor(expect);
    await w('.gh-waiting').waitFor(expect);

    // Live queue on both consoles.
    await waitText(alice, '.queue-item', 'Hello, I need help');
    await waitText(bob, '.queue-item', 'Carol');

    // Bob's claim is held in flight until Alice has claimed: the server answers 409.
    let releaseBob!: () => void;
    const aliceClaimed = new Promise<void>((resolve) => {
      releaseBob = resolve;
    });
    let bobAsked!: () => void;
    const bobRequested = new Promise<void>((resolve) => {
      bobAsked = resolve;
    });
    await bob.route('**/api/v1/sessions/*/claim', async (route) => {
      bobAsked();
      await aliceClaimed;
      await route.continue();
    });
    const bobClick = bob.locator('.queue-item .claim').first().click();
    await bobRequested;
    await alice.locator('.queue-item .claim').first().click();
    await alice.locator('.conv-head h2', { hasText: 'Carol' }).waitFor(expect);
    // Carol is connected: the console knows it from the claim, before any presence change.
    await alice.locator('.presence.online').waitFor(expect);
    await waitText(bob, '.queue-item', 'Taken by Alice');
    releaseBob();
    await bobClick;
    await waitText(bob, '.queue-item .error', 'Taken by Alice');

    await w('.gh-joined').waitFor(expect);
    assert.equal(await w('.gh-joined').textContent(), 'Alice joined');
    await alice.locator('.log .msg', { hasText: 'Hello, I need help' }).waitFor(expect);

    await alice.getByLabel('Reply').fill('Hi Carol, this is Alice');
    await alice.getByLabel('Reply').press('Enter');
    await waitText(customer, '[data-gatehouse-widget] .gh-theirs', 'Hi Carol, this is Alice');
    assert.match(String(await w('.gh-sr').textContent()), /New message from Alice: Hi Carol/);
    await w('.gh-input').fill('Thanks!');
    await w('.gh-send').click();
    await alice.locator('.log .msg', { hasText: 'Thanks!' }).waitFor(expect);
  });

  it('setOffline on the customer while the agent writes: the missed replies appear in order, once', async () => {
    await customerContext.setOffline(true);
    // The dead socket is found by the SDK's ping (10 s of silence, 5 s for the pong).
    await w('.gh-status[data-status="reconnecting"]').waitFor({ timeout: 30_000 });
    for (const text of ['missed one', 'missed two', 'missed three']) {
      await alice.getByLabel('Reply').fill(text);
      await alice.getByLabel('Reply').press('Enter');
      await alice.locator('.log .msg.stored', { hasText: text }).waitFor(expect);
    }
    // Typed while offline: queued in the SDK's outbox, sent once on reconnect.
    await w('.gh-input').fill('typed offline');
    await w('.gh-input').press('Enter');
    await customerContext.setOffline(false);
    await w('.gh-status[data-status="connected"]').waitFor(expect);
    await waitText(customer, '[data-gatehouse-widget] .gh-msg', 'missed three');
    await alice.locator('.log .msg', { hasText: 'typed offline' }).waitFor(expect);
    const shown = await texts(customer, '[data-gatehouse-widget] .gh-text');
    assert.deepEqual(shown, [
      'Hello, I need help',
      'Hi Carol, this is Alice',
      'Thanks!',
      'missed one',
      'missed two',
      'missed three',
      'typed offline',
    ]);
  });

  it('a reload of the widget keeps the conversation (stored token pair, same session)', async () => {
    await customer.reload();
    await w('.gh-bubble').click();
    await w('.gh-status[data-status="connected"]').waitFor(expect);
    await waitText(customer, '[data-gatehouse-widget] .gh-msg', 'typed offline');
    assert.equal((await texts(customer, '[data-gatehouse-widget] .gh-text')).length, 7);
    await w('.gh-joined').waitFor(expect);
    // The old socket closed and a new one opened: the agent sees the customer online.
    await alice.locator('.presence.online').waitFor(expect);
  });

  it('server restarted mid-conversation: both pages show reconnecting, recover, every message once', async () => {
    await server.stop();
    await w('.gh-status[data-status="reconnecting"]').waitFor(expect);
    await alice.locator('.gh-status[data-status="reconnecting"]').waitFor(expect);
    assert.match(String(await w('.gh-status').textContent()), /Reconnect/);
    await server.start();
    await w('.gh-status[data-status="connected"]').waitFor({ timeout: 30_000 });
    await alice.locator('.gh-status[data-status="connected"]').waitFor({ timeout: 30_000 });
    await alice.getByLabel('Reply').fill('after the restart');
    await alice.getByLabel('Reply').press('Enter');
    await waitText(customer, '[data-gatehouse-widget] .gh-msg', 'after the restart');
    await w('.gh-input').fill('me too');
    await w('.gh-input').press('Enter');
    await alice.locator('.log .msg', { hasText: 'me too' }).waitFor(expect);
    const expected = [
      'Hello, I need help',
      'Hi Carol, this is Alice',
      'Thanks!',
      'missed one',
      'missed two',
      'missed three',
      'typed offline',
      'after the restart',
      'me too',
    ];
    await w('.gh-mark.gh-stored').nth(3).waitFor(expect);
    assert.deepEqual(await texts(customer, '[data-gatehouse-widget] .gh-text'), expected);
    assert.deepEqual(await texts(alice, '.log .msg .text'), expected);
  });

  it('axe-core: no serious or critical violations in the widget page and the console', async () => {
    assert.deepEqual(await seriousViolations(customer), []);
    assert.deepEqual(await seriousViolations(alice), []);
  });

  it('the agent closes: the customer sees "closed — start a new one", and can', async () => {
    await alice.getByRole('button', { name: 'Close conversation' }).click();
    await alice.locator('.closed-notice').waitFor(expect);
    await w('.gh-closed').waitFor(expect);
    assert.match(String(await w('.gh-closed').textContent()), /Conversation closed — Start a new one/);
    await w('.gh-closed button').click();
    await w('.gh-input').fill('a new question');
    await w('.gh-input').press('Enter');
    await w('.gh-mark.gh-stored')
      .first()
      .waitFor(expect)
      .catch(async (err) => {
        throw new Error(`${err}\n${await w('.gh-panel').textContent()}`);
      });
    await waitText(alice, '.queue-item', 'a new question');
    assert.deepEqual(await texts(customer, '[data-gatehouse-widget] .gh-text'), ['a new question']);
    assert.deepEqual(cspErrors, []);
  });
});
