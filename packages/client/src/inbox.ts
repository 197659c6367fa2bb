import type { ChatMessage } from '@gatehouse/protocol';

/**
 * Incoming messages, once each and in order per conversation. A message is taken only if its
 * `seq` is above the highest one taken in its conversation, which drops the copies that come
 * again in a replay (live and offline overlap after a reconnect). `handled` moves when the app's
 * handler returned; acks are sent up to it, batched.
 */
export class Inbox {
  private readonly taken = new Map<string, number>();
  private readonly handled = new Map<string, number>();
  private readonly unacked = new Map<string, number>();
  private count = 0;

  /** True when the message is new (and now counts as taken); false for a copy already taken. */
  take(message: ChatMessage): boolean {
    const last = this.taken.get(message.conversation_id) ?? 0;
    if (message.seq <= last) {
      // A copy the server sent again: its cursor is behind; ack what the app already handled.
      const done = this.handled.get(message.conversation_id) ?? 0;
      if (message.seq <= done) this.markAck(message.conversation_id, message.seq);
      return false;
    }
    this.taken.set(message.conversation_id, message.seq);
    return true;
  }

  /** The app handled `message`: it may be acked. */
  done(message: ChatMessage): void {
    const { conversation_id: id, seq } = message;
    if (seq > (this.handled.get(id) ?? 0)) this.handled.set(id, seq);
    this.markAck(id, seq);
  }

  private markAck(conversationId: string, seq: number): void {
    if (seq > (this.unacked.get(conversationId) ?? 0)) this.unacked.set(conversationId, seq);
    this.count++;
  }

  /** How many handled messages wait for their ack. */
  get pendingAcks(): number {
    return this.count;
  }

  /** The acks to send now (one per conversation, the highest seq), and forgets them. */
  drainAcks(): { conversation_id: string; seq: number }[] {
    const out = [...this.unacked].map(([conversation_id, seq]) => ({ conversation_id, seq }));
    this.unacked.clear();
    this.count = 0;
    return out;
  }

  /** Puts acks back that could not be sent (no socket). */
  restoreAcks(acks: { conversation_id: string; seq: number }[]): void {
    for (const a of acks) this.markAck(a.conversation_id, a.seq);
  }
}
