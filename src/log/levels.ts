/**
 * `--loglevel` as cellmesh reads it: a plain level, or comma-separated rules
 * `regex|level` where the first regex matching the whole logger name decides
 * its level and a bare level sets the default.
 */
export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
/** A pino level name: trace, debug, info, warn, error, fatal or silent. */
export type LevelName = (typeof LEVELS)[number];

/** One rule of a level spec: loggers whose name matches the pattern log at this level. */
export interface LevelRule {
  readonly pattern: RegExp;
  readonly level: LevelName;
}

/** A parsed --loglevel: a default level and rules by logger name. */
export interface LevelSpec {
  readonly defaultLevel: LevelName;
  readonly rules: readonly LevelRule[];
}

/** A --loglevel that cannot be parsed. */
export class LogLevelError extends Error {
  override name = 'LogLevelError';
}

const LEVEL_SET: ReadonlySet<string> = new Set(LEVELS);
// Go loggers (and so cellmesh operators) also spell it this way.
const ALIASES: Readonly<Record<string, LevelName>> = { warning: 'warn', off: 'silent' };

/** One level name, checked; throws LogLevelError on anything else. */
export function parseLevel(text: string): LevelName {
  const t = text.trim().toLowerCase();
  const level = ALIASES[t] ?? t;
  if (!LEVEL_SET.has(level)) throw new LogLevelError(`bad log level ${JSON.stringify(text)}: expected one of ${LEVELS.join(', ')}`);
  return level as LevelName;
}

/** Throws LogLevelError on an unknown level or a bad regex. */
export function parseLevelSpec(text: string, fallback: LevelName = 'info'): LevelSpec {
  let defaultLevel = fallback;
  const rules: LevelRule[] = [];
  for (const raw of text.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    // The last '|' splits, so a regex may itself use alternation: `gate|agent|debug`.
    const bar = entry.lastIndexOf('|');
    if (bar < 0) {
      defaultLevel = parseLevel(entry);
      continue;
    }
    const source = entry.slice(0, bar);
    const level = parseLevel(entry.slice(bar + 1));
    let pattern: RegExp;
    try {
      pattern = new RegExp(`^(?:${source})$`);
    } catch (err) {
      throw new LogLevelError(`bad log level rule ${JSON.stringify(entry)}: ${(err as Error).message}`);
    }
    rules.push({ pattern, level });
  }
  return { defaultLevel, rules };
}

/** The level a logger of this name gets under this spec (the first matching rule, else the default). */
export function levelFor(spec: LevelSpec, name: string): LevelName {
  for (const rule of spec.rules) if (rule.pattern.test(name)) return rule.level;
  return spec.defaultLevel;
}
