import type { IncomingMessage } from 'node:http';
import WebSocket, { type ClientOptions } from 'ws';

export interface Frame {
  type: string;
  [field: string]: any;
}

/** How long a test waits for something that should happen; a bound, not an assertion on timing. */
export const WAIT_MS = 5000;

/**
 * A real `ws` client that queues every frame it receives, so a test can await the next
 * frame (of a type) and the close code.
 */
export class TestClient {
  readonly frames: Frame[] = [];
  private waiters: { predicate: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;
  /** Set when the server refused in the HTTP handshake. */
  rejection: Promise<{ status: number; headers: IncomingMessage['headers']; body: any }>;

  constructor(
    url: string,
    readonly ws: WebSocket = new WebSocket(url),
  ) {
    this.ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as Frame;
      const index = this.waiters.findIndex((w) => w.predicate(frame));
      if (index >= 0) {
        const [waiter] = this.waiters.splice(index, 1);
        waiter?.resolve(frame);
      } else this.frames.push(frame);
    });
    this.closed = new Promise((resolve) =>
      this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    this.opened = new Promise((resolve, reject) => {
      this.ws.on('open', () => resolve());
      this.ws.on('error', reject);
    });
    this.rejection = new Promise((resolve) => {
      this.ws.on('unexpected-response', (_req, res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString();
        });
        res.on('end', () => {
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {}
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      });
    });
    this.opened.catch(() => {});
  }

  static connect(url: string, options: ClientOptions & { protocols?: string[] } = {}): TestClient {
    const { protocols, ...rest } = options;
    return new TestClient(url, new WebSocket(url, protocols ?? [], rest));
  }

  /** The next frame matching `predicate` (or of `type`), from the queue or as it arrives. */
  next(predicate: string | ((f: Frame) => boolean) = () => true, timeoutMs = WAIT_MS): Promise<Frame> {
    const match = typeof predicate === 'string' ? (f: Frame) => f.type === predicate : predicate;
    const index = this.frames.findIndex(match);
    if (index >= 0) return Promise.resolve(this.frames.splice(index, 1)[0] as Frame);
    return new Promise((resolve, reject) => {
      const waiter = {
        predicate: match,
        resolve: (f: Frame) => {
          clearTimeout(timer);
          resolve(f);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(
          new Error(`no matching frame within ${timeoutMs} ms; queued: ${JSON.stringify(this.frames).slice(0, 500)}`),
        );
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  send(frame: object | string): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Sends a request and waits for the reply carrying the same id. */
  async request(frame: Record<string, unknown>, timeoutMs = WAIT_MS): Promise<Frame> {
    const id = frame.id ?? `r${Math.random().toString(36).slice(2)}`;
    this.send({ ...frame, id });
    return this.next((f) => f.id === id, timeoutMs);
  }

  close(): void {
    this.ws.close();
  }
}

/** Opens a socket with the token in the Authorization header and waits for `connected`. */
export async function connectWithToken(
  wsUrl: string,
  path: string,
  token: string,
  headers: Record<string, string> = {},
): Promise<{ client: TestClient; connected: Frame }> {
  const client = TestClient.connect(`${wsUrl}${path}`, { headers: { authorization: `Bearer ${token}`, ...headers } });
  const connected = await client.next('connected');
  return { client, connected };
}
