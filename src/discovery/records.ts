import { crc32 } from '../wire/crc32.js';

/**
 * Journal and snapshot files are sequences of records:
 *   u32 BE payload length | u32 BE crc32(payload) | payload
 * A torn or corrupt record ends the readable part of a file.
 */
export const RECORD_HEADER = 8;
export const MAX_RECORD = 256 * 1024 * 1024;

export function encodeRecord(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(RECORD_HEADER + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.writeUInt32BE(crc32(payload), 4);
  out.set(payload, RECORD_HEADER);
  return out;
}

export interface ReadResult {
  records: Buffer[];
  /** Bytes of whole, valid records; anything after is a torn or corrupt tail. */
  validBytes: number;
  tailError: string | undefined;
}

export function readRecords(data: Buffer): ReadResult {
  const records: Buffer[] = [];
  let pos = 0;
  while (pos < data.length) {
    if (data.length - pos < RECORD_HEADER) return { records, validBytes: pos, tailError: 'torn record header' };
    const len = data.readUInt32BE(pos);
    if (len > MAX_RECORD) return { records, validBytes: pos, tailError: `record length ${len} is implausible` };
    if (data.length - pos - RECORD_HEADER < len) return { records, validBytes: pos, tailError: 'torn record body' };
    const payload = data.subarray(pos + RECORD_HEADER, pos + RECORD_HEADER + len);
    if (crc32(payload) !== data.readUInt32BE(pos + 4)) return { records, validBytes: pos, tailError: 'checksum mismatch' };
    records.push(payload);
    pos += RECORD_HEADER + len;
  }
  return { records, validBytes: pos, tailError: undefined };
}
