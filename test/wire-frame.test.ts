import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  DEFAULT_MAX_FRAME,
  encodeFrame,
  FrameDecoder,
  FrameError,
  HEADER_AFTER_LENGTH,
  HEADER_BYTES,
  MAX_MSG_ID,
  MAX_SEQ,
  writeHeader,
} from '../src/wire/frame.js';

interface Frame {
  msgId: number;
  seq: number;
  body: Buffer;
}

/** A decoder that records copies of every frame it emits. */
function collector(maxFrame?: number): { decoder: FrameDecoder; frames: Frame[] } {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder((msgId, seq, body) => frames.push({ msgId, seq, body: Buffer.from(body) }), maxFrame);
  return { decoder, frames };
}

function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** Cuts `data` at the given sorted offsets. */
function cut(data: Buffer, offsets: number[]): Buffer[] {
  const out: Buffer[] = [];
  let prev = 0;
  for (const o of offsets) {
    out.push(data.subarray(prev, o));
    prev = o;
  }
  out.push(data.subarray(prev));
  return out;
}

test('encodeFrame writes the documented layout', () => {
  const body = Buffer.from([1, 2, 3, 4, 5]);
  const f = encodeFrame(0xbeef, 0xdeadbeef, body);
  assert.equal(f.length, HEADER_BYTES + 5);
  assert.equal(f.readUInt32BE(0), HEADER_AFTER_LENGTH + 5);
  assert.equal(f.readUInt16BE(4), 0xbeef);
  assert.equal(f.readUInt32BE(6), 0xdeadbeef);
  assert.deepEqual(f.subarray(HEADER_BYTES), body);
});

test('writeHeader stores seq as unsigned and encodeFrame copies a Uint8Array body', () => {
  const target = Buffer.alloc(HEADER_BYTES + 2, 0xaa);
  writeHeader(target, 2, 7, -1, 3);
  assert.deepEqual([...target.subarray(0, 2)], [0xaa, 0xaa]);
  assert.equal(target.readUInt32BE(2), HEADER_AFTER_LENGTH + 3);
  assert.equal(target.readUInt16BE(6), 7);
  assert.equal(target.readUInt32BE(8), MAX_SEQ);
  const f = encodeFrame(1, 2, new Uint8Array([9, 8, 7]));
  assert.deepEqual([...f.subarray(HEADER_BYTES)], [9, 8, 7]);
});

test('a frame split at every byte offset decodes once, intact', () => {
  const body = bytes(37, 3);
  const frame = encodeFrame(513, 0x01020304, body);
  for (let i = 0; i <= frame.length; i++) {
    const { decoder, frames } = collector();
    decoder.push(frame.subarray(0, i));
    assert.equal(frames.length, i === frame.length ? 1 : 0, `split at ${i}`);
    // Header bytes are held until the header is complete, then only body bytes.
    assert.equal(decoder.buffered, i === frame.length ? 0 : i < HEADER_BYTES ? i : i - HEADER_BYTES, `buffered at ${i}`);
    decoder.push(frame.subarray(i));
    assert.equal(frames.length, 1, `split at ${i}`);
    assert.deepEqual(frames[0], { msgId: 513, seq: 0x01020304, body }, `split at ${i}`);
    assert.equal(decoder.buffered, 0);
  }
});

test('a frame split at every pair of offsets (three chunks) decodes intact', () => {
  const frame = encodeFrame(2, 3, bytes(20, 5));
  for (let i = 0; i <= frame.length; i++) {
    for (let j = i; j <= frame.length; j++) {
      const { decoder, frames } = collector();
      for (const c of cut(frame, [i, j])) decoder.push(c);
      assert.equal(frames.length, 1, `cuts ${i},${j}`);
      assert.deepEqual(frames[0], { msgId: 2, seq: 3, body: bytes(20, 5) });
    }
  }
});

test('a byte-at-a-time stream of several frames decodes in order', () => {
  const input = [encodeFrame(1, 1, bytes(3)), encodeFrame(2, 2, Buffer.alloc(0)), encodeFrame(3, 3, bytes(100, 9))];
  const all = Buffer.concat(input);
  const { decoder, frames } = collector();
  for (let i = 0; i < all.length; i++) decoder.push(all.subarray(i, i + 1));
  assert.deepEqual(
    frames.map((f) => [f.msgId, f.seq, f.body.length]),
    [
      [1, 1, 3],
      [2, 2, 0],
      [3, 3, 100],
    ],
  );
  assert.deepEqual(frames[2]?.body, bytes(100, 9));
});

test('several frames in one chunk, including a trailing partial frame', () => {
  const a = encodeFrame(10, 100, bytes(5, 1));
  const b = encodeFrame(11, 101, bytes(0));
  const c = encodeFrame(12, 102, bytes(300, 2));
  const d = encodeFrame(13, 103, bytes(7, 3));
  const all = Buffer.concat([a, b, c, d]);
  const { decoder, frames } = collector();
  decoder.push(all.subarray(0, all.length - 3));
  assert.deepEqual(
    frames.map((f) => f.msgId),
    [10, 11, 12],
  );
  assert.equal(decoder.buffered, d.length - 3 - HEADER_BYTES, 'the partial body of d is held');
  decoder.push(all.subarray(all.length - 3));
  assert.deepEqual(
    frames.map((f) => [f.msgId, f.seq]),
    [
      [10, 100],
      [11, 101],
      [12, 102],
      [13, 103],
    ],
  );
  assert.deepEqual(frames[2]?.body, bytes(300, 2));
  assert.deepEqual(frames[3]?.body, bytes(7, 3));
  assert.equal(decoder.buffered, 0);
});

test('empty bodies decode on both the fast path and the byte-wise path', () => {
  const f = encodeFrame(MAX_MSG_ID, MAX_SEQ, new Uint8Array(0));
  assert.equal(f.length, HEADER_BYTES);
  const fast = collector(HEADER_AFTER_LENGTH);
  fast.decoder.push(Buffer.concat([f, f, f]));
  assert.equal(fast.frames.length, 3);
  for (const fr of fast.frames) assert.deepEqual(fr, { msgId: MAX_MSG_ID, seq: MAX_SEQ, body: Buffer.alloc(0) });
  const slow = collector(HEADER_AFTER_LENGTH);
  for (const byte of f) slow.decoder.push(Buffer.from([byte]));
  assert.deepEqual(slow.frames, [{ msgId: MAX_MSG_ID, seq: MAX_SEQ, body: Buffer.alloc(0) }]);
});

test('a 1 MiB body decodes whole and in 64 KiB chunks', () => {
  const body = bytes(1024 * 1024, 11);
  const frame = encodeFrame(42, 7, body);
  const whole = collector(HEADER_AFTER_LENGTH + body.length);
  whole.decoder.push(frame);
  assert.equal(whole.frames.length, 1);
  assert.ok(whole.frames[0]?.body.equals(body));

  const chunked = collector(2 * 1024 * 1024);
  for (let i = 0; i < frame.length; i += 64 * 1024) {
    chunked.decoder.push(frame.subarray(i, i + 64 * 1024));
    if (i + 64 * 1024 < frame.length) assert.equal(chunked.frames.length, 0);
  }
  assert.equal(chunked.frames.length, 1);
  assert.equal(chunked.frames[0]?.msgId, 42);
  assert.equal(chunked.frames[0]?.seq, 7);
  assert.ok(chunked.frames[0]?.body.equals(body));
  assert.equal(chunked.decoder.buffered, 0);
});

test('the default limit is DEFAULT_MAX_FRAME bytes after the length field', () => {
  const atLimit = collector();
  assert.equal(atLimit.decoder.maxFrame, DEFAULT_MAX_FRAME);
  atLimit.decoder.push(encodeFrame(1, 1, Buffer.alloc(DEFAULT_MAX_FRAME - HEADER_AFTER_LENGTH)));
  assert.equal(atLimit.frames.length, 1);
  const over = collector();
  assert.throws(() => over.decoder.push(encodeFrame(1, 1, Buffer.alloc(DEFAULT_MAX_FRAME - HEADER_AFTER_LENGTH + 1))), FrameError);
  assert.equal(over.frames.length, 0);
});

test('an oversize length is rejected from the first 4 bytes, before the rest arrives', () => {
  for (let split = 1; split <= 4; split++) {
    const { decoder, frames } = collector(100);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(101);
    if (split < 4) decoder.push(len.subarray(0, split));
    assert.throws(
      () => decoder.push(len.subarray(split < 4 ? split : 0)),
      (err: unknown) => err instanceof FrameError && /101 bytes exceeds the limit of 100/.test(err.message),
      `split at ${split}`,
    );
    assert.equal(frames.length, 0);
    // The decoder is now unusable, even for valid input.
    assert.throws(() => decoder.push(encodeFrame(1, 1, Buffer.alloc(1))), FrameError);
    assert.equal(frames.length, 0);
  }
  // Fast path: whole header in one chunk, body absent.
  const huge = Buffer.alloc(HEADER_BYTES);
  huge.writeUInt32BE(0xffffffff);
  const { decoder } = collector(1024);
  assert.throws(() => decoder.push(huge), FrameError);
  assert.ok(decoder.buffered <= HEADER_BYTES);
});

test('a length exactly at maxFrame is accepted, one above is rejected', () => {
  const ok = collector(HEADER_AFTER_LENGTH + 10);
  ok.decoder.push(encodeFrame(1, 2, bytes(10)));
  assert.equal(ok.frames.length, 1);
  const bad = collector(HEADER_AFTER_LENGTH + 10);
  assert.throws(() => bad.decoder.push(encodeFrame(1, 2, bytes(11))), FrameError);
  assert.equal(bad.frames.length, 0);
});

test('a length below the 6-byte header is rejected, on either path', () => {
  for (let len = 0; len < HEADER_AFTER_LENGTH; len++) {
    const chunk = Buffer.alloc(HEADER_BYTES + 8);
    chunk.writeUInt32BE(len);
    const fast = collector();
    assert.throws(
      () => fast.decoder.push(chunk),
      (err: unknown) => err instanceof FrameError && /below the 6-byte header/.test(err.message),
    );
    const slow = collector();
    slow.decoder.push(chunk.subarray(0, 3));
    assert.throws(() => slow.decoder.push(chunk.subarray(3, 4)), FrameError);
    assert.equal(fast.frames.length + slow.frames.length, 0);
  }
});

test('an invalid frame after valid ones in the same chunk: valid ones are delivered, then FrameError', () => {
  const bad = Buffer.alloc(HEADER_BYTES);
  bad.writeUInt32BE(2);
  const { decoder, frames } = collector();
  assert.throws(() => decoder.push(Buffer.concat([encodeFrame(5, 5, bytes(2)), bad])), FrameError);
  assert.deepEqual(
    frames.map((f) => f.msgId),
    [5],
  );
});

test('maxFrame below the header size or non-integer is a RangeError', () => {
  assert.throws(() => new FrameDecoder(() => {}, HEADER_AFTER_LENGTH - 1), RangeError);
  assert.throws(() => new FrameDecoder(() => {}, 100.5), RangeError);
  assert.throws(() => new FrameDecoder(() => {}, Number.NaN), RangeError);
  assert.doesNotThrow(() => new FrameDecoder(() => {}, HEADER_AFTER_LENGTH));
});

test('bodies delivered on the fast path are views of the input (no copy), and correct', () => {
  const frame = encodeFrame(1, 1, bytes(8, 4));
  let seen: Buffer | undefined;
  const decoder = new FrameDecoder((_m, _s, body) => {
    seen = body;
  });
  decoder.push(frame);
  assert.ok(seen);
  assert.equal(seen.buffer, frame.buffer);
  assert.deepEqual(seen, bytes(8, 4));
});

// ---------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------

const frameArb = fc.record({
  msgId: fc.integer({ min: 0, max: MAX_MSG_ID }),
  seq: fc.integer({ min: 0, max: MAX_SEQ }),
  body: fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
}).map((r): Frame => ({ msgId: r.msgId, seq: r.seq, body: r.body }));

test('property: any frames, encoded and cut into arbitrary chunks, decode to exactly the same frames', () => {
  fc.assert(
    fc.property(fc.array(frameArb, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 40 }), (input, rawCuts) => {
      const stream = Buffer.concat(input.map((f) => encodeFrame(f.msgId, f.seq, f.body)));
      const offsets = [...new Set(rawCuts.map((c) => (stream.length === 0 ? 0 : c % (stream.length + 1))))].sort((a, b) => a - b);
      const { decoder, frames } = collector(HEADER_AFTER_LENGTH + 300);
      for (const chunk of cut(stream, offsets)) decoder.push(chunk);
      assert.deepEqual(frames, input);
      assert.equal(decoder.buffered, 0);
    }),
    { numRuns: 300 },
  );
});

test('property: chunks from separate buffers (not views of one stream) decode the same', () => {
  fc.assert(
    fc.property(fc.array(frameArb, { minLength: 1, maxLength: 10 }), fc.integer({ min: 1, max: 17 }), (input, size) => {
      const stream = Buffer.concat(input.map((f) => encodeFrame(f.msgId, f.seq, f.body)));
      const { decoder, frames } = collector();
      for (let i = 0; i < stream.length; i += size) decoder.push(Buffer.from(stream.subarray(i, i + size)));
      assert.deepEqual(frames, input);
    }),
    { numRuns: 200 },
  );
});

/** Random bytes, or a plausible header with a small (possibly invalid) length, so garbage sometimes decodes. */
const garbagePiece = fc.oneof(
  { arbitrary: fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u)), weight: 1 },
  { arbitrary: fc.tuple(fc.integer({ min: 0, max: 80 }), fc.integer({ min: 0, max: MAX_MSG_ID }), fc.integer({ min: 0, max: MAX_SEQ })).map(([len, msgId, seq]) => {
    const h = Buffer.alloc(HEADER_BYTES);
    h.writeUInt32BE(len);
    h.writeUInt16BE(msgId, 4);
    h.writeUInt32BE(seq, 6);
    return h;
  }), weight: 3 },
);

test('property: garbage bytes either decode or throw FrameError, and never allocate more than maxFrame', () => {
  const origAllocUnsafe = Buffer.allocUnsafe;
  const origAlloc = Buffer.alloc;
  let largest = 0;
  const spyUnsafe = ((size: number) => {
    largest = Math.max(largest, size);
    return origAllocUnsafe(size);
  }) as typeof Buffer.allocUnsafe;
  const spyAlloc = ((size: number, fill?: string | number | Uint8Array, encoding?: BufferEncoding) => {
    largest = Math.max(largest, size);
    return origAlloc(size, fill, encoding);
  }) as typeof Buffer.alloc;
  fc.assert(
    fc.property(fc.integer({ min: HEADER_AFTER_LENGTH, max: 64 }), fc.array(garbagePiece, { maxLength: 16 }), fc.array(fc.nat(), { maxLength: 10 }), (maxFrame, pieces, rawCuts) => {
      const stream = Buffer.concat(pieces);
      const offsets = [...new Set(rawCuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
      const chunks = cut(stream, offsets);
      const { decoder, frames } = collector(maxFrame);
      let failure: unknown;
      largest = 0;
      Buffer.allocUnsafe = spyUnsafe;
      Buffer.alloc = spyAlloc;
      try {
        for (const c of chunks) {
          decoder.push(Buffer.from(c));
          // At most a partial header (fixed 10-byte buffer) or a body of at most maxFrame - 6.
          assert.ok(decoder.buffered <= Math.max(HEADER_BYTES - 1, maxFrame - HEADER_AFTER_LENGTH), `buffered ${decoder.buffered} with maxFrame ${maxFrame}`);
        }
      } catch (err) {
        failure = err;
      } finally {
        Buffer.allocUnsafe = origAllocUnsafe;
        Buffer.alloc = origAlloc;
      }
      if (failure !== undefined && !(failure instanceof FrameError)) throw failure;
      assert.ok(largest <= maxFrame, `allocated ${largest} bytes with maxFrame ${maxFrame}`);
      for (const f of frames) assert.ok(HEADER_AFTER_LENGTH + f.body.length <= maxFrame);
      if (failure !== undefined) {
        // Once failed, always failed.
        assert.throws(() => decoder.push(encodeFrame(1, 1, Buffer.alloc(0))), FrameError);
      }
    }),
    { numRuns: 500 },
  );
});

test('property: garbage that starts with a huge length always throws FrameError without buffering the rest', () => {
  fc.assert(
    fc.property(fc.integer({ min: 65, max: 0xffffffff }), fc.uint8Array({ maxLength: 200 }), fc.nat({ max: 4 }), (len, rest, split) => {
      const head = Buffer.alloc(4);
      head.writeUInt32BE(len);
      const data = Buffer.concat([head, rest]);
      const { decoder, frames } = collector(64);
      decoder.push(data.subarray(0, Math.min(split, 3)));
      assert.throws(() => decoder.push(data.subarray(Math.min(split, 3))), FrameError);
      assert.equal(frames.length, 0);
    }),
    { numRuns: 200 },
  );
});
