import { Worker } from 'node:worker_threads';
import type {
  CheckpointCommand,
  CheckpointReply,
  CheckpointResult,
  CheckpointThreadData,
} from './sqlite-checkpoint-thread.js';

const STOP_GRACE_MS = 5_000;

/**
 * A worker thread that checkpoints an SQLite file's WAL (sqlite-checkpoint-thread.ts).
 * Checkpointing is housekeeping, never a condition of durability: a commit is durable once
 * its WAL frames are synced, so a thread that dies (`onFailure`) loses nothing; its owner
 * goes back to checkpointing on its own connection. The thread does not keep the process
 * alive; `stop()` closes its connection and waits until it has ended.
 */
export class SqliteCheckpointer {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;
  private stopping = false;
  private running = true;
  private nextRef = 1;
  private readonly waiting = new Map<number, { resolve(r: CheckpointResult): void; reject(e: Error): void }>();

  constructor(options: CheckpointThreadData & { onFailure(err: Error): void }) {
    const { onFailure, ...data } = options;
    this.worker = new Worker(new URL('./sqlite-checkpoint-thread.js', import.meta.url), { workerData: data });
    this.worker.unref();
    let failure: Error | null = null;
    this.worker.on('message', (reply: CheckpointReply) => {
      this.waiting.get(reply.ref)?.resolve(reply.result);
      this.waiting.delete(reply.ref);
    });
    this.worker.on('error', (err) => {
      failure = err;
    });
    this.exited = new Promise((resolve) => {
      this.worker.once('exit', (code) => {
        this.running = false;
        const err = failure ?? new Error(`the checkpoint thread ended (exit code ${code})`);
        for (const waiter of this.waiting.values()) waiter.reject(err);
        this.waiting.clear();
        if (!this.stopping) onFailure(err);
        resolve();
      });
    });
  }

  /** Whether the thread is alive (false after stop() or a failure). */
  get alive(): boolean {
    return this.running;
  }

  /** One checkpoint now, on the thread (tests and diagnostics); rejects if the thread is gone. */
  checkpointNow(): Promise<CheckpointResult> {
    if (!this.running) return Promise.reject(new Error('the checkpoint thread is not running'));
    const ref = this.nextRef++;
    return new Promise((resolve, reject) => {
      this.waiting.set(ref, { resolve, reject });
      this.worker.postMessage({ op: 'checkpoint', ref } satisfies CheckpointCommand);
    });
  }

  /** Ends the thread abruptly, as a crash would (tests): `onFailure` runs. */
  async kill(): Promise<void> {
    await this.worker.terminate();
    await this.exited;
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.stopping = true;
    this.worker.postMessage({ op: 'stop' } satisfies CheckpointCommand);
    // A checkpoint under way finishes first; one that hangs (a stuck disk) is not waited for.
    const timer = setTimeout(() => this.worker.terminate(), STOP_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }
}
