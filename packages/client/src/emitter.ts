/** A minimal typed event emitter (browsers and Node alike, no dependency). */
export class Emitter<Events extends { [K in keyof Events]: (...args: any[]) => unknown }> {
  private readonly listeners: { [K in keyof Events]?: Set<Events[K]> } = {};

  /** Adds a listener; returns the function that removes it (handy in React/Vue effects). */
  on<K extends keyof Events>(event: K, listener: Events[K]): () => void {
    let set = this.listeners[event];
    if (!set) {
      set = new Set();
      this.listeners[event] = set;
    }
    set.add(listener);
    return () => this.off(event, listener);
  }

  off<K extends keyof Events>(event: K, listener: Events[K]): void {
    this.listeners[event]?.delete(listener);
  }

  /** Calls every listener; a listener that throws does not stop the others (the error is reported). */
  protected emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): unknown[] {
    const results: unknown[] = [];
    for (const listener of [...(this.listeners[event] ?? [])]) {
      try {
        results.push(listener(...args));
      } catch (err) {
        this.listenerFailed(err);
      }
    }
    return results;
  }

  protected listenerCount(event: keyof Events): number {
    return this.listeners[event]?.size ?? 0;
  }

  protected listenerFailed(err: unknown): void {
    setTimeout(() => {
      throw err;
    });
  }
}
