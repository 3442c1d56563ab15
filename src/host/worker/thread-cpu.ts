import fs from 'node:fs';

// schedstat's first field is the thread's time on a CPU in nanoseconds (Linux); finer than stat's ticks.
const SELF = '/proc/thread-self/schedstat';
const HAVE_SCHEDSTAT = (() => {
  try { fs.readFileSync(SELF); return true; } catch { return false; }
})();

/** CPU time of the calling thread in ns, or of the process where the OS cannot tell threads apart. */
export function threadCpuNs(): bigint {
  if (HAVE_SCHEDSTAT) return BigInt(fs.readFileSync(SELF, 'latin1').split(' ', 1)[0]!);
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

/** CPU time in ns of thread `tid` of this process, read by another thread; undefined if unknown. */
export function cpuNsOfThread(tid: number): bigint | undefined {
  try {
    return BigInt(fs.readFileSync(`/proc/self/task/${tid}/schedstat`, 'latin1').split(' ', 1)[0]!);
  } catch {
    return undefined;
  }
}
