import { ERRNO, FILETYPE } from './constants.js';
import { fail } from './errors.js';
import { FdTable, type Auditor } from './fdtable.js';
import { GuestMemory } from './memory.js';
import { TYPE_RIGHTS } from './rights.js';
import type { Spawner } from './procdesc.js';
import { Waker } from './wake.js';

const encoder = new TextEncoder();

/** NUL-terminated UTF-8 strings laid out as args_get/environ_get write them. */
export class StringList {
  readonly count: number;
  readonly bytes: Uint8Array;
  readonly offsets: number[];
  constructor(items: readonly string[]) {
    const encoded = items.map((s) => {
      if (s.includes('\0')) throw new Error(`argument or variable ${JSON.stringify(s)} contains a NUL byte`);
      return encoder.encode(s + '\0');
    });
    this.count = items.length;
    this.offsets = [];
    const total = encoded.reduce((n, b) => n + b.length, 0);
    this.bytes = new Uint8Array(total);
    let off = 0;
    for (const b of encoded) { this.offsets.push(off); this.bytes.set(b, off); off += b.length; }
  }
}

/** What a context is made from. */
export interface ContextOptions {
  args: readonly string[];
  env: readonly string[];
  maxFds: number;
  auditor?: Auditor | undefined;
  /** A Waker over a cell shared with other threads (a run tree shares one: pipes, child exits); default: the context's own. */
  waker?: Waker | undefined;
  /** Starts child guests (capsicum.pdspawn); without one pdspawn is ENOSYS. */
  spawner?: Spawner | undefined;
  /** This guest's pid: it marks the pipe ends it holds (default 1). */
  pid?: number | undefined;
}

/** Everything one guest's syscalls share: its memory, its descriptors, its arguments, its mode. */
export class WasiContext {
  readonly mem = new GuestMemory();
  private readonly ownWaker = new Waker();
  /** Where the guest's thread sleeps while it waits for a descriptor or a clock (poll_oneoff). */
  waker: Waker;
  spawner: Spawner | undefined;
  pid: number;
  readonly fds: FdTable;
  args: StringList;
  env: StringList;
  private capMode = false;
  private capEnterHooks: (() => void)[] = [];
  /** The encoded argdata tree the guest reads through the argdata imports (empty: null). */
  argdata: Uint8Array = new Uint8Array(0);

  constructor(opts: ContextOptions) {
    this.args = new StringList(opts.args);
    this.env = new StringList(opts.env);
    this.fds = new FdTable(opts.maxFds, opts.auditor);
    this.waker = opts.waker ?? this.ownWaker;
    this.spawner = opts.spawner;
    this.pid = opts.pid ?? 1;
  }

  /**
   * Makes this context new for the next guest: no descriptors, fresh arguments, capability mode
   * off. The syscall functions stay, so a worker that runs many guests keeps them warm in the JIT.
   */
  reset(opts: ContextOptions): void {
    this.args = new StringList(opts.args);
    this.env = new StringList(opts.env);
    this.fds.reset(opts.maxFds, opts.auditor);
    this.waker = opts.waker ?? this.ownWaker;
    this.spawner = opts.spawner;
    this.pid = opts.pid ?? 1;
    this.mem.unbind();
    this.capMode = false;
    this.capEnterHooks = [];
    this.argdata = new Uint8Array(0);
  }

  /** Whether the guest has entered capability mode (cap_getmode). */
  get inCapabilityMode(): boolean {
    return this.capMode;
  }

  /** Runs `hook` when the guest enters capability mode; later layers hang "no new authority" here. */
  onCapEnter(hook: () => void): void {
    this.capEnterHooks.push(hook);
  }

  /** cap_enter(2): irreversible; revokes init-only grants; entering twice is a no-op. */
  enterCapabilityMode(): void {
    if (this.capMode) return;
    this.capMode = true;
    this.fds.revokeInitOnly();
    for (const h of this.capEnterHooks) h();
  }

  /** Fails with ECAPMODE when in capability mode: for calls that would acquire new authority. */
  refuseInCapabilityMode(what: string): void {
    if (this.capMode) fail(ERRNO.CAPMODE, `${what} is not permitted in capability mode`);
  }
}

/** The widest rights for a descriptor of this file type. */
export function typeRights(filetype: number): { base: bigint; inheriting: bigint } {
  switch (filetype) {
    case FILETYPE.DIRECTORY: return TYPE_RIGHTS.directory;
    case FILETYPE.REGULAR_FILE: return TYPE_RIGHTS.regularFile;
    case FILETYPE.SOCKET_STREAM:
    case FILETYPE.SOCKET_DGRAM: return TYPE_RIGHTS.socket;
    default: return TYPE_RIGHTS.characterDevice;
  }
}
