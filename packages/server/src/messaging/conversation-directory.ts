import type { ConversationRecord, Store } from '../store/store.js';

export interface ConversationEntry {
  conversation: ConversationRecord;
  members: Set<string>;
  /** Frozen at run time: the same array goes with every message until the entry is dropped (Delivery caches its JSON). */
  memberList: string[];
}

/** A load under way, shared by every `get` that arrives meanwhile. */
interface Load {
  promise: Promise<ConversationEntry | null>;
  /** Set when the conversation changed while loading: the result is not kept. */
  stale: boolean;
}

/**
 * Conversations and their member lists, cached (bounded, least recently loaded dropped
 * first) because every send checks membership and fans out to members. An entry is
 * dropped on every node when its conversation changes (control event
 * `conversation-changed`), so the next read loads it fresh.
 *
 * A load already under way is shared: a burst of sends to a group just created reads its
 * member list once, not once per send. A load that was under way when its conversation
 * changed may have read the store before the change, so its result goes to the callers
 * that were already waiting (their read began before the change) and is not cached; the
 * next `get` loads again.
 */
export class ConversationDirectory {
  private readonly cache = new Map<string, ConversationEntry>();
  private readonly loading = new Map<string, Load>();
  /** Store reads made (for tests and the bench's profile notes). */
  loads = 0;

  constructor(
    private readonly store: Store,
    private readonly maxEntries = 20_000,
  ) {}

  get(id: string): Promise<ConversationEntry | null> {
    const cached = this.cache.get(id);
    if (cached) return Promise.resolve(cached);
    return (this.loading.get(id) ?? this.load(id)).promise;
  }

  private load(id: string): Load {
    this.loads++;
    const load: Load = { promise: null as unknown as Promise<ConversationEntry | null>, stale: false };
    load.promise = Promise.all([this.store.getConversation(id), this.store.members(id)]).then(
      ([conversation, members]) => {
        if (this.loading.get(id) === load) this.loading.delete(id);
        if (!conversation) return null;
        const memberList = Object.freeze(members) as string[];
        const entry: ConversationEntry = { conversation, members: new Set(memberList), memberList };
        if (!load.stale) {
          if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value as string);
          this.cache.set(id, entry);
        }
        return entry;
      },
      (err: unknown) => {
        if (this.loading.get(id) === load) this.loading.delete(id);
        throw err;
      },
    );
    this.loading.set(id, load);
    return load;
  }

  invalidate(id: string): void {
    this.cache.delete(id);
    const load = this.loading.get(id);
    if (load) {
      load.stale = true;
      this.loading.delete(id);
    }
  }

  /** Drops every entry (the broker came back: `conversation-changed` events may have been missed). */
  clear(): void {
    this.cache.clear();
    for (const load of this.loading.values()) load.stale = true;
    this.loading.clear();
  }
}
