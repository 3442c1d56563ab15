// What bounds an executor's memory: a memory cgroup where this machine lets capsa make one. A guest
// that fills the memory its run may have, above what the operator gave the executor, ends its own
// executor (the kernel's OOM killer, inside the cgroup), never the engine's process.
import fs from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { createHost } from '../../src/host/host.js';
import { memoryCgroupRoot } from '../../src/host/executor/sandbox.js';
import { command } from '../helpers/wat.js';

const MiB = 1 << 20;
const cg = memoryCgroupRoot();
const EXIT = '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))';
/** Grows its memory to `mb` MiB and touches every 4 KiB of it. */
const filler = (mb: number) => command(`(local $p i32)
  (loop $g
    (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1)) (then (call $exit (i32.const 3))))
    (br_if $g (i32.lt_u (memory.size) (i32.const ${mb * 16}))))
  (loop $t
    (i32.store8 (local.get $p) (i32.const 1))
    (local.set $p (i32.add (local.get $p) (i32.const 4096)))
    (br_if $t (i32.lt_u (local.get $p) (i32.const ${mb * MiB}))))`, EXIT);

/** Processes below `pid` (Linux /proc). */
function descendants(pid: number): number[] {
  let kids: number[] = [];
  try { kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number); } catch { /* gone */ }
  return kids.flatMap((k) => [k, ...descendants(k)]);
}

// Skipped where the machine gives no writable memory cgroup (the layer is then absent and /healthz says so).
describe.skipIf(typeof cg === 'string')('an executor in a memory cgroup', () => {
  it('lists the layer, and its runtime is counted in a cgroup with the limit asked for', async () => {
    const host = await createHost({ isolation: 'process', workers: 1, executors: { count: 1, memoryMb: 700 } });
    try {
      const [ex] = host.executors();
      expect(ex!.layers).toContain('cgroup-memory');
      const procs = descendants(process.pid).filter((p) => { try { return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('executor-main'); } catch { return false; } });
      expect(procs.length).toBeGreaterThan(0);
      for (const p of procs) {
        const line = fs.readFileSync(`/proc/${p}/cgroup`, 'utf8').split('\n').find((l) => /(^0::|:memory:)/.test(l) && l.includes('capsa-executor-'))!;
        expect(line).toBeDefined();
        const dir = typeof cg === 'string' ? '' : cg.dir.replace(/\/[^/]*$/, '');
        const rel = line.split(':')[2]!;
        const root = cg !== undefined && typeof cg !== 'string' && cg.version === 1 ? '/sys/fs/cgroup/memory' : '/sys/fs/cgroup';
        const limit = fs.readFileSync(`${root}${rel}/${cg !== undefined && typeof cg !== 'string' && cg.version === 1 ? 'memory.limit_in_bytes' : 'memory.max'}`, 'utf8').trim();
        expect(Number(limit)).toBe(700 * MiB);
        expect(dir).not.toBe('');
      }
    } finally {
      await host.close();
    }
  }, 60_000);

  it('a guest filling more memory than its executor may hold ends that executor (host_error), which is replaced; the engine is untouched', async () => {
    const host = await createHost({ isolation: 'process', workers: 1, executors: { count: 1, memoryMb: 320 }, limits: { max: { memoryBytes: 1 << 30 } } });
    try {
      const [before] = host.executors();
      const rss0 = process.memoryUsage.rss();
      const r = await host.run({ module: filler(600), limits: { memoryBytes: 768 * MiB, wallMs: 60_000, cpuMs: 60_000 } });
      expect(r).toMatchObject({ status: 'host_error', blame: 'host' });
      // The engine never held the guest's memory (generous bound: far below the 600 MiB it filled).
      expect(process.memoryUsage.rss() - rss0).toBeLessThan(200 * MiB);
      await vi.waitFor(() => expect(host.executors().map((e) => e.pid)).not.toContain(before!.pid), { timeout: 20_000 });
      const ok = await host.run({ module: filler(64), limits: { memoryBytes: 128 * MiB } });
      expect(ok).toMatchObject({ status: 'exited', exitCode: 0 });
    } finally {
      await host.close();
    }
  }, 90_000);
});
