// (a) bench_write: 64 MiB written as 4 KiB fd_write calls into a sink that discards them.
// Measures the per-call cost of fd_write: 16,384 host calls per run. Like for like: capsa and
// node:wasi both write to /dev/null (a write(2) per call); capsa's callback sink is a second row.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WASI as NodeWASI } from 'node:wasi';
import { WASI as ShimWASI, ConsoleStdout, File, OpenFile } from '@bjorn3/browser_wasi_shim';
import { createWasi } from '../dist/index.js';
import { check, guest, MiB, race, time } from './lib.js';

const SIZE_MIB = 64;
const BYTES = SIZE_MIB * MiB;
const ARGS = ['bench_write', String(SIZE_MIB)];

const CAPSA_NULL = 'capsa (stdout = /dev/null)';
const CAPSA = 'capsa (stdout callback)';
const NODE = 'node:wasi (stdout = /dev/null)';
const SHIM = 'browser_wasi_shim (ConsoleStdout)';

/** The contestants, each a fresh guest per run; `done()` releases what they share. */
export function setup() {
  const mod = guest('bench_write');
  const devnull = fs.openSync('/dev/null', 'w');
  return {
    done: () => fs.closeSync(devnull),
    contestants: [
      {
        name: CAPSA_NULL,
        run() {
          const wasi = createWasi({ args: ARGS, stdout: devnull, stderr: 2 });
          const instance = new WebAssembly.Instance(mod, wasi.getImportObject());
          let code;
          const ms = time(() => { code = wasi.start(instance); });
          // As for node:wasi: the guest checks every write's count and exits 1 on a short one.
          check(code === 0, `capsa: exit ${code}`);
          return ms;
        },
      },
      {
        name: CAPSA,
        run() {
          let bytes = 0;
          const wasi = createWasi({ args: ARGS, stdout: (chunk) => { bytes += chunk.length; }, stderr: 2 });
          const instance = new WebAssembly.Instance(mod, wasi.getImportObject());
          let code;
          const ms = time(() => { code = wasi.start(instance); });
          check(code === 0 && bytes === BYTES, `capsa: exit ${code}, ${bytes} bytes instead of ${BYTES}`);
          return ms;
        },
      },
      {
        name: NODE,
        run() {
          const wasi = new NodeWASI({ version: 'preview1', args: ARGS, env: {}, stdout: devnull, returnOnExit: true });
          const instance = new WebAssembly.Instance(mod, wasi.getImportObject());
          let code;
          const ms = time(() => { code = wasi.start(instance); });
          // The guest checks every write's count and exits 1 on a short one.
          check(code === 0, `node:wasi: exit ${code}`);
          return ms;
        },
      },
      {
        name: SHIM,
        run() {
          let bytes = 0;
          const fds = [
            new OpenFile(new File([])),
            new ConsoleStdout((chunk) => { bytes += chunk.length; }),
            new ConsoleStdout((chunk) => process.stderr.write(chunk)),
          ];
          const wasi = new ShimWASI(ARGS, [], fds, { debug: false });
          const instance = new WebAssembly.Instance(mod, { wasi_snapshot_preview1: wasi.wasiImport });
          let code;
          const ms = time(() => { code = wasi.start(instance); });
          check(code === 0 && bytes === BYTES, `browser_wasi_shim: exit ${code}, ${bytes} bytes instead of ${BYTES}`);
          return ms;
        },
      },
    ],
  };
}

export function run({ iterations = 50 } = {}) {
  verifyNodeWasi(guest('bench_write'));
  const { contestants, done } = setup();
  let results;
  try {
    results = race(contestants, { warmup: 1, iterations });
  } finally {
    done();
  }
  const mibs = (name) => SIZE_MIB / (results.get(name).median / 1000);
  return {
    title: `(a) write ${SIZE_MIB} MiB as 4 KiB fd_writes`,
    unit: 'MiB/s',
    results,
    throughput: mibs,
    comparisons: [
      { capsa: CAPSA_NULL, peer: NODE, ratio: mibs(CAPSA_NULL) / mibs(NODE) },
      { capsa: CAPSA, peer: NODE, ratio: mibs(CAPSA) / mibs(NODE) },
      { capsa: CAPSA, peer: SHIM, ratio: mibs(CAPSA) / mibs(SHIM) },
    ],
  };
}

/** /dev/null cannot be read back, so node:wasi's output is checked once against a temp file. */
function verifyNodeWasi(mod) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-bench-write-'));
  const file = path.join(dir, 'out');
  const fd = fs.openSync(file, 'w');
  try {
    const wasi = new NodeWASI({ version: 'preview1', args: ARGS, env: {}, stdout: fd, returnOnExit: true });
    const code = wasi.start(new WebAssembly.Instance(mod, wasi.getImportObject()));
    const out = fs.readFileSync(file);
    check(code === 0 && out.equals(Buffer.alloc(BYTES, 'x')),
      `node:wasi: exit ${code}, ${out.length} bytes (not all "x") instead of ${BYTES}`);
  } finally {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
