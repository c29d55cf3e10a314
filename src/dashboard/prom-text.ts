/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4),
 * for the dashboard and the metrics tests: every line must be a comment, a HELP or TYPE line,
 * or a sample `name{label="value",...} value`; samples must follow their
 * family's TYPE; histogram buckets must be cumulative, end with +Inf, and
 * agree with _count. Throws on the first violation, naming the line.
 */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Scrape {
  readonly types: ReadonlyMap<string, string>;
  readonly samples: readonly Sample[];
  /** The value of the one sample with this name whose labels include `labels`; undefined if none. */
  value(name: string, labels?: Readonly<Record<string, string>>): number | undefined;
  /** The sum over every sample of this name whose labels include `labels`. */
  sum(name: string, labels?: Readonly<Record<string, string>>): number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** Values are Go floats (strconv.ParseFloat): NaN and Inf in any case (prom-client writes "Nan" before its first sample). */
function parseValue(text: string, where: string): number {
  if (/^[+]?inf(inity)?$/i.test(text)) return Infinity;
  if (/^-inf(inity)?$/i.test(text)) return -Infinity;
  if (/^nan$/i.test(text)) return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) throw new Error(`${where}: bad value ${JSON.stringify(text)}`);
  return Number(text);
}

function parseLabels(text: string, where: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(text.slice(i));
    if (!m) throw new Error(`${where}: bad label at ${JSON.stringify(text.slice(i))}`);
    i += m[0].length;
    let value = '';
    for (;;) {
      const c = text[i];
      if (c === undefined) throw new Error(`${where}: unterminated label value`);
      i++;
      if (c === '"') break;
      if (c === '\\') {
        const e = text[i++];
        if (e === 'n') value += '\n';
        else if (e === '\\' || e === '"') value += e;
        else throw new Error(`${where}: bad escape \\${String(e)}`);
      } else value += c;
    }
    const name = m[1] as string;
    if (name in labels) throw new Error(`${where}: label ${name} twice`);
    labels[name] = value;
    if (text[i] === ',') i++;
    else if (i < text.length) throw new Error(`${where}: expected , after a label`);
  }
  return labels;
}

function familyOf(name: string, types: ReadonlyMap<string, string>): string | undefined {
  if (types.has(name)) return name;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      if (types.get(base) === 'histogram' || types.get(base) === 'summary') return base;
    }
  }
  return undefined;
}

const includes = (labels: Readonly<Record<string, string>>, want: Readonly<Record<string, string>>) => Object.entries(want).every(([k, v]) => labels[k] === v);

export function parsePrometheus(text: string): Scrape {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  text.split('\n').forEach((line, n) => {
    const where = `line ${n + 1} (${JSON.stringify(line.slice(0, 120))})`;
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a plain comment
      if (!NAME.test(m[2] as string)) throw new Error(`${where}: bad metric name`);
      if (m[1] === 'TYPE') {
        if (!TYPES.has(m[3] as string)) throw new Error(`${where}: unknown type`);
        if (types.has(m[2] as string)) throw new Error(`${where}: TYPE given twice`);
        types.set(m[2] as string, m[3] as string);
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
    if (!m) throw new Error(`${where}: not a sample`);
    const name = m[1] as string;
    if (!familyOf(name, types)) throw new Error(`${where}: sample before (or without) its TYPE line`);
    samples.push({ name, labels: parseLabels(m[2] ?? '', where), value: parseValue(m[3] as string, where) });
  });
  // Histograms: cumulative buckets per series, +Inf last, equal to _count.
  for (const [family, type] of types) {
    if (type !== 'histogram') continue;
    const series = new Map<string, Sample[]>();
    for (const s of samples) {
      if (s.name !== `${family}_bucket`) continue;
      const { le, ...rest } = s.labels;
      if (le === undefined) throw new Error(`${family}_bucket without le`);
      const key = JSON.stringify(rest);
      series.set(key, [...(series.get(key) ?? []), s]);
    }
    for (const [key, buckets] of series) {
      let prev = -Infinity;
      let prevLe = -Infinity;
      for (const b of buckets) {
        const le = parseValue(b.labels['le'] as string, `${family} le`);
        if (le <= prevLe) throw new Error(`${family}${key}: buckets out of order`);
        if (b.value < prev) throw new Error(`${family}${key}: buckets not cumulative`);
        prev = b.value;
        prevLe = le;
      }
      if (prevLe !== Infinity) throw new Error(`${family}${key}: no +Inf bucket`);
      const count = samples.find((s) => s.name === `${family}_count` && JSON.stringify(s.labels) === key);
      if (!count || count.value !== prev) throw new Error(`${family}${key}: _count ${String(count?.value)} is not the +Inf bucket ${prev}`);
    }
  }
  return {
    types,
    samples,
    value(name, labels = {}) {
      const found = samples.filter((s) => s.name === name && includes(s.labels, labels));
      if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${found.length} samples match`);
      return found[0]?.value;
    },
    sum(name, labels = {}) {
      return samples.filter((s) => s.name === name && includes(s.labels, labels)).reduce((a, s) => a + s.value, 0);
    },
  };
}
