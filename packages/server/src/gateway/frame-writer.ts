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

/** Frames written to a connection during this event-loop turn, not yet handed to its socket. */
interface Queued {
  frames: Buffer[];
  bytes: number;
}

const queued = new Map<Connection, Queued>();
let flushScheduled = false;

/**
 * Writes a pre-encoded frame. Frames written to one connection within an event-loop turn
 * are queued and reach its socket in one write when the turn ends (Connection.close writes
 * them first, so they still precede ws's close frame); then a socket whose unsent bytes
 * exceed its limit (a client that stopped reading) is cut off instead of buffered forever.
 */
export function writeFrame(conn: Connection, frame: Buffer): void {
  const entry = queued.get(conn);
  if (entry) {
    entry.frames.push(frame);
    entry.bytes += frame.length;
  } else {
    if (!conn.socket.writable) return;
    queued.set(conn, { frames: [frame], bytes: frame.length });
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  }
  hotCounters.framesOut++;
}

/** Bytes written to a connection that its peer has not taken yet: queued this turn, plus the socket's. */
export function unsentBytes(conn: Connection): number {
  return (queued.get(conn)?.bytes ?? 0) + conn.socket.writableLength;
}

/** Hands a connection's queued frames to its socket now (before ws writes a close frame). */
export function flushConnection(conn: Connection): void {
  const entry = queued.get(conn);
  if (!entry) return;
  queued.delete(conn);
  write(conn, entry);
}

let lastFrames: Buffer[] | null = null;
let lastJoined: Buffer | null = null;

/**
 * The frames as one buffer. Members of a group get the same frames in the same turn, so
 * the join is made once and the same bytes are written to each of them.
 */
function joined(frames: Buffer[]): Buffer {
  const last = lastFrames;
  if (last && last.length === frames.length && lastJoined) {
    let same = true;
    for (let i = 0; i < frames.length && same; i++) same = frames[i] === last[i];
    if (same) return lastJoined;
  }
  lastFrames = frames;
  lastJoined = Buffer.concat(frames);
  return lastJoined;
}

function write(conn: Connection, entry: Queued): void {
  const socket = conn.socket;
  if (!socket.writable) return;
  socket.write(entry.frames.length === 1 ? (entry.frames[0] as Buffer) : joined(entry.frames));
  if (socket.writableLength > conn.maxBufferedBytes) conn.cutOff();
}

function flush(): void {
  flushScheduled = false;
  for (const [conn, entry] of queued) {
    queued.delete(conn);
    write(conn, entry);
  }
  lastFrames = null;
  lastJoined = null;
}
