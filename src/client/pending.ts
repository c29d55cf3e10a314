import { ClientError } from './errors.js';

/** A frame that answered a request: whatever message id came back with its seq. */
export interface Answer {
  readonly msgId: number;
  readonly body: Uint8Array;
}

interface Entry {
  resolve(answer: Answer): void;
  reject(err: ClientError): void;
  timer: ReturnType<typeof setTimeout>;
}

const MAX_SEQ = 0xffffffff;

/**
 * Requests waiting for their answer, by seq. Seqs run 1, 2, ... 2^32-1 and
 * wrap to 1 (0 means "no answer expected"), skipping any still in flight so
 * an answer can never be taken for another request's.
 */
export class PendingTable {
  private last = 0;
  private readonly entries = new Map<number, Entry>();

  get size(): number {
    return this.entries.size;
  }

  nextSeq(): number {
    do this.last = this.last >= MAX_SEQ ? 1 : this.last + 1;
    while (this.entries.has(this.last));
    return this.last;
  }

  /** The answer to `seq`; rejects with 'timeout' after timeoutMs. */
  expect(seq: number, timeoutMs: number, what: string): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.entries.delete(seq);
        reject(new ClientError('timeout', `${what} got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.entries.set(seq, { resolve, reject, timer });
    });
  }

  /** Hands a frame to the request with this seq; false if none is waiting (a late answer). */
  settle(seq: number, answer: Answer): boolean {
    const entry = this.take(seq);
    entry?.resolve(answer);
    return entry !== undefined;
  }

  /** Fails one request, e.g. when its frame could not be sent. */
  fail(seq: number, err: ClientError): void {
    this.take(seq)?.reject(err);
  }

  failAll(err: ClientError): void {
    const all = [...this.entries.values()];
    this.entries.clear();
    for (const e of all) {
      clearTimeout(e.timer);
      e.reject(err);
    }
  }

  private take(seq: number): Entry | undefined {
    const entry = this.entries.get(seq);
    if (!entry) return undefined;
    this.entries.delete(seq);
    clearTimeout(entry.timer);
    return entry;
  }
}
