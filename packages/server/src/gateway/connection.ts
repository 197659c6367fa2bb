import type { Duplex } from 'node:stream';
import type { PrincipalInfo, ServerFrame } from '@gatehouse/protocol';
import type { WebSocket } from 'ws';
import type { AuthContext } from '../auth/auth-service.js';
import type { EndpointConfig } from '../config.js';
import { encodeTextFrame, flushConnection, type QueuedFrames, unsentBytes, writeFrame } from './frame-writer.js';
import type { DeviceContext } from './handshake-request.js';

/** The initial value of the per-socket promise chains: one settled promise shared by every socket. */
export const SETTLED: Promise<void> = Promise.resolve();

/** Live messages held back while a connection's offline replay runs (see Messaging.replay). */
export interface ReplayState {
  pending: { conversationId: string; seq: number; frame: Buffer }[];
}

export interface ConnectionOptions {
  id: string;
  ws: WebSocket;
  socket: Duplex;
  endpoint: EndpointConfig;
  ip: string;
  device: Pick<DeviceContext, 'deviceType' | 'deviceId' | 'clientId'>;
  openedAt: number;
  /** The frame-rate bucket starts full. */
  messagesPerSecond: number;
  /** Unsent bytes beyond which the socket is cut off (a client that stopped reading). */
  maxBufferedBytes: number;
}

/**
 * One socket: its principal once authenticated, its device, and the counters the sweeper
 * and the frame router need. Kept to plain fields: there can be 100,000 of these.
 */
export class Connection {
  auth: AuthContext | null = null;
  /** Device type used for slots and cursors: declared at handshake, else from the token. */
  deviceType = 'unknown';
  /** The slot this connection holds, if its kind's policy uses slots. */
  slot: string | null = null;
  /** Set once the cluster-wide claim of `slot` has landed (only then can it be lost). */
  slotClaimed = false;
  expiringNotified = false;
  awaitingPong = false;
  lastPingAt: number;
  malformedFrames = 0;
  rateTokens: number;
  rateUpdatedAt: number;
  rateDrops = 0;
  closed = false;
  replay: ReplayState | null = null;
  /** Replays of this socket run one after another (login replay, then a claim's backlog). */
  replayQueue: Promise<void> = SETTLED;
  /** Settles when this socket's previous `message` entered the group commit: sends keep their order. */
  sendOrder: Promise<void> = SETTLED;

  readonly id: string;
  readonly ws: WebSocket;
  readonly socket: Duplex;
  readonly endpoint: EndpointConfig;
  readonly ip: string;
  /** Device type declared in the handshake (normalised), if any. */
  readonly declaredDeviceType: string | null;
  readonly deviceId: string | null;
  readonly clientId: string | null;
  readonly openedAt: number;
  readonly maxBufferedBytes: number;
  /** Connection-bound token of an in-band `login` (valid only on this socket), if any. */
  wsToken: string | null = null;
  /** Frames written this event-loop turn, not yet handed to the socket (frame-writer.ts). */
  queuedFrames: QueuedFrames | null = null;
  /**
   * Gives back this socket's place among the handshakes in progress (the gateway's bound on
   * server-side work); null once given back.
   */
  admission: (() => void) | null = null;

  constructor(options: ConnectionOptions) {
    this.id = options.id;
    this.ws = options.ws;
    this.socket = options.socket;
    this.endpoint = options.endpoint;
    this.ip = options.ip;
    this.declaredDeviceType = options.device.deviceType;
    this.deviceId = options.device.deviceId;
    this.clientId = options.device.clientId;
    this.openedAt = options.openedAt;
    this.maxBufferedBytes = options.maxBufferedBytes;
    this.lastPingAt = options.openedAt;
    this.rateTokens = options.messagesPerSecond;
    this.rateUpdatedAt = options.openedAt;
  }

  get principal(): PrincipalInfo | null {
    return this.auth?.principal ?? null;
  }

  /** Sends a frame encoded by encodeTextFrame (shared between recipients). */
  sendFrame(frame: Buffer): void {
    if (!this.closed && this.ws.readyState === 1) writeFrame(this, frame);
  }

  /** Sends serialized JSON. */
  sendRaw(data: string): void {
    if (!this.closed && this.ws.readyState === 1) writeFrame(this, encodeTextFrame(data));
  }

  /** Sends a frame of the protocol (a shape the SDK types), serialized here. */
  send(frame: ServerFrame): void {
    this.sendRaw(JSON.stringify(frame));
  }

  /**
   * Resolves once the bytes written so far have been handed to the kernel, or the socket
   * closed. For bulk writes (offline replay) that must not exceed `maxBufferedBytes` in one
   * turn: the frame writer would take that for a client that stopped reading.
   */
  drained(): Promise<void> {
    return new Promise((resolve) => {
      // The frame writer hands this turn's frames to the socket when the turn ends; look after it has.
      setImmediate(() => {
        if (this.closed || !this.socket.writableNeedDrain) return resolve();
        // Waiting on the client now, not on the server: that holds no handshake place.
        this.leaveAdmission();
        const done = () => {
          this.socket.off('drain', done);
          this.socket.off('close', done);
          resolve();
        };
        this.socket.on('drain', done);
        this.socket.on('close', done);
      });
    });
  }

  leaveAdmission(): void {
    const leave = this.admission;
    this.admission = null;
    leave?.();
  }

  /** Bytes written to this connection that the peer has not taken yet. */
  unsentBytes(): number {
    return unsentBytes(this);
  }

  /** Closes once; later calls do nothing. Frames written before go out before the close frame. */
  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    flushConnection(this);
    this.ws.close(code, reason);
  }

  /** Drops a socket that stopped reading: no close handshake can get through its full buffers. */
  cutOff(): void {
    this.closed = true;
    this.ws.terminate();
  }
}
