// The CPU quota check's cost as a tenant's day fills up: createRun (with its quota) timed after
// 100 and after 20,000 runs finished today, on the SQLite store and, with CAPSA_DATABASE_URL set, on
// PostgreSQL (an empty database). Store level, no HTTP. A measurement, not a test:
//   npx tsx bench/quota-check.ts [src dir, default ../src: point it at another checkout to compare]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

const src = path.resolve(process.argv[2] ?? path.join(import.meta.dirname, '..', 'src'));
const { createSqliteStore } = await import(path.join(src, 'api/store/sqlite.ts'));
const { createPostgresStore } = await import(path.join(src, 'api/store/postgres.ts'));

const DAY = 86_400_000;
const now = Date.now();
const since = now - (now % DAY);
const SAMPLES = 400;

/** Median ms of createRun with the CPU quota, after `finished` runs of the tenant ended today. */
async function measure(store: any, finished: number[]): Promise<Map<number, number>> {
  const t = await store.createTenant(`bench-${randomBytes(4).toString('hex')}`);
  const mod = (await store.putModule(t.id, new Uint8Array(Buffer.from('\0asmquota')), [])).record;
  const quota = { queuedRuns: 1e9, cpuMs: 1e12, since };
  const create = () => store.createRun({ id: `run_${randomBytes(12).toString('hex')}`, tenantId: t.id, moduleId: mod.id, request: '{}', createdAt: now }, quota);
  const out = new Map<number, number>();
  let done = 0;
  for (const n of finished) {
    // Finished in batches of concurrent calls (PostgreSQL); SQLite's calls are synchronous anyway.
    while (done < n) {
      const batch = Math.min(200, n - done);
      await Promise.all(Array.from({ length: batch }, async () => {
        const r = await create();
        await store.finishRun(r.id, 'exited', '{}', now, 3);
      }));
      done += batch;
    }
    const ms: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const t0 = process.hrtime.bigint();
      const r = await create();
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
      await store.finishRun(r.id, 'cancelled', '{}', now, 0); // not queued, adds no CPU
    }
    ms.sort((a, b) => a - b);
    out.set(n, ms[ms.length >> 1]!);
  }
  return out;
}

const report = (name: string, m: Map<number, number>) =>
  console.log(`${name}: createRun median ${[...m].map(([n, ms]) => `${ms.toFixed(3)} ms after ${n} runs`).join(', ')}`);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-quota-bench-'));
try {
  const s = createSqliteStore({ dir });
  report('sqlite', await measure(s, [100, 20_000]));
  await s.close();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
if (process.env['CAPSA_DATABASE_URL']) {
  const s = await createPostgresStore({ url: process.env['CAPSA_DATABASE_URL'] });
  report('postgres', await measure(s, [100, 20_000]));
  await s.close();
}
