import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Browser, Locator, Page } from 'playwright-core';
import { seriousViolations } from './helpers/axe.js';
import { recordCloses, waitForClose } from './helpers/close-codes.js';
import { ADMIN_KEY, CHROMIUM, launchChromium, WAIT_MS, WebGatehouse } from './helpers/web-gatehouse.js';

const isFocused = (locator: Locator) => locator.evaluate((el) => el === document.activeElement);

describe('console admin view: revoke and block, with their effect on the target', {
  skip: existsSync(CHROMIUM) ? false : `no ${CHROMIUM}`,
  timeout: 180_000,
}, () => {
  let server: WebGatehouse;
  let browser: Browser;
  let operator: Page;
  let customer: Page;
  let bob: Page;
  let customerCloses: string[];
  let bobCloses: string[];
  const expect = { timeout: WAIT_MS };
  const w = (selector: string) => customer.locator(`[data-gatehouse-widget] ${selector}`);
  const doneMessage = () => operator.locator('.admin p.done[role="status"]');

  before(async () => {
    server = await WebGatehouse.start();
    await server.services.auth.createAccount({
      kind: 'agent',
      username: 'bob',
      password: 'agent-password-2',
      name: 'Bob',
    });
    browser = await launchChromium();
    operator = await (await browser.newContext({ locale: 'en-US' })).newPage();
    const customerContext = await browser.newContext({ locale: 'en-US' });
    customerCloses = await recordCloses(customerContext);
    customer = await customerContext.newPage();
    const bobContext = await browser.newContext({ locale: 'en-US' });
    bobCloses = await recordCloses(bobContext);
    bob = await bobContext.newPage();

    await customer.goto(`${server.url}/demo/`);
    await w('.gh-bubble').click();
    await w('#gh-name').fill('Carol');
    await w('.gh-start').click();
    await w('.gh-status[data-status="connected"]').waitFor(expect);
    await w('.gh-input').fill('hello');
    await w('.gh-input').press('Enter');
    await w('.gh-mark.gh-stored').waitFor(expect);

    await bob.goto(`${server.url}/console/`);
    await bob.getByLabel('Username').fill('bob');
    await bob.getByLabel('Password').fill('agent-password-2');
    await bob.getByRole('button', { name: 'Log in' }).click();
    await bob.locator('.gh-status[data-status="connected"]').waitFor(expect);

    // The operator opens the admin view with the keyboard alone.
    await operator.goto(`${server.url}/console/`);
    await operator.getByRole('button', { name: 'Admin' }).focus();
    await operator.keyboard.press('Enter');
    await operator.getByLabel('Admin key').focus();
    await operator.keyboard.type(ADMIN_KEY);
    await operator.keyboard.press('Enter');
    await operator.locator('table.connections').waitFor(expect);
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it("revoke: Tab from Kick to Revoke, Enter; the customer's socket closes with 4410 REVOKED and its tokens are dead", async () => {
    const customerId = await customer.evaluate(
      () =>
        JSON.parse(
          localStorage.getItem(Object.keys(localStorage).find((k) => k.startsWith('gatehouse.widget:')) ?? '') ?? '{}',
        ).customerId as string,
    );
    await operator.getByRole('button', { name: 'Kick Carol' }).focus();
    await operator.keyboard.press('Tab');
    const revoke = operator.getByRole('button', { name: 'Revoke Carol' });
    assert.ok(await isFocused(revoke), 'Tab moves from Kick to Revoke');
    await operator.keyboard.press('Enter');

    await doneMessage()
      .filter({ hasText: `Done: Revoke ${customerId}` })
      .waitFor(expect);
    await waitForClose(customerCloses, '4410 REVOKED');
    await w('.gh-status[data-status="revoked"]').waitFor(expect);
    assert.equal(await w('.gh-status [role="status"]').textContent(), 'Signed out');
    // The list was reloaded after the action: Carol has no live connection any more.
    await operator.locator('table.connections tr', { hasText: 'Carol' }).waitFor({ state: 'detached', ...expect });
    // Every token of the customer is dead: Retry finds the stored pair refused and offers a new chat.
    await w('.gh-retry').click();
    await w('.gh-start').waitFor(expect);
    assert.equal(
      await customer.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('gatehouse.widget:')).length),
      0,
    );
    const check = await fetch(`${server.url}/api/v1/admin/connections`, { headers: { 'x-admin-key': ADMIN_KEY } });
    const { connections } = (await check.json()) as { connections: { principal: { id: string } | null }[] };
    assert.equal(connections.filter((c) => c.principal?.id === customerId).length, 0);
  });

  it("block: Space on Block; the agent's socket closes with 4410 BLOCKED, its console says so, and it cannot log in again", async () => {
    await operator.getByRole('button', { name: 'Refresh' }).click();
    const block = operator.getByRole('button', { name: 'Block Bob' });
    await block.focus();
    await operator.keyboard.press('Space');

    await doneMessage().filter({ hasText: 'Done: Block bob' }).waitFor(expect);
    await waitForClose(bobCloses, '4410 BLOCKED');
    await bob.locator('.gh-status[data-status="blocked"]').waitFor(expect);
    assert.equal(await bob.locator('.gh-status [role="status"]').textContent(), 'This account is blocked');
    await operator.locator('table.connections tr', { hasText: 'Bob' }).waitFor({ state: 'detached', ...expect });

    // Logging in again is refused, and the console shows why.
    await bob.getByRole('button', { name: 'Log out' }).click();
    await bob.getByLabel('Username').fill('bob');
    await bob.getByLabel('Password').fill('agent-password-2');
    await bob.getByRole('button', { name: 'Log in' }).click();
    const refused = bob.getByRole('alert').filter({ hasText: 'Login failed' });
    await refused.waitFor(expect);
    assert.equal(await refused.textContent(), 'Login failed: This account is blocked');
    assert.equal(await bob.locator('.gh-status').count(), 0, 'no connection was opened');
    const login = await fetch(`${server.url}/api/v1/public/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'bob', password: 'agent-password-2' }),
    });
    assert.equal(login.status, 403);
    assert.deepEqual(await seriousViolations(operator), [], 'the admin view after the actions');
  });

  it('unblock by id (a blocked principal has no connection to click on): the agent logs in and connects again', async () => {
    await operator.getByLabel('Principal id to unblock').fill('nobody');
    await operator.keyboard.press('Enter');
    await doneMessage().filter({ hasText: 'Failed:' }).waitFor(expect);
    await operator.getByLabel('Principal id to unblock').fill('bob');
    await operator.keyboard.press('Enter');
    await doneMessage().filter({ hasText: 'Done: Unblock bob' }).waitFor(expect);
    await bob.getByRole('button', { name: 'Log in' }).click();
    await bob.locator('.gh-status[data-status="connected"]').waitFor(expect);
    await operator.getByRole('button', { name: 'Refresh' }).click();
    await operator.getByRole('button', { name: 'Block Bob' }).waitFor(expect);
  });
});
