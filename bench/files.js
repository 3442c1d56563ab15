// (b) bench_files: 20,000 open/read/close cycles over 100 files of 1 KiB under /data.
// Measures path_open and per-descriptor bookkeeping: 5 WASI calls per cycle (fd_fdstat_get of
// the directory, path_open, fd_read until EOF, fd_close).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WASI as NodeWASI } from 'node:wasi';
import { WASI as ShimWASI, ConsoleStdout, File, OpenFile, PreopenDirectory } from '@bjorn3/browser_wasi_shim';
import { createWasi } from '../dist/index.js';
import { check, collector, guest, race, time } from './lib.js';

const COUNT = 20_000;
const FILES = 100;
const FILE_SIZE = 1024;
const ARGS = ['bench_files', '/data', String(COUNT), String(FILES)];
const EXPECTED = `${COUNT * FILE_SIZE}\n`;

const CAPSA_MEM = 'capsa (in-memory preopen)';
const CAPSA_HOST = 'capsa (host mount)';
const NODE = 'node:wasi (host dir)';
const SHIM = 'browser_wasi_shim (in-memory)';

/** The contestants, each a fresh guest per run over one temp dir; `done()` removes it. */
export function setup() {
  const mod = guest('bench_files');
  const contents = Array.from({ length: FILES }, (_, i) => Buffer.alloc(FILE_SIZE, `file ${i}\n`));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-bench-files-'));
  contents.forEach((c, i) => fs.writeFileSync(path.join(dir, `f${i}`), c));
  const seed = Object.fromEntries(contents.map((c, i) => [`f${i}`, c]));
  const outFile = `${dir}.out`;

  const capsa = (preopens) => () => {
    const out = collector();
    const wasi = createWasi({ args: ARGS, preopens, stdout: out.sink, stderr: 2 });
    const instance = new WebAssembly.Instance(mod, wasi.getImportObject());
    let code;
    const ms = time(() => { code = wasi.start(instance); });
    check(code === 0 && out.text() === EXPECTED, `capsa: exit ${code}, printed ${JSON.stringify(out.text())}, expected ${JSON.stringify(EXPECTED)}`);
    return ms;
  };

  return {
    done: () => fs.rmSync(dir, { recursive: true, force: true }),
    contestants: [
      { name: CAPSA_MEM, run: capsa([{ guest: '/data', memory: seed }]) },
      { name: CAPSA_HOST, run: capsa({ '/data': dir }) },
      {
        name: NODE,
        run() {
          // node:wasi writes stdout to a host fd: a fresh file, read back after the run.
          const fd = fs.openSync(outFile, 'w');
          try {
            const wasi = new NodeWASI({ version: 'preview1', args: ARGS, env: {}, preopens: { '/data': dir }, stdout: fd, returnOnExit: true });
            const instance = new WebAssembly.Instance(mod, wasi.getImportObject());
            let code;
            const ms = time(() => { code = wasi.start(instance); });
            const text = fs.readFileSync(outFile, 'utf8');
            check(code === 0 && text === EXPECTED, `node:wasi: exit ${code}, printed ${JSON.stringify(text)}, expected ${JSON.stringify(EXPECTED)}`);
            return ms;
          } finally {
            fs.closeSync(fd);
            fs.rmSync(outFile, { force: true });
          }
        },
      },
      {
        name: SHIM,
        run() {
          const out = collector();
          const fds = [
            new OpenFile(new File([])),
            new ConsoleStdout(out.sink),
            new ConsoleStdout((chunk) => process.stderr.write(chunk)),
            new PreopenDirectory('/data', new Map(contents.map((c, i) => [`f${i}`, new File(c)]))),
          ];
          const wasi = new ShimWASI(ARGS, [], fds, { debug: false });
          const instance = new WebAssembly.Instance(mod, { wasi_snapshot_preview1: wasi.wasiImport });
          let code;
          const ms = time(() => { code = wasi.start(instance); });
          check(code === 0 && out.text() === EXPECTED, `browser_wasi_shim: exit ${code}, printed ${JSON.stringify(out.text())}, expected ${JSON.stringify(EXPECTED)}`);
          return ms;
        },
      },
    ],
  };
}

export function run({ iterations = 15 } = {}) {
  const { contestants, done } = setup();
  let results;
  try {
    results = race(contestants, { warmup: 1, iterations });
  } finally {
    done();
  }
  const ops = (name) => COUNT / (results.get(name).median / 1000);
  return {
    title: `(b) ${fmtCount(COUNT)} open/read/close of 1 KiB files`,
    unit: 'ops/s',
    results,
    throughput: ops,
    comparisons: [
      { capsa: CAPSA_MEM, peer: NODE, ratio: ops(CAPSA_MEM) / ops(NODE), min: 1.5 },
      // The goal; docs in README (Performance) say what bounds it: the open(2) of a /proc/self/fd path.
      { capsa: CAPSA_HOST, peer: NODE, ratio: ops(CAPSA_HOST) / ops(NODE), min: 1.2 },
      { capsa: CAPSA_MEM, peer: SHIM, ratio: ops(CAPSA_MEM) / ops(SHIM) },
    ],
  };
}

function fmtCount(n) {
  return n % 1000 === 0 ? `${n / 1000}k` : String(n);
}
