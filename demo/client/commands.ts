/** What a line typed into the terminal client asks for. */
export type Command =
  | { readonly kind: 'say'; readonly text: string }
  | { readonly kind: 'whisper'; readonly to: string; readonly text: string }
  | { readonly kind: 'gold' | 'level' | 'stats' | 'who' | 'help' | 'quit' }
  | { readonly kind: 'none' }
  | { readonly kind: 'bad'; readonly message: string };

const SIMPLE = new Map<string, Command>([
  ['/gold', { kind: 'gold' }],
  ['/level', { kind: 'level' }],
  ['/stats', { kind: 'stats' }],
  ['/who', { kind: 'who' }],
  ['/help', { kind: 'help' }],
  ['/?', { kind: 'help' }],
  ['/quit', { kind: 'quit' }],
  ['/exit', { kind: 'quit' }],
]);

export const HELP_TEXT = [
  'text        say it in world chat',
  '/w NAME text  whisper to NAME',
  '/gold       work for gold',
  '/level      spend gold on the next level',
  '/stats      your level and gold',
  '/who        who is in chat',
  '/quit       leave',
].join('\n');

export function parseCommand(line: string): Command {
  const text = line.trim();
  if (text === '') return { kind: 'none' };
  // "//text" says "/text": a way to start a chat line with a slash.
  if (text.startsWith('//')) return { kind: 'say', text: text.slice(1) };
  if (!text.startsWith('/')) return { kind: 'say', text };
  const [word = '', ...rest] = text.split(/\s+/);
  const lower = word.toLowerCase();
  if (lower === '/w' || lower === '/whisper' || lower === '/msg') {
    // The text is kept as typed, inner spacing included.
    const m = /^\S+\s+(\S+)\s+(.+)$/.exec(text);
    if (!m) return { kind: 'bad', message: 'usage: /w NAME text' };
    return { kind: 'whisper', to: m[1] as string, text: m[2] as string };
  }
  const simple = SIMPLE.get(lower);
  if (simple && rest.length === 0) return simple;
  if (simple) return { kind: 'bad', message: `${lower} takes no arguments` };
  return { kind: 'bad', message: `unknown command ${word}; /help lists them (start a line with // to say something that begins with /)` };
}
