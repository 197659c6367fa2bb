import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebGatehouse } from './helpers/web-gatehouse.js';

describe('web pages served by the server', () => {
  let server: WebGatehouse;
  let off: WebGatehouse;

  before(async () => {
    server = await WebGatehouse.start();
    off = await WebGatehouse.start({ web: { enabled: false } });
  });
  after(async () => {
    await server?.close();
    await off?.close();
  });

  const get = (path: string, headers: Record<string, string> = {}, target = server) =>
    target.services.gateway ? fetch(`${target.url}${path}`, { headers, redirect: 'manual' }) : Promise.reject();

  it('/widget.js: JavaScript, cached five minutes, loadable from other origins', async () => {
    const res = await get('/widget.js');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /javascript/);
    assert.equal(res.headers.get('cache-control'), 'public, max-age=300');
    assert.equal(res.headers.get('cross-origin-resource-policy'), 'cross-origin');
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.ok((await res.text()).length > 10_000);
  });

  it('/console/: HTML revalidated each time, with a CSP that allows only its own origin and WebSocket', async () => {
    const res = await get('/console/');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/html/);
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    const host = new URL(server.url).host;
    assert.equal(
      res.headers.get('content-security-policy'),
      `default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws://${host}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'`,
    );
    const html = await res.text();
    assert.doesNotMatch(html, /<script>|<style>|style="/, 'no inline code or style the CSP would block');
    const asset = /src="assets\/(console-[A-Z0-9]{8}\.js)"/.exec(html)?.[1];
    assert.ok(asset, html);
    const js = await get(`/console/assets/${asset}`);
    assert.equal(js.status, 200);
    assert.equal(js.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.ok(js.headers.get('etag'));
  });

  it('a Host header that is not a host name is left out of the CSP', async () => {
    const res = await server.gatehouse?.rest.inject({
      method: 'GET',
      url: '/console/',
      headers: { host: 'x; script-src *' },
    });
    assert.equal(res?.statusCode, 200);
    assert.match(String(res?.headers['content-security-policy']), /connect-src 'self'; base-uri/);
  });

  it('behind a trusted TLS proxy the CSP names wss://', async () => {
    const proxied = await WebGatehouse.start({ server: { trustProxy: true } });
    try {
      const res = await proxied.gatehouse?.rest.inject({
        method: 'GET',
        url: '/console/',
        headers: { host: 'chat.example.com', 'x-forwarded-proto': 'https', 'x-forwarded-for': '10.0.0.1' },
      });
      assert.match(String(res?.headers['content-security-policy']), /connect-src 'self' wss:\/\/chat\.example\.com;/);
    } finally {
      await proxied.close();
    }
  });

  it('/demo/ embeds the widget; /console redirects; unknown and traversing paths get the JSON 404', async () => {
    const demo = await get('/demo/');
    assert.equal(demo.status, 200);
    assert.match(await demo.text(), /<script src="\/widget.js" data-channel="web" async><\/script>/);
    const bare = await get('/console');
    assert.equal(bare.status, 301);
    assert.equal(bare.headers.get('location'), '/console/');
    for (const path of [
      '/console/nope.js',
      '/console/..%2f..%2fpackage.json',
      '/%2e%2e/package.json',
      '/demo/.hidden',
    ]) {
      const res = await get(path);
      assert.equal(res.status, 404, path);
      assert.equal((await res.json()).error, 'NOT_FOUND', path);
    }
  });

  it('web.enabled false: no pages, the API still answers', async () => {
    for (const path of ['/widget.js', '/console/', '/demo/'])
      assert.equal((await get(path, {}, off)).status, 404, path);
    assert.equal((await get('/healthz', {}, off)).status, 200);
  });
});
