/**
 * The words a manifest may use for rights: Capsicum names (single and composite, from
 * src/wasi/rights.ts), WASI names, and OpenBSD pledge promises as shorthand.
 */
import { R, rightByName, rightNames } from '../wasi/rights.js';
import { didYouMean } from './suggest.js';

const any = (...masks: bigint[]): bigint => masks.reduce((m, x) => m | x, 0n);

/** What one pledge promise grants. `casper` promises name services instead of rights. */
export interface PromiseGrant {
  rights: bigint;
  casper?: string[];
  /** Why it expands the way it does; shown by `capsa manifest check` and docs/manifest.md. */
  note: string;
}

/** pledge(2) promises and their expansion in capsa (research/capsicum-casper.md §5). */
export const PROMISES: Readonly<Record<string, PromiseGrant>> = {
  stdio: { rights: any(R.fd_read, R.fd_write, R.fd_seek, R.fd_tell, R.fd_filestat_get, R.poll_fd_readwrite, R.fd_fdstat_set_flags, R.fd_sync, R.fd_datasync, R.fd_advise), note: 'read, write, seek and stat descriptors already open' },
  rpath: { rights: any(R.path_open, R.fd_read, R.fd_seek, R.fd_tell, R.fd_filestat_get, R.path_filestat_get, R.fd_readdir, R.path_readlink, R.fd_advise, R.poll_fd_readwrite), note: 'look up, read and stat files and directories' },
  wpath: { rights: any(R.path_open, R.fd_write, R.fd_seek, R.fd_tell, R.fd_filestat_set_size, R.path_filestat_set_size, R.fd_allocate, R.fd_sync, R.fd_datasync, R.poll_fd_readwrite), note: 'write and truncate files' },
  cpath: { rights: any(R.path_open, R.path_create_file, R.path_create_directory, R.path_remove_directory, R.path_unlink_file, R.path_rename_source, R.path_rename_target, R.path_symlink, R.path_link_source, R.path_link_target), note: 'create, rename, link and remove files and directories' },
  fattr: { rights: any(R.fd_filestat_set_times, R.path_filestat_set_times), note: 'change file times (WASI has no modes or owners)' },
  dpath: { rights: 0n, note: 'special files: WASI has no mknod or mkfifo, so nothing' },
  flock: { rights: 0n, note: 'file locks: WASI has none, so nothing' },
  dns: { rights: 0n, casper: ['system.dns'], note: 'the Casper service system.dns' },
  getpw: { rights: 0n, casper: ['system.pwd', 'system.grp'], note: 'the Casper services system.pwd and system.grp' },
};

/** The outcome of reading a list of rights words. */
export interface Expansion {
  rights: bigint;
  casper: string[];
  /** One message per unknown word, with a suggestion when one is close. */
  unknown: string[];
}

const ALL_WORDS = [...rightNames(), ...Object.keys(PROMISES)];

/** Turns rights words (Capsicum, WASI or pledge names) into a mask and Casper grants. */
export function expandRights(words: readonly string[]): Expansion {
  let rights = 0n;
  const casper: string[] = [];
  const unknown: string[] = [];
  for (const w of words) {
    const promise = PROMISES[w];
    if (promise) {
      rights |= promise.rights;
      for (const c of promise.casper ?? []) if (!casper.includes(c)) casper.push(c);
      continue;
    }
    const mask = rightByName(w);
    if (mask === undefined) unknown.push(`unknown right "${w}"${didYouMean(w, ALL_WORDS)}; use a Capsicum name such as CAP_READ or a promise such as rpath`);
    else rights |= mask;
  }
  return { rights, casper, unknown };
}
