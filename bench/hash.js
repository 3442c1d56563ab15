// (c) bench_hash: FNV-1a over 64 MiB, no I/O in the loop. capsa against the same module run
// "bare", with stub imports, to show that the host adds nothing to compute-bound guests.
import { createWasi } from '../dist/index.js';
import { check, collector, guest, race, time } from './lib.js';

const SIZE_MIB = 64;
const ARGS = ['bench_hash', String(SIZE_MIB)];
const CAPSA = 'capsa';
const BARE = 'bare (stub imports)';

export function run({ iterations = 9 } = {}) {
  const mod = guest('bench_hash');
  const hashes = new Set();

  const results = race([
    {
      name: CAPSA,
      run() {
        const out = collector();
        const wasi = createWasi({ args: ARGS, stdout: out.sink, stderr: 2 });
        const instance = new WebAssembly.Instance(mod, wasi.getImportObject());
        let code;
        const ms = time(() => { code = wasi.start(instance); });
        check(code === 0 && /^[0-9a-f]{16}\n$/.test(out.text()), `capsa: exit ${code}, printed ${JSON.stringify(out.text())}`);
        hashes.add(out.text());
        return ms;
      },
    },
    {
      name: BARE,
      run() {
        const out = collector();
        const bare = bareImports(mod, ARGS, out.sink);
        const instance = new WebAssembly.Instance(mod, bare.imports);
        bare.bind(instance);
        let code;
        const ms = time(() => { code = bare.start(); });
        check(code === 0 && /^[0-9a-f]{16}\n$/.test(out.text()), `bare: exit ${code}, printed ${JSON.stringify(out.text())}`);
        hashes.add(out.text());
        return ms;
      },
    },
  ], { warmup: 1, iterations });
  check(hashes.size === 1, `capsa and bare printed different hashes: ${[...hashes].join(', ').replace(/\n/g, '')}`);

  // Best of N: the minimum is the run least disturbed by the rest of the machine.
  const mibs = (name) => SIZE_MIB / (results.get(name).min / 1000);
  return {
    title: `(c) hash ${SIZE_MIB} MiB (compute only)`,
    unit: 'MiB/s',
    basis: 'min',
    results,
    throughput: mibs,
    comparisons: [{ capsa: CAPSA, peer: BARE, ratio: mibs(CAPSA) / mibs(BARE), min: 0.98, goal: 'within 2% (≥ 0.98×)' }],
  };
}

class Exit extends Error {
  constructor(code) { super(`exit ${code}`); this.code = code; }
}

/** The least a command needs: argv, fd_write to a callback, proc_exit. Everything else is ENOSYS. */
function bareImports(mod, args, sink) {
  let memory;
  const argv = args.map((a) => Buffer.from(`${a}\0`));
  const wasi = {
    args_sizes_get(argcPtr, sizePtr) {
      const dv = new DataView(memory.buffer);
      dv.setUint32(argcPtr, argv.length, true);
      dv.setUint32(sizePtr, argv.reduce((n, a) => n + a.length, 0), true);
      return 0;
    },
    args_get(argvPtr, bufPtr) {
      const dv = new DataView(memory.buffer);
      const u8 = new Uint8Array(memory.buffer);
      for (const [i, a] of argv.entries()) {
        dv.setUint32(argvPtr + i * 4, bufPtr, true);
        u8.set(a, bufPtr);
        bufPtr += a.length;
      }
      return 0;
    },
    fd_write(fd, iovs, iovsLen, nwrittenPtr) {
      const dv = new DataView(memory.buffer);
      let n = 0;
      for (let i = 0; i < iovsLen; i++) {
        const buf = dv.getUint32(iovs + i * 8, true), len = dv.getUint32(iovs + i * 8 + 4, true);
        if (fd === 1) sink(new Uint8Array(memory.buffer, buf, len));
        n += len;
      }
      dv.setUint32(nwrittenPtr, n, true);
      return 0;
    },
    proc_exit(code) { throw new Exit(code); },
  };
  for (const imp of WebAssembly.Module.imports(mod)) {
    if (imp.module === 'wasi_snapshot_preview1' && !(imp.name in wasi)) wasi[imp.name] = () => 52; // ENOSYS
  }
  let entry;
  return {
    imports: { wasi_snapshot_preview1: wasi },
    bind(instance) { memory = instance.exports.memory; entry = instance.exports._start; },
    start() {
      try {
        entry();
        return 0;
      } catch (e) {
        if (e instanceof Exit) return e.code;
        throw e;
      }
    },
  };
}
