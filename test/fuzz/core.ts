/**
 * The fuzzer's core: builds random worlds (a memory image, a descriptor table, in-memory trees
 * and a host mount with hostile symlinks) and calls every import of a guest (the 46 preview1
 * calls, `capsicum`, `argdata` and `casper`) with random and boundary arguments, checking each
 * result against the errnos the spec allows (errnos.ts) and cheap invariants after each call.
 *
 * Runs in one thread, synchronously; the casper imports need a BridgeClient whose host end is a
 * Broker (driver.ts serves it from the main thread, which also is the per-call watchdog).
 *
 * Determinism: call i belongs to episode floor(i / EPISODE_CALLS); an episode's world and its
 * call sequence come from a generator seeded with (seed, episode) alone, so call i is replayed by
 * re-running its episode from the start (what `--replay` does). Arguments never depend on
 * results except through the descriptor table, which a replay rebuilds the same way.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ERRNO } from '../../src/wasi/constants.js';
import { ProcExit } from '../../src/wasi/errors.js';
import { PREVIEW1_FUNCTIONS } from '../../src/wasi/preview1.js';
import { createWasi, type Preopen, type Wasi } from '../../src/wasi/wasi.js';
import { createMemFs, MemDir, MemFile, MemSymlink, seedMemDir } from '../../src/wasi/fs/memfs.js';
import { DirHandle } from '../../src/wasi/handles.js';
import { typeRights } from '../../src/wasi/context.js';
import type { FdEntry } from '../../src/wasi/fdtable.js';
import { RIGHTS_ALL } from '../../src/wasi/rights.js';
import { encodeArgdata, type ArgdataValue } from '../../src/wasi/argdata.js';
import { NV_FLAG, NvList } from '../../src/casper/nvlist.js';
import { packNvlist, unpackNvlist } from '../../src/casper/nvlist-codec.js';
import type { BridgeClient } from '../../src/host/bridge.js';
import { ChannelHandle, createCasperImports } from '../../src/host/worker/casper-imports.js';
import { ALLOWED_ERRNOS, POLL_EVENT_ERRNOS } from './errnos.js';

/** Calls per episode: a fresh world every this many calls. */
export const EPISODE_CALLS = 1000;

/** The names of the casper services the broker of a fuzz run offers (driver.ts grants them all). */
export const FUZZ_SERVICES = ['system.dns', 'system.pwd', 'system.grp', 'system.random', 'system.sysctl', 'system.fileargs'];

// ---------------------------------------------------------------------------------------------
// A small seeded generator (sfc32): fast, and the same sequence on every machine.

export class Rng {
  private a: number; private b: number; private c: number; private d: number;
  constructor(seed: number, stream: number) {
    this.a = 0x9e3779b9; this.b = seed >>> 0; this.c = stream >>> 0; this.d = 1;
    for (let i = 0; i < 15; i++) this.u32();
  }
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  /** 0 … n-1. */
  int(n: number): number { return n <= 1 ? 0 : this.u32() % n; }
  chance(p: number): boolean { return this.u32() < p * 4294967296; }
  pick<T>(a: readonly T[]): T { return a[this.int(a.length)]!; }
  u64(): bigint { return (BigInt(this.u32()) << 32n) | BigInt(this.u32()); }
}

// ---------------------------------------------------------------------------------------------
// Results

/** One failed check, with what it takes to replay it. */
export interface Failure {
  seed: number;
  index: number;
  call: string;
  args: string;
  problem: string;
}

export interface FuzzOptions {
  seed: number;
  /** Calls to make, counted from `from`. */
  count: number;
  /** First call index; rounded down to its episode's start, since a call needs the calls before it. */
  from?: number;
  /** A directory of its own: the host mount lives in `<tmp>/mount`, sentinels beside it. */
  tmp: string;
  /** The casper bridge; without it the casper imports are not called. */
  client?: BridgeClient | undefined;
  /** Where the watchdog in another thread sees the call in progress (HEARTBEAT_BYTES; see readHeartbeat). */
  heartbeat?: SharedArrayBuffer | undefined;
  /** Told about every call (replay). */
  trace?: ((line: string) => void) | undefined;
  /** Stop after this many failures (default 10). */
  maxFailures?: number;
  /** Told every so many calls, for progress lines. */
  onProgress?: ((calls: number) => void) | undefined;
}

export interface FuzzResult {
  calls: number;
  failures: Failure[];
  /** Calls per import, and how often each errno came back: the coverage a run had. */
  perImport: Record<string, Record<string, number>>;
  /** Milliseconds spent inside each import. */
  msPerImport: Record<string, number>;
}

// ---------------------------------------------------------------------------------------------
// Boundary values

const I32_EDGES = [0, 1, -1, 2 ** 31, 2 ** 31 - 1, 2 ** 32 - 1, 2 ** 32 - 2, 4096, 4097, 65535, 65536];
const U64_EDGES = [0n, 1n, -1n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 32n, 4096n, 2n ** 31n];
const enc = new TextEncoder();

/** What wasm hands an import for an i32 argument: a signed 32-bit Number. */
const i32 = (x: number): number => x | 0;
/** …and for an i64: a signed 64-bit BigInt. */
const i64 = (x: bigint): bigint => BigInt.asIntN(64, x);

const fmt = (v: unknown): string => (typeof v === 'bigint' ? `${v}n` : String(v));

// ---------------------------------------------------------------------------------------------
// The world of one episode

interface World {
  rng: Rng;
  wasi: Wasi;
  memory: WebAssembly.Memory;
  imports: Record<string, (...a: never[]) => unknown>;
  memRoots: MemDir[];
  /** fds that were open once and are closed now. */
  closed: number[];
  hostErrors: string[];
  /** Rights of every entry seen, by identity: they may only shrink. */
  seen: WeakMap<FdEntry, { base: bigint; inheriting: bigint }>;
  notes: string[];
  /** The service behind each Casper channel the guest holds, learned from the replies that gave it. */
  services: WeakMap<object, string>;
  /** The service a channel granted by the current xfer's reply will serve. */
  granting: string | undefined;
}

/** Guest paths fileargs limits and requests name: files, links, an escape, a dangling link. */
const FILEARGS_NAMES = ['/mem/f', '/host/f', '/host/ln', '/host/esc/secret', '/mem/d/g', '/ro/f', '/mem/dang', '/host/d/up', '/host/loop'];

const NAMES = ['a', 'b', 'd', 'e', 'f', 'g', 'ln', 'lnd', 'loop', 'esc', 'abs', 'dang', 'up', 'x', 'new', 'дир', 'ü'];

/** A random tree of files, directories and symlinks (some escaping, some looping) in a host dir. */
function buildHostTree(rng: Rng, root: string): void {
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(path.join(root, 'd', 'e'), { recursive: true });
  fs.writeFileSync(path.join(root, 'f'), 'host file');
  fs.writeFileSync(path.join(root, 'd', 'g'), new Uint8Array(rng.int(3000)));
  const links: [string, string][] = [
    ['ln', 'f'], ['lnd', 'd'], ['loop', 'loop'], ['esc', '../outside'], ['abs', '/etc'], ['dang', 'nope'],
    ['d/up', '../f'], ['d/out', '../../outside/secret'], ['a', 'd/e/../../f'], ['d/e/deep', '../../lnd/e/deep'],
  ];
  for (const [name, target] of links) if (rng.chance(0.7)) fs.symlinkSync(target, path.join(root, name));
  if (rng.chance(0.3)) fs.mkdirSync(path.join(root, 'b'));
}

/** The same in memory, within quotas small enough that ENOSPC happens. */
function buildMemTree(rng: Rng): MemDir {
  const root = createMemFs({ maxBytes: rng.pick([512, 4096, 65536, 1 << 20]), maxInodes: rng.pick([6, 16, 64, 512]) });
  try {
    seedMemDir(root, { f: 'memory file', d: { g: 'x'.repeat(rng.int(200)), e: {} } });
    for (const [name, target] of [['ln', 'f'], ['lnd', 'd'], ['loop', 'loop'], ['esc', '../x'], ['abs', '/f'], ['dang', 'nope']] as const) {
      if (rng.chance(0.6)) root.symlink(name, target);
    }
  } catch { /* the quota ran out while seeding: a small world is a world too */ }
  return root;
}

function randomArgdata(rng: Rng, depth: number): ArgdataValue {
  switch (rng.int(depth > 3 ? 6 : 8)) {
    case 0: return { type: 'null' };
    case 1: return { type: 'bool', value: rng.chance(0.5) };
    case 2: return { type: 'int', value: rng.u64() - 2n ** 63n };
    case 3: return { type: 'str', value: rng.pick(['', 'x', 'héllo', '\0a']) };
    case 4: return { type: 'fd', fd: rng.pick([0, 1, 3, 2 ** 31 - 1]) };
    case 5: return { type: 'float', value: rng.pick([0, -1.5, NaN, Infinity]) };
    case 6: return { type: 'seq', items: Array.from({ length: rng.int(4) }, () => randomArgdata(rng, depth + 1)) };
    default: return { type: 'map', entries: Array.from({ length: rng.int(3) }, () => [randomArgdata(rng, depth + 1), randomArgdata(rng, depth + 1)]) };
  }
}

function buildWorld(seed: number, episode: number, tmp: string, client: BridgeClient | undefined): World {
  const rng = new Rng(seed, episode);
  const hostRoot = path.join(tmp, 'mount');
  buildHostTree(rng, hostRoot);
  const mem = buildMemTree(rng);
  const preopens: Preopen[] = [{ guest: '/mem', memory: mem }];
  if (rng.chance(0.85)) preopens.push({ guest: '/host', host: hostRoot });
  if (rng.chance(0.5)) preopens.push({ guest: '/ro', host: hostRoot, readonly: true });
  if (rng.chance(0.5)) preopens.push({ guest: '/mem2', memory: { a: 'other tree', d: {} } });
  if (rng.chance(0.4)) preopens.push({ guest: '/alias', memory: mem, rights: { base: rng.u64() & RIGHTS_ALL, inheriting: rng.u64() & RIGHTS_ALL } });
  if (rng.chance(0.3)) preopens.push({ guest: '/init', memory: true, initOnly: true });
  for (let i = preopens.length - 1; i > 0; i--) { const j = rng.int(i + 1); [preopens[i], preopens[j]] = [preopens[j]!, preopens[i]!]; }

  const hostErrors: string[] = [];
  const wasi = createWasi({
    args: rng.chance(0.5) ? ['prog', 'ärg', ''] : [],
    env: rng.chance(0.5) ? { A: '1', 'É': 'ü' } : {},
    preopens,
    stdin: rng.chance(0.5) ? 'input\n' : undefined,
    stdout: () => {},
    stderr: rng.chance(0.5) ? () => {} : undefined,
    tty: rng.chance(0.3),
    // Room for stdio and the preopens, then a few more or many: EMFILE must come up too.
    maxFds: 3 + preopens.length + rng.pick([0, 1, 4, 16, 1000]),
    memFs: { maxBytes: rng.pick([256, 65536]), maxInodes: rng.pick([4, 64]) },
    ...(rng.chance(0.2) ? { auditor: { level: rng.pick(['denied', 'all'] as const), record: () => {} } } : {}),
    onHostError: (call, e) => hostErrors.push(`${call}: ${(e as Error)?.stack ?? String(e)}`),
  });
  const ctx = wasi.context;
  if (rng.chance(0.5)) {
    try { ctx.argdata = encodeArgdata(randomArgdata(rng, 0)); } catch { ctx.argdata = new Uint8Array(0); }
  } else if (rng.chance(0.5)) {
    ctx.argdata = new Uint8Array(rng.int(100)).map(() => rng.int(256));
  }

  const pages = rng.pick([1, 1, 2, 3]);
  const memory = rng.chance(0.15)
    ? new WebAssembly.Memory({ initial: pages, maximum: pages + 2, shared: true })
    : new WebAssembly.Memory({ initial: pages, maximum: pages + 2 });
  const words = new Uint32Array(memory.buffer);
  const fill = rng.int(3); // random, zeroes, or a repeated word
  const word = rng.u32();
  for (let i = 0; i < words.length; i++) words[i] = fill === 0 ? rng.u32() : fill === 1 ? 0 : word;
  ctx.mem.bind(memory);

  const imports: Record<string, (...a: never[]) => unknown> = {};
  const io = wasi.getImportObject() as Record<string, Record<string, (...a: never[]) => unknown>>;
  for (const [mod, fns] of Object.entries(io)) {
    for (const [name, fn] of Object.entries(fns)) imports[mod === 'wasi_snapshot_preview1' ? name : `${mod}.${name}`] = fn;
  }
  if (client) {
    const casper = createCasperImports(ctx, client, () => {});
    for (const [name, fn] of Object.entries(casper)) imports[`casper.${name}`] = fn as (...a: never[]) => unknown;
  }
  const memRoots: MemDir[] = [];
  for (const [, e] of ctx.fds.entries()) {
    if (e.handle instanceof DirHandle && e.handle.dir instanceof MemDir && !memRoots.includes(e.handle.dir)) memRoots.push(e.handle.dir);
  }
  const w: World = { rng, wasi, memory, imports, memRoots, closed: [], hostErrors, seen: new WeakMap(), notes: [], services: new WeakMap(), granting: undefined };
  for (const [, e] of ctx.fds.entries()) w.seen.set(e, { base: e.base, inheriting: e.inheriting });
  return w;
}

// ---------------------------------------------------------------------------------------------
// Argument generators

class Args {
  /**
   * Set for about half the calls: every argument well-formed (pointers inside memory, exact
   * lengths, open descriptors of the right kind, paths of real names), so that calls succeed and
   * the state grows deep; the other half are hostile at every argument.
   */
  sane = false;
  constructor(readonly w: World) {}
  get rng(): Rng { return this.w.rng; }
  get size(): number { return this.w.memory.buffer.byteLength; }
  private u8(): Uint8Array { return new Uint8Array(this.w.memory.buffer); }

  /** An address as a guest might pass it: mostly inside memory, sometimes at or past its end. */
  ptr(len: number, align = 1): number {
    if (this.sane) return this.inside(len, align);
    const r = this.rng.int(100);
    if (r < 80) return this.inside(len, align);
    if (r < 86) return this.size - this.rng.int(Math.min(len, 8) + 1);
    if (r < 90) return this.size - Math.floor(len / 2);
    return this.rng.pick([...I32_EDGES, this.size, this.size + 1, -len]);
  }
  private inside(len: number, align: number): number {
    const room = Math.max(0, this.size - len);
    return Math.floor(this.rng.int(room + 1) / align) * align;
  }
  /** Writes `bytes` somewhere (mostly inside) and returns where, as the guest would point at it. */
  place(bytes: Uint8Array, align = 1): number {
    const p = this.ptr(bytes.length, align);
    const u8 = this.u8();
    if (p >= 0 && p < u8.length) u8.set(bytes.subarray(0, u8.length - p), p);
    return p;
  }
  /** A length that is usually `actual`, sometimes an edge. */
  len(actual: number): number {
    return this.sane || this.rng.chance(0.85) ? actual : this.rng.pick([0, actual + 1, actual - 1, ...I32_EDGES]);
  }
  u64(): bigint {
    return this.sane || this.rng.chance(0.6) ? BigInt(this.rng.int(5000)) : this.rng.pick(U64_EDGES);
  }
  small(): number {
    return this.sane || this.rng.chance(0.8) ? this.rng.int(40) : this.rng.pick(I32_EDGES);
  }
  flags(bits: number): number {
    return this.sane || this.rng.chance(0.85) ? this.rng.int(1 << bits) : this.rng.pick(I32_EDGES);
  }

  private openFds(pred?: (e: FdEntry) => boolean): number[] {
    const out: number[] = [];
    for (const [fd, e] of this.w.wasi.context.fds.entries()) if (!pred || pred(e)) out.push(fd);
    return out;
  }
  /** An open fd mostly; else a closed one or a forged number. */
  fd(pred?: (e: FdEntry) => boolean): number {
    const open = this.openFds(pred);
    const r = this.rng.int(100);
    if (open.length && (this.sane || r < 75)) return this.rng.pick(open);
    if (this.w.closed.length && r < 85) return this.rng.pick(this.w.closed);
    const any = this.openFds();
    if (any.length && r < 90) return this.rng.pick(any);
    return this.rng.pick([...I32_EDGES, 3, 5, 7, 31, 1023, 1024]);
  }
  dirfd(): number { return this.fd((e) => e.handle instanceof DirHandle); }
  channelFd(): number { return this.fd((e) => e.handle instanceof ChannelHandle); }

  /** Rights for path_open through `dirfd`: when sane, within what it passes on. */
  rightsFor(dirfd: number): bigint {
    const e = this.w.wasi.context.fds.peek(dirfd);
    if (!this.sane || !e) return this.rights();
    return this.rng.chance(0.6) ? e.inheriting : e.inheriting & this.rng.u64();
  }
  rights(): bigint {
    const entries = [...this.w.wasi.context.fds.entries()];
    switch (this.rng.int(7)) {
      case 0: return 0n;
      case 1: return RIGHTS_ALL;
      case 2: return -1n;
      case 3: return this.rng.u64();
      case 4: return this.rng.u64() & RIGHTS_ALL;
      default: {
        if (!entries.length) return 0n;
        const [, e] = this.rng.pick(entries);
        const m = this.rng.chance(0.5) ? e.base : e.inheriting;
        return this.rng.chance(0.5) ? m : m & this.rng.u64();
      }
    }
  }

  /** Path bytes: names of the trees, ".", "..", "", long names, NUL, invalid UTF-8, absolute paths. */
  pathBytes(): Uint8Array {
    if (this.sane) {
      const names: string[] = [];
      for (let i = 1 + this.rng.int(3); i > 0; i--) names.push(this.rng.chance(0.9) ? this.rng.pick(NAMES) : this.rng.pick(['..', '.']));
      return enc.encode(names.join('/') + (this.rng.chance(0.05) ? '/' : ''));
    }
    const parts: Uint8Array[] = [];
    const n = 1 + this.rng.int(this.rng.chance(0.1) ? 40 : 4);
    for (let i = 0; i < n; i++) {
      const r = this.rng.int(100);
      let p: Uint8Array;
      if (r < 55) p = enc.encode(this.rng.pick(NAMES));
      else if (r < 65) p = enc.encode('..');
      else if (r < 70) p = enc.encode('.');
      else if (r < 74) p = new Uint8Array(0);
      else if (r < 78) p = enc.encode('n'.repeat(this.rng.pick([255, 256, 1000])));
      else if (r < 82) p = Uint8Array.of(0x61, 0, 0x62);
      else if (r < 86) p = this.rng.pick([Uint8Array.of(0xff), Uint8Array.of(0xc3, 0x28), Uint8Array.of(0xed, 0xa0, 0x80), Uint8Array.of(0xf0, 0x9f)]);
      else if (r < 90) p = enc.encode(this.rng.pick(['mem', 'host', 'etc', 'outside', 'proc']));
      else p = enc.encode(`n${this.rng.int(20)}`);
      parts.push(p);
    }
    let text = parts.reduce<number[]>((acc, p, i) => { if (i) acc.push(0x2f); acc.push(...p); return acc; }, []);
    if (this.rng.chance(0.08)) text = [0x2f, ...text];
    if (this.rng.chance(0.08)) text.push(0x2f);
    if (this.rng.chance(0.02)) text = [...enc.encode('a/'.repeat(2100))];
    return Uint8Array.from(text);
  }
  /** [ptr, len] of a path placed in memory. */
  path(): [number, number] {
    const b = this.pathBytes();
    this.w.notes.push(JSON.stringify(Buffer.from(b).toString('latin1').slice(0, 80)));
    return [this.place(b), this.len(b.length)];
  }
  /** A guest path for fileargs and friends: absolute, under a preopen or not. */
  guestPath(): string {
    const p = Buffer.from(this.pathBytes()).toString('utf8');
    return this.rng.chance(0.8) ? `/${this.rng.pick(['mem', 'host', 'ro', 'mem2', 'alias', 'init', 'nope'])}/${p}` : p;
  }

  /** An iovec array: counts up to and past IOV_MAX, buffers inside and outside memory. */
  iovs(): [number, number] {
    const count = this.sane || this.rng.chance(0.85) ? this.rng.int(5) : this.rng.pick([1024, 1025, 4096, 2 ** 31, 2 ** 32 - 1, -1]);
    const real = Math.min(count >>> 0, 16);
    const arr = new Uint8Array(real * 8);
    const dv = new DataView(arr.buffer);
    for (let i = 0; i < real; i++) {
      const len = this.sane || this.rng.chance(0.8) ? this.rng.int(300) : this.rng.pick(I32_EDGES);
      dv.setUint32(i * 8, this.ptr(Math.min(len >>> 0, this.size)) >>> 0, true);
      dv.setUint32(i * 8 + 4, len >>> 0, true);
    }
    return [this.place(arr, 4), count];
  }

  /** poll_oneoff subscriptions: clocks that expire at once, fd events, unknown types. */
  subscriptions(): [number, number] {
    const n = this.sane || this.rng.chance(0.9) ? 1 + this.rng.int(4) : this.rng.pick([0, 4096, 4097, 2 ** 31, -1]);
    const real = Math.min(n >>> 0, 8);
    const arr = new Uint8Array(real * 48);
    const dv = new DataView(arr.buffer);
    for (let i = 0; i < real; i++) {
      const o = i * 48;
      dv.setBigUint64(o, this.rng.u64(), true);
      const type = this.rng.chance(0.9) ? this.rng.int(3) : this.rng.u32() & 0xff;
      dv.setUint8(o + 8, type);
      if (type === 0) {
        const clock = this.rng.chance(0.9) ? this.rng.int(4) : this.rng.u32();
        dv.setUint32(o + 16, clock, true);
        // Never a wall-clock timeout that really sleeps long: a long sleep is the spec's, not a
        // hang. A CPU-time clock may ask for seconds: the guest's own CPU time cannot pass while it sleeps.
        const abs = this.rng.chance(0.3);
        const cpu = clock === 2 || clock === 3;
        dv.setBigUint64(o + 24, abs ? this.rng.pick([0n, 1n, 1000n]) : BigInt(this.rng.int(200_000)) * (cpu && this.rng.chance(0.3) ? 100_000n : 1n), true);
        dv.setUint16(o + 40, abs ? 1 : this.rng.chance(0.1) ? this.rng.u32() & 0xffff & ~1 : 0, true);
      } else {
        dv.setUint32(o + 16, this.fd() >>> 0, true);
      }
    }
    return [this.place(arr, 8), n];
  }

  /** A packed nvlist request for a Casper channel: mostly well-formed, sometimes garbage. */
  casperRequest(fd: number): Uint8Array {
    const h = this.w.wasi.context.fds.peek(fd)?.handle;
    const service = (h && this.w.services.get(h)) ?? 'core.casper';
    this.w.granting = undefined;
    if (this.sane) {
      const req = this.wellFormedRequest(service);
      const cmd = req.getString('cmd');
      if (cmd === 'clone') this.w.granting = service;
      else if (service === 'core.casper' && cmd === 'open') this.w.granting = req.getString('service');
      return packNvlist(req);
    }
    const r = this.rng.int(100);
    if (r < 8) return new Uint8Array(this.rng.int(64)).map(() => this.rng.int(256));
    const l = new NvList(this.rng.chance(0.1) ? NV_FLAG.NO_UNIQUE : 0);
    const cmds = ['open', 'limit_set', 'limit_get', 'clone', 'getpwnam', 'getpwuid', 'getpwent', 'setpwent', 'getgrnam', 'getgrgid',
      'getgrent', 'setpassent', 'random', 'getaddrinfo', 'gethostbyname', 'gethostbyaddr', 'getnameinfo', 'sysctlbyname',
      'sysctlnametomib', 'sysctl', 'lstat', 'realpath', 'boom', ''];
    if (this.rng.chance(0.95)) l.addString('cmd', this.rng.pick(cmds));
    for (let i = this.rng.int(5); i > 0; i--) {
      const name = this.rng.pick(['service', 'name', 'hostname', 'servname', 'uid', 'gid', 'size', 'family', 'flags', 'addr', 'sa',
        'mib', 'newp', 'oldlen', 'limits', 'stayopen', 'hostlen', 'servlen', 'fd', 'x']);
      switch (this.rng.int(7)) {
        case 0: l.addString(name, this.rng.chance(0.5) ? this.rng.pick([...FUZZ_SERVICES, 'core.casper', 'system.nope', 'root', 'localhost', 'kern.ostype', 'hw.ncpu']) : this.guestPath()); break;
        case 1: l.addNumber(name, this.rng.chance(0.5) ? BigInt(this.rng.int(70000)) : BigInt.asUintN(64, this.rng.pick(U64_EDGES))); break;
        case 2: l.addBinary(name, new Uint8Array(this.rng.pick([0, 1, 4, 16, 28, 300])).map(() => this.rng.int(256))); break;
        case 3: l.addBool(name, this.rng.chance(0.5)); break;
        case 4: l.addNull(name); break;
        case 5: l.addDescriptor(name, this.rng.int(8)); break;
        default: l.addNvlist(name, this.limits());
      }
    }
    if (this.rng.chance(0.15)) l.addNvlist('limits', this.limits());
    let packed: Uint8Array;
    try { packed = packNvlist(l); } catch { packed = new Uint8Array(0); }
    if (r < 16 && packed.length) packed = packed.subarray(0, this.rng.int(packed.length));
    else if (r < 24 && packed.length) { packed = packed.slice(); const at = this.rng.int(packed.length); packed[at] = packed[at]! ^ (1 << this.rng.int(8)); }
    return packed;
  }
  /** A request as libcasper's clients build them, for whichever service the channel is. */
  private wellFormedRequest(service: string): NvList {
    const l = new NvList();
    const FILES = FILEARGS_NAMES;
    const common = this.rng.chance(0.25);
    const pick = common ? this.rng.int(5) : {
      'core.casper': this.rng.pick([0, 1, 2, 4]), 'system.fileargs': this.rng.pick([2, 5, 6, 7]), 'system.pwd': this.rng.pick([8, 9]),
      'system.grp': this.rng.pick([8, 9]), 'system.sysctl': 10, 'system.random': 11, 'system.dns': 12,
    }[service] ?? this.rng.int(13);
    switch (pick) {
      case 12: return l.addString('cmd', this.rng.pick(['getaddrinfo', 'gethostbyname', 'gethostbyaddr', 'getnameinfo']))
        .addString('hostname', this.rng.pick(['localhost', '127.0.0.1', 'example.invalid', ''])).addNumber('family', this.rng.pick([0, 1, 2, 99]))
        .addBinary('addr', Uint8Array.of(127, 0, 0, 1));
      case 0: case 1: return l.addString('cmd', 'open').addString('service', this.rng.pick(FUZZ_SERVICES));
      case 2: case 3: return l.addString('cmd', 'limit_set').addNvlist('limits', this.limits());
      case 4: return l.addString('cmd', this.rng.pick(['limit_get', 'clone']));
      case 5: case 6: case 7: return l.addString('cmd', this.rng.pick(['open', 'lstat', 'realpath'])).addString('name', this.rng.chance(0.8) ? this.rng.pick(FILES) : this.guestPath());
      case 8: return l.addString('cmd', this.rng.pick(['getpwnam', 'getgrnam'])).addString('name', this.rng.pick(['root', 'nobody', 'wheel', '']));
      case 9: return l.addString('cmd', this.rng.pick(['getpwuid', 'getgrgid', 'getpwent', 'getgrent', 'setpwent'])).addNumber(this.rng.pick(['uid', 'gid']), this.rng.pick([0, 1, 65534, 2 ** 32 - 1]));
      case 10: return l.addString('cmd', 'sysctlbyname').addString('name', this.rng.pick(['kern.ostype', 'hw.ncpu', 'kern.nope'])).addNumber('oldlen', this.rng.pick([0, 4, 64, 2 ** 32]));
      default: return l.addString('cmd', 'random').addNumber('size', this.rng.pick([0, 16, 4096, 2 ** 31]));
    }
  }
  /** Limits: service names for the core channel, fileargs' shape, or anything. */
  private limits(): NvList {
    const l = new NvList(NV_FLAG.NO_UNIQUE);
    switch (this.rng.int(3)) {
      case 0: for (const s of FUZZ_SERVICES) if (this.rng.chance(0.5)) l.addNull(s); break;
      case 1: {
        l.addNumber('flags', this.rng.pick([0x04000000, 0x10000000, 0x14000000, 0x04001000, 0]));
        l.addNumber('operations', this.rng.chance(0.6) ? 7 : this.rng.chance(0.9) ? 1 + this.rng.int(7) : this.rng.int(64));
        if (this.rng.chance(0.5)) l.addNumber('mode', 0o644);
        if (this.rng.chance(0.3)) {
          const b = new Uint8Array(this.rng.chance(0.9) ? 16 : 8);
          new DataView(b.buffer).setBigUint64(0, this.rng.u64() & (this.rng.chance(0.9) ? RIGHTS_ALL : -1n), true);
          l.addBinary('cap_rights', b);
        }
        for (const f of FILEARGS_NAMES) if (this.rng.chance(0.6)) l.addNull(f);
        if (this.rng.chance(0.5)) l.addNull(this.guestPath());
        break;
      }
      default: for (let i = this.rng.int(3); i > 0; i--) l.addString(`w${i}`, this.rng.pick(['root', 'wheel', 'kern']));
    }
    return l;
  }
}

// ---------------------------------------------------------------------------------------------
// The calls

type Gen = (a: Args) => unknown[];

/** How to make arguments for each import, in its parameter order, coerced as wasm would pass them. */
const GENERATORS: Record<string, Gen> = {
  args_get: (a) => [a.ptr(16, 4), a.ptr(32)].map(i32),
  args_sizes_get: (a) => [a.ptr(4, 4), a.ptr(4, 4)].map(i32),
  environ_get: (a) => [a.ptr(16, 4), a.ptr(32)].map(i32),
  environ_sizes_get: (a) => [a.ptr(4, 4), a.ptr(4, 4)].map(i32),
  clock_res_get: (a) => [i32(a.rng.chance(0.8) ? a.rng.int(5) : a.small()), i32(a.ptr(8, 8))],
  clock_time_get: (a) => [i32(a.rng.chance(0.8) ? a.rng.int(5) : a.small()), i64(a.u64()), i32(a.ptr(8, 8))],
  fd_advise: (a) => [i32(a.fd()), i64(a.u64()), i64(a.u64()), i32(a.rng.chance(0.8) ? a.rng.int(7) : a.small())],
  fd_allocate: (a) => [i32(a.fd()), i64(a.u64()), i64(a.u64())],
  // Well-formed closes and renumbers spare the preopens, or an episode would soon have no directory left.
  fd_close: (a) => [i32(a.rng.chance(0.1) ? a.fd() : a.fd((e) => e.preopen === undefined))],
  fd_datasync: (a) => [i32(a.fd())],
  fd_fdstat_get: (a) => [i32(a.fd()), i32(a.ptr(24, 8))],
  fd_fdstat_set_flags: (a) => [i32(a.fd()), i32(a.flags(6))],
  fd_fdstat_set_rights: (a) => {
    const fd = a.fd();
    const e = a.w.wasi.context.fds.peek(fd);
    // Well-formed: drop one right at a time, so descriptors stay useful for a while.
    if (a.sane && e) return [i32(fd), i64(e.base & ~(1n << BigInt(a.rng.int(30)))), i64(e.inheriting & ~(1n << BigInt(a.rng.int(30))))];
    return [i32(fd), i64(a.rights()), i64(a.rights())];
  },
  fd_filestat_get: (a) => [i32(a.fd()), i32(a.ptr(64, 8))],
  fd_filestat_set_size: (a) => [i32(a.fd()), i64(a.u64())],
  fd_filestat_set_times: (a) => [i32(a.fd()), i64(a.u64()), i64(a.u64()), i32(a.flags(5))],
  fd_pread: (a) => { const [p, n] = a.iovs(); return [i32(a.fd()), i32(p), i32(n), i64(a.u64()), i32(a.ptr(4, 4))]; },
  fd_prestat_get: (a) => [i32(a.fd()), i32(a.ptr(8, 4))],
  fd_prestat_dir_name: (a) => [i32(a.fd()), i32(a.ptr(8)), i32(a.len(a.rng.int(10)))],
  fd_pwrite: (a) => { const [p, n] = a.iovs(); return [i32(a.fd()), i32(p), i32(n), i64(a.u64()), i32(a.ptr(4, 4))]; },
  fd_read: (a) => { const [p, n] = a.iovs(); return [i32(a.fd()), i32(p), i32(n), i32(a.ptr(4, 4))]; },
  fd_readdir: (a) => { const n = a.rng.int(600); return [i32(a.fd()), i32(a.ptr(n)), i32(a.len(n)), i64(a.rng.chance(0.7) ? BigInt(a.rng.int(8)) : a.u64()), i32(a.ptr(4, 4))]; },
  fd_renumber: (a) => [i32(a.fd()), i32(a.rng.chance(0.1) ? a.fd() : a.fd((e) => e.preopen === undefined))],
  fd_seek: (a) => [i32(a.fd()), i64(a.rng.chance(0.5) ? BigInt(a.rng.int(100)) - 50n : a.u64()), i32(a.rng.chance(0.9) ? a.rng.int(4) : a.small()), i32(a.ptr(8, 8))],
  fd_sync: (a) => [i32(a.fd())],
  fd_tell: (a) => [i32(a.fd()), i32(a.ptr(8, 8))],
  fd_write: (a) => { const [p, n] = a.iovs(); return [i32(a.fd()), i32(p), i32(n), i32(a.ptr(4, 4))]; },
  path_create_directory: (a) => { const [p, n] = a.path(); return [i32(a.dirfd()), i32(p), i32(n)]; },
  path_filestat_get: (a) => { const [p, n] = a.path(); return [i32(a.dirfd()), i32(a.flags(1)), i32(p), i32(n), i32(a.ptr(64, 8))]; },
  path_filestat_set_times: (a) => { const [p, n] = a.path(); return [i32(a.dirfd()), i32(a.flags(1)), i32(p), i32(n), i64(a.u64()), i64(a.u64()), i32(a.flags(5))]; },
  path_link: (a) => { const [p, n] = a.path(); const [q, m] = a.path(); return [i32(a.dirfd()), i32(a.flags(1)), i32(p), i32(n), i32(a.dirfd()), i32(q), i32(m)]; },
  path_open: (a) => {
    const [p, n] = a.path();
    const dirfd = a.dirfd();
    const oflags = a.sane ? a.rng.pick([0, 0, 1, 1, 2, 5, 8, 9]) : a.flags(4);
    const fdflags = a.sane ? a.rng.pick([0, 0, 0, 1, 4]) : a.flags(5);
    return [i32(dirfd), i32(a.flags(1)), i32(p), i32(n), i32(oflags), i64(a.rightsFor(dirfd)), i64(a.rightsFor(dirfd)), i32(fdflags), i32(a.ptr(4, 4))];
  },
  path_readlink: (a) => { const [p, n] = a.path(); const l = a.rng.int(64); return [i32(a.dirfd()), i32(p), i32(n), i32(a.ptr(l)), i32(a.len(l)), i32(a.ptr(4, 4))]; },
  path_remove_directory: (a) => { const [p, n] = a.path(); return [i32(a.dirfd()), i32(p), i32(n)]; },
  path_rename: (a) => { const [p, n] = a.path(); const [q, m] = a.path(); return [i32(a.dirfd()), i32(p), i32(n), i32(a.dirfd()), i32(q), i32(m)]; },
  path_symlink: (a) => { const [p, n] = a.path(); const [q, m] = a.path(); return [i32(p), i32(n), i32(a.dirfd()), i32(q), i32(m)]; },
  path_unlink_file: (a) => { const [p, n] = a.path(); return [i32(a.dirfd()), i32(p), i32(n)]; },
  poll_oneoff: (a) => { const [p, n] = a.subscriptions(); return [i32(p), i32(a.ptr(Math.min(n >>> 0, 8) * 32, 8)), i32(n), i32(a.ptr(4, 4))]; },
  proc_exit: (a) => [i32(a.small())],
  proc_raise: (a) => [i32(a.small())],
  sched_yield: () => [],
  random_get: (a) => { const n = a.rng.chance(0.9) ? a.rng.int(300) : a.rng.pick(I32_EDGES); return [i32(a.ptr(n >>> 0)), i32(n)]; },
  sock_accept: (a) => [i32(a.fd()), i32(a.flags(2)), i32(a.ptr(4, 4))],
  sock_recv: (a) => { const [p, n] = a.iovs(); return [i32(a.fd()), i32(p), i32(n), i32(a.flags(2)), i32(a.ptr(4, 4)), i32(a.ptr(2, 2))]; },
  sock_send: (a) => { const [p, n] = a.iovs(); return [i32(a.fd()), i32(p), i32(n), i32(a.flags(1)), i32(a.ptr(4, 4))]; },
  sock_shutdown: (a) => [i32(a.fd()), i32(a.flags(2))],
  'capsicum.cap_enter': () => [],
  'capsicum.cap_getmode': (a) => [i32(a.ptr(4, 4))],
  'argdata.argdata_size': (a) => [i32(a.ptr(4, 4))],
  'argdata.argdata_get': (a) => [i32(a.ptr(a.w.wasi.context.argdata.length))],
  'casper.init': (a) => [i32(a.ptr(4, 4))],
  'casper.xfer': (a) => { const fd = a.channelFd(); const b = a.casperRequest(fd); return [i32(fd), i32(a.place(b)), i32(a.len(b.length)), i32(a.ptr(4, 4))]; },
  'casper.recv': (a) => { const n = a.rng.chance(0.7) ? 4096 : a.rng.int(64); return [i32(a.channelFd()), i32(a.ptr(n)), i32(a.len(n))]; },
};

/** How often each import is called, relative to the others: the path and fd calls carry the state. */
const WEIGHTS: Record<string, number> = {
  path_open: 10, fd_write: 4, fd_read: 4, fd_pwrite: 3, fd_pread: 3, fd_close: 2, fd_renumber: 1, fd_fdstat_set_rights: 3,
  path_create_directory: 3, path_symlink: 3, path_rename: 3, path_link: 2, path_unlink_file: 2, path_remove_directory: 2,
  path_filestat_get: 3, fd_readdir: 3, 'casper.xfer': 4, 'casper.init': 1, 'casper.recv': 2,
  'capsicum.cap_enter': 0.05, proc_exit: 0.3,
};

/** Every import the fuzzer calls: the 46 preview1 functions, then capsicum, argdata and casper. */
export const FUZZ_IMPORTS: readonly string[] = [...PREVIEW1_FUNCTIONS, 'capsicum.cap_enter', 'capsicum.cap_getmode',
  'argdata.argdata_size', 'argdata.argdata_get', 'casper.init', 'casper.xfer', 'casper.recv'];

function weightedTable(withCasper: boolean): string[] {
  const out: string[] = [];
  for (const name of FUZZ_IMPORTS) {
    if (!withCasper && name.startsWith('casper.')) continue;
    const w = WEIGHTS[name] ?? 1;
    for (let i = 0; i < Math.max(1, Math.round(w * 20)); i++) out.push(name);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Checks

const u32At = (m: WebAssembly.Memory, p: number): number => new DataView(m.buffer).getUint32(p, true);

/** A memfs tree's quota counters: never negative, never past the quota (cheap: after every call). */
function memAccounting(root: MemDir): string | undefined {
  const f = root.fs;
  if (f.bytes < 0 || f.inodes < 0) return `memfs accounting went negative: ${f.bytes} bytes, ${f.inodes} inodes`;
  if (f.bytes > f.maxBytes || f.inodes > f.maxInodes) return `memfs over quota: ${f.bytes}/${f.maxBytes} bytes, ${f.inodes}/${f.maxInodes} inodes`;
  return undefined;
}
/** What a memfs tree really holds: compared with its counters once every descriptor is closed. */
function memReachable(root: MemDir): { bytes: number; inodes: number } {
  const seen = new Set<object>();
  let bytes = 0;
  const visit = (n: object): void => {
    if (seen.has(n)) return;
    seen.add(n);
    // What memfs charges: each file's buffer capacity, each symlink's target, each entry's name.
    if (n instanceof MemFile) bytes += n.data.length;
    if (n instanceof MemSymlink) bytes += n.bytes;
    if (n instanceof MemDir) for (const [name, c] of n.entries) { bytes += Buffer.byteLength(name); visit(c); }
  };
  visit(root);
  return { bytes, inodes: seen.size };
}

/** Host descriptors of this process that point into `dir`. */
export function hostFdsInto(dir: string): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const t = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (t.startsWith(dir)) out.push(`${fd} -> ${t}`);
    } catch { /* closed meanwhile */ }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The loop

/** Size of the heartbeat buffer: [index, in-call flag, text length, 0] then the call's text. */
export const HEARTBEAT_BYTES = 4096;

/** The call the fuzzer thread is inside, if any: what the watchdog reports when it hangs. */
export function readHeartbeat(sab: SharedArrayBuffer): { index: number; inCall: boolean; call: string } {
  const hb = new Int32Array(sab, 0, 4);
  const inCall = Atomics.load(hb, 1) === 1;
  return { index: hb[0]!, inCall, call: new TextDecoder().decode(new Uint8Array(sab, 16, hb[2]!).slice()) };
}

/** Runs `count` calls from call `from` on; synchronous. */
export function runFuzz(o: FuzzOptions): FuzzResult {
  const end = (o.from ?? 0) + o.count;
  const from = Math.floor((o.from ?? 0) / EPISODE_CALLS) * EPISODE_CALLS;
  const maxFailures = o.maxFailures ?? 10;
  const failures: Failure[] = [];
  const perImport: Record<string, Record<string, number>> = {};
  const msPerImport: Record<string, number> = {};
  const table = weightedTable(o.client !== undefined);
  const hb = o.heartbeat ? new Int32Array(o.heartbeat, 0, 4) : undefined;
  const hbText = o.heartbeat ? new Uint8Array(o.heartbeat, 16) : undefined;
  const mountDir = path.join(o.tmp, 'mount');
  let calls = 0;

  for (let ep = Math.floor(from / EPISODE_CALLS); ep * EPISODE_CALLS < end && failures.length < maxFailures; ep++) {
    const w = buildWorld(o.seed, ep, o.tmp, o.client);
    const a = new Args(w);
    const fds = w.wasi.context.fds;
    const fail = (index: number, call: string, args: string, problem: string) => {
      failures.push({ seed: o.seed, index, call, args, problem });
      o.trace?.(`  FAILED: ${problem}`);
    };

    const first = ep * EPISODE_CALLS;
    for (let index = first; index < first + EPISODE_CALLS && index < end && failures.length < maxFailures; index++) {
      // Occasionally the guest grows its memory: views held anywhere must follow.
      if (w.rng.chance(0.002)) { try { w.memory.grow(1); } catch { /* at its maximum */ } }
      const name = w.rng.pick(table);
      a.sane = w.rng.chance(0.5);
      w.notes.length = 0;
      const args = GENERATORS[name]!(a);
      const argText = args.map(fmt).join(', ') + (w.notes.length ? `  /* paths: ${w.notes.join(' ')} */` : '');
      // What the checks after the call need from before it.
      const dirInheriting = name === 'path_open' ? fds.peek(args[0] as number)?.inheriting : undefined;
      const before = name === 'path_open' ? new Set([...fds.entries()].map(([fd]) => fd)) : undefined;

      if (hb) {
        hb[0] = index;
        hb[2] = enc.encodeInto(`${name}(${argText})`, hbText!).written;
        Atomics.store(hb, 1, 1);
      }
      let result: unknown;
      let thrown: unknown;
      const t0 = performance.now();
      try {
        result = (w.imports[name] as (...x: unknown[]) => unknown)(...args);
      } catch (e) {
        thrown = e;
      }
      if (hb) Atomics.store(hb, 1, 0);
      msPerImport[name] = (msPerImport[name] ?? 0) + performance.now() - t0;
      calls++;
      const stats = (perImport[name] ??= {});
      const key = thrown instanceof ProcExit ? 'exit' : thrown !== undefined ? 'throw' : String(result);
      stats[key] = (stats[key] ?? 0) + 1;
      o.trace?.(`#${index} ${name}(${argText}) -> ${thrown !== undefined ? `threw ${(thrown as Error)?.name}` : result}`);

      if (name === 'proc_exit') {
        if (!(thrown instanceof ProcExit) || thrown.code !== (args[0] as number) >>> 0) fail(index, name, argText, `proc_exit must unwind with ProcExit(${(args[0] as number) >>> 0}), got ${String(thrown ?? result)}`);
      } else if (thrown !== undefined) {
        fail(index, name, argText, `a host exception escaped the import: ${(thrown as Error)?.stack ?? String(thrown)}`);
      } else if (typeof result !== 'number' || !Number.isInteger(result)) {
        fail(index, name, argText, `returned ${String(result)}, not an errno`);
      } else if (!ALLOWED_ERRNOS[name]!.has(result)) {
        fail(index, name, argText, `returned errno ${result}, which ${name} may not return (errnos.ts)`);
      }
      if (w.hostErrors.length) {
        fail(index, name, argText, `host error: ${w.hostErrors.join('; ')}`);
        w.hostErrors.length = 0;
      }

      // Rights only shrink; new descriptors hold no more than their type allows.
      for (const [fd, e] of fds.entries()) {
        const prev = w.seen.get(e);
        if (prev) {
          if ((e.base & ~prev.base) || (e.inheriting & ~prev.inheriting)) {
            fail(index, name, argText, `fd ${fd}'s rights grew from ${prev.base.toString(16)}/${prev.inheriting.toString(16)} to ${e.base.toString(16)}/${e.inheriting.toString(16)}`);
          }
        } else {
          const max = typeRights(e.handle.filetype);
          if (e.base & ~max.base) fail(index, name, argText, `new fd ${fd} holds rights its type cannot have: ${(e.base & ~max.base).toString(16)}`);
          if (name === 'path_open' && result === ERRNO.SUCCESS && dirInheriting !== undefined && ((e.base | e.inheriting) & ~dirInheriting)) {
            fail(index, name, argText, `fd ${fd} opened with rights beyond its directory's inheriting rights`);
          }
        }
        w.seen.set(e, { base: e.base, inheriting: e.inheriting });
      }
      if (name === 'fd_close' && result === ERRNO.SUCCESS) w.closed.push(args[0] as number);
      if (name === 'casper.init' && result === ERRNO.SUCCESS) {
        const h = fds.peek(u32At(w.memory, (args[0] as number) >>> 0))?.handle;
        if (h) w.services.set(h, 'core.casper');
      }
      if (name === 'casper.xfer' && result === ERRNO.SUCCESS && w.granting) {
        // The reply (kept on the channel) names the granted channel's fd: remember its service.
        const pending = (fds.peek(args[0] as number)?.handle as ChannelHandle | undefined)?.pending;
        try {
          const reply = pending && unpackNvlist(pending);
          const fd = reply && (reply.get('chanfd', 'descriptor') ?? reply.get('sock', 'descriptor'))?.value;
          const h = fd !== undefined ? fds.peek(fd)?.handle : undefined;
          if (h instanceof ChannelHandle) w.services.set(h, w.granting);
        } catch { /* a reply the fuzzer cannot read only costs it depth */ }
      }
      if (name === 'path_open' && result === ERRNO.SUCCESS) {
        const fd = u32At(w.memory, (args[8] as number) >>> 0);
        if (before!.has(fd) || !fds.peek(fd)) fail(index, name, argText, `path_open succeeded but wrote fd ${fd}, which is not a new descriptor`);
      }
      if (name === 'poll_oneoff' && result === ERRNO.SUCCESS) {
        const n = u32At(w.memory, (args[3] as number) >>> 0);
        if (n > (args[2] as number) >>> 0) fail(index, name, argText, `poll_oneoff reported ${n} events for ${(args[2] as number) >>> 0} subscriptions`);
        const dv = new DataView(w.memory.buffer);
        const out = (args[1] as number) >>> 0, nPtr = (args[3] as number) >>> 0;
        // A guest may point nevents into its own events array; then the count overwrote an event.
        const overlaps = nPtr + 4 > out && nPtr < out + n * 32;
        for (let i = 0; i < n && !overlaps; i++) {
          const err = dv.getUint16(out + i * 32 + 8, true);
          if (!POLL_EVENT_ERRNOS.has(err)) fail(index, name, argText, `poll_oneoff event ${i} has error ${err}`);
        }
      }
      // What the guest sees: fd_fdstat_get on the call's descriptor reports the table's rights.
      // Last, since it writes at address 0, where the call may have put results read above.
      const fd0 = args[0] as number;
      const e0 = typeof fd0 === 'number' ? fds.peek(fd0) : undefined;
      if (e0 && w.imports['fd_fdstat_get']!(fd0 as never, 0 as never) === ERRNO.SUCCESS) {
        const dv = new DataView(w.memory.buffer);
        if (dv.getBigUint64(8, true) !== e0.base || dv.getBigUint64(16, true) !== e0.inheriting) {
          fail(index, name, argText, `fd_fdstat_get(${fd0}) reports rights ${dv.getBigUint64(8, true).toString(16)}/${dv.getBigUint64(16, true).toString(16)}, the table holds ${e0.base.toString(16)}/${e0.inheriting.toString(16)}`);
        }
      }
      for (const root of w.memRoots) {
        const problem = memAccounting(root);
        if (problem) fail(index, name, argText, problem);
      }
      if (o.onProgress && calls % 10000 === 0) o.onProgress(calls);
    }

    // End of the episode: what start() does at the guest's end, then the accounting.
    const last = Math.min(first + EPISODE_CALLS, end) - 1;
    fds.closeAll();
    for (const root of w.memRoots) {
      const got = memReachable(root);
      if (got.bytes !== root.fs.bytes || got.inodes !== root.fs.inodes) {
        fail(last, '(end of episode)', '', `memfs accounting is off after every fd closed: it counts ${root.fs.bytes} bytes/${root.fs.inodes} inodes, the tree holds ${got.bytes}/${got.inodes}`);
      }
    }
    const leaked = hostFdsInto(mountDir);
    if (leaked.length) fail(last, '(end of episode)', '', `host descriptors into the mount leaked: ${leaked.join(', ')}`);
    if (w.hostErrors.length) fail(last, '(end of episode)', '', `host error: ${w.hostErrors.join('; ')}`);
  }
  return { calls, failures, perImport, msPerImport };
}

/** Sentinels beside the mount that no call may touch; returns a snapshot of them to compare. */
export function snapshotOutside(tmp: string): string {
  const lines: string[] = [];
  const walk = (p: string, rel: string): void => {
    const s = fs.lstatSync(p);
    // The root's own times change with the mount inside it; its listing is what counts.
    if (rel !== '') lines.push(`${rel} ${s.mode} ${s.size} ${s.mtimeMs} ${s.isFile() ? fs.readFileSync(p, 'latin1') : s.isSymbolicLink() ? fs.readlinkSync(p) : ''}`);
    if (s.isDirectory()) for (const n of fs.readdirSync(p).sort()) if (!(rel === '' && n === 'mount')) walk(path.join(p, n), `${rel}/${n}`);
  };
  walk(tmp, '');
  return lines.join('\n');
}

/** Lays out `tmp` for a run: the sentinels the mount's escaping symlinks point at. */
export function prepareTmp(tmp: string): void {
  fs.mkdirSync(path.join(tmp, 'outside', 'sub'), { recursive: true });
  fs.writeFileSync(path.join(tmp, 'outside', 'secret'), 'must stay unchanged');
  fs.writeFileSync(path.join(tmp, 'outside', 'sub', 'f'), 'also unchanged');
  fs.writeFileSync(path.join(tmp, 'beside'), 'beside the mount');
}
