import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { DEFAULT_MEM_THRESHOLD, MEM_MAX_META, MEM_META, refusalText, type MemoryReport } from '../discovery/memory.js';

/** Re-register when the used fraction moved by this much since the last report. */
const REPORT_STEP = 0.01;
const SAMPLE_MS = 1000;

/**
 * This process's memory against its limit: `--memlimit` when given, else
 * the cgroup's limit (v2 memory.max, v1 memory.limit_in_bytes), else the
 * machine's RAM. Reported in the registration meta (discovery/memory.ts)
 * when it moves by a percent or crosses the threshold.
 */
export class MemoryMonitor {
  readonly limit: number;
  readonly threshold: number;
  private timer: NodeJS.Timeout | undefined;
  private reported: MemoryReport | undefined;
  private last: MemoryReport | undefined;
  private lastAt = 0;

  constructor(limitBytes = 0, threshold = DEFAULT_MEM_THRESHOLD) {
    this.limit = limitBytes > 0 ? limitBytes : cgroupLimit() ?? totalmem();
    this.threshold = threshold > 0 && threshold <= 1 ? threshold : DEFAULT_MEM_THRESHOLD;
  }

  /** The current use; reading RSS costs a few microseconds, so a sample is reused for 50 ms. */
  sample(): MemoryReport {
    const now = performance.now();
    if (this.last && now - this.lastAt < 50) return this.last;
    const rss = process.memoryUsage.rss();
    this.last = { rss, limit: this.limit, ratio: rss / this.limit, threshold: this.threshold };
    this.lastAt = now;
    return this.last;
  }

  /** Why this node takes no new clients or rooms now, or undefined. */
  refusal(id: string): string | undefined {
    return refusalText(id, this.sample());
  }

  /** The registration meta for the current sample (and remembers it as reported). */
  meta(): Record<string, string> {
    const m = this.sample();
    this.reported = m;
    return { [MEM_META]: `${m.rss}/${m.limit}`, [MEM_MAX_META]: String(m.threshold) };
  }

  /** Samples every second; calls `publish` with new meta when the report should change. */
  start(publish: (meta: Record<string, string>) => void): void {
    this.timer ??= setInterval(() => {
      const m = this.sample();
      const last = this.reported;
      if (last && Math.abs(m.ratio - last.ratio) < REPORT_STEP && m.ratio >= m.threshold === last.ratio >= last.threshold) return;
      publish(this.meta());
    }, SAMPLE_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

function cgroupLimit(): number | undefined {
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch {
      continue;
    }
    const n = Number(text);
    // "max", or v1's "unlimited" (a huge page-rounded number), mean no limit.
    if (Number.isFinite(n) && n > 0 && n < totalmem() * 4) return n;
  }
  return undefined;
}
