import type { Logger } from '../../log/index.js';
import { definedOnly } from '../../net/options.js';
import { RpcError } from '../errors.js';
import type { Link } from '../link.js';
import { MAX_CREDIT } from './flow.js';
import { LinkStreams, MAX_META_BYTES, MAX_META_ENTRIES, metaBytes, type StreamHost } from './link-streams.js';
import { MeshStream, type StreamInfo } from './stream.js';

/** Limits of a node's streams (`ServiceNodeOptions.streams`). */
export interface StreamOptions {
  /** Receive window per stream, in bytes: what a peer may send ahead of our reading. Default 256 KiB. */
  window?: number;
  /** The largest window `openStream(..., { window })` may ask for. Default 16 MiB. */
  maxWindow?: number;
  /** Receive window of a link, shared by all its streams: the most their unread data can take. Default 32 MiB. */
  linkWindow?: number;
  /** Streams open at once on one link, both directions together; more are refused with `busy`. Default 8192. */
  maxStreamsPerLink?: number;
}

/** Options of openStream: meta for the receiver, the window, the time to open, and cancellation. */
export interface OpenStreamOptions {
  /** Told to the acceptor in `info.meta` (at most 64 entries, 8 KiB). */
  meta?: Readonly<Record<string, string>>;
  /** This stream's receive window instead of the node's default (up to `maxWindow`). */
  window?: number;
  /** Deadline for finding the target and having the stream accepted; default: the node's call timeout. */
  timeoutMs?: number;
  /** When no instance is connected, wait for one until the deadline instead of failing at once. */
  waitForInstance?: boolean;
  /** Aborting it resets the stream. */
  signal?: AbortSignal;
}

/** Accepts a stream a peer opened; `info` says who and its meta. A throw or rejection resets the stream. */
export type StreamHandler = (stream: MeshStream, info: StreamInfo) => void | Promise<void>;

/** The stream windows and limits used unless told otherwise. */
export const STREAM_DEFAULTS: Required<StreamOptions> = {
  window: 256 * 1024,
  maxWindow: 16 * 1024 * 1024,
  linkWindow: 32 * 1024 * 1024,
  maxStreamsPerLink: 8192,
};

const MIN_WINDOW = 1024;

/** What the hub needs from its node. */
export interface StreamHubOptions extends StreamOptions {
  readonly selfId: string;
  readonly log: Logger;
  /** Not stopping or stopped. */
  readonly active: () => boolean;
  readonly defaultTimeoutMs: number;
}

/**
 * A node's streams: the `onStream` handler, the limits, and one
 * `LinkStreams` per link that has carried a stream.
 */
export class StreamHub {
  private handler: StreamHandler | undefined;
  private readonly links = new Map<Link, LinkStreams>();
  private readonly host: StreamHost;
  private readonly limits: Required<StreamOptions>;

  constructor(private readonly opts: StreamHubOptions) {
    const limits = { ...STREAM_DEFAULTS, ...definedOnly<StreamOptions>({ window: opts.window, maxWindow: opts.maxWindow, linkWindow: opts.linkWindow, maxStreamsPerLink: opts.maxStreamsPerLink }) };
    checkInt('streams.maxWindow', limits.maxWindow, MIN_WINDOW, 1 << 30);
    checkInt('streams.window', limits.window, MIN_WINDOW, limits.maxWindow);
    checkInt('streams.linkWindow', limits.linkWindow, limits.window, MAX_CREDIT);
    checkInt('streams.maxStreamsPerLink', limits.maxStreamsPerLink, 1, 1 << 29);
    this.limits = limits;
    this.host = {
      log: opts.log,
      window: limits.window,
      linkWindow: limits.linkWindow,
      maxStreamsPerLink: limits.maxStreamsPerLink,
      selfId: opts.selfId,
      admit: () => {
        if (!opts.active()) return { code: 'unavailable', message: `${opts.selfId} is shutting down` };
        if (!this.handler) return { code: 'unknown_method', message: `${opts.selfId} does not accept streams (it has no node.onStream handler)` };
        return undefined;
      },
      deliver: (stream, info) => this.deliver(stream, info),
    };
  }

  onStream(handler: StreamHandler): void {
    if (this.handler) throw new TypeError('a stream handler (node.onStream) is already registered');
    this.handler = handler;
  }

  /**
   * A stream to whatever link `resolve` finds. The stream is returned at
   * once; writes wait until the peer accepts it, and a failure to resolve or
   * a refusal destroys it with the RpcError.
   */
  open(resolve: (timeoutMs: number) => Promise<Link>, options: OpenStreamOptions = {}): MeshStream {
    const meta = options.meta ?? {};
    if (Object.keys(meta).length > MAX_META_ENTRIES || metaBytes(meta) > MAX_META_BYTES) {
      throw new RangeError(`stream meta is over ${MAX_META_ENTRIES} entries or ${MAX_META_BYTES} bytes`);
    }
    const window = options.window ?? this.limits.window;
    checkInt('window', window, MIN_WINDOW, this.limits.maxWindow);
    const timeoutMs = options.timeoutMs ?? this.opts.defaultTimeoutMs;
    const stream = new MeshStream(window);
    const deadline = Date.now() + timeoutMs;
    stream.expireOpen(timeoutMs, 'the stream');
    const signal = options.signal;
    if (signal) {
      const onAbort = () => stream.destroy(new RpcError('cancelled', 'the stream was cancelled'));
      if (signal.aborted) queueMicrotask(onAbort);
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        stream.once('close', () => signal.removeEventListener('abort', onAbort));
      }
    }
    resolve(timeoutMs).then(
      (link) => {
        if (stream.destroyed) return;
        const streams = this.forLink(link);
        streams.open(stream, meta);
        stream.expireOpen(Math.max(1, deadline - Date.now()), `stream ${stream.info?.id ?? '?'} to ${link.peerId}`);
      },
      (err: Error) => stream.destroy(err instanceof RpcError ? err : new RpcError('unavailable', err.message)),
    );
    return stream;
  }

  /** A stream frame from a link; closes the link when it cannot be pinned on one stream. */
  onFrame(link: Link, msgId: number, seq: number, body: Buffer): void {
    const problem = this.forLink(link).onFrame(msgId, seq, body);
    if (problem) {
      this.opts.log.warn({ peer: link.peerId, problem }, 'closing a link over a bad stream frame');
      link.session.close(`stream protocol violation: ${problem}`);
    }
  }

  linkClosed(link: Link, reason: string): void {
    const streams = this.links.get(link);
    if (!streams) return;
    this.links.delete(link);
    streams.linkClosed(reason);
  }

  /** Whether streams are open on this link (a duplicate link is not retired under them). */
  busyOn(link: Link): boolean {
    return (this.links.get(link)?.size ?? 0) > 0;
  }

  /** Open streams and unread bytes per link, for tests and metrics. */
  stats(): Array<{ peer: string; streams: number; buffered: number }> {
    return [...this.links].map(([link, s]) => ({ peer: link.peerId, streams: s.size, buffered: s.buffered }));
  }

  private forLink(link: Link): LinkStreams {
    let streams = this.links.get(link);
    if (!streams) {
      streams = new LinkStreams(link, this.host);
      this.links.set(link, streams);
      // A link that closed before its first stream frame would never be cleaned up.
      if (link.session.closed) queueMicrotask(() => this.linkClosed(link, 'the link is closed'));
    }
    return streams;
  }

  private deliver(stream: MeshStream, info: StreamInfo): void {
    const handler = this.handler as StreamHandler;
    const fail = (err: unknown) => {
      this.opts.log.warn({ peer: info.peer.id, stream: info.id, err: (err as Error | undefined)?.message ?? String(err) }, 'stream handler failed');
      stream.destroy(err instanceof RpcError ? err : new RpcError('application', (err as Error | undefined)?.message ?? String(err)));
    };
    try {
      const done = handler(stream, info);
      if (done && typeof done.then === 'function') done.then(undefined, fail);
    } catch (err) {
      fail(err);
    }
  }
}

function checkInt(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${value}`);
}
