// A scripted Casper guest for the hostile tests: it does what its stdin says, byte for byte, so a
// test can send any nvlist (of any size) on any channel and read back every errno and reply.
import { NV_FLAG, NvList } from '../../src/casper/nvlist.js';
import { packNvlist, unpackNvlist } from '../../src/casper/nvlist-codec.js';
import { wat } from '../helpers/wat.js';

/**
 * The guest runs a script read from stdin, little-endian u32s:
 *   1                          casper.init                  → out(errno, 4, the fd)
 *   2 fd count len bytes(pad4) casper.xfer + casper.recv, `count` times (0: forever) → out(errno, reply)
 *   3 fd                       fd_close                     → out(errno, nothing)
 *   4 fd len bytes(pad4)       casper.xfer alone, the reply left waiting → out(errno, nothing)
 * and writes each outcome to stdout as u32 errno, u32 length, the bytes.
 */
export const GUEST = wat(`(module
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
      (if (i32.eq (local.get $op) (i32.const 4)) (then
        (local.set $len (i32.load offset=8 (local.get $p)))
        (call $out (call $xfer (i32.load offset=4 (local.get $p)) (i32.add (local.get $p) (i32.const 12)) (local.get $len) (i32.const 16)) (i32.const 0))
        (local.set $p (i32.add (local.get $p) (i32.add (i32.const 12) (i32.and (i32.add (local.get $len) (i32.const 3)) (i32.const -4)))))))
      (if (i32.eq (local.get $op) (i32.const 3)) (then
        (call $out (call $fd_close (i32.load offset=4 (local.get $p))) (i32.const 0))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))))
      (br $next))))
)`);

export const u32 = (...ns: number[]) => { const b = new Uint8Array(4 * ns.length); const dv = new DataView(b.buffer); ns.forEach((n, i) => dv.setUint32(4 * i, n, true)); return b; };
export const init = () => u32(1);
export const close = (fd: number) => u32(3, fd);
export function xfer(fd: number, count: number, msg: NvList | Uint8Array): Uint8Array {
  const bytes = msg instanceof Uint8Array ? msg : packNvlist(msg);
  const out = new Uint8Array(16 + ((bytes.length + 3) & ~3));
  out.set(u32(2, fd, count, bytes.length));
  out.set(bytes, 16);
  return out;
}
export const cmd = (c: string, f?: (l: NvList) => void) => { const l = new NvList().addString('cmd', c); f?.(l); return l; };
/**
 * A limit_set whose limits are `bytes` worth of NULL pairs named "a" (21 bytes each): the costliest
 * list to decode per byte. Made by repeating the pair of a one-pair list, not by packNvlist (which
 * takes seconds for megabytes of pairs), then fixing the three sizes libnv's format keeps.
 */
export function limitSetOfNulls(bytes: number): Uint8Array {
  const n = Math.max(1, Math.floor(bytes / 21));
  const one = packNvlist(cmd('limit_set', (l) => l.addNvlist('limits', new NvList(NV_FLAG.NO_UNIQUE).addNull('a'))));
  // root header 19, cmd pair 33, limits pair 19 + "limits\0" 7, child header 19, the pair 21, NVLIST_UP 20
  const PAIR = one.length - 20 - 21;
  const CHILD = PAIR - 19;
  const out = new Uint8Array(one.length + (n - 1) * 21);
  out.set(one.subarray(0, PAIR));
  out.set(one.subarray(PAIR, PAIR + 21), PAIR);
  for (let have = 1; have < n; have *= 2) out.copyWithin(PAIR + 21 * have, PAIR, PAIR + 21 * Math.min(have, n - have));
  out.set(one.subarray(one.length - 20), PAIR + 21 * n);
  const dv = new DataView(out.buffer);
  dv.setUint32(11, out.length - 19, true); // root header: the bytes after it
  dv.setUint32(CHILD - 7 - 16, 19 + 21 * n, true); // the limits pair's datasize: the child's header and pairs
  dv.setUint32(CHILD + 11, out.length - CHILD - 19, true); // child header: the bytes after it
  return out;
}
export const concat = (parts: Uint8Array[]) => { const o = new Uint8Array(parts.reduce((n, p) => n + p.length, 0)); let at = 0; for (const p of parts) { o.set(p, at); at += p.length; } return o; };


/** An xfer whose reply stays on the channel (no casper.recv). */
export function send(fd: number, msg: NvList | Uint8Array): Uint8Array {
  const bytes = msg instanceof Uint8Array ? msg : packNvlist(msg);
  const out = new Uint8Array(12 + ((bytes.length + 3) & ~3));
  out.set(u32(4, fd, bytes.length));
  out.set(bytes, 12);
  return out;
}

/** The guest's outcomes: each call's errno and, for a reply, its "error". */
export function replies(stdout: Uint8Array): { errno: number; error?: number }[] {
  const out: { errno: number; error?: number }[] = [];
  for (let at = 0; at + 8 <= stdout.length;) {
    const dv = new DataView(stdout.buffer, stdout.byteOffset + at, 8);
    const errno = dv.getUint32(0, true);
    const len = dv.getUint32(4, true);
    const body = stdout.subarray(at + 8, at + 8 + len);
    at += 8 + len;
    let error: number | undefined;
    try { const n = len > 4 ? unpackNvlist(body).getNumber('error') : undefined; if (n !== undefined) error = Number(n); } catch { /* init's fd, not an nvlist */ }
    out.push(error === undefined ? { errno } : { errno, error });
  }
  return out;
}
