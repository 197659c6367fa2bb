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
  SUBPROTOCOL,
  TOKEN_AUTH_FAILED_MESSAGE,
  UNAUTHENTICATED_FRAME_TYPES,
} from '@gatehouse/protocol';
import type { Logger } from 'pino';
import { type RawData, WebSocketServer } from 'ws';
import type { AuthContext, AuthService } from '../auth/auth-service.js';
import { RateLimitedError, type RateLimits } from '../auth/rate-limits.js';
import type { Clock } from '../clock.js';
import type { ClusterState, SlotHolder } from '../cluster/cluster-state.js';
import { type ConnectionPolicy, type EndpointConfig, type GatehouseConfig, ms } from '../config.js';
import type { ControlChannel, ControlEvent } from '../control-channel.js';
import { GatehouseError, isGatehouseError } from '../errors.js';
import { hotCounters } from '../metrics.js';
import { Connection } from './connection.js';
import { ConnectionRegistry, kick } from './connection-registry.js';
import { flushConnection } from './frame-writer.js';
import { clientIp, type DeviceContext, deviceContext, findCredential } from './handshake-request.js';
import { errorEvent, errorReply, type RequestFrame } from './replies.js';
import type { FrameContext, FrameHandler } from './session-frames.js';
import * as sessionFrames from './session-frames.js';

/** Malformed frames a socket may send before it is closed with 4400. */
const MAX_MALFORMED_FRAMES = 5;
/** Frames dropped for rate in a row before the socket is closed with 4429. */
const MAX_RATE_DROPS = 20;
/** Socket errors are followed by `close`, which does the cleanup. */
const ignoreError = (): void => {};

export interface GatewayHooks {
  /** Runs after a connection authenticated (offline replay goes here). */
  onAuthenticated?(conn: Connection): Promise<void> | void;
  /** Runs after a connection closed. */
  onClosed?(conn: Connection): void;
  /** Counts a handshake: `ok`, `anonymous` (no credential where one is optional) or the refusal code. */
  onHandshake?(outcome: string): void;
}

/**
 * The WebSocket side: authenticates every upgrade before accepting it, owns the sockets,
 * routes frames to handlers, and keeps sockets honest (auth timeout, heartbeat, expiry,
 * size and rate limits). Knows nothing of which store or broker is behind it.
 */
export class Gateway implements FrameContext {
  readonly registry: ConnectionRegistry;
  private readonly wss: WebSocketServer;
  private readonly endpoints: Map<string, EndpointConfig>;
  private readonly handlers = new Map<string, FrameHandler>();
  private readonly allowedOrigins: Set<string>;
  private stopSweep: (() => void) | null = null;
  private stopSlotCheck: (() => void) | null = null;
  /** The tail of each slot's chain of cluster claims and releases (see inSlotOrder). */
  private readonly slotTasks = new Map<string, Promise<void>>();
  /** Connections whose slot claim is under way (not bound yet). */
  private readonly attaching = new WeakSet<Connection>();
  private closing = false;
  private readonly timing: {
    authTimeout: number;
    heartbeatInterval: number;
    heartbeatTimeout: number;
    expiringNotice: number;
  };

  constructor(
    readonly auth: AuthService,
    readonly clock: Clock,
    private readonly limits: RateLimits,
    private readonly control: ControlChannel,
    private readonly config: GatehouseConfig,
    private readonly log: Logger,
    readonly nodeId: string,
    private readonly slots: Pick<ClusterState, 'claimSlot' | 'releaseSlot' | 'lostSlots'>,
    private readonly hooks: GatewayHooks = {},
  ) {
    this.registry = new ConnectionRegistry(config.ws.connectionPolicy as Record<string, ConnectionPolicy>);
    this.endpoints = new Map(config.ws.endpoints.map((e) => [e.path, e]));
    this.allowedOrigins = new Set(config.ws.allowedOrigins);
    this.timing = {
      authTimeout: ms(config, 'ws.authTimeout'),
      heartbeatInterval: ms(config, 'ws.heartbeatInterval'),
      heartbeatTimeout: ms(config, 'ws.heartbeatTimeout'),
      expiringNotice: ms(config, 'tokens.expiringNotice'),
    };
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      // Frames up to twice the limit are read so they can be refused with 4413; larger ones ws closes with 1009.
      maxPayload: config.ws.maxFrameBytes * 2,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
    const { login, auth: authFrame, hello, ping, refresh, whoami, logout } = sessionFrames;
    for (const [name, handler] of Object.entries({ login, auth: authFrame, hello, ping, refresh, whoami, logout }))
      this.handlers.set(name, handler);
    control.on((event) => this.onControl(event));
  }

  /** Adds a handler for a frame type (messaging registers message/ack/history). */
  handle(type: string, handler: FrameHandler): void {
    this.handlers.set(type, handler);
  }

  attachTo(server: Server): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.onUpgrade(req, socket, head).catch((err) => {
        this.log.error({ err }, 'upgrade failed');
        this.rejectHttp(socket, 'INTERNAL', 'internal error');
      });
    });
    this.stopSweep = this.clock.every(ms(this.config, 'ws.sweepInterval'), () => this.sweep());
    this.stopSlotCheck = this.clock.every(this.timing.heartbeatInterval, () => {
      this.checkSlots().catch((err) => this.log.warn({ err }, 'slot check failed'));
    });
  }

  private async onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', 'http://gatehouse');
    const endpoint = this.endpoints.get(url.pathname);
    if (!endpoint) return this.rejectHttp(socket, 'NOT_FOUND', 'no WebSocket endpoint at this path');
    if (this.closing) return this.rejectHttp(socket, 'SERVER_BUSY', 'server is shutting down');
    const ip = clientIp(req, this.config.server.trustProxy);
    let device: DeviceContext;
    let credential: string | null;
    try {
      await this.limits.handshake(ip);
      if (this.registry.size >= this.config.limits.maxConnections)
        throw new GatehouseError('SERVER_BUSY', 'connection limit reached');
      const origin = req.headers.origin;
      if (origin && this.allowedOrigins.size > 0 && !this.allowedOrigins.has(origin))
        throw new GatehouseError('ORIGIN_NOT_ALLOWED', 'origin is not allowed');
      device = deviceContext(req, url.searchParams);
      credential = findCredential(req, url.searchParams);
    } catch (err) {
      return this.refuseEarly(req, socket, head, endpoint, ...this.describe(err));
    }
    if (!credential) {
      if (endpoint.tokenRequired)
        return this.refuse(req, socket, head, endpoint, device, 'MISSING_TOKEN', 'no token was presented');
      if (this.registry.unauthenticated >= this.config.limits.maxUnauthenticated)
        return this.refuseEarly(req, socket, head, endpoint, 'SERVER_BUSY', 'too many unauthenticated sockets');
      this.hooks.onHandshake?.('anonymous');
      this.accept(req, socket, head, endpoint, device, null);
      return;
    }
    let auth: AuthContext;
    try {
      auth = await this.auth.authenticate(credential, device.deviceId);
      if (!endpoint.kinds.includes(auth.principal.kind))
        throw new GatehouseError('FORBIDDEN', `${auth.principal.kind} may not connect to ${endpoint.path}`);
    } catch (err) {
      const [code, message, status] = this.describe(err);
      return this.refuse(req, socket, head, endpoint, device, code, message, status);
    }
    this.hooks.onHandshake?.('ok');
    this.accept(req, socket, head, endpoint, device, auth);
  }

  private describe(err: unknown): [ErrorCode, string, number?, number?] {
    if (err instanceof RateLimitedError) return ['RATE_LIMITED', err.message, 429, err.retryAfterSeconds];
    if (isGatehouseError(err)) return [err.code, err.message, err.status];
    this.log.error({ err }, 'handshake failed');
    return ['INTERNAL', 'internal error', 500];
  }

  /** A bad credential: rejected in HTTP, or opened-then-closed, or opened for login (per endpoint). */
  private refuse(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    endpoint: EndpointConfig,
    device: DeviceContext,
    code: ErrorCode,
    message: string,
    status?: number,
  ): void {
    if (endpoint.rejectMode === 'http') {
      this.rejectHttp(socket, code, message, status);
      return;
    }
    this.hooks.onHandshake?.(code);
    if (endpoint.rejectMode === 'login') {
      this.accept(req, socket, head, endpoint, device, null, errorEvent(code, TOKEN_AUTH_FAILED_MESSAGE, status));
      return;
    }
    this.openErrorClose(req, socket, head, code, message, status);
  }

  /**
   * A refusal made before any credential is looked at (rate, capacity, origin, malformed
   * request): in the HTTP handshake, or opened-then-closed on a `close` endpoint so that a
   * browser learns why. A `login` endpoint never opens for these: logging in would not help.
   */
  private refuseEarly(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    endpoint: EndpointConfig,
    code: ErrorCode,
    message: string,
    status?: number,
    retryAfter?: number,
  ): void {
    if (endpoint.rejectMode !== 'close') {
      this.rejectHttp(socket, code, message, status, retryAfter);
      return;
    }
    this.hooks.onHandshake?.(code);
    this.openErrorClose(req, socket, head, code, message, status);
  }

  /** Opens the socket, sends the error frame and closes with the code's close code (SPEC §5). */
  private openErrorClose(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    code: ErrorCode,
    message: string,
    status?: number,
  ): void {
    this.upgrade(req, socket, head, (ws) => {
      ws.send(errorEvent(code, message, status));
      ws.close(errorInfo(code).close ?? CloseCode.UNAUTHORIZED, code);
    });
  }

  /** Writes an HTTP error response with the spec's headers and body, then closes the socket. */
  private rejectHttp(socket: Duplex, code: ErrorCode, message: string, status?: number, retryAfter?: number): void {
    this.hooks.onHandshake?.(code);
    if (socket.destroyed) return;
    const httpStatus = status ?? errorInfo(code).status;
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

  private upgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    then: (ws: import('ws').WebSocket) => void,
  ): void {
    // The client may have gone while the credential was checked.
    if (socket.destroyed) return;
    // The 101 response and the first frames (`connected`, the offline replay) leave in one
    // write when this turn ends, instead of one write (and one packet) each: the socket stays
    // corked until the frame writer (whose flush is scheduled by then) has handed them over.
    socket.cork();
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      then(ws);
      setImmediate(() => socket.uncork());
    });
  }

  private accept(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    endpoint: EndpointConfig,
    device: DeviceContext,
    auth: AuthContext | null,
    pendingError?: string,
  ): void {
    // Read before the callback: its context lives as long as the socket's listeners, and
    // must not keep the whole request (headers, token) alive for the connection's life.
    const ip = clientIp(req, this.config.server.trustProxy);
    this.upgrade(req, socket, head, (ws) => {
      const conn = new Connection(
        randomUUID(),
        ws,
        socket,
        endpoint,
        ip,
        device.deviceType,
        device.deviceId,
        device.clientId,
        this.clock.now(),
        this.config.limits.messagesPerSecond,
        this.config.ws.maxBufferedBytes,
      );
      this.registry.add(conn);
      this.listen(conn);
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
        this.attach(conn, auth, greet).catch((err) => this.log.error({ err }, 'attach failed'));
        return;
      }
      conn.send({
        type: 'connected',
        code: 200,
        body: { message: CONNECTED_UNAUTHENTICATED_MESSAGE, session_id: conn.id },
        err_msg: '',
      });
      if (pendingError) conn.sendRaw(pendingError);
    });
  }

  /** The socket's listeners, in a method of their own so that their closures keep only `conn` alive. */
  private listen(conn: Connection): void {
    conn.ws.on('message', (data, isBinary) => this.onFrame(conn, data, isBinary));
    conn.ws.on('pong', () => {
      conn.awaitingPong = false;
    });
    conn.ws.on('error', ignoreError);
    conn.ws.on('close', () => {
      conn.closed = true;
      this.registry.remove(conn);
      const slot = conn.slot;
      if (slot)
        this.inSlotOrder(slot, () =>
          this.slots.releaseSlot(slot, conn.id).catch((err) => this.log.warn({ err }, 'slot release failed')),
        );
      this.hooks.onClosed?.(conn);
    });
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
          const bindAndGreet = () => {
            if (greeted || conn.closed) return;
            greeted = true;
            this.bind(conn, auth);
            greet();
            // Handed to the socket now, not at the end of this turn: the greeting leaves before
            // the claim is released, so a later claim's greeting cannot overtake it.
            flushConnection(conn);
          };
          const claimed = await this.claimClusterSlot(conn, slot, bindAndGreet);
          if (claimed && !greeted) {
            // Gone while claiming: nothing will release the slot on close.
            await this.slots.releaseSlot(slot, conn.id).catch(() => {});
            return;
          }
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
    this.registry.authenticated(conn, wasUnauthenticated);
  }

  /**
   * Claims the slot cluster-wide (the last claim wins) and evicts the holder it displaced on
   * another node. Resolves whether the claim was recorded; a failed claim (database away)
   * leaves the local slot alone holding.
   */
  private async claimClusterSlot(conn: Connection, slot: string, whileHeld: () => void): Promise<boolean> {
    let previous: SlotHolder | null;
    try {
      previous = await this.slots.claimSlot(slot, conn.id, whileHeld);
    } catch (err) {
      this.log.warn({ err }, 'cluster slot claim failed; the local slot still holds');
      return false;
    }
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
    if (buffer.length > this.config.ws.maxFrameBytes) {
      conn.sendRaw(errorEvent('PAYLOAD_TOO_LARGE', `frame exceeds ${this.config.ws.maxFrameBytes} bytes`));
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
    if (!conn.auth && !UNAUTHENTICATED_FRAME_TYPES.has(type)) {
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
    const [code, message, status] = this.describe(err);
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
    const rate = this.config.limits.messagesPerSecond;
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
    const { authTimeout, heartbeatInterval, heartbeatTimeout, expiringNotice } = this.timing;
    for (const conn of this.registry.all) {
      if (conn.closed) continue;
      const auth = conn.auth;
      if (!auth) {
        if (now - conn.openedAt >= authTimeout) conn.close(CloseCode.TIMEOUT, 'AUTH_TIMEOUT');
        continue;
      }
      if (now >= auth.expiresAt) {
        conn.sendRaw(errorEvent('TOKEN_EXPIRED', 'token has expired; reconnect with a new token'));
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
      case 'kick':
        for (const conn of this.registry.ofPrincipal(event.id))
          if (!event.deviceType || conn.deviceType === event.deviceType) kick(conn, 'KICKED');
        break;
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
