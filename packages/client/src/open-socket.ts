/**
 * Opens one WebSocket over whichever implementation the platform has: the browser's global
 * `WebSocket`, or `ws` in Node (which can send headers and report a refused handshake's
 * status). Both expose the same `on*` properties, so the rest of the SDK sees one shape.
 */

/** A constructor compatible with the browser's `WebSocket` (the `ws` package's default export is one). */
export type WebSocketConstructor = new (url: string, protocols?: string | string[], options?: any) => any;

/** Why the server refused the HTTP handshake (Node only: browsers cannot read it). */
export interface Refusal {
  status: number;
  error: string | undefined;
  message: string | undefined;
  /** Seconds, from `Retry-After`. */
  retryAfter: number | undefined;
}

export interface SocketHandlers {
  open(): void;
  message(text: string): void;
  /** Called once, after which no handler runs again. */
  close(code: number, reason: string, refusal: Refusal | null): void;
}

export interface OpenSocketOptions {
  url: string;
  protocols: string[];
  /** Node (`ws`) only. */
  headers?: Record<string, string>;
  localAddress?: string;
}

export interface Socket {
  send(text: string): void;
  /** A clean close (close frame); handlers are not called afterwards. */
  close(code: number, reason: string): void;
  /** Drops the socket at once (a dead peer never answers a close frame); handlers are not called afterwards. */
  abort(): void;
  bufferedAmount(): number;
}

/** Node's `ws` has `.on` and `.terminate`; the browser's WebSocket has neither. */
const isWs = (ws: any): boolean => typeof ws.on === 'function' && typeof ws.terminate === 'function';

export function openSocket(Impl: WebSocketConstructor, options: OpenSocketOptions, handlers: SocketHandlers): Socket {
  const nodeOptions =
    options.headers || options.localAddress
      ? { headers: options.headers, localAddress: options.localAddress, perMessageDeflate: false }
      : undefined;
  const ws = nodeOptions
    ? new Impl(options.url, options.protocols, nodeOptions)
    : new Impl(options.url, options.protocols);
  let done = false;
  let refusal: Refusal | null = null;
  const finish = (code: number, reason: string) => {
    if (done) return;
    done = true;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    handlers.close(code, reason, refusal);
  };
  if (isWs(ws)) {
    // An EventEmitter throws on an `error` nobody listens to; `ws` may emit one after we let go.
    ws.on('error', () => {});
    ws.on('unexpected-response', (_req: unknown, res: any) => {
      const header = (name: string): string | undefined => {
        const v = res.headers?.[name];
        return Array.isArray(v) ? v[0] : v;
      };
      const retry = Number(header('retry-after'));
      refusal = {
        status: res.statusCode ?? 0,
        error: header('x-websocket-error-code'),
        message: header('x-websocket-error-message'),
        retryAfter: Number.isFinite(retry) && retry > 0 ? retry : undefined,
      };
      res.resume?.();
      ws.terminate();
    });
  }
  ws.onopen = () => handlers.open();
  ws.onmessage = (event: { data: unknown }) => {
    if (typeof event.data === 'string') handlers.message(event.data);
  };
  ws.onclose = (event: { code: number; reason: string }) => finish(event.code, event.reason);
  ws.onerror = () => {};
  return {
    send: (text) => {
      if (ws.readyState === 1) ws.send(text);
    },
    close(code, reason) {
      done = true;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(code, reason);
      } catch {}
    },
    abort() {
      done = true;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        if (isWs(ws)) ws.terminate();
        else ws.close(4000, 'dead');
      } catch {}
    },
    bufferedAmount: () => ws.bufferedAmount ?? 0,
  };
}
