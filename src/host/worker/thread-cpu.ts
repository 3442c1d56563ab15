import fs from 'node:fs';

// schedstat's first field is the thread's time on a CPU in nanoseconds (Linux); finer than stat's
// ticks. The file stays open: one pread per sample instead of open, read and close.
const selfFd = (() => {
  try { return fs.openSync('/proc/thread-self/schedstat', 'r'); } catch { return undefined; }
})();
const sample = Buffer.alloc(64);

/** CPU time of the calling thread in ns, or of the process where the OS cannot tell threads apart. */
export function threadCpuNs(): bigint {
  if (selfFd !== undefined) {
    const n = fs.readSync(selfFd, sample, 0, sample.length, 0);
    return BigInt(sample.toString('latin1', 0, n).split(' ', 1)[0]!);
  }
  const u = process.cpuUsage();
  return BigInt(u.user + u.system) * 1000n;
}

/** The kernel's id for the calling thread (Linux), so another thread can watch its CPU time. */
export function threadId(): number | undefined {
  try {
    return Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return undefined;
  }
}

/**
 * Another thread's CPU clock, read by this one: the pool samples each busy worker every 10 ms and
 * at each run's start and end, so its schedstat file stays open (one pread a sample, not three calls).
 */
export class ThreadClock {
  private fd: number | undefined;
  private readonly buf = Buffer.alloc(64);
  constructor(tid: number) {
    try { this.fd = fs.openSync(`/proc/self/task/${tid}/schedstat`, 'r'); } catch { this.fd = undefined; }
  }
  /** The thread's CPU time in ns; undefined if unknown (not Linux, or the thread is gone). */
  ns(): bigint | undefined {
    if (this.fd === undefined) return undefined;
    try {
      const n = fs.readSync(this.fd, this.buf, 0, this.buf.length, 0);
      return BigInt(this.buf.toString('latin1', 0, n).split(' ', 1)[0]!);
    } catch {
      return undefined;
    }
  }
  close(): void {
    if (this.fd !== undefined) try { fs.closeSync(this.fd); } catch { /* already gone */ }
    this.fd = undefined;
  }
}
