/**
 * The worker's side of capsicum.pdspawn: it compiles the child's module (the parent's CPU pays),
 * turns the parent's descriptors into data that crosses to another worker, asks the pool for the
 * child and blocks until the pool has answered in the process cell. The child's worker turns the
 * passed descriptors back into fd entries (`passedEntries`).
 */
import { ERRNO } from '../../wasi/constants.js';
import { fail } from '../../wasi/errors.js';
import type { FdEntry } from '../../wasi/fdtable.js';
import { createMemFs, MemFile, seedMemDir } from '../../wasi/fs/memfs.js';
import { FileHandle, OutputHandle, type Handle, type OutputSink } from '../../wasi/handles.js';
import { PipeHandle } from '../../wasi/pipe.js';
import { createProcessCell, PROC_STATE, PROC_STARTING, type Spawner, type SpawnRequest } from '../../wasi/procdesc.js';
import { R } from '../../wasi/rights.js';
import type { Waker } from '../../wasi/wake.js';
import { unknownImports } from '../imports.js';
import { compiledModule, ModuleCache, type CachedModule } from '../module-cache.js';
import { ModuleLimitError } from '../wasm-limits.js';
import type { FromWorker, PassedFd } from './protocol.js';

/** Rights that change a file: a file holding any of them cannot cross to a child (it gets a copy). */
const FILE_WRITE_RIGHTS = R.fd_write | R.fd_allocate | R.fd_filestat_set_size | R.fd_filestat_set_times;

// Children's modules, compiled once per worker: a parent that starts the same child again pays a hash.
const modules = new ModuleCache({ maxBytes: 64 << 20 });

/** The parent's descriptor `e` as it crosses to the child's fd `index`; ENOTSUP for what cannot cross. */
export function toPassed(e: FdEntry, index: number, outputFd: (h: Handle) => 1 | 2 | undefined): PassedFd {
  const rights = { base: e.base, inheriting: e.inheriting, fdflags: e.fdflags };
  const h = e.handle;
  if (h instanceof PipeHandle) return { kind: 'pipe', sab: h.sab, side: h.side, ...rights };
  const out = outputFd(h);
  if (out !== undefined) return { kind: 'output', fd: out, ...rights };
  if (h instanceof FileHandle) {
    if (e.base & FILE_WRITE_RIGHTS) {
      fail(ERRNO.NOTSUP, `Cannot pass the descriptor for the child's fd ${index}: a file that may be written cannot cross to a child; limit it to read rights first (cap_rights_limit)`);
    }
    const size = h.io.size();
    const bytes = new Uint8Array(size);
    h.io.pread(bytes, 0);
    return { kind: 'file', bytes, offset: h.offset, ...rights };
  }
  return fail(ERRNO.NOTSUP, `Cannot pass the descriptor for the child's fd ${index}: only pipes, stdout/stderr and read-only files cross to a child`);
}

/** The child's fd entries from what its parent passed; `sink` makes its stdout/stderr. */
export function passedEntries(passed: PassedFd[], pid: number, waker: Waker, sink: (fd: 1 | 2) => OutputSink, filesBytes: number,
  outputs: WeakMap<Handle, 1 | 2>): FdEntry[] {
  return passed.map((p) => {
    const rights = { base: p.base, inheriting: p.inheriting, fdflags: p.fdflags };
    if (p.kind === 'pipe') return { handle: new PipeHandle(p.sab, p.side, pid, waker), ...rights };
    if (p.kind === 'output') {
      const handle = new OutputHandle(sink(p.fd));
      outputs.set(handle, p.fd);
      return { handle, ...rights };
    }
    const root = createMemFs({ maxBytes: Math.max(filesBytes, p.bytes.length) });
    seedMemDir(root, { f: p.bytes });
    const io = (root.lookup('f') as MemFile).open({ read: true, write: false, truncate: false, append: false });
    const handle = new FileHandle(io, false);
    handle.offset = p.offset;
    return { handle, ...rights };
  });
}

/** The Spawner of one run on this worker: it posts to the pool and waits in the process cell. */
export function workerSpawner(post: (m: FromWorker) => void, id: number, childMemoryBytes: number, tableElements: number,
  waker: Waker, outputFd: (h: Handle) => 1 | 2 | undefined): Spawner {
  // When the pool refuses a child for lack of room, asking again before anything in the tree has
  // changed (a child ending wakes the tree) would only load the host thread: refuse here instead.
  let fullAtSeq: number | undefined;
  return {
    spawn(req: SpawnRequest): Int32Array {
      if (fullAtSeq !== undefined && fullAtSeq === waker.seq) fail(ERRNO.AGAIN, 'the run has as many children as it may have');
      const fds = req.fds.map((e, i) => toPassed(e, i, outputFd));
      let module: WebAssembly.Module;
      let imports: CachedModule['imports'];
      try {
        const added = modules.add(req.module(), { memoryBytes: childMemoryBytes, tableElements });
        module = compiledModule(added);
        imports = added.imports;
      } catch (e) {
        if (e instanceof ModuleLimitError && e.code === 'memory_limit') return fail(ERRNO.NOMEM, `Cannot start the child: ${e.message}`);
        return fail(ERRNO.NOEXEC, `Cannot start the child: ${(e as Error).message}`);
      }
      // A child has no bridge: it may import only what capsa provides in the worker.
      const unknown = unknownImports(imports).filter((n) => !n.startsWith('capsicum.') && !n.startsWith('wasi_snapshot_preview1.') && !n.startsWith('argdata.'));
      const casper = imports.some((i) => i.module === 'casper');
      if (unknown.length || casper) fail(ERRNO.NOEXEC, `Cannot start the child: it imports ${casper ? 'casper' : unknown.join(', ')}, which a child cannot have`);
      const cell = createProcessCell();
      const seq = waker.seq;
      post({ type: 'spawn', id, cell, module, argv: req.argv, fds });
      // The pool answers at once (a pid, or an errno); the run's own limits end a wait that never ends.
      while (Atomics.load(cell, PROC_STATE) === PROC_STARTING) Atomics.wait(cell, PROC_STATE, PROC_STARTING);
      if (Atomics.load(cell, PROC_STATE) === -ERRNO.AGAIN) fullAtSeq = seq;
      return cell;
    },
    kill(pid: number, sig: number): void {
      post({ type: 'kill', id, pid, sig });
    },
  };
}
