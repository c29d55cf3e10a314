/**
 * `gamemesh bot`: the demo's load bots. Like `gamemesh client`, the code is
 * in demo/ (demo/bots) because it speaks the demo's messages; this only
 * loads it.
 */
import { hasProto, loadDemo } from './client.js';

export async function main(argv: string[]): Promise<number> {
  if (hasProto(argv)) return (await import('./probe-bot.js')).main(argv);
  const demo = await loadDemo('bot', () => import('../../demo/bots/main.js'));
  return demo ? demo.main(argv) : 1;
}
