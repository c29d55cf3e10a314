/**
 * Per-client mailboxes of a gateway backend: the messages of one client run
 * one at a time, in arrival order, each starting only once the previous
 * one's promise has settled; different clients run concurrently.
 *
 * A client whose last message finished has no mailbox at all, so the common
 * case (a handler that answers synchronously, or a client with nothing in
 * flight) costs two map lookups and allocates nothing here.
 */

/** One unit of work. It must not throw; a returned thenable holds the mailbox until it settles. */
export type Task = () => unknown;

interface Box {
  /** A sequential task is running. */
  busy: boolean;
  /** Concurrent (opted-out) tasks running. */
  concurrent: number;
  /** Sequential tasks waiting, oldest first. */
  queue: Task[] | undefined;
  /** The client left: nothing more starts, and this runs once the box is idle. */
  closed: boolean;
  onIdle: (() => void) | undefined;
}

export type SubmitResult = 'ok' | 'full';

export class Mailboxes {
  private readonly boxes = new Map<string, Map<number, Box>>();
  /** Tasks accepted and not yet finished or dropped, over all clients. */
  private held = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(
    /** Messages of one client held at once (running and waiting). */
    readonly maxPerClient: number,
  ) {
    if (!Number.isInteger(maxPerClient) || maxPerClient < 1) throw new RangeError(`maxPerClient must be a positive integer, got ${maxPerClient}`);
  }

  /** Tasks held (running or waiting), over all clients. */
  get size(): number {
    return this.held;
  }

  /** Clients with a mailbox: something of theirs is running or waiting. */
  get clients(): number {
    let n = 0;
    for (const m of this.boxes.values()) n += m.size;
    return n;
  }

  /** Messages held for one client. */
  heldFor(agent: string, client: number): number {
    const box = this.boxes.get(agent)?.get(client);
    return box ? boxSize(box) : 0;
  }

  /**
   * Runs the task now, or after the client's earlier sequential tasks.
   * `concurrent` tasks start at once and hold nothing up. `capped: false`
   * is for the framework's own tasks (restores), which must not be refused.
   */
  submit(agent: string, client: number, task: Task, concurrent: boolean, capped = true): SubmitResult {
    let byClient = this.boxes.get(agent);
    let box = byClient?.get(client);
    if (box === undefined) {
      this.held++;
      const result = run(task);
      if (!isThenable(result)) {
        this.release();
        return 'ok';
      }
      box = { busy: false, concurrent: 0, queue: undefined, closed: false, onIdle: undefined };
      if (!byClient) this.boxes.set(agent, (byClient = new Map()));
      byClient.set(client, box);
      this.hold(agent, client, box, result, concurrent);
      return 'ok';
    }
    if (capped && boxSize(box) >= this.maxPerClient) return 'full';
    this.held++;
    if (concurrent || !box.busy) {
      const result = run(task);
      if (isThenable(result)) this.hold(agent, client, box, result, concurrent);
      else this.release();
      return 'ok';
    }
    (box.queue ??= []).push(task);
    return 'ok';
  }

  /**
   * The client left: what it had waiting is dropped (nobody is there to be
   * answered), and `then` runs once what is running has settled, or now.
   * Returns how many waiting tasks were dropped.
   */
  close(agent: string, client: number, then: () => void): number {
    const byClient = this.boxes.get(agent);
    const box = byClient?.get(client);
    if (!box || !byClient) {
      then();
      return 0;
    }
    this.forget(agent, byClient, client);
    const dropped = this.drop(box);
    box.onIdle = then;
    this.settle(agent, client, box);
    return dropped;
  }

  /** The agent's link is gone, and with it every client's chance of an answer: drops what waits. */
  closeAgent(agent: string): number {
    const byClient = this.boxes.get(agent);
    if (!byClient) return 0;
    this.boxes.delete(agent);
    let dropped = 0;
    for (const box of byClient.values()) dropped += this.drop(box);
    return dropped;
  }

  /** Resolves true once nothing is held, false at the timeout. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.held === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const i = this.idleWaiters.indexOf(done);
        if (i >= 0) this.idleWaiters.splice(i, 1);
        resolve(false);
      }, timeoutMs);
      timer.unref();
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.idleWaiters.push(done);
    });
  }

  private hold(agent: string, client: number, box: Box, result: PromiseLike<unknown>, concurrent: boolean): void {
    if (concurrent) {
      box.concurrent++;
      const done = () => {
        box.concurrent--;
        this.release();
        this.settle(agent, client, box);
      };
      result.then(done, done);
      return;
    }
    box.busy = true;
    const next = () => {
      box.busy = false;
      this.release();
      this.pump(agent, client, box);
    };
    result.then(next, next);
  }

  /** Starts waiting tasks until one goes asynchronous or none is left. */
  private pump(agent: string, client: number, box: Box): void {
    for (let task = box.queue?.shift(); task !== undefined; task = box.queue?.shift()) {
      const result = run(task);
      if (isThenable(result)) {
        this.hold(agent, client, box, result, false);
        return;
      }
      this.release();
    }
    this.settle(agent, client, box);
  }

  /** An idle box is removed (or, once its client left, runs its last callback). */
  private settle(agent: string, client: number, box: Box): void {
    if (box.busy || box.concurrent > 0 || (box.queue?.length ?? 0) > 0) return;
    if (box.closed) {
      const then = box.onIdle;
      box.onIdle = undefined;
      then?.();
      return;
    }
    const byClient = this.boxes.get(agent);
    if (byClient?.get(client) === box) this.forget(agent, byClient, client);
  }

  private forget(agent: string, byClient: Map<number, Box>, client: number): void {
    byClient.delete(client);
    if (byClient.size === 0) this.boxes.delete(agent);
  }

  private drop(box: Box): number {
    box.closed = true;
    const dropped = box.queue?.length ?? 0;
    box.queue = undefined;
    this.held -= dropped;
    if (dropped > 0) this.notifyIdle();
    return dropped;
  }

  private release(): void {
    this.held--;
    this.notifyIdle();
  }

  private notifyIdle(): void {
    if (this.held === 0 && this.idleWaiters.length > 0) for (const w of this.idleWaiters.splice(0)) w();
  }
}

function boxSize(box: Box): number {
  return (box.busy ? 1 : 0) + box.concurrent + (box.queue?.length ?? 0);
}

/** Tasks do not throw by contract; one that does must not wedge its client's mailbox. */
function run(task: Task): unknown {
  try {
    return task();
  } catch {
    return undefined;
  }
}

export function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as { then?: unknown } | null | undefined)?.then === 'function';
}
