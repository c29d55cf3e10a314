/**
 * The pomelo package layer (pomelo-protocol's Package): every package is
 *
 *   u8 type | u24 BE body length | body
 *
 * with the types below. Over TCP the packages follow each other in the
 * stream; over WebSocket one binary message carries one or more whole
 * packages.
 */
export const PackageType = {
  HANDSHAKE: 1,
  HANDSHAKE_ACK: 2,
  HEARTBEAT: 3,
  DATA: 4,
  KICK: 5,
} as const;

export type PackageTypeValue = (typeof PackageType)[keyof typeof PackageType];

export const PACKAGE_HEAD_BYTES = 4;
/** The largest body the 3-byte length can describe. */
export const MAX_PACKAGE_BODY = 0xffffff;

/** The peer broke the pomelo protocol; the connection cannot be trusted any more. */
export class PomeloProtocolError extends Error {
  override name = 'PomeloProtocolError';
}

const EMPTY = Buffer.alloc(0);

export function encodePackage(type: PackageTypeValue, body: Uint8Array = EMPTY): Buffer {
  if (body.length > MAX_PACKAGE_BODY) throw new RangeError(`a pomelo package body is at most ${MAX_PACKAGE_BODY} bytes, got ${body.length}`);
  const out = Buffer.allocUnsafe(PACKAGE_HEAD_BYTES + body.length);
  out[0] = type;
  out.writeUIntBE(body.length, 1, 3);
  out.set(body, PACKAGE_HEAD_BYTES);
  return out;
}

export type PackageHandler = (type: PackageTypeValue, body: Buffer) => void;

/**
 * Incremental package decoder for a byte stream. The type and the declared
 * length are checked as soon as the 4-byte head is complete, before any of
 * the body is buffered: an unknown type or a package over `maxPackage`
 * bytes (head included) throws PomeloProtocolError, and the decoder is then
 * unusable. Bodies handed out may share memory with the input chunk.
 */
export class PackageDecoder {
  private readonly head = Buffer.alloc(PACKAGE_HEAD_BYTES);
  private headFill = 0;
  private body: Buffer | null = null;
  private bodyFill = 0;
  private type: PackageTypeValue = PackageType.DATA;
  private failed = false;

  constructor(
    private readonly onPackage: PackageHandler,
    readonly maxPackage: number,
  ) {
    if (!Number.isInteger(maxPackage) || maxPackage < PACKAGE_HEAD_BYTES) throw new RangeError(`maxPackage must be an integer >= ${PACKAGE_HEAD_BYTES}, got ${maxPackage}`);
  }

  /** True between packages: nothing of a partial package is held. */
  get atBoundary(): boolean {
    return this.headFill === 0 && this.body === null;
  }

  push(chunk: Buffer): void {
    if (this.failed) throw new PomeloProtocolError('decoder already failed');
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      if (this.body !== null) {
        const take = Math.min(this.body.length - this.bodyFill, end - pos);
        chunk.copy(this.body, this.bodyFill, pos, pos + take);
        this.bodyFill += take;
        pos += take;
        if (this.bodyFill === this.body.length) {
          const body = this.body;
          this.body = null;
          this.onPackage(this.type, body);
        }
        continue;
      }
      if (this.headFill === 0 && end - pos >= PACKAGE_HEAD_BYTES) {
        // Fast path: the whole head is in this chunk.
        const type = this.checkType(chunk[pos] as number);
        const length = this.checkLength(chunk.readUIntBE(pos + 1, 3));
        pos += PACKAGE_HEAD_BYTES;
        if (end - pos >= length) {
          this.onPackage(type, length === 0 ? EMPTY : chunk.subarray(pos, pos + length));
          pos += length;
        } else {
          this.type = type;
          this.body = Buffer.allocUnsafe(length);
          this.bodyFill = 0;
        }
        continue;
      }
      const take = Math.min(PACKAGE_HEAD_BYTES - this.headFill, end - pos);
      chunk.copy(this.head, this.headFill, pos, pos + take);
      if (this.headFill === 0) this.checkType(this.head[0] as number);
      this.headFill += take;
      pos += take;
      if (this.headFill < PACKAGE_HEAD_BYTES) continue;
      this.headFill = 0;
      const type = this.head[0] as PackageTypeValue;
      const length = this.checkLength(this.head.readUIntBE(1, 3));
      if (length === 0) {
        this.onPackage(type, EMPTY);
      } else {
        this.type = type;
        this.body = Buffer.allocUnsafe(length);
        this.bodyFill = 0;
      }
    }
  }

  private checkType(type: number): PackageTypeValue {
    if (type < PackageType.HANDSHAKE || type > PackageType.KICK) {
      this.failed = true;
      throw new PomeloProtocolError(`unknown package type ${type}`);
    }
    return type as PackageTypeValue;
  }

  private checkLength(length: number): number {
    if (PACKAGE_HEAD_BYTES + length > this.maxPackage) {
      this.failed = true;
      throw new PomeloProtocolError(`package of ${PACKAGE_HEAD_BYTES + length} bytes exceeds the limit of ${this.maxPackage}`);
    }
    return length;
  }
}
