import type { ChatMessage } from '@gatehouse/client';

/** One line of a conversation: stored (has a seq) or still waiting for its ack (local). */
export interface LogEntry {
  key: string;
  seq: number | null;
  fromId: string;
  fromName: string;
  fromKind: string;
  text: string;
  ts: number;
  state: 'stored' | 'sending' | 'failed';
}

/**
 * A conversation's messages, each once: stored messages keyed by seq (history pages, live and
 * replayed messages and acks of our own sends all land on the same key), our sends that wait
 * for their ack after them. Immutable: every change returns a new log for the view.
 */
export class ConversationLog {
  private constructor(
    readonly stored: ReadonlyMap<number, LogEntry>,
    readonly pending: readonly LogEntry[],
    readonly hasMore: boolean,
  ) {}

  static empty(): ConversationLog {
    return new ConversationLog(new Map(), [], false);
  }

  get entries(): LogEntry[] {
    return [...[...this.stored.values()].sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0)), ...this.pending];
  }

  get oldestSeq(): number | null {
    let min: number | null = null;
    for (const seq of this.stored.keys()) if (min === null || seq < min) min = seq;
    return min;
  }

  has(seq: number): boolean {
    return this.stored.has(seq);
  }

  withMessages(messages: readonly ChatMessage[], hasMore?: boolean): ConversationLog {
    const stored = new Map(this.stored);
    for (const m of messages) stored.set(m.seq, fromMessage(m));
    return new ConversationLog(stored, this.pending, hasMore ?? this.hasMore);
  }

  withPending(entry: LogEntry): ConversationLog {
    return new ConversationLog(this.stored, [...this.pending, entry], this.hasMore);
  }

  /** Our send was stored as `seq`: it moves from pending to its place (once, whatever came first). */
  acked(key: string, seq: number, ts: number): ConversationLog {
    const entry = this.pending.find((p) => p.key === key);
    const stored = new Map(this.stored);
    if (entry && !stored.has(seq)) stored.set(seq, { ...entry, seq, ts, state: 'stored', key: `s${seq}` });
    return new ConversationLog(
      stored,
      this.pending.filter((p) => p.key !== key),
      this.hasMore,
    );
  }

  failed(key: string): ConversationLog {
    return new ConversationLog(
      this.stored,
      this.pending.map((p) => (p.key === key ? { ...p, state: 'failed' as const } : p)),
      this.hasMore,
    );
  }
}

function fromMessage(m: ChatMessage): LogEntry {
  return {
    key: `s${m.seq}`,
    seq: m.seq,
    fromId: m.from?.id ?? '',
    fromName: m.from?.name ?? m.from?.id ?? '',
    fromKind: m.from?.kind ?? '',
    text: m.text ?? '',
    ts: m.ts,
    state: 'stored',
  };
}
