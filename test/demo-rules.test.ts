/**
 * The demo's growth rules (demo/game/rules.ts): what one action does, and,
 * over random sequences of actions, that gold never goes negative, no level
 * is skipped, and every coin is accounted for.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { earn, earnAmount, levelCost, levelUp, RuleError, START, type PlayerState } from '../demo/game/rules.js';

const fresh = (): PlayerState => ({ name: 'p', ...START });

test('a new player starts at level 1 with no gold', () => {
  assert.deepEqual(START, { level: 1, gold: 0 });
});

test('earning adds the level-dependent amount and changes nothing else', () => {
  const p = { name: 'p', level: 3, gold: 7 };
  const { next, earned } = earn(p);
  assert.equal(earned, earnAmount(3));
  assert.deepEqual(next, { name: 'p', level: 3, gold: 7 + earnAmount(3) });
  assert.deepEqual(p, { name: 'p', level: 3, gold: 7 }, 'the input is not changed');
  assert.ok(earnAmount(1) > 0);
  assert.ok(earnAmount(2) > earnAmount(1), 'higher levels earn more');
});

test('a level up costs level * 100 and is refused, with the numbers, when gold is short', () => {
  assert.equal(levelCost(1), 100);
  assert.equal(levelCost(7), 700);
  const exact = levelUp({ name: 'p', level: 2, gold: 200 });
  assert.deepEqual(exact, { next: { name: 'p', level: 3, gold: 0 }, cost: 200 });
  const short = { name: 'p', level: 2, gold: 199 };
  assert.throws(() => levelUp(short), (err: unknown) => err instanceof RuleError && /level 3 costs 200 gold; you have 199/.test(err.message));
  assert.deepEqual(short, { name: 'p', level: 2, gold: 199 }, 'a refused level up changes nothing');
});

test('any state: a level up either pays in full for exactly one level or is refused', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 0, max: 10_000_000 }), (level, gold) => {
      const p = { name: 'p', level, gold };
      if (gold < levelCost(level)) {
        assert.throws(() => levelUp(p), RuleError);
        return;
      }
      const { next, cost } = levelUp(p);
      assert.equal(cost, levelCost(level));
      assert.equal(next.level, level + 1);
      assert.equal(next.gold, gold - cost);
      assert.ok(next.gold >= 0);
    }),
  );
});

test('random action sequences: gold never negative, levels one at a time, every coin accounted for', () => {
  const action = fc.constantFrom('earn', 'level') as fc.Arbitrary<'earn' | 'level'>;
  fc.assert(
    fc.property(fc.array(action, { maxLength: 400 }), (actions) => {
      let p = fresh();
      let earned = 0;
      let spent = 0;
      let levelUps = 0;
      for (const a of actions) {
        const before = p;
        if (a === 'earn') {
          const r = earn(p);
          assert.equal(r.earned, earnAmount(before.level));
          earned += r.earned;
          p = r.next;
        } else {
          try {
            const r = levelUp(p);
            spent += r.cost;
            levelUps++;
            p = r.next;
          } catch (err) {
            assert.ok(err instanceof RuleError, 'only the rule refuses');
            assert.ok(before.gold < levelCost(before.level), 'refused only when gold is short');
            assert.equal(p, before, 'a refusal leaves the state as it was');
          }
        }
        assert.ok(p.gold >= 0, `gold went negative: ${p.gold}`);
        assert.ok(p.level === before.level || p.level === before.level + 1, `level jumped from ${before.level} to ${p.level}`);
        assert.ok(Number.isSafeInteger(p.gold) && Number.isInteger(p.level));
      }
      assert.equal(p.gold, earned - spent, 'gold = earned - spent');
      assert.equal(p.level, START.level + levelUps, 'one level per successful level up');
    }),
    { numRuns: 300 },
  );
});
