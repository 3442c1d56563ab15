// (e) the execution engine: hello.wasm through host.run on a warm worker pool, next to the naive
// way (a fresh node process with node:wasi per run). Latency is per run, one at a time; throughput
// keeps 32 runs in flight. Memory is measured in fresh child processes so this process's own heap
// does not count.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createHost } from '../dist/index.js';
import { check, fmt, ROOT } from './lib.js';

const HELLO = `${ROOT}guests/build/hello.wasm`;
const SEQUENTIAL = 3000;
const CONCURRENT_RUNS = 10_000;
const IN_FLIGHT = 32;
const NAIVE_RUNS = 15;

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/** RSS in MB of a fresh process that creates a host with `workers` workers and sits idle. */
function idleRss(workers) {
  const code = `
    const { createHost } = await import(${JSON.stringify(`${ROOT}dist/index.js`)});
    const h = await createHost({ workers: ${workers} });
    await new Promise((r) => setTimeout(r, 300));
    globalThis.gc?.();
    await new Promise((r) => setTimeout(r, 100));
    console.log(process.memoryUsage().rss);
    await h.close();`;
  const file = `${ROOT}bench/.idle-rss-probe.mjs`;
  fs.writeFileSync(file, code);
  const r = spawnSync(process.execPath, ['--expose-gc', file], { encoding: 'utf8' });
  fs.rmSync(file, { force: true });
  check(r.status === 0, `idle RSS probe failed: ${r.stderr}`);
  return Number(r.stdout.trim()) / 1e6;
}

export async function run() {
  const host = await createHost({ workers: 2, maxQueue: 100_000 });
  const id = host.add(fs.readFileSync(HELLO));
  const once = async (i) => {
    const r = await host.run({ module: id, args: [String(i)] });
    check(r.status === 'exited' && Buffer.from(r.stdout).toString() === `hello ${i}\n`, `host.run: ${r.status} ${r.message ?? ''}`);
  };
  for (let i = 0; i < 300; i++) await once(i);

  const lat = [];
  for (let i = 0; i < SEQUENTIAL; i++) {
    const t0 = performance.now();
    await once(i);
    lat.push(performance.now() - t0);
  }
  lat.sort((a, b) => a - b);

  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < CONCURRENT_RUNS) await once(next++);
  }));
  const runsPerSec = CONCURRENT_RUNS / ((performance.now() - t0) / 1000);
  await host.close();

  const naive = [];
  for (let i = 0; i < NAIVE_RUNS; i++) {
    const s = performance.now();
    const r = spawnSync(process.execPath, [`${ROOT}bench/naive-node-wasi.mjs`, HELLO, 'x'], { encoding: 'utf8' });
    naive.push(performance.now() - s);
    check(r.status === 0 && r.stdout === 'hello x\n', `naive: ${r.stderr}`);
  }
  naive.sort((a, b) => a - b);
  const naiveP50 = pct(naive, 50);

  const rss1 = idleRss(1), rss2 = idleRss(2), rss4 = idleRss(4);
  const perWorker = (rss4 - rss2) / 2;
  const p50 = pct(lat, 50), p99 = pct(lat, 99);

  const results = new Map([
    ['capsa host.run (warm pool, 2 workers)', { median: p50, min: lat[0], max: lat.at(-1), n: lat.length }],
    ['fresh node + node:wasi per run', { median: naiveP50, min: naive[0], max: naive.at(-1), n: naive.length }],
  ]);
  return {
    title: '(e) engine: hello.wasm per run',
    unit: 'ms',
    results,
    throughput: (name) => results.get(name).median,
    comparisons: [
      { capsa: 'capsa host.run (warm pool, 2 workers)', peer: 'fresh node + node:wasi per run', ratio: naiveP50 / p50, goal: 'p50 ≤ 0.5 ms', met: p50 <= 0.5 },
    ],
    notes: [
      '| Engine figure | value | target |',
      '|---|--:|---|',
      `| latency p50, one run at a time | ${fmt(p50, 3)} ms | ≤ 0.5 ms ${p50 <= 0.5 ? '✅' : '❌'} |`,
      `| latency p99, one run at a time | ${fmt(p99, 3)} ms | ≤ 2 ms ${p99 <= 2 ? '✅' : '❌'} |`,
      `| throughput, ${IN_FLIGHT} in flight | ${fmt(runsPerSec, 0)} runs/s | ≥ 2,000 ${runsPerSec >= 2000 ? '✅' : '❌'} |`,
      `| naive: fresh node + node:wasi, p50 | ${fmt(naiveP50, 1)} ms (${fmt(1000 / naiveP50, 0)} runs/s one at a time) | |`,
      `| idle RSS of a host with 1 / 2 / 4 workers | ${fmt(rss1, 0)} / ${fmt(rss2, 0)} / ${fmt(rss4, 0)} MB | ≤ 80 MB (2 workers) ${rss2 <= 80 ? '✅' : '❌'} |`,
      `| RSS per pooled worker | ${fmt(perWorker, 1)} MB | ≤ 15 MB ${perWorker <= 15 ? '✅' : '❌'} |`,
    ],
  };
}
