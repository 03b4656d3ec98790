// Listeners by event name, for the client and its subscriptions. A listener
// that throws does not break the client: its error is rethrown on a timer,
// the way event targets report it.

type AnyListener = (data: never) => void;

export class Emitter {
  private readonly listeners = new Map<string, Set<AnyListener>>();

  /** Adds a listener; returns a function that removes it. */
  on(type: string, listener: AnyListener): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(listener);
    return () => this.off(type, listener);
  }

  /** Adds a listener of the next event of a type only. */
  once(type: string, listener: AnyListener): () => void {
    const off = this.on(type, (data: never) => {
      off();
      listener(data);
    });
    return off;
  }

  off(type: string, listener: AnyListener): void {
    this.listeners.get(type)?.delete(listener);
  }

  emit(type: string, data: unknown): void {
    const set = this.listeners.get(type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        (fn as (data: unknown) => void)(data);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
}
