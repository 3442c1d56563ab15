/**
 * The filesystem seam: what path resolution and the syscalls need from a filesystem. The in-memory
 * tree and host mounts both implement it, so the confinement rules live once, in resolve.ts.
 */

/** filestat, as WASI lays it out. */
export interface Stat {
  dev: bigint;
  ino: bigint;
  filetype: number;
  nlink: bigint;
  size: bigint;
  atim: bigint;
  mtim: bigint;
  ctim: bigint;
}

/** A time to set: a value in ns, or undefined to leave it unchanged. */
export interface TimesUpdate {
  atim?: bigint | undefined;
  mtim?: bigint | undefined;
}

export interface FsNode {
  readonly filetype: number;
  stat(): Stat;
  setTimes(t: TimesUpdate): void;
}

export interface FsSymlink extends FsNode {
  readlink(): string;
}

/** How a file is being opened: the access it needs and what to do to it on the way in. */
export interface OpenMode {
  read: boolean;
  write: boolean;
  truncate: boolean;
  append: boolean;
}

export interface FsFile extends FsNode {
  open(mode: OpenMode): FileIO;
}

export interface DirEntry {
  name: string;
  ino: bigint;
  filetype: number;
}

export interface FsDir extends FsNode {
  /** Identifies the filesystem, so that link and rename across filesystems fail with EXDEV. */
  readonly fsid: object;
  /** Looks up one name (never ".", ".." or containing "/"); symlinks are returned, not followed. */
  lookup(name: string): FsNode | undefined;
  /** The entries, without "." and "..". */
  list(): DirEntry[];
  /** Creates and opens a regular file; EEXIST when the name exists. */
  createFile(name: string, mode: OpenMode): FileIO;
  mkdir(name: string): void;
  symlink(name: string, target: string): void;
  /** Removes a non-directory entry. */
  unlink(name: string): void;
  /** Removes an empty directory. */
  rmdir(name: string): void;
  /** Moves `name` to `to`/`toName`, replacing a compatible target as rename(2) does. */
  rename(name: string, to: FsDir, toName: string): void;
  /** Makes `to`/`toName` a hard link to `name`. */
  link(name: string, to: FsDir, toName: string): void;
  /**
   * Opens `name` if it is an existing regular file, in one step instead of a lookup and an open;
   * undefined when it is anything else (absent, a symlink, a directory), so the caller takes the
   * general path. Optional: only filesystems where a lookup costs a system call need it.
   */
  openFile?(name: string, mode: OpenMode): FileIO | undefined;
  /**
   * Host resources: a directory reached by a lookup may hold an OS descriptor. A descriptor that
   * refers to it holds it (hold/release); otherwise it is disposed when the lookup is over.
   */
  hold?(): void;
  release?(): void;
  dispose?(): void;
}

/** An open file description: the file plus how it was opened. Offsets belong to the fd. */
export interface FileIO {
  readonly node: FsFile;
  pread(buf: Uint8Array, pos: number): number;
  pwrite(buf: Uint8Array, pos: number): number;
  /** Appends and returns the new end of file. */
  append(buf: Uint8Array): number;
  size(): number;
  truncate(size: number): void;
  stat(): Stat;
  setTimes(t: TimesUpdate): void;
  sync(): void;
  close(): void;
}
