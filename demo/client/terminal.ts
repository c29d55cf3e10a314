/**
 * Line input and output that share the terminal: lines that arrive while
 * the user is typing are printed above the prompt, and the half-typed line
 * is drawn again below them. In a pipe there is no prompt, only lines.
 */
import readline from 'node:readline';

export class Terminal {
  private readonly rl: readline.Interface;
  private readonly tty: boolean;
  private closed = false;
  /** Lines typed (or piped) before anyone listens: a pipe may deliver all of them during the login. */
  private early: string[] | undefined = [];
  private lineFn: ((line: string) => void) | undefined;
  private endFn: (() => void) | undefined;

  constructor(
    input: NodeJS.ReadableStream = process.stdin,
    private readonly output: NodeJS.WriteStream = process.stdout,
  ) {
    this.tty = Boolean((input as { isTTY?: boolean }).isTTY && output.isTTY);
    this.rl = readline.createInterface({ input, output, terminal: this.tty, prompt: '> ' });
    this.rl.on('line', (line) => (this.lineFn ? this.lineFn(line) : this.early?.push(line)));
    this.rl.on('close', () => {
      this.closed = true;
      this.endFn?.();
    });
    // Without a listener readline turns Ctrl+C into a close anyway; this keeps that explicit.
    this.rl.on('SIGINT', () => this.rl.close());
  }

  /** Each line typed (or piped), in order, those that came before this call first. */
  onLine(fn: (line: string) => void): void {
    this.lineFn = fn;
    const early = this.early ?? [];
    this.early = undefined;
    for (const line of early) fn(line);
  }

  /** End of input: Ctrl+D, the end of a pipe, or Ctrl+C; at once if it has already come. */
  onEnd(fn: () => void): void {
    this.endFn = fn;
    if (this.closed) fn();
  }

  print(line: string): void {
    if (!this.tty || this.closed) {
      this.output.write(`${line}\n`);
      return;
    }
    readline.clearLine(this.output, 0);
    readline.cursorTo(this.output, 0);
    this.output.write(`${line}\n`);
    this.rl.prompt(true);
  }

  prompt(): void {
    if (this.tty && !this.closed) this.rl.prompt(true);
  }

  close(): void {
    this.rl.close();
  }
}
