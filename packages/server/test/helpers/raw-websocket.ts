import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { WAIT_MS } from './ws-client.js';

/**
 * A WebSocket upgrade done by hand over a plain TCP socket, for a client that misbehaves
 * on purpose (for example one that stops reading). Resolves once the server answered 101
 * and the bytes received so far contain `readUntil` (when given); the socket is then
 * paused with no reader attached, so nothing more is read from the kernel until the test
 * calls `socket.resume()`.
 */
export function rawWebSocket(
  httpUrl: string,
  path: string,
  headers: Record<string, string>,
  readUntil?: string,
): Promise<{ socket: Socket; received: string }> {
  const { hostname, port } = new URL(httpUrl);
  const socket = connect(Number(port), hostname);
  socket.on('error', () => {});
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: ${hostname}:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  return new Promise((resolve, reject) => {
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no upgrade within ${WAIT_MS} ms; received: ${received.slice(0, 300)}`));
    }, WAIT_MS);
    const onData = (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (!received.startsWith('HTTP/1.1 101')) {
        clearTimeout(timer);
        socket.destroy();
        reject(new Error(`upgrade refused: ${received.slice(0, 300)}`));
        return;
      }
      if (readUntil && !received.slice(end).includes(readUntil)) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      resolve({ socket, received });
    };
    socket.on('data', onData);
  });
}
