/**
 * Frame codec throughput (src/wire/frame.ts) beside raw Buffer-copy baselines.
 *
 * encode: `encodeFrame(msgId, seq, body)` per frame, against
 *         `Buffer.allocUnsafe(frameLength).set(sameFrameBytes)`.
 * decode: a ~1 MiB stream of back-to-back frames is cut into 64 KiB chunks, as
 *         a socket would deliver it (so frames straddle chunk boundaries), and
 *         every chunk is pushed into one FrameDecoder; against copying the
 *         same 64 KiB chunks into a preallocated 64 KiB buffer.
 * ops/s are frames per second (for the decode baseline: the frames those
 * chunks carry); MB/s counts whole frames, 10-byte header included, 10^6 B.
 */
import { randomFillSync } from 'node:crypto';
import { encodeFrame, FrameDecoder, HEADER_BYTES } from '../src/wire/frame.js';
import { DEFAULT_MS, fmtInt, fmtNum, fmtRatio, isMain, measure, printTable } from './lib.js';

const BODY_SIZES = [32, 256, 4096];
const CHUNK_BYTES = 64 * 1024;
const STREAM_BYTES = 1024 * 1024;
const MSG_ID = 1000;
// Twelve cases; keep the whole bench under ~15 s.
const CASE_MS = Math.round(DEFAULT_MS * 0.8);

function chunksOf(stream: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let pos = 0; pos < stream.length; pos += size) {
    // Copies, so each chunk owns its memory like a socket read does.
    chunks.push(Buffer.from(stream.subarray(pos, Math.min(pos + size, stream.length))));
  }
  return chunks;
}

export async function run(): Promise<void> {
  const rows: string[][] = [];
  for (const bodySize of BODY_SIZES) {
    const body = randomFillSync(Buffer.allocUnsafe(bodySize));
    const frameBytes = HEADER_BYTES + bodySize;

    // ---- encode ----
    let seq = 0;
    const encodeOps = measure(`encode ${bodySize}`, () => encodeFrame(MSG_ID, ++seq >>> 0, body), CASE_MS);
    const sample = encodeFrame(MSG_ID, 1, body);
    if (sample.length !== frameBytes) throw new Error(`encodeFrame gave ${sample.length} bytes, expected ${frameBytes}`);
    const encodeBase = measure(
      `encode baseline ${bodySize}`,
      () => {
        const copy = Buffer.allocUnsafe(frameBytes);
        copy.set(sample);
        return copy;
      },
      CASE_MS,
    );
    rows.push([
      `encode ${bodySize} B body`,
      fmtInt(encodeOps),
      fmtNum(encodeOps * frameBytes / 1e6),
      fmtInt(encodeBase),
      fmtRatio(encodeOps / encodeBase),
    ]);

    // ---- decode ----
    const framesPerStream = Math.max(1, Math.floor(STREAM_BYTES / frameBytes));
    const stream = Buffer.concat(Array.from({ length: framesPerStream }, (_, i) => encodeFrame(MSG_ID, i + 1, body)));
    const chunks = chunksOf(stream, CHUNK_BYTES);
    let frames = 0;
    let bodyBytes = 0;
    const decoder = new FrameDecoder((_msgId, _seq, b) => {
      frames++;
      bodyBytes += b.length;
    });
    const decodeStream = (): number => {
      for (const chunk of chunks) decoder.push(chunk);
      return frames;
    };
    decodeStream();
    if (frames !== framesPerStream || bodyBytes !== framesPerStream * bodySize || decoder.buffered !== 0) {
      throw new Error(`decoder saw ${frames} frames / ${bodyBytes} body bytes, expected ${framesPerStream} / ${framesPerStream * bodySize}`);
    }
    const decodeOps = measure(`decode ${bodySize}`, decodeStream, CASE_MS) * framesPerStream;

    const target = Buffer.allocUnsafe(CHUNK_BYTES);
    const decodeBase =
      measure(
        `decode baseline ${bodySize}`,
        () => {
          for (const chunk of chunks) target.set(chunk);
          return target;
        },
        CASE_MS,
      ) * framesPerStream;
    rows.push([
      `decode ${bodySize} B body (${fmtNum(CHUNK_BYTES / frameBytes)} frames/chunk)`,
      fmtInt(decodeOps),
      fmtNum(decodeOps * frameBytes / 1e6),
      fmtInt(decodeBase),
      fmtRatio(decodeOps / decodeBase),
    ]);
  }

  printTable('codec: frame encode/decode vs raw Buffer copy', ['case', 'ops/s', 'MB/s', 'baseline ops/s', 'ratio'], rows);
}

if (isMain(import.meta.url)) {
  await run();
}
