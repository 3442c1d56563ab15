/** Human units for limits: "2s", "500ms", "1.5m", "7d" and "64MiB", "1GB", "4096". */

const DURATION: Record<string, number> = { ms: 1, s: 1000, sec: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };
const BYTES: Record<string, number> = {
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, k: 1024, m: 1024 ** 2, g: 1024 ** 3,
};

function parseUnit(what: string, input: string | number, table: Record<string, number>, bare: number, example: string): number {
  if (typeof input === 'number') {
    if (!Number.isFinite(input) || input < 0) throw new RangeError(`${what}: ${input} is not a non-negative number`);
    return input;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(input);
  const factor = m ? (m[2] === '' ? bare : table[m[2]!.toLowerCase()]) : undefined;
  if (!m || factor === undefined) throw new RangeError(`${what}: cannot read ${JSON.stringify(input)}; write it like ${example}`);
  return Math.round(Number(m[1]) * factor);
}

/** Milliseconds from "2s", "500ms", "1m" or a number of milliseconds. */
export function parseDuration(input: string | number, what = 'duration'): number {
  return parseUnit(what, input, DURATION, 1, '"2s", "500ms" or "1m"');
}

/** Bytes from "64MiB", "1GB", "512k" or a number of bytes. */
export function parseBytes(input: string | number, what = 'size'): number {
  return parseUnit(what, input, BYTES, 1, '"64MiB", "1GiB" or "4096"');
}

/** "64 MiB", "1.5 GiB", "512 B": for messages. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}

/** "2 s", "150 ms": for messages. */
export function formatDuration(ms: number): string {
  return ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
