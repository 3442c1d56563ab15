import { RunTermination, ProcExit } from '../../wasi/errors.js';
import type { Auditor, Decision } from '../../wasi/fdtable.js';
import { createMemFs, MemDir, MemFile, seedMemDir } from '../../wasi/fs/memfs.js';
import { filesToSeed } from '../files.js';
import { capNames } from '../../wasi/rights.js';
import { createWasi, type Preopen, type Wasi } from '../../wasi/wasi.js';
import { writeAll } from '../../wasi/handles.js';
import { Waker } from '../../wasi/wake.js';
import { OutputRingWriter, type PumpedOutput } from '../../wasi/output-pump.js';
import type { AuditEvent } from '../result.js';
import { classifyTrap } from '../trap.js';
import { bridgeClient, functionStubs } from '../functions.js';
import { createCasperImports } from './casper-imports.js';
import { installArgdata, type SocketInstaller } from './argdata-fds.js';
import type { FromWorker, GuestSpec, ProcessInfo, WorkerOutcome } from './protocol.js';
import { passedEntries, workerSpawner } from './spawner.js';
import { discardSlot, NetBudget, NetLimitExceeded, SlotEndpoint } from '../net/endpoint.js';
import { NetMemory } from '../net/layout.js';
import { SocketHandle } from '../../wasi/sockets.js';
import type { Handle } from '../../wasi/handles.js';
import { threadCpuNs } from './thread-cpu.js';

/** Unwinds a guest that wrote past its output limit. */
export class OutputLimitExceeded extends RunTermination {
  constructor(readonly stream: 'stdout' | 'stderr', readonly limit: number) {
    super(`${stream} exceeded its limit of ${limit} bytes`);
  }
}

/** Where a run's output and audit events go while it runs. */
export interface GuestIO {
  output(fd: 1 | 2, chunk: Uint8Array): void;
  audit(event: AuditEvent): void;
  /** The channel to the host thread, when the guest imports host functions. */
  bridge?: SharedArrayBuffer | undefined;
  /** Told when instantiation begins and when the guest's code starts (a heap exhaustion in between is the module's). */
  phase?(phase: 'instantiating' | 'started'): void;
  /** The run's place in its run tree, and the pool to ask for children: without them pdspawn is ENOSYS. */
  proc?: ProcessInfo | undefined;
  post?: ((m: FromWorker) => void) | undefined;
  id?: number | undefined;
}

/** The in-memory directory at a guest path, made on the way if missing. */
function memoryDir(root: MemDir, guest: string): MemDir {
  let d = root;
  for (const part of guest.split('/').filter((p) => p !== '' && p !== '.')) {
    if (part === '..') throw new TypeError(`dirs: guest path ${guest} must not contain ".."`);
    if (!d.lookup(part)) d.mkdir(part);
    const next = d.lookup(part);
    if (!(next instanceof MemDir)) throw new TypeError(`dirs: ${guest} is a file in the seeded files, not a directory`);
    d = next;
  }
  return d;
}

/**
 * The regular files of a tree by guest path, depth first in creation order; symlinks are left out.
 * Iterative (a stack of directory iterators): the depth is the guest's choice.
 */
function collectFiles(root: MemDir): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  const stack: [Iterator<[string, unknown]>, string][] = [[root.entries.entries(), '']];
  while (stack.length > 0) {
    const [it, prefix] = stack[stack.length - 1]!;
    const next = it.next();
    if (next.done) { stack.pop(); continue; }
    const [name, node] = next.value;
    if (node instanceof MemFile) out[`${prefix}/${name}`] = node.data.slice(0, node.length);
    else if (node instanceof MemDir) stack.push([node.entries.entries(), `${prefix}/${name}`]);
  }
  return out;
}

class AuditCollector implements Auditor {
  seq = 0;
  dropped = 0;
  constructor(readonly level: 'denied' | 'all', private readonly max: number, private readonly t0: number, private readonly sink: (e: AuditEvent) => void) {}
  record(d: Decision): void {
    if (this.seq >= this.max) { this.dropped++; return; }
    const e: AuditEvent = {
      seq: this.seq++, t: Math.round((performance.now() - this.t0) * 1000) / 1000, call: d.call, fd: d.fd,
      rightsNeeded: capNames(d.rightsNeeded), rightsHeld: capNames(d.rightsHeld), decision: d.decision, errno: d.errno,
    };
    if (d.path !== undefined) e.path = d.path;
    if (d.message !== undefined) e.message = d.message;
    if (d.opened) { e.openedFd = d.opened.fd; e.rightsRequested = capNames(d.opened.rights); }
    this.sink(e);
  }
}

// One WASI environment per worker, reset for each guest (createWasi's `reuse`).
let previous: Wasi | undefined;

/** Calls the export `invoke` names (wasmtime's --invoke) after the reactor's _initialize; what it returns is kept as text. */
function invokeExport(wasi: Wasi, instance: WebAssembly.Instance, invoke: NonNullable<GuestSpec['invoke']>): Omit<WorkerOutcome, 'cpuNs' | 'files' | 'peakMemoryBytes' | 'auditDropped'> {
  try {
    wasi.initialize(instance);
    const fn = instance.exports[invoke.name] as (...a: unknown[]) => unknown;
    const args = invoke.args.map((a, i) => (invoke.params[i] === 'i64' ? (a.startsWith('-') ? -BigInt(a.slice(1)) : BigInt(a)) : Number(a)));
    const out = fn(...args);
    const returned = (out === undefined ? [] : Array.isArray(out) ? out : [out]).map(String);
    return { status: 'exited', exitCode: 0, returned };
  } finally {
    wasi.context.fds.closeAll();
  }
}

/** Runs one guest to completion on the calling thread and says how it ended. */
export function runGuest(module: WebAssembly.Module, spec: GuestSpec, io: GuestIO): WorkerOutcome {
  const cpu0 = threadCpuNs();
  const t0 = performance.now();
  const outcome = (o: Omit<WorkerOutcome, 'cpuNs' | 'files' | 'peakMemoryBytes' | 'auditDropped'>): WorkerOutcome =>
    ({ files: {}, peakMemoryBytes: 0, auditDropped: 0, cpuNs: 0, ...o });

  const auditor = spec.audit === 'off' ? undefined : new AuditCollector(spec.audit, spec.auditMax, t0, io.audit);
  // Output goes to the host (collected or streamed) or straight to a host fd (the CLI); the cap holds either way.
  const limited = (fd: 1 | 2, stream: 'stdout' | 'stderr', hostFd: number | undefined, pumped: PumpedOutput | undefined) => {
    let total = 0;
    const limit = spec.limits.outputBytes;
    const writer = pumped ? new OutputRingWriter(pumped) : undefined;
    const send = writer ? (c: Uint8Array) => writer.write(c)
      : hostFd === undefined ? (c: Uint8Array) => io.output(fd, c) : (c: Uint8Array) => writeAll(hostFd, c);
    return (chunk: Uint8Array) => {
      if (total + chunk.length > limit) {
        const keep = limit - total;
        if (keep > 0) send(chunk.subarray(0, keep));
        total = limit;
        throw new OutputLimitExceeded(stream, limit);
      }
      total += chunk.length;
      send(chunk);
    };
  };

  let root: MemDir | undefined;
  const preopens: Preopen[] = [];
  try {
    const memoryGrants = spec.dirs.filter((d) => d.host === undefined);
    if (Object.keys(spec.files).length > 0 || memoryGrants.length > 0) {
      root = createMemFs({ maxBytes: spec.limits.filesBytes });
      seedMemDir(root, filesToSeed(spec.files));
    }
    for (const d of spec.dirs) {
      preopens.push(d.host !== undefined ? d : { ...d, memory: memoryDir(root!, d.guest) });
    }
    // Without in-memory grants, each top-level directory of `files` is granted whole; with them,
    // `files` only seeds the granted directories, so nothing beyond the grants is reachable.
    if (root && memoryGrants.length === 0) {
      for (const [name, node] of root.entries) if (node instanceof MemDir) preopens.push({ guest: `/${name}`, memory: node });
    }
  } catch (e) {
    return outcome({ status: 'host_error', message: (e as Error).message });
  }

  const proc = io.proc;
  // Sockets live on the host thread; the guest reaches them through the run's net memory. The
  // guest sleeps on one cell whatever wakes it: its run tree's (pipes, children), which the pool
  // makes the run's own cell (spec.waker) when the host thread wakes it (stdin, sockets).
  const net = spec.net ? new NetMemory(spec.net.sab) : undefined;
  const cell = proc?.waker ?? spec.waker;
  const waker = cell ? new Waker(cell) : undefined;
  // Which handles are the run's stdout and stderr: they may be passed to a child.
  const outputs = new WeakMap<Handle, 1 | 2>();
  const spawner = proc && io.post && io.id !== undefined
    ? workerSpawner(io.post, io.id, proc.childMemoryBytes, spec.limits.tableElements, waker!, (h) => outputs.get(h))
    : undefined;
  const stdout = limited(1, 'stdout', spec.stdoutFd, spec.stdoutPump);
  const stderr = limited(2, 'stderr', spec.stderrFd, spec.stderrPump);
  const passed = spec.passed;
  const wasi = createWasi({
    ...(waker ? { waker } : {}), ...(spawner ? { spawner } : {}), ...(proc ? { pid: proc.pid } : {}),
    ...(passed ? { descriptors: (w: Waker) => passedEntries(passed, proc?.pid ?? 1, w, (fd) => (fd === 1 ? stdout : stderr), spec.limits.filesBytes, outputs) } : {}),
    args: spec.args, env: spec.env, preopens, tty: spec.tty,
    ...(spec.stdioRights !== undefined ? { stdioRights: spec.stdioRights } : {}),
    stdin: spec.stdin,
    stdout,
    stderr,
    maxFds: spec.limits.fds,
    memFs: { maxBytes: spec.limits.filesBytes },
    ...(auditor ? { auditor } : {}),
  }, previous);
  previous = wasi;
  if (!passed) {
    for (const fd of [1, 2] as const) {
      const h = wasi.context.fds.peek(fd)?.handle;
      if (h) outputs.set(h, fd);
    }
  }

  let sockets: SocketInstaller | undefined;
  if (net && spec.net) {
    const budget = new NetBudget(spec.net.maxBytes, spec.net.maxDatagrams);
    const fds = wasi.context.fds;
    sockets = (slot, base, inheriting) => fds.insert({
      handle: new SocketHandle(new SlotEndpoint(net, net.slots[slot]!, budget), wasi.context.waker), base, inheriting, fdflags: 0,
    });
    try {
      for (const s of spec.net.preopened) sockets(s.slot, s.base, s.inheriting);
    } catch (e) {
      wasi.context.fds.closeAll();
      return outcome({ status: 'host_error', message: (e as Error).message });
    }
  }

  if (spec.argdata) {
    try {
      installArgdata(wasi.context, spec.argdata, sockets);
    } catch (e) {
      wasi.context.fds.closeAll();
      return outcome({ status: 'host_error', message: (e as Error).message });
    }
  }

  let memory: WebAssembly.Memory | undefined;
  let result: Omit<WorkerOutcome, 'cpuNs' | 'files' | 'peakMemoryBytes' | 'auditDropped'>;
  // Host functions and Casper share the run's bridge. A hung call is ended by the run's
  // wall-clock limit, which terminates this worker.
  const client = io.bridge ? bridgeClient(io.bridge, () => memory, spec.limits.wallMs + 1000) : undefined;
  const functions = client && spec.functions.length ? functionStubs(spec.functions, client) : {};
  const casper = client ? {
    // Refused calls are recorded at level "denied", every call at level "all".
    casper: createCasperImports(wasi.context, client, (d) => (d.errno === 0 && auditor?.level !== 'all') || auditor?.record({
      call: `${d.service}.${d.cmd}`, fd: d.fd, path: d.service, rightsNeeded: 0n, rightsHeld: 0n,
      decision: d.errno === 0 ? 'allowed' : 'denied', errno: d.errno,
    }), sockets && net ? { install: sockets, discard: (slot) => discardSlot(net, slot) } : undefined, spec.casperInWorker),
  } : {};
  try {
    io.phase?.('instantiating');
    const instance = new WebAssembly.Instance(module, { ...functions, ...casper, ...wasi.getImportObject() });
    io.phase?.('started');
    const m = instance.exports['memory'];
    if (m instanceof WebAssembly.Memory) memory = m;
    result = spec.invoke ? invokeExport(wasi, instance, spec.invoke) : { status: 'exited', exitCode: wasi.start(instance) };
  } catch (e) {
    if (e instanceof OutputLimitExceeded || e instanceof NetLimitExceeded) {
      result = { status: 'output_limit', message: e.message };
    } else if (e instanceof ProcExit) {
      result = { status: 'exited', exitCode: e.code };
    } else {
      const trap = classifyTrap(e);
      result = trap
        ? { status: 'trapped', trap, message: `the guest trapped: ${trap.message}` }
        : { status: 'host_error', message: `the guest could not be started: ${(e as Error)?.message ?? String(e)}` };
    }
  }
  const peak = memory?.buffer.byteLength ?? 0;
  // memory.grow failures are invisible to the host; a guest that failed with its memory grown to
  // within 1/8 of the cap most likely ran out of it, so the status says so (the exit code stays).
  if ((result.status === 'trapped' || (result.status === 'exited' && result.exitCode !== 0))
    && peak > spec.limits.memoryBytes - spec.limits.memoryBytes / 8) {
    result = { ...result, status: 'memory_limit', message: `the guest failed after growing its memory to ${peak} of the ${spec.limits.memoryBytes} bytes it may have` };
  }
  const files = root ? collectFiles(root) : {};
  return { ...result, files, peakMemoryBytes: peak, cpuNs: Number(threadCpuNs() - cpu0), auditDropped: auditor?.dropped ?? 0 };
}
