import os from 'node:os';
import { bridgeDispatcher, functionHandler, functionList, type HostFunctions } from './functions.js';
import type { ExecutorInfo, ExecutorMount, ExecutorPool, ExecutorPoolOptions } from './executor/executor-pool.js';
import { processRunner, threadRunner, type Runner } from './runner.js';

export type { ExecutorInfo, ExecutorMount };
import { Broker } from '../casper/broker.js';
import { IN_WORKER_SERVICES, SERVICES } from '../casper/services/index.js';
import { casperHandler } from './casper-handler.js';
import { CASPER_MAX_MESSAGE_BYTES } from './casper-wire.js';
import { fileProblems } from './files.js';
import { unknownImports, unknownImportsMessage } from './imports.js';
import { DEFAULT_LIMITS, DEFAULT_MAX_LIMITS, resolveLimits, type Limits } from './limits.js';
import { ModuleCache, moduleId, type CachedModule } from './module-cache.js';
import type { JobEnd } from './pool.js';
import type { GuestPool } from './job-queue.js';
import { toRunOutput, type AuditEvent, type RunOutput, type RunResult } from './result.js';
import { withSourceLines } from './trap.js';
import { exportSignature, ModuleLimitError, type ModuleCaps } from './wasm-limits.js';
import { formatBytes } from './units.js';
import type { DirGrant, GuestSpec } from './worker/protocol.js';
import type { ArgNode, SocketGrant } from './grants.js';
import { DEFAULT_NET_LIMITS, type NetLimits } from './limits.js';
import { NetOwner, type NetAuditEntry, type RunSockets } from './net/owner.js';
import { RemoteNet, type ExecutorSockets } from './net/remote.js';
import { NetMemory } from './net/layout.js';

/** Options of createHost. */
export interface HostOptions {
  /**
   * Guests running at once (default: one per core): worker threads of this process, or, under
   * process isolation, worker threads shared out among the executors (as `capsa serve --workers`).
   */
  workers?: number;
  /** Runs that may wait for a worker before run() rejects with QueueFullError (default 1000). */
  maxQueue?: number;
  /** Limits a run gets by default, and the most it may ask for. */
  limits?: { defaults?: Partial<Limits>; max?: Partial<Limits> };
  /**
   * Bytes of modules (originals plus compiled copies) to keep compiled (default 256 MiB). 0 keeps
   * none: every run compiles its module and no module is hashed unless its id is needed (the CLI).
   */
  cacheBytes?: number;
  /** The largest module accepted, in bytes (default 64 MiB). */
  maxModuleBytes?: number;
  /** Most audit events kept per run; the rest are counted as dropped (default 1000). */
  auditMax?: number;
  /** Host functions every run's guest may import (a run's own `functions` add to these). */
  functions?: HostFunctions;
  /** The operator's configuration of Casper services, by name (DNS servers, the passwd database…). */
  casperConfig?: Record<string, unknown>;
  /**
   * Whether the Casper services that need no host authority (random, sysctl, pwd, grp) answer
   * inside the guest's worker (default true: a call costs microseconds instead of a round trip to
   * this thread). false sends every request to the broker on this thread, as before.
   */
  casperInWorker?: boolean;
  /**
   * For a process that runs one guest (the CLI): hold guests' memories at limits.memoryBytes with
   * V8's process-wide page limit instead of rewriting each module's memory maximum, which copies
   * the module (21 MB for flite, whose fresh pages cost as much as reading the file). The limit
   * is set once, by the first module compiled, and holds every WebAssembly memory of the process;
   * a module with another cap is rewritten as usual. Ignored under process isolation.
   */
  memoryCapByEngine?: boolean;
  /**
   * Where guests run: 'thread' (default) on worker threads of this process, the fastest; 'process'
   * in executor processes under bubblewrap and the runtime's permission model (docs/security.md),
   * which never see this process's memory, files, environment or network.
   */
  isolation?: 'thread' | 'process';
  /** Child guests (capsicum.pdspawn): how many a run may have alive at once (default 8), and how many generations (default 4). */
  processes?: { maxChildren?: number; maxDepth?: number };
  /** Executor settings when isolation is 'process' (count: default one per worker, at most `workers`). */
  executors?: Omit<ExecutorPoolOptions, 'workers' | 'maxQueue' | 'cacheBytes'>;
}

/** One run. */
export interface RunRequest {
  /** The module's bytes, or the id ("sha256:…") of a module given to add(). */
  module: Uint8Array | string;
  /** For a module given by id: where its bytes come from if the cache no longer holds it. */
  moduleLoader?: () => Uint8Array | undefined;
  args?: string[];
  env?: Record<string, string>;
  stdin?: string | Uint8Array;
  /** In-memory files by guest path, e.g. { '/data/in.txt': 'hello' }; returned after the run. */
  files?: Record<string, string | Uint8Array>;
  /** Directories: host mounts (trusted callers only: they expose the host's filesystem) or in-memory ones. */
  dirs?: DirGrant[];
  /** A CloudABI argdata tree for the guest (see docs/manifest.md); usually from a manifest. */
  argdata?: ArgNode;
  /** Narrowed rights of fds 0-2 (pledge's stdio). */
  stdioRights?: bigint;
  /**
   * Sockets the guest starts with (`--listen`, a manifest's `!socket` descriptors): bound or
   * connected by the host before the guest starts, installed after the preopened directories.
   * Trusted callers only, as host `dirs` are: the addresses are not checked here (the manifest
   * policy checks them). Argdata `socket` nodes are opened the same way.
   */
  sockets?: SocketGrant[];
  /** Told the addresses the run listens on, as bound (a port 0 becomes the real port), before the guest starts. */
  onListening?: (addresses: string[]) => void;
  /** Limits of the run's sockets (default DEFAULT_NET_LIMITS). */
  net?: Partial<NetLimits>;
  /** Casper services the guest may open, each with its widest limits (a manifest's `casper`). */
  casper?: Record<string, Record<string, unknown>>;
  limits?: Partial<Limits>;
  /** Record capability decisions: none, the denied ones, or all. */
  audit?: 'off' | 'denied' | 'all';
  signal?: AbortSignal;
  /** Host functions this run's guest may import, on top of the host's. */
  functions?: HostFunctions;
  /** argv[0] the guest sees (default "main.wasm"). */
  argv0?: string;
  /** Give stdio the terminal filetype (isatty). */
  tty?: boolean;
  /** Read stdin from this host fd, blocking the guest's thread (the CLI); instead of `stdin`. */
  stdinFd?: number;
  /** Write output straight to host fds instead of collecting it (the CLI). */
  stdoutFd?: number;
  stderrFd?: number;
  /**
   * Call this export instead of _start (wasmtime's --invoke): `args` are converted by the
   * function's parameter types (decimal or 0x hex integers, floats); what it returns is in
   * `result.returned`. A reactor's _initialize runs first.
   */
  invoke?: { name: string; args?: string[] };
}

/** Events of a streamed run, in order; `result` is always last. */
export type RunEvent =
  | { type: 'stdout'; data: Uint8Array }
  | { type: 'stderr'; data: Uint8Array }
  | { type: 'audit'; event: AuditEvent }
  | { type: 'result'; result: RunOutput };

/** A run in progress: iterate it for events, or await `result`. */
export interface RunHandle extends AsyncIterable<RunEvent> {
  result: Promise<RunOutput>;
}

/** The engine: runs untrusted guests in a worker pool, under limits that always end a run. */
export interface Host {
  /**
   * Runs a guest to the end. Rejects only for a bad request (LimitError, TypeError) or a full queue.
   *
   * @example
   * ```ts
   * import { createHost } from 'capsa';
   *
   * const host = await createHost();
   * const bytes = new Uint8Array(await (await import('node:fs/promises')).readFile('plugin.wasm'));
   * const result = await host.run({
   *   module: bytes, args: ['x'], stdin: 'input', files: { '/data/in.txt': 'hello' },
   *   limits: { wallMs: 2000, memoryBytes: 64 << 20 },
   *   functions: { env: { greet: async (ctx, ptr, len) => { console.log(await ctx.readString(Number(ptr), Number(len))); return 0; } } },
   * });
   * if (result.status !== 'exited') console.error(result.status, result.blame, result.message);
   * console.log(result.text(), result.text('stderr'), JSON.stringify(result));
   * await host.close();
   * ```
   */
  run(request: RunRequest): Promise<RunOutput>;
  /** Runs a guest and streams its output and audit events. */
  start(request: RunRequest): RunHandle;
  /** Whether a module of this id is compiled and kept (run it by id then). */
  has(id: string): boolean;
  /** Compiles and keeps a module; returns its id. Throws ModuleLimitError for an invalid module (imports are checked per run). */
  add(module: Uint8Array): string;
  /** Pool and cache counts. */
  stats(): { workers: number; busy: number; queued: number; spawned: number; cachedModules: number; cacheBytes: number };
  /** Where guests run. */
  readonly isolation: 'thread' | 'process';
  /** The executor processes and the layers each runs under (empty with thread isolation). */
  executors(): ExecutorInfo[];
  /**
   * Sets the host directories runs may mount. Under process isolation every executor is replaced
   * (its grants are fixed when it starts): new runs go to new executors, old ones finish theirs and
   * exit. Resolves when the new executors are ready. Threads reach the whole host: nothing to do.
   */
  setMounts(mounts: ExecutorMount[]): Promise<void>;
  /** Stops every run and worker. */
  close(): Promise<void>;
  /** The worker pool (Pool) or the executor pool (ExecutorPool), for tests and metrics. */
  readonly pool: GuestPool;
}

const EMPTY = new Uint8Array(0);

function mergeFunctions(a: HostFunctions | undefined, b: HostFunctions | undefined): HostFunctions {
  const out: HostFunctions = {};
  for (const src of [a, b]) for (const [m, t] of Object.entries(src ?? {})) out[m] = { ...out[m], ...t };
  return out;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) { out.set(c, off); off += c.length; }
  return out;
}

/** The plain-data spec a worker runs. */
function specOf(req: RunRequest, limits: Limits, used: { module: string; name: string }[], streaming: boolean, auditMax: number): GuestSpec {
  return {
    args: [req.argv0 ?? 'main.wasm', ...(req.args ?? [])],
    env: req.env ?? {},
    stdin: req.stdinFd ?? (typeof req.stdin === 'string' ? new TextEncoder().encode(req.stdin) : req.stdin),
    files: req.files ?? {},
    dirs: req.dirs ?? [],
    ...(req.argdata ? { argdata: req.argdata } : {}),
    ...(req.stdioRights !== undefined ? { stdioRights: req.stdioRights } : {}),
    limits,
    audit: req.audit ?? 'off',
    auditMax,
    functions: used,
    tty: req.tty ?? false,
    stream: streaming,
    ...(req.stdoutFd !== undefined ? { stdoutFd: req.stdoutFd } : {}),
    ...(req.stderrFd !== undefined ? { stderrFd: req.stderrFd } : {}),
  };
}

/** Adds the statuses of the run's child guests, if it had any. */
function withChildren(r: RunResult, end: JobEnd): RunResult {
  if (end.children?.length) r.children = end.children;
  if (end.childrenDropped) r.childrenDropped = end.childrenDropped;
  return r;
}
/** Socket nodes in an argdata tree. */
function countSocketNodes(n: ArgNode | undefined): number {
  if (!n) return 0;
  if (n.type === 'socket') return 1;
  if (n.type === 'seq') return n.items.reduce((c, i) => c + countSocketNodes(i), 0);
  if (n.type === 'map') return n.entries.reduce((c, [k, v]) => c + countSocketNodes(k) + countSocketNodes(v), 0);
  return 0;
}

/** A run's result from how the pool ended it. */
function resultOf(end: JobEnd, base: Pick<RunResult, 'stdout' | 'stderr' | 'audit' | 'warnings'>, req: RunRequest, hostCpuMs: number): RunResult {
  if (end.kind === 'stopped' && (end.reason === 'module_heap' || end.reason === 'invalid_module')) {
    return { ...base, status: end.reason === 'module_heap' ? 'memory_limit' : 'invalid_module', blame: 'guest', message: end.message, files: {}, usage: { wallMs: end.wallMs, cpuMs: end.cpuMs, peakMemoryBytes: 0 } };
  }
  if (end.kind === 'stopped') {
    const usage = { wallMs: end.wallMs, cpuMs: end.cpuMs, peakMemoryBytes: 0 };
    const status = end.reason === 'crashed' ? 'host_error' : end.reason === 'cancelled' ? 'cancelled' : 'timeout';
    // A cancelled run was ended by its caller (or the host closing), never by the guest.
    const r: RunResult = { ...base, status, blame: end.reason === 'crashed' || end.reason === 'cancelled' ? 'host' : 'guest', message: end.message, files: {}, usage };
    if (status === 'timeout') r.timeout = end.reason as 'wall' | 'cpu';
    return withChildren(r, end);
  }
  const o = end.outcome;
  // Children's CPU counts in the run's usage, as it counted against its limit.
  const childrenCpuMs = (end.children ?? []).reduce((ms, c) => ms + c.usage.cpuMs, 0);
  const r: RunResult = {
    ...base, status: o.status, blame: o.status === 'host_error' ? 'host' : 'guest', files: o.files,
    usage: { wallMs: end.wallMs, cpuMs: o.cpuNs / 1e6 + hostCpuMs + childrenCpuMs, peakMemoryBytes: o.peakMemoryBytes },
  };
  withChildren(r, end);
  r.audit.dropped = o.auditDropped;
  if (o.exitCode !== undefined) r.exitCode = o.exitCode;
  if (o.trap) r.trap = o.trap;
  if (o.returned) r.returned = o.returned;
  if (o.message !== undefined) r.message = o.message;
  return r;
}

/**
 * What keeps a module from running as asked, or the invoke spec for the worker: a command needs
 * _start, --invoke an exported function by that name; both need the exported memory WASI writes into.
 */
function entryProblem(exports: CachedModule['exports'], invoke: RunRequest['invoke'], bytes: () => Uint8Array): string | undefined | GuestSpec['invoke'] {
  const functions = exports.filter((e) => e.kind === 'function').map((e) => e.name);
  const list = functions.length ? `its exported functions: ${functions.slice(0, 10).join(', ')}${functions.length > 10 ? ', …' : ''}` : 'it exports no functions';
  const memoryProblem = () => exports.some((e) => e.kind === 'memory' && e.name === 'memory') ? undefined
    : 'it exports no memory named "memory", which WASI reads and writes the guest\'s buffers in (link it with --export-memory, the default of wasi-sdk)';
  if (invoke === undefined) {
    if (functions.includes('_start')) return memoryProblem();
    return `it exports no _start function, so it is not a WASI command${functions.includes('_initialize') ? ' (it is a reactor: it exports _initialize)' : ''}; ${list}; call one with invoke (capsa run --invoke NAME MODULE ARGS)`;
  }
  if (!functions.includes(invoke.name)) return `it exports no function named ${JSON.stringify(invoke.name)} to invoke; ${list}`;
  const sig = exportSignature(bytes(), invoke.name);
  if (!sig) return `cannot read the signature of ${invoke.name}`;
  const args = invoke.args ?? [];
  if (args.length !== sig.params.length) return `${invoke.name} takes ${sig.params.length} argument${sig.params.length === 1 ? '' : 's'} (${sig.params.join(', ') || 'none'}), not ${args.length}`;
  for (const [i, t] of sig.params.entries()) {
    if (t !== 'i32' && t !== 'i64' && t !== 'f32' && t !== 'f64') return `${invoke.name}'s parameter ${i} is a ${t}, which cannot be given on a command line`;
    const a = args[i]!;
    const ok = t.startsWith('i') ? /^-?(\d+|0x[\da-f]+)$/i.test(a) : a.trim() !== '' && !Number.isNaN(Number(a));
    if (!ok) return `${invoke.name}'s parameter ${i} is an ${t}; ${JSON.stringify(a)} is not one`;
  }
  const mp = memoryProblem();
  if (mp) return mp;
  return { name: invoke.name, args, params: sig.params as ('i32' | 'i64' | 'f32' | 'f64')[] };
}

/** The threads or executor processes of a new host. */
function runnerOf(options: HostOptions): Runner {
  const maxQueue = options.maxQueue ? { maxQueue: options.maxQueue } : {};
  if (options.isolation === 'process') {
    const guestMemoryMb = Math.ceil((options.limits?.max?.memoryBytes ?? DEFAULT_MAX_LIMITS.memoryBytes) / (1 << 20));
    // `workers` is the guests at once, however many processes hold them: shared out among executors.
    const workers = options.workers ?? Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
    const count = Math.min(workers, options.executors?.count ?? workers);
    return processRunner({ guestMemoryMb, ...options.executors, ...maxQueue, count, workers: Math.ceil(workers / count), ...(options.cacheBytes ? { cacheBytes: options.cacheBytes } : {}) });
  }
  return threadRunner({ ...(options.workers ? { size: options.workers } : {}), ...maxQueue, ...options.processes });
}

/**
 * Creates a host with a pre-warmed worker pool.
 *
 * @example
 * ```ts
 * import { createHost } from 'capsa';
 * import fs from 'node:fs';
 *
 * const host = await createHost({ workers: 2, limits: { defaults: { wallMs: 5000 } } });
 * const result = await host.run({ module: fs.readFileSync('guests/build/hello.wasm'), args: ['world'] });
 * console.log(result.status, result.exitCode, result.text()); // exited 0 "hello world\n"
 * await host.close();
 * ```
 */
export async function createHost(options: HostOptions = {}): Promise<Host> {
  const defaults = { ...DEFAULT_LIMITS, ...options.limits?.defaults };
  const max = { ...DEFAULT_MAX_LIMITS, ...options.limits?.max };
  // Under process isolation the executors compile: this process only caps and reads modules, so
  // untrusted bytes never reach its V8 compiler.
  const cache = new ModuleCache({ maxBytes: options.cacheBytes ?? 256 << 20, compile: options.isolation !== 'process' });
  const runner = runnerOf(options);
  await runner.start();
  const auditMax = options.auditMax ?? 1000;
  const maxModuleBytes = options.maxModuleBytes ?? 64 << 20;

  // Executors run many guests each: only guests on this process's threads may lean on its engine.
  const engineMemory = options.memoryCapByEngine === true && (options.isolation ?? 'thread') === 'thread';
  const caps = (l: Limits): ModuleCaps => ({ memoryBytes: l.memoryBytes, tableElements: l.tableElements, ...(engineMemory ? { memoryByEngine: true } : {}) });

  /** Finds or compiles the module, or says why it cannot run. */
  const load = (req: RunRequest, limits: Limits): CachedModule | { status: 'invalid_module' | 'memory_limit'; message: string } => {
    try {
      let bytes: Uint8Array;
      if (typeof req.module === 'string') {
        const m = cache.get(req.module, caps(limits));
        if (m) return m;
        // Evicted, or never added here: the caller's loader brings the bytes back (the service's store).
        const loaded = req.moduleLoader?.();
        if (!loaded) return { status: 'invalid_module', message: `Cannot run ${req.module}: no module with that id was added (add it first, or send its bytes)` };
        bytes = loaded;
      } else {
        bytes = req.module;
      }
      if (bytes.length > maxModuleBytes) {
        return { status: 'invalid_module', message: `Cannot run the module: it is ${formatBytes(bytes.length)}, above the ${formatBytes(maxModuleBytes)} limit` };
      }
      const m = cache.add(bytes, caps(limits));
      if (typeof req.module === 'string' && m.id !== req.module) return { status: 'invalid_module', message: `Cannot run ${req.module}: the loaded bytes are ${m.id}` };
      return m;
    } catch (e) {
      // Tables above the limit make the module unrunnable as declared (invalid_module); a memory
      // whose minimum is above memoryBytes keeps the status that names the memory limit.
      if (e instanceof ModuleLimitError && e.code === 'memory_limit') return { status: 'memory_limit', message: e.message };
      return { status: 'invalid_module', message: (e as Error).message };
    }
  };

  const empty = (status: RunResult['status'], blame: RunResult['blame'], message: string): RunResult => ({
    status, blame, message, stdout: EMPTY, stderr: EMPTY, files: {}, usage: { wallMs: 0, cpuMs: 0, peakMemoryBytes: 0 }, audit: { events: [], dropped: 0 },
  });

  /** The bridge handlers of a run whose guest imports host functions or Casper: what crosses, and who answers. */
  const bridgeOf = (req: RunRequest, limits: Limits, imports: CachedModule['imports'], fns: HostFunctions, warn: (what: string, e: unknown) => void, charge: (ms: number) => void,
    owner: RunSockets | undefined, netAudit: (e: NetAuditEntry) => void) => {
    const fnList = functionList(fns);
    // Only the functions the module imports cross to the worker.
    const imported = new Set(imports.map((i) => `${i.module}.${i.name}`));
    const used = fnList.filter((f) => imported.has(`${f.module}.${f.name}`));
    const wantsCasper = [...imported].some((n) => n.startsWith('casper.'));
    if (!used.length && !wantsCasper) return { used, serve: undefined };
    // Host functions and Casper services run in the engine's process (the broker is capsa's casperd).
    const serve = bridgeDispatcher({
      function: functionHandler(fns, used, (what, e) => warn(`host function ${what}`, e)),
      ...(wantsCasper ? {
        casper: casperHandler(new Broker({
          grants: req.casper ?? {}, services: SERVICES, config: options.casperConfig ?? {},
          onServiceError: (service, e) => warn(`Casper service ${service}`, e),
          // Every channel is a descriptor of the guest: it can never hold more than its fds.
          maxChannels: limits.fds,
          // system.net's connections are the run's sockets, under its net limits.
          ...(owner ? {
            sockets: {
              connect: (to) => owner.connect({ kind: 'tcp', ...to }),
              listen: (at) => owner.listen({ kind: 'tcp', ...at }),
              release: (slot) => owner.release(slot),
            },
          } : {}),
          audit: netAudit,
        }), { maxMessageBytes: CASPER_MAX_MESSAGE_BYTES, charge, onServiceError: (service, e) => warn(`Casper service ${service}`, e) }),
      } : {}),
    });
    return { used, serve };
  };

  /** The operator's configuration of the in-worker services the run may open, for its worker. */
  const inWorkerConfig = (req: RunRequest): Record<string, unknown> => {
    const config: Record<string, unknown> = {};
    for (const name of Object.keys(req.casper ?? {})) {
      if (Object.hasOwn(IN_WORKER_SERVICES, name) && options.casperConfig?.[name] !== undefined) config[name] = options.casperConfig[name];
    }
    return config;
  };

  /** A module's bytes for an executor that lacks them: from the cache, else the request (evicted meanwhile). */
  const originalBytes = (req: RunRequest, id: string): Uint8Array =>
    cache.original(id) ?? (typeof req.module === 'string' ? req.moduleLoader?.() : req.module) ?? new Uint8Array(0);

  /** Loads, checks and runs one request to its result (never rejects for a guest's fault). */
  const runToEnd = async (req: RunRequest, limits: Limits, streaming: boolean, emit: (e: RunEvent) => void): Promise<RunResult> => {
    const loaded = load(req, limits);
    if (!('module' in loaded)) return empty(loaded.status, 'guest', loaded.message);
    const fns = mergeFunctions(options.functions, req.functions);
    const unknown = unknownImports(loaded.imports, functionList(fns));
    if (unknown.length) return empty('invalid_module', 'guest', unknownImportsMessage(loaded.id, unknown));
    const entry = entryProblem(loaded.exports, req.invoke, () => originalBytes(req, loaded.id));
    if (typeof entry === 'string') return empty('invalid_module', 'guest', `Cannot run ${loaded.id}: ${entry}`);
    const warnings: string[] = [];
    const warn = (what: string, e: unknown) => {
      if (warnings.length < 100) warnings.push(`${what} failed: ${(e as Error)?.message ?? String(e)}`);
    };
    const out: Record<1 | 2, Uint8Array[]> = { 1: [], 2: [] };
    const audit: AuditEvent[] = [];
    const t0 = performance.now();
    const netAudit = (e: NetAuditEntry): void => {
      if ((req.audit ?? 'off') === 'off' || audit.length >= auditMax) return;
      const event: AuditEvent = {
        seq: audit.length, t: Math.round((performance.now() - t0) * 1000) / 1000, call: e.call, fd: -1, path: e.address,
        rightsNeeded: [], rightsHeld: [], decision: e.errno === 0 ? 'allowed' : 'denied', errno: e.errno, message: e.message,
      };
      audit.push(event);
      emit({ type: 'audit', event });
    };
    const casperNet = req.casper?.['system.net'] !== undefined && loaded.imports.some((i) => i.module === 'casper');
    const owner = socketsOf(req, netAudit, casperNet);
    // The host thread's time on the run's Casper requests counts against the run's CPU limit.
    let hostCpuMs = 0;
    const { used, serve } = bridgeOf(req, limits, loaded.imports, fns, warn, (ms) => { hostCpuMs += ms; }, owner, netAudit);
    const spec: GuestSpec = { ...specOf(req, limits, used, streaming, auditMax), ...(entry ? { invoke: entry } : {}) };
    if (options.casperInWorker !== false && loaded.imports.some((i) => i.module === 'casper')) spec.casperInWorker = inWorkerConfig(req);
    let end: JobEnd;
    let sockets: ExecutorSockets | undefined;
    try {
      if (owner instanceof NetOwner) {
        const opened = await owner.open(req.sockets ?? [], req.argdata);
        spec.net = opened.spec;
        // The host thread wakes the guest through the net memory's cell: that is the run's cell.
        spec.waker = new NetMemory(opened.spec.sab).wakerCell();
        if (opened.argdata) spec.argdata = opened.argdata;
      } else if (owner) {
        // Opened here, handed to the executor with the run (it has no network of its own).
        const opened = await owner.open(req.sockets ?? [], req.argdata);
        sockets = opened.sockets;
        if (opened.argdata) spec.argdata = opened.argdata;
      }
      // An executor's listeners are announced once it holds them (the engine's copies then closed).
      if (owner instanceof RemoteNet) void owner.handedOver.then(() => req.onListening?.(owner.addresses));
      else if (owner) req.onListening?.(owner.addresses);
      end = await runner.submit({
        // The id only when an executor asks for it: hashing a large module costs more than running it once.
        module: loaded.module, get moduleId() { return loaded.id; }, bytes: () => originalBytes(req, loaded.id), caps: caps(limits),
        spec, signal: req.signal, serve, onBridgeError: warn, hostCpuMs: () => hostCpuMs, ...(sockets ? { sockets } : {}),
        onOutput(fd, data) {
          out[fd].push(data);
          emit(fd === 1 ? { type: 'stdout', data } : { type: 'stderr', data });
        },
        onAudit(evs) {
          for (const event of evs) { audit.push(event); emit({ type: 'audit', event }); }
        },
      });
    } finally {
      owner?.close();
    }
    const base = { stdout: concat(out[1]), stderr: concat(out[2]), audit: { events: audit, dropped: 0 }, ...(warnings.length ? { warnings } : {}) };
    const r = resultOf(end, base, req, hostCpuMs);
    // A trap's frames get file:line where the module carries DWARF line information (clang -g).
    if (r.trap?.frames && loaded.debugLines) {
      r.trap.frames = withSourceLines(r.trap.frames, originalBytes(req, loaded.id));
    }
    return r;
  };

  /**
   * The run's sockets, when it has any or may get some from Casper's system.net: served on this
   * thread, or, under process isolation, opened here and handed to the run's executor, which has
   * no network of its own (src/host/net/remote.ts).
   */
  const socketsOf = (req: RunRequest, audit: (e: NetAuditEntry) => void, casperNet: boolean): NetOwner | RemoteNet | undefined => {
    const grants = (req.sockets?.length ?? 0) + countSocketNodes(req.argdata);
    if (grants === 0 && !casperNet) return undefined;
    const l = { ...DEFAULT_NET_LIMITS, ...req.net };
    const options = { connections: l.connections, backlog: l.backlog, maxBytes: l.bytes, maxDatagrams: l.datagrams, audit };
    if (runner.isolation === 'thread') return new NetOwner(grants, options);
    return new RemoteNet(options, (runner.pool as ExecutorPool).options.runtime === 'deno');
  };

  const launch = (req: RunRequest, streaming: boolean): RunHandle => {
    const limits = resolveLimits(req.limits, defaults, max);
    const problems = req.files ? fileProblems(req.files, limits.filesBytes) : [];
    if (problems.length) throw new TypeError(`Cannot seed the files: ${problems.map((p) => p.path ? `${p.path}: ${p.message}` : p.message).join('; ')}`);
    const events: RunEvent[] = [];
    let wake: (() => void) | undefined;
    const emit = (e: RunEvent) => {
      if (!streaming) return;
      events.push(e);
      const w = wake;
      wake = undefined;
      w?.();
    };

    const result = runToEnd(req, limits, streaming, emit).then(toRunOutput);
    if (!streaming) return { result, [Symbol.asyncIterator]: () => { throw new Error('use host.start() to stream a run'); } };
    let finished: RunOutput | undefined;
    let failed: unknown;
    void result.then((r) => { finished = r; }, (e: unknown) => { failed = e ?? new Error('run failed'); })
      .then(() => { const w = wake; wake = undefined; w?.(); });
    const handle: RunHandle = {
      result,
      async *[Symbol.asyncIterator]() {
        for (;;) {
          if (events.length) { yield events.shift()!; continue; }
          if (failed !== undefined) throw failed;
          if (finished) { yield { type: 'result', result: finished }; return; }
          await new Promise<void>((r) => { wake = r; });
        }
      },
    };
    return handle;
  };

  return {
    pool: runner.pool,
    isolation: runner.isolation,
    executors: () => runner.executors(),
    setMounts: (mounts) => runner.setMounts(mounts),
    start: (req) => launch(req, true),
    run: async (req) => launch(req, false).result,
    add(bytes) {
      if (bytes.length > maxModuleBytes) {
        throw new ModuleLimitError('invalid_module', `Cannot add the module: it is ${formatBytes(bytes.length)}, above the ${formatBytes(maxModuleBytes)} limit`);
      }
      return cache.add(bytes, caps(defaults)).id;
    },
    has: (id) => cache.has(id),
    stats: () => ({ ...runner.stats(), cachedModules: cache.size, cacheBytes: cache.bytes }),
    close: () => runner.close(),
  };
}

export { moduleId };
