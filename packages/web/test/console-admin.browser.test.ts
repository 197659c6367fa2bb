import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { seriousViolations } from './helpers/axe.js';
import { ADMIN_KEY, CHROMIUM, launchChromium, WAIT_MS, WebGatehouse } from './helpers/web-gatehouse.js';

describe('console: short-lived tokens, re-login, admin view; widget in Chinese', {
  skip: existsSync(CHROMIUM) ? false : `no ${CHROMIUM}`,
  timeout: 180_000,
}, () => {
  let server: WebGatehouse;
  let browser: Browser;
  let agent: Page;
  let customer: Page;
  const expect = { timeout: WAIT_MS };
  const w = (selector: string) => customer.locator(`[data-gatehouse-widget] ${selector}`);

  before(async () => {
    // Tokens that expire within seconds: the widget refreshes and the console asks to log in again.
    server = await WebGatehouse.start({
      tokens: { ttl: { agent: '12s', customer: '8s' }, expiringNotice: '6s' },
    });
    await server.services.auth.createAccount({
      kind: 'agent',
      username: 'alice',
      password: 'agent-password-1',
      name: 'Alice',
    });
    browser = await launchChromium();
    agent = await (await browser.newContext({ locale: 'en-US' })).newPage();
    customer = await (await browser.newContext({ locale: 'zh-CN' })).newPage();
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('the widget speaks Chinese by navigator.language and keeps its conversation across refresh-token rotations and a reload', async () => {
    await customer.goto(`${server.url}/demo/`);
    // Keyboard: Tab reaches the bubble, Enter opens, Escape closes and gives the focus back.
    await w('.gh-bubble').waitFor(expect);
    for (let i = 0; i < 5 && !(await w('.gh-bubble').evaluate((el) => el.matches(':focus'))); i++)
      await customer.keyboard.press('Tab');
    assert.equal(await w('.gh-bubble').getAttribute('aria-label'), '联系我们');
    await customer.keyboard.press('Enter');
    await w('#gh-name').waitFor(expect);
    assert.ok(await w('#gh-name').evaluate((el) => el.matches(':focus')), 'the focus moved into the panel');
    await customer.keyboard.press('Escape');
    await w('.gh-panel').waitFor({ state: 'detached', ...expect });
    assert.ok(await w('.gh-bubble').evaluate((el) => el.matches(':focus')));
    await customer.keyboard.press('Enter');
    assert.equal(await w('.gh-start').textContent(), '开始聊天');
    await w('.gh-start').click();
    await w('.gh-status[data-status="connected"]').waitFor(expect);
    assert.equal(await w('.gh-status [role="status"]').textContent(), '已连接');
    await w('.gh-input').fill('你好');
    await w('.gh-input').press('Enter');
    await w('.gh-waiting').waitFor(expect);
    assert.equal(await w('.gh-waiting').textContent(), '正在等待客服…');
    const key = await customer.evaluate(() => Object.keys(localStorage).find((k) => k.startsWith('gatehouse.widget:')));
    const refreshTokens = () =>
      customer.evaluate((k) => JSON.parse(localStorage.getItem(k as string) ?? '{}').refreshToken as string, key);
    const first = await refreshTokens();
    // token_expiring comes 2 s after each connect or refresh: the pair rotates, the socket stays.
    await customer.waitForFunction(
      ([k, before]) => JSON.parse(localStorage.getItem(k as string) ?? '{}').refreshToken !== before,
      [key, first],
      expect,
    );
    await customer.reload();
    await w('.gh-bubble').click();
    await w('.gh-status[data-status="connected"]').waitFor(expect);
    await w('.gh-mark.gh-stored').first().waitFor(expect);
    assert.deepEqual(await customer.locator('[data-gatehouse-widget] .gh-text').allTextContents(), ['你好']);
    assert.notEqual(await refreshTokens(), first);
  });

  it('an agent token about to expire asks to log in again; after the re-login the console keeps working', async () => {
    await agent.goto(`${server.url}/console/`);
    await agent.getByLabel('Username').fill('alice');
    await agent.getByLabel('Password').fill('agent-password-1');
    await agent.getByRole('button', { name: 'Log in' }).click();
    await agent.locator('.gh-status[data-status="connected"]').waitFor(expect);
    await agent.locator('.queue-item', { hasText: '你好' }).waitFor(expect);
    const dialog = agent.getByRole('dialog', { name: 'Log in again' });
    await dialog.waitFor(expect);
    assert.match(String(await dialog.locator('.notice').textContent()), /expires soon/);
    assert.equal(await dialog.getByLabel('Username').inputValue(), 'alice');
    // Not answered: the token expires, the server closes 4401, the dialog now says so.
    await dialog.locator('.notice', { hasText: 'has expired' }).waitFor({ timeout: 20_000 });
    await dialog.getByLabel('Password').fill('agent-password-1');
    await dialog.getByRole('button', { name: 'Log in again' }).click();
    await dialog.waitFor({ state: 'hidden', ...expect });
    await agent.locator('.gh-status[data-status="connected"]').waitFor(expect);
    // The new token works for REST and the socket: claim, and the customer sees it.
    await agent.locator('.queue-item .claim').first().click();
    await agent.locator('.conv-head h2').waitFor(expect);
    await w('.gh-joined').waitFor(expect);
    assert.equal(await w('.gh-joined').textContent(), 'Alice 已加入');
    assert.deepEqual(await seriousViolations(customer), [], 'the Chinese widget');
  });

  it('admin view: a wrong key is refused; connections across nodes, kick, agents, app key shown once', async () => {
    await agent.getByRole('button', { name: 'Admin' }).click();
    await agent.getByLabel('Admin key').fill('wrong-key');
    await agent.getByRole('button', { name: 'Open admin' }).click();
    await agent.getByRole('alert').filter({ hasText: 'The admin key was refused.' }).waitFor(expect);
    await agent.getByLabel('Admin key').fill(ADMIN_KEY);
    await agent.getByRole('button', { name: 'Open admin' }).click();
    const row = agent.locator('table.connections tr', { hasText: 'customer' }).first();
    await row.waitFor(expect);

    await row.getByRole('button', { name: /^Kick/ }).click();
    await w('.gh-status[data-status="kicked"]').waitFor(expect);
    assert.equal(await w('.gh-status [role="status"]').textContent(), '已被管理员断开');

    await agent.locator('#agent-username').fill('bob');
    await agent.locator('#agent-password').fill('agent-password-2');
    await agent.locator('#agent-name').fill('Bob');
    await agent.getByRole('button', { name: 'Create agent' }).click();
    await agent.getByRole('status').filter({ hasText: 'Agent Bob created.' }).waitFor(expect);
    const login = await fetch(`${server.url}/api/v1/public/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'bob', password: 'agent-password-2' }),
    });
    assert.equal(login.status, 200);

    await agent.locator('#key-name').fill('shop backend');
    await agent.getByRole('button', { name: 'Create app key' }).click();
    const shown = String(await agent.locator('.new-key code').textContent({ timeout: WAIT_MS }));
    assert.match(shown, /^gak_/);
    const res = await fetch(`${server.url}/openapi/v1/user/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-app-key': shown },
      body: JSON.stringify({ id: 'u1', nickname: 'U1', device: 'im_web' }),
    });
    assert.equal(res.status, 200);
    assert.ok(await agent.locator('.app-keys li', { hasText: 'shop backend' }).count());
    // The stats are there and the key is nowhere else on the page.
    await agent.locator('.stats').waitFor(expect);
    assert.equal((await agent.content()).split(shown).length - 1, 1);
    assert.deepEqual(await seriousViolations(agent), [], 'the admin view');
  });
});
