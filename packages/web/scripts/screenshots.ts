/**
 * `npm run screenshots`: PNGs of the widget (open, English and Chinese) and of the console
 * (queue, conversation, admin) into docs/screenshots/, from a real server and Chromium.
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { ADMIN_KEY, launchChromium, WebGatehouse } from '../test/helpers/web-gatehouse.js';

const out = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'docs', 'screenshots');
mkdirSync(out, { recursive: true });
const wait = { timeout: 15_000 };

const server = await WebGatehouse.start();
const browser = await launchChromium();
try {
  await server.services.auth.createAccount({
    kind: 'agent',
    username: 'alice',
    password: 'agent-password-1',
    name: 'Alice',
  });
  const widgetPage = async (path: string, name: string, first: string) => {
    const page = await (await browser.newContext({ viewport: { width: 420, height: 640 } })).newPage();
    await page.goto(`${server.url}${path}`);
    const w = (s: string) => page.locator(`[data-gatehouse-widget] ${s}`);
    await w('.gh-bubble').click();
    await w('#gh-name').fill(name);
    await w('.gh-start').click();
    await w('.gh-status[data-status="connected"]').waitFor(wait);
    await w('.gh-input').fill(first);
    await w('.gh-input').press('Enter');
    await w('.gh-mark.gh-stored').first().waitFor(wait);
    return { page, w };
  };
  const en = await widgetPage('/demo/', 'Carol', 'Hello! My order #1042 has not arrived yet.');
  const zh = await widgetPage('/demo/zh.html', '王芳', '你好，我想修改收货地址。');

  const agent = await (await browser.newContext({ viewport: { width: 1100, height: 620 } })).newPage();
  await agent.goto(`${server.url}/console/`);
  await agent.getByLabel('Username').fill('alice');
  await agent.getByLabel('Password').fill('agent-password-1');
  await agent.getByRole('button', { name: 'Log in' }).click();
  await agent.locator('.queue-item', { hasText: '王芳' }).waitFor(wait);
  await shot(agent, 'console-queue.png');

  await agent.locator('.queue-item', { hasText: 'Carol' }).locator('.claim').click();
  await agent.locator('.conv-head h2', { hasText: 'Carol' }).waitFor(wait);
  await agent.getByLabel('Reply').fill('Hi Carol, I am looking at order #1042 now.');
  await agent.getByLabel('Reply').press('Enter');
  await en.w('.gh-theirs').first().waitFor(wait);
  await en.w('.gh-input').fill('Thank you!');
  await en.w('.gh-input').press('Enter');
  await agent.locator('.log .msg', { hasText: 'Thank you!' }).waitFor(wait);
  await shot(agent, 'console-conversation.png');
  await shot(en.page, 'widget-en.png');

  await agent.locator('.queue-item', { hasText: '王芳' }).locator('.claim').click();
  await agent.getByLabel('Reply').fill('您好，请告诉我新的地址。');
  await agent.getByLabel('Reply').press('Enter');
  await zh.w('.gh-theirs').first().waitFor(wait);
  await shot(zh.page, 'widget-zh.png');

  await agent.getByRole('button', { name: 'Admin' }).click();
  await agent.getByLabel('Admin key').fill(ADMIN_KEY);
  await agent.getByRole('button', { name: 'Open admin' }).click();
  await agent.locator('table.connections').waitFor(wait);
  await shot(agent, 'console-admin.png');
} finally {
  await browser.close();
  await server.close();
}

async function shot(page: Page, file: string) {
  await page.screenshot({ path: join(out, file) });
  console.log(join('docs', 'screenshots', file));
}
