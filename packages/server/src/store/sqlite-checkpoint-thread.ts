/**
 * The body of the SQLite checkpoint thread (started by `SqliteCheckpointer`): its own
 * connection to the database file runs `PRAGMA wal_checkpoint(PASSIVE)` every
 * `intervalMs`, so the copying of WAL pages into the database file and its fsync happen
 * here rather than on the event loop. PASSIVE never waits for a lock and never holds one a
 * writer needs. Commands from the owner: `stop` (close the connection, end the thread) and
 * `checkpoint` (one now, answered with its result).
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

export interface CheckpointThreadData {
  file: string;
  intervalMs: number;
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

const { file, intervalMs, synchronous } = workerData as CheckpointThreadData;
const port = parentPort;
if (!port) throw new Error('sqlite-checkpoint-thread runs as a worker thread');

const db = new Database(file, { fileMustExist: true });
db.pragma(`synchronous = ${synchronous}`);
// Closing this connection must never be what checkpoints (the owner's connection does it last).
db.pragma('wal_autocheckpoint = 0');

const checkpoint = (): CheckpointResult =>
  (db.pragma('wal_checkpoint(PASSIVE)') as CheckpointResult[])[0] as CheckpointResult;

const timer = setInterval(checkpoint, intervalMs);

port.on('message', (command: CheckpointCommand) => {
  if (command.op === 'checkpoint') {
    port.postMessage({ op: 'checkpointed', ref: command.ref, result: checkpoint() } satisfies CheckpointReply);
  } else if (command.op === 'stop') {
    clearInterval(timer);
    db.close();
    port.close();
  }
});
