/** Limits shared by the hub and its clients, so a client refuses locally what the hub would refuse. */
export const HUB_DEFAULTS = {
  /** The hub service's name in discovery. */
  service: 'hub',
  /** Longest channel name, in UTF-8 bytes: room for any service id (name#index@group). */
  maxChannelLength: 256,
  /** Largest published body. Well under the links' 4 MiB frame limit, so a Deliver always fits. */
  maxBody: 1024 * 1024,
  /** Channels one subscriber may hold at the hub. */
  maxChannelsPerSubscriber: 10_000,
} as const;

/** Why `channel` is not an acceptable channel name, or undefined. */
export function channelProblem(channel: unknown, maxLength: number): string | undefined {
  if (typeof channel !== 'string' || channel.length === 0) return 'a channel name must be a non-empty string';
  const bytes = Buffer.byteLength(channel, 'utf8');
  if (bytes > maxLength) return `channel name of ${bytes} bytes is over the limit of ${maxLength} (starts ${JSON.stringify(channel.slice(0, 32))})`;
  return undefined;
}

/**
 * A warning that a misbehaving peer could trigger on every message: logged
 * at most once per interval, with how many were suppressed in between.
 */
export function throttled<A extends unknown[]>(intervalMs: number, log: (suppressed: number, ...args: A) => void): (...args: A) => void {
  let last = 0;
  let suppressed = 0;
  return (...args) => {
    const now = Date.now();
    if (now - last < intervalMs) {
      suppressed++;
      return;
    }
    last = now;
    log(suppressed, ...args);
    suppressed = 0;
  };
}
