import * as wsModule from 'ws';
import { hotCounters } from '../metrics.js';
import type { Connection } from './connection.js';

// ws exports its frame encoder, but @types/ws does not declare it: an internal of the ws
// version pinned in package.json (~8.23). ws-frame-writer.test.ts checks its output byte for
// byte against RFC 6455, and this module refuses to load if it is gone.
const { Sender } = wsModule as unknown as {
  Sender?: {
    frame?(
      data: Buffer,
      options: { fin: boolean; rsv1: boolean; opcode: number; mask: boolean; readOnly: boolean },
    ): Buffer[];
  };
};
const frame = Sender?.frame;
if (typeof frame !== 'function')
  throw new Error(
    'ws no longer exports Sender.frame: src/gateway/frame-writer.ts needs the ws version it pins (~8.23)',
  );

/**
 * Encodes a text frame once (unmasked, as a server sends it) so the same bytes can be
 * written to any number of sockets. Safe beside ws's own writes because compression is
 * off: ws then writes each of its frames straight to the socket.
 */
export function encodeTextFrame(data: string | Buffer): Buffer {
  const payload = typeof data === 'string' ? Buffer.from(data) : data;
  const parts = (frame as NonNullable<typeof frame>).call(Sender, payload, {
    fin: true,
    rsv1: false,
    opcode: 1,
    mask: false,
    readOnly: true,
  });
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}

/**
 * The frames queued for a socket during this event-loop turn, as the last link of a chain.
 * Sockets given the same frames in the same order share the same links: a fan-out of one
 * frame to every member appends the same link to each of them (the link made for the first
 * socket is found again by the next ones), so queuing a delivery allocates nothing, and the
 * frames of a link are joined into one buffer once, whatever number of sockets it goes to.
 */
export class QueuedFrames {
  /** The link most recently made after this one, and its frame (the next socket usually wants it too). */
  private nextFrame: Buffer | null = null;
  private next: QueuedFrames | null = null;
  private joined: Buffer | null = null;
  readonly bytes: number;

  constructor(
    private readonly previous: QueuedFrames | null,
    private readonly frame: Buffer,
  ) {
    this.bytes = (previous?.bytes ?? 0) + frame.length;
  }

  append(frame: Buffer): QueuedFrames {
    if (this.nextFrame !== frame || this.next === null) {
      this.next = new QueuedFrames(this, frame);
      this.nextFrame = frame;
    }
    return this.next;
  }

  /** Every frame of the chain, in order, as one buffer (made once per link). */
  buffer(): Buffer {
    if (this.previous === null) return this.frame;
    if (this.joined === null) {
      const frames: Buffer[] = [];
      for (let link: QueuedFrames | null = this; link !== null; link = link.previous) frames.push(link.frame);
      this.joined = Buffer.concat(frames.reverse(), this.bytes);
    }
    return this.joined;
  }
}

/** Connections with frames queued this turn (each once: added when its queue goes from empty to not). */
let dirty: Connection[] = [];
/** The first link made this turn for a frame, found again by the next socket that gets the same frame first. */
let lastFirstFrame: Buffer | null = null;
let lastFirst: QueuedFrames | null = null;
let flushScheduled = false;
/** Run once the frames queued so far have been handed to their sockets (afterFramesWritten). */
let afterFlush: (() => void)[] = [];

/**
 * Writes a pre-encoded frame. Frames written to one connection within an event-loop turn
 * are queued and reach its socket in one write when the turn ends (Connection.close writes
 * them first, so they still precede ws's close frame); then a socket whose unsent bytes
 * exceed its limit (a client that stopped reading) is cut off instead of buffered forever.
 */
export function writeFrame(conn: Connection, frame: Buffer): void {
  const queued = conn.queuedFrames;
  if (queued !== null) conn.queuedFrames = queued.append(frame);
  else {
    if (!conn.socket.writable) return;
    if (lastFirstFrame !== frame || lastFirst === null) {
      lastFirst = new QueuedFrames(null, frame);
      lastFirstFrame = frame;
    }
    conn.queuedFrames = lastFirst;
    dirty.push(conn);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  }
  hotCounters.framesOut++;
}

/** Bytes written to a connection that its peer has not taken yet: queued this turn, plus the socket's. */
export function unsentBytes(conn: Connection): number {
  return (conn.queuedFrames?.bytes ?? 0) + conn.socket.writableLength;
}

/** Hands a connection's queued frames to its socket now (before ws writes a close frame). */
export function flushConnection(conn: Connection): void {
  const queued = conn.queuedFrames;
  if (queued === null) return;
  conn.queuedFrames = null;
  write(conn, queued);
}

function write(conn: Connection, queued: QueuedFrames): void {
  const socket = conn.socket;
  if (!socket.writable) return;
  socket.write(queued.buffer());
  if (socket.writableLength > conn.maxBufferedBytes) conn.cutOff();
}

function flush(): void {
  flushScheduled = false;
  const connections = dirty;
  dirty = [];
  lastFirstFrame = null;
  lastFirst = null;
  for (const conn of connections) flushConnection(conn);
  const after = afterFlush;
  afterFlush = [];
  for (const task of after) task();
}

/**
 * Runs `task` once the frames queued so far this turn have been handed to their sockets: right
 * after the flush when one is pending, else in an immediate. For work that must not delay
 * them (the store's upkeep after a batch's acks).
 */
export function afterFramesWritten(task: () => void): void {
  if (flushScheduled) afterFlush.push(task);
  else setImmediate(task);
}
