import { FILETYPE } from './constants.js';
import { ProcExit } from './errors.js';
import { WasiContext, typeRights } from './context.js';
import type { Auditor, FdEntry } from './fdtable.js';
import type { Spawner } from './procdesc.js';
import type { Waker } from './wake.js';
import { createHostMount } from './fs/hostfs.js';
import { createMemFs, seedMemDir, type MemFsOptions, type MemSeed } from './fs/memfs.js';
import type { FsDir } from './fs/types.js';
import { DirHandle, InputHandle, OutputHandle, type InputSource, type OutputSink } from './handles.js';
import { createArgdataImports } from './argdata.js';
import { createCapsicumImports } from './capsicum.js';
import { createPreview1, type HostErrorHandler } from './preview1.js';
import { READ_ONLY_MASK, R, RIGHTS_ALL } from './rights.js';

/** A directory the guest starts with, at a guest path. */
export interface Preopen {
  /** Where the guest sees it, e.g. "/data". */
  guest: string;
  /** A host directory to mount. */
  host?: string;
  /** An in-memory tree, optionally seeded; or a tree shared with the caller. */
  memory?: MemSeed | FsDir | true;
  /** Drop every right that writes or changes the namespace. */
  readonly?: boolean;
  /** Narrow the rights further: the fd gets the defaults ∩ these. */
  rights?: { base: bigint; inheriting: bigint };
  /** Revoke this grant when the guest calls cap_enter(). */
  initOnly?: boolean;
}

/** Options of createWasi, shaped like node:wasi's. */
export interface WasiOptions {
  /** node:wasi's `version`: capsa speaks 'preview1' only (the default here). */
  version?: 'preview1' | 'unstable';
  args?: readonly string[];
  /** node:wasi takes `process.env` as it is: variables without a value are left out. */
  env?: Readonly<Record<string, string | undefined>>;
  /** node:wasi's `{ guestPath: hostPath }`, or a list of Preopen for the full vocabulary. */
  preopens?: Readonly<Record<string, string>> | readonly Preopen[];
  /** When false, a guest's proc_exit ends this process with its code, as node:wasi does (default true: start() returns it). */
  returnOnExit?: boolean;
  /** Default: this process's fd 0, as node:wasi (an explicit undefined: no input). */
  stdin?: InputSource;
  /** Default: this process's fd 1, as node:wasi (an explicit undefined: discarded). */
  stdout?: OutputSink;
  /** Default: this process's fd 2, as node:wasi (an explicit undefined: discarded). */
  stderr?: OutputSink;
  /** Whether stdio should look like a terminal to the guest (isatty). */
  tty?: boolean;
  /** Narrow the rights of fds 0-2 to these (a manifest's pledge: [stdio, …]). */
  stdioRights?: bigint;
  /** Open descriptors the guest may hold at once (default 1024). */
  maxFds?: number;
  /** Quotas of in-memory preopens. */
  memFs?: MemFsOptions;
  auditor?: Auditor;
  onHostError?: HostErrorHandler;
  /** Sleep on this Waker (a cell shared with the other guests of a run tree) instead of the context's own. */
  waker?: Waker;
  /** Starts child guests for capsicum.pdspawn (the host's); without one pdspawn is ENOSYS. */
  spawner?: Spawner;
  /** The guest's pid (marks the pipe ends it holds; default 1). */
  pid?: number;
  /**
   * Start with exactly these descriptors as fds 0…n-1 (a child guest's, passed by its parent):
   * no stdio and no preopens are made. Built with `waker` when they are pipes.
   */
  descriptors?: (waker: Waker) => FdEntry[];
}

/** What createWasi returns: node:wasi's shape plus the capsicum module and the context. */
export interface Wasi {
  readonly wasiImport: Record<string, (...args: never[]) => number>;
  /** Import object with the modules capsa provides: wasi_snapshot_preview1, capsicum and argdata. */
  getImportObject(): WebAssembly.Imports;
  /** Runs a command's _start; returns its exit code (0 when _start returns). */
  start(instance: WebAssembly.Instance): number;
  /** Calls a reactor's _initialize, if it has one. */
  initialize(instance: WebAssembly.Instance): void;
  readonly context: WasiContext;
}

function normalizePreopens(p: WasiOptions['preopens']): readonly Preopen[] {
  if (p === undefined) return [];
  if (Array.isArray(p)) return p as readonly Preopen[];
  return Object.entries(p as Record<string, string>).map(([guest, host]) => ({ guest, host }));
}

function openPreopen(p: Preopen, memFs: MemFsOptions | undefined): FsDir {
  if (p.host !== undefined && p.memory !== undefined) throw new Error(`preopen ${p.guest}: give host or memory, not both`);
  if (p.host !== undefined) return createHostMount({ root: p.host, readonly: p.readonly ?? false });
  const m = p.memory;
  if (m !== undefined && m !== true && typeof (m as FsDir).lookup === 'function') return m as FsDir;
  const root = createMemFs(memFs);
  if (m !== undefined && m !== true) seedMemDir(root, m as MemSeed);
  return root;
}

/**
 * Creates a WASI preview1 environment whose every call is checked against a Capsicum rights
 * table. This is the in-thread layer for trusted embedders; untrusted guests go through the host.
 * Passing `reuse` (a Wasi whose guest has finished) resets it for the next guest instead: nothing
 * of the previous guest remains, and its import functions stay warm in the JIT.
 *
 * @example
 * ```ts
 * import { createWasi } from 'capsa';
 * import fs from 'node:fs';
 *
 * const wasi = createWasi({ args: ['hello', 'world'], preopens: { '/data': './data' } });
 * const module = new WebAssembly.Module(fs.readFileSync('guests/build/hello.wasm'));
 * const instance = new WebAssembly.Instance(module, wasi.getImportObject());
 * const code: number = wasi.start(instance); // "hello world" on this process's stdout
 * ```
 */
export function createWasi(options: WasiOptions = {}, reuse?: Wasi): Wasi {
  if (options.version !== undefined && options.version !== 'preview1') {
    throw new Error(`version ${JSON.stringify(options.version)}: capsa implements WASI preview1 only (version: 'preview1')`);
  }
  const env = Object.entries(options.env ?? {}).flatMap(([k, v]) => {
    if (k.includes('=')) throw new Error(`environment variable name ${JSON.stringify(k)} contains "="`);
    return v === undefined ? [] : [`${k}=${v}`];
  });
  const ctxOptions = {
    args: options.args ?? [], env, maxFds: options.maxFds ?? 1024, auditor: options.auditor,
    waker: options.waker, spawner: options.spawner, pid: options.pid,
  };
  const wasi = reuse ?? build(new WasiContext(ctxOptions));
  const ctx = wasi.context;
  if (reuse) ctx.reset(ctxOptions);
  hostErrorHandlers.set(ctx, options.onHostError);
  runState.set(ctx, { started: false, returnOnExit: options.returnOnExit ?? true });
  const fds = ctx.fds;
  if (options.descriptors) {
    const given = options.descriptors(ctx.waker);
    for (const e of given) fds.insert(e);
    return wasi;
  }

  const tty = options.tty ?? false;
  const stdioType = tty ? FILETYPE.CHARACTER_DEVICE : FILETYPE.UNKNOWN;
  const stdioRights = typeRights(FILETYPE.CHARACTER_DEVICE).base & (options.stdioRights ?? RIGHTS_ALL);
  // node:wasi's defaults: the process's own stdio. A key given as undefined means none.
  const stdin = 'stdin' in options ? options.stdin : 0;
  const stdout = 'stdout' in options ? options.stdout : 1;
  const stderr = 'stderr' in options ? options.stderr : 2;
  fds.insert({ handle: new InputHandle(stdin, stdioType, ctx.waker), base: stdioRights & ~R.fd_write, inheriting: 0n, fdflags: 0 });
  fds.insert({ handle: new OutputHandle(stdout, stdioType), base: stdioRights & ~R.fd_read, inheriting: 0n, fdflags: 0 });
  fds.insert({ handle: new OutputHandle(stderr, stdioType), base: stdioRights & ~R.fd_read, inheriting: 0n, fdflags: 0 });

  const dirRights = typeRights(FILETYPE.DIRECTORY);
  for (const p of normalizePreopens(options.preopens)) {
    if (!p.guest.startsWith('/') && p.guest !== '.') throw new Error(`preopen ${p.guest}: the guest path must be absolute`);
    let base = dirRights.base, inheriting = dirRights.inheriting;
    if (p.readonly) { base &= READ_ONLY_MASK; inheriting &= READ_ONLY_MASK; }
    if (p.rights) { base &= p.rights.base; inheriting &= p.rights.inheriting; }
    fds.insert({
      handle: new DirHandle(openPreopen(p, options.memFs)), base, inheriting, fdflags: 0,
      preopen: p.guest, initOnly: p.initOnly ?? false,
    });
  }
  return wasi;
}

const hostErrorHandlers = new WeakMap<WasiContext, HostErrorHandler | undefined>();
/** Per guest: whether start()/initialize() ran (node:wasi allows one), and what proc_exit does. */
const runState = new WeakMap<WasiContext, { started: boolean; returnOnExit: boolean }>();

/** The parts of a Wasi that do not depend on the guest: its import functions and entry points. */
function build(ctx: WasiContext): Wasi {
  const wasiImport = createPreview1(ctx, (call, e) => hostErrorHandlers.get(ctx)?.(call, e));
  const capsicum = createCapsicumImports(ctx);
  const argdata = createArgdataImports(ctx, () => ctx.argdata, (call, e) => hostErrorHandlers.get(ctx)?.(call, e));
  const imports: WebAssembly.Imports = { wasi_snapshot_preview1: wasiImport, capsicum, argdata: { ...argdata } };

  const bind = (instance: WebAssembly.Instance): void => {
    const state = runState.get(ctx);
    if (state?.started) throw new Error('this WASI instance has been started already; create another for the next guest (as node:wasi)');
    if (state) state.started = true;
    const memory = instance.exports['memory'];
    if (!(memory instanceof WebAssembly.Memory)) throw new Error('the module does not export a memory named "memory"');
    ctx.mem.bind(memory);
  };

  return {
    wasiImport,
    context: ctx,
    getImportObject: () => imports,
    start(instance) {
      bind(instance);
      const start = instance.exports['_start'];
      if (typeof start !== 'function') throw new Error('the module does not export _start');
      try {
        (start as () => void)();
        return 0;
      } catch (e) {
        if (e instanceof ProcExit) {
          if (runState.get(ctx)?.returnOnExit === false) process.exit(e.code);
          return e.code;
        }
        throw e;
      } finally {
        ctx.fds.closeAll();
      }
    },
    initialize(instance) {
      bind(instance);
      const init = instance.exports['_initialize'];
      if (typeof init === 'function') (init as () => void)();
    },
  };
}

/**
 * node:wasi's `WASI` class over capsa's rights-checked WASI: `new WASI(options)` then
 * `getImportObject()`, `start(instance)` or `initialize(instance)`, `wasiImport`. Replace
 * `import { WASI } from 'node:wasi'` by `import { WASI } from 'capsa'` and nothing else changes.
 */
export class WASI {
  readonly #wasi: Wasi;
  readonly wasiImport: Wasi['wasiImport'];
  constructor(options: WasiOptions = {}) {
    this.#wasi = createWasi(options);
    this.wasiImport = this.#wasi.wasiImport;
  }
  /** The import object: { wasi_snapshot_preview1, capsicum, argdata }. */
  getImportObject(): WebAssembly.Imports { return this.#wasi.getImportObject(); }
  /** Runs the command's _start once; returns its exit code. */
  start(instance: WebAssembly.Instance): number { return this.#wasi.start(instance); }
  /** Calls the reactor's _initialize once, if it has one. */
  initialize(instance: WebAssembly.Instance): void { this.#wasi.initialize(instance); }
}
