import type { BrowserContext } from 'playwright-core';
import { WAIT_MS } from './web-gatehouse.js';

/**
 * Records `code reason` of every WebSocket close the pages of `context` see. Observation only:
 * the sockets are the browser's own; a subclass adds a close listener before the SDK's handlers.
 */
export async function recordCloses(context: BrowserContext): Promise<string[]> {
  const closes: string[] = [];
  await context.exposeFunction('__ghRecordClose', (code: number, reason: string) =>
    closes.push(`${code} ${reason}`.trim()),
  );
  await context.addInitScript(() => {
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols);
        this.addEventListener('close', (e) => (window as any).__ghRecordClose(e.code, e.reason));
      }
    };
  });
  return closes;
}

/** Waits (bounded, polling) until `closes` holds `expected`: the report crosses from the page asynchronously. */
export async function waitForClose(closes: string[], expected: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!closes.includes(expected)) {
    if (Date.now() > deadline)
      throw new Error(`no close "${expected}" within ${WAIT_MS} ms; saw ${JSON.stringify(closes)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
