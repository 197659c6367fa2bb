import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { Services } from '../../services.js';
import type { RestApp } from '../rest-types.js';

/** The built pages of `@gatehouse/web` (`npm run build`), or null when they are not there. */
export function webAssetsDir(): string | null {
  try {
    const dir = join(dirname(createRequire(import.meta.url).resolve('@gatehouse/web/package.json')), 'dist', 'public');
    return existsSync(join(dir, 'widget.js')) ? dir : null;
  } catch {
    return null;
  }
}

/** A Host header fit to be named in a CSP source (anything odd: only `'self'`). */
const HOST = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

/**
 * The pages' policy: their own scripts, styles and REST calls, and the WebSocket of the same
 * host (named explicitly: older browsers do not count ws: as 'self'). No inline code, no frames.
 */
export function pageCsp(host: string | undefined, tls: boolean): string {
  const ws = host && HOST.test(host) ? ` ${tls ? 'wss' : 'ws'}://${host}` : '';
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src 'self'${ws}`,
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/**
 * Cache rules (documented in docs/rest-api.md "Web pages"): hashed console assets never change,
 * so they are immutable for a year; HTML is revalidated on every load (`no-cache`, with ETag);
 * `/widget.js` keeps its URL across releases (it is the embed code), so browsers may reuse it
 * for five minutes only.
 */
export function cacheControl(path: string): string {
  if (/[/\\]assets[/\\][^/\\]+-[A-Z0-9]{8}\.(js|css)$/.test(path)) return 'public, max-age=31536000, immutable';
  if (path.endsWith('widget.js')) return 'public, max-age=300';
  return 'no-cache';
}

/** `/widget.js`, `/console/`, `/demo/` from the built `@gatehouse/web` package (`web.enabled`). */
export async function webRoutes(app: RestApp, { root }: { services: Services; root: string }): Promise<void> {
  // Static files need no store: the pages load while a node waits for its database.
  app.addHook('onRoute', (route) => {
    route.config = { ...route.config, withoutStore: true };
  });
  await app.register(fastifyStatic, {
    root,
    // One route per built file (and `/console`, `/console/` for the index): every other path
    // still gets the API's JSON 404.
    wildcard: false,
    index: ['index.html'],
    redirect: true,
    cacheControl: false,
    etag: true,
    lastModified: true,
    dotfiles: 'deny',
    setHeaders: (reply, path) => {
      reply.header('cache-control', cacheControl(path));
      reply.header('x-content-type-options', 'nosniff');
      if (path.endsWith('.html')) {
        reply.header(
          'content-security-policy',
          pageCsp(reply.request.headers.host, reply.request.protocol === 'https'),
        );
        reply.header('referrer-policy', 'no-referrer');
      }
      // Other origins embed the widget with a plain <script> tag.
      if (path.endsWith('widget.js')) reply.header('cross-origin-resource-policy', 'cross-origin');
    },
  });
}
