/**
 * Load generator of the reconnect storm: N clients against one URL, spread over several
 * source addresses in 127.0.0.0/8 (one address has ~28,000 ephemeral ports). Strategy `sdk`
 * is the Gatehouse SDK with its default policy; `naive` is the hand-written loop many apps
 * have: on close, wait a fixed second, connect again — no jitter, no backoff.
 */
import { GatehouseClient } from '@gatehouse/client';
import WebSocket from 'ws';
import { type BenchKey, mintToken, percentile, serveRpc } from './common.js';

interface Peer {
  connectedAt: number;
  attempts: number;
  failures: number;
  close(): void;
}

const peers: Peer[] = [];
let downAt = 0;

function address(i: number, addresses: number): string {
  return `127.0.0.${2 + (i % addresses)}`;
}

function sdkPeer(url: string, token: string, localAddress: string): Promise<Peer> {
  const client = new GatehouseClient({ url, token, WebSocket: WebSocket as any, localAddress });
  const peer: Peer = { connectedAt: 0, attempts: 1, failures: 0, close: () => client.close() };
  client.on('connected', () => {
    peer.connectedAt = performance.now();
  });
  client.on('reconnecting', () => {
    peer.attempts++;
    if (peer.connectedAt < downAt) peer.failures++;
  });
  return client.connect().then(() => peer);
}

function naivePeer(url: string, token: string, localAddress: string): Promise<Peer> {
  let closed = false;
  let ws: WebSocket | null = null;
  let first: (() => void) | null = null;
  const peer: Peer = {
    connectedAt: 0,
    attempts: 0,
    failures: 0,
    close() {
      closed = true;
      ws?.terminate();
    },
  };
  const open = () => {
    if (closed) return;
    peer.attempts++;
    ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, localAddress, perMessageDeflate: false });
    ws.on('error', () => {});
    ws.on('message', (data) => {
      if (String(data).includes('"type":"connected"')) {
        peer.connectedAt = performance.now();
        first?.();
        first = null;
      }
    });
    ws.on('close', () => {
      if (closed) return;
      if (peer.connectedAt < downAt) peer.failures++;
      setTimeout(open, 1000);
    });
  };
  return new Promise((resolve) => {
    first = () => resolve(peer);
    open();
  });
}

serveRpc({
  /** Connects `count` clients (`concurrency` handshakes at a time) and resolves once all are connected. */
  async connect(args: {
    url: string;
    key: BenchKey;
    count: number;
    strategy: 'sdk' | 'naive';
    addresses: number;
    concurrency: number;
  }) {
    let next = 0;
    const worker = async () => {
      while (next < args.count) {
        const i = next++;
        const token = mintToken(args.key, { sub: `storm-${i}`, ttlSeconds: 3600 });
        const make = args.strategy === 'sdk' ? sdkPeer : naivePeer;
        peers.push(await make(args.url, token, address(i, args.addresses)));
      }
    };
    await Promise.all(Array.from({ length: args.concurrency }, worker));
    return { connected: peers.length };
  },

  /** The server is about to go: times count from now. */
  markDown() {
    downAt = performance.now();
    for (const peer of peers) peer.attempts = 0;
  },

  /** Resolves when every client is connected again (or at the deadline) with the times to get back. */
  async waitBack(args: { timeoutMs: number }) {
    const deadline = performance.now() + args.timeoutMs;
    while (performance.now() < deadline && peers.some((p) => p.connectedAt < downAt))
      await new Promise((resolve) => setTimeout(resolve, 50));
    const back = peers
      .filter((p) => p.connectedAt >= downAt)
      .map((p) => p.connectedAt - downAt)
      .sort((a, b) => a - b);
    return {
      back: back.length,
      notBack: peers.length - back.length,
      p50: percentile(back, 50),
      p99: percentile(back, 99),
      max: back.at(-1) ?? Number.NaN,
      attempts: peers.reduce((n, p) => n + p.attempts, 0),
      failedAttempts: peers.reduce((n, p) => n + p.failures, 0),
    };
  },

  closeAll() {
    for (const peer of peers.splice(0)) peer.close();
  },
});
process.send?.({ ready: true });
