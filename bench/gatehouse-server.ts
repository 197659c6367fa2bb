/**
 * Gatehouse under test, in its own process: built with `Gatehouse.create({config})` on a
 * fresh data folder whose keys file holds the bench's HS256 key. Answers `stats` over IPC
 * with its own CPU time and RSS. Argument: JSON `{dataDir, key, replayLimit}`.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import type * as App from '../packages/server/src/app.js';
import { BENCH_ADMIN_KEY, BENCH_LIMITS, type BenchKey, serveRpc, serverStats } from './common.js';

export interface GatehouseServerOptions {
  dataDir: string;
  key: BenchKey;
  replayLimit: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as GatehouseServerOptions;
writeFileSync(
  join(options.dataDir, 'keys.json'),
  `${JSON.stringify({ signingKid: options.key.kid, keys: [{ kid: options.key.kid, alg: 'HS256', secret: options.key.secret }] })}\n`,
  { mode: 0o600 },
);

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
