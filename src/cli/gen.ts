import { resolve } from 'node:path';
import { generate, writeGenerated } from '../codegen/index.js';
import { displayPath } from '../codegen/errors.js';
import { parse, UsageError } from './args.js';

const USAGE = 'usage: gamemesh gen <proto dir> --out <dir> [--import-from <module>]';

/** Exit codes: 0 ok, 1 bad input (protos, options, file system), 2 usage. */
export async function main(argv: string[]): Promise<number> {
  let protoDir: string;
  let outDir: string;
  let importFrom: string | undefined;
  try {
    const { values, positionals } = parse(argv, { out: { type: 'string', short: 'o' }, 'import-from': { type: 'string' } });
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'missing <proto dir>' : `expected one <proto dir>, got ${positionals.length}`);
    if (typeof values['out'] !== 'string' || values['out'] === '') throw new UsageError('missing --out <dir>');
    protoDir = positionals[0] as string;
    outDir = values['out'];
    importFrom = values['import-from'] as string | undefined;
    if (importFrom === '') throw new UsageError('--import-from must not be empty');
  } catch (err) {
    process.stderr.write(`gamemesh gen: ${oneLine(err)}\n${USAGE}\n`);
    return 2;
  }
  try {
    const result = generate({ protoDir, ...(importFrom === undefined ? {} : { importFrom }) });
    const { written, removed } = writeGenerated(resolve(outDir), result);
    const stale = removed > 0 ? `, removed ${removed} stale` : '';
    process.stdout.write(
      `gamemesh gen: ${result.files.length} files in ${displayPath(resolve(outDir))} (${written} changed${stale}): ${result.messages} messages with ids, ${result.services} services, ${result.routes.routes.length} routes\n`,
    );
    return 0;
  } catch (err) {
    process.stderr.write(`gamemesh gen: ${oneLine(err)}\n`);
    return 1;
  }
}

/** Errors are reported as one line: never a stack trace. */
function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/\s*\n\s*/g, ' ').trim();
}
