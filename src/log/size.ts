/** A byte count as flags write it: `1048576`, `512b`, `10k`, `10m`, `1g` (powers of 1024). */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(?:([kmg])b?|b)?$/i.exec(text.trim());
  if (!m) throw new RangeError(`bad size ${JSON.stringify(text)}: expected bytes or a number with k, m or g`);
  const unit = (m[2] ?? '').toLowerCase();
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  const bytes = Math.round(Number(m[1]) * mult);
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`bad size ${JSON.stringify(text)}: too large`);
  return bytes;
}
