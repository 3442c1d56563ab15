// A host under a hostile Casper guest, in a process of its own (test/casper/hostile.test.ts starts
// it): it runs one scenario and prints, as JSON, the run's result, the guest's replies, and what the
// host process used during and after the run (main-thread heap, RSS, event-loop delay, CPU).
// Run by hand: node --import tsx --expose-gc test/casper/hostile-host.ts clones
import { monitorEventLoopDelay } from 'node:perf_hooks';
import v8 from 'node:v8';
import { NV_FLAG, NvList } from '../../src/casper/nvlist.js';
import { packNvlist, unpackNvlist } from '../../src/casper/nvlist-codec.js';
import { createHost, type RunRequest } from '../../src/host/host.js';
import { wat } from '../helpers/wat.js';

/**
 * The guest runs a script read from stdin, little-endian u32s:
 *   1                          casper.init                  → out(errno, 4, the fd)
 *   2 fd count len bytes(pad4) casper.xfer + casper.recv, `count` times (0: forever) → out(errno, reply)
 *   3 fd                       fd_close                     → out(errno, nothing)
 * and writes each outcome to stdout as u32 errno, u32 length, the bytes.
 */
const GUEST = wat(`(module
  (import "casper" "init" (func $init (param i32) (result i32)))
  (import "casper" "xfer" (func $xfer (param i32 i32 i32 i32) (result i32)))
  (import "casper" "recv" (func $recv (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (memory (export "memory") 512)
  (func $out (param $e i32) (param $len i32)
    (i32.store (i32.const 24) (local.get $e))
    (i32.store (i32.const 28) (local.get $len))
    (i32.store (i32.const 32) (i32.const 24))
    (i32.store (i32.const 36) (i32.const 8))
    (i32.store (i32.const 40) (i32.const 65536))
    (i32.store (i32.const 44) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 2) (i32.const 48))))
  (func (export "_start")
    (local $end i32) (local $p i32) (local $op i32) (local $fd i32) (local $n i32) (local $len i32) (local $e i32)
    (local.set $end (i32.const 131072))
    (block $read (loop $more
      (i32.store (i32.const 0) (local.get $end))
      (i32.store (i32.const 4) (i32.const 1048576))
      (br_if $read (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (br_if $read (i32.eqz (i32.load (i32.const 8))))
      (local.set $end (i32.add (local.get $end) (i32.load (i32.const 8))))
      (br $more)))
    (local.set $p (i32.const 131072))
    (block $exit (loop $next
      (br_if $exit (i32.ge_u (local.get $p) (local.get $end)))
      (local.set $op (i32.load (local.get $p)))
      (if (i32.eq (local.get $op) (i32.const 1)) (then
        (local.set $e (call $init (i32.const 12)))
        (i32.store (i32.const 65536) (i32.load (i32.const 12)))
        (call $out (local.get $e) (i32.const 4))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))))
      (if (i32.eq (local.get $op) (i32.const 2)) (then
        (local.set $fd (i32.load offset=4 (local.get $p)))
        (local.set $n (i32.load offset=8 (local.get $p)))
        (local.set $len (i32.load offset=12 (local.get $p)))
        (loop $again
          (local.set $e (call $xfer (local.get $fd) (i32.add (local.get $p) (i32.const 16)) (local.get $len) (i32.const 16)))
          (if (i32.eqz (local.get $e))
            (then
              (local.set $e (call $recv (local.get $fd) (i32.const 65536) (i32.const 65536)))
              (call $out (local.get $e) (select (i32.load (i32.const 16)) (i32.const 0) (i32.eqz (local.get $e)))))
            (else (call $out (local.get $e) (i32.const 0))))
          (local.set $n (i32.sub (local.get $n) (i32.const 1)))
          (br_if $again (local.get $n)))
        (local.set $p (i32.add (local.get $p) (i32.add (i32.const 16) (i32.and (i32.add (local.get $len) (i32.const 3)) (i32.const -4)))))))
      (if (i32.eq (local.get $op) (i32.const 3)) (then
        (call $out (call $fd_close (i32.load offset=4 (local.get $p))) (i32.const 0))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))))
      (br $next))))
)`);

const u32 = (...ns: number[]) => { const b = new Uint8Array(4 * ns.length); const dv = new DataView(b.buffer); ns.forEach((n, i) => dv.setUint32(4 * i, n, true)); return b; };
const init = () => u32(1);
const close = (fd: number) => u32(3, fd);
function xfer(fd: number, count: number, msg: NvList | Uint8Array): Uint8Array {
  const bytes = msg instanceof Uint8Array ? msg : packNvlist(msg);
  const out = new Uint8Array(16 + ((bytes.length + 3) & ~3));
  out.set(u32(2, fd, count, bytes.length));
  out.set(bytes, 16);
  return out;
}
const cmd = (c: string, f?: (l: NvList) => void) => { const l = new NvList().addString('cmd', c); f?.(l); return l; };
/** A limit_set whose limits are `bytes` worth of NULL pairs named "a": the costliest list to decode per byte. */
function limitSetOfNulls(bytes: number): Uint8Array {
  const limits = new NvList(NV_FLAG.NO_UNIQUE);
  const pair: [string, { type: 'null' }] = ['a', { type: 'null' }];
  for (let i = Math.floor(bytes / 21); i > 0; i--) limits.pairs.push(pair);
  return packNvlist(cmd('limit_set', (l) => l.addNvlist('limits', limits)));
}
const concat = (parts: Uint8Array[]) => { const o = new Uint8Array(parts.reduce((n, p) => n + p.length, 0)); let at = 0; for (const p of parts) { o.set(p, at); at += p.length; } return o; };

const MiB = 1 << 20;
// fds: 0-2 stdio, 3 the core channel, 4 system.fileargs, then its clones.
const openFileargs = [init(), xfer(3, 1, cmd('open', (l) => l.addString('service', 'system.fileargs')))];
const big = (mib = 16) => limitSetOfNulls(mib * MiB);
const small = () => limitSetOfNulls(250 * 1024);
const SCENARIOS: Record<string, () => Partial<RunRequest> & { stdin: Uint8Array }> = {
  // A list far above the message bound, then one below it, then 16 clones of the channel.
  clones: () => ({ casper: { 'system.fileargs': {} }, stdin: concat([...openFileargs, xfer(4, 1, big()), xfer(4, 1, small()), xfer(4, 16, cmd('clone'))]) }),
  // With 8 descriptors, 40 clones: 3 fit, 37 are refused; then a closed clone makes room for one more.
  emfile: () => ({
    casper: { 'system.fileargs': {} }, limits: { fds: 8 },
    stdin: concat([...openFileargs, xfer(4, 1, big()), xfer(4, 1, small()), xfer(4, 40, cmd('clone')), close(5), xfer(4, 1, cmd('clone'))]),
  }),
  // Six huge messages, then messages below the bound forever, on the core channel, under a 1 s CPU limit.
  stall: () => ({
    casper: { 'system.fileargs': {} }, limits: { cpuMs: 1000, wallMs: 20_000 },
    stdin: concat([init(), xfer(3, 6, big(24)), xfer(3, 0, small())]),
  }),
};

const scenario = process.argv[2] ?? '';
const make = SCENARIOS[scenario];
if (!make) throw new Error(`unknown scenario ${scenario}; one of ${Object.keys(SCENARIOS).join(', ')}`);
const request = make();

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const heap = () => v8.getHeapStatistics().used_heap_size;
const cpuMs = (since: NodeJS.CpuUsage) => { const u = process.cpuUsage(since); return (u.user + u.system) / 1000; };
const MB = (n: number) => Math.round(n / 1e5) / 10;

const host = await createHost({ workers: 1 });
gc();
const baseHeap = heap();
const baseRss = process.memoryUsage.rss();
let peakHeap = baseHeap;
let peakRss = baseRss;
const sampler = setInterval(() => {
  peakHeap = Math.max(peakHeap, heap());
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
}, 10);
const eld = monitorEventLoopDelay({ resolution: 10 });
eld.enable();
const cpu0 = process.cpuUsage();
const r = await host.run({ module: GUEST, ...request });
const duringCpu = cpuMs(cpu0);
eld.disable();
clearInterval(sampler);
peakHeap = Math.max(peakHeap, heap());

// After the run (and once a worker is ready again: a stopped run's worker is replaced), the host
// process should be idle and the run's memory gone.
await host.run({ module: wat('(module (memory (export "memory") 1) (func (export "_start")))') });
const cpu1 = process.cpuUsage();
await new Promise((res) => setTimeout(res, 1000));
const afterCpu = cpuMs(cpu1);
gc();
const afterHeap = heap();
await host.close();

const replies: { errno: number; error?: number }[] = [];
for (let at = 0; at + 8 <= r.stdout.length;) {
  const dv = new DataView(r.stdout.buffer, r.stdout.byteOffset + at, 8);
  const errno = dv.getUint32(0, true);
  const len = dv.getUint32(4, true);
  const body = r.stdout.subarray(at + 8, at + 8 + len);
  at += 8 + len;
  let error: number | undefined;
  try { const n = len > 4 ? unpackNvlist(body).getNumber('error') : undefined; if (n !== undefined) error = Number(n); } catch { /* not an nvlist: init's fd */ }
  replies.push(error === undefined ? { errno } : { errno, error });
}
process.stdout.write(JSON.stringify({
  status: r.status, timeout: r.timeout, message: r.message, cpuMs: r.usage.cpuMs,
  replies,
  heapGrowthMB: MB(peakHeap - baseHeap), rssGrowthMB: MB(peakRss - baseRss), heapAfterMB: MB(afterHeap - baseHeap),
  maxDelayMs: eld.max / 1e6, processCpuMs: duringCpu, afterCpuMs: afterCpu,
}));
