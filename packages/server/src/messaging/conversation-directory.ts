import type { ConversationRecord, Store } from '../store/store.js';

export interface ConversationEntry {
  conversation: ConversationRecord;
  members: Set<string>;
  memberList: string[];
}

/**
 * Conversations and their member lists, cached (bounded, least recently loaded dropped
 * first) because every send checks membership and fans out to members. An entry is
 * dropped on every node when its conversation changes (control event
 * `conversation-changed`), so the next read loads it fresh.
 */
export class ConversationDirectory {
  private readonly cache = new Map<string, ConversationEntry>();

  constructor(
    private readonly store: Store,
    private readonly maxEntries = 20_000,
  ) {}

  async get(id: string): Promise<ConversationEntry | null> {
    const cached = this.cache.get(id);
    if (cached) return cached;
    const conversation = await this.store.getConversation(id);
    if (!conversation) return null;
    const memberList = await this.store.members(id);
    const entry = { conversation, members: new Set(memberList), memberList };
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(id, entry);
    return entry;
  }

  invalidate(id: string): void {
    this.cache.delete(id);
  }

  /** Drops every entry (the broker came back: `conversation-changed` events may have been missed). */
  clear(): void {
    this.cache.clear();
  }
}
