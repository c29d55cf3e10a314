/**
 * Stateless return-routability cookies, as in DTLS's HelloVerifyRequest and
 * QUIC's Retry: the agent answers a Hello with HMAC(key, address, port,
 * time, nonce) and keeps nothing. Only a client that receives datagrams at
 * its source address can echo the cookie in Connect, so a forged source
 * address gets no session and no more than one reply of its request's size.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { COOKIE_BYTES } from './control.js';

/** Makes and checks the stateless cookies of the KCP handshake (an HMAC of the client's address and the time). */
export class CookieJar {
  private readonly key: Buffer;

  constructor(
    /** Cookies older than this are refused. */
    private readonly ttlSec: number = 10,
    /** Seconds on a clock that only moves forward (the origin does not matter: clients only echo it). */
    private readonly clock: () => number = () => Math.floor(performance.now() / 1000),
    key?: Buffer,
  ) {
    // A fresh key per listener: cookies do not survive a restart, and need not.
    this.key = key ?? randomBytes(32);
  }

  now(): number {
    return this.clock() >>> 0;
  }

  make(address: string, port: number, timestamp: number, nonce: number): Buffer {
    const fields = Buffer.allocUnsafe(10);
    fields.writeUInt16BE(port, 0);
    fields.writeUInt32BE(timestamp >>> 0, 2);
    fields.writeUInt32BE(nonce >>> 0, 6);
    return createHmac('sha256', this.key).update(address).update(fields).digest().subarray(0, COOKIE_BYTES);
  }

  /** 'ok', or why the cookie is refused: 'stale' (too old or from the future) or 'bad' (not ours for this address). */
  check(address: string, port: number, timestamp: number, nonce: number, cookie: Buffer): 'ok' | 'stale' | 'bad' {
    const expected = this.make(address, port, timestamp, nonce);
    if (cookie.length !== COOKIE_BYTES || !timingSafeEqual(expected, cookie)) return 'bad';
    const age = (this.now() - timestamp) | 0;
    return age < 0 || age > this.ttlSec ? 'stale' : 'ok';
  }
}
