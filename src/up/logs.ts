/**
 * The supervisor's output: every line of every child as `name | line`, the
 * prefix padded to the longest name and colored per service, so interleaved
 * logs of a whole cluster stay readable in one terminal. pino JSON lines are
 * shortened to level, logger, message and a few fields.
 */

const ESC = '\x1b[';
const RESET = `${ESC}0m`;
/** Service colors, in file order: cyan, green, yellow, magenta, blue, then their bright variants. */
const PALETTE = [36, 32, 33, 35, 34, 96, 92, 93, 95, 94];
const LEVELS: Readonly<Record<number, [label: string, color: number]>> = {
  10: ['TRACE', 90],
  20: ['DEBUG', 90],
  30: ['INFO ', 32],
  40: ['WARN ', 33],
  50: ['ERROR', 31],
  60: ['FATAL', 41],
};
/** pino's own fields, shown another way or not at all. */
const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'v']);
const MAX_FIELDS = 8;
const MAX_VALUE = 80;

/** The usual conventions: NO_COLOR wins, FORCE_COLOR forces, otherwise color on a terminal only. */
export function useColor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env['NO_COLOR'] !== undefined && env['NO_COLOR'] !== '') return false;
  const force = env['FORCE_COLOR'];
  if (force !== undefined) return force !== '0' && force !== 'false';
  return stream.isTTY === true;
}

export const paint = (color: boolean, code: number | string, text: string) => (color ? `${ESC}${code}m${text}${RESET}` : text);

export class Printer {
  private readonly width: number;
  private readonly colors = new Map<string, number>();

  constructor(
    names: readonly string[],
    private readonly write: (text: string) => void,
    readonly color: boolean,
    /** Print pino JSON lines as they are. */
    private readonly raw = false,
  ) {
    this.width = Math.max(0, ...names.map((n) => n.length));
    names.forEach((n, i) => this.colors.set(n, PALETTE[i % PALETTE.length] as number));
  }

  /** One line of a child's output (or several, when a log line carries a stack). */
  line(name: string, text: string): void {
    const shown = this.raw ? text : formatLogLine(text, this.color);
    this.write(shown.split('\n').map((l) => `${this.prefix(name)}${l}\n`).join(''));
  }

  /** A line of the supervisor's own about a service, set apart from the service's output. */
  note(name: string, text: string): void {
    this.write(`${this.prefix(name)}${paint(this.color, '1', text)}\n`);
  }

  /** Text of the supervisor's own, not about one service. */
  banner(lines: readonly string[]): void {
    this.write(`\n${lines.map((l) => `  ${paint(this.color, '1;32', l)}\n`).join('')}\n`);
  }

  private prefix(name: string): string {
    return `${paint(this.color, this.colors.get(name) ?? 37, name.padEnd(this.width))} | `;
  }
}

/** A pino JSON line as `LEVEL [logger] msg key=value ...`; anything else as it is. */
export function formatLogLine(line: string, color = false): string {
  if (!line.startsWith('{"level":')) return line;
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const level = typeof rec['level'] === 'number' ? LEVELS[rec['level']] : undefined;
  if (!level) return line;
  const parts = [paint(color, level[1], level[0])];
  if (typeof rec['name'] === 'string') parts.push(paint(color, 2, `[${rec['name']}]`));
  if (typeof rec['msg'] === 'string') parts.push(rec['msg']);
  const fields = Object.entries(rec).filter(([k]) => !HIDDEN.has(k));
  let stack = '';
  for (const [key, value] of fields.slice(0, MAX_FIELDS)) {
    if (key === 'err' && isError(value)) {
      parts.push(`err=${JSON.stringify(value.message)}`);
      // A stack is worth its lines only where something actually broke.
      if ((rec['level'] as number) >= 50 && typeof value.stack === 'string') stack = value.stack;
    } else {
      parts.push(`${paint(color, 2, `${key}=`)}${showValue(value)}`);
    }
  }
  if (fields.length > MAX_FIELDS) parts.push(paint(color, 2, `(+${fields.length - MAX_FIELDS} more)`));
  return stack ? `${parts.join(' ')}\n${stack}` : parts.join(' ');
}

function isError(value: unknown): value is { message: string; stack?: unknown } {
  return typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string';
}

function showValue(value: unknown): string {
  const text = typeof value === 'string' && /^[^\s"=]+$/.test(value) ? value : (JSON.stringify(value) ?? String(value));
  return text.length > MAX_VALUE ? `${text.slice(0, MAX_VALUE - 3)}...` : text;
}

/** Cuts a stream into lines; a line longer than maxLine is passed on in pieces rather than buffered without bound. */
export class LineSplitter {
  private buf = '';

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLine = 64 * 1024,
  ) {}

  push(chunk: string): void {
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      this.onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
    }
    while (this.buf.length > this.maxLine) {
      this.onLine(this.buf.slice(0, this.maxLine));
      this.buf = this.buf.slice(this.maxLine);
    }
  }

  /** The last line, when the stream ended without a newline. */
  end(): void {
    if (this.buf !== '') this.onLine(this.buf);
    this.buf = '';
  }
}
