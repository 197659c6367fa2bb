import * as wsModule from 'ws';
import { hotCounters } from '../metrics.js';
import type { Connection } from './connection.js';

// ws exports its frame encoder, but @types/ws does not declare it.
const { Sender } = wsModule as unknown as {
  Sender: {
    frame(
      data: Buffer,
      options: { fin: boolean; rsv1: boolean; opcode: number; mask: boolean; readOnly: boolean },
    ): Buffer[];
  };
};

/**
 * Encodes a text frame once (unmasked, as a server sends it) so the same bytes can be
 * written to any number of sockets. Safe beside ws's own writes because compression is
 * off: ws then writes each frame straight to the socket, in call order.
 */
export function encodeTextFrame(data: string | Buffer): Buffer {
  const payload = typeof data === 'string' ? Buffer.from(data) : data;
  const parts = Sender.frame(payload, { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: true });
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}

const corked = new Set<Connection>();
let flushScheduled = false;

/**
 * Writes a pre-encoded frame. Writes to one socket within an event-loop turn are corked
 * and leave in one syscall when the turn ends; then a socket whose unsent bytes exceed
 * its limit (a client that stopped reading) is cut off instead of buffered forever.
 */
export function writeFrame(conn: Connection, frame: Buffer): void {
  const socket = conn.socket;
  if (!socket.writable) return;
  if (!corked.has(conn)) {
    socket.cork();
    corked.add(conn);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  }
  socket.write(frame);
  hotCounters.framesOut++;
}

function flush(): void {
  flushScheduled = false;
  for (const conn of corked) {
    conn.socket.uncork();
    if (conn.socket.writableLength > conn.maxBufferedBytes) conn.cutOff();
  }
  corked.clear();
}
