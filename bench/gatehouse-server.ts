/**
 * Gatehouse under test, in its own process: built with `Gatehouse.create({config})` on a
 * fresh data folder whose keys file holds the bench's HS256 key. Answers `stats` over IPC
 * with its own CPU time and RSS. Argument: JSON `{dataDir, key, replayLimit}`, and for a
 * node of a cluster `{storeUrl, brokerUrl, brokerPrefix, nodeId, keysFile}` (the keys file
 * shared by every node, written by the orchestrator).
 */
import { writeFileSync } from 'node:fs';
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
}

const options = JSON.parse(process.argv[2] ?? '{}') as GatehouseServerOptions;
const keysFile = options.keysFile ?? join(options.dataDir, 'keys.json');
if (!options.keysFile) writeKeysFile(keysFile, options.key);

// The worktree's own build (not whatever node_modules/@gatehouse/server points at).
const { Gatehouse } = (await import(
  new URL('../../packages/server/dist/src/app.js', import.meta.url).href
)) as typeof App;
const gatehouse = await Gatehouse.create({
  config: {
    server: { host: '127.0.0.1', port: 0 },
    dataDir: options.dataDir,
    adminKey: BENCH_ADMIN_KEY,
    log: { level: 'warn' },
    limits: BENCH_LIMITS,
    messages: { replayLimit: options.replayLimit },
    tokens: { keysFile },
    store: { url: options.storeUrl ?? '' },
    broker: { url: options.brokerUrl ?? 'memory://', prefix: options.brokerPrefix ?? 'gatehouse' },
    nodeId: options.nodeId ?? '',
  },
});
const { port } = await gatehouse.listen();

// CPU profiles of measured phases (BENCH_PROFILE_DIR, see bench/run.ts), through the inspector.
let inspector: Session | null = null;
serveRpc({
  stats: serverStats,
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
