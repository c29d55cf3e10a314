import type { RestoredClient } from './messages.js';

/** A RestoreClients frame stays well under the link's frame limit (4 MiB), whatever the sessions hold. */
const BATCH_BYTES = 256 * 1024;
const BATCH_CLIENTS = 1000;

/** The clients with their session data, cut into frames of bounded size. */
export function* restoreBatches(clients: Iterable<{ readonly id: number; readonly session: Record<string, string> }>): Generator<RestoredClient[]> {
  let batch: RestoredClient[] = [];
  let bytes = 0;
  for (const c of clients) {
    let size = 16;
    for (const k in c.session) size += k.length + (c.session[k]?.length ?? 0) + 8;
    if (batch.length > 0 && (bytes + size > BATCH_BYTES || batch.length >= BATCH_CLIENTS)) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push({ client_id: c.id, session: c.session });
    bytes += size;
  }
  if (batch.length > 0) yield batch;
}
