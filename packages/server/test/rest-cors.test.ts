import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium } from 'playwright-core';
import type { RestApp } from '../src/http/rest-app.js';
import { startServer, type TestServer } from './helpers/test-server.js';

const CHROMIUM = '/usr/bin/chromium';

const preflight = (rest: RestApp, url: string, origin: string, method = 'POST', headers = 'content-type') =>
  rest.inject({
    method: 'OPTIONS',
    url,
    headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': headers },
  });

const allowedHeaders = (value: unknown) =>
  String(value ?? '')
    .toLowerCase()
    .split(',')
    .map((h) => h.trim());

describe('CORS preflight and headers (server.cors.origins)', () => {
  let server: TestServer;
  let rest: RestApp;
  before(async () => {
    server = await startServer({ server: { cors: { origins: ['https://shop.example', '*'] } } });
    rest = server.gatehouse.rest;
  });
  after(() => server.close());

  it('lets any origin call the public token routes when * is listed, without credentials', async () => {
    for (const url of [
      '/api/v1/public/customer-token',
      '/api/v1/customers',
      '/api/v1/customers/c1/token',
      '/api/v1/customers/token',
      '/api/refresh-token',
    ]) {
      const res = await preflight(rest, url, 'https://anywhere.example');
      assert.equal(res.statusCode, 204, url);
      assert.equal(res.headers['access-control-allow-origin'], '*', url);
      assert.equal(res.headers['access-control-allow-credentials'], undefined, `${url}: never credentials`);
      const headers = allowedHeaders(res.headers['access-control-allow-headers']);
      for (const h of ['authorization', 'x-app-key', 'content-type']) assert.ok(headers.includes(h), `${url}: ${h}`);
      assert.ok(!headers.includes('x-admin-key'), `${url}: the admin key is never a browser header`);
    }
    const validate = await preflight(rest, '/api/v1/public/validate-token?token=x', 'https://anywhere.example', 'GET');
    assert.equal(validate.headers['access-control-allow-origin'], '*');
    const actual = await rest.inject({
      method: 'POST',
      url: '/api/v1/public/customer-token',
      headers: { origin: 'https://anywhere.example', 'content-type': 'application/json' },
      payload: { name: 'Visitor', channel: 'web' },
    });
    assert.equal(actual.statusCode, 200);
    assert.equal(actual.headers['access-control-allow-origin'], '*');
  });

  it('keeps every other route to the listed origins, * notwithstanding', async () => {
    for (const [url, method] of [
      ['/api/v1/public/login', 'POST'],
      ['/api/v1/conversations', 'GET'],
      ['/api/v1/ws-ticket', 'POST'],
      ['/api/v1/sessions', 'GET'],
      ['/openapi/v1/user/login', 'POST'],
      ['/api/v1/admin/stats', 'GET'],
    ] as const) {
      const other = await preflight(rest, url, 'https://evil.example', method, 'authorization');
      assert.equal(other.headers['access-control-allow-origin'], undefined, `${url} from another origin`);
      const listed = await preflight(rest, url, 'https://shop.example', method, 'authorization');
      assert.equal(listed.statusCode, 204, url);
      assert.equal(listed.headers['access-control-allow-origin'], 'https://shop.example', url);
      assert.match(String(listed.headers.vary), /origin/i, `${url}: Vary: Origin`);
    }
    const actual = await rest.inject({
      method: 'GET',
      url: '/api/v1/conversations',
      headers: { origin: 'https://evil.example' },
    });
    assert.equal(actual.headers['access-control-allow-origin'], undefined);
  });

  it('decides by the route the router matched: an encoded public path is public, an encoded other path is not', async () => {
    const encodedPublic = await preflight(rest, '/api/v1/public/%63ustomer-token', 'https://anywhere.example');
    assert.equal(encodedPublic.headers['access-control-allow-origin'], '*');
    const encodedOther = await preflight(rest, '/api/v1/%61dmin/stats', 'https://anywhere.example', 'GET');
    assert.equal(encodedOther.headers['access-control-allow-origin'], undefined);
    const unknown = await preflight(rest, '/api/v1/public/nothing-here', 'https://shop.example');
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.headers['access-control-allow-origin'], undefined);
  });
});

describe('CORS is off by default', () => {
  it('answers a preflight without CORS headers when no origin is configured', async () => {
    const server = await startServer();
    try {
      const res = await preflight(server.gatehouse.rest, '/api/v1/public/customer-token', 'https://shop.example');
      assert.equal(res.headers['access-control-allow-origin'], undefined);
      assert.equal(res.statusCode, 404);
    } finally {
      await server.close();
    }
  });

  it('refuses an origin list entry that is not an origin', async () => {
    await assert.rejects(startServer({ server: { cors: { origins: ['shop.example'] } } }), /server\.cors\.origins/);
    await assert.rejects(startServer({ server: { cors: { origins: ['https://shop.example/path'] } } }), /origins/);
  });
});

/** A tiny page server on its own loopback port: another origin than the gateway. */
async function pageServer(html: () => string): Promise<{ server: Server; origin: string }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(html());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('CORS in a real browser', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed` }, () => {
  let gateway: TestServer;
  let allowed: Awaited<ReturnType<typeof pageServer>>;
  let other: Awaited<ReturnType<typeof pageServer>>;
  let browser: Browser;
  const page = () => '<!doctype html><title>shop</title><p>shop</p>';

  before(async () => {
    allowed = await pageServer(page);
    other = await pageServer(page);
    gateway = await startServer({ server: { cors: { origins: [allowed.origin] } } });
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
  });
  after(async () => {
    await browser?.close();
    await gateway?.close();
    allowed?.server.close();
    other?.server.close();
  });

  /** Runs the widget's calls in a page on `origin`: a customer token, then a credentialed call with it. */
  async function widgetCalls(origin: string) {
    const context = await browser.newContext();
    try {
      const tab = await context.newPage();
      await tab.goto(origin);
      return await tab.evaluate(async (api) => {
        type Outcome = { status: number; body: any } | { blocked: string };
        const outcome = async (call: () => Promise<Response>): Promise<Outcome> => {
          try {
            const res = await call();
            return { status: res.status, body: await res.json() };
          } catch (err) {
            return { blocked: String(err) };
          }
        };
        const customer = await outcome(() =>
          fetch(`${api}/api/v1/public/customer-token`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ name: 'Widget visitor', channel: 'web' }),
          }),
        );
        const token = 'body' in customer ? customer.body.token : 'none';
        const conversations = await outcome(() =>
          fetch(`${api}/api/v1/conversations`, { headers: { authorization: `Bearer ${token}` } }),
        );
        return { customer, conversations };
      }, gateway.url);
    } finally {
      await context.close();
    }
  }

  it('lets a page on a listed origin get a customer token and call an authenticated route', async () => {
    const { customer, conversations } = await widgetCalls(allowed.origin);
    assert.ok('status' in customer, JSON.stringify(customer));
    assert.equal(customer.status, 200);
    assert.equal(typeof customer.body.customerId, 'string');
    assert.ok('status' in conversations, JSON.stringify(conversations));
    assert.equal(conversations.status, 200);
    assert.ok(Array.isArray(conversations.body.conversations));
  });

  it('lets the browser block a page on any other origin', async () => {
    const { customer, conversations } = await widgetCalls(other.origin);
    assert.ok('blocked' in customer, `not blocked: ${JSON.stringify(customer)}`);
    assert.match(String(customer.blocked), /Failed to fetch/);
    assert.ok('blocked' in conversations);
  });
});
