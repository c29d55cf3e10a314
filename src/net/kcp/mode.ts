/** KCP's tuning: the two modes of ikcp's README and the engine's options. */

/** ikcp_nodelay's four settings. */
export interface KcpMode {
  /** 0: RTO doubles on each timeout, min RTO 100 ms; 1: RTO grows by half, min RTO 30 ms, no extra wait before the first resend. */
  readonly nodelay: number;
  /** ms between flushes of timers (10..5000). */
  readonly interval: number;
  /** Fast resend after this many later segments were acknowledged; 0: off. */
  readonly resend: number;
  /** True: no congestion window (only the send and remote windows limit what is in flight). */
  readonly nc: boolean;
}

/** ikcp's "normal mode" as its README gives it: ikcp_nodelay(kcp, 0, 40, 0, 0). */
export const NORMAL_MODE: KcpMode = Object.freeze({ nodelay: 0, interval: 40, resend: 0, nc: false });
/** ikcp's "turbo mode": ikcp_nodelay(kcp, 1, 10, 2, 1). */
export const TURBO_MODE: KcpMode = Object.freeze({ nodelay: 1, interval: 10, resend: 2, nc: true });

/** The KCP engine's parameters: window sizes, interval, nodelay, resend, MTU. */
export interface KcpEngineOptions {
  mode?: KcpMode;
  /** Largest datagram sent, headers included (ikcp default 1400; 50..1500). */
  mtu?: number;
  /** Segments in flight at most (ikcp default 32). */
  sndWnd?: number;
  /** Segments buffered out of order at most; at least 128 (ikcp's floor). */
  rcvWnd?: number;
  /** A segment sent this many times without an ack marks the link dead (ikcp default 20). */
  deadLink?: number;
  /** Segments waiting to enter the send window before send() refuses more. */
  maxQueue?: number;
  /** Milliseconds, any origin; wraps at 2^32 like ikcp's clock. */
  clock?: () => number;
}

/** The MTU KCP uses unless told otherwise (bytes per datagram). */
export const KCP_DEFAULT_MTU = 1400;
