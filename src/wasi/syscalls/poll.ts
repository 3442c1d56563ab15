import { CLOCKID, ERRNO, EVENTTYPE, FDFLAGS, FILETYPE, LIMITS, SUBCLOCKFLAGS } from '../constants.js';
import { fail, WasiError } from '../errors.js';
import type { WasiContext } from '../context.js';
import { R } from '../rights.js';
import { RIFLAGS, ROFLAGS_RECV_DATA_TRUNCATED, SocketHandle, STREAM_SOCKET_RIGHTS } from '../sockets.js';
import { clockNow } from './env.js';

const SUB_SIZE = 48;
const EVENT_SIZE = 32;

interface Ev { userdata: bigint; error: number; type: number; nbytes: bigint; hangup?: boolean }
/** eventrwflags.fd_readwrite_hangup */
const HANGUP = 0x1;
interface Timer { userdata: bigint; deadline: bigint; clock: number }

/** poll_oneoff and the sock_* calls. */
export function pollCalls(ctx: WasiContext) {
  const { mem, fds } = ctx;

  /** The socket behind `fd` holding `needed`: ENOTSOCK for anything else, whatever its rights. */
  const sock = (fd: number, needed: bigint, call: string): SocketHandle => {
    const e = fds.peek(fd) ?? fail(ERRNO.BADF, `fd ${fd} is not open`);
    const t = e.handle.filetype;
    if (t !== FILETYPE.SOCKET_STREAM && t !== FILETYPE.SOCKET_DGRAM) fail(ERRNO.NOTSOCK, `fd ${fd} is not a socket`);
    const h = fds.get(fd, needed, call).handle;
    // A Casper channel is a socket to the guest, but it speaks only casper.xfer.
    if (!(h instanceof SocketHandle)) return fail(ERRNO.NOTSUP, `fd ${fd} is a Casper channel; use casper.xfer`);
    return h;
  };

  /** One pass over the subscriptions: the events ready now, and the clocks still to wait for. */
  const check = (inPtr: number, nsubs: number): { ready: Ev[]; timers: Timer[] } => {
    const ready: Ev[] = [];
    const timers: Timer[] = [];
    for (let i = 0; i < nsubs; i++) {
      const p = inPtr + i * SUB_SIZE;
      const userdata = mem.u64(p);
      const type = mem.u8At(p + 8);
      if (type === EVENTTYPE.CLOCK) {
        const clock = mem.u32(p + 16);
        const timeout = mem.u64(p + 24);
        const flags = mem.u16(p + 40);
        let now: bigint;
        try {
          now = clockNow(clock);
        } catch (e) {
          ready.push({ userdata, error: (e as WasiError).errno, type, nbytes: 0n });
          continue;
        }
        const deadline = flags & SUBCLOCKFLAGS.ABSTIME ? timeout : now + timeout;
        // The guest's CPU time does not pass while it sleeps here, so a CPU-time deadline not
        // reached yet would never come: EINVAL, as Linux's clock_nanosleep gives for its own
        // thread's CPU clock, instead of a sleep that never ends.
        if ((clock === CLOCKID.PROCESS_CPUTIME_ID || clock === CLOCKID.THREAD_CPUTIME_ID) && deadline > now) {
          ready.push({ userdata, error: ERRNO.INVAL, type, nbytes: 0n });
          continue;
        }
        timers.push({ userdata, deadline, clock });
      } else if (type === EVENTTYPE.FD_READ || type === EVENTTYPE.FD_WRITE) {
        const fd = mem.u32(p + 16);
        try {
          const needed = fds.peek(fd)?.handle.pollRights(type === EVENTTYPE.FD_READ) ?? 0n;
          const h = fds.get(fd, needed, 'poll_oneoff').handle;
          const nbytes = type === EVENTTYPE.FD_READ ? BigInt(h.readyBytes()) : 0n;
          if (type === EVENTTYPE.FD_READ ? h.readReady() : h.writeReady()) ready.push({ userdata, error: 0, type, nbytes, hangup: h.hungUp() });
        } catch (e) {
          if (!(e instanceof WasiError)) throw e;
          ready.push({ userdata, error: e.errno, type, nbytes: 0n });
        }
      } else {
        ready.push({ userdata, error: ERRNO.INVAL, type, nbytes: 0n });
      }
    }

    return { ready, timers };
  };

  return {
    poll_oneoff(inPtr: number, outPtr: number, nsubs: number, neventsPtr: number): number {
      mem.sync();
      nsubs >>>= 0;
      if (nsubs === 0) fail(ERRNO.INVAL, 'poll_oneoff with no subscriptions');
      if (nsubs > LIMITS.subscriptions) fail(ERRNO.INVAL, `more than ${LIMITS.subscriptions} subscriptions`);
      mem.check(inPtr >>> 0, nsubs * SUB_SIZE);
      mem.check(outPtr >>> 0, nsubs * EVENT_SIZE);
      mem.check(neventsPtr >>> 0, 4);

      // Check every subscription; when none is ready, sleep on the run's waker until a descriptor
      // may have become ready (whoever changes one wakes it) or the earliest clock is due.
      // A relative clock's deadline is fixed by the first pass; later passes only look for
      // descriptors that have become ready.
      let seq = ctx.waker.seq;
      let { ready, timers } = check(inPtr >>> 0, nsubs);
      for (let pass = 0; ; pass++) {
        if (pass > 0) {
          seq = ctx.waker.seq;
          ready = check(inPtr >>> 0, nsubs).ready;
        }
        if (ready.length > 0) break;
        // No clock: only a descriptor can end the wait (the run's own limits still end the run).
        let ms = Infinity;
        if (timers.length > 0) {
          const wait = timers.reduce((m, t) => {
            const d = t.deadline - clockNow(t.clock);
            return d < m ? d : m;
          }, BigInt(Number.MAX_SAFE_INTEGER));
          if (wait <= 0n) break;
          ms = Math.min(Number(wait / 1_000_000n) + (wait % 1_000_000n > 0n ? 1 : 0), 2 ** 31);
        }
        ctx.waker.sleep(seq, ms);
      }
      for (const t of timers) {
        if (clockNow(t.clock) >= t.deadline) ready.push({ userdata: t.userdata, error: 0, type: EVENTTYPE.CLOCK, nbytes: 0n });
      }

      ready.forEach((ev, i) => {
        const q = (outPtr >>> 0) + i * EVENT_SIZE;
        mem.setU64(q, ev.userdata);
        mem.setU16(q + 8, ev.error);
        mem.setU8(q + 10, ev.type);
        mem.setU8(q + 11, 0);
        mem.setU32(q + 12, 0);
        mem.setU64(q + 16, ev.nbytes);
        mem.setU16(q + 24, ev.hangup ? HANGUP : 0);
      });
      mem.setU32(neventsPtr, ready.length);
      return ERRNO.SUCCESS;
    },

    sock_accept(fd: number, flags: number, fdOut: number): number {
      mem.sync().check(fdOut >>> 0, 4);
      const h = sock(fd, R.sock_accept, 'sock_accept');
      if (flags & ~FDFLAGS.NONBLOCK) fail(ERRNO.INVAL, `sock_accept takes only fdflags.nonblock, not ${flags}`);
      // EMFILE before the connection is taken off the queue, so that none is lost.
      fds.ensureRoom();
      const listener = fds.peek(fd)!;
      const endpoint = h.accept();
      const nonblock = (flags & FDFLAGS.NONBLOCK) !== 0;
      const newFd = fds.insert({
        handle: new SocketHandle(endpoint, ctx.waker, nonblock),
        // What a listener passes on (its inheriting rights) is all an accepted socket can hold.
        base: listener.inheriting & STREAM_SOCKET_RIGHTS, inheriting: 0n, fdflags: flags & FDFLAGS.NONBLOCK,
      });
      fds.note({ call: 'sock_accept', fd: newFd, path: endpoint.peer, rightsNeeded: R.sock_accept, rightsHeld: listener.base, errno: 0, message: `accepted ${endpoint.peer ?? 'a connection'} on fd ${fd}` });
      mem.setU32(fdOut, newFd);
      return ERRNO.SUCCESS;
    },
    sock_recv(fd: number, riData: number, riLen: number, riFlags: number, roDatalen: number, roFlags: number): number {
      mem.sync().check(roDatalen >>> 0, 4);
      mem.check(roFlags >>> 0, 2);
      const h = sock(fd, R.fd_read, 'sock_recv');
      if (riFlags & ~(RIFLAGS.RECV_PEEK | RIFLAGS.RECV_WAITALL)) fail(ERRNO.INVAL, `unknown riflags ${riFlags}`);
      const n = h.recv(mem.iovecs(riData, riLen, LIMITS.iovs), (riFlags & RIFLAGS.RECV_PEEK) !== 0, (riFlags & RIFLAGS.RECV_WAITALL) !== 0);
      mem.setU32(roDatalen, n);
      // roflags.recv_data_truncated is for datagrams only; a stream never truncates.
      mem.setU16(roFlags, h.endpoint.truncated ? ROFLAGS_RECV_DATA_TRUNCATED : 0);
      return ERRNO.SUCCESS;
    },
    sock_send(fd: number, siData: number, siLen: number, siFlags: number, soDatalen: number): number {
      mem.sync().check(soDatalen >>> 0, 4);
      const h = sock(fd, R.fd_write, 'sock_send');
      if (siFlags !== 0) fail(ERRNO.INVAL, `siflags ${siFlags}: preview1 defines none`);
      mem.setU32(soDatalen, h.write(mem.iovecs(siData, siLen, LIMITS.iovs)));
      return ERRNO.SUCCESS;
    },
    sock_shutdown(fd: number, how: number): number {
      sock(fd, R.sock_shutdown, 'sock_shutdown').shutdown(how);
      return ERRNO.SUCCESS;
    },
  };
}

