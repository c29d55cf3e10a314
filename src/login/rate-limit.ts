/** A token bucket per key (the client's IP): `burst` attempts at once, refilled at `perSec`. */
export interface RateLimitOptions {
  burst: number;
  perSec: number;
  /** Keys tracked at most; past it, full (idle) buckets and then the oldest are dropped. */
  maxKeys?: number;
}

/** A token bucket per client IP: a burst, then so many attempts per second. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly maxKeys: number;

  constructor(private readonly options: RateLimitOptions) {
    if (!(options.burst >= 1) || !(options.perSec > 0)) throw new RangeError('rate limit burst must be >= 1 and perSec > 0');
    this.maxKeys = options.maxKeys ?? 10_000;
  }

  /** 0 when the attempt is allowed (and counted); otherwise the ms until it would be. */
  take(key: string, now = Date.now()): number {
    const { burst, perSec } = this.options;
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = Math.min(burst, b.tokens + ((now - b.at) * perSec) / 1000);
      b.at = now;
    } else {
      if (this.buckets.size >= this.maxKeys) this.prune(now);
      b = { tokens: burst, at: now };
      this.buckets.set(key, b);
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) * 1000) / perSec);
  }

  get size(): number {
    return this.buckets.size;
  }

  private prune(now: number): void {
    const { burst, perSec } = this.options;
    for (const [key, b] of this.buckets) if (b.tokens + ((now - b.at) * perSec) / 1000 >= burst) this.buckets.delete(key);
    // Still full: many clients are active at once; forgetting the oldest only lets it start over.
    const oldest = this.buckets.size >= this.maxKeys ? this.buckets.keys().next().value : undefined;
    if (oldest !== undefined) this.buckets.delete(oldest);
  }
}
