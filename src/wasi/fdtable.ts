import { ERRNO } from './constants.js';
import { fail, WasiError } from './errors.js';
import type { Handle } from './handles.js';
import { missingRightsMessage } from './rights.js';

/** One slot of the descriptor table: what the fd points at and what it may do. */
export interface FdEntry {
  handle: Handle;
  /** Rights on this descriptor. */
  base: bigint;
  /** The most that descriptors opened through this one may hold. */
  inheriting: bigint;
  /** WASI fdflags (append, nonblock, …). */
  fdflags: number;
  /** Guest path, when this is a preopened directory (fd_prestat_*). */
  preopen?: string | undefined;
  /** Revoked when the guest enters capability mode. */
  initOnly?: boolean | undefined;
}

/** One capability decision, for the audit trail. */
export interface Decision {
  call: string;
  fd: number;
  path?: string | undefined;
  rightsNeeded: bigint;
  rightsHeld: bigint;
  decision: 'allowed' | 'denied';
  errno: number;
  message?: string | undefined;
  /** path_open: the descriptor it opened, and the rights asked for it (base | inheriting). */
  opened?: { fd: number; rights: bigint } | undefined;
}

/** Receives decisions; `all` also receives the allowed ones (costly: one call per syscall). */
export interface Auditor {
  level: 'denied' | 'all';
  record(d: Decision): void;
}

/**
 * The rights table. Each slot carries rights that only shrink; every access names the rights it
 * needs, and a missing one is ENOTCAPABLE before any other error, as in Capsicum.
 */
export class FdTable {
  private slots: (FdEntry | undefined)[] = [];
  private open = 0;

  constructor(public maxFds: number, private auditor?: Auditor) {}

  /** Closes everything and starts over for the next guest (a worker reuses one table). */
  reset(maxFds: number, auditor: Auditor | undefined): void {
    this.closeAll();
    this.slots = [];
    this.open = 0;
    this.maxFds = maxFds;
    this.auditor = auditor;
  }

  /** Number of open descriptors. */
  get size(): number {
    return this.open;
  }

  /**
   * The entry for `fd` holding at least `needed`; EBADF or ENOTCAPABLE otherwise. `auditAllowed`
   * false leaves recording an allowed decision to the caller (path_open adds what it opened).
   */
  get(fd: number, needed: bigint, call: string, path?: string, auditAllowed = true): FdEntry {
    const e = this.slots[fd];
    if (e === undefined) {
      this.auditor?.record({ call, fd, path, rightsNeeded: needed, rightsHeld: 0n, decision: 'denied', errno: ERRNO.BADF, message: `fd ${fd} is not open` });
      return fail(ERRNO.BADF, `fd ${fd} is not open`);
    }
    if ((e.base & needed) !== needed) {
      const message = missingRightsMessage(`Cannot ${call}${path === undefined ? '' : ` ${path}`}`, fd, needed, e.base);
      this.auditor?.record({ call, fd, path, rightsNeeded: needed, rightsHeld: e.base, decision: 'denied', errno: ERRNO.NOTCAPABLE, message });
      throw new WasiError(ERRNO.NOTCAPABLE, message);
    }
    if (auditAllowed) this.allowed({ call, fd, path, rightsNeeded: needed, rightsHeld: e.base, errno: 0 });
    return e;
  }

  /** Records an allowed decision, at audit level "all". */
  allowed(d: Omit<Decision, 'decision'>): void {
    if (this.auditor?.level === 'all') this.auditor.record({ ...d, decision: 'allowed' });
  }

  /** The entry for `fd` or undefined; no rights check, no audit. */
  peek(fd: number): FdEntry | undefined {
    return this.slots[fd];
  }

  /** Records a refusal decided outside `get` (a confined lookup, a widening attempt). */
  deny(d: Omit<Decision, 'decision'>): never {
    this.auditor?.record({ ...d, decision: 'denied' });
    throw new WasiError(d.errno, d.message);
  }

  /** Records an event the audit trail always keeps, whatever its level (an accepted or refused connection). */
  note(d: Omit<Decision, 'decision'>): void {
    this.auditor?.record({ ...d, decision: d.errno === 0 ? 'allowed' : 'denied' });
  }

  /** Fails with EMFILE when no slot is free, so a call can check before it changes anything. */
  ensureRoom(): void {
    if (this.open >= this.maxFds) fail(ERRNO.MFILE, `the run is limited to ${this.maxFds} open descriptors`);
  }

  /** Installs an entry in the lowest free slot, as POSIX does; EMFILE past the cap. */
  insert(entry: FdEntry): number {
    this.ensureRoom();
    let fd = this.slots.indexOf(undefined);
    if (fd < 0) fd = this.slots.length;
    this.slots[fd] = entry;
    this.open++;
    return fd;
  }

  /** Closes `fd`, releasing what it holds. */
  close(fd: number): void {
    const e = this.slots[fd] ?? fail(ERRNO.BADF, `fd ${fd} is not open`);
    this.slots[fd] = undefined;
    this.open--;
    e.handle.close();
  }

  /**
   * Moves `from` onto `to`, closing what `to` held. The rights, preopen name and init-only mark
   * travel with the entry, so a renumber can never give a descriptor more than it had.
   */
  renumber(from: number, to: number): void {
    const e = this.slots[from] ?? fail(ERRNO.BADF, `fd ${from} is not open`);
    if (this.slots[to] === undefined) fail(ERRNO.BADF, `fd ${to} is not open`);
    if (from === to) return;
    this.close(to);
    this.slots[from] = undefined;
    this.slots[to] = e;
  }

  /** Closes every descriptor marked init-only (on cap_enter). */
  revokeInitOnly(): number {
    let n = 0;
    this.slots.forEach((e, fd) => {
      if (e?.initOnly) { this.close(fd); n++; }
    });
    return n;
  }

  /** Closes everything (end of run). */
  closeAll(): void {
    this.slots.forEach((e, fd) => { if (e) this.close(fd); });
  }

  /** Iterates open descriptors. */
  *entries(): IterableIterator<[number, FdEntry]> {
    for (let fd = 0; fd < this.slots.length; fd++) {
      const e = this.slots[fd];
      if (e) yield [fd, e];
    }
  }
}
