/**
 * `gamemesh client`: the demo's terminal chat client. Its code is in
 * demo/client, next to the demo's messages (demo/gen) it speaks: the
 * framework in src/ must not depend on one game. This command only loads
 * it, lazily, so no other command pays for (or breaks without) the demo.
 */
export async function main(argv: string[]): Promise<number> {
  // With a project's own protos it is the generic client (probe-client.ts), which the npm package has.
  if (hasProto(argv)) return (await import('./probe-client.js')).main(argv);
  const demo = await loadDemo('client', () => import('../../demo/client/main.js'));
  return demo ? demo.main(argv) : 1;
}

/** `--proto DIR` or `--proto=DIR` among the arguments. */
export const hasProto = (argv: readonly string[]) => argv.some((a) => a === '--proto' || a.startsWith('--proto='));

/**
 * A relative specifier, so tsc checks it against demo/ and it resolves the
 * same way in dist/ (dist/src/cli -> dist/demo). The npm package ships
 * dist/src only; there the demo is missing, and that deserves a sentence
 * rather than a stack trace.
 */
export async function loadDemo<M>(command: string, load: () => Promise<M>): Promise<M | undefined> {
  try {
    return await load();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code !== 'ERR_MODULE_NOT_FOUND' || !/[/\\]demo[/\\]/.test(e.message)) throw err;
    process.stderr.write(`gamemesh ${command}: the demo is not here (${e.message.split('\n')[0]}).\nIt comes with the gamemesh repository, not the npm package: run it from a checkout after \`npm run build\`, or give your project's messages: gamemesh ${command} --proto DIR --send PKG.MSG (--help).\n`);
    return undefined;
  }
}
