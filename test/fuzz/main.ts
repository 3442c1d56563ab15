/**
 * `npm run fuzz [-- --seed S] [--count N] [--replay I]`: calls every guest import N times
 * (default 1,000,000) with random and boundary arguments and checks every result (core.ts).
 * Prints the seed and the count first; each failure with the call and how to replay it
 * (`--replay I` re-runs call I's episode and prints every call up to I). Exits 1 on a failure.
 */
import { randomInt } from 'node:crypto';
import { describeFailure, drive } from './driver.js';

function flag(name: string): number | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(v) || v < 0) {
    console.error(`--${name} needs a non-negative integer, got ${JSON.stringify(process.argv[i + 1])}`);
    process.exit(2);
  }
  return v;
}

const seed = flag('seed') ?? randomInt(2 ** 31);
const count = flag('count') ?? 1_000_000;
const replay = flag('replay');

if (replay !== undefined) console.log(`capsa fuzz: replaying call #${replay} of seed ${seed}`);
else console.log(`capsa fuzz: seed ${seed}, ${count.toLocaleString('en')} calls`);

const t0 = performance.now();
const report = await drive({
  seed, count, replay,
  onProgress: (calls) => {
    if (calls % 100_000 === 0) console.log(`  ${calls.toLocaleString('en')} calls, ${Math.round(calls / ((performance.now() - t0) / 1000)).toLocaleString('en')} calls/s`);
  },
  onTrace: (line) => console.log(line),
});

const seconds = report.ms / 1000;
const imports = Object.keys(report.perImport).length;
console.log(`capsa fuzz: seed ${seed}: ${report.calls.toLocaleString('en')} calls to ${imports} imports in ${seconds.toFixed(1)} s`
  + ` (${Math.round(report.calls / seconds).toLocaleString('en')} calls/s), ${report.failures.length} failures`);
if (process.argv.includes('--coverage')) {
  for (const [name, errnos] of Object.entries(report.perImport).sort()) console.log(`  ${name}: ${JSON.stringify(errnos)} ${(report.msPerImport[name] ?? 0).toFixed(0)} ms`);
  for (const [what, n] of Object.entries(report.casper).sort()) console.log(`  casper ${what}: ${n}`);
}
for (const f of report.failures) console.log(`FAIL ${describeFailure(f)}`);
process.exitCode = report.failures.length ? 1 : 0;
