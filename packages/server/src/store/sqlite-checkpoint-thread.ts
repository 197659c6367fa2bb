/**
 * The body of the SQLite checkpoint thread (started by `SqliteCheckpointer`): its own
 * connection to the database file runs `PRAGMA wal_checkpoint(PASSIVE)`, so the copying of
 * WAL pages into the database file and its fsync happen here rather than on the event loop.
 * PASSIVE never waits for a lock and never holds one a writer needs.
 *
 * When: every `pollMs` the thread reads how many WAL frames are not yet in the database file
 * (`WalFrames`); it checkpoints once that reaches `frames` (SQLite's own autocheckpoint
 * size, so pages rewritten by many commits are copied once), or when some have waited
 * `idleMs`. The WAL starts over from its beginning only at a write that finds every frame
 * copied, so the commits that landed while it copied are copied right after, once (more
 * rounds cost more page writes and fsyncs than they saved, measured). When writes never pause
 * long enough for the WAL to start over, it grows to the committing connection's bound
 * (`wal_autocheckpoint`), which copies what is left itself, on the event loop.
 *
 * Commands from the owner: `stop` (close the connection, end the thread) and `checkpoint`
 * (one now, answered with its result).
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { WalFrames } from './wal-frames.js';

export interface CheckpointThreadData {
  file: string;
  /** Frames waiting that start a checkpoint. */
  frames: number;
  /** A checkpoint also starts when frames have waited this long (ms). */
  idleMs: number;
  /** How often the WAL is looked at (ms). */
  pollMs: number;
  /** The main connection's setting; a checkpoint syncs the WAL before and the database after with either. */
  synchronous: 'FULL' | 'NORMAL';
}

/** What `PRAGMA wal_checkpoint` answers: frames in the WAL, and how many of them are in the database file now. */
export interface CheckpointResult {
  busy: number;
  log: number;
  checkpointed: number;
}

export type CheckpointCommand = { op: 'stop' } | { op: 'checkpoint'; ref: number };
export type CheckpointReply = { op: 'checkpointed'; ref: number; result: CheckpointResult };

const { file, frames, idleMs, pollMs, synchronous } = workerData as CheckpointThreadData;
const port = parentPort;
if (!port) throw new Error('sqlite-checkpoint-thread runs as a worker thread');

const db = new Database(file, { fileMustExist: true });
db.pragma(`synchronous = ${synchronous}`);
// This connection never checkpoints on its own; closing it must not either (the owner's does, last).
db.pragma('wal_autocheckpoint = 0');
const wal = new WalFrames(file);

const checkpoint = (): CheckpointResult =>
  (db.pragma('wal_checkpoint(PASSIVE)') as CheckpointResult[])[0] as CheckpointResult;

let waitingSince = 0;
function poll(): void {
  // Unknown (a WAL-index this code cannot read): checkpoint every idle period instead.
  const state = wal.read() ?? { waiting: 1 };
  if (state.waiting === 0) {
    waitingSince = 0;
    return;
  }
  const now = Date.now();
  if (waitingSince === 0) waitingSince = now;
  if (state.waiting < frames && now - waitingSince < idleMs) return;
  const result = checkpoint();
  if (result.log > result.checkpointed) checkpoint();
  waitingSince = 0;
}

const timer = setInterval(poll, pollMs);

port.on('message', (command: CheckpointCommand) => {
  if (command.op === 'checkpoint') {
    port.postMessage({ op: 'checkpointed', ref: command.ref, result: checkpoint() } satisfies CheckpointReply);
  } else if (command.op === 'stop') {
    clearInterval(timer);
    wal.close();
    db.close();
    port.close();
  }
});
