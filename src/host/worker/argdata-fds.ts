/** Turns a run's argdata tree into bytes: !file nodes are opened into the guest's fd table. */
import { encodeArgdata, type ArgdataValue } from '../../wasi/argdata.js';
import type { WasiContext } from '../../wasi/context.js';
import { FILETYPE } from '../../wasi/constants.js';
import { resolve } from '../../wasi/fs/resolve.js';
import type { FsFile } from '../../wasi/fs/types.js';
import { DirHandle, FileHandle } from '../../wasi/handles.js';
import { formatRights, R, TYPE_RIGHTS } from '../../wasi/rights.js';
import type { ArgNode } from '../manifest/types.js';

const READ = R.fd_read | R.fd_readdir;
const WRITE = R.fd_datasync | R.fd_write | R.fd_allocate | R.fd_filestat_set_size;

/** A preopened directory of the guest that contains `path`, and the rest of the path below it. */
function preopenOf(ctx: WasiContext, path: string): { fd: number; rest: string } | undefined {
  let best: { fd: number; rest: string; len: number } | undefined;
  for (const [fd, e] of ctx.fds.entries()) {
    const p = e.preopen;
    if (p === undefined || !(e.handle instanceof DirHandle)) continue;
    const prefix = p === '/' ? '/' : p + '/';
    if (path.startsWith(prefix) && (!best || p.length > best.len)) best = { fd, rest: path.slice(prefix.length), len: p.length };
  }
  return best;
}

function openFile(ctx: WasiContext, node: Extract<ArgNode, { type: 'file' }>): number {
  const where = preopenOf(ctx, node.path);
  if (!where || where.rest === '') throw new Error(`argdata: ${node.path} is not inside a granted directory`);
  const entry = ctx.fds.peek(where.fd)!;
  const base = node.rights.base & TYPE_RIGHTS.regularFile.base;
  // A file reached through a directory holds at most what the directory passes on.
  const excess = base & ~entry.inheriting;
  if (excess) throw new Error(`argdata: ${node.path} asks for ${formatRights(excess)}, which ${entry.preopen} does not pass on`);
  const r = resolve((entry.handle as DirHandle).dir, where.rest, true);
  if (!r.node || r.node.filetype !== FILETYPE.REGULAR_FILE) throw new Error(`argdata: ${node.path} is not a regular file`);
  const io = (r.node as FsFile).open({ read: (base & READ) !== 0n, write: (base & WRITE) !== 0n, truncate: false, append: false });
  return ctx.fds.insert({ handle: new FileHandle(io, false), base, inheriting: 0n, fdflags: 0 });
}

function walk(ctx: WasiContext, n: ArgNode): ArgdataValue {
  switch (n.type) {
    case 'file': return { type: 'fd', fd: openFile(ctx, n) };
    case 'fd':
      if (!ctx.fds.peek(n.fd)) throw new Error(`argdata: fd ${n.fd} is not a descriptor the guest is granted`);
      return n;
    case 'seq': return { type: 'seq', items: n.items.map((i) => walk(ctx, i)) };
    case 'map': return { type: 'map', entries: n.entries.map(([k, v]) => [walk(ctx, k), walk(ctx, v)]) };
    default: return n;
  }
}

/** Opens the tree's files (in tree order, after the preopens) and installs the encoded tree. */
export function installArgdata(ctx: WasiContext, tree: ArgNode): void {
  ctx.argdata = encodeArgdata(walk(ctx, tree));
}
