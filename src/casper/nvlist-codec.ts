/**
 * libnv's binary nvlist format (FreeBSD sys/contrib/libnv: nvlist.c nvlist_xpack/nvlist_xunpack,
 * bsd_nvpair.c nvpair_pack_* / nvpair_unpack_*), byte for byte.
 *
 * Layout (all integers in the sender's byte order; the BIG_ENDIAN header flag says which):
 *   nvlist header, 19 bytes: magic u8 0x6c, version u8 0, flags u8, descriptors u64, size u64
 *     - descriptors: the descriptor values that follow this header anywhere in the buffer
 *       (nvlist_ndescriptors walks on through the parents, so a nested header counts its own
 *       subtree plus everything after it; the root header counts them all)
 *     - size: the bytes that follow this header in the WHOLE buffer (nvlist_pack_header writes
 *       `*leftp - sizeof(nvlhdr)`, and nvlist_unpack_header checks `nvlh_size == *leftp - 19`),
 *       for nested headers too
 *   nvpair header, 19 bytes: type u8, namesize u16 (with the NUL), datasize u64, nitems u64,
 *     then the name and its NUL, then the data
 *   NVLIST value: the pair (datasize: see below, nitems 0), the child's header, the child's
 *     pairs, then an NVLIST_UP pair (type 255, namesize 1, name "", datasize 0, nitems 0)
 *   NVLIST_ARRAY value: the pair (datasize 0, nitems n), then per element: its header, its pairs,
 *     an NVLIST_ARRAY_NEXT pair (type 254, namesize 1, name "", datasize 0, nitems 0) — the last
 *     element has one too, and no NVLIST_UP follows the array
 *   The datasize of an NVLIST pair is what nvpair_init_datasize stores, nvlist_size(child), and
 *   nvlist_size walks on past the child through its parents: the child's header and pairs plus
 *   the pairs that follow it in each enclosing list (and the pairs of later array elements), but
 *   no UP/NEXT sentinel or element header of those. An empty child is just its 19-byte header.
 *   Descriptors are written as i64; capsa puts the guest's fd number there (no SCM_RIGHTS index).
 *
 * unpackNvlist decodes untrusted bytes strictly: everything libnv checks, plus the checks that
 * make a message mean one thing only (see unpackNvlist). Every failure is an NvError.
 */
import { NV_FLAG, NV_NAME_MAX, NV_TYPE, NvError, NvList, type NvType, type NvValue } from './nvlist.js';

export const NVLIST_HEADER_SIZE = 19;
export const NVPAIR_HEADER_SIZE = 19;
export const NVLIST_HEADER_MAGIC = 0x6c;
export const NVLIST_HEADER_VERSION = 0;
/** The two sentinel pair types (nv_impl.h). */
export const NV_TYPE_NVLIST_ARRAY_NEXT = 254;
export const NV_TYPE_NVLIST_UP = 255;
/** Deepest nesting unpack and pack accept: the root is depth 0, each nvlist or array element one more. */
export const NV_MAX_DEPTH = 64;

const PUBLIC_FLAGS = NV_FLAG.IGNORE_CASE | NV_FLAG.NO_UNIQUE;
const HEADER_FLAGS = PUBLIC_FLAGS | NV_FLAG.BIG_ENDIAN;
const SENTINEL_SIZE = NVPAIR_HEADER_SIZE + 1;
/** An element of an nvlist array is at least its header and its ARRAY_NEXT. */
const MIN_ELEMENT_SIZE = NVLIST_HEADER_SIZE + SENTINEL_SIZE;
/**
 * Descriptor values are C ints: a DESCRIPTOR is an open fd (libnv's nvpair_move_descriptor refuses
 * a negative one); a DESCRIPTOR_ARRAY item may also be -1, "none" (nvpair_create_descriptor_array
 * keeps it and nvpair_pack_descriptor_array writes it as is).
 */
const FD_MAX = 0x7fffffff;
const U64_LIMIT = 1n << 64n;

const TYPE_CODE: Record<NvType, number> = {
  null: NV_TYPE.NULL, bool: NV_TYPE.BOOL, number: NV_TYPE.NUMBER, string: NV_TYPE.STRING,
  nvlist: NV_TYPE.NVLIST, descriptor: NV_TYPE.DESCRIPTOR, binary: NV_TYPE.BINARY,
  bool_array: NV_TYPE.BOOL_ARRAY, number_array: NV_TYPE.NUMBER_ARRAY, string_array: NV_TYPE.STRING_ARRAY,
  nvlist_array: NV_TYPE.NVLIST_ARRAY, descriptor_array: NV_TYPE.DESCRIPTOR_ARRAY,
};

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const einval = (message: string): NvError => new NvError('EINVAL', message);

// ---------------------------------------------------------------------------------------------
// pack

export interface PackOptions {
  /** Write big-endian integers and set NV_FLAG_BIG_ENDIAN (default: little-endian, as wasm32). */
  bigEndian?: boolean | undefined;
}

interface EncList {
  flags: number;
  pairs: EncPair[];
  /** nvlist_size of this list alone: header + pairs (with nested headers and sentinels). */
  size: number;
  descriptors: number;
}

interface EncPair {
  code: number;
  name: Uint8Array; // with the NUL
  value: NvValue;
  datasize: number; // for everything but NVLIST (computed when written)
  nitems: number;
  /** Whole pair: header, name, data, nested lists and their sentinels. */
  size: number;
  bytes?: Uint8Array; // string, string array, binary
  child?: EncList;
  elements?: EncList[];
}

/** Packs a list in libnv's format. Throws the list's error if it has one (or a nested list's). */
export function packNvlist(list: NvList, opts: PackOptions = {}): Uint8Array {
  const enc = encodeList(list, 0, []);
  if (enc.size > 0x7fffffff) throw new NvError('ENOMEM', `packed nvlist would be ${enc.size} bytes`);
  const out = new Uint8Array(enc.size);
  const w: Writer = {
    bytes: out, view: new DataView(out.buffer), off: 0, le: !opts.bigEndian,
    total: enc.size, totalDescriptors: enc.descriptors, descriptorsSeen: 0,
  };
  writeList(w, enc, 0);
  if (w.off !== out.length) throw new Error(`nvlist pack wrote ${w.off} of ${out.length} bytes`);
  return out;
}

/** The bytes packNvlist would make of `list`, without making them. Throws what packNvlist throws. */
export function packedSize(list: NvList): number {
  return encodeList(list, 0, []).size;
}

function encodeList(list: NvList, depth: number, ancestors: NvList[]): EncList {
  if (!(list instanceof NvList)) throw einval('not an nvlist');
  if (list.error) throw list.error;
  if (depth > NV_MAX_DEPTH) throw einval(`nvlist nested deeper than ${NV_MAX_DEPTH}`);
  if (ancestors.includes(list)) throw einval('nvlist contains itself');
  if (!Number.isInteger(list.flags) || (list.flags & ~PUBLIC_FLAGS) !== 0) throw einval(`invalid nvlist flags ${list.flags}`);
  const keys = list.flags & NV_FLAG.NO_UNIQUE ? undefined : new Set<string>();
  const inner = [...ancestors, list];
  const pairs: EncPair[] = [];
  let size = NVLIST_HEADER_SIZE;
  let descriptors = 0;
  for (const [name, value] of list.pairs) {
    const nameBytes = encodeName(name);
    if (keys) {
      const key = list.flags & NV_FLAG.IGNORE_CASE ? name.toLowerCase() : name;
      if (keys.has(key)) throw new NvError('EEXIST', `${name} is already in the list`);
      keys.add(key);
    }
    const p = encodeValue(nameBytes, value, depth, inner);
    size += p.size;
    if (p.child) descriptors += p.child.descriptors;
    else if (p.elements) for (const e of p.elements) descriptors += e.descriptors;
    else if (value.type === 'descriptor') descriptors += 1;
    else if (value.type === 'descriptor_array') descriptors += value.value.length;
    pairs.push(p);
  }
  return { flags: list.flags, pairs, size, descriptors };
}

function encodeValue(name: Uint8Array, v: NvValue, depth: number, ancestors: NvList[]): EncPair {
  const base = NVPAIR_HEADER_SIZE + name.length;
  const plain = (datasize: number, nitems: number, bytes?: Uint8Array): EncPair => {
    const p: EncPair = { code: TYPE_CODE[v.type], name, value: v, datasize, nitems, size: base + datasize };
    if (bytes) p.bytes = bytes;
    return p;
  };
  const nonEmpty = (n: number): number => {
    if (n < 1) throw einval(`empty ${v.type} (libnv arrays hold at least one item)`);
    return n;
  };
  switch (v.type) {
    case 'null': return plain(0, 0);
    case 'bool': checkBool(v.value); return plain(1, 0);
    case 'number': checkU64(v.value); return plain(8, 0);
    case 'string': { const b = encodeString(v.value); return plain(b.length, 0, b); }
    case 'descriptor': checkFd(v.value, 0); return plain(8, 0);
    case 'binary': {
      if (!(v.value instanceof Uint8Array)) throw einval('binary value is not a Uint8Array');
      return plain(nonEmpty(v.value.length), 0, v.value);
    }
    case 'bool_array': v.value.forEach(checkBool); return plain(nonEmpty(v.value.length), v.value.length);
    case 'number_array': v.value.forEach(checkU64); return plain(8 * nonEmpty(v.value.length), v.value.length);
    case 'descriptor_array': v.value.forEach((fd) => checkFd(fd, -1)); return plain(8 * nonEmpty(v.value.length), v.value.length);
    case 'string_array': {
      const parts = v.value.map(encodeString);
      const bytes = new Uint8Array(parts.reduce((n, b) => n + b.length, 0));
      let off = 0;
      for (const b of parts) { bytes.set(b, off); off += b.length; }
      nonEmpty(parts.length);
      return plain(bytes.length, parts.length, bytes);
    }
    case 'nvlist': {
      const child = encodeList(v.value, depth + 1, ancestors);
      return { code: NV_TYPE.NVLIST, name, value: v, datasize: 0, nitems: 0, size: base + child.size + SENTINEL_SIZE, child };
    }
    case 'nvlist_array': {
      const elements = v.value.map((l) => encodeList(l, depth + 1, ancestors));
      nonEmpty(elements.length);
      const size = elements.reduce((n, e) => n + e.size + SENTINEL_SIZE, base);
      return { code: NV_TYPE.NVLIST_ARRAY, name, value: v, datasize: 0, nitems: elements.length, size, elements };
    }
    default:
      throw einval(`unknown nvlist value type ${String((v as { type: unknown }).type)}`);
  }
}

function encodeName(name: string): Uint8Array {
  if (typeof name !== 'string' || name.length === 0) throw einval('empty nvpair name');
  const b = encodeString(name);
  if (b.length > NV_NAME_MAX) throw einval(`nvpair name of ${b.length - 1} bytes (at most ${NV_NAME_MAX - 1})`);
  return b;
}

/** UTF-8 and a NUL; C strings cannot hold a NUL, and a lone surrogate would not come back. */
function encodeString(s: string): Uint8Array {
  if (typeof s !== 'string') throw einval('string value is not a string');
  if (s.includes('\0')) throw einval('string holds a NUL');
  if (/\p{Cs}/u.test(s)) throw einval('string holds a lone surrogate');
  const b = new Uint8Array(s.length * 3 + 1);
  const { written } = encoder.encodeInto(s, b);
  return b.subarray(0, written + 1);
}

function checkBool(b: unknown): void {
  if (typeof b !== 'boolean') throw einval('bool value is not a boolean');
}
function checkU64(n: unknown): void {
  if (typeof n !== 'bigint' || n < 0n || n >= U64_LIMIT) throw einval(`number ${String(n)} is not a u64 bigint`);
}
function checkFd(fd: unknown, min: number): void {
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < min || fd > FD_MAX) throw einval(`invalid descriptor ${String(fd)}`);
}

interface Writer {
  bytes: Uint8Array;
  view: DataView;
  off: number;
  le: boolean;
  total: number;
  totalDescriptors: number;
  descriptorsSeen: number;
}

function putU64(w: Writer, n: number): void {
  const hi = Math.floor(n / 0x1_0000_0000);
  const lo = n >>> 0;
  w.view.setUint32(w.off, w.le ? lo : hi, w.le);
  w.view.setUint32(w.off + 4, w.le ? hi : lo, w.le);
  w.off += 8;
}

function writeHeader(w: Writer, flags: number): void {
  w.bytes[w.off] = NVLIST_HEADER_MAGIC;
  w.bytes[w.off + 1] = NVLIST_HEADER_VERSION;
  w.bytes[w.off + 2] = flags | (w.le ? 0 : NV_FLAG.BIG_ENDIAN);
  w.off += 3;
  putU64(w, w.totalDescriptors - w.descriptorsSeen);
  putU64(w, w.total - w.off - 8);
}

function writePairHeader(w: Writer, code: number, name: Uint8Array, datasize: number, nitems: number): void {
  w.bytes[w.off] = code;
  w.view.setUint16(w.off + 1, name.length, w.le);
  w.off += 3;
  putU64(w, datasize);
  putU64(w, nitems);
  w.bytes.set(name, w.off);
  w.off += name.length;
}

const EMPTY_NAME = new Uint8Array(1);

/**
 * Writes a list. `after` is what libnv's nvlist_size counts once this list's own pairs end: the
 * pairs after it in its parent, and so on up to the root (see the file comment).
 */
function writeList(w: Writer, enc: EncList, after: number): void {
  writeHeader(w, enc.flags);
  const n = enc.pairs.length;
  const rest = new Array<number>(n + 1).fill(0);
  for (let i = n - 1; i >= 0; i--) rest[i] = rest[i + 1]! + enc.pairs[i]!.size;
  for (let i = 0; i < n; i++) {
    const p = enc.pairs[i]!;
    const following = rest[i + 1]! + after;
    if (p.child) {
      const datasize = p.child.size + (p.child.pairs.length > 0 ? following : 0);
      writePairHeader(w, p.code, p.name, datasize, 0);
      writeList(w, p.child, following);
      writePairHeader(w, NV_TYPE_NVLIST_UP, EMPTY_NAME, 0, 0);
      continue;
    }
    if (p.elements) {
      writePairHeader(w, p.code, p.name, 0, p.nitems);
      // Later elements' pairs count for nvlist_size, not their headers and sentinels.
      let laterPairs = p.elements.reduce((s, e) => s + e.size - NVLIST_HEADER_SIZE, 0);
      for (const e of p.elements) {
        laterPairs -= e.size - NVLIST_HEADER_SIZE;
        writeList(w, e, laterPairs + following);
        writePairHeader(w, NV_TYPE_NVLIST_ARRAY_NEXT, EMPTY_NAME, 0, 0);
      }
      continue;
    }
    writePairHeader(w, p.code, p.name, p.datasize, p.nitems);
    writeData(w, p);
  }
}

function writeData(w: Writer, p: EncPair): void {
  const v = p.value;
  switch (v.type) {
    case 'null': return;
    case 'bool': w.bytes[w.off++] = v.value ? 1 : 0; return;
    case 'number': w.view.setBigUint64(w.off, v.value, w.le); w.off += 8; return;
    case 'descriptor': w.view.setBigInt64(w.off, BigInt(v.value), w.le); w.off += 8; w.descriptorsSeen++; return;
    case 'bool_array': for (const b of v.value) w.bytes[w.off++] = b ? 1 : 0; return;
    case 'number_array': for (const n of v.value) { w.view.setBigUint64(w.off, n, w.le); w.off += 8; } return;
    case 'descriptor_array':
      for (const fd of v.value) { w.view.setBigInt64(w.off, BigInt(fd), w.le); w.off += 8; w.descriptorsSeen++; }
      return;
    default:
      w.bytes.set(p.bytes!, w.off);
      w.off += p.bytes!.length;
  }
}

// ---------------------------------------------------------------------------------------------
// unpack

export interface UnpackOptions {
  /**
   * The flags the receiver expects (NV_FLAG.IGNORE_CASE | NV_FLAG.NO_UNIQUE): like nvlist_unpack's
   * flags argument, a root header with other public flags is EILSEQ. Unchecked when absent.
   */
  flags?: number | undefined;
}

/**
 * Decodes a packed nvlist from untrusted bytes; throws NvError and nothing else.
 *
 * libnv's checks (EINVAL): magic; flag bits outside IGNORE_CASE|NO_UNIQUE|BIG_ENDIAN; header
 * size == bytes left after it; pair type known; 1 <= namesize <= 2048 with the name's only NUL
 * last; datasize <= bytes left; NULL 0 bytes, BOOL 1 byte 0/1, NUMBER and DESCRIPTOR 8 bytes;
 * STRING NUL-terminated, datasize = strlen + 1; BINARY non-empty; arrays non-empty with
 * datasize = nitems x item size (strings: exactly nitems NUL-terminated strings); EEXIST for a
 * second pair of the same name in a list without NO_UNIQUE (case-folded with IGNORE_CASE);
 * EILSEQ when opts.flags is given and differs from the root's public flags.
 * Stricter than libnv (EINVAL): version 0; every nested header in the root's byte order; UP only
 * ends an nvlist and ARRAY_NEXT only an array element, each with name "", datasize 0, nitems 0;
 * the buffer may not end inside a nested list; nitems 0 for non-array pairs; NVLIST datasize
 * >= 19, NVLIST_ARRAY datasize 0; bool array items 0/1; descriptors in 0..2^31-1 (array items -1 too); each
 * header's descriptor count exactly the descriptors after it; UTF-8 names and strings; no
 * empty names; nesting at most NV_MAX_DEPTH.
 */
export function unpackNvlist(bytes: Uint8Array, opts: UnpackOptions = {}): NvList {
  if (!(bytes instanceof Uint8Array)) throw einval('packed nvlist is not a Uint8Array');
  const expected = opts.flags;
  if (expected !== undefined && (!Number.isInteger(expected) || (expected & ~PUBLIC_FLAGS) !== 0)) {
    throw einval(`invalid expected flags ${String(expected)}`);
  }
  const r = new Reader(bytes);
  const flags = r.header(true);
  if (expected !== undefined && (flags & PUBLIC_FLAGS) !== expected) {
    throw new NvError('EILSEQ', `nvlist flags 0x${(flags & PUBLIC_FLAGS).toString(16)}, expected 0x${expected.toString(16)}`);
  }
  const root = new NvList(flags & PUBLIC_FLAGS);
  r.pairs(root, 0, 'root');
  r.checkDescriptors();
  return root;
}

interface PairHeader {
  type: number;
  nameStart: number;
  namesize: number;
  datasize: number;
  nitems: number;
}

class Reader {
  private readonly view: DataView;
  private off = 0;
  private le = true;
  private descriptorsSeen = 0;
  private readonly headers: { declared: number; before: number }[] = [];

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private get left(): number {
    return this.bytes.length - this.off;
  }

  /** A u64 as a number; anything past 2^53 becomes Infinity (larger than any buffer). */
  private u64(at: number): number {
    const a = this.view.getUint32(at, this.le);
    const b = this.view.getUint32(at + 4, this.le);
    const [hi, lo] = this.le ? [b, a] : [a, b];
    return hi >= 0x20_0000 ? Infinity : hi * 0x1_0000_0000 + lo;
  }

  header(root: boolean): number {
    if (this.left < NVLIST_HEADER_SIZE) throw einval('truncated nvlist header');
    const at = this.off;
    if (this.bytes[at] !== NVLIST_HEADER_MAGIC) throw einval(`bad nvlist magic 0x${this.bytes[at]!.toString(16)}`);
    if (this.bytes[at + 1] !== NVLIST_HEADER_VERSION) throw einval(`unknown nvlist version ${this.bytes[at + 1]}`);
    const flags = this.bytes[at + 2]!;
    if ((flags & ~HEADER_FLAGS) !== 0) throw einval(`unknown nvlist flags 0x${flags.toString(16)}`);
    const le = (flags & NV_FLAG.BIG_ENDIAN) === 0;
    if (root) this.le = le;
    else if (le !== this.le) throw einval('nested nvlist header in another byte order');
    const declared = this.u64(at + 3);
    const size = this.u64(at + 11);
    if (size !== this.left - NVLIST_HEADER_SIZE) throw einval(`nvlist header size ${size}, ${this.left - NVLIST_HEADER_SIZE} bytes follow it`);
    this.headers.push({ declared, before: this.descriptorsSeen });
    this.off += NVLIST_HEADER_SIZE;
    return flags;
  }

  checkDescriptors(): void {
    for (const h of this.headers) {
      const after = this.descriptorsSeen - h.before;
      if (h.declared !== after) throw einval(`nvlist header counts ${h.declared} descriptors, ${after} follow it`);
    }
  }

  private pairHeader(): PairHeader {
    if (this.left < NVPAIR_HEADER_SIZE) throw einval('truncated nvpair header');
    const at = this.off;
    const type = this.bytes[at]!;
    if (type < NV_TYPE.NULL || (type > NV_TYPE.DESCRIPTOR_ARRAY && type !== NV_TYPE_NVLIST_UP && type !== NV_TYPE_NVLIST_ARRAY_NEXT)) {
      throw einval(`unknown nvpair type ${type}`);
    }
    const namesize = this.view.getUint16(at + 1, this.le);
    const datasize = this.u64(at + 3);
    const nitems = this.u64(at + 11);
    this.off += NVPAIR_HEADER_SIZE;
    if (namesize < 1 || namesize > NV_NAME_MAX) throw einval(`nvpair namesize ${namesize}`);
    if (namesize > this.left) throw einval('truncated nvpair name');
    const nameStart = this.off;
    if (this.bytes.indexOf(0, nameStart) !== nameStart + namesize - 1) {
      throw einval('nvpair name is not NUL-terminated or holds a NUL');
    }
    this.off += namesize;
    if (datasize > this.left) throw einval(`nvpair datasize ${datasize}, ${this.left} bytes left`);
    return { type, nameStart, namesize, datasize, nitems };
  }

  private text(start: number, end: number, what: string): string {
    // Short ASCII (most names) without TextDecoder, whose per-call cost dominates decoding them.
    if (end - start <= 32) {
      let s = '';
      let i = start;
      for (; i < end && this.bytes[i]! < 0x80; i++) s += String.fromCharCode(this.bytes[i]!);
      if (i === end) return s;
    }
    try {
      return decoder.decode(this.bytes.subarray(start, end));
    } catch {
      throw einval(`${what} is not UTF-8`);
    }
  }

  /** Reads pairs into `list` until the end of its kind: the buffer's end, NVLIST_UP or ARRAY_NEXT. */
  pairs(list: NvList, depth: number, kind: 'root' | 'nvlist' | 'element'): void {
    const keys = list.flags & NV_FLAG.NO_UNIQUE ? undefined : new Set<string>();
    const add = (name: string, value: NvValue): void => {
      if (keys) {
        const key = list.flags & NV_FLAG.IGNORE_CASE ? name.toLowerCase() : name;
        if (keys.has(key)) throw new NvError('EEXIST', `${name} is already in the list`);
        keys.add(key);
      }
      list.pairs.push([name, value]);
    };
    for (;;) {
      if (this.left === 0) {
        if (kind === 'root') return;
        throw einval(kind === 'nvlist' ? 'nvlist ends without NVLIST_UP' : 'nvlist array element ends without ARRAY_NEXT');
      }
      const h = this.pairHeader();
      if (h.type === NV_TYPE_NVLIST_UP || h.type === NV_TYPE_NVLIST_ARRAY_NEXT) {
        const up = h.type === NV_TYPE_NVLIST_UP;
        if (kind !== (up ? 'nvlist' : 'element')) {
          const where = kind === 'root' ? 'the root list' : kind === 'nvlist' ? 'a nested nvlist' : 'an array element';
          throw einval(`${up ? 'NVLIST_UP' : 'NVLIST_ARRAY_NEXT'} where ${where} goes on`);
        }
        if (h.namesize !== 1 || h.datasize !== 0 || h.nitems !== 0) throw einval('malformed sentinel nvpair');
        return;
      }
      if (h.namesize === 1) throw einval('empty nvpair name');
      const name = this.text(h.nameStart, h.nameStart + h.namesize - 1, 'nvpair name');
      if (h.type === NV_TYPE.NVLIST) {
        if (h.nitems !== 0 || h.datasize < NVLIST_HEADER_SIZE) throw einval(`${name}: malformed nvlist pair`);
        if (depth + 1 > NV_MAX_DEPTH) throw einval(`nvlist nested deeper than ${NV_MAX_DEPTH}`);
        const child = new NvList(this.header(false) & PUBLIC_FLAGS);
        add(name, { type: 'nvlist', value: child });
        this.pairs(child, depth + 1, 'nvlist');
      } else if (h.type === NV_TYPE.NVLIST_ARRAY) {
        if (h.datasize !== 0 || h.nitems < 1 || h.nitems > this.left / MIN_ELEMENT_SIZE) throw einval(`${name}: malformed nvlist array`);
        if (depth + 1 > NV_MAX_DEPTH) throw einval(`nvlist nested deeper than ${NV_MAX_DEPTH}`);
        const elements: NvList[] = [];
        for (let k = 0; k < h.nitems; k++) {
          const e = new NvList(this.header(false) & PUBLIC_FLAGS);
          elements.push(e);
          if (k === 0) add(name, { type: 'nvlist_array', value: elements });
          this.pairs(e, depth + 1, 'element');
        }
      } else {
        add(name, this.data(name, h));
      }
    }
  }

  /** The data of a pair that holds no nested lists. */
  private data(name: string, h: PairHeader): NvValue {
    const { type, datasize, nitems } = h;
    const at = this.off;
    const bad = (what: string): NvError => einval(`${name}: ${what}`);
    const scalar = (size: number | undefined): void => {
      if (nitems !== 0) throw bad(`nitems ${nitems} for a non-array`);
      if (size !== undefined && datasize !== size) throw bad(`datasize ${datasize}, expected ${size}`);
    };
    const array = (itemSize: number): void => {
      if (nitems < 1 || nitems > this.left / itemSize || datasize !== nitems * itemSize) throw bad(`datasize ${datasize} for ${nitems} items`);
    };
    const fd = (off: number, min: bigint): number => {
      const v = this.view.getBigInt64(off, this.le);
      if (v < min || v > BigInt(FD_MAX)) throw bad(`invalid descriptor ${v}`);
      return Number(v);
    };
    let value: NvValue;
    switch (type) {
      case NV_TYPE.NULL:
        scalar(0);
        value = { type: 'null' };
        break;
      case NV_TYPE.BOOL: {
        scalar(1);
        const b = this.bytes[at]!;
        if (b > 1) throw bad(`bool ${b}`);
        value = { type: 'bool', value: b === 1 };
        break;
      }
      case NV_TYPE.NUMBER:
        scalar(8);
        value = { type: 'number', value: this.view.getBigUint64(at, this.le) };
        break;
      case NV_TYPE.DESCRIPTOR:
        scalar(8);
        value = { type: 'descriptor', value: fd(at, 0n) };
        this.descriptorsSeen++;
        break;
      case NV_TYPE.STRING:
        scalar(undefined);
        if (datasize < 1 || this.bytes.subarray(at, at + datasize).indexOf(0) !== datasize - 1) {
          throw bad('string is not NUL-terminated or holds a NUL');
        }
        value = { type: 'string', value: this.text(at, at + datasize - 1, 'string') };
        break;
      case NV_TYPE.BINARY:
        scalar(undefined);
        if (datasize < 1) throw bad('empty binary');
        value = { type: 'binary', value: this.bytes.slice(at, at + datasize) };
        break;
      case NV_TYPE.BOOL_ARRAY: {
        array(1);
        const out: boolean[] = [];
        for (let i = 0; i < nitems; i++) {
          const b = this.bytes[at + i]!;
          if (b > 1) throw bad(`bool ${b}`);
          out.push(b === 1);
        }
        value = { type: 'bool_array', value: out };
        break;
      }
      case NV_TYPE.NUMBER_ARRAY: {
        array(8);
        const out: bigint[] = [];
        for (let i = 0; i < nitems; i++) out.push(this.view.getBigUint64(at + 8 * i, this.le));
        value = { type: 'number_array', value: out };
        break;
      }
      case NV_TYPE.DESCRIPTOR_ARRAY: {
        array(8);
        const out: number[] = [];
        for (let i = 0; i < nitems; i++) out.push(fd(at + 8 * i, -1n));
        this.descriptorsSeen += nitems;
        value = { type: 'descriptor_array', value: out };
        break;
      }
      case NV_TYPE.STRING_ARRAY: {
        if (nitems < 1 || datasize < nitems) throw bad(`datasize ${datasize} for ${nitems} strings`);
        const region = this.bytes.subarray(at, at + datasize);
        const out: string[] = [];
        let p = 0;
        for (let i = 0; i < nitems; i++) {
          const z = region.indexOf(0, p);
          if (z < 0) throw bad('string array item is not NUL-terminated');
          out.push(this.text(at + p, at + z, 'string'));
          p = z + 1;
        }
        if (p !== datasize) throw bad(`string array has ${datasize - p} bytes past its ${nitems} strings`);
        value = { type: 'string_array', value: out };
        break;
      }
      default:
        throw bad(`unexpected nvpair type ${type}`);
    }
    this.off += datasize;
    return value;
  }
}

// ---------------------------------------------------------------------------------------------
// debugging / audit

export type NvJSONValue = null | boolean | number | string | boolean[] | number[] | string[] | NvJSON | NvJSON[];
export interface NvJSONPair { name: string; type: NvType; value: NvJSONValue }
export interface NvJSON { flags: number; error?: string; pairs: NvJSONPair[] }

/** Plain JSON-safe data for logs and audit records: numbers as decimal strings, binary as hex. */
export function nvlistToJSON(list: NvList): NvJSON {
  return toJSON(list, []);
}

function toJSON(list: NvList, ancestors: NvList[]): NvJSON {
  if (ancestors.includes(list)) throw einval('nvlist contains itself');
  const inner = [...ancestors, list];
  const out: NvJSON = { flags: list.flags, pairs: [] };
  if (list.error) out.error = list.error.errno;
  for (const [name, v] of list.pairs) {
    let value: NvJSONValue;
    switch (v.type) {
      case 'null': value = null; break;
      case 'number': value = v.value.toString(); break;
      case 'number_array': value = v.value.map((n) => n.toString()); break;
      case 'binary': value = Buffer.from(v.value.buffer, v.value.byteOffset, v.value.byteLength).toString('hex'); break;
      case 'nvlist': value = toJSON(v.value, inner); break;
      case 'nvlist_array': value = v.value.map((l) => toJSON(l, inner)); break;
      case 'bool_array': case 'string_array': case 'descriptor_array': value = [...v.value] as boolean[] | string[] | number[]; break;
      default: value = v.value;
    }
    out.pairs.push({ name, type: v.type, value });
  }
  return out;
}
