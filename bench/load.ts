/**
 * The load generator: a separate process holding every client socket. It does what the
 * orchestrator asks (one command per measured phase) and reports counts and wall times;
 * the server's CPU is read from the server process around each command.
 */
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { type BenchKey, MESSAGE_TEXT, mintToken, percentile, serveRpc, sleep, tamper } from './common.js';

type OnData = (text: Buffer) => void;

interface UserSocket {
  id: string;
  ws: WebSocket;
  onData: OnData;
}

const tokenSets = new Map<string, string[]>();
const held: WebSocket[] = [];
const users = new Map<string, UserSocket>();
const ignore: OnData = () => {};

const CONNECTED = Buffer.from('{"type":"connected"');
const MESSAGE = Buffer.from('{"type":"message"');
const ACK = Buffer.from('{"type":"ack"');
const OFFLINE = Buffer.from('{"type":"offline_message"');
const OFFLINE_COMPLETE = Buffer.from('{"type":"offline_messages_complete"');

const startsWith = (data: Buffer, prefix: Buffer) =>
  data.length >= prefix.length && data.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not done after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Runs `task(i)` for i in [0, count) with at most `concurrency` in flight. */
async function pool(count: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

function open(url: string, token: string, deviceType?: string): WebSocket {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (deviceType) headers.devicetype = deviceType;
  return new WebSocket(url, { headers, perMessageDeflate: false });
}

/** Opens a socket and resolves on its `connected` frame (rejects on anything else). */
function connect(url: string, token: string, deviceType?: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = open(url, token, deviceType);
    const fail = (err: Error) => {
      ws.terminate();
      reject(err);
    };
    ws.once('error', fail);
    ws.once('message', (data: Buffer) => {
      ws.off('error', fail);
      ws.on('error', () => {});
      if (startsWith(data, CONNECTED)) resolve(ws);
      else fail(new Error(`first frame was ${data.toString().slice(0, 200)}`));
    });
  });
}

/** Opens a socket that the server must refuse in the HTTP handshake with 401. */
function refused(url: string, token: string): Promise<boolean> {
  return new Promise((resolve) => {
    const ws = open(url, token);
    ws.on('unexpected-response', (req, res) => {
      const ok = res.statusCode === 401;
      res.resume();
      res.on('end', () => resolve(ok));
      res.on('error', () => resolve(ok));
      req.on('error', () => {});
      res.on('close', () => resolve(ok));
    });
    ws.on('error', () => resolve(false));
    ws.on('open', () => {
      ws.terminate();
      resolve(false);
    });
  });
}

function closeAll(sockets: Iterable<WebSocket>): Promise<void> {
  const waits: Promise<void>[] = [];
  for (const ws of sockets) {
    if (ws.readyState === WebSocket.CLOSED) continue;
    waits.push(new Promise((resolve) => ws.once('close', () => resolve())));
    ws.terminate();
  }
  return withDeadline(
    Promise.all(waits).then(() => {}),
    20_000,
    'close',
  );
}

function user(id: string): UserSocket {
  const found = users.get(id);
  if (!found) throw new Error(`no open socket for ${id}`);
  return found;
}

serveRpc({
  mintTokens(args: { name: string; key: BenchKey; prefix: string; count: number; bad?: boolean }) {
    const tokens: string[] = [];
    for (let i = 0; i < args.count; i++) {
      const token = mintToken(args.key, { sub: `${args.prefix}${i}` });
      tokens.push(args.bad ? tamper(token) : token);
    }
    tokenSets.set(args.name, tokens);
    return { count: tokens.length };
  },

  /** One handshake per token of a set; `keep` holds the sockets open (for the memory reading). */
  async handshakes(args: { url: string; tokens: string; concurrency: number; keep: boolean; refuse?: boolean }) {
    const tokens = tokenSets.get(args.tokens) ?? [];
    let failed = 0;
    let firstError = '';
    const opened: WebSocket[] = [];
    const started = performance.now();
    await withDeadline(
      pool(tokens.length, args.concurrency, async (i) => {
        const token = tokens[i] as string;
        if (args.refuse) {
          if (!(await refused(args.url, token))) failed++;
          return;
        }
        try {
          opened.push(await connect(args.url, token));
        } catch (err) {
          failed++;
          firstError ||= String(err);
        }
      }),
      120_000,
      'handshakes',
    );
    const wallMs = performance.now() - started;
    if (args.keep) held.push(...opened);
    else await closeAll(opened);
    tokenSets.delete(args.tokens);
    return { count: tokens.length - failed, failed, firstError, wallMs };
  },

  async closeHeld() {
    await closeAll(held.splice(0));
    return {};
  },

  /** Opens one socket per user (tokens issued by the server under test or minted). */
  async openUsers(args: { url: string; users: { id: string; token: string }[]; deviceType?: string }) {
    await withDeadline(
      pool(args.users.length, 50, async (i) => {
        const entry = args.users[i] as { id: string; token: string };
        const ws = await connect(args.url, entry.token, args.deviceType);
        const socket: UserSocket = { id: entry.id, ws, onData: ignore };
        ws.on('message', (data: Buffer) => socket.onData(data));
        ws.on('close', (code, reason) => {
          if (users.get(entry.id) === socket) {
            users.delete(entry.id);
            if (code !== 1006 && code !== 1005)
              console.error(`bench: ${entry.id} closed by the server: ${code} ${reason.toString()}`);
          }
        });
        users.set(entry.id, socket);
      }),
      120_000,
      'openUsers',
    );
    return { open: users.size };
  },

  async closeUsers() {
    const sockets = [...users.values()].map((u) => u.ws);
    users.clear();
    await closeAll(sockets);
    return {};
  },

  /**
   * Every user of every pair sends `perUser` messages to its peer, keeping `window`
   * unacknowledged at a time. Done when every ack and every delivery has arrived.
   */
  async direct(args: { pairs: [string, string][]; perUser: number; window: number; tag: string }) {
    const senders: [UserSocket, string][] = [];
    for (const [a, b] of args.pairs) senders.push([user(a), b], [user(b), a]);
    const total = senders.length * args.perUser;
    let acks = 0;
    let deliveries = 0;
    let finish: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const started = performance.now();
    for (const [sender, to] of senders) {
      let sent = 0;
      const sendOne = () => {
        sent++;
        sender.ws.send(
          `{"type":"message","id":${sent},"to":"${to}","text":"${MESSAGE_TEXT}","client_msg_id":"${args.tag}-${sender.id}-${sent}"}`,
        );
      };
      sender.onData = (data) => {
        if (startsWith(data, ACK)) {
          if (data.includes('"error"')) throw new Error(`send failed: ${data.toString()}`);
          acks++;
          if (sent < args.perUser) sendOne();
        } else if (startsWith(data, MESSAGE)) deliveries++;
        if (acks === total && deliveries === total) finish();
      };
      for (let i = 0; i < Math.min(args.window, args.perUser); i++) sendOne();
    }
    await withDeadline(done, 120_000, `direct (${acks} acks, ${deliveries} deliveries of ${total})`);
    const wallMs = performance.now() - started;
    for (const [sender] of senders) sender.onData = ignore;
    return { messages: total, deliveries, wallMs };
  },

  /**
   * A fixed offered load: `rate` messages per second in total, spread over every user of
   * every pair (`oneWay`: over the first user of each pair only, the second only receives),
   * for `durationMs`. Latency is send → the peer receiving the `message`; ack latency is
   * send → the sender receiving its `ack` (for Gatehouse: after the commit).
   */
  async directLatency(args: {
    pairs: [string, string][];
    rate: number;
    durationMs: number;
    tag: string;
    oneWay?: boolean;
    /** Also return every latency (sorted), for pooling several phases. */
    samples?: boolean;
  }) {
    const senders: [UserSocket, string][] = [];
    for (const [a, b] of args.pairs) {
      senders.push([user(a), b]);
      if (!args.oneWay) senders.push([user(b), a]);
    }
    const sentAt = new Map<string, number>();
    const latencies: number[] = [];
    // Frame ids are 1..sent within this phase, so the ack's `id` indexes its send time.
    const ackSentAt: number[] = [];
    const ackLatencies: number[] = [];
    let errors = 0;
    let lastDelivery = 0;
    for (const socket of args.pairs.flat().map(user))
      socket.onData = (data) => {
        if (startsWith(data, MESSAGE)) {
          const text = data.toString();
          const key = text.slice(text.indexOf('"client_msg_id":"') + 17, text.lastIndexOf('"'));
          const at = sentAt.get(key);
          if (at !== undefined) {
            lastDelivery = performance.now();
            latencies.push(lastDelivery - at);
            sentAt.delete(key);
          }
        } else if (startsWith(data, ACK)) {
          if (data.includes('"error"')) errors++;
          const at = ackSentAt[Number(/"id":(\d+)/.exec(data.toString())?.[1])];
          if (at !== undefined) ackLatencies.push(performance.now() - at);
        }
      };
    const tickMs = 5;
    const started = performance.now();
    let sent = 0;
    let next = 0;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const elapsed = performance.now() - started;
        const due = Math.min(
          Math.floor((elapsed * args.rate) / 1000),
          Math.floor((args.durationMs * args.rate) / 1000),
        );
        while (sent < due) {
          const [socket, to] = senders[next] as [UserSocket, string];
          next = (next + 1) % senders.length;
          sent++;
          const key = `${args.tag}-${socket.id}-${sent}`;
          const now = performance.now();
          sentAt.set(key, now);
          ackSentAt[sent] = now;
          socket.ws.send(
            `{"type":"message","id":${sent},"to":"${to}","text":"${MESSAGE_TEXT}","client_msg_id":"${key}"}`,
          );
        }
        if (elapsed >= args.durationMs) {
          clearInterval(timer);
          resolve();
        }
      }, tickMs);
    });
    const sendMs = performance.now() - started;
    const deadline = performance.now() + 10_000;
    while ((latencies.length < sent || ackLatencies.length < sent) && performance.now() < deadline) await sleep(10);
    for (const socket of args.pairs.flat().map(user)) socket.onData = ignore;
    latencies.sort((a, b) => a - b);
    ackLatencies.sort((a, b) => a - b);
    return {
      sent,
      delivered: latencies.length,
      errors,
      offeredRate: (sent * 1000) / sendMs,
      /** Deliveries per second from the first send to the last delivery (below the offered rate when a backlog built up). */
      deliveredRate: (latencies.length * 1000) / (lastDelivery - started),
      deliveredMs: lastDelivery - started,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: latencies.at(-1) ?? Number.NaN,
      acked: ackLatencies.length,
      ackP50: percentile(ackLatencies, 50),
      ackP99: percentile(ackLatencies, 99),
      ...(args.samples ? { latencies } : {}),
    };
  },

  /**
   * Bursts of `burstSize` messages from one member to a conversation; each burst waits
   * until every other member received all of it.
   */
  async fanout(args: {
    sender: string;
    conversationId: string;
    bursts: number;
    burstSize: number;
    /** Write each burst to the socket at once (one TCP write) rather than frame by frame. */
    oneWrite: boolean;
    tag: string;
  }) {
    const sender = user(args.sender);
    const receivers = [...users.values()].filter((u) => u !== sender);
    let deliveries = 0;
    let acks = 0;
    let target = 0;
    let wake: () => void = () => {};
    const check = () => {
      if (deliveries >= target && acks >= target / receivers.length) wake();
    };
    for (const receiver of receivers)
      receiver.onData = (data) => {
        if (startsWith(data, MESSAGE)) {
          deliveries++;
          check();
        }
      };
    sender.onData = (data) => {
      if (startsWith(data, ACK)) {
        if (data.includes('"error"')) throw new Error(`send failed: ${data.toString()}`);
        acks++;
        check();
      }
    };
    let seq = 0;
    const started = performance.now();
    for (let burst = 0; burst < args.bursts; burst++) {
      target += args.burstSize * receivers.length;
      const done = new Promise<void>((resolve) => {
        wake = resolve;
      });
      // ws has no public cork; its own cork/uncork pairs nest inside this one.
      const socket = (sender.ws as unknown as { _socket: import('node:net').Socket })._socket;
      if (args.oneWrite) socket.cork();
      for (let i = 0; i < args.burstSize; i++) {
        seq++;
        sender.ws.send(
          `{"type":"message","id":${seq},"conversation_id":"${args.conversationId}","text":"${MESSAGE_TEXT}","client_msg_id":"${args.tag}-${seq}"}`,
        );
      }
      if (args.oneWrite) socket.uncork();
      await withDeadline(done, 30_000, `fanout burst ${burst} (${deliveries}/${target} deliveries, ${acks} acks)`);
    }
    const wallMs = performance.now() - started;
    for (const u of users.values()) u.onData = ignore;
    return { messages: seq, deliveries, receivers: receivers.length, wallMs };
  },

  /** Fills a backlog: `count` messages from one open user to another principal, `window` in flight. */
  async sendMany(args: { from: string; to: string; count: number; window: number }) {
    const sender = user(args.from);
    let sent = 0;
    let acks = 0;
    await withDeadline(
      new Promise<void>((resolve, reject) => {
        const sendOne = () => {
          sent++;
          sender.ws.send(
            `{"type":"message","id":${sent},"to":"${args.to}","text":"${MESSAGE_TEXT}","client_msg_id":"r-${sent}"}`,
          );
        };
        sender.onData = (data) => {
          if (!startsWith(data, ACK)) return;
          if (data.includes('"error"')) reject(new Error(`send failed: ${data.toString()}`));
          acks++;
          if (sent < args.count) sendOne();
          if (acks === args.count) resolve();
        };
        for (let i = 0; i < Math.min(args.window, args.count); i++) sendOne();
      }),
      120_000,
      'sendMany',
    );
    sender.onData = ignore;
    return { sent };
  },

  /**
   * Connects a device with a backlog and times open → `offline_messages_complete`; the
   * socket is closed again (no acks are sent, so the next reconnect replays the same backlog).
   */
  async replay(args: { url: string; token: string; deviceType: string; expected: number }) {
    let received = 0;
    let openedAt = 0;
    let connectedAt = 0;
    const started = performance.now();
    const ws = open(args.url, args.token, args.deviceType);
    const result = await withDeadline(
      new Promise<{ count: number; ms: number; fromConnectMs: number }>((resolve, reject) => {
        ws.on('error', reject);
        ws.on('open', () => {
          openedAt = performance.now();
        });
        ws.on('message', (data: Buffer) => {
          if (startsWith(data, OFFLINE)) received++;
          else if (startsWith(data, OFFLINE_COMPLETE)) {
            const count = Number(/"count":(\d+)/.exec(data.toString())?.[1]);
            const now = performance.now();
            resolve({ count, ms: now - openedAt, fromConnectMs: now - started });
          } else if (startsWith(data, CONNECTED)) connectedAt = performance.now();
          else if (!startsWith(data, MESSAGE)) reject(new Error(`unexpected frame ${data.toString().slice(0, 200)}`));
        });
        ws.on('close', (code) => reject(new Error(`closed ${code} after ${received} offline messages`)));
      }),
      60_000,
      'replay',
    );
    ws.removeAllListeners('close');
    await closeAll([ws]);
    return { ...result, received, connectedAfterOpenMs: connectedAt - openedAt };
  },
});

process.on('SIGTERM', () => process.exit(0));
process.send?.({ ready: true });
