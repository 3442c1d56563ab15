import { ERRNO, FILETYPE, LIMITS } from '../constants.js';
import { fail, WasiError } from '../errors.js';
import type { FsDir, FsNode, FsSymlink } from './types.js';

/** The outcome of a lookup: the directory holding the last name, the name, and what it names. */
export interface Resolved {
  /** Directory that contains `name` (or the directory itself when `name` is "."). */
  dir: FsDir;
  name: string;
  /** The node found, or undefined when the last component does not exist. */
  node: FsNode | undefined;
  /** The path ended in "/" (or "/."), so the result must be a directory. */
  mustBeDir: boolean;
}

/**
 * Resolves `path` beneath `start` with Capsicum's strictly-relative rules (capsicum-casper.md §1.6):
 * absolute paths and absolute symlink targets are ENOTCAPABLE; ".." may only return to a directory
 * walked earlier in this same lookup, so it never climbs above `start`; symlinks are expanded in
 * place at most LIMITS.symlinks times (then ELOOP); the final symlink is followed only when
 * `follow` is set or a trailing slash demands a directory, and never when `literalLast` is set
 * (unlink, rmdir, rename and symlink act on the link itself, as their POSIX twins do).
 */
export function resolve(start: FsDir, path: string, follow: boolean, literalLast = false): Resolved {
  if (path.length === 0) fail(ERRNO.NOENT, 'empty path');
  if (path.includes('\0')) fail(ERRNO.INVAL, 'path contains a NUL byte');
  if (path.charCodeAt(0) === 47 /* / */) fail(ERRNO.NOTCAPABLE, `absolute path ${path} refused: paths are relative to a directory descriptor`);

  // Every directory entered, so that those the result does not name can be disposed at the end.
  const entered: FsDir[] = [];
  let result: Resolved | undefined;
  try {
    result = walk(start, path, follow, literalLast, entered, false);
    return result;
  } finally {
    for (const d of entered) if (d !== result?.dir && d !== result?.node) d.dispose?.();
  }
}

/** Disposes what a lookup's result names, once the call that used it is done. */
export function disposeResolved(r: Resolved): void {
  r.dir.dispose?.();
  if (r.node !== r.dir) (r.node as FsDir | undefined)?.dispose?.();
}

/**
 * Throws ENOTCAPABLE when `path`, followed from `start` as a lookup would follow it, leaves
 * `start`: the check of a symlink target before a link is made (docs/security.md, rule 5).
 * Links already there are followed; a directory that is missing (or is not one yet) is taken as
 * an empty directory, since the guest may make it later. Any other failure (a loop, a dangling
 * last component) means the target cannot be followed out today, so it passes.
 */
export function checkBeneath(start: FsDir, path: string): void {
  if (path.charCodeAt(0) === 47 /* / */) fail(ERRNO.NOTCAPABLE, `${path} is absolute`);
  const entered: FsDir[] = [];
  try {
    walk(start, path, true, false, entered, true);
  } catch (e) {
    if (e instanceof WasiError && e.errno === ERRNO.NOTCAPABLE) throw e;
  } finally {
    for (const d of entered) d.dispose?.();
  }
}

/** Stands for a directory that does not exist (yet) in checkBeneath: it has no entries. */
const MISSING_DIR = { filetype: FILETYPE.DIRECTORY, lookup: () => undefined } as unknown as FsDir;

/** `missingAsDir`: a missing or non-directory component on the way is entered as an empty directory. */
function walk(start: FsDir, path: string, follow: boolean, literalLast: boolean, entered: FsDir[], missingAsDir: boolean): Resolved {
  let parts = path.split('/');
  let i = 0;
  // The directories walked so far; ".." pops, and popping the start is an escape.
  const walked: FsDir[] = [start];
  let links = 0;

  for (;;) {
    while (i < parts.length && (parts[i] === '' || parts[i] === '.')) i++;
    const dir = walked[walked.length - 1]!;
    if (i >= parts.length) return { dir, name: '.', node: dir, mustBeDir: true };
    const name = parts[i++]!;
    const last = isTail(parts, i);
    const mustBeDir = last && i < parts.length;

    if (name === '..') {
      if (walked.length === 1) fail(ERRNO.NOTCAPABLE, `".." in ${path} would leave the directory the lookup started from`);
      walked.pop();
      continue;
    }
    if (name.length > 255) fail(ERRNO.NAMETOOLONG, 'path component longer than 255 bytes');

    const node = dir.lookup(name);
    if (node === undefined) {
      if (last) return { dir, name, node: undefined, mustBeDir };
      if (missingAsDir) { walked.push(MISSING_DIR); continue; }
      fail(ERRNO.NOENT, `${name} does not exist`);
    }
    if (node.filetype === FILETYPE.SYMBOLIC_LINK && (!last || (!literalLast && (follow || mustBeDir)))) {
      if (++links > LIMITS.symlinks) fail(ERRNO.LOOP, `more than ${LIMITS.symlinks} symlinks in ${path}`);
      const target = (node as FsSymlink).readlink();
      if (target.length === 0) fail(ERRNO.NOENT, `symlink ${name} is empty`);
      if (target.charCodeAt(0) === 47) fail(ERRNO.NOTCAPABLE, `symlink ${name} -> ${target} is absolute`);
      // Expand in place: the target's components replace the link's, relative to the link's dir.
      parts = target.split('/').concat(parts.slice(i));
      i = 0;
      continue;
    }
    if (last) {
      if (mustBeDir && !literalLast && node.filetype !== FILETYPE.DIRECTORY) fail(ERRNO.NOTDIR, `${name} is not a directory`);
      return { dir, name, node, mustBeDir };
    }
    if (node.filetype !== FILETYPE.DIRECTORY) {
      if (missingAsDir) { walked.push(MISSING_DIR); continue; }
      fail(ERRNO.NOTDIR, `${name} is not a directory`);
    }
    walked.push(node as FsDir);
    entered.push(node as FsDir);
  }
}

function isTail(parts: string[], from: number): boolean {
  for (let j = from; j < parts.length; j++) if (parts[j] !== '' && parts[j] !== '.') return false;
  return true;
}
