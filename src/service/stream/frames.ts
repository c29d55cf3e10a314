import { S } from '../messages.js';

const FIRST = S.StreamOpen.id;
const LAST = S.StreamReset.id;

/** Stream frames have their own block of link message ids (207..212); the peer table routes them to the streams. */
export function isStreamFrame(msgId: number): boolean {
  return msgId >= FIRST && msgId <= LAST;
}
