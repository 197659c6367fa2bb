/**
 * The bare baseline: Node's http server, `ws` in noServer mode and `jose`, nothing else.
 * It verifies the same HS256 tokens in its upgrade handler (jwtVerify with issuer and
 * audience), sends the same `connected` frame, and for messages does the least an echo
 * server can: parse the JSON, reply an ack-like frame, forward to the peer (or to every
 * other socket for a group). Argument: JSON `{key}`.
 */
import { createSecretKey, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { jwtVerify } from 'jose';
import { type WebSocket, WebSocketServer } from 'ws';
import { AUDIENCE, type BenchKey, ISSUER, serveRpc, serverStats } from './common.js';

interface Client {
  ws: WebSocket;
  user: { id: string; kind: string; name: string };
}

const { key } = JSON.parse(process.argv[2] ?? '{}') as { key: BenchKey };
const secret = createSecretKey(Buffer.from(key.secret, 'base64url'));
const wss = new WebSocketServer({ noServer: true, clientTracking: false, perMessageDeflate: false });
const bySub = new Map<string, Client>();
const clients = new Set<Client>();
const seqs = new Map<string, number>();
let replay: { sub: string; frames: Buffer[] } | null = null;

function reject(socket: Duplex, message: string): void {
  const body = JSON.stringify({ code: 401, error: 'TOKEN_INVALID', err_msg: message });
  socket.once('finish', () => socket.destroy());
  socket.end(
    'HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      `X-WebSocket-Error-Code: TOKEN_INVALID\r\nX-WebSocket-Error-Message: ${message}\r\n\r\n${body}`,
  );
}

const server = createServer((_req, res) => {
  res.writeHead(404).end();
});

server.on('upgrade', async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
  socket.on('error', () => socket.destroy());
  const authorization = req.headers.authorization ?? '';
  const token = authorization.startsWith('Bearer ') ? authorization.slice(7) : '';
  let payload: Record<string, unknown>;
  try {
    payload = (await jwtVerify(token, secret, { issuer: ISSUER, audience: AUDIENCE, algorithms: ['HS256'] })).payload;
  } catch {
    reject(socket, 'token signature is invalid');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    const sub = payload.sub as string;
    const client: Client = {
      ws,
      user: { id: sub, kind: payload.kind as string, name: (payload.name as string | undefined) ?? sub },
    };
    clients.add(client);
    bySub.set(sub, client);
    ws.on('message', (data) => onMessage(client, data as Buffer));
    ws.on('error', () => {});
    ws.on('close', () => {
      clients.delete(client);
      if (bySub.get(sub) === client) bySub.delete(sub);
    });
    ws.send(
      JSON.stringify({
        type: 'connected',
        code: 200,
        body: {
          message: 'Connected and authenticated successfully',
          session_id: randomUUID(),
          user: client.user,
          expires_at: (payload.exp as number) * 1000,
        },
        err_msg: '',
      }),
    );
    if (replay && replay.sub === sub) {
      for (const frame of replay.frames) ws.send(frame, { binary: false });
      ws.send(
        JSON.stringify({ type: 'offline_messages_complete', code: 200, count: replay.frames.length, truncated: false }),
      );
    }
  });
});

function onMessage(client: Client, data: Buffer): void {
  const frame = JSON.parse(data.toString('utf8')) as {
    type?: string;
    id?: unknown;
    to?: string;
    conversation_id?: string;
    text?: string;
    client_msg_id?: string;
  };
  if (frame.type !== 'message') return;
  const peer = frame.to ? bySub.get(frame.to) : undefined;
  const conversationId =
    frame.conversation_id ??
    (client.user.id < (frame.to ?? '') ? `${client.user.id}|${frame.to}` : `${frame.to}|${client.user.id}`);
  const seq = (seqs.get(conversationId) ?? 0) + 1;
  seqs.set(conversationId, seq);
  const id = randomUUID();
  const ts = Date.now();
  client.ws.send(
    JSON.stringify({
      type: 'ack',
      id: frame.id,
      code: 200,
      body: { message_id: id, conversation_id: conversationId, seq, ts },
      err_msg: '',
    }),
  );
  const event = JSON.stringify({
    type: 'message',
    code: 200,
    message: {
      id,
      conversation_id: conversationId,
      seq,
      from: client.user,
      text: frame.text,
      ts,
      client_msg_id: frame.client_msg_id,
    },
  });
  if (frame.to) {
    peer?.ws.send(event);
    return;
  }
  // A group: the same frame to every other socket, one plain ws.send each.
  const bytes = Buffer.from(event);
  for (const other of clients) if (other !== client) other.ws.send(bytes, { binary: false });
}

/** The frames Gatehouse would replay: `offline_message` events of the same shape and size. */
function replaySetup(args: { sub: string; from: string; count: number; text: string }): { bytes: number } {
  const conversationId = `dm_${'x'.repeat(32)}`;
  const frames: Buffer[] = [];
  let bytes = 0;
  const ts = Date.now();
  for (let seq = 1; seq <= args.count; seq++) {
    const frame = Buffer.from(
      `{"type":"offline_message","code":200,"message":${JSON.stringify({
        id: randomUUID(),
        conversation_id: conversationId,
        seq,
        from: { id: args.from, kind: 'user', name: args.from },
        text: args.text,
        ts,
        client_msg_id: `r-${seq}`,
      })}}`,
    );
    bytes += frame.length;
    frames.push(frame);
  }
  replay = { sub: args.sub, frames };
  return { bytes };
}

server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  serveRpc({ stats: serverStats, replaySetup });
  process.on('SIGTERM', () => process.exit(0));
  process.send?.({ ready: true, port: typeof address === 'object' && address ? address.port : 0 });
});
