import { closeSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';

/** The WAL-index layout this reads (SQLite's `WALINDEX_MAX_VERSION`, unchanged since 3.7.0). */
const WAL_INDEX_VERSION = 3007000;
/** Offsets in the `-shm` file (sqlite.org/walformat.html): the first header copy, then the checkpoint info. */
const VERSION_AT = 0;
const IS_INIT_AT = 12;
const MX_FRAME_AT = 16;
const N_BACKFILL_AT = 96;

/**
 * How many frames an SQLite database's WAL holds (mxFrame, the last valid one) and how many
 * of them are not yet copied into the database file (minus nBackfill, those checkpointed),
 * read from the WAL-index (`-shm`) that every connection maps. A read costs one pread of 100 bytes, so it can be
 * polled; `PRAGMA wal_checkpoint` tells the same but does the checkpoint to learn it.
 * The value is a hint for when to checkpoint, never for correctness: a read racing a writer
 * may be one commit old.
 */
export class WalFrames {
  private fd: number | null = null;
  private readonly buffer = Buffer.alloc(N_BACKFILL_AT + 4);
  private readonly little = endianness() === 'LE';

  constructor(private readonly databaseFile: string) {}

  /** Frames in the WAL and those of them waiting to be checkpointed, or null when the WAL-index cannot be read. */
  read(): { frames: number; waiting: number } | null {
    if (this.fd === null) {
      try {
        this.fd = openSync(`${this.databaseFile}-shm`, 'r');
      } catch {
        return null; // not created yet, or not in WAL mode
      }
    }
    const b = this.buffer;
    if (readSync(this.fd, b, 0, b.length, 0) < b.length) return null;
    const u32 = (at: number) => (this.little ? b.readUInt32LE(at) : b.readUInt32BE(at));
    if (u32(VERSION_AT) !== WAL_INDEX_VERSION || b[IS_INIT_AT] !== 1) return null;
    const frames = u32(MX_FRAME_AT);
    return { frames, waiting: Math.max(0, frames - u32(N_BACKFILL_AT)) };
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
