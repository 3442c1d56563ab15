import { ERRNO, FILETYPE } from '../constants.js';
import { fail } from '../errors.js';
import { realtimeNs } from '../clock.js';
import type { DirEntry, FileIO, FsDir, FsFile, FsNode, FsSymlink, OpenMode, Stat, TimesUpdate } from './types.js';

/** Options for an in-memory filesystem. */
export interface MemFsOptions {
  /**
   * Bytes it may hold: the capacity of its files' buffers, every name and every symlink target;
   * past it writes and creations fail with ENOSPC.
   */
  maxBytes?: number;
  /** Number of inodes it may hold; past it creation fails with ENOSPC. */
  maxInodes?: number;
}

/** Longest name in an in-memory directory, in UTF-8 bytes (NAME_MAX). */
export const MEM_NAME_MAX = 255;

/**
 * Longest path in an in-memory tree ("/" and the names from its root, in UTF-8 bytes), and longest
 * symlink target: FreeBSD's PATH_MAX. It bounds depth (at most 512 levels) and the size of the
 * path of every file the host collects after a run, whatever the guest renames.
 */
export const MEM_PATH_MAX = 1024;

/**
 * Inodes a tree holds by default. Each costs the worker's JS heap ~400 bytes, its name and target
 * up to ~1.3 KiB more, and its path up to 1 KiB when the files are collected. Measured with files
 * whose paths are all ~1,020 bytes: 30,000 run and are collected in a pool worker's 64 MiB heap,
 * 60,000 exhaust it; 10,000 leave a margin of three.
 */
export const MEM_DEFAULT_INODES = 10_000;

const EMPTY = new Uint8Array(0);
const byteLength = (s: string): number => Buffer.byteLength(s);

/**
 * Accounting shared by one tree. Inode numbers are per filesystem, never global, so one guest
 * cannot learn from inode numbers how many files another guest created.
 */
class MemFs {
  private nextIno = 1n;
  inodes = 0;
  bytes = 0;
  readonly dev: bigint;
  constructor(readonly maxBytes: number, readonly maxInodes: number, dev: bigint) {
    this.dev = dev;
  }
  allocIno(): bigint {
    if (this.inodes >= this.maxInodes) fail(ERRNO.NOSPC, `in-memory filesystem is limited to ${this.maxInodes} inodes`);
    this.inodes++;
    return this.nextIno++;
  }
  reserve(delta: number): void {
    if (delta > 0 && this.bytes + delta > this.maxBytes) {
      fail(ERRNO.NOSPC, `in-memory filesystem is limited to ${this.maxBytes} bytes (file buffers, names and link targets)`);
    }
    this.bytes += delta;
  }
  /** Bytes the quota has left. */
  available(): number {
    return Math.max(0, this.maxBytes - this.bytes);
  }
}

abstract class MemNode implements FsNode {
  abstract readonly filetype: number;
  readonly ino: bigint;
  nlink = 1n;
  atim: bigint;
  mtim: bigint;
  ctim: bigint;
  constructor(readonly fs: MemFs) {
    this.ino = fs.allocIno();
    this.atim = this.mtim = this.ctim = realtimeNs();
  }
  abstract size(): number;
  stat(): Stat {
    return {
      dev: this.fs.dev, ino: this.ino, filetype: this.filetype, nlink: this.nlink,
      size: BigInt(this.size()), atim: this.atim, mtim: this.mtim, ctim: this.ctim,
    };
  }
  setTimes(t: TimesUpdate): void {
    if (t.atim !== undefined) this.atim = t.atim;
    if (t.mtim !== undefined) this.mtim = t.mtim;
    this.ctim = realtimeNs();
  }
  touch(): void {
    this.mtim = this.ctim = realtimeNs();
  }
  /** Called when the last link goes away. */
  unlinked(): void {
    this.fs.inodes--;
  }
}

export class MemFile extends MemNode implements FsFile {
  readonly filetype = FILETYPE.REGULAR_FILE;
  /** The buffer; its whole capacity, not just `length`, is charged to the quota. */
  data = EMPTY;
  length = 0;
  size(): number { return this.length; }

  /**
   * Grows or shrinks the file, zero-filling. The quota is charged for the buffer's capacity: a
   * file truncated to a quarter of its buffer or less gets a smaller one, so the memory is given
   * back (a guest that grows and truncates files cannot hold more than the quota).
   */
  resize(size: number): void {
    if (size === this.length) return;
    const cap = this.data.length;
    if (size > cap) {
      // Amortised growth: doubling keeps 64 MiB of 4 KiB appends linear, not quadratic; never
      // past what the quota has left, so the last bytes of the quota stay usable. A first write
      // gets exactly its size: seeded and written-once files take no more than they hold.
      const want = Math.max(size, Math.min(cap * 2, size + (64 << 20)));
      this.replace(Math.max(size, Math.min(want, cap + this.fs.available())));
    } else if (size < this.length) {
      if (size <= cap >>> 2) this.replace(size);
      else this.data.fill(0, size, this.length);
    }
    this.length = size;
  }

  /** Moves the contents (up to `capacity`) to a buffer of that capacity, charging the difference first. */
  private replace(capacity: number): void {
    this.fs.reserve(capacity - this.data.length);
    const next = capacity === 0 ? EMPTY : new Uint8Array(capacity);
    next.set(this.data.subarray(0, Math.min(this.length, capacity)));
    this.data = next;
  }

  /** Open descriptions; the bytes stay charged while the file has a name or an open fd, as in POSIX. */
  opens = 0;

  open(mode: OpenMode): FileIO {
    if (mode.truncate) { this.resize(0); this.touch(); }
    this.opens++;
    return new MemFileIO(this);
  }

  override unlinked(): void {
    super.unlinked();
    this.freeIfUnused();
  }

  /** Returns the bytes to the quota once nothing can reach the data any more. */
  freeIfUnused(): void {
    if (this.nlink === 0n && this.opens === 0 && this.data.length > 0) {
      this.fs.reserve(-this.data.length);
      this.length = 0;
      this.data = EMPTY;
    }
  }
}

class MemFileIO implements FileIO {
  constructor(readonly node: MemFile) {}
  pread(buf: Uint8Array, pos: number): number {
    const f = this.node;
    if (pos >= f.length) return 0;
    const n = Math.min(buf.length, f.length - pos);
    buf.set(f.data.subarray(pos, pos + n));
    return n;
  }
  pwrite(buf: Uint8Array, pos: number): number {
    const f = this.node;
    const end = pos + buf.length;
    if (end > f.length) f.resize(end);
    f.data.set(buf, pos);
    f.touch();
    return buf.length;
  }
  append(buf: Uint8Array): number {
    this.pwrite(buf, this.node.length);
    return this.node.length;
  }
  size(): number { return this.node.length; }
  truncate(size: number): void { this.node.resize(size); this.node.touch(); }
  stat(): Stat { return this.node.stat(); }
  setTimes(t: TimesUpdate): void { this.node.setTimes(t); }
  sync(): void {}
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.node.opens--;
    this.node.freeIfUnused();
  }
  private closed = false;
}

export class MemSymlink extends MemNode implements FsSymlink {
  readonly filetype = FILETYPE.SYMBOLIC_LINK;
  /** The target's bytes, charged to the quota (by MemDir.symlink) until the last link goes. */
  readonly bytes: number;
  constructor(fs: MemFs, readonly target: string) {
    super(fs);
    this.bytes = byteLength(target);
  }
  size(): number { return this.bytes; }
  readlink(): string { return this.target; }
  override unlinked(): void {
    super.unlinked();
    this.fs.reserve(-this.bytes);
  }
}

export class MemDir extends MemNode implements FsDir {
  readonly filetype = FILETYPE.DIRECTORY;
  readonly entries = new Map<string, MemNode>();
  /** Where it hangs (directories have one link): undefined for the root. */
  parent: MemDir | undefined;
  /** Its name in `parent`. */
  name = '';
  /** Bytes of its path from the root, "/a/b" (0 for the root); at most MEM_PATH_MAX. */
  pathBytes = 0;
  get fsid(): object { return this.fs; }
  size(): number { return this.entries.size; }

  lookup(name: string): FsNode | undefined {
    return this.entries.get(name);
  }
  list(): DirEntry[] {
    const out: DirEntry[] = [];
    for (const [name, n] of this.entries) out.push({ name, ino: n.ino, filetype: n.filetype });
    return out;
  }
  /** The bytes `name` takes here (charged to the quota), or ENAMETOOLONG when it or its path is too long. */
  private nameCost(name: string): number {
    const bytes = byteLength(name);
    if (bytes > MEM_NAME_MAX) fail(ERRNO.NAMETOOLONG, `name of ${bytes} bytes: in-memory names are at most ${MEM_NAME_MAX} bytes`);
    const path = this.pathBytes + 1 + bytes;
    if (path > MEM_PATH_MAX) fail(ERRNO.NAMETOOLONG, `${name} would have a path of ${path} bytes: in-memory paths are at most ${MEM_PATH_MAX} bytes`);
    return bytes;
  }
  private add(name: string, node: MemNode): void {
    this.entries.set(name, node);
    if (node instanceof MemDir) {
      node.parent = this;
      node.name = name;
      node.pathBytes = this.pathBytes + 1 + byteLength(name);
    }
    this.touch();
  }
  private absent(name: string): void {
    if (this.entries.has(name)) fail(ERRNO.EXIST, `${name} exists`);
  }
  /** Charges `bytes` (its name and target), makes the node and links it in; nothing stays charged if that fails. */
  private create<T extends MemNode>(name: string, extra: number, make: () => T): T {
    this.absent(name);
    const bytes = this.nameCost(name) + extra;
    this.fs.reserve(bytes);
    let node: T;
    try {
      node = make();
    } catch (e) {
      this.fs.reserve(-bytes);
      throw e;
    }
    this.add(name, node);
    return node;
  }
  createFile(name: string, mode: OpenMode): FileIO {
    return this.create(name, 0, () => new MemFile(this.fs)).open(mode);
  }
  mkdir(name: string): void {
    this.create(name, 0, () => new MemDir(this.fs));
  }
  symlink(name: string, target: string): void {
    const bytes = byteLength(target);
    if (bytes > MEM_PATH_MAX) fail(ERRNO.NAMETOOLONG, `symlink target of ${bytes} bytes: in-memory targets are at most ${MEM_PATH_MAX} bytes`);
    this.create(name, bytes, () => new MemSymlink(this.fs, target));
  }
  /** Removes an entry, giving its name's bytes back unless `keepName`; the node goes with its last link. */
  private drop(name: string, node: MemNode, keepName = false): void {
    this.entries.delete(name);
    if (!keepName) this.fs.reserve(-byteLength(name));
    this.touch();
    node.ctim = realtimeNs();
    if (--node.nlink === 0n) node.unlinked();
  }
  unlink(name: string): void {
    const n = this.entries.get(name) ?? fail(ERRNO.NOENT);
    if (n instanceof MemDir) fail(ERRNO.ISDIR, `${name} is a directory`);
    this.drop(name, n);
  }
  rmdir(name: string): void {
    const n = this.entries.get(name) ?? fail(ERRNO.NOENT);
    if (!(n instanceof MemDir)) fail(ERRNO.NOTDIR, `${name} is not a directory`);
    if (n.entries.size > 0) fail(ERRNO.NOTEMPTY, `${name} is not empty`);
    this.drop(name, n);
  }
  rename(name: string, to: FsDir, toName: string): void {
    if (!(to instanceof MemDir) || to.fs !== this.fs) fail(ERRNO.XDEV);
    const n = this.entries.get(name) ?? fail(ERRNO.NOENT);
    const existing = to.entries.get(toName);
    if (existing === n) return;
    if (n instanceof MemDir && (n === to || n.contains(to))) fail(ERRNO.INVAL, 'cannot move a directory into itself');
    if (existing) {
      if (n instanceof MemDir) {
        if (!(existing instanceof MemDir)) fail(ERRNO.NOTDIR);
        if (existing.entries.size > 0) fail(ERRNO.NOTEMPTY);
      } else if (existing instanceof MemDir) {
        fail(ERRNO.ISDIR);
      }
    }
    // Every check before any change: the new name and, for a directory, every path below it must
    // fit; the quota is charged the difference (a replaced entry leaves its name's bytes to `n`).
    const bytes = to.nameCost(toName);
    if (n instanceof MemDir) n.checkMove(to.pathBytes + 1 + bytes);
    this.fs.reserve((existing ? 0 : bytes) - byteLength(name));
    if (existing) to.drop(toName, existing, true);
    this.entries.delete(name);
    this.touch();
    to.add(toName, n);
    if (n instanceof MemDir) n.movePaths();
    n.ctim = realtimeNs();
  }
  link(name: string, to: FsDir, toName: string): void {
    if (!(to instanceof MemDir) || to.fs !== this.fs) fail(ERRNO.XDEV);
    const n = this.entries.get(name) ?? fail(ERRNO.NOENT);
    if (n instanceof MemDir) fail(ERRNO.PERM, 'hard links to directories are not allowed');
    to.absent(toName);
    this.fs.reserve(to.nameCost(toName));
    n.nlink++;
    n.ctim = realtimeNs();
    to.add(toName, n);
  }
  /** Whether `d` lies somewhere below this directory (walks up from `d`: depth is bounded). */
  contains(d: MemDir): boolean {
    for (let p = d.parent; p; p = p.parent) if (p === this) return true;
    return false;
  }
  /** ENAMETOOLONG unless every path below this directory fits with this directory's path at `pathBytes`. */
  private checkMove(pathBytes: number): void {
    const delta = pathBytes - this.pathBytes;
    if (delta <= 0) return;
    for (const d of this.walk()) {
      for (const name of d.entries.keys()) {
        const path = d.pathBytes + 1 + byteLength(name) + delta;
        if (path > MEM_PATH_MAX) fail(ERRNO.NAMETOOLONG, `moving it would give ${name} a path of ${path} bytes: in-memory paths are at most ${MEM_PATH_MAX} bytes`);
      }
    }
  }
  /** Recomputes the paths below this directory after it moved. */
  private movePaths(): void {
    for (const d of this.walk()) {
      if (d !== this) d.pathBytes = d.parent!.pathBytes + 1 + byteLength(d.name);
    }
  }
  /** This directory and every directory below it, parents before children, without recursion. */
  *walk(): Generator<MemDir> {
    const stack: MemDir[] = [this];
    for (let d = stack.pop(); d; d = stack.pop()) {
      yield d;
      for (const child of d.entries.values()) if (child instanceof MemDir) stack.push(child);
    }
  }
}

let devCounter = 0n;

/** Creates an empty in-memory tree and returns its root. */
export function createMemFs(options: MemFsOptions = {}): MemDir {
  // dev numbers are only distinct per host process; they tell two trees apart, nothing more.
  const fs = new MemFs(options.maxBytes ?? 256 << 20, options.maxInodes ?? MEM_DEFAULT_INODES, 0x6d656d00n + (devCounter++ % 256n));
  return new MemDir(fs);
}

/** Content for seeding a tree: a string or bytes for a file, a nested object for a directory. */
export type MemSeed = { [name: string]: string | Uint8Array | MemSeed };

const encoder = new TextEncoder();

/**
 * Fills `dir` from a seed object; names with "/" create the directories on the way. Nested seeds
 * are walked without recursion; the tree's limits (quota, inodes, MEM_PATH_MAX) apply as to a
 * guest, as WasiErrors.
 */
export function seedMemDir(dir: MemDir, seed: MemSeed): void {
  const stack: [MemDir, MemSeed][] = [[dir, seed]];
  for (let top = stack.pop(); top; top = stack.pop()) {
    const [base, entries] = top;
    for (const [rawName, value] of Object.entries(entries)) {
      const parts = rawName.split('/').filter((p) => p !== '' && p !== '.');
      if (parts.length === 0 || parts.includes('..')) throw new Error(`invalid seed path ${JSON.stringify(rawName)}`);
      let d = base;
      for (const p of parts.slice(0, -1)) {
        let next = d.lookup(p);
        if (!next) { d.mkdir(p); next = d.lookup(p); }
        if (!(next instanceof MemDir)) throw new Error(`seed path ${rawName}: ${p} is not a directory`);
        d = next;
      }
      const name = parts[parts.length - 1]!;
      if (typeof value === 'string' || value instanceof Uint8Array) {
        const bytes = typeof value === 'string' ? encoder.encode(value) : value;
        const existing = d.lookup(name);
        if (existing) throw new Error(`seed path ${rawName} given twice`);
        const io = d.createFile(name, { read: false, write: true, truncate: false, append: false });
        try {
          io.pwrite(bytes, 0);
        } finally {
          io.close();
        }
      } else {
        if (!d.lookup(name)) d.mkdir(name);
        const sub = d.lookup(name);
        if (!(sub instanceof MemDir)) throw new Error(`seed path ${rawName} is not a directory`);
        stack.push([sub, value]);
      }
    }
  }
}
