/**
 * The KCP engine (src/net/kcp/engine.ts) on a simulated network with a
 * virtual clock, so timing rules can be checked to the millisecond: random
 * messages arrive whole and in order through loss, duplication and
 * reordering; the retransmission timer follows KCP's rules in both modes
 * (doubling vs growing by half, the normal mode's extra rto/8, the 30 ms and
 * 100 ms floors); fast resend fires after `resend` later acks, before the
 * timer; nothing in flight exceeds the send, remote and congestion windows;
 * no datagram exceeds the MTU; a full receive window stops the sender and a
 * window probe reopens it; limits on message size and the send queue hold;
 * a link that never answers is declared dead.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { KcpEngine, KCP_MAX_FRAGMENTS, NORMAL_MODE, TURBO_MODE, type KcpEngineOptions, type KcpMode } from '../src/net/kcp/engine.js';
import { CMD_PUSH, CMD_WASK, CMD_WINS, KCP_OVERHEAD, parseDatagram, type Segment } from '../src/net/kcp/segment.js';

const CONV = 0x1234abcd;

interface Wire {
  at: number;
  to: 'a' | 'b';
  data: Buffer;
}

/** Two engines joined by a simulated link; time moves only in step(). */
class SimNet {
  now = 1000;
  readonly a: KcpEngine;
  readonly b: KcpEngine;
  private queue: Wire[] = [];
  readonly sent: { from: 'a' | 'b'; at: number; segs: Segment[]; size: number }[] = [];
  readonly receivedA: Buffer[] = [];
  readonly receivedB: Buffer[] = [];
  /** Return true to drop a datagram. */
  drop: (from: 'a' | 'b', data: Buffer) => boolean = () => false;
  readA = true;
  readB = true;

  constructor(
    mode: KcpMode,
    private readonly delayMs = 20,
    private readonly rand: () => number = () => 0.5,
    options: Omit<KcpEngineOptions, 'mode' | 'clock'> = {},
    private readonly jitterMs = 0,
    private readonly dupRate = 0,
  ) {
    const clock = () => this.now >>> 0;
    this.a = new KcpEngine(CONV, (d) => this.emit('a', d), { ...options, mode, clock });
    this.b = new KcpEngine(CONV, (d) => this.emit('b', d), { ...options, mode, clock });
  }

  private emit(from: 'a' | 'b', d: Buffer): void {
    const data = Buffer.from(d);
    const segs = parseDatagram(data, CONV);
    assert.ok(Array.isArray(segs), `the engine sent a malformed datagram: ${String(segs)}`);
    this.sent.push({ from, at: this.now, segs, size: data.length });
    if (this.drop(from, data)) return;
    const copies = this.rand() < this.dupRate ? 2 : 1;
    for (let i = 0; i < copies; i++) this.queue.push({ at: this.now + this.delayMs + Math.floor(this.rand() * this.jitterMs), to: from === 'a' ? 'b' : 'a', data });
  }

  step(ms = 1): void {
    for (let i = 0; i < ms; i++) {
      this.now++;
      const due = this.queue.filter((w) => w.at <= this.now);
      this.queue = this.queue.filter((w) => w.at > this.now);
      for (const w of due) {
        const e = w.to === 'a' ? this.a : this.b;
        assert.equal(e.input(w.data), undefined);
      }
      this.drain();
      this.a.update();
      this.b.update();
    }
  }

  drain(): void {
    if (this.readA) for (let m = this.a.recv(); m; m = this.a.recv()) this.receivedA.push(Buffer.from(m));
    if (this.readB) for (let m = this.b.recv(); m; m = this.b.recv()) this.receivedB.push(Buffer.from(m));
  }

  runUntil(done: () => boolean, maxMs: number): void {
    const end = this.now + maxMs;
    while (!done()) {
      if (this.now >= end) assert.fail(`not done within ${maxMs} virtual ms`);
      this.step();
    }
  }

  /** Virtual times at which `from` sent PUSH `sn`. */
  pushTimes(from: 'a' | 'b', sn: number): number[] {
    return this.sent.filter((s) => s.from === from && s.segs.some((g) => g.cmd === CMD_PUSH && g.sn === sn)).map((s) => s.at);
  }
}

function mulberry(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const gaps = (times: number[]): number[] => times.slice(1).map((t, i) => t - (times[i] as number));

test('messages arrive whole and in order through loss, duplicates and reordering, both ways', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 9000 }), { minLength: 1, maxLength: 40 }),
      fc.constantFrom(NORMAL_MODE, TURBO_MODE),
      fc.double({ min: 0, max: 0.3, noNaN: true }),
      fc.integer({ min: 1, max: 2 ** 31 }),
      (sizes, mode, loss, seed) => {
        const rand = mulberry(seed);
        const net = new SimNet(mode, 15, rand, {}, 30, 0.05);
        net.drop = () => rand() < loss;
        const msgs = sizes.map((n, i) => Buffer.alloc(n, (i * 31 + 7) & 0xff));
        for (const m of msgs) {
          assert.ok(net.a.send(m));
          assert.ok(net.b.send(m));
        }
        net.runUntil(() => net.receivedB.length === msgs.length && net.receivedA.length === msgs.length, 600_000);
        assert.deepEqual(net.receivedB, msgs);
        assert.deepEqual(net.receivedA, msgs);
        for (const s of net.sent) assert.ok(s.size <= net.a.mtu, `a datagram of ${s.size} bytes`);
      },
    ),
    { numRuns: 60 },
  );
});

test('normal mode: the first resend waits rto + rto/8, then the timeout doubles', () => {
  const net = new SimNet(NORMAL_MODE);
  net.drop = (from) => from === 'a';
  net.a.send(Buffer.from('lost'));
  net.a.flush();
  net.step(3500);
  const g = gaps(net.pushTimes('a', 0));
  // rx_rto starts at 200 with no RTT sample; each flush happens on the 40 ms interval, so up to 40 ms late.
  const expected = [225, 400, 800, 1600];
  assert.ok(g.length >= expected.length, `resends at ${String(g)}`);
  expected.forEach((e, i) => assert.ok((g[i] as number) >= e && (g[i] as number) < e + 40, `gap ${i}: ${g[i]} ms, expected ${e} ms (+ up to one interval)`));
});

test('turbo mode: no extra wait, and the timeout grows by half', () => {
  const net = new SimNet(TURBO_MODE);
  net.drop = (from) => from === 'a';
  net.a.send(Buffer.from('lost'));
  net.a.flush();
  net.step(3000);
  const g = gaps(net.pushTimes('a', 0));
  const expected = [200, 300, 450, 675];
  expected.forEach((e, i) => assert.ok((g[i] as number) >= e && (g[i] as number) < e + 10, `gap ${i}: ${g[i]} ms, expected ${e} ms (+ up to one interval)`));
});

test('the RTO follows the measured RTT down to the mode floor (30 ms turbo, 100 ms normal)', () => {
  for (const [mode, floor] of [
    [TURBO_MODE, 30],
    [NORMAL_MODE, 100],
  ] as const) {
    const net = new SimNet(mode, 2);
    for (let i = 0; i < 50; i++) {
      net.a.send(Buffer.from(`m${i}`));
      net.step(20);
    }
    net.runUntil(() => net.receivedB.length === 50, 1000);
    assert.ok(net.a.rto >= floor && net.a.rto <= floor + mode.interval, `${mode.nodelay ? 'turbo' : 'normal'}: rto ${net.a.rto}`);
  }
});

test('fast resend: a segment skipped by `resend` later acks is sent again before its timer', () => {
  const net = new SimNet(TURBO_MODE, 20);
  let dropped = false;
  net.drop = (from, d) => {
    const segs = parseDatagram(d, CONV) as Segment[];
    if (from === 'a' && !dropped && segs.some((s) => s.cmd === CMD_PUSH && s.sn === 0)) {
      dropped = true;
      return true;
    }
    return false;
  };
  // One datagram per message, more than an interval apart so that each later one is acked on its own
  // (ikcp counts one skip per datagram of acks).
  net.a.send(Buffer.alloc(1300, 1));
  net.a.flush();
  for (let i = 1; i <= 4; i++) {
    net.step(12);
    net.a.send(Buffer.alloc(1300, 1 + i));
    net.a.flush();
  }
  net.runUntil(() => net.receivedB.length === 5, 5000);
  const times = net.pushTimes('a', 0);
  assert.equal(times.length, 2, 'sent twice');
  assert.ok((times[1] as number) - (times[0] as number) < 100, `resent after ${(times[1] as number) - (times[0] as number)} ms: fast, not at the 200 ms timeout`);
  assert.ok(net.a.counters.fastRetransmits >= 1);
});

test('in flight never exceeds the send window; normal mode also obeys the congestion window', () => {
  for (const mode of [NORMAL_MODE, TURBO_MODE]) {
    const net = new SimNet(mode, 30, () => 0.5, { sndWnd: 16 });
    for (let i = 0; i < 200; i++) net.a.send(Buffer.alloc(1000, i & 0xff));
    let maxInFlight = 0;
    let acked = -1;
    const inFlight = (): number => {
      const pushes = net.sent.filter((s) => s.from === 'a').flatMap((s) => s.segs.filter((g) => g.cmd === CMD_PUSH).map((g) => g.sn));
      const una = net.sent.filter((s) => s.from === 'b').reduce((u, s) => Math.max(u, ...s.segs.map((g) => g.una)), 0);
      acked = una;
      return Math.max(...pushes, -1) + 1 - una;
    };
    let firstRtt = 0;
    net.runUntil(() => {
      maxInFlight = Math.max(maxInFlight, inFlight());
      if (net.now === 1000 + 61) firstRtt = maxInFlight;
      return net.receivedB.length === 200;
    }, 60_000);
    assert.ok(maxInFlight <= 16, `${maxInFlight} segments in flight with a window of 16`);
    assert.ok(acked >= 190, `acked up to ${acked}`);
    // Slow start: normal mode starts with one segment in flight, turbo (no cwnd) fills the window at once.
    if (mode === NORMAL_MODE) assert.ok(firstRtt <= 2, `normal mode sent ${firstRtt} segments in its first RTT`);
    else assert.equal(firstRtt, 16);
  }
});

test('a full receive window stops the sender; a window probe reopens it when the reader catches up', () => {
  const net = new SimNet(TURBO_MODE, 5);
  net.readB = false;
  for (let i = 0; i < 300; i++) net.a.send(Buffer.from(`msg ${i}`));
  net.step(2000);
  const [, , , queued] = net.b.sizes;
  assert.equal(queued, KCP_MAX_FRAGMENTS, 'the reader holds a full window');
  const pushedBefore = net.sent.filter((s) => s.from === 'a' && s.segs.some((g) => g.cmd === CMD_PUSH)).length;
  net.step(3000);
  const pushedAfter = net.sent.filter((s) => s.from === 'a' && s.segs.some((g) => g.cmd === CMD_PUSH)).length;
  assert.equal(pushedAfter, pushedBefore, 'nothing is pushed into a closed window');
  net.step(4000);
  assert.ok(net.sent.some((s) => s.from === 'a' && s.segs.some((g) => g.cmd === CMD_WASK)), 'the sender probed the window');
  assert.ok(net.sent.some((s) => s.from === 'b' && s.segs.some((g) => g.cmd === CMD_WINS)), 'the receiver told its window');
  net.readB = true;
  net.runUntil(() => net.receivedB.length === 300, 30_000);
  assert.deepEqual(
    net.receivedB.map((b) => b.toString()),
    Array.from({ length: 300 }, (_, i) => `msg ${i}`),
  );
});

test('limits: messages of 128 fragments or more, a full send queue, and MTU bounds', () => {
  const e = new KcpEngine(CONV, () => {}, { maxQueue: 10 });
  assert.equal(e.mss, 1400 - KCP_OVERHEAD);
  assert.equal(e.maxMessage, 127 * e.mss);
  assert.equal(e.send(Buffer.alloc(e.maxMessage + 1)), false);
  assert.equal(e.send(Buffer.alloc(e.mss * 10)), true);
  assert.equal(e.send(Buffer.alloc(1)), false, 'the queue holds 10 segments');
  assert.throws(() => new KcpEngine(CONV, () => {}, { mtu: 49 }), RangeError);
  assert.throws(() => new KcpEngine(CONV, () => {}, { mtu: 1501 }), RangeError);
  const small = new SimNet(TURBO_MODE, 5, () => 0.5, { mtu: 200 });
  small.a.send(Buffer.alloc(5000, 9));
  small.runUntil(() => small.receivedB.length === 1, 5000);
  assert.ok(small.sent.every((s) => s.size <= 200));
  assert.deepEqual(small.receivedB[0], Buffer.alloc(5000, 9));
});

test('a peer that never answers makes the link dead after deadLink transmissions', () => {
  const net = new SimNet(TURBO_MODE, 5, () => 0.5, { deadLink: 5 });
  net.drop = () => true;
  net.a.send(Buffer.from('anyone?'));
  net.runUntil(() => net.a.isDead, 60_000);
  assert.equal(net.pushTimes('a', 0).length, 5);
});
