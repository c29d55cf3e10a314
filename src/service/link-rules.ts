/**
 * cellmesh link rules: which instances of a dependency to connect to, by
 * group. A rule is `|`-separated alternatives, each a glob where `*` matches
 * any run of characters: `dev`, `dev|test`, `zone*`, `*`.
 */
export function groupMatcher(rule: string): (group: string) => boolean {
  const alts = rule
    .split('|')
    .map((a) => a.trim())
    .filter((a) => a.length > 0)
    .map((a) => new RegExp(`^${a.split('*').map(escape).join('.*')}$`));
  if (alts.length === 0) throw new TypeError(`empty link rule ${JSON.stringify(rule)}`);
  return (group) => alts.some((re) => re.test(group));
}

function escape(s: string): string {
  return s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}
