// (h) Child guests: what capsicum.pdspawn costs with the child's module already compiled (the
// parent's worker keeps it), to the call's return and to the child's exit seen by pdwait, and a
// one-byte round trip through pipes to a child that echoes it. The guest times itself
// (guests/src/proctest.c, mode bench); the host is a warm createHost with a worker to spare.
import fs from 'node:fs';
import { createHost } from '../dist/index.js';
import { check, fmt, ROOT } from './lib.js';

const N = 200;

export async function run() {
  const host = await createHost({ workers: 2 });
  const module = fs.readFileSync(`${ROOT}guests/build/proctest.wasm`);
  const runs = [];
  for (let i = 0; i < 3; i++) {
    const r = await host.run({ module, args: ['bench', '/bin/proctest.wasm', String(N)], dirs: [{ guest: '/bin', host: `${ROOT}guests/build`, readonly: true }], limits: { wallMs: 60_000, cpuMs: 60_000 } });
    const out = Buffer.from(r.stdout).toString();
    check(r.status === 'exited' && r.exitCode === 0, `proctest bench: ${r.status} ${r.message ?? ''} ${out}`);
    runs.push(Object.fromEntries(out.trim().split('\n').map((l) => { const [k, v] = l.split(' '); return [k, Number(v)]; })));
  }
  await host.close();
  // The best of three runs: the machine is shared, and the question is what the mechanism costs.
  const best = (k) => Math.min(...runs.map((r) => r[k])) / 1000;
  const call = best('pdspawn_median_ns');
  const whole = best('spawn_to_exit_median_ns');
  const rtt = best('pipe_round_trip_median_ns');
  const results = new Map([
    ['capsa pdspawn to exit (module compiled)', { median: whole, min: whole, max: whole, n: N }],
    ['capsa pipe round trip (1 byte, two pipes, two workers)', { median: rtt, min: rtt, max: rtt, n: N }],
  ]);
  return {
    title: '(h) Child guests',
    unit: 'µs',
    results,
    throughput: (name) => results.get(name).median,
    comparisons: [
      { capsa: 'capsa pdspawn to exit (module compiled)', peer: 'capsa pipe round trip (1 byte, two pipes, two workers)', ratio: rtt / whole },
    ],
    notes: [
      '| Child-guest figure | median |',
      '|---|--:|',
      `| pdspawn() call returns (pid assigned, module compiled) | ${fmt(call, 0)} µs |`,
      `| pdspawn() to pdwait() returning the exit status | ${fmt(whole, 0)} µs |`,
      `| one byte to an echoing child and back through two pipes | ${fmt(rtt, 1)} µs |`,
    ],
  };
}
