/** What a tick group calls: a session's idle and heartbeat check. */
export interface Ticking {
  tick(now: number): void;
}

interface Group {
  readonly members: Set<Ticking>;
  readonly timer: NodeJS.Timeout;
}

const groups = new Map<number, Group>();

/**
 * Sessions with the same check period share one interval timer, instead of
 * one `setInterval` (a Timeout and a closure) each: memory per idle client
 * is a target, and 10,000 clients then cost one timer callback per period.
 * A member is checked every `periodMs`, at the group's phase rather than
 * its own, so its idle and heartbeat deadlines are kept within one period,
 * as with a timer of its own.
 */
export function joinTicks(member: Ticking, periodMs: number): void {
  let group = groups.get(periodMs);
  if (group === undefined) {
    const members = new Set<Ticking>();
    const timer = setInterval(() => {
      const now = Date.now();
      // A member may leave (close) during its tick: Set iteration allows that.
      for (const m of members) m.tick(now);
    }, periodMs);
    timer.unref();
    group = { members, timer };
    groups.set(periodMs, group);
  }
  group.members.add(member);
}

export function leaveTicks(member: Ticking, periodMs: number): void {
  const group = groups.get(periodMs);
  if (group === undefined || !group.members.delete(member)) return;
  if (group.members.size === 0) {
    clearInterval(group.timer);
    groups.delete(periodMs);
  }
}
