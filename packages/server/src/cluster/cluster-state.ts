/** Where a connection lives: enough for another node to ask its node to close it. */
export interface SlotHolder {
  connectionId: string;
  node: string;
}

/**
 * State the nodes of a cluster share beyond the broker: device slots and presence.
 * Implementations: MemoryClusterState (one node) and PostgresClusterState (many nodes).
 */
export interface ClusterState {
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * Makes `connectionId` (on this node) the slot's holder, atomically across nodes, and
   * resolves with the holder it displaced — null when there was none. The last claim wins.
   * `whileHeld` (synchronous) runs once this claim is decided and before any later claim of
   * the slot, on any node, can be: what it does (greeting the socket) is ordered like the
   * claims. Should the claim fail after it ran, the promise rejects all the same. When
   * `whileHeld` answers false (the socket went away while it waited for the claim), the claim
   * is given up: the holder stays who it was, and the promise resolves null.
   */
  claimSlot(slot: string, connectionId: string, whileHeld?: () => boolean): Promise<SlotHolder | null>;
  /** Frees the slot if `connectionId` still holds it (an old socket never frees a newer one's slot). */
  releaseSlot(slot: string, connectionId: string): Promise<void>;
  /**
   * Counts a connection of the principal on this node; resolves true when that made the
   * principal online (its first connection on any live node).
   */
  connected(principalId: string): Promise<boolean>;
  /** Uncounts one; resolves true when the principal has no connection left on any live node. */
  disconnected(principalId: string): Promise<boolean>;
  /** Which of these principals have a connection on a live node. */
  online(principalIds: string[]): Promise<Set<string>>;
  /**
   * Of these slots held by connections of this node, the connection ids whose slot another
   * claim has taken since (an evict that never arrived, e.g. while the broker was down).
   */
  lostSlots(held: { slot: string; connectionId: string }[]): Promise<string[]>;
  /** The ids of the nodes that are alive now (this one included); read-only, for the admin API. */
  liveNodes(): Promise<string[]>;
  /** Registers who hears about principals that went offline because their node died. */
  onNodeLost(handler: (offlinePrincipalIds: string[]) => void): void;
}
