/**
 * A run's `files`: in-memory files by guest path. They are checked on the host, against the same
 * limits the worker's tree enforces, so that a caller's mistake is refused with a message (a
 * TypeError, a 422) instead of failing inside the worker.
 */
import { MEM_DEFAULT_INODES, MEM_NAME_MAX, MEM_PATH_MAX, type MemSeed } from '../wasi/fs/memfs.js';

/** One thing wrong with `files`: the guest path (empty for the whole set) and what to change. */
export interface FileProblem {
  path: string;
  message: string;
}

/** Directories and files by name, each name once. */
interface Trie extends Map<string, Trie> {}

const names = (path: string): string[] => path.split('/').filter((p) => p !== '' && p !== '.');
/** A path as a problem names it: a hostile one can be 80 KB. */
const shown = (path: string): string => (path.length > 80 ? `${path.slice(0, 80)}…` : path);

/**
 * What is wrong with `files` for a tree of `maxBytes` bytes (file contents and names count, as in
 * the tree) and MEM_DEFAULT_INODES inodes; empty when they fit. Linear in the size of the input.
 */
export function fileProblems(files: Record<string, string | Uint8Array>, maxBytes: number): FileProblem[] {
  const problems: FileProblem[] = [];
  // The directories and files the tree will hold, as a trie: counts each name once.
  const root: Trie = new Map();
  let nodes = 0;
  let bytes = 0;
  for (const [path, content] of Object.entries(files)) {
    const parts = names(path);
    if (parts.length < 2 || parts.includes('..') || path.includes('\0')) {
      problems.push({ path: shown(path), message: 'a file path names a file inside a directory, like "/data/in.txt", without ".." or NUL' });
      continue;
    }
    const long = parts.find((p) => Buffer.byteLength(p) > MEM_NAME_MAX);
    if (long !== undefined) {
      problems.push({ path: shown(path), message: `the name ${JSON.stringify(long.slice(0, 32) + '…')} is ${Buffer.byteLength(long)} bytes; names are at most ${MEM_NAME_MAX} bytes` });
      continue;
    }
    const pathBytes = parts.reduce((n, p) => n + 1 + Buffer.byteLength(p), 0);
    if (pathBytes > MEM_PATH_MAX) {
      problems.push({ path: shown(path), message: `the path is ${pathBytes} bytes, ${parts.length} levels deep; in-memory paths are at most ${MEM_PATH_MAX} bytes: use a shallower path or shorter names` });
      continue;
    }
    let dir = root;
    for (const p of parts) {
      let next = dir.get(p);
      if (!next) {
        next = new Map() as Trie;
        dir.set(p, next);
        nodes++;
        bytes += Buffer.byteLength(p);
      }
      dir = next;
    }
    bytes += typeof content === 'string' ? Buffer.byteLength(content) : content.length;
  }
  if (problems.length > 20) problems.splice(20, problems.length - 20, { path: '', message: `and ${problems.length - 20} more paths like these` });
  // The tree's root is an inode too.
  if (nodes + 1 > MEM_DEFAULT_INODES) {
    problems.push({ path: '', message: `the files make ${nodes} files and directories; an in-memory tree holds at most ${MEM_DEFAULT_INODES - 1}: send fewer` });
  }
  if (bytes > maxBytes) {
    problems.push({ path: '', message: `the files take ${bytes} bytes with their names, above the files limit of ${maxBytes}: send less or raise limits.files` });
  }
  return problems;
}

/** Splits "/data/in.txt" style paths into one seed per top-level directory. */
export function filesToSeed(files: Record<string, string | Uint8Array>): MemSeed {
  const seed: MemSeed = {};
  for (const [path, content] of Object.entries(files)) {
    const parts = names(path);
    if (parts.length < 2 || parts.includes('..')) {
      throw new TypeError(`files: ${JSON.stringify(path)} must name a file inside a directory, like "/data/in.txt"`);
    }
    seed[parts.join('/')] = content;
  }
  return seed;
}
