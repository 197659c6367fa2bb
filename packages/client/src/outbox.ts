import type { AckBody, MessageFrame } from '@gatehouse/protocol';

export interface OutboxEntry {
  frame: MessageFrame & { client_msg_id: string; id: string };
  resolve(ack: AckBody): void;
  reject(err: Error): void;
  /** When the frame last went out on a socket (0: not yet on this socket). */
  sentAt: number;
}

/**
 * Sends waiting for their ack, in the order they were made. Kept across reconnects and
 * sent again on the next socket with the same `client_msg_id`: the server stores a
 * `client_msg_id` once and answers a repeat with the first result, so a resend never
 * duplicates a message.
 */
export class Outbox {
  private readonly entries = new Map<string, OutboxEntry>();

  constructor(readonly limit: number) {}

  get size(): number {
    return this.entries.size;
  }

  get full(): boolean {
    return this.entries.size >= this.limit;
  }

  add(entry: OutboxEntry): void {
    this.entries.set(entry.frame.id, entry);
  }

  take(id: string): OutboxEntry | undefined {
    const entry = this.entries.get(id);
    if (entry) this.entries.delete(id);
    return entry;
  }

  /** Every waiting send, oldest first. */
  all(): OutboxEntry[] {
    return [...this.entries.values()];
  }

  /** Rejects and forgets every waiting send. */
  fail(err: Error): void {
    const entries = this.all();
    this.entries.clear();
    for (const entry of entries) entry.reject(err);
  }
}
