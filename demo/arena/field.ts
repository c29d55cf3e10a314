/**
 * The arena's simulation, apart from the network: players on a 2D field,
 * each moving in the direction it holds at a fixed speed, kept inside the
 * field. The server owns it; clients only say which way they hold.
 */

export const FIELD = { width: 800, height: 480 } as const;
/** Units a second a player moves while it holds a direction (diagonals too). */
export const SPEED = 180;
/** A player is a disc of this radius, kept wholly inside the field. */
export const RADIUS = 12;
/** A longer gap between ticks (a stalled process) moves players no further than this. */
const MAX_STEP_MS = 250;

const COLORS = [0xe6194b, 0x3cb44b, 0x4363d8, 0xf58231, 0x911eb4, 0x42d4f4, 0xf032e6, 0x9a6324];

export interface ArenaBody {
  name: string;
  x: number;
  y: number;
  dx: number;
  dy: number;
  ack: number;
  color: number;
}

/** A new player at a spot of its own (spread by its seat number in the room) with a color of its own. */
export function spawn(name: string, n: number): ArenaBody {
  const cols = 4;
  const x = (FIELD.width * ((n % cols) + 0.5)) / cols;
  const y = (FIELD.height * ((Math.floor(n / cols) % 2) + 0.5)) / 2;
  return { name, x, y, dx: 0, dy: 0, ack: 0, color: COLORS[n % COLORS.length] as number };
}

/** -1, 0 or 1: a client's input is never trusted to be in range (or a number). */
function axis(v: number): number {
  return Number.isFinite(v) ? Math.sign(Math.trunc(v)) : 0;
}

/** Applies an input; an older seq than the last applied one (reordered, replayed) is ignored. */
export function steer(body: ArenaBody, dx: number, dy: number, seq: number): void {
  if (seq !== 0 && seq < body.ack) return;
  body.dx = axis(dx);
  body.dy = axis(dy);
  body.ack = seq >>> 0;
}

/** Moves a player by what it holds for dtMs. */
export function step(body: ArenaBody, dtMs: number): void {
  if (body.dx === 0 && body.dy === 0) return;
  const len = Math.hypot(body.dx, body.dy);
  const d = (SPEED * Math.min(Math.max(dtMs, 0), MAX_STEP_MS)) / 1000 / len;
  body.x = clamp(body.x + body.dx * d, RADIUS, FIELD.width - RADIUS);
  body.y = clamp(body.y + body.dy * d, RADIUS, FIELD.height - RADIUS);
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
