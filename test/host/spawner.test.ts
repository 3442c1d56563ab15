/** What may cross from a parent guest to its child (src/host/worker/spawner.ts), without a pool. */
import { describe, expect, it } from 'vitest';
import { toPassed, passedEntries } from '../../src/host/worker/spawner.js';
import { ERRNO } from '../../src/wasi/constants.js';
import { WasiError } from '../../src/wasi/errors.js';
import { R } from '../../src/wasi/rights.js';
import { Waker } from '../../src/wasi/wake.js';
import { harness } from '../helpers/harness.js';

const errnoOf = (f: () => unknown): number => {
  try { f(); } catch (e) { if (e instanceof WasiError) return e.errno; throw e; }
  return 0;
};

describe('toPassed', () => {
  it('a file that may be written does not cross (ENOTSUP); limited to read rights it crosses as a copy at its offset', () => {
    const h = harness({ preopens: [{ guest: '/d', memory: { 'f.txt': 'hello world' } }] });
    const [rc, fd] = h.open(3, 'f.txt');
    expect(rc).toBe(ERRNO.SUCCESS);
    const e = h.wasi.context.fds.peek(fd)!;
    expect(e.base & R.fd_write).toBe(R.fd_write);
    expect(errnoOf(() => toPassed(e, 0, () => undefined))).toBe(ERRNO.NOTSUP);
    expect(h.read(fd, 6)).toEqual([ERRNO.SUCCESS, 'hello ']);
    expect(h.call.fd_fdstat_set_rights!(fd, R.fd_read | R.fd_seek | R.fd_tell, 0n)).toBe(ERRNO.SUCCESS);
    const p = toPassed(h.wasi.context.fds.peek(fd)!, 0, () => undefined);
    expect(p).toMatchObject({ kind: 'file', offset: 6, base: R.fd_read | R.fd_seek | R.fd_tell });
    // The child's copy reads on from the parent's offset, and holds no more than the parent did.
    const [child] = passedEntries([p], 2, new Waker(), () => undefined, 1 << 20, new WeakMap());
    const buf = new Uint8Array(16);
    expect(child!.handle.read([buf])).toBe(5);
    expect(new TextDecoder().decode(buf.subarray(0, 5))).toBe('world');
    expect(child!.base).toBe(R.fd_read | R.fd_seek | R.fd_tell);
    h.wasi.context.fds.closeAll();
  });

  it('a directory, stdin and a process descriptor do not cross (ENOTSUP)', () => {
    const h = harness({ preopens: [{ guest: '/d', memory: {} }] });
    const fds = h.wasi.context.fds;
    expect(errnoOf(() => toPassed(fds.peek(3)!, 0, () => undefined))).toBe(ERRNO.NOTSUP);
    expect(errnoOf(() => toPassed(fds.peek(0)!, 0, () => undefined))).toBe(ERRNO.NOTSUP);
    // stdout crosses when the run says which stream it is.
    expect(toPassed(fds.peek(1)!, 1, (hd) => (hd === fds.peek(1)!.handle ? 1 : undefined))).toMatchObject({ kind: 'output', fd: 1 });
    fds.closeAll();
  });
});
