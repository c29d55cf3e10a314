/** The demo's growth rules. The server alone applies them. */
export interface PlayerState {
  readonly name: string;
  readonly level: number;
  readonly gold: number;
}

export const START: Omit<PlayerState, 'name'> = { level: 1, gold: 0 };

/** Gold for one unit of work: more at higher levels. */
export function earnAmount(level: number): number {
  return 5 + level * 5;
}

/** Gold needed to go from `level` to `level + 1`. */
export function levelCost(level: number): number {
  return level * 100;
}

export function earn(p: PlayerState): { next: PlayerState; earned: number } {
  const earned = earnAmount(p.level);
  return { next: { ...p, gold: p.gold + earned }, earned };
}

export class RuleError extends Error {
  override name = 'RuleError';
}

/** One level at a time, paid in full: gold never goes negative and no level is skipped. */
export function levelUp(p: PlayerState): { next: PlayerState; cost: number } {
  const cost = levelCost(p.level);
  if (p.gold < cost) throw new RuleError(`level ${p.level + 1} costs ${cost} gold; you have ${p.gold}`);
  return { next: { ...p, level: p.level + 1, gold: p.gold - cost }, cost };
}
