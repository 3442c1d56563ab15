import { ERRNO, FILETYPE } from '../constants.js';
import { fail } from '../errors.js';
import { realtimeNs } from '../clock.js';
import type { DirEntry, FileIO, FsDir, FsFile, FsNode, FsSymlink, OpenMode, Stat, TimesUpdate } from './types.js';

/** Options for an in-memory filesystem. */
export interface MemFsOptions {
  /** Total bytes its files may hold; past it writes fail with ENOSPC. */
  maxBytes?: number;
  /** Number of inodes it may hold; past it creation fails with ENOSPC. */
  maxInodes?: number;
}

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
      fail(ERRNO.NOSPC, `in-memory filesystem is limited to ${this.maxBytes} bytes`);
    }
    this.bytes += delta;
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
  data = new Uint8Array(0);
  length = 0;
  size(): number { return this.length; }

  /** Grows or shrinks the file, zero-filling, and charges the filesystem's byte quota. */
  resize(size: number): void {
    if (size === this.length) return;
    this.fs.reserve(size - this.length);
    if (size > this.data.length) {
      // Amortised growth: doubling keeps 64 MiB of 4 KiB appends linear, not quadratic.
      const cap = Math.max(size, Math.min(this.data.length * 2, size + (64 << 20)), 256);
      const next = new Uint8Array(cap);
      next.set(this.data.subarray(0, this.length));
      this.data = next;
    } else if (size < this.length) {
      this.data.fill(0, size, this.length);
    }
    this.length = size;
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
    if (this.nlink === 0n && this.opens === 0 && this.length > 0) {
      this.fs.reserve(-this.length);
      this.length = 0;
      this.data = new Uint8Array(0);
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
  constructor(fs: MemFs, readonly target: string) { super(fs); }
  size(): number { return Buffer.byteLength(this.target); }
  readlink(): string { return this.target; }
}

export class MemDir extends MemNode implements FsDir {
  readonly filetype = FILETYPE.DIRECTORY;
  readonly entries = new Map<string, MemNode>();
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
  private add(name: string, node: MemNode): void {
    this.entries.set(name, node);
    this.touch();
  }
  private absent(name: string): void {
    if (this.entries.has(name)) fail(ERRNO.EXIST, `${name} exists`);
  }
  createFile(name: string, mode: OpenMode): FileIO {
    this.absent(name);
    const f = new MemFile(this.fs);
    this.add(name, f);
    return f.open(mode);
  }
  mkdir(name: string): void {
    this.absent(name);
    this.add(name, new MemDir(this.fs));
  }
  symlink(name: string, target: string): void {
    this.absent(name);
    this.add(name, new MemSymlink(this.fs, target));
  }
  private drop(name: string, node: MemNode): void {
    this.entries.delete(name);
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
      to.drop(toName, existing);
    }
    this.entries.delete(name);
    this.touch();
    to.add(toName, n);
    n.ctim = realtimeNs();
  }
  link(name: string, to: FsDir, toName: string): void {
    if (!(to instanceof MemDir) || to.fs !== this.fs) fail(ERRNO.XDEV);
    const n = this.entries.get(name) ?? fail(ERRNO.NOENT);
    if (n instanceof MemDir) fail(ERRNO.PERM, 'hard links to directories are not allowed');
    to.absent(toName);
    n.nlink++;
    n.ctim = realtimeNs();
    to.add(toName, n);
  }
  /** Whether `d` lies somewhere below this directory. */
  contains(d: MemDir): boolean {
    for (const child of this.entries.values()) {
      if (child === d || (child instanceof MemDir && child.contains(d))) return true;
    }
    return false;
  }
}

let devCounter = 0n;

/** Creates an empty in-memory tree and returns its root. */
export function createMemFs(options: MemFsOptions = {}): MemDir {
  // dev numbers are only distinct per host process; they tell two trees apart, nothing more.
  const fs = new MemFs(options.maxBytes ?? 256 << 20, options.maxInodes ?? 100_000, 0x6d656d00n + (devCounter++ % 256n));
  return new MemDir(fs);
}

/** Content for seeding a tree: a string or bytes for a file, a nested object for a directory. */
export type MemSeed = { [name: string]: string | Uint8Array | MemSeed };

const encoder = new TextEncoder();

/** Fills `dir` from a seed object; names with "/" create the directories on the way. */
export function seedMemDir(dir: MemDir, seed: MemSeed): void {
  for (const [rawName, value] of Object.entries(seed)) {
    const parts = rawName.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.length === 0 || parts.includes('..')) throw new Error(`invalid seed path ${JSON.stringify(rawName)}`);
    let d = dir;
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
      io.pwrite(bytes, 0);
      io.close();
    } else {
      if (!d.lookup(name)) d.mkdir(name);
      const sub = d.lookup(name);
      if (!(sub instanceof MemDir)) throw new Error(`seed path ${rawName} is not a directory`);
      seedMemDir(sub, value);
    }
  }
}
