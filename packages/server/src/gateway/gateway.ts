import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  CloseCode,
  CMD_IDS,
  CONNECTED_AUTHENTICATED_MESSAGE,
  CONNECTED_UNAUTHENTICATED_MESSAGE,
  type ErrorCode,
  errorInfo,
  normalizeDeviceType,
  SUBPROTOCOL,
  TOKEN_AUTH_FAILED_MESSAGE,
  TOKEN_EXPIRED_LOGIN_MESSAGE,
  TOKEN_EXPIRED_MESSAGE,
  UNAUTHENTICATED_FRAME_TYPES,
} from '@gatehouse/protocol';
import type { Logger } from 'pino';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import type { AuthContext, AuthService } from '../auth/auth-service.js';
import { RateLimitedError, type RateLimits } from '../auth/rate-limits.js';
import type { Clock } from '../clock.js';
import type { ClusterState, SlotHolder } from '../cluster/cluster-state.js';
import type { EndpointConfig } from '../config.js';
import type { ControlChannel, ControlEvent } from '../control-channel.js';
import { GatehouseError, isGatehouseError } from '../errors.js';
import { hotCounters } from '../metrics.js';
import { isStoreFailure } from '../store/connection-failures.js';
import { Connection } from './connection.js';
import { ConnectionRegistry, kick } from './connection-registry.js';
import { flushConnection } from './frame-writer.js';
import type { GatewaySettings } from './gateway-settings.js';
import { type HandshakeParseOptions, type HandshakeRequest, parseHandshakeRequest } from './handshake-request.js';
import { errorEvent, errorReply, type RequestFrame } from './replies.js';
import type { FrameContext, FrameHandler } from './session-frames.js';
import * as sessionFrames from './session-frames.js';

/** Malformed frames a socket may send before it is closed with 4400. */
const MAX_MALFORMED_FRAMES = 5;
/** Frames dropped for rate in a row before the socket is closed with 4429. */
const MAX_RATE_DROPS = 20;
/** Socket errors are followed by `close`, which does the cleanup. */
const ignoreError = (): void => {};
/** An upgrade socket's error handler: one function for every socket (no closure each). */
function destroyOnError(this: Duplex): void {
  this.destroy();
}
/** The Connection of a ws socket, for listeners shared by every socket (a closure each costs ~200 bytes). */
const CONNECTION = Symbol('connection');
type ListenedSocket = WebSocket & { [CONNECTION]: Connection };
const connectionOf = (ws: WebSocket): Connection => (ws as ListenedSocket)[CONNECTION];
/**
 * Frames handled on a socket that has not authenticated: SPEC's list, plus `getuserinfo`,
 * whose handler answers such a socket itself (status 0, code 401, "Illegal Sources").
 */
const ANSWERED_UNAUTHENTICATED: ReadonlySet<string> = new Set([...UNAUTHENTICATED_FRAME_TYPES, 'getuserinfo']);
const TOO_MANY_UNAUTHENTICATED = { code: 'SERVER_BUSY', message: 'too many unauthenticated sockets' } as const;
const TOO_MANY_HANDSHAKES = {
  code: 'SERVER_BUSY',
  message: 'too many handshakes in progress; retry later',
  retryAfter: 1,
} as const;

/** Writes an HTTP error response with the spec's headers and body (SPEC §3), then closes the socket. */
function writeHttpRefusal(socket: Duplex, refusal: Refusal): void {
  if (socket.destroyed) return;
  const { code, message, retryAfter } = refusal;
  const httpStatus = refusal.status ?? errorInfo(code).status;
  const body = JSON.stringify({ code: httpStatus, error: code, err_msg: message });
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${httpStatus} ${STATUS_CODES[httpStatus] ?? 'Error'}\r\n` +
      'Connection: close\r\nContent-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      `X-WebSocket-Error-Code: ${code}\r\nX-WebSocket-Error-Message: ${message}\r\n` +
      (retryAfter ? `Retry-After: ${retryAfter}\r\n` : '') +
      `\r\n${body}`,
  );
}

export interface GatewayHooks {
  /**
   * Runs as a connection is bound to its principal, before its greeting: live delivery can reach
   * it from here on, while onAuthenticated (and with it the replay) follows some awaits later.
   */
  onBound?(conn: Connection): void;
  /** Runs after a connection authenticated (offline replay goes here). */
  onAuthenticated?(conn: Connection): Promise<void> | void;
  /** Runs after a connection closed. */
  onClosed?(conn: Connection): void;
  /** Counts a handshake: `ok`, `anonymous` (no credential where one is optional) or the refusal code. */
  onHandshake?(outcome: string): void;
}

export interface GatewayOptions {
  auth: AuthService;
  clock: Clock;
  limits: RateLimits;
  control: ControlChannel;
  settings: GatewaySettings;
  log: Logger;
  nodeId: string;
  slots: Pick<ClusterState, 'claimSlot' | 'releaseSlot' | 'lostSlots'>;
  hooks?: GatewayHooks;
}

/** Why a handshake is refused, and what the answer carries. */
interface Refusal {
  code: ErrorCode;
  message: string;
  status?: number | undefined;
  retryAfter?: number | undefined;
  /** The principal, when the credential was good but a policy refused it (for the log). */
  principal?: string;
}

/** An upgrade in progress: the raw pieces ws needs for the 101, and the request parsed once. */
interface Upgrade {
  req: IncomingMessage;
  socket: Duplex;
  head: Buffer;
  request: HandshakeRequest;
}

/**
 * The WebSocket side: authenticates every upgrade before accepting it, owns the sockets,
 * routes frames to handlers, and keeps sockets honest (auth timeout, heartbeat, expiry,
 * size and rate limits). Knows nothing of which store or broker is behind it.
 */
export class Gateway implements FrameContext {
  readonly registry: ConnectionRegistry;
  readonly auth: AuthService;
  readonly clock: Clock;
  readonly log: Logger;
  readonly nodeId: string;
  private readonly limits: RateLimits;
  private readonly control: ControlChannel;
  private readonly settings: GatewaySettings;
  private readonly slots: GatewayOptions['slots'];
  private readonly hooks: GatewayHooks;
  private readonly wss: WebSocketServer;
  private readonly parseOptions: HandshakeParseOptions;
  private readonly handlers = new Map<string, FrameHandler>();
  private readonly allowedOrigins: Set<string>;
  private stopSweep: (() => void) | null = null;
  private stopSlotCheck: (() => void) | null = null;
  /** The tail of each slot's chain of cluster claims and releases (see inSlotOrder). */
  private readonly slotTasks = new Map<string, Promise<void>>();
  /** Connections whose slot claim is under way (not bound yet). */
  private readonly attaching = new WeakSet<Connection>();
  private closing = false;
  /** Handshakes with a credential being worked on, from the rate limit to the end of the offline replay. */
  private handshakesInProgress = 0;
  /** True while the store could not be reached at start: every handshake is refused. */
  private starting: (() => boolean) | null = null;
  /** The listeners of every socket, shared: `this` is the socket, its Connection is a property of it. */
  private readonly socketListeners: {
    message(this: WebSocket, data: RawData, isBinary: boolean): void;
    pong(this: WebSocket): void;
    close(this: WebSocket, code: number, reason: Buffer): void;
  };

  constructor(options: GatewayOptions) {
    this.auth = options.auth;
    this.clock = options.clock;
    this.limits = options.limits;
    this.control = options.control;
    this.settings = options.settings;
    this.log = options.log;
    this.nodeId = options.nodeId;
    this.slots = options.slots;
    this.hooks = options.hooks ?? {};
    const settings = this.settings;
    this.registry = new ConnectionRegistry(settings.connectionPolicy);
    this.parseOptions = {
      endpoints: new Map(settings.endpoints.map((e) => [e.path, e])),
      trustProxy: settings.trustProxy,
    };
    this.allowedOrigins = new Set(settings.allowedOrigins);
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      // Frames up to twice the limit are read so they can be refused with 4413; larger ones ws closes with 1009.
      maxPayload: settings.maxFrameBytes * 2,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
    const { login, auth: authFrame, hello, ping, refresh, whoami, getuserinfo, logout } = sessionFrames;
    for (const [name, handler] of Object.entries({
      login,
      auth: authFrame,
      hello,
      ping,
      refresh,
      whoami,
      getuserinfo,
      logout,
    }))
      this.handlers.set(name, handler);
    this.control.on((event) => this.onControl(event));
    const gateway = this;
    this.socketListeners = {
      message(data, isBinary) {
        gateway.onFrame(connectionOf(this), data, isBinary);
      },
      pong() {
        connectionOf(this).awaitingPong = false;
      },
      close(code, reason) {
        gateway.onClose(connectionOf(this), code, reason);
      },
    };
  }

  /**
   * Refuses handshakes (503 SERVER_BUSY, close 1013 "reconnect slowly") while `starting`
   * answers true: the node listens before its store could be reached.
   */
  holdWhile(starting: () => boolean): void {
    this.starting = starting;
  }

  /** Adds a handler for a frame type (messaging registers message/ack/history). */
  handle(type: string, handler: FrameHandler): void {
    this.handlers.set(type, handler);
  }

  attachTo(server: Server): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.onUpgrade(req, socket, head).catch((err) => {
        this.log.error({ err }, 'upgrade failed');
        this.hooks.onHandshake?.('INTERNAL');
        writeHttpRefusal(socket, { code: 'INTERNAL', message: 'internal error' });
      });
    });
    this.stopSweep = this.clock.every(this.settings.sweepInterval, () => this.sweep());
    this.stopSlotCheck = this.clock.every(this.settings.heartbeatInterval, () => {
      this.checkSlots().catch((err) => this.log.warn({ err }, 'slot check failed'));
    });
  }

  private async onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', destroyOnError);
    const request = parseHandshakeRequest(req, this.parseOptions);
    const up: Upgrade = { req, socket, head, request };
    const endpoint = request.endpoint;
    if (!endpoint) return this.rejectHttp(up, { code: 'NOT_FOUND', message: 'no WebSocket endpoint at this path' });
    if (this.closing) return this.rejectHttp(up, { code: 'SERVER_BUSY', message: 'server is shutting down' });
    if (this.starting?.())
      return this.rejectHttp(up, {
        code: 'SERVER_BUSY',
        message: 'server is starting: its store is not reachable yet',
      });
    if (this.handshakesInProgress >= this.settings.maxHandshakesInProgress)
      return this.refuseEarly(up, endpoint, TOO_MANY_HANDSHAKES);
    const done = this.admit(socket);
    let handedOver = false;
    try {
      handedOver = await this.authenticateUpgrade(up, endpoint, done);
    } finally {
      if (!handedOver) done();
    }
  }

  /**
   * Counts a handshake in progress until `done` is called or its socket closes, whichever
   * comes first (ws may drop a malformed upgrade without calling back).
   */
  private admit(socket: Duplex): () => void {
    this.handshakesInProgress++;
    let open = true;
    const done = () => {
      if (!open) return;
      open = false;
      this.handshakesInProgress--;
      socket.off('close', done);
    };
    socket.once('close', done);
    return done;
  }

  /**
   * The checks that may wait (rate limit, credential) and the accept. Resolves true when the
   * handshake went on to `attach`, which calls `done` once the socket is bound and replayed.
   */
  private async authenticateUpgrade(up: Upgrade, endpoint: EndpointConfig, done: () => void): Promise<boolean> {
    const request = up.request;
    let refusal: Refusal | null = null;
    try {
      await this.limits.handshake(request.ip);
    } catch (err) {
      refusal = this.describe(err);
    }
    refusal ??= this.checkRequest(request);
    if (refusal) {
      this.refuseEarly(up, endpoint, refusal);
      return false;
    }
    const credential = request.credential;
    if (!credential) {
      if (endpoint.tokenRequired)
        this.refuse(up, endpoint, { code: 'MISSING_TOKEN', message: 'no token was presented' });
      else if (this.unauthenticatedFull()) this.refuseEarly(up, endpoint, TOO_MANY_UNAUTHENTICATED);
      else {
        this.hooks.onHandshake?.('anonymous');
        this.accept(up, endpoint, null);
      }
      return false;
    }
    let auth: AuthContext;
    try {
      auth = await this.auth.authenticate(credential, request.device.deviceId);
    } catch (err) {
      const refusal = this.describe(err);
      // Logging in would not help while the store is away: refused as a busy node refuses.
      if (refusal.code === 'STORE_UNAVAILABLE') this.refuseEarly(up, endpoint, refusal);
      else this.refuse(up, endpoint, refusal);
      return false;
    }
    if (!endpoint.kinds.includes(auth.principal.kind)) {
      this.refuse(up, endpoint, {
        code: 'FORBIDDEN',
        message: `${auth.principal.kind} may not connect to ${endpoint.path}`,
        principal: auth.principal.id,
      });
      return false;
    }
    this.hooks.onHandshake?.('ok');
    this.accept(up, endpoint, auth, undefined, done);
    return true;
  }

  /** The refusals made before any credential is looked at: capacity, origin, a malformed request. */
  private checkRequest(request: HandshakeRequest): Refusal | null {
    if (this.registry.size >= this.settings.maxConnections)
      return { code: 'SERVER_BUSY', message: 'connection limit reached' };
    const origin = request.origin;
    if (origin && this.allowedOrigins.size > 0 && !this.allowedOrigins.has(origin))
      return { code: 'ORIGIN_NOT_ALLOWED', message: 'origin is not allowed' };
    if (request.invalid) return { code: 'INVALID_REQUEST', message: request.invalid };
    return null;
  }

  private unauthenticatedFull(): boolean {
    return this.registry.unauthenticated >= this.settings.maxUnauthenticated;
  }

  private describe(err: unknown): Refusal {
    if (err instanceof RateLimitedError)
      return { code: 'RATE_LIMITED', message: err.message, status: 429, retryAfter: err.retryAfterSeconds };
    if (isGatehouseError(err)) return { code: err.code, message: err.message, status: err.status };
    if (isStoreFailure(err)) {
      this.log.warn({ err }, 'handshake failed: the store is unavailable');
      return { code: 'STORE_UNAVAILABLE', message: 'the store is unavailable; retry shortly', retryAfter: 1 };
    }
    this.log.error({ err }, 'handshake failed');
    return { code: 'INTERNAL', message: 'internal error', status: 500 };
  }

  /**
   * A bad credential: rejected in HTTP, or opened-then-closed, or opened for login (per
   * endpoint). On a `login` endpoint the error frame is the first frame (no `connected`
   * before it: such clients read one frame), and the socket counts against the
   * unauthenticated cap like any other socket that has not logged in.
   */
  private refuse(up: Upgrade, endpoint: EndpointConfig, refusal: Refusal): void {
    if (endpoint.rejectMode === 'http') {
      this.rejectHttp(up, refusal);
      return;
    }
    if (endpoint.rejectMode === 'login') {
      if (this.unauthenticatedFull()) {
        this.refuseEarly(up, endpoint, TOO_MANY_UNAUTHENTICATED);
        return;
      }
      this.noteRefusal(up.request, refusal);
      const message = refusal.code === 'TOKEN_EXPIRED' ? TOKEN_EXPIRED_LOGIN_MESSAGE : TOKEN_AUTH_FAILED_MESSAGE;
      this.accept(up, endpoint, null, errorEvent(refusal.code, message, refusal.status));
      return;
    }
    this.noteRefusal(up.request, refusal);
    this.openErrorClose(up, refusal);
  }

  /**
   * A refusal made before any credential is looked at (rate, capacity, origin, malformed
   * request): in the HTTP handshake, or opened-then-closed on a `close` endpoint so that a
   * browser learns why. A `login` endpoint never opens for these: logging in would not help.
   */
  private refuseEarly(up: Upgrade, endpoint: EndpointConfig, refusal: Refusal): void {
    if (endpoint.rejectMode !== 'close') {
      this.rejectHttp(up, refusal);
      return;
    }
    this.noteRefusal(up.request, refusal);
    this.openErrorClose(up, refusal);
  }

  /** Counts and logs a refusal: code, endpoint, address and principal if known — never the credential. */
  private noteRefusal(request: HandshakeRequest, refusal: Refusal): void {
    this.hooks.onHandshake?.(refusal.code);
    this.log.info(
      {
        code: refusal.code,
        endpoint: request.path.slice(0, 256),
        ip: request.ip,
        ...(refusal.principal ? { principal: refusal.principal } : {}),
      },
      'handshake refused',
    );
  }

  /** Opens the socket, sends the error frame and closes with the code's close code (SPEC §5). */
  private openErrorClose(up: Upgrade, refusal: Refusal): void {
    const { code, message, status } = refusal;
    this.upgrade(up, (ws) => {
      ws.send(errorEvent(code, message, status));
      // A refusal without a close code of its own: 1013 (retry later) for a 503, else 4401.
      const httpStatus = status ?? errorInfo(code).status;
      ws.close(
        errorInfo(code).close ?? (httpStatus === 503 ? CloseCode.TRY_AGAIN_LATER : CloseCode.UNAUTHORIZED),
        code,
      );
      return undefined;
    });
  }

  /** Refuses in the HTTP handshake with the spec's status, headers and body. */
  private rejectHttp(up: Upgrade, refusal: Refusal): void {
    this.noteRefusal(up.request, refusal);
    writeHttpRefusal(up.socket, refusal);
  }

  private upgrade(up: Upgrade, then: (ws: WebSocket) => Connection | undefined): void {
    const socket = up.socket;
    // The client may have gone while the credential was checked.
    if (socket.destroyed) return;
    // The 101 response and the first frames (`connected`, the offline replay) leave in one
    // write when this turn ends, instead of one write (and one packet) each: the socket stays
    // corked until the end of the turn, and what the connection has queued by then (with an
    // embedded store the replay's `offline_messages_complete` is, since its reads settle within
    // the turn) is handed to the socket before it is uncorked.
    socket.cork();
    this.wss.handleUpgrade(up.req, socket, up.head, (ws) => {
      const conn = then(ws);
      setImmediate(() => {
        if (conn) flushConnection(conn);
        socket.uncork();
      });
    });
  }

  /**
   * Opens the socket: authenticated (`auth`), or waiting for an in-band login — greeted with
   * `connected`, or with `firstFrame` (the refusal of a bad credential) instead.
   */
  private accept(
    up: Upgrade,
    endpoint: EndpointConfig,
    auth: AuthContext | null,
    firstFrame?: string,
    attached?: () => void,
  ): void {
    // Taken out before the callback: its context lives as long as the socket's listeners, and
    // must not keep the whole request (headers, token) alive for the connection's life.
    const { ip, device } = up.request;
    const socket = up.socket;
    const settings = this.settings;
    this.upgrade(up, (ws) => {
      const conn = new Connection({
        id: randomUUID(),
        ws,
        socket,
        endpoint,
        ip,
        device,
        openedAt: this.clock.now(),
        messagesPerSecond: settings.messagesPerSecond,
        maxBufferedBytes: settings.maxBufferedBytes,
      });
      this.registry.add(conn);
      this.listen(conn);
      if (this.log.isLevelEnabled('debug'))
        this.log.debug(
          { conn: conn.id, endpoint: endpoint.path, ip, ...(auth ? { principal: auth.principal.id } : {}) },
          'connection opened',
        );
      if (auth) {
        const greet = () =>
          conn.send({
            type: 'connected',
            code: 200,
            body: {
              message: CONNECTED_AUTHENTICATED_MESSAGE,
              session_id: conn.id,
              user: auth.principal,
              expires_at: auth.expiresAt,
            },
            err_msg: '',
          });
        conn.admission = attached ?? null;
        this.attach(conn, auth, greet)
          .catch((err) => this.log.error({ err }, 'attach failed'))
          .finally(() => conn.leaveAdmission());
        return conn;
      }
      if (firstFrame) {
        conn.sendRaw(firstFrame);
        return conn;
      }
      conn.send({
        type: 'connected',
        code: 200,
        body: { message: CONNECTED_UNAUTHENTICATED_MESSAGE, session_id: conn.id },
        err_msg: '',
      });
      return conn;
    });
  }

  /** The socket's listeners: shared functions that find `conn` on the socket. */
  private listen(conn: Connection): void {
    const ws = conn.ws as ListenedSocket;
    ws[CONNECTION] = conn;
    const listeners = this.socketListeners;
    ws.on('message', listeners.message);
    ws.on('pong', listeners.pong);
    ws.on('error', ignoreError);
    ws.on('close', listeners.close);
  }

  private onClose(conn: Connection, code: number, reason: Buffer): void {
    conn.closed = true;
    if (this.log.isLevelEnabled('debug'))
      this.log.debug(
        { conn: conn.id, code, reason: reason.toString().slice(0, 123), principal: conn.auth?.principal.id },
        'connection closed',
      );
    this.registry.remove(conn);
    const slot = conn.slot;
    if (slot)
      this.inSlotOrder(slot, () =>
        this.slots.releaseSlot(slot, conn.id).catch((err) => this.log.warn({ err }, 'slot release failed')),
      );
    this.hooks.onClosed?.(conn);
  }

  /**
   * Runs this node's cluster claims (each with its socket's binding and greeting) and releases
   * of one slot one after the other, in the order the sockets authenticated: were a newer local
   * socket's claim to land first, the older socket's claim would take the slot from it without
   * evicting it, and a later claim on another node would then evict the newer one and leave
   * the device no socket. A task never breaks the chain (its error is logged).
   */
  private inSlotOrder(slot: string, task: () => Promise<void>): Promise<void> {
    const next = (this.slotTasks.get(slot) ?? Promise.resolve())
      .then(task)
      .catch((err) => this.log.error({ err }, 'slot task failed'));
    this.slotTasks.set(slot, next);
    next.then(() => {
      if (this.slotTasks.get(slot) === next) this.slotTasks.delete(slot);
    });
    return next;
  }

  /**
   * Anti-entropy for slots: a socket whose slot another node took while the evict could not
   * reach us (broker down) is closed with 4409 here, within one heartbeat interval.
   */
  private async checkSlots(): Promise<void> {
    const held: { slot: string; connectionId: string }[] = [];
    for (const conn of this.registry.all)
      if (conn.slot && conn.slotClaimed && !conn.closed) held.push({ slot: conn.slot, connectionId: conn.id });
    if (held.length === 0) return;
    for (const connectionId of await this.slots.lostSlots(held)) {
      const conn = this.registry.byId(connectionId);
      if (conn) kick(conn, 'REPLACED');
    }
  }

  checkKind(conn: Connection, auth: AuthContext): void {
    if (!conn.endpoint.kinds.includes(auth.principal.kind))
      throw new GatehouseError('FORBIDDEN', `${auth.principal.kind} may not connect to ${conn.endpoint.path}`);
  }

  /**
   * Binds a verified principal to a socket and `greet`s it (the `connected` frame, or the
   * in-band login/auth reply), then runs the offline replay. A connection that takes a device
   * slot is bound and greeted while its cluster claim of the slot is held (before any later
   * claim, on any node, is decided): the socket greeted later is always the one whose claim
   * came later, and that claim evicts the older socket (4409) wherever it is.
   */
  async attach(conn: Connection, auth: AuthContext, greet: () => void): Promise<void> {
    if (conn.closed) return;
    if (this.attaching.has(conn)) throw new GatehouseError('INVALID_REQUEST', 'already authenticating');
    conn.deviceType = conn.declaredDeviceType ?? auth.deviceType ?? 'unknown';
    const slot = this.registry.slotOf(auth, conn.deviceType);
    if (!slot) {
      this.bind(conn, auth);
      greet();
    } else {
      this.attaching.add(conn);
      try {
        await this.inSlotOrder(slot, async () => {
          let greeted = false;
          /** False when the socket went away meanwhile: the cluster claim is then given up. */
          const bindAndGreet = (): boolean => {
            if (greeted) return true;
            if (conn.closed) return false;
            greeted = true;
            this.bind(conn, auth);
            greet();
            // Handed to the socket now, not at the end of this turn: the greeting leaves before
            // the claim is released, so a later claim's greeting cannot overtake it.
            flushConnection(conn);
            return true;
          };
          // A socket gone before its claim was decided gives the claim up (bindAndGreet
          // answers false), so there is no slot of its own to release here.
          const claimed = await this.claimClusterSlot(conn, slot, bindAndGreet);
          conn.slotClaimed = claimed;
          bindAndGreet();
        });
      } finally {
        this.attaching.delete(conn);
      }
      if (conn.closed || conn.auth !== auth) return;
    }
    await this.hooks.onAuthenticated?.(conn);
  }

  private bind(conn: Connection, auth: AuthContext): void {
    const wasUnauthenticated = conn.auth === null;
    conn.auth = auth;
    this.hooks.onBound?.(conn);
    this.registry.authenticated(conn, wasUnauthenticated);
  }

  /**
   * Claims the slot cluster-wide (the last claim wins) and evicts the holder it displaced on
   * another node. Resolves whether the claim was recorded; a failed claim (database away)
   * leaves the local slot alone holding.
   */
  private async claimClusterSlot(conn: Connection, slot: string, whileHeld: () => boolean): Promise<boolean> {
    let previous: SlotHolder | null;
    let kept = true;
    try {
      previous = await this.slots.claimSlot(slot, conn.id, () => {
        kept = whileHeld();
        return kept;
      });
    } catch (err) {
      this.log.warn({ err }, 'cluster slot claim failed; the local slot still holds');
      return false;
    }
    // A handshake its client gave up while it waited for the claim (a slow database) must not
    // take the slot from, and evict, the socket that client has made since (SPEC §7).
    if (!kept) return false;
    if (previous && previous.node !== this.nodeId)
      this.control
        .publish({ op: 'evict', connectionId: previous.connectionId, node: previous.node })
        .catch((err) => this.log.warn({ err }, 'evict publish failed'));
    return true;
  }

  private onFrame(conn: Connection, data: RawData, isBinary: boolean): void {
    if (conn.closed) return;
    hotCounters.framesIn++;
    conn.awaitingPong = false;
    const buffer = data as Buffer;
    if (buffer.length > this.settings.maxFrameBytes) {
      conn.sendRaw(errorEvent('PAYLOAD_TOO_LARGE', `frame exceeds ${this.settings.maxFrameBytes} bytes`));
      conn.close(CloseCode.PAYLOAD_TOO_LARGE, 'PAYLOAD_TOO_LARGE');
      return;
    }
    if (!this.takeRateToken(conn)) return;
    if (isBinary) {
      this.malformed(conn, null, 'binary frames are not supported; send JSON text');
      return;
    }
    let frame: RequestFrame;
    try {
      const parsed: unknown = JSON.parse(buffer.toString('utf8'));
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
        this.malformed(conn, null, 'a frame must be a JSON object');
        return;
      }
      frame = parsed as RequestFrame;
    } catch {
      this.malformed(conn, null, 'frame is not valid JSON');
      return;
    }
    if (frame.id !== undefined && typeof frame.id !== 'string' && typeof frame.id !== 'number') delete frame.id;
    if (frame.cmd_id !== undefined && typeof frame.cmd_id !== 'number') delete frame.cmd_id;
    const type =
      typeof frame.type === 'string' ? frame.type : frame.cmd_id !== undefined ? CMD_IDS[frame.cmd_id] : undefined;
    if (!type) {
      this.malformed(conn, frame, 'frame has no type');
      return;
    }
    frame.type = type;
    const handler = this.handlers.get(type);
    if (!handler) {
      this.malformed(conn, frame, `unknown frame type "${type.slice(0, 64)}"`);
      return;
    }
    const replyType = type === 'message' ? 'ack' : type;
    if (!conn.auth && !ANSWERED_UNAUTHENTICATED.has(type)) {
      conn.sendRaw(errorReply(frame, replyType, 'MISSING_TOKEN', 'authenticate first (login or auth)'));
      return;
    }
    let result: Promise<void> | void;
    try {
      result = handler(this, conn, frame);
    } catch (err) {
      this.replyError(conn, frame, replyType, err);
      return;
    }
    if (result) result.catch((err) => this.replyError(conn, frame, replyType, err));
  }

  private replyError(conn: Connection, frame: RequestFrame, replyType: string, err: unknown): void {
    const { code, message, status } = this.describe(err);
    conn.sendRaw(errorReply(frame, replyType, code, message, status));
  }

  private malformed(conn: Connection, frame: RequestFrame | null, message: string): void {
    conn.malformedFrames++;
    conn.sendRaw(
      frame?.type && typeof frame.type === 'string'
        ? errorReply(frame, frame.type, 'INVALID_REQUEST', message)
        : errorEvent('INVALID_REQUEST', message),
    );
    if (conn.malformedFrames >= MAX_MALFORMED_FRAMES) conn.close(CloseCode.INVALID_REQUEST, 'INVALID_REQUEST');
  }

  /** Token bucket per connection: `limits.messagesPerSecond`, with the same burst. */
  private takeRateToken(conn: Connection): boolean {
    const rate = this.settings.messagesPerSecond;
    const now = this.clock.now();
    conn.rateTokens = Math.min(rate, conn.rateTokens + ((now - conn.rateUpdatedAt) * rate) / 1000);
    conn.rateUpdatedAt = now;
    if (conn.rateTokens >= 1) {
      conn.rateTokens -= 1;
      conn.rateDrops = 0;
      return true;
    }
    conn.rateDrops++;
    conn.sendRaw(errorEvent('RATE_LIMITED', `more than ${rate} frames per second`));
    if (conn.rateDrops >= MAX_RATE_DROPS) conn.close(CloseCode.RATE_LIMITED, 'RATE_LIMITED');
    return false;
  }

  /** Once per sweep interval: auth timeouts, token expiry warnings and closes, heartbeats. */
  sweep(): void {
    const now = this.clock.now();
    const { authTimeout, heartbeatInterval, heartbeatTimeout, expiringNotice } = this.settings;
    for (const conn of this.registry.all) {
      if (conn.closed) continue;
      const auth = conn.auth;
      if (!auth) {
        if (now - conn.openedAt >= authTimeout) conn.close(CloseCode.TIMEOUT, 'AUTH_TIMEOUT');
        continue;
      }
      if (now >= auth.expiresAt) {
        conn.sendRaw(errorEvent('TOKEN_EXPIRED', TOKEN_EXPIRED_MESSAGE));
        conn.close(CloseCode.UNAUTHORIZED, 'TOKEN_EXPIRED');
        continue;
      }
      if (!conn.expiringNotified && now >= auth.expiresAt - expiringNotice) {
        conn.expiringNotified = true;
        conn.send({ type: 'token_expiring', code: 200, expires_at: auth.expiresAt });
      }
      if (conn.awaitingPong) {
        if (now - conn.lastPingAt >= heartbeatTimeout) {
          conn.close(CloseCode.TIMEOUT, 'HEARTBEAT_TIMEOUT');
          // A dead peer never answers the close handshake; do not wait ws's 30 s for it.
          conn.ws.terminate();
        }
      } else if (now - conn.lastPingAt >= heartbeatInterval) {
        conn.awaitingPong = true;
        conn.lastPingAt = now;
        conn.ws.ping();
      }
    }
  }

  private onControl(event: ControlEvent): void {
    switch (event.op) {
      case 'session-revoked':
        for (const conn of this.registry.ofSession(event.sid)) kick(conn, 'REVOKED');
        break;
      case 'principal-revoked':
        for (const conn of this.registry.ofPrincipal(event.id)) kick(conn, 'REVOKED');
        break;
      case 'blocked':
        for (const conn of this.registry.ofPrincipal(event.id)) kick(conn, 'BLOCKED');
        break;
      case 'kick': {
        const deviceType = event.deviceType ? normalizeDeviceType(event.deviceType) : null;
        for (const conn of this.registry.ofPrincipal(event.id))
          if (!deviceType || conn.deviceType === deviceType) kick(conn, 'KICKED');
        break;
      }
      case 'evict': {
        if (event.node !== this.nodeId) break;
        const conn = this.registry.byId(event.connectionId);
        if (conn) kick(conn, 'REPLACED');
        break;
      }
      default:
        break;
    }
  }

  /** Stops accepting, closes every socket with 1001 and waits (bounded) for them to go. */
  async close(timeoutMs = 2000): Promise<void> {
    this.closing = true;
    this.stopSweep?.();
    this.stopSlotCheck?.();
    for (const conn of this.registry.all) conn.close(CloseCode.GOING_AWAY, 'SHUTTING_DOWN');
    const deadline = Date.now() + timeoutMs;
    while (this.registry.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const conn of this.registry.all) conn.ws.terminate();
    this.wss.close();
  }
}
