// (d) start-up: wall time of a whole process that runs hello.wasm, spawned from scratch.
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { check, race, ROOT } from './lib.js';

const HELLO = 'guests/build/hello.wasm';
const CAPSA = 'capsa run (bin/capsa.js)';
const NAIVE = 'node:wasi (naive script)';
const NODE = 'node -e "" (floor)';

/** A contestant that spawns `node ...argv` and checks what it printed. */
function spawned(name, argv, expected) {
  return {
    name,
    run() {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, argv, { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
      const ms = performance.now() - t0;
      check(r.status === 0 && r.stdout === expected, `${name}: exit ${r.status}, printed ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr)}`);
      return ms;
    },
  };
}

export function run({ iterations = 10 } = {}) {
  const results = race([
    spawned(CAPSA, ['bin/capsa.js', 'run', HELLO, '--', 'world'], 'hello world\n'),
    spawned(NAIVE, ['bench/naive-node-wasi.mjs', HELLO, 'world'], 'hello world\n'),
    spawned(NODE, ['-e', ''], ''),
  ], { warmup: 1, iterations });

  const ms = (name) => results.get(name).median;
  return {
    title: '(d) start-up: `capsa run hello.wasm -- world`',
    unit: 'ms',
    results,
    throughput: ms,
    comparisons: [
      // A time, so the throughput ratio is the inverse ratio of times.
      { capsa: CAPSA, peer: NAIVE, ratio: ms(NAIVE) / ms(CAPSA), goal: 'capsa ≤ 150 ms', met: ms(CAPSA) <= 150 },
    ],
  };
}
