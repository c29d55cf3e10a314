/**
 * The client's side of the heartbeat (docs/protocol.md, "Flow" step 3): a
 * Ping every period, and a liveness check. The agent only ever speaks when
 * spoken to or when it has news, but each Ping gets a Pong, so hearing
 * nothing for two periods and a second means the connection is dead even
 * if the socket has not noticed (a half-open TCP connection, a sleeping
 * laptop).
 */
export class Heartbeat {
  private timer: ReturnType<typeof setInterval> | undefined;
  private periodMs = 0;
  private lastHeard = 0;

  constructor(
    private readonly sendPing: () => void,
    private readonly onDead: (silentMs: number) => void,
  ) {}

  get periodSec(): number {
    return this.periodMs / 1000;
  }

  /** (Re)starts with a period; called at handshake and when the agent announces a new one. */
  start(periodSec: number): void {
    this.stop();
    if (!(periodSec > 0)) return;
    this.periodMs = periodSec * 1000;
    this.lastHeard = Date.now();
    this.timer = setInterval(() => this.tick(), this.periodMs);
  }

  /** Any inbound frame proves the connection is alive. */
  heard(): void {
    this.lastHeard = Date.now();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    const silent = Date.now() - this.lastHeard;
    if (silent > 2 * this.periodMs + 1000) {
      this.stop();
      this.onDead(silent);
      return;
    }
    this.sendPing();
  }
}
