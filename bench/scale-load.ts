/**
 * Load generator of the scale scenario: one process holding up to ~19,000 idle clients (the
 * hard open-files limit is per process, so the scenario runs several). Each client is a bare
 * `ws` socket with a minted user token, bound to a source address in 127.0.0.0/8 (one
 * address has ~28,000 ephemeral ports) and connected to one of the nodes. It answers the
 * server's pings (ws does) and nothing else while idle.
 *
 * On an unexpected close a client reconnects the way the SDK does — the delay is
 * `backoffDelay(DEFAULT_BACKOFF, attempt, closePolicy(code).delay)` from the SDK and the
 * protocol package, the attempt times out after the SDK's 15 s `connectTimeout`, the attempt
 * counter starts again after 10 s connected (`stableAfter`) — and, once the scenario has marked
 * the outage, each failed attempt moves on to the next URL of the client's own list of the
 * nodes (its own node first), as a client that knows every node's address does.
 *
 * Messages of watched conversations (`message` and `offline_message` frames) are counted
 * per client and seq, with the time of the first arrival.
 */
import { performance } from 'node:perf_hooks';
import { backoffDelay, DEFAULT_BACKOFF, nextSpreadAttempt, type SpreadSchedule, startSpread } from '@gatehouse/client';
import { closePolicy, refusalCloseCode } from '@gatehouse/protocol';
import WebSocket from 'ws';
import { type BenchKey, MESSAGE_TEXT, mintToken, serveRpc, sleep } from './common.js';

/** The SDK's default `connectTimeout` and `stableAfter`. */
const CONNECT_TIMEOUT_MS = 15_000;
const STABLE_AFTER_MS = 10_000;

const CONNECTED = Buffer.from('{"type":"connected"');
const ACK = Buffer.from('{"type":"ack"');
const MESSAGE = Buffer.from('{"type":"message"');
const OFFLINE = Buffer.from('{"type":"offline_message"');
const OFFLINE_COMPLETE = Buffer.from('{"type":"offline_messages_complete"');
const ERROR = Buffer.from('{"type":"error"');
const startsWith = (data: Buffer, prefix: Buffer) =>
  data.length >= prefix.length && data.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;

/** Wall-clock milliseconds with sub-ms precision, comparable between the bench's processes. */
const now = () => performance.timeOrigin + performance.now();

interface Client {
  /** Index over every process's clients: user `${prefix}${index}`. */
  index: number;
  /** Position in this process's list. */
  local: number;
  token: string;
  localAddress: string;
  /** Node indexes to try, own node first. */
  nodes: number[];
  /** Position in `nodes` of the next attempt: moves on after each failure once failover is on. */
  cursor: number;
  ws: WebSocket | null;
  /** The node of the current socket (once connected). */
  node: number;
  connected: boolean;
  connectedAt: number;
  /** `offline_messages_complete` on the current socket. */
  replayedAt: number;
  /** The current socket's replay failed (an `error` frame, STORE_UNAVAILABLE: "reconnect to retry"). */
  replayFailed: boolean;
  /** The SDK's attempt counter: counts from 1 again after a connection that lasted `STABLE_AFTER_MS`. */
  attempt: number;
  /** The SDK's spread schedule after a 1001/1012, kept until connected again. */
  spread: SpreadSchedule | null;
  stableAt: number;
  /** Every attempt since `markOutage`, failed ones included. */
  attemptsSinceMark: number;
  /** A refused handshake's close code, for the retry policy. */
  refusal: number;
  /** Closed on purpose: no reconnect. */
  closing: boolean;
  /** A close the policy says not to retry. */
  stopped: string;
  timer: NodeJS.Timeout | null;
  /** Pending ack (send command). */
  onAck: ((frame: string) => void) | null;
  /** Waiting for this client to be connected (or to stop). */
  onConnected: (() => void) | null;
}

interface Watch {
  maxSeq: number;
  /** local client → is a member (expected to receive). */
  member: Uint8Array;
  /** (local client, seq) → frames received. */
  counts: Uint8Array;
  /** (local client, seq) → time of the first frame. */
  firstAt: Float64Array;
  replayed: number;
  live: number;
  /** Frames for seqs outside 1..maxSeq. */
  outOfRange: number;
}

let urls: string[] = [];
let prefix = 'scale-';
const clients: Client[] = [];
const byIndex = new Map<number, Client>();
const watches = new Map<string, Watch>();
let pings = 0;
let markAt = 0;
/** Before the outage a failed attempt retries its own node; after it, the next node of the list. */
let failover = false;
const problems: string[] = [];
const note = (problem: string) => {
  if (problems.length < 20) problems.push(problem);
};

function countPing(): void {
  pings++;
}

function record(client: Client, data: Buffer, replay: boolean): void {
  let frame: { message?: { conversation_id?: string; seq?: number } };
  try {
    frame = JSON.parse(data.toString());
  } catch {
    note(`unparsable frame ${data.toString().slice(0, 100)}`);
    return;
  }
  const watch = watches.get(frame.message?.conversation_id ?? '');
  if (!watch) return;
  const seq = frame.message?.seq ?? 0;
  if (seq < 1 || seq > watch.maxSeq) {
    watch.outOfRange++;
    return;
  }
  const slot = client.local * watch.maxSeq + seq - 1;
  if (watch.counts[slot] === 0) watch.firstAt[slot] = now();
  watch.counts[slot] = Math.min(255, (watch.counts[slot] as number) + 1);
  if (replay) watch.replayed++;
  else watch.live++;
}

function onFrame(client: Client, data: Buffer): void {
  if (!client.connected) {
    if (startsWith(data, CONNECTED)) {
      client.connected = true;
      client.spread = null;
      client.connectedAt = now();
      client.stableAt = client.connectedAt + STABLE_AFTER_MS;
      if (client.timer) clearTimeout(client.timer);
      client.timer = null;
      client.onConnected?.();
      client.onConnected = null;
    } else note(`first frame was ${data.toString().slice(0, 120)}`);
    return;
  }
  if (startsWith(data, MESSAGE)) record(client, data, false);
  else if (startsWith(data, OFFLINE)) record(client, data, true);
  else if (startsWith(data, OFFLINE_COMPLETE)) client.replayedAt = now();
  else if (startsWith(data, ERROR)) {
    // The SDK only reports such an error (it does not reconnect), so neither does this client.
    if (data.includes('STORE_UNAVAILABLE')) client.replayFailed = true;
    note(`error frame: ${data.toString().slice(0, 160)}`);
  } else if (startsWith(data, ACK)) {
    const waiter = client.onAck;
    client.onAck = null;
    waiter?.(data.toString());
  }
}

function open(client: Client): void {
  const node = client.nodes[client.cursor % client.nodes.length] as number;
  client.node = node;
  client.connected = false;
  client.replayedAt = 0;
  client.replayFailed = false;
  client.refusal = 0;
  const ws = new WebSocket(urls[node] as string, {
    headers: { authorization: `Bearer ${client.token}` },
    localAddress: client.localAddress,
    perMessageDeflate: false,
  });
  client.ws = ws;
  ws.on('ping', countPing);
  ws.on('message', (data: Buffer) => onFrame(client, data));
  ws.on('error', () => {});
  ws.on('unexpected-response', (_req, res) => {
    const code = res.headers['x-websocket-error-code'];
    client.refusal = refusalCloseCode(typeof code === 'string' ? code : undefined, res.statusCode ?? 0);
    res.resume();
    ws.terminate();
  });
  ws.on('close', (code: number, reason: Buffer) => onClose(client, ws, client.refusal || code, reason.toString()));
  client.timer = setTimeout(() => {
    // No `connected` in time: the SDK gives the attempt up and retries with backoff.
    client.timer = null;
    if (!client.connected) ws.terminate();
  }, CONNECT_TIMEOUT_MS);
}

function onClose(client: Client, ws: WebSocket, code: number, reason: string): void {
  if (client.ws !== ws) return;
  if (client.timer) clearTimeout(client.timer);
  client.timer = null;
  client.ws = null;
  client.connected = false;
  if (client.closing) return;
  const policy = closePolicy(code, reason);
  if (policy.action !== 'reconnect') {
    client.stopped = `${code} ${reason}`;
    note(`${prefix}${client.index} stopped: ${code} ${reason}`);
    client.onConnected?.();
    client.onConnected = null;
    return;
  }
  if (client.stableAt > 0 && now() >= client.stableAt) client.attempt = 0;
  client.stableAt = 0;
  client.attempt++;
  client.attemptsSinceMark++;
  if (failover) client.cursor++;
  const delay = reconnectDelay(client, policy.delay);
  client.timer = setTimeout(() => {
    client.timer = null;
    open(client);
  }, delay);
}

/** The SDK's reconnect delay (GatehouseClient.reconnectDelay) with its default options. */
function reconnectDelay(client: Client, kind: 'spread' | 'backoff' | 'long'): number {
  const at = performance.now();
  if (kind === 'spread') client.spread ??= startSpread(DEFAULT_BACKOFF.spread, at);
  else if (!client.spread) return backoffDelay(DEFAULT_BACKOFF, client.attempt, kind);
  const next = nextSpreadAttempt(client.spread, at, kind === 'long' ? DEFAULT_BACKOFF.long : 0);
  client.spread.slot = next.slot;
  return next.delay;
}

/** Resolves once every given client is connected (or at the deadline). */
async function untilConnected(list: Client[], deadlineMs: number): Promise<void> {
  const deadline = performance.now() + deadlineMs;
  while (performance.now() < deadline && list.some((c) => !c.connected && !c.stopped)) await sleep(50);
}

function client(index: number): Client {
  const found = byIndex.get(index);
  if (!found) throw new Error(`no client ${index} in this process`);
  return found;
}

serveRpc({
  /**
   * Connects these clients (`concurrency` handshakes in flight) and resolves once every one is
   * connected; a failed first attempt is retried like any other.
   */
  async connect(args: {
    urls: string[];
    key: BenchKey;
    prefix: string;
    /** `nodes`: the node indexes in this client's order, its own node first. */
    clients: { index: number; nodes: number[] }[];
    addresses: string[];
    concurrency: number;
    deadlineMs: number;
  }) {
    urls = args.urls;
    prefix = args.prefix;
    const started = performance.now();
    const added: Client[] = args.clients.map((c) => {
      const entry: Client = {
        index: c.index,
        local: clients.length,
        token: mintToken(args.key, { sub: `${args.prefix}${c.index}`, ttlSeconds: 6 * 3600 }),
        localAddress: args.addresses[clients.length % args.addresses.length] as string,
        nodes: c.nodes,
        cursor: 0,
        ws: null,
        node: c.nodes[0] as number,
        connected: false,
        connectedAt: 0,
        replayedAt: 0,
        replayFailed: false,
        attempt: 0,
        spread: null,
        stableAt: 0,
        attemptsSinceMark: 0,
        refusal: 0,
        closing: false,
        stopped: '',
        timer: null,
        onAck: null,
        onConnected: null,
      };
      clients.push(entry);
      byIndex.set(entry.index, entry);
      return entry;
    });
    let next = 0;
    const deadline = started + args.deadlineMs;
    const worker = async () => {
      while (next < added.length && performance.now() < deadline) {
        const c = added[next++] as Client;
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          c.onConnected = resolve;
          timer = setTimeout(resolve, Math.max(0, deadline - performance.now()));
          open(c);
        });
        clearTimeout(timer);
      }
    };
    await Promise.all(Array.from({ length: Math.min(args.concurrency, added.length) }, worker));
    await untilConnected(added, Math.max(0, args.deadlineMs - (performance.now() - started)));
    return {
      connected: added.filter((c) => c.connected).length,
      ms: performance.now() - started,
      retried: added.reduce((n, c) => n + (c.attemptsSinceMark > 0 ? 1 : 0), 0),
      problems,
    };
  },

  /** Counts: connected clients per node, pings answered, this process's CPU. */
  status() {
    const perNode = urls.map(() => 0);
    for (const c of clients) if (c.connected) perNode[c.node] = (perNode[c.node] ?? 0) + 1;
    const cpu = process.cpuUsage();
    return {
      clients: clients.length,
      perNode,
      pings,
      cpuUs: cpu.user + cpu.system,
      rss: process.memoryUsage().rss,
      stopped: clients.filter((c) => c.stopped).length,
      problems,
    };
  },

  /** Closes these clients for good (they do not reconnect). */
  async close(args: { indexes: number[] }) {
    const waits: Promise<void>[] = [];
    for (const index of args.indexes) {
      const c = client(index);
      c.closing = true;
      if (c.timer) clearTimeout(c.timer);
      const ws = c.ws;
      if (ws && ws.readyState !== WebSocket.CLOSED) {
        waits.push(new Promise((resolve) => ws.once('close', () => resolve())));
        ws.terminate();
      }
    }
    await Promise.all(waits);
    return { closed: args.indexes.length };
  },

  /** Starts counting a conversation's messages with seq 1..maxSeq; `members` are expected to receive them. */
  watch(args: { conversationId: string; maxSeq: number; members: number[] }) {
    const member = new Uint8Array(clients.length);
    // Every process gets the whole list and marks its own clients.
    for (const index of args.members) {
      const c = byIndex.get(index);
      if (c) member[c.local] = 1;
    }
    watches.set(args.conversationId, {
      maxSeq: args.maxSeq,
      member,
      counts: new Uint8Array(clients.length * args.maxSeq),
      firstAt: new Float64Array(clients.length * args.maxSeq),
      replayed: 0,
      live: 0,
      outOfRange: 0,
    });
    return {};
  },

  /**
   * Per seq of a watched conversation: members that have it, members that had it more than
   * once, and non-members that got it; with `arrivals`, each member's first arrival time.
   */
  watched(args: { conversationId: string; arrivals?: boolean; replayed?: boolean }) {
    const watch = watches.get(args.conversationId);
    if (!watch) throw new Error(`not watching ${args.conversationId}`);
    const seqs = [];
    for (let seq = 1; seq <= watch.maxSeq; seq++) {
      let have = 0;
      let duplicated = 0;
      let strangers = 0;
      const arrivals: number[] = [];
      for (const c of clients) {
        const slot = c.local * watch.maxSeq + seq - 1;
        const count = watch.counts[slot] as number;
        if (!watch.member[c.local]) {
          if (count > 0) strangers++;
          continue;
        }
        if (count > 0) {
          have++;
          if (args.arrivals) arrivals.push(watch.firstAt[slot] as number);
        }
        if (count > 1) duplicated++;
      }
      seqs.push({ seq, have, duplicated, strangers, arrivals });
    }
    let members = 0;
    let replayDone = 0;
    for (const c of clients)
      if (watch.member[c.local]) {
        members++;
        if (c.replayedAt > markAt) replayDone++;
      }
    return { members, seqs, replayed: watch.replayed, live: watch.live, outOfRange: watch.outOfRange, replayDone };
  },

  /** Sends one message to a conversation from a client; resolves with the send time and the ack. */
  async send(args: { from: number; conversationId: string; tag: string }) {
    const c = client(args.from);
    if (!c.connected || !c.ws) throw new Error(`${prefix}${args.from} is not connected`);
    const ack = new Promise<string>((resolve) => {
      c.onAck = resolve;
    });
    const sentAt = now();
    c.ws.send(
      `{"type":"message","id":1,"conversation_id":"${args.conversationId}","text":"${MESSAGE_TEXT}","client_msg_id":"${args.tag}"}`,
    );
    const frame = await Promise.race([ack, sleep(30_000).then(() => '')]);
    if (!frame) throw new Error(`no ack for ${args.tag} within 30 s`);
    const body = JSON.parse(frame) as { code: number; body?: { seq?: number }; error?: string };
    if (body.code !== 200) throw new Error(`send refused: ${frame}`);
    return { sentAt, ackAt: now(), seq: body.body?.seq ?? 0 };
  },

  /** The outage begins now: from here on, reconnect times and attempts count. */
  markOutage(args: { at: number }) {
    markAt = args.at;
    failover = true;
    for (const c of clients) c.attemptsSinceMark = 0;
    return {};
  },

  /**
   * Of these clients (the ones in this process): how many are connected again since the mark
   * (on which node), with each one's `connected` time and its replay's end.
   */
  reconnected(args: { indexes: number[] }) {
    const perNode = urls.map(() => 0);
    const back: number[] = [];
    const replayedAt: number[] = [];
    let replayed = 0;
    let replayFailed = 0;
    let attempts = 0;
    const stopped: Record<string, number> = {};
    for (const index of args.indexes) {
      const c = byIndex.get(index);
      if (!c) continue;
      attempts += c.attemptsSinceMark;
      if (c.stopped) stopped[c.stopped] = (stopped[c.stopped] ?? 0) + 1;
      if (!c.connected || c.connectedAt < markAt) continue;
      if (c.replayFailed) replayFailed++;
      back.push(c.connectedAt);
      perNode[c.node] = (perNode[c.node] ?? 0) + 1;
      if (c.replayedAt >= c.connectedAt) {
        replayed++;
        replayedAt.push(c.replayedAt);
      }
    }
    return { back, replayedAt, perNode, replayed, replayFailed, attempts, stopped };
  },

  /** Clients that went through a reconnect since the mark, other than these (expected to stay put). */
  disturbed(args: { except: number[] }) {
    const except = new Set(args.except);
    let disturbed = 0;
    for (const c of clients) if (!except.has(c.index) && !c.closing && c.attemptsSinceMark > 0) disturbed++;
    return { disturbed };
  },
});

process.on('SIGTERM', () => process.exit(0));
process.send?.({ ready: true });
