import { ERRNO } from './constants.js';
import type { WasiContext } from './context.js';
import { fail } from './errors.js';
import type { FdEntry } from './fdtable.js';
import { FileHandle } from './handles.js';
import { claimPipeHolder, createPipeBuffer, PipeHandle } from './pipe.js';
import { guard } from './preview1.js';
import { PROC_STATE, ProcessHandle } from './procdesc.js';
import { R, TYPE_RIGHTS } from './rights.js';

/** pdwait's options: return EAGAIN instead of blocking while the child runs. */
export const WNOHANG = 1;
/** The most arguments and passed descriptors a spawn takes; its argv buffer's largest size. */
export const SPAWN_LIMITS = { args: 1024, argvBytes: 64 * 1024, fds: 64, moduleBytes: 64 << 20 } as const;

const decoder = new TextDecoder('utf-8', { fatal: true });

/** The `capsicum` import module: capability mode, pipes and process descriptors (docs/abi.md). */
export function createCapsicumImports(ctx: WasiContext) {
  const { fds } = ctx;
  const procOf = (fd: number, needed: bigint, call: string): ProcessHandle => {
    const h = fds.peek(fd)?.handle;
    if (h !== undefined && !(h instanceof ProcessHandle)) fail(ERRNO.BADF, `fd ${fd} is not a process descriptor`);
    return fds.get(fd, needed, call).handle as ProcessHandle;
  };

  return {
    cap_enter: guard('cap_enter', (): number => {
      ctx.enterCapabilityMode();
      return ERRNO.SUCCESS;
    }),
    cap_getmode: guard('cap_getmode', (modePtr: number): number => {
      ctx.mem.sync().setU32(modePtr, ctx.inCapabilityMode ? 1 : 0);
      return ERRNO.SUCCESS;
    }),

    /** pipe(2): fds_out[0] reads what fds_out[1] writes. */
    pipe: guard('pipe', (fdsOut: number): number => {
      const mem = ctx.mem.sync();
      mem.check(fdsOut >>> 0, 8);
      if (fds.size + 2 > fds.maxFds) fail(ERRNO.MFILE, `the run is limited to ${fds.maxFds} open descriptors`);
      const sab = createPipeBuffer();
      claimPipeHolder(sab, 'read', ctx.pid);
      claimPipeHolder(sab, 'write', ctx.pid);
      const base = TYPE_RIGHTS.pipe.base;
      const r = fds.insert({ handle: new PipeHandle(sab, 'read', ctx.pid, ctx.waker), base: base & ~R.fd_write, inheriting: 0n, fdflags: 0 });
      const w = fds.insert({ handle: new PipeHandle(sab, 'write', ctx.pid, ctx.waker), base: base & ~R.fd_read, inheriting: 0n, fdflags: 0 });
      mem.setU32(fdsOut, r);
      mem.setU32((fdsOut >>> 0) + 4, w);
      return ERRNO.SUCCESS;
    }),

    /**
     * Starts a child guest from the module file `modfd` (CAP_FEXECVE), with the NUL-separated
     * strings at argv as its argv and the parent's descriptors listed at fdsPtr as its fds 0…n-1.
     */
    pdspawn: guard('pdspawn', (modfd: number, argvPtr: number, argvLen: number, fdsPtr: number, nfds: number, flags: number,
      pdOut: number, pidOut: number): number => {
      const mem = ctx.mem.sync();
      argvLen >>>= 0; nfds >>>= 0;
      mem.check(pdOut >>> 0, 4);
      mem.check(pidOut >>> 0, 4);
      if (flags !== 0) fail(ERRNO.INVAL, `unknown pdspawn flags ${flags}`);
      if (argvLen > SPAWN_LIMITS.argvBytes) fail(ERRNO['2BIG'], `the arguments take ${argvLen} bytes, above ${SPAWN_LIMITS.argvBytes}`);
      if (nfds > SPAWN_LIMITS.fds) fail(ERRNO.INVAL, `more than ${SPAWN_LIMITS.fds} descriptors to pass`);
      mem.check(fdsPtr >>> 0, nfds * 4);
      const raw = mem.bytes(argvPtr, argvLen);
      if (argvLen > 0 && raw[argvLen - 1] !== 0) fail(ERRNO.INVAL, 'the argument buffer must end with a NUL');
      let argv: string[];
      try {
        argv = argvLen === 0 ? [] : decoder.decode(raw.subarray(0, argvLen - 1)).split('\0');
      } catch {
        return fail(ERRNO.ILSEQ, 'an argument is not valid UTF-8');
      }
      if (argv.length > SPAWN_LIMITS.args) fail(ERRNO['2BIG'], `more than ${SPAWN_LIMITS.args} arguments`);
      const mod = fds.get(modfd, R.capsa_fexecve, 'pdspawn').handle;
      if (!(mod instanceof FileHandle)) fail(ERRNO.ACCES, `fd ${modfd} is not a regular file`);
      const passed: FdEntry[] = [];
      for (let i = 0; i < nfds; i++) {
        const fd = mem.u32((fdsPtr >>> 0) + i * 4);
        const e = fds.peek(fd) ?? fail(ERRNO.BADF, `fd ${fd} (passed as the child's fd ${i}) is not open`);
        passed.push(e);
      }
      fds.ensureRoom();
      const spawner = ctx.spawner ?? fail(ERRNO.NOSYS, 'this host does not start child guests');
      const read = (): Uint8Array => {
        const size = mod.io.size();
        if (size > SPAWN_LIMITS.moduleBytes) fail(ERRNO.FBIG, `the module is ${size} bytes, above ${SPAWN_LIMITS.moduleBytes}`);
        const bytes = new Uint8Array(size);
        if (mod.io.pread(bytes, 0) !== size) fail(ERRNO.IO, 'the module file changed while it was read');
        return bytes;
      };
      const cell = spawner.spawn({ module: read, argv, fds: passed });
      const state = Atomics.load(cell, PROC_STATE);
      if (state < 0) return -state;
      const handle = new ProcessHandle(cell, spawner, ctx.waker);
      const pd = fds.insert({ handle, base: TYPE_RIGHTS.process.base, inheriting: 0n, fdflags: 0 });
      mem.setU32(pdOut, pd);
      mem.setU32(pidOut, handle.pid);
      return ERRNO.SUCCESS;
    }),

    /** Waits for the child of `pd` to end; stores its wait(2) status. WNOHANG: EAGAIN while it runs. */
    pdwait: guard('pdwait', (pd: number, statusOut: number, options: number): number => {
      ctx.mem.sync().check(statusOut >>> 0, 4);
      if (options & ~WNOHANG) fail(ERRNO.INVAL, `unknown pdwait options ${options}`);
      const h = procOf(pd, R.capsa_pdwait, 'pdwait');
      const status = h.wait((options & WNOHANG) !== 0);
      ctx.mem.sync().setU32(statusOut, status);
      return ERRNO.SUCCESS;
    }),

    /** pdkill(2): sends `sig` to the child; every signal ends it. */
    pdkill: guard('pdkill', (pd: number, sig: number): number => {
      if (!Number.isInteger(sig) || sig < 1 || sig > 31) fail(ERRNO.INVAL, `signal ${sig} is not 1-31`);
      procOf(pd, R.capsa_pdkill, 'pdkill').kill(sig);
      return ERRNO.SUCCESS;
    }),

    /** pdgetpid(2): the child's pid. */
    pdgetpid: guard('pdgetpid', (pd: number, pidOut: number): number => {
      const mem = ctx.mem.sync();
      mem.check(pidOut >>> 0, 4);
      mem.setU32(pidOut, procOf(pd, R.capsa_pdgetpid, 'pdgetpid').pid);
      return ERRNO.SUCCESS;
    }),
  };
}

