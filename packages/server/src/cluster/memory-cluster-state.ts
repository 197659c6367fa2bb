import type { ClusterState, SlotHolder } from './cluster-state.js';

/**
 * One node only: slots are already enforced by the ConnectionRegistry, so claims here only
 * record the holder; presence is a count per principal.
 */
export class MemoryClusterState implements ClusterState {
  private readonly slots = new Map<string, string>();
  private readonly counts = new Map<string, number>();

  constructor(private readonly node: string) {}

  async start(): Promise<void> {}

  async liveNodes(): Promise<string[]> {
    return [this.node];
  }
  async stop(): Promise<void> {}

  async claimSlot(slot: string, connectionId: string, whileHeld?: () => boolean): Promise<SlotHolder | null> {
    const previous = this.slots.get(slot);
    this.slots.set(slot, connectionId);
    if (whileHeld && !whileHeld()) {
      // Given up: the holder stays who it was.
      if (previous === undefined) this.slots.delete(slot);
      else this.slots.set(slot, previous);
      return null;
    }
    return previous && previous !== connectionId ? { connectionId: previous, node: this.node } : null;
  }

  async releaseSlot(slot: string, connectionId: string): Promise<void> {
    if (this.slots.get(slot) === connectionId) this.slots.delete(slot);
  }

  async connected(principalId: string): Promise<boolean> {
    const n = (this.counts.get(principalId) ?? 0) + 1;
    this.counts.set(principalId, n);
    return n === 1;
  }

  async disconnected(principalId: string): Promise<boolean> {
    const n = (this.counts.get(principalId) ?? 0) - 1;
    if (n > 0) {
      this.counts.set(principalId, n);
      return false;
    }
    this.counts.delete(principalId);
    return true;
  }

  async online(principalIds: string[]): Promise<Set<string>> {
    return new Set(principalIds.filter((id) => this.counts.has(id)));
  }

  async lostSlots(held: { slot: string; connectionId: string }[]): Promise<string[]> {
    return held
      .filter(({ slot, connectionId }) => this.slots.has(slot) && this.slots.get(slot) !== connectionId)
      .map((h) => h.connectionId);
  }

  /** One node: no other node can die under it. */
  onNodeLost(): void {}
}
