import {
  type AckBody,
  BEARER_SUBPROTOCOL_PREFIX,
  type ChatMessage,
  type ClientFrame,
  closePolicy,
  type HistoryBody,
  type PrincipalInfo,
  type ReplyFrame,
  refusalCloseCode,
  type ServerEvent,
  type SessionBody,
  SUBPROTOCOL,
  type SupportSession,
  type TerminalStatus,
} from '@gatehouse/protocol';
import {
  type BackoffOptions,
  backoffDelay,
  checkBackoff,
  DEFAULT_BACKOFF,
  nextSpreadAttempt,
  type SpreadSchedule,
  startSpread,
} from './backoff.js';
import { ClientErrorCode, GatehouseClientError } from './client-error.js';
import { Emitter } from './emitter.js';
import { Inbox } from './inbox.js';
import { openSocket, type Refusal, type Socket, type WebSocketConstructor } from './open-socket.js';
import { Outbox } from './outbox.js';
import { type RestContext, restRequest } from './rest-client.js';

export type ClientStatus = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'disconnected' | TerminalStatus;

/** How the socket authenticates (see docs/client.md). */
export type AuthMode = 'header' | 'ticket' | 'subprotocol' | 'query' | 'in-band';

export interface GatehouseClientOptions {
  /** WebSocket URL with the endpoint path: `wss://chat.example.com/ws`, `…/ws/chat` or `…/`. */
  url: string;
  /** REST base URL; default: the `url`'s origin over http(s). */
  apiUrl?: string;
  /** Asks the app's backend for a fresh access token; called at start, on `token_expiring` and after a 4401. */
  getToken?: () => Promise<string>;
  /** A token to start with (without `getToken`, the client stops when it is refused). */
  token?: string;
  /** In-band login over the root endpoint (`login` frame) instead of a token. */
  login?: { username: string; password: string };
  /** Default: `header` in Node, `ticket` in browsers; `in-band` when `login` is given. */
  auth?: AuthMode;
  deviceType?: string;
  deviceId?: string;
  clientId?: string;
  /** The WebSocket class: in Node the `ws` package's default export (imported lazily when not given). */
  WebSocket?: WebSocketConstructor;
  fetch?: typeof fetch;
  /** Extra handshake headers (Node only). */
  headers?: Record<string, string>;
  /** Source address of the socket (Node only): spreads many clients over 127.0.0.0/8. */
  localAddress?: string;
  backoff?: Partial<BackoffOptions>;
  /** Source of the reconnect jitter, uniform in [0, 1) (default `Math.random`); tests pass a fixed one. */
  random?: () => number;
  /** Reconnect attempts count from 1 again only once a connection lasted this long, ms (default 10000). */
  stableAfter?: number;
  /** Silence after which an app-level `ping` is sent, ms (default 20000). */
  pingInterval?: number;
  /** No frame this long after a `ping`: the connection is dead, reconnect, ms (default 10000). */
  pongTimeout?: number;
  /** Handshake plus authentication must finish within, ms (default 15000). */
  connectTimeout?: number;
  /** Request replies (refresh, history, …) must come within, ms (default 15000). */
  requestTimeout?: number;
  /** Sends waiting for their ack at most (default 1000); more are refused with `OUTBOX_FULL`. */
  outboxLimit?: number;
  /** Ack each message once every `message` handler returned (default true); else call `ack(message)`. */
  autoAck?: boolean;
  /** Acks wait this long to be batched, ms (default 200) … */
  ackDelay?: number;
  /** … or until this many messages were handled (default 50). */
  ackBatch?: number;
}

export interface CloseInfo {
  code: number;
  reason: string;
}

export interface ClientEvents {
  /** Every status change. */
  status(status: ClientStatus, previous: ClientStatus): void;
  connecting(info: { attempt: number }): void;
  connected(info: { sessionId: string; user: PrincipalInfo; expiresAt: number }): void;
  disconnected(info: CloseInfo & { willReconnect: boolean }): void;
  reconnecting(info: CloseInfo & { attempt: number; delay: number }): void;
  error(error: GatehouseClientError): void;
  replaced(info: CloseInfo): void;
  revoked(info: CloseInfo): void;
  kicked(info: CloseInfo): void;
  blocked(info: CloseInfo): void;
  forbidden(info: CloseInfo): void;
  /** A new message (live or replayed), once, in seq order per conversation; may return a promise. */
  message(message: ChatMessage, meta: { offline: boolean }): unknown;
  /** The offline replay after (re)authentication is over. */
  offlineComplete(info: { count: number; truncated: boolean; truncatedConversations: string[] }): void;
  tokenRefreshed(info: { expiresAt: number }): void;
  /** Every server event frame (presence, session_waiting, session_claimed, session_closed, …). */
  event(frame: ServerEvent): void;
}

type Target = string | { to: string } | { conversationId: string };

interface PendingRequest {
  resolve(frame: ReplyFrame): void;
  reject(err: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

const TERMINAL: readonly ClientStatus[] = ['replaced', 'revoked', 'kicked', 'blocked', 'forbidden'];
const RESEND_AFTER = 1000;
const isNode = typeof (globalThis as any).process?.versions?.node === 'string' && typeof document === 'undefined';

function newId(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

let wsModule: Promise<WebSocketConstructor> | null = null;
/** `ws`, imported on first use in Node; the name is not a constant, so browser bundlers leave it out. */
function importWs(): Promise<WebSocketConstructor> {
  const name = isNode ? 'ws' : '';
  wsModule ??= import(/* webpackIgnore: true */ /* @vite-ignore */ name).then((m: any) => m.default ?? m.WebSocket);
  return wsModule;
}

/**
 * A Gatehouse connection that stays up: it authenticates the way the platform allows,
 * reconnects by the close-code table with jittered backoff, refreshes its token in-band,
 * resends unacknowledged sends and hands each incoming message to the app once, in order.
 */
export class GatehouseClient extends Emitter<ClientEvents> {
  private readonly options: Required<
    Pick<
      GatehouseClientOptions,
      | 'stableAfter'
      | 'pingInterval'
      | 'pongTimeout'
      | 'connectTimeout'
      | 'requestTimeout'
      | 'autoAck'
      | 'ackDelay'
      | 'ackBatch'
    >
  > &
    GatehouseClientOptions;
  private readonly backoff: BackoffOptions;
  private readonly mode: AuthMode;
  private readonly rest: RestContext;
  private readonly outbox: Outbox;
  private readonly inbox = new Inbox();
  private readonly requests = new Map<string, PendingRequest>();
  private current: ClientStatus = 'idle';
  private socket: Socket | null = null;
  private authed = false;
  private generation = 0;
  private attempt = 0;
  private authFailures = 0;
  private stopped = true;
  private token: string | null;
  private tokenPromise: Promise<string> | null = null;
  private expiresAt = 0;
  private kickReason = '';
  private lastFrameAt = 0;
  private pingSentAt = 0;
  private requestSeq = 0;
  private timers: Record<
    'reconnect' | 'connect' | 'stable' | 'ping' | 'ack' | 'resend',
    ReturnType<typeof setTimeout> | null
  > = { reconnect: null, connect: null, stable: null, ping: null, ack: null, resend: null };
  private waiters: { resolve(): void; reject(err: Error): void }[] = [];
  private deliveries: Promise<void> = Promise.resolve();
  private refreshing = false;
  /** The spread schedule of a 1001/1012 (server going away), until connected again: see reconnectDelay(). */
  private spread: SpreadSchedule | null = null;
  private readonly random: () => number;
  private readonly wake = () => this.attemptNow();
  private readonly onVisibility = () => {
    if (document.visibilityState === 'visible') this.attemptNow();
  };

  constructor(options: GatehouseClientOptions) {
    super();
    if (!options?.url) throw new TypeError('url is required');
    if (!options.getToken && !options.token && !options.login)
      throw new TypeError('give getToken, token or login: the client needs a credential');
    if (options.login && options.auth && options.auth !== 'in-band')
      throw new TypeError('login works over the socket only: leave auth unset or "in-band"');
    if (options.auth === 'header' && !isNode && !options.WebSocket)
      throw new TypeError('auth "header" needs Node (ws): browsers cannot set handshake headers');
    this.options = {
      stableAfter: 10_000,
      pingInterval: 20_000,
      pongTimeout: 10_000,
      connectTimeout: 15_000,
      requestTimeout: 15_000,
      autoAck: true,
      ackDelay: 200,
      ackBatch: 50,
      ...options,
    };
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    checkBackoff(this.backoff);
    if (options.random !== undefined && typeof options.random !== 'function')
      throw new TypeError('random must be a function returning a number in [0, 1)');
    const source = options.random ?? Math.random;
    // A source that answers outside [0, 1) (NaN, say) must not make a NaN delay: a retry loop.
    this.random = () => {
      const r = source();
      return r >= 0 && r < 1 ? r : Math.random();
    };
    this.mode = options.auth ?? (options.login ? 'in-band' : isNode ? 'header' : 'ticket');
    this.token = options.token ?? null;
    this.outbox = new Outbox(options.outboxLimit ?? 1000);
    const api = new URL(options.apiUrl ?? options.url.replace(/^ws/, 'http'));
    this.rest = {
      baseUrl: options.apiUrl ? options.apiUrl.replace(/\/$/, '') : api.origin,
      fetch: options.fetch ?? ((...args) => fetch(...args)),
      token: async () => this.token ?? (await this.newToken()),
      renewToken: async () => {
        this.token = null;
        return this.newToken().catch(() => null);
      },
    };
  }

  get status(): ClientStatus {
    return this.current;
  }

  /** The principal once connected. */
  user: PrincipalInfo | null = null;
  /** This connection's id (`session_id` of the `connected` frame). */
  sessionId: string | null = null;

  /** Starts connecting; resolves once connected, rejects if the client stops for good first. */
  connect(): Promise<void> {
    if (this.current === 'connected') return Promise.resolve();
    const ready = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this.stopped) {
      this.stopped = false;
      this.attempt = 0;
      if (typeof addEventListener === 'function' && typeof document !== 'undefined') {
        addEventListener('online', this.wake);
        document.addEventListener('visibilitychange', this.onVisibility);
      }
      this.setStatus('connecting');
      this.emit('connecting', { attempt: 0 });
      void this.open();
    }
    return ready;
  }

  /** Closes for good (code 1000); waiting sends are rejected with `CLOSED`. */
  close(): void {
    this.flushAcks();
    this.stop('disconnected', { code: 1000, reason: 'normal' });
  }

  /** Logs out (revokes the login session on the server), then closes. */
  async logout(): Promise<void> {
    if (this.authed) await this.request({ type: 'logout' }).catch(() => {});
    this.close();
  }

  /**
   * Sends a message to a conversation id, or `{to}` a principal (direct conversation).
   * Resolves with the server's ack once stored; kept and resent across reconnects until then.
   */
  send(target: Target, text?: string | null, data?: unknown): Promise<AckBody> {
    if (this.stopped && TERMINAL.includes(this.current))
      return Promise.reject(new GatehouseClientError(ClientErrorCode.CLOSED, `client is ${this.current}`));
    if (this.outbox.full)
      return Promise.reject(
        new GatehouseClientError(ClientErrorCode.OUTBOX_FULL, `${this.outbox.limit} sends wait for their ack`),
      );
    const id = newId();
    const where =
      typeof target === 'string'
        ? { conversation_id: target }
        : 'to' in target
          ? { to: target.to }
          : { conversation_id: target.conversationId };
    const frame = {
      type: 'message' as const,
      id,
      client_msg_id: id,
      ...where,
      ...(text != null ? { text } : {}),
      ...(data !== undefined ? { data } : {}),
    };
    return new Promise<AckBody>((resolve, reject) => {
      const entry = { frame, resolve, reject, sentAt: 0 };
      this.outbox.add(entry);
      if (this.authed) {
        entry.sentAt = Date.now();
        this.write(frame);
      }
    });
  }

  /** Marks a message handled (only needed with `autoAck: false`); the ack goes out batched. */
  ack(message: ChatMessage): void {
    this.inbox.done(message);
    this.scheduleAck();
  }

  /** Sends waiting for their ack. */
  get pendingSends(): number {
    return this.outbox.size;
  }

  /** One page of history (oldest first), over REST. */
  history(conversationId: string, options: { beforeSeq?: number; limit?: number } = {}): Promise<HistoryBody> {
    const q = new URLSearchParams();
    if (options.beforeSeq !== undefined) q.set('before_seq', String(options.beforeSeq));
    if (options.limit !== undefined) q.set('limit', String(options.limit));
    const query = q.toString() ? `?${q}` : '';
    return restRequest(
      this.rest,
      'GET',
      `/api/v1/conversations/${encodeURIComponent(conversationId)}/messages${query}`,
    );
  }

  /** The caller's conversations with unread counts, over REST. */
  conversations(deviceType?: string): Promise<{
    device_type: string;
    conversations: {
      id: string;
      kind: string;
      name: string | null;
      last_seq: number;
      cursor: number;
      unread: number;
    }[];
  }> {
    const query = deviceType ? `?device_type=${encodeURIComponent(deviceType)}` : '';
    return restRequest(this.rest, 'GET', `/api/v1/conversations${query}`);
  }

  /** Support sessions (agents): unclaimed (`open`) or the caller's (`mine`). */
  sessions(status: 'open' | 'mine' = 'open'): Promise<{ sessions: SupportSession[] }> {
    return restRequest(this.rest, 'GET', `/api/v1/sessions?status=${status}`);
  }

  /** Claims a support session (agents); its backlog arrives as messages. */
  claim(sessionId: string): Promise<{ session: SupportSession }> {
    return restRequest(this.rest, 'POST', `/api/v1/sessions/${encodeURIComponent(sessionId)}/claim`);
  }

  /** Closes a support session the caller claimed. */
  closeSession(sessionId: string): Promise<{ ok: boolean }> {
    return restRequest(this.rest, 'POST', `/api/v1/sessions/${encodeURIComponent(sessionId)}/close`);
  }

  /** Sends a request frame and resolves with its reply (rejects with the reply's error code). */
  async request<T = unknown>(frame: ClientFrame): Promise<ReplyFrame<string, T>> {
    if (!this.socket) throw new GatehouseClientError(ClientErrorCode.CLOSED, 'not connected');
    const id = `r${++this.requestSeq}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.requests.delete(id);
        reject(new GatehouseClientError(ClientErrorCode.TIMEOUT, `no reply to ${frame.type} within the timeout`));
      }, this.options.requestTimeout);
      this.requests.set(id, {
        resolve: (reply) => {
          if (reply.code === 200) resolve(reply as ReplyFrame<string, T>);
          else reject(new GatehouseClientError(reply.error ?? 'ERROR', reply.err_msg, reply.code));
        },
        reject,
        timer,
      });
      this.write({ ...frame, id });
    });
  }

  // ---- connection ------------------------------------------------------------------------

  private setStatus(next: ClientStatus): void {
    const previous = this.current;
    if (previous === next) return;
    this.current = next;
    this.emit('status', next, previous);
  }

  /** Gets a token from the app (one call at a time). */
  private newToken(): Promise<string> {
    if (!this.options.getToken) {
      if (this.options.token && this.authFailures === 0) return Promise.resolve(this.options.token);
      return Promise.reject(
        new GatehouseClientError(ClientErrorCode.NO_TOKEN, 'the token was refused and there is no getToken'),
      );
    }
    this.tokenPromise ??= this.options.getToken().then(
      (token) => {
        this.tokenPromise = null;
        this.token = token.replace(/^bearer\s+/i, '');
        return this.token;
      },
      (cause) => {
        this.tokenPromise = null;
        throw new GatehouseClientError(ClientErrorCode.NO_TOKEN, `getToken failed: ${cause}`, undefined, undefined, {
          cause,
        });
      },
    );
    return this.tokenPromise;
  }

  private attemptNow(): void {
    if (this.current === 'reconnecting' && this.timers.reconnect) {
      this.clear('reconnect');
      void this.open();
    } else if (this.current === 'connected') this.ping();
  }

  private async open(): Promise<void> {
    const gen = ++this.generation;
    const url = new URL(this.options.url);
    const protocols = [SUBPROTOCOL];
    const headers: Record<string, string> = { ...this.options.headers };
    const device = {
      deviceType: this.options.deviceType,
      'Device-Id': this.options.deviceId,
      'Client-Id': this.options.clientId,
    };
    const query = { deviceType: 'device_type', 'Device-Id': 'device_id', 'Client-Id': 'client_id' } as const;
    let Impl: WebSocketConstructor;
    try {
      Impl = this.options.WebSocket ?? (isNode ? await importWs() : (globalThis as any).WebSocket);
      if (this.mode !== 'in-band') {
        const token = this.token ?? (await this.newToken());
        if (this.mode === 'header') headers.authorization = `Bearer ${token}`;
        else if (this.mode === 'subprotocol') protocols.push(BEARER_SUBPROTOCOL_PREFIX + token);
        else if (this.mode === 'query') url.searchParams.set('token', token);
        else
          url.searchParams.set(
            'ticket',
            (await restRequest<{ ticket: string }>(this.rest, 'POST', '/api/v1/ws-ticket')).ticket,
          );
      }
    } catch (err) {
      if (gen !== this.generation || this.stopped) return;
      const error = err instanceof GatehouseClientError ? err : new GatehouseClientError('ERROR', String(err));
      this.emit('error', error);
      // A server that is down fails the ticket request: back off as for a failed handshake.
      if (error.code === ClientErrorCode.NO_TOKEN && !this.options.getToken)
        this.stop('disconnected', { code: 4401, reason: error.code });
      else this.retry({ code: 1006, reason: error.code }, 'backoff');
      return;
    }
    if (gen !== this.generation || this.stopped) return;
    for (const [name, value] of Object.entries(device)) {
      if (!value) continue;
      if (this.mode === 'header') headers[name] = value;
      else url.searchParams.set(query[name as keyof typeof query], value);
    }
    this.kickReason = '';
    this.socket = openSocket(
      Impl,
      {
        url: url.toString(),
        protocols,
        ...(this.mode === 'header' || this.options.headers ? { headers } : {}),
        ...(this.options.localAddress ? { localAddress: this.options.localAddress } : {}),
      },
      {
        open: () => {
          this.lastFrameAt = Date.now();
        },
        message: (text) => this.onFrame(gen, text),
        close: (code, reason, refusal) => void this.onClosed(gen, code, reason, refusal),
      },
    );
    this.timers.connect = setTimeout(() => {
      this.socket?.abort();
      void this.onClosed(gen, 1006, 'CONNECT_TIMEOUT', null);
    }, this.options.connectTimeout);
  }

  private write(frame: object): void {
    this.socket?.send(JSON.stringify(frame));
  }

  private onFrame(gen: number, text: string): void {
    if (gen !== this.generation) return;
    this.lastFrameAt = Date.now();
    this.pingSentAt = 0;
    let frame: any;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.id !== undefined) {
      const id = String(frame.id);
      if (frame.type === 'ack') {
        const entry = this.outbox.take(id);
        if (entry) {
          this.onAck(entry, frame);
          return;
        }
      }
      const request = this.requests.get(id);
      if (request) {
        this.requests.delete(id);
        clearTimeout(request.timer);
        request.resolve(frame);
        return;
      }
    }
    switch (frame.type) {
      case 'connected':
        if (frame.body?.user) this.onAuthenticated(frame.body);
        else this.authenticateInBand(gen);
        break;
      case 'error':
        if (!this.authed && frame.code === 401) {
          // A bad token on an endpoint that lets the socket open (root / `close` endpoints).
          this.socket?.abort();
          void this.onClosed(gen, 4401, frame.error, null);
          return;
        }
        if (frame.error === 'RATE_LIMITED') this.scheduleResend();
        this.emit('error', new GatehouseClientError(frame.error, frame.err_msg, frame.code));
        break;
      case 'message':
      case 'offline_message':
        this.deliver(frame.message, frame.type === 'offline_message');
        break;
      case 'offline_messages_complete':
        this.emit('offlineComplete', {
          count: frame.count,
          truncated: frame.truncated,
          truncatedConversations: frame.truncated_conversations ?? [],
        });
        break;
      case 'token_expiring':
        void this.refreshToken();
        break;
      case 'kicked':
        this.kickReason = frame.reason;
        break;
    }
    if (frame.id === undefined) this.emit('event', frame as ServerEvent);
  }

  /** Root endpoint: `auth` with the token, else `login` with the credentials. */
  private authenticateInBand(gen: number): void {
    const fail = (err: GatehouseClientError) => {
      if (gen !== this.generation) return;
      this.socket?.abort();
      void this.onClosed(gen, err.status === 401 ? 4401 : 1006, err.code, null);
    };
    const viaLogin = () => {
      const { username, password } = this.options.login as { username: string; password: string };
      this.request<SessionBody & { token: string }>({ type: 'login', username, password }).then((reply) => {
        if (reply.body) {
          this.token = reply.body.token;
          this.onAuthenticated(reply.body);
        }
      }, fail);
    };
    const token = this.token ?? this.options.token;
    if (!token && this.options.login) {
      viaLogin();
      return;
    }
    (token ? Promise.resolve(token) : this.newToken())
      .then((t) => this.request<SessionBody>({ type: 'auth', token: t }))
      .then(
        (reply) => reply.body && this.onAuthenticated(reply.body),
        (err: GatehouseClientError) => {
          if (err.status === 401 && this.options.login) {
            this.token = null;
            return viaLogin();
          }
          fail(err);
        },
      );
  }

  private onAuthenticated(body: { session_id: string; user?: PrincipalInfo; expires_at?: number }): void {
    this.clear('connect');
    this.authed = true;
    this.authFailures = 0;
    this.spread = null;
    this.user = body.user ?? null;
    this.sessionId = body.session_id;
    this.expiresAt = body.expires_at ?? 0;
    this.timers.stable = setTimeout(() => {
      this.attempt = 0;
    }, this.options.stableAfter);
    this.startPing();
    this.setStatus('connected');
    for (const entry of this.outbox.all()) {
      entry.sentAt = Date.now();
      this.write(entry.frame);
    }
    this.flushAcks();
    const waiters = this.waiters.splice(0);
    for (const w of waiters) w.resolve();
    this.emit('connected', { sessionId: body.session_id, user: body.user as PrincipalInfo, expiresAt: this.expiresAt });
  }

  private async onClosed(gen: number, code: number, reason: string, refusal: Refusal | null): Promise<void> {
    if (gen !== this.generation || this.stopped) return;
    this.generation++;
    const wasAuthed = this.authed;
    this.authed = false;
    this.socket = null;
    for (const key of ['connect', 'stable', 'ping', 'resend'] as const) this.clear(key);
    for (const [id, request] of this.requests) {
      clearTimeout(request.timer);
      request.reject(new GatehouseClientError(ClientErrorCode.CLOSED, `socket closed (${code})`, undefined, code));
      this.requests.delete(id);
    }
    let info: CloseInfo = { code, reason: reason || this.kickReason };
    if (refusal) info = { code: refusalCloseCode(refusal.error, refusal.status), reason: refusal.error ?? '' };
    else if (!isNode && code === 1006 && !wasAuthed && this.token && this.mode !== 'in-band') {
      // A browser sees a refused handshake as a bare 1006: ask whether the token is the problem.
      const seen = this.generation;
      const verdict = await this.validateToken(this.token);
      if (seen !== this.generation || this.stopped) return;
      if (verdict) info = { code: 4401, reason: verdict };
    }
    const policy = closePolicy(info.code, info.reason);
    if (policy.action === 'stop') {
      if (policy.bug)
        this.emit(
          'error',
          new GatehouseClientError(
            info.reason || 'INVALID_REQUEST',
            'the server refused a frame of this client',
            undefined,
            info.code,
          ),
        );
      return this.stop(policy.status ?? 'disconnected', info);
    }
    if (wasAuthed) this.emit('disconnected', { ...info, willReconnect: true });
    if (policy.action === 'reauthenticate') {
      this.authFailures++;
      this.token = null;
      if (info.reason === 'LOGIN_FAILED' || (!this.options.getToken && !this.options.login && this.authFailures > 1))
        return this.stop('disconnected', info);
      // The first refusal is answered at once with a new token; repeated ones back off.
      if (this.authFailures === 1 && this.options.getToken) {
        this.tokenPromise = null;
        await this.newToken().catch((err) => this.emit('error', err));
        if (this.stopped) return;
        this.attempt++;
        this.setStatus('reconnecting');
        this.emit('reconnecting', { ...info, attempt: this.attempt, delay: 0 });
        void this.open();
        return;
      }
    }
    this.retry(info, policy.delay, (refusal?.retryAfter ?? 0) * 1000);
  }

  private retry(info: CloseInfo, kind: 'spread' | 'backoff' | 'long', retryAfterMs = 0): void {
    this.attempt++;
    const delay = this.reconnectDelay(kind, retryAfterMs);
    this.setStatus('reconnecting');
    this.emit('reconnecting', { ...info, attempt: this.attempt, delay });
    this.clear('reconnect');
    this.timers.reconnect = setTimeout(() => {
      this.timers.reconnect = null;
      void this.open();
    }, delay);
  }

  private reconnectDelay(kind: 'spread' | 'backoff' | 'long', retryAfterMs: number): number {
    // A 1001/1012 reaches every client of the node at the same moment. Each takes a random place in
    // the spread window and keeps it until connected (retrying one window later while the node is
    // still down), so the crowd reaches the restarted node evenly, whenever it is back.
    const now = performance.now();
    if (kind === 'spread') this.spread ??= startSpread(this.backoff.spread, now, this.random);
    else if (!this.spread) return backoffDelay(this.backoff, this.attempt, kind, retryAfterMs, this.random);
    const floor = kind === 'long' ? Math.max(retryAfterMs, this.backoff.long) : 0;
    const next = nextSpreadAttempt(this.spread, now, floor);
    this.spread.slot = next.slot;
    return next.delay;
  }

  private stop(status: ClientStatus, info: CloseInfo): void {
    const wasStopped = this.stopped;
    this.stopped = true;
    this.spread = null;
    this.generation++;
    this.authed = false;
    for (const key of Object.keys(this.timers) as (keyof typeof this.timers)[]) this.clear(key);
    if (typeof removeEventListener === 'function' && typeof document !== 'undefined') {
      removeEventListener('online', this.wake);
      document.removeEventListener('visibilitychange', this.onVisibility);
    }
    this.socket?.close(1000, 'normal');
    this.socket = null;
    if (wasStopped && this.current !== 'idle') return;
    const error = new GatehouseClientError(
      ClientErrorCode.CLOSED,
      `client ${status} (${info.code} ${info.reason})`,
      undefined,
      info.code,
    );
    for (const [, request] of this.requests) {
      clearTimeout(request.timer);
      request.reject(error);
    }
    this.requests.clear();
    this.outbox.fail(error);
    for (const w of this.waiters.splice(0)) w.reject(error);
    this.setStatus(status);
    if (status !== 'disconnected') this.emit(status as TerminalStatus, info);
    this.emit('disconnected', { ...info, willReconnect: false });
  }

  private clear(key: keyof GatehouseClient['timers']): void {
    const timer = this.timers[key];
    if (timer) clearTimeout(timer);
    this.timers[key] = null;
  }

  /** `validate-token` for a browser's bare 1006: the token's error code, or null when it is fine (or unknown). */
  private async validateToken(token: string): Promise<string | null> {
    try {
      const res = await this.rest.fetch(`${this.rest.baseUrl}/api/v1/public/validate-token`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const body = (await res.json()) as { valid?: boolean; error?: string };
      return body.valid === false && body.error ? body.error : null;
    } catch {
      return null;
    }
  }

  // ---- liveness and token ------------------------------------------------------------------

  private startPing(): void {
    const every = Math.max(50, Math.min(this.options.pingInterval, this.options.pongTimeout) / 2);
    this.timers.ping = setTimeout(() => {
      this.timers.ping = null;
      if (!this.authed) return;
      const now = Date.now();
      if (this.pingSentAt && now - this.pingSentAt >= this.options.pongTimeout) {
        // Nothing came back: the connection is dead even if the platform did not notice.
        const gen = this.generation;
        this.socket?.abort();
        void this.onClosed(gen, 1006, 'PING_TIMEOUT', null);
        return;
      }
      if (!this.pingSentAt && now - this.lastFrameAt >= this.options.pingInterval) this.ping();
      this.startPing();
    }, every);
  }

  private ping(): void {
    if (!this.authed || this.pingSentAt) return;
    this.pingSentAt = Date.now();
    this.write({ type: 'ping' });
  }

  private async refreshToken(): Promise<void> {
    if (this.refreshing || !this.options.getToken) return;
    this.refreshing = true;
    try {
      this.tokenPromise = null;
      const token = await this.newToken();
      const reply = await this.request<{ expires_at: number }>({ type: 'refresh', token });
      this.expiresAt = reply.body?.expires_at ?? this.expiresAt;
      this.emit('tokenRefreshed', { expiresAt: this.expiresAt });
    } catch (err) {
      this.emit('error', err instanceof GatehouseClientError ? err : new GatehouseClientError('ERROR', String(err)));
    } finally {
      this.refreshing = false;
    }
  }

  // ---- messages --------------------------------------------------------------------------

  private onAck(entry: ReturnType<Outbox['all']>[number], frame: ReplyFrame<'ack', AckBody>): void {
    if (frame.code === 200 && frame.body) {
      entry.resolve(frame.body);
      return;
    }
    if (frame.error === 'STORE_UNAVAILABLE' || frame.error === 'INTERNAL' || frame.error === 'RATE_LIMITED') {
      // Not stored: try again with the same client_msg_id.
      entry.sentAt = 0;
      this.outbox.add(entry);
      this.scheduleResend();
      return;
    }
    entry.reject(new GatehouseClientError(frame.error ?? 'ERROR', frame.err_msg, frame.code));
  }

  /** Sends again what has waited a while for its ack (a frame dropped for rate, a store error). */
  private scheduleResend(): void {
    if (this.timers.resend) return;
    this.timers.resend = setTimeout(() => {
      this.timers.resend = null;
      if (!this.authed) return;
      const now = Date.now();
      for (const entry of this.outbox.all())
        if (now - entry.sentAt >= RESEND_AFTER) {
          entry.sentAt = now;
          this.write(entry.frame);
        }
    }, RESEND_AFTER);
  }

  private deliver(message: ChatMessage, offline: boolean): void {
    if (!message || typeof message.seq !== 'number') return;
    if (!this.inbox.take(message)) {
      this.scheduleAck();
      return;
    }
    this.deliveries = this.deliveries.then(async () => {
      const results = await Promise.allSettled(this.emit('message', message, { offline }));
      for (const r of results) if (r.status === 'rejected') this.listenerFailed(r.reason);
      if (this.options.autoAck) this.ack(message);
    });
  }

  private scheduleAck(): void {
    if (this.inbox.pendingAcks >= this.options.ackBatch) this.flushAcks();
    else this.timers.ack ??= setTimeout(() => this.flushAcks(), this.options.ackDelay);
  }

  private flushAcks(): void {
    this.clear('ack');
    if (!this.authed || this.inbox.pendingAcks === 0) return;
    for (const ack of this.inbox.drainAcks()) this.write({ type: 'ack', ...ack });
  }

  private reportingError = false;

  /** A handler that threw becomes an `error` event (`HANDLER_FAILED`), unless an error handler threw. */
  protected override listenerFailed(err: unknown): void {
    if (this.reportingError || this.listenerCount('error') === 0) {
      super.listenerFailed(err);
      return;
    }
    this.reportingError = true;
    try {
      this.emit(
        'error',
        new GatehouseClientError('HANDLER_FAILED', `an event handler threw: ${err}`, undefined, undefined, {
          cause: err,
        }),
      );
    } finally {
      this.reportingError = false;
    }
  }
}
