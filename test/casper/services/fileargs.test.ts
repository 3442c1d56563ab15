/**
 * system.fileargs: FreeBSD's cap_fileargs/tests/fileargs_test.c as a table, against a fake guest
 * filesystem (ctx.openInGuest / lstatInGuest / realpathInGuest). What the FreeBSD test checks on
 * the opened descriptor (its mode, its rights, that a write fails with ENOTCAPABLE) is the
 * worker's part; here the service must ask the worker for exactly the flags, mode and rights
 * fileargs_init gave, and refuse everything else. Limits and requests are built as cap_fileargs.c
 * builds them.
 */
import { describe, expect, it } from 'vitest';
import { NV_FLAG, NvList } from '../../../src/casper/nvlist.js';
import { CasperError, type GuestFilestat, type ServiceContext } from '../../../src/casper/service.js';
import fileargsService, { FA, STAT_LAYOUT, S_IF, packStat } from '../../../src/casper/services/fileargs.js';
import { GrantError } from '../../../src/casper/services/common.js';
import { ERRNO, FILETYPE } from '../../../src/wasi/constants.js';
import { RIGHTS_ALL } from '../../../src/wasi/rights.js';

// wasi-libc's open flags and the SDK's CAP_* bits (guests/sdk/include/sys/capsicum.h).
const O_RDONLY = 0x04000000, O_WRONLY = 0x10000000, O_RDWR = O_RDONLY | O_WRONLY, O_CREAT = 0x1000;
const CAP_READ = 0x2n, CAP_WRITE = 0x40n, CAP_FCNTL = 0x8n;

const MAX_FILES = 200;
const TEST_FILE = '/etc/passwd';
const files = Array.from({ length: MAX_FILES }, (_, i) => `testsfiles.${i.toString(36).padStart(8, 'a')}`);

/** The guest's filesystem as the worker would see it. */
function fakeGuest(): { ctx: ServiceContext; opened: { path: string; flags: number; mode: number; rights: bigint }[] } {
  const opened: { path: string; flags: number; mode: number; rights: bigint }[] = [];
  const stat = (path: string): GuestFilestat => ({
    dev: 7n, ino: BigInt(files.indexOf(path) + 100), filetype: FILETYPE.REGULAR_FILE, nlink: 1n, size: 42n,
    atim: 1_700_000_000_123_456_789n, mtim: 1_700_000_001_000_000_000n, ctim: 1_700_000_002_000_000_001n,
  });
  const exists = (p: string): boolean => files.includes(p) || p === TEST_FILE;
  const ctx: ServiceContext = {
    channelState: new Map(), sandboxState: new Map(), config: undefined,
    openInGuest: (req) => {
      if (!exists(req.path) && !(req.flags & O_CREAT)) throw new CasperError(ERRNO.NOENT);
      return opened.push(req) - 1;
    },
    lstatInGuest: async (path) => {
      if (!exists(path)) throw new CasperError(ERRNO.NOENT);
      return stat(path);
    },
    realpathInGuest: async (path) => {
      if (!exists(path)) throw new CasperError(ERRNO.NOENT);
      return path.startsWith('/') ? path : `/home/test/${path}`;
    },
  };
  return { ctx, opened };
}

/** A fileargs_t: its channel's limits, as the broker keeps them, and the fake guest. */
class Fa {
  limits: NvList | null = null;
  readonly guest = fakeGuest();
  constructor(readonly hasChannel: boolean) {}
  limitSet(l: NvList): number {
    const e = fileargsService.limit!(this.limits, l);
    if (e === 0) this.limits = l.clone();
    return e;
  }
  async xfer(req: NvList): Promise<{ error: number; reply: NvList }> {
    try {
      return { error: 0, reply: await fileargsService.command(req.getString('cmd')!, this.limits, req, this.guest.ctx) };
    } catch (e) {
      if (e instanceof CasperError) return { error: e.errno, reply: new NvList() };
      throw e;
    }
  }
}

function rightsBinary(rights: bigint): Uint8Array {
  const b = new Uint8Array(16);
  new DataView(b.buffer).setBigUint64(0, rights, true);
  return b;
}

/** fileargs_create_limit + fileargs_initnv: one cap_limit_set on a fresh system.fileargs channel. */
function fileargsInit(argv: string[], flags: number, mode: number, rights: bigint | null, operations: number): Fa {
  if (argv.length === 0) return new Fa(false);
  const limits = new NvList(NV_FLAG.NO_UNIQUE);
  limits.addNumber('flags', flags);
  limits.addNumber('operations', operations);
  if (rights !== null) limits.addBinary('cap_rights', rightsBinary(rights));
  if (flags & O_CREAT) limits.addNumber('mode', mode);
  for (const a of argv) limits.addNull(a);
  const fa = new Fa(true);
  expect(fa.limitSet(limits)).toBe(0);
  return fa;
}

/** fileargs_fetch. */
async function fetch(fa: Fa, name: string, cmd: string): Promise<{ errno: number; reply?: NvList }> {
  if (!fa.hasChannel) return { errno: ERRNO.NOTCAPABLE };
  const { error, reply } = await fa.xfer(new NvList(NV_FLAG.NO_UNIQUE).addString('cmd', cmd).addString('name', name));
  return error === 0 ? { errno: 0, reply } : { errno: error };
}

/** test_file_open: 0 or errno; the worker's open request on success. */
async function testFileOpen(fa: Fa, name: string): Promise<number> {
  const r = await fetch(fa, name, 'open');
  if (r.errno) return r.errno;
  expect(r.reply!.getString('cmd')).toBe('open');
  const fd = r.reply!.get('fd', 'descriptor')!.value;
  expect(fa.guest.opened[fd]?.path).toBe(name);
  return 0;
}
async function testFileLstat(fa: Fa, name: string): Promise<number> {
  const r = await fetch(fa, name, 'lstat');
  if (r.errno) return r.errno;
  expect(r.reply!.getString('cmd')).toBe('lstat');
  expect(r.reply!.getBinary('stat')!.length).toBe(STAT_LAYOUT.size); // the client asserts sizeof(struct stat)
  return 0;
}
async function testFileRealpath(fa: Fa, name: string): Promise<number> {
  const r = await fetch(fa, name, 'realpath');
  if (r.errno) return r.errno;
  expect(r.reply!.getString('realpath')).toBe(`/home/test/${name}`);
  return 0;
}

interface Case { name: string; flags: number; mode: number; rights: bigint | null; ops: number; create?: boolean }
const CASES: Case[] = [
  { name: 'fileargs__open_read', flags: O_RDONLY, mode: 0, rights: CAP_READ | CAP_FCNTL, ops: FA.OPEN },
  { name: 'fileargs__open_write', flags: O_WRONLY, mode: 0, rights: CAP_WRITE | CAP_FCNTL, ops: FA.OPEN },
  { name: 'fileargs__open_create', flags: O_RDWR | O_CREAT, mode: 666, rights: CAP_WRITE | CAP_FCNTL | CAP_READ, ops: FA.OPEN, create: true },
  { name: 'fileargs__open_with_casper', flags: O_RDONLY, mode: 0, rights: CAP_READ, ops: FA.OPEN },
  { name: 'fileargs__fopen_read', flags: O_RDONLY, mode: 0, rights: CAP_READ | CAP_FCNTL, ops: FA.OPEN },
  { name: 'fileargs__fopen_write', flags: O_WRONLY, mode: 0, rights: CAP_WRITE | CAP_FCNTL, ops: FA.OPEN },
  { name: 'fileargs__fopen_create', flags: O_RDWR | O_CREAT, mode: 0, rights: CAP_READ | CAP_WRITE | CAP_FCNTL, ops: FA.OPEN, create: true },
  { name: 'fileargs__lstat', flags: 0, mode: 0, rights: null, ops: FA.LSTAT },
  { name: 'fileargs__realpath', flags: 0, mode: 0, rights: null, ops: FA.REALPATH },
  { name: 'fileargs__open_lstat', flags: O_RDONLY, mode: 0, rights: CAP_READ | CAP_FCNTL, ops: FA.OPEN | FA.LSTAT },
  { name: 'fileargs__open_realpath', flags: O_RDONLY, mode: 0, rights: CAP_READ | CAP_FCNTL, ops: FA.OPEN | FA.REALPATH },
];

describe('fileargs_test.c', () => {
  it.each(CASES)('$name', async ({ flags, mode, rights, ops }) => {
    const fa = fileargsInit(files, flags, mode, rights, ops);
    const want = (op: number): number => (ops & op ? 0 : ERRNO.NOTCAPABLE);
    for (const f of files) {
      // ALLOWED / DISALLOWED by the operations given at init: twice, as the FreeBSD test does.
      for (let i = 0; i < 2; i++) {
        expect(await testFileOpen(fa, f)).toBe(want(FA.OPEN));
        expect(await testFileLstat(fa, f)).toBe(want(FA.LSTAT));
        expect(await testFileRealpath(fa, f)).toBe(want(FA.REALPATH));
      }
      // A name not given at init, whatever the operation.
      expect(await testFileOpen(fa, TEST_FILE)).toBe(ERRNO.NOTCAPABLE);
      expect(await testFileLstat(fa, TEST_FILE)).toBe(ERRNO.NOTCAPABLE);
      expect(await testFileRealpath(fa, TEST_FILE)).toBe(ERRNO.NOTCAPABLE);
    }
    // Every open asks the worker for init's flags, mode and rights (the fd's mode and rights).
    expect(fa.guest.opened.length).toBe(ops & FA.OPEN ? 2 * MAX_FILES : 0);
    for (const req of fa.guest.opened) {
      expect(req).toEqual({ path: req.path, flags, mode: flags & O_CREAT ? mode : 0, rights: rights ?? RIGHTS_ALL });
    }
  });

  it('fileargs_init with no names gives no channel: everything is ENOTCAPABLE', async () => {
    const fa = fileargsInit([], O_RDONLY, 0, null, FA.OPEN);
    expect(await testFileOpen(fa, files[0]!)).toBe(ERRNO.NOTCAPABLE);
  });
});

describe('fileargs_limit', () => {
  const base = (): NvList => new NvList(NV_FLAG.NO_UNIQUE).addNumber('flags', O_RDONLY).addNumber('operations', FA.OPEN).addNull('a.txt');

  it('limits are set once: a second limit_set is ENOTCAPABLE, even a narrower one', () => {
    const fa = new Fa(true);
    expect(fa.limitSet(base())).toBe(0);
    expect(fa.limitSet(base())).toBe(ERRNO.NOTCAPABLE);
    expect(fa.limitSet(new NvList(NV_FLAG.NO_UNIQUE))).toBe(ERRNO.NOTCAPABLE);
  });

  it('without limits every command is ENOTCAPABLE', async () => {
    const fa = new Fa(true);
    for (const cmd of ['open', 'lstat', 'realpath']) {
      expect((await fa.xfer(new NvList().addString('cmd', cmd).addString('name', 'a.txt'))).error).toBe(ERRNO.NOTCAPABLE);
    }
    expect(fa.guest.opened).toEqual([]);
  });

  it('without "operations" nothing is allowed (FreeBSD reads a missing one as 0)', async () => {
    const fa = new Fa(true);
    expect(fa.limitSet(new NvList(NV_FLAG.NO_UNIQUE).addNumber('flags', O_RDONLY).addNull('a.txt'))).toBe(0);
    expect((await fa.xfer(new NvList().addString('cmd', 'open').addString('name', 'a.txt'))).error).toBe(ERRNO.NOTCAPABLE);
  });

  it.each<[string, NvList]>([
    ['O_CREAT without mode', new NvList(NV_FLAG.NO_UNIQUE).addNumber('flags', O_CREAT | O_RDWR).addNumber('operations', FA.OPEN).addNull('a')],
    ['cap_rights of 8 bytes', new NvList(NV_FLAG.NO_UNIQUE).addNumber('operations', FA.OPEN).addBinary('cap_rights', new Uint8Array(8)).addNull('a')],
    ['cap_rights with undefined bits', new NvList(NV_FLAG.NO_UNIQUE).addNumber('operations', FA.OPEN).addBinary('cap_rights', rightsBinary(1n << 40n)).addNull('a')],
    ['cap_rights with word 1 set', new NvList(NV_FLAG.NO_UNIQUE).addNumber('operations', FA.OPEN).addBinary('cap_rights', Uint8Array.of(2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0)).addNull('a')],
    ['an unknown operation bit', new NvList(NV_FLAG.NO_UNIQUE).addNumber('operations', 8).addNull('a')],
    ['a name that is not NULL', new NvList(NV_FLAG.NO_UNIQUE).addNumber('operations', FA.OPEN).addString('a', 'b')],
    ['flags that are not a number', new NvList(NV_FLAG.NO_UNIQUE).addString('flags', 'r').addNumber('operations', FA.OPEN)],
  ])('%s is EINVAL', (_, l) => {
    expect(fileargsService.limit!(null, l)).toBe(ERRNO.INVAL);
  });
});

describe('commands', () => {
  it('open replies { cmd: "open", fd: descriptor } in that order, never the "cache" form', async () => {
    const fa = fileargsInit(files.slice(0, 3), O_RDONLY, 0, CAP_READ, FA.OPEN);
    const { reply } = await fa.xfer(new NvList(NV_FLAG.NO_UNIQUE).addString('cmd', 'open').addString('name', files[1]!));
    expect(reply.pairs).toEqual([['cmd', { type: 'string', value: 'open' }], ['fd', { type: 'descriptor', value: 0 }]]);
    expect(fa.guest.opened).toEqual([{ path: files[1], flags: O_RDONLY, mode: 0, rights: CAP_READ }]);
  });

  it('passes the guest\'s own errors through (ENOENT for a listed name that does not exist)', async () => {
    const fa = fileargsInit(['missing.txt'], O_RDONLY, 0, null, FA.OPEN | FA.LSTAT | FA.REALPATH);
    for (const cmd of ['open', 'lstat', 'realpath']) {
      expect((await fetch(fa, 'missing.txt', cmd)).errno).toBe(ERRNO.NOENT);
    }
  });

  it('answers ENOTSUP when the broker gives no way into the guest\'s filesystem', async () => {
    const fa = fileargsInit([files[0]!], O_RDONLY, 0, null, FA.OPEN | FA.LSTAT | FA.REALPATH);
    delete fa.guest.ctx.openInGuest;
    delete fa.guest.ctx.lstatInGuest;
    delete fa.guest.ctx.realpathInGuest;
    for (const cmd of ['open', 'lstat', 'realpath']) expect((await fetch(fa, files[0]!, cmd)).errno).toBe(ERRNO.NOTSUP);
  });

  it('an unknown command is EINVAL; a request without "name" is ENOTCAPABLE', async () => {
    const fa = fileargsInit([files[0]!], O_RDONLY, 0, null, FA.OPEN);
    expect((await fa.xfer(new NvList().addString('cmd', 'unlink').addString('name', files[0]!))).error).toBe(ERRNO.INVAL);
    expect((await fa.xfer(new NvList().addString('cmd', 'open'))).error).toBe(ERRNO.NOTCAPABLE);
  });

  it('lstat packs wasi-libc\'s struct stat for wasm32', async () => {
    const fa = fileargsInit([files[5]!], 0, 0, null, FA.LSTAT);
    const b = (await fetch(fa, files[5]!, 'lstat')).reply!.getBinary('stat')!;
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    expect(dv.getBigUint64(STAT_LAYOUT.st_dev, true)).toBe(7n);
    expect(dv.getBigUint64(STAT_LAYOUT.st_ino, true)).toBe(105n);
    expect(dv.getBigUint64(STAT_LAYOUT.st_nlink, true)).toBe(1n);
    expect(dv.getUint32(STAT_LAYOUT.st_mode, true)).toBe(S_IF.REG);
    expect(dv.getBigInt64(STAT_LAYOUT.st_size, true)).toBe(42n);
    expect(dv.getBigInt64(STAT_LAYOUT.st_atim, true)).toBe(1_700_000_000n);
    expect(dv.getInt32(STAT_LAYOUT.st_atim + 8, true)).toBe(123_456_789);
    expect(dv.getInt32(STAT_LAYOUT.st_ctim + 8, true)).toBe(1);
    expect(dv.getUint32(STAT_LAYOUT.st_uid, true)).toBe(0);
  });

  it.each([
    [FILETYPE.DIRECTORY, S_IF.DIR], [FILETYPE.SYMBOLIC_LINK, S_IF.LNK], [FILETYPE.CHARACTER_DEVICE, S_IF.CHR],
    [FILETYPE.BLOCK_DEVICE, S_IF.BLK], [FILETYPE.SOCKET_STREAM, S_IF.SOCK], [FILETYPE.UNKNOWN, 0],
  ])('st_mode of WASI filetype %i is 0%o', (filetype, mode) => {
    const b = packStat({ dev: 0n, ino: 0n, filetype, nlink: 0n, size: 0n, atim: 0n, mtim: 0n, ctim: 0n });
    expect(new DataView(b.buffer).getUint32(STAT_LAYOUT.st_mode, true)).toBe(mode);
  });
});

describe('fromManifest', () => {
  it('takes no limits: the guest sets them once', () => {
    expect(fileargsService.fromManifest!({})).toBeNull();
    expect(() => fileargsService.fromManifest!({ names: ['a'] })).toThrow(GrantError);
  });
});
