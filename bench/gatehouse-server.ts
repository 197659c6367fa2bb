/**
 * Gatehouse under test, in its own process: built with `Gatehouse.create({config})` on a
 * fresh data folder whose keys file holds the bench's HS256 key. Answers `stats` over IPC
 * with its own CPU time and RSS. Argument: JSON `{dataDir, key, replayLimit}`, and for a
 * node of a cluster `{storeUrl, brokerUrl, brokerPrefix, nodeId, keysFile}` (the keys file
 * shared by every node, written by the orchestrator).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import type * as App from '../packages/server/src/app.js';
import { BENCH_ADMIN_KEY, BENCH_LIMITS, type BenchKey, serveRpc, serverStats, writeKeysFile } from './common.js';

export interface GatehouseServerOptions {
  dataDir: string;
  key: BenchKey;
  replayLimit: number;
  /** Empty or absent: SQLite in the data folder. */
  storeUrl?: string;
  /** Absent: `memory://` (the in-process broker). */
  brokerUrl?: string;
  brokerPrefix?: string;
  nodeId?: string;
  /** Absent: `keys.json` written into the data folder. */
  keysFile?: string;
  /** Absent: a free port. A restart on the same port keeps clients' URLs (reconnect storm). */
  port?: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as GatehouseServerOptions;
const keysFile = options.keysFile ?? join(options.dataDir, 'keys.json');
if (!options.keysFile && !existsSync(keysFile)) writeKeysFile(keysFile, options.key);

// The worktree's own build (not whatever node_modules/@gatehouse/server points at).
const { Gatehouse } = (await import(
  new URL('../../packages/server/dist/src/app.js', import.meta.url).href
)) as typeof App;
const gatehouse = await Gatehouse.create({
  config: {
    server: { host: '127.0.0.1', port: options.port ?? 0 },
    dataDir: options.dataDir,
    adminKey: BENCH_ADMIN_KEY,
    log: { level: 'warn' },
    limits: BENCH_LIMITS,
    messages: { replayLimit: options.replayLimit },
    tokens: { keysFile },
    // BENCH_SQLITE_CHECKPOINT_THREAD=true measures checkpoints on a worker thread (an A/B, not the default).
    store: {
      url: options.storeUrl ?? '',
      sqliteCheckpointThread: process.env.BENCH_SQLITE_CHECKPOINT_THREAD === 'true',
    },
    broker: { url: options.brokerUrl ?? 'memory://', prefix: options.brokerPrefix ?? 'gatehouse' },
    nodeId: options.nodeId ?? '',
  },
});
const { port } = await gatehouse.listen();

// Handshakes the server saw, sampled every 100 ms from start: the peak of any 1 s window.
const samples: number[] = [];
let lastCounts = { ok: 0, refused: 0 };
const sampleTimer = setInterval(async () => {
  const metric = await gatehouse.services.metrics.handshakes.get();
  let ok = 0;
  let refused = 0;
  for (const v of metric.values) {
    if (v.labels.outcome === 'ok') ok += v.value;
    else if (v.labels.outcome !== 'anonymous') refused += v.value;
  }
  samples.push(ok + refused - lastCounts.ok - lastCounts.refused);
  lastCounts = { ok, refused };
}, 100);
sampleTimer.unref();

// CPU profiles of measured phases (BENCH_PROFILE_DIR, see bench/run.ts), through the inspector.
let inspector: Session | null = null;
function handshakeStats() {
  let peak = 0;
  for (let i = 0; i < samples.length; i++) {
    const window = samples.slice(Math.max(0, i - 9), i + 1).reduce((a, b) => a + b, 0);
    peak = Math.max(peak, window);
  }
  return { peakPerSec: peak, ok: lastCounts.ok, refused: lastCounts.refused };
}

serveRpc({
  stats: serverStats,
  handshakeStats,
  /** Open sockets on this node (the scale scenario). */
  connections: () => ({ open: gatehouse.services.gateway.registry.size }),
  /**
   * Principals straight into the store, `concurrency` inserts at a time (the scale scenario's
   * group members must exist; tens of thousands through the open API would take most of its time).
   */
  async createUsers(args: { ids: string[]; concurrency?: number }) {
    const { store, clock } = gatehouse.services;
    let next = 0;
    const worker = async () => {
      while (next < args.ids.length) {
        const id = args.ids[next++] as string;
        await store.createPrincipal({
          id,
          kind: 'user',
          name: id,
          passwordHash: null,
          appKeyId: null,
          avatar: null,
          extras: null,
          tokenVersion: 0,
          blocked: false,
          createdAt: clock.now(),
          lastLoginAt: null,
        });
      }
    };
    await Promise.all(Array.from({ length: args.concurrency ?? 8 }, worker));
    return { created: args.ids.length };
  },
  /** A graceful stop (sockets close with 1001), then exit; answers with the handshakes seen. */
  async shutdown() {
    await gatehouse.close();
    await new Promise((resolve) => setTimeout(resolve, 150));
    setImmediate(() => process.exit(0));
    return handshakeStats();
  },
  async profileStart(args: { intervalUs: number }) {
    inspector = new Session();
    inspector.connect();
    await inspector.post('Profiler.enable');
    await inspector.post('Profiler.setSamplingInterval', { interval: args.intervalUs });
    await inspector.post('Profiler.start');
  },
  async profileStop(args: { file: string }) {
    if (!inspector) return;
    const { profile } = await inspector.post('Profiler.stop');
    writeFileSync(args.file, JSON.stringify(profile));
    inspector.disconnect();
    inspector = null;
  },
});
process.on('SIGTERM', () => process.exit(0));
process.send?.({ ready: true, port });
