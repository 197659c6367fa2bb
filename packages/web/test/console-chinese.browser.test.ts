import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { seriousViolations } from './helpers/axe.js';
import { ADMIN_KEY, CHROMIUM, launchChromium, WAIT_MS, WebGatehouse } from './helpers/web-gatehouse.js';

/** With GATEHOUSE_SCREENSHOT_DIR set, the test leaves PNGs of each view there (to look at the glyphs). */
const SHOTS = process.env.GATEHOUSE_SCREENSHOT_DIR;
const shot = async (page: Page, name: string) => {
  if (SHOTS) await page.screenshot({ path: join(SHOTS, name) });
};

describe('console in Simplified Chinese', {
  skip: existsSync(CHROMIUM) ? false : `no ${CHROMIUM}`,
  timeout: 180_000,
}, () => {
  let server: WebGatehouse;
  let browser: Browser;
  let agent: Page;
  let customer: Page;
  const expect = { timeout: WAIT_MS };
  const w = (selector: string) => customer.locator(`[data-gatehouse-widget] ${selector}`);
  const text = async (page: Page, selector: string) => (await page.locator(selector).first().textContent())?.trim();

  before(async () => {
    server = await WebGatehouse.start();
    await server.services.auth.createAccount({
      kind: 'agent',
      username: 'lilei',
      password: 'agent-password-1',
      name: '李雷',
    });
    browser = await launchChromium();
    // navigator.language comes from the context's locale.
    agent = await (await browser.newContext({ locale: 'zh-CN', viewport: { width: 1100, height: 640 } })).newPage();
    customer = await (await browser.newContext({ locale: 'zh-CN' })).newPage();
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('login form: labels, button, title and a refusal in Chinese, by navigator.language', async () => {
    await agent.goto(`${server.url}/console/`);
    assert.equal(await agent.evaluate(() => navigator.language), 'zh-CN');
    await agent.getByRole('button', { name: '登录' }).waitFor(expect);
    assert.equal(await agent.evaluate(() => document.documentElement.lang), 'zh-CN');
    assert.equal(await agent.title(), 'Gatehouse 客服控制台');
    assert.equal(await text(agent, 'h1'), 'Gatehouse 客服控制台');
    assert.equal(await text(agent, 'label[for="login-user"]'), '用户名');
    assert.equal(await text(agent, 'label[for="login-password"]'), '密码');
    assert.deepEqual(await agent.locator('nav.tabs button').allTextContents(), ['会话', '管理']);
    assert.match(String(await text(agent, 'label.lang')), /^语言/);
    assert.deepEqual(await seriousViolations(agent), [], 'the Chinese login form');

    await agent.getByLabel('用户名').fill('lilei');
    await agent.getByLabel('密码').fill('wrong-password');
    await agent.getByRole('button', { name: '登录' }).click();
    const refused = agent.getByRole('alert');
    await refused.waitFor(expect);
    assert.equal(await refused.textContent(), '登录失败：用户名或密码错误。');
    await shot(agent, 'console-zh-login.png');
  });

  it('queue: headings, empty states, a waiting customer and the claim button in Chinese', async () => {
    await agent.getByLabel('密码').fill('agent-password-1');
    await agent.getByRole('button', { name: '登录' }).click();
    await agent.locator('.gh-status[data-status="connected"]').waitFor(expect);
    assert.equal(await text(agent, '.gh-status [role="status"]'), '已连接');
    assert.equal(await text(agent, '.me'), '当前登录：李雷 退出');
    assert.match(String(await text(agent, '#queue-h')), /^等待中/);
    assert.equal(await text(agent, '#queue-h + p.empty'), '暂无等待的客户。');
    assert.equal(await text(agent, '#mine-h'), '我的会话');
    assert.equal(await text(agent, '#mine-h + p.empty'), '暂无会话。');
    assert.equal(await text(agent, 'main.conversation p.empty'), '请选择一个会话。');

    await customer.goto(`${server.url}/demo/`);
    await w('.gh-bubble').click();
    await w('#gh-name').fill('王芳');
    await w('.gh-start').click();
    await w('.gh-status[data-status="connected"]').waitFor(expect);
    await w('.gh-input').fill('你好，我想修改收货地址。');
    await w('.gh-input').press('Enter');

    const item = agent.locator('.queue-item', { hasText: '王芳' });
    await item.waitFor(expect);
    assert.equal(await item.locator('.first').textContent(), '你好，我想修改收货地址。');
    assert.equal(await item.locator('.since').textContent(), '已等待 0 分钟');
    assert.equal(await item.locator('.claim').textContent(), '接入');
    assert.deepEqual(await seriousViolations(agent), [], 'the Chinese queue');
    await shot(agent, 'console-zh-queue.png');
  });

  it('conversation view: presence, reply, send and close in Chinese; the reply reaches the Chinese widget', async () => {
    await agent.locator('.queue-item', { hasText: '王芳' }).locator('.claim').click();
    await agent.locator('.conv-head h2', { hasText: '王芳' }).waitFor(expect);
    await agent.locator('.presence.online').waitFor(expect);
    assert.equal(await text(agent, '.presence'), '在线');
    assert.equal(await text(agent, '.close-session'), '结束会话');
    assert.equal(await agent.locator('.compose textarea').getAttribute('aria-label'), '回复');
    assert.equal(await agent.locator('.compose textarea').getAttribute('placeholder'), '回复');
    assert.equal(await text(agent, '.compose button[type="submit"]'), '发送');
    await w('.gh-joined').waitFor(expect);
    assert.equal(await w('.gh-joined').textContent(), '李雷 已加入');

    await agent.getByRole('textbox', { name: '回复' }).fill('您好，请告诉我新的地址。');
    await agent.keyboard.press('Enter');
    await w('.gh-msg.gh-theirs .gh-text').filter({ hasText: '您好，请告诉我新的地址。' }).waitFor(expect);
    await agent.locator('.log .msg.mine .text', { hasText: '您好，请告诉我新的地址。' }).waitFor(expect);
    assert.deepEqual(await seriousViolations(agent), [], 'the Chinese conversation view');
    await shot(agent, 'console-zh-conversation.png');

    await agent.getByRole('button', { name: '结束会话' }).click();
    assert.equal(await text(agent, '.closed-notice'), '此会话已结束。');
    await w('.gh-closed').waitFor(expect);
    assert.match(String(await w('.gh-closed').textContent()), /^会话已结束/);
  });

  it('admin view: stats, the kinds in the connection table and the actions in Chinese', async () => {
    // The customer from the conversation above is still connected.
    await agent.getByRole('button', { name: '管理' }).click();
    await agent.getByLabel('管理密钥').fill(ADMIN_KEY);
    await agent.getByRole('button', { name: '打开管理' }).click();
    await agent.locator('.stats').waitFor(expect);
    assert.equal(await text(agent, '#stats-h'), '统计');
    const counts = /^用户 \d+，客服 \d+，访客 \d+$/;
    assert.match(String(await text(agent, '.stats dd:nth-of-type(3)')), counts);
    assert.match(String(await text(agent, '.stats dd:nth-of-type(2)')), /^\d+（用户 \d+，客服 1，访客 [1-9]\d*）$/);
    const row = agent.locator('table.connections tr', { hasText: '王芳' }).first();
    await row.waitFor(expect);
    assert.equal(await row.locator('td').nth(1).textContent(), '访客');
    assert.equal(await row.getByRole('button', { name: /^踢下线/ }).count(), 1);
    const kinds = await agent.locator('table.connections tbody td:nth-child(2)').allTextContents();
    assert.ok(kinds.length >= 2, `connections listed: ${kinds.join(', ')}`);
    for (const kind of kinds) assert.ok(['用户', '客服', '访客'].includes(kind), `kind cell "${kind}" is in Chinese`);
    assert.deepEqual(await seriousViolations(agent), [], 'the Chinese admin view');
    await shot(agent, 'console-zh-admin.png');
  });

  it('the language follows ?lang= and the menu, whatever navigator.language says', async () => {
    const page = await (await browser.newContext({ locale: 'zh-CN' })).newPage();
    await page.goto(`${server.url}/console/?lang=en`);
    await page.getByRole('button', { name: 'Log in' }).waitFor(expect);
    assert.equal(await page.evaluate(() => document.documentElement.lang), 'en');
    await page.getByLabel('Language').selectOption('zh');
    await page.getByRole('button', { name: '登录' }).waitFor(expect);
    assert.equal(await page.evaluate(() => document.documentElement.lang), 'zh-CN');
    assert.equal(await page.title(), 'Gatehouse 客服控制台');
    const english = await (await browser.newContext({ locale: 'en-US' })).newPage();
    await english.goto(`${server.url}/console/?lang=zh`);
    await english.getByLabel('用户名').waitFor(expect);
    await page.context().close();
    await english.context().close();
  });
});
