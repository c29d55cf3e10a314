// A small typed event emitter: node:events does not exist in pages.

type Listener<A extends unknown[]> = (...args: A) => void;

/** Events map: event name -> listener argument tuple. */
export class Emitter<Events extends { [K in keyof Events]: unknown[] }> {
  private readonly listeners: { [K in keyof Events]?: Array<Listener<Events[K]>> } = {};

  constructor(
    /** Where a listener's exception goes, so one bad listener cannot stop the others or the client. */
    private readonly onListenerError: (err: unknown, event: string) => void,
  ) {}

  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof Events>(event: K, fn: Listener<Events[K]>): () => void {
    (this.listeners[event] ??= []).push(fn);
    return () => {
      const list = this.listeners[event];
      const i = list ? list.indexOf(fn) : -1;
      if (list && i >= 0) list.splice(i, 1);
    };
  }

  emit<K extends keyof Events>(event: K, ...args: Events[K]): void {
    const list = this.listeners[event];
    if (!list) return;
    // A copy: a listener may unsubscribe itself (or another) while we iterate.
    for (const fn of [...list]) {
      try {
        fn(...args);
      } catch (err) {
        this.onListenerError(err, String(event));
      }
    }
  }

  count<K extends keyof Events>(event: K): number {
    return this.listeners[event]?.length ?? 0;
  }
}
