import type net from 'node:net';

/** Frames smaller than this are copied into one buffer per flush; larger ones are written as they are. */
const COALESCE_LIMIT = 16 * 1024;

/** What the flush scheduler calls at the end of the tick. */
export interface Flushable {
  flush(): void;
}

let due: Flushable[] = [];
let scheduled = false;

function flushDue(): void {
  scheduled = false;
  const list = due;
  due = [];
  for (let i = 0; i < list.length; i++) (list[i] as Flushable).flush();
}

/**
 * Flushes `s` at the end of this turn of the event loop (setImmediate: after
 * every I/O callback of the turn, before any timer of the next), so what one
 * turn queued for a socket leaves in one write and no later. One immediate
 * serves every session due in the turn, not one each.
 */
export function scheduleFlush(s: Flushable): void {
  due.push(s);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flushDue);
  }
}

/**
 * The outbound bytes of one socket, gathered during a turn and written with
 * one `socket.write` when flushed (several small frames are copied into one
 * buffer; big ones go as they are, corked together).
 */
export class WriteQueue {
  /** Created on first use: most of 10,000 idle clients have nothing queued, and memory per client is a target. */
  private frames: Buffer[] | undefined;
  private bytes = 0;
  /** Callbacks of shared bodies queued, called once the socket has written them. */
  private written: Array<() => void> | undefined;

  get length(): number {
    return this.bytes;
  }

  get empty(): boolean {
    return this.frames === undefined;
  }

  /** Queues bytes that must not change until flushed (they are not copied). */
  push(frame: Buffer): void {
    (this.frames ??= []).push(frame);
    this.bytes += frame.length;
  }

  /** Queues a header and a body the caller keeps; `written` says when the body is free again. */
  pushShared(header: Buffer, body: Buffer, written: () => void): void {
    (this.frames ??= []).push(header, body);
    this.bytes += header.length + body.length;
    (this.written ??= []).push(written);
  }

  /** Writes what is queued to `socket` (dropped, and callbacks called, if it can no longer write). */
  flushTo(socket: net.Socket): void {
    const frames = this.frames;
    if (frames === undefined) return;
    this.frames = undefined;
    const total = this.bytes;
    this.bytes = 0;
    const written = this.written;
    this.written = undefined;
    const done = written === undefined ? undefined : () => {
      for (const w of written) w();
    };
    if (socket.destroyed || socket.writableEnded) return done?.();
    if (frames.length === 1) {
      socket.write(frames[0] as Buffer, done);
    } else if (total <= COALESCE_LIMIT * 4 || frames.every((f) => f.length < COALESCE_LIMIT)) {
      // The copy releases shared bodies at once.
      socket.write(Buffer.concat(frames, total));
      done?.();
    } else {
      socket.cork();
      const last = frames.length - 1;
      for (let i = 0; i < last; i++) socket.write(frames[i] as Buffer);
      socket.write(frames[last] as Buffer, done);
      socket.uncork();
    }
  }

  /** Drops what is queued (the socket is gone), releasing shared bodies. */
  clear(): void {
    this.frames = undefined;
    this.bytes = 0;
    const written = this.written;
    this.written = undefined;
    if (written) for (const w of written) w();
  }
}
