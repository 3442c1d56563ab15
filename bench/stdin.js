// (h) stdin: 200 MB through a guest's stdin, whole processes: from a pipe (`head -c … /dev/zero |`)
// and from a file (`< file`), capsa and node:wasi. The guest reads to its end and prints the count.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { check, race, ROOT } from './lib.js';

const BYTES = Number(process.env.BENCH_STDIN_BYTES ?? 200_000_000);
const GUEST = 'guests/build/stdin_count.wasm';
const CAPSA_PIPE = 'capsa run, stdin a pipe';
const CAPSA_FILE = 'capsa run, stdin a file';
const NAIVE_PIPE = 'node:wasi, stdin a pipe';
const NAIVE_FILE = 'node:wasi, stdin a file';

/** A contestant: `sh -c` with the guest's stdin from a pipe or a file; `lossy` peers may lose input (node:wasi does). */
function shell(name, command, { lossy = false } = {}) {
  const got = [];
  return {
    name,
    got,
    run() {
      const t0 = performance.now();
      const r = spawnSync('sh', ['-c', command], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
      const ms = performance.now() - t0;
      got.push(r.status === 0 ? `${r.stdout.trim()} bytes` : `exit ${r.status}: ${r.stderr.trim().split('\n').at(-1)}`);
      if (!lossy) check(r.status === 0 && r.stdout === `${BYTES}\n`, `${name}: exit ${r.status}, printed ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr.slice(0, 500))}`);
      return ms;
    },
  };
}

export function run({ iterations = 5 } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-bench-stdin-'));
  const file = path.join(dir, 'zeros');
  try {
    spawnSync('sh', ['-c', `head -c ${BYTES} /dev/zero > "${file}"`]);
    // Limits far above the run: on a loaded machine the run must be measured, not cut short.
    const capsa = `"${process.execPath}" bin/capsa.js run --timeout 60s --cpu 60s ${GUEST}`;
    const naive = `"${process.execPath}" bench/naive-node-wasi.mjs ${GUEST}`;
    const naivePipe = shell(NAIVE_PIPE, `head -c ${BYTES} /dev/zero | ${naive}`, { lossy: true });
    const results = race([
      shell(CAPSA_PIPE, `head -c ${BYTES} /dev/zero | ${capsa}`),
      shell(CAPSA_FILE, `${capsa} < "${file}"`),
      naivePipe,
      shell(NAIVE_FILE, `${naive} < "${file}"`),
    ], { warmup: 1, iterations });
    const ms = (name) => results.get(name).median;
    const pipeVsFile = ms(CAPSA_PIPE) / ms(CAPSA_FILE);
    const naiveGot = [...new Set(naivePipe.got)].join(', ');
    return {
      title: `(h) ${BYTES / 1e6} MB through stdin, whole process`,
      unit: 'ms',
      results,
      throughput: ms,
      comparisons: [
        // Times, so the ratios are inverse ratios of times (above 1× means capsa is faster).
        { capsa: CAPSA_PIPE, peer: CAPSA_FILE, ratio: ms(CAPSA_FILE) / ms(CAPSA_PIPE), goal: 'pipe ≤ 1.5× the file\'s time', met: pipeVsFile <= 1.5 },
        { capsa: CAPSA_PIPE, peer: NAIVE_PIPE, ratio: ms(NAIVE_PIPE) / ms(CAPSA_PIPE) },
        { capsa: CAPSA_FILE, peer: NAIVE_FILE, ratio: ms(NAIVE_FILE) / ms(CAPSA_FILE) },
      ],
      notes: [
        `capsa from a pipe took ${pipeVsFile.toFixed(2)}× its time from a file. node:wasi from a pipe of ${BYTES} bytes: ${naiveGot}`,
        '(its reads of a non-blocking pipe fail with EAGAIN, which a guest takes for an error or the end of input).',
      ],
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
