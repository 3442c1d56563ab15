/**
 * CloudABI's argdata (NuxiNL/argdata): a typed tree of arguments in one byte string, and the
 * `argdata` import module through which a guest fetches the tree capsa prepared for it.
 *
 * The binary format, checked against NuxiNL/argdata at 9b78f467f391 (2020-09-12): the type bytes
 * are `src/argdata_impl.h`'s ADT_* enum; lengths are `parse_subfield`/`encode_subfield_length` in
 * the same file; ints are `argdata_create_int_s.c`/`_u.c` (read back by `argdata_get_int_s.c`);
 * timestamps `argdata_create_timestamp.c`; floats `argdata_create_float.c`; strings
 * `argdata_get_str.c` (NUL-terminated, `validate_string`); bools `argdata_true.c`/`_false.c`;
 * fds `encode_fd`/`parse_fd`; null is `argdata_null.c` (a zero-length buffer).
 *
 *   node      := ε (null) | type-byte payload
 *   01 binary    the bytes
 *   02 bool      empty for false, 01 for true
 *   03 fd        4-byte big-endian descriptor number
 *   04 float     8-byte big-endian IEEE 754 double
 *   05 int       minimal big-endian two's complement; 0 is empty
 *   06 map       (varint-length key, varint-length value)*
 *   07 seq       (varint-length element)*
 *   08 str       UTF-8, then one NUL (the string may itself hold NULs)
 *   09 timestamp nanoseconds since the epoch, like int
 *
 * A varint length is big-endian, 7 bits per byte, and the high bit marks the LAST byte (127 is
 * `ff`, 128 is `01 80`); a leading 00 byte (an overlong form) is malformed, as in parse_subfield.
 *
 * This file must not import from src/host: ArgdataValue is a structural copy of the encodable
 * part of the manifest's ArgNode, with descriptors already resolved to guest fd numbers.
 */
import type { GuestMemory } from './memory.js';
import { ERRNO } from './constants.js';
import { guard, type HostErrorHandler } from './preview1.js';

/** One node of an argdata tree: ArgNode (src/manifest/types.ts) minus its unresolved `file`. */
export type ArgdataValue =
  | { type: 'null' }
  | { type: 'bool'; value: boolean }
  | { type: 'int'; value: bigint }
  | { type: 'float'; value: number }
  | { type: 'str'; value: string }
  | { type: 'binary'; value: Uint8Array }
  /** Nanoseconds since 1970-01-01T00:00:00Z; negative is before. */
  | { type: 'timestamp'; value: bigint }
  | { type: 'seq'; items: ArgdataValue[] }
  | { type: 'map'; entries: [ArgdataValue, ArgdataValue][] }
  /** A descriptor number in the guest's table, 0 … 2^31-1. */
  | { type: 'fd'; fd: number };

/** The type bytes (NuxiNL's ADT_* in argdata_impl.h). */
export const ARGDATA_TYPE = {
  binary: 1, bool: 2, fd: 3, float: 4, int: 5, map: 6, seq: 7, str: 8, timestamp: 9,
} as const;

/** Maps and seqs nest at most this deep (the root container is level 1), in both directions. */
export const ARGDATA_MAX_DEPTH = 64;

/** encodeArgdata's default size cap: 64 MiB. */
export const ARGDATA_DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

export interface EncodeOptions {
  /**
   * The largest encoding allowed (default ARGDATA_DEFAULT_MAX_BYTES, at most 2^32-1 since the
   * guest reads the size as a u32). A tree that shares subtrees (YAML aliases) is measured once
   * per distinct node, but encodes in full at every place, so this is what stops an alias bomb.
   */
  maxBytes?: number;
}

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// ---------------------------------------------------------------------------------------------
// Encoding

/** Bytes of a varint length (NuxiNL's get_subfield_length minus the field itself). */
function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) { n = Math.floor(n / 0x80); size++; }
  return size;
}

/** Writes `n` as NuxiNL's encode_subfield_length does: big-endian, high bit on the last byte. */
function writeVarint(out: Uint8Array, off: number, n: number): number {
  const size = varintSize(n);
  let v = n;
  for (let i = size - 1; i >= 0; i--) {
    out[off + i] = (v % 0x80) | (i === size - 1 ? 0x80 : 0);
    v = Math.floor(v / 0x80);
  }
  return off + size;
}

/** Minimal signed big-endian two's complement; 0 is empty (argdata_create_int_s/_u). */
function encodeSignedBigEndian(v: bigint): Uint8Array {
  if (v === 0n) return EMPTY;
  // n bytes hold -2^(8n-1) … 2^(8n-1)-1: one more bit than the magnitude (of v, or of ~v if negative).
  const magnitude = v < 0n ? ~v : v;
  const bits = magnitude === 0n ? 0 : magnitude.toString(2).length;
  const n = (bits >> 3) + 1;
  const hex = BigInt.asUintN(n * 8, v).toString(16).padStart(n * 2, '0');
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** True if the string has no lone surrogate (which UTF-8 cannot carry). */
function isWellFormed(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c > 0xdbff) return false;
    const d = s.charCodeAt(i + 1);
    if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
    i++;
  }
  return true;
}

interface Measured {
  /** Encoded bytes: type byte and payload (0 for null). */
  size: number;
  /** Levels of maps and seqs in the subtree (0 for a scalar). */
  height: number;
  /** The payload of a str, int or timestamp. */
  payload?: Uint8Array;
}

class Encoder {
  /**
   * What measure() learned of each node, by identity: a subtree shared by several parents (a YAML
   * alias) is validated and measured once, so the work is linear in distinct nodes.
   */
  private readonly known = new Map<ArgdataValue, Measured>();
  private readonly path: (string | number)[] = [];

  constructor(private readonly maxBytes: number) {}

  private fail(Err: typeof RangeError | typeof TypeError, message: string): never {
    let where = 'argdata';
    for (const p of this.path) where += typeof p === 'number' ? `[${p}]` : `.${p}`;
    throw new Err(`${where}: ${message}`);
  }

  private cap(total: number): number {
    if (total > this.maxBytes) this.fail(RangeError, `the encoding exceeds ${this.maxBytes} bytes`);
    return total;
  }

  private tooDeep(): never {
    return this.fail(RangeError, `nested deeper than ${ARGDATA_MAX_DEPTH} levels`);
  }

  /**
   * Validates `node`, placed `depth` levels down (the root is 1), and returns its encoded size.
   * A cycle never finishes measuring, so it is never in `known`, and runs into the depth cap.
   */
  measure(node: ArgdataValue, depth: number): number {
    if (node === null || typeof node !== 'object') this.fail(TypeError, `not an argdata node: ${String(node)}`);
    const known = this.known.get(node);
    if (known !== undefined) {
      if (depth + known.height - 1 > ARGDATA_MAX_DEPTH) this.tooDeep();
      return known.size;
    }
    const m = this.measureNew(node, depth);
    this.known.set(node, m);
    return m.size;
  }

  private measureNew(node: ArgdataValue, depth: number): Measured {
    switch (node.type) {
      case 'null': return { size: 0, height: 0 };
      case 'bool':
        if (typeof node.value !== 'boolean') this.fail(TypeError, 'bool value is not a boolean');
        return { size: node.value ? 2 : 1, height: 0 };
      case 'fd':
        if (!Number.isInteger(node.fd) || node.fd < 0 || node.fd > 0x7fffffff) {
          this.fail(RangeError, `fd ${String(node.fd)} is not a descriptor number (0 … 2^31-1)`);
        }
        return { size: 5, height: 0 };
      case 'float':
        if (typeof node.value !== 'number') this.fail(TypeError, 'float value is not a number');
        return { size: 9, height: 0 };
      case 'int':
      case 'timestamp': {
        const what = node.type;
        if (typeof node.value !== 'bigint') this.fail(TypeError, `${what} value is not a bigint`);
        const payload = encodeSignedBigEndian(node.value);
        return { size: this.cap(1 + payload.length), height: 0, payload };
      }
      case 'str': {
        if (typeof node.value !== 'string') this.fail(TypeError, 'str value is not a string');
        if (!isWellFormed(node.value)) this.fail(RangeError, 'str value holds a lone surrogate (not encodable as UTF-8)');
        const payload = encoder.encode(node.value);
        return { size: this.cap(1 + payload.length + 1), height: 0, payload };
      }
      case 'binary':
        if (!(node.value instanceof Uint8Array)) this.fail(TypeError, 'binary value is not a Uint8Array');
        return { size: this.cap(1 + node.value.length), height: 0 };
      case 'seq': {
        if (depth > ARGDATA_MAX_DEPTH) this.tooDeep();
        if (!Array.isArray(node.items)) this.fail(TypeError, 'seq items is not an array');
        let total = 1, height = 0;
        for (let i = 0; i < node.items.length; i++) {
          this.path.push(i);
          const item = node.items[i]!;
          const n = this.measure(item, depth + 1);
          height = Math.max(height, this.known.get(item)!.height);
          total = this.cap(total + varintSize(n) + n);
          this.path.pop();
        }
        return { size: total, height: height + 1 };
      }
      case 'map': {
        if (depth > ARGDATA_MAX_DEPTH) this.tooDeep();
        if (!Array.isArray(node.entries)) this.fail(TypeError, 'map entries is not an array');
        let total = 1, height = 0;
        for (let i = 0; i < node.entries.length; i++) {
          const entry = node.entries[i]!;
          if (!Array.isArray(entry) || entry.length !== 2) {
            this.path.push(i);
            this.fail(TypeError, 'a map entry is not a [key, value] pair');
          }
          this.path.push(i, 'key');
          const k = this.measure(entry[0], depth + 1);
          this.path[this.path.length - 1] = 'value';
          const v = this.measure(entry[1], depth + 1);
          this.path.length -= 2;
          height = Math.max(height, this.known.get(entry[0])!.height, this.known.get(entry[1])!.height);
          total = this.cap(total + varintSize(k) + k + varintSize(v) + v);
        }
        return { size: total, height: height + 1 };
      }
      default:
        return this.fail(TypeError, `unknown node type ${JSON.stringify((node as unknown as { type: unknown }).type)}`);
    }
  }

  /** Writes a measured `node` at `off`; returns the end. */
  write(node: ArgdataValue, out: Uint8Array, dv: DataView, off: number): number {
    switch (node.type) {
      case 'null': return off;
      case 'bool':
        out[off++] = ARGDATA_TYPE.bool;
        if (node.value) out[off++] = 1;
        return off;
      case 'fd':
        out[off] = ARGDATA_TYPE.fd;
        dv.setInt32(off + 1, node.fd, false);
        return off + 5;
      case 'float':
        out[off] = ARGDATA_TYPE.float;
        dv.setFloat64(off + 1, node.value, false);
        return off + 9;
      case 'int':
      case 'timestamp':
      case 'str': {
        out[off++] = ARGDATA_TYPE[node.type];
        const p = this.known.get(node)!.payload!;
        out.set(p, off);
        off += p.length;
        if (node.type === 'str') out[off++] = 0;
        return off;
      }
      case 'binary':
        out[off++] = ARGDATA_TYPE.binary;
        out.set(node.value, off);
        return off + node.value.length;
      case 'seq':
        out[off++] = ARGDATA_TYPE.seq;
        for (const item of node.items) off = this.writeField(item, out, dv, off);
        return off;
      case 'map':
        out[off++] = ARGDATA_TYPE.map;
        for (const [k, v] of node.entries) {
          off = this.writeField(k, out, dv, off);
          off = this.writeField(v, out, dv, off);
        }
        return off;
    }
  }

  /** A subfield: its varint length, then the node. */
  private writeField(node: ArgdataValue, out: Uint8Array, dv: DataView, off: number): number {
    return this.write(node, out, dv, writeVarint(out, off, this.known.get(node)!.size));
  }
}

/**
 * Encodes a tree in NuxiNL/argdata's binary format, byte for byte what its writers produce.
 * Throws RangeError for values the format or capsa cannot carry (an fd outside 0 … 2^31-1, a
 * string with a lone surrogate, nesting deeper than ARGDATA_MAX_DEPTH, which also catches cycles,
 * an encoding over maxBytes) and TypeError for values that are not argdata nodes at all.
 */
export function encodeArgdata(node: ArgdataValue, options: EncodeOptions = {}): Uint8Array {
  const maxBytes = options.maxBytes ?? ARGDATA_DEFAULT_MAX_BYTES;
  if (!Number.isInteger(maxBytes) || maxBytes < 0 || maxBytes > 0xffffffff) {
    throw new RangeError(`maxBytes ${maxBytes} is not an integer in 0 … 2^32-1`);
  }
  const enc = new Encoder(maxBytes);
  const size = enc.measure(node, 1);
  const out = new Uint8Array(size);
  const end = enc.write(node, out, new DataView(out.buffer), 0);
  if (end !== size) throw new Error(`capsa bug: argdata measured ${size} bytes but wrote ${end}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding

function malformed(at: number, message: string): never {
  throw new RangeError(`malformed argdata at byte ${at}: ${message}`);
}

/** Reads a minimal signed big-endian integer; rejects the redundant forms encoders never write. */
function readSigned(b: Uint8Array, start: number, end: number, what: string): bigint {
  const len = end - start;
  if (len === 0) return 0n;
  const b0 = b[start]!;
  if (len === 1 && b0 === 0) malformed(start, `${what} 0 must be encoded as an empty payload`);
  if (len >= 2) {
    const b1 = b[start + 1]!;
    if ((b0 === 0x00 && (b1 & 0x80) === 0) || (b0 === 0xff && (b1 & 0x80) !== 0)) {
      malformed(start, `${what} has a redundant leading byte`);
    }
  }
  let hex = '';
  for (let i = start; i < end; i++) hex += (b[i]! < 16 ? '0' : '') + b[i]!.toString(16);
  return BigInt.asIntN(len * 8, BigInt(`0x${hex}`));
}

/**
 * Parses one subfield length at `off` (NuxiNL's parse_subfield): returns [fieldStart, fieldEnd].
 * Stops as soon as the length exceeds what is left, so a run of continuation bytes costs nothing.
 */
function readField(b: Uint8Array, off: number, end: number): [number, number] {
  const at = off;
  if (b[off] === 0) malformed(at, 'overlong length (leading 00 byte)');
  let n = 0;
  for (;;) {
    if (off >= end) malformed(at, 'truncated length');
    const c = b[off++]!;
    n = n * 0x80 + (c & 0x7f);
    if (n > end - off) malformed(at, `length ${c & 0x80 ? n : `≥ ${n}`} exceeds the ${end - off} bytes left`);
    if (c & 0x80) break;
  }
  return [off, off + n];
}

function decodeNode(b: Uint8Array, dv: DataView, start: number, end: number, depth: number): ArgdataValue {
  if (start === end) return { type: 'null' };
  const type = b[start]!;
  const p = start + 1;
  const len = end - p;
  switch (type) {
    case ARGDATA_TYPE.binary:
      return { type: 'binary', value: b.slice(p, end) };
    case ARGDATA_TYPE.bool:
      if (len === 0) return { type: 'bool', value: false };
      if (len === 1 && b[p] === 1) return { type: 'bool', value: true };
      return malformed(p, 'a bool is empty (false) or 01 (true)');
    case ARGDATA_TYPE.fd: {
      if (len !== 4) malformed(p, `an fd is 4 bytes, not ${len}`);
      const fd = dv.getInt32(p, false);
      if (fd < 0) malformed(p, `fd ${fd >>> 0} is outside 0 … 2^31-1`);
      return { type: 'fd', fd };
    }
    case ARGDATA_TYPE.float:
      if (len !== 8) malformed(p, `a float is 8 bytes, not ${len}`);
      return { type: 'float', value: dv.getFloat64(p, false) };
    case ARGDATA_TYPE.int:
      return { type: 'int', value: readSigned(b, p, end, 'int') };
    case ARGDATA_TYPE.timestamp:
      return { type: 'timestamp', value: readSigned(b, p, end, 'timestamp') };
    case ARGDATA_TYPE.str: {
      if (len < 1 || b[end - 1] !== 0) malformed(p, 'a string must end with a NUL byte');
      const view = b.subarray(p, end - 1);
      try {
        return { type: 'str', value: decoder.decode(view.buffer instanceof ArrayBuffer ? view : view.slice()) };
      } catch {
        return malformed(p, 'string is not valid UTF-8');
      }
    }
    case ARGDATA_TYPE.seq: {
      if (depth > ARGDATA_MAX_DEPTH) malformed(start, `nested deeper than ${ARGDATA_MAX_DEPTH} levels`);
      const items: ArgdataValue[] = [];
      let off = p;
      while (off < end) {
        const [s, e] = readField(b, off, end);
        items.push(decodeNode(b, dv, s, e, depth + 1));
        off = e;
      }
      return { type: 'seq', items };
    }
    case ARGDATA_TYPE.map: {
      if (depth > ARGDATA_MAX_DEPTH) malformed(start, `nested deeper than ${ARGDATA_MAX_DEPTH} levels`);
      const entries: [ArgdataValue, ArgdataValue][] = [];
      let off = p;
      while (off < end) {
        const [ks, ke] = readField(b, off, end);
        if (ke === end) malformed(ke, 'a map key without a value');
        const [vs, ve] = readField(b, ke, end);
        entries.push([decodeNode(b, dv, ks, ke, depth + 1), decodeNode(b, dv, vs, ve, depth + 1)]);
        off = ve;
      }
      return { type: 'map', entries };
    }
    default:
      return malformed(start, `unknown type byte 0x${type.toString(16).padStart(2, '0')}`);
  }
}

/**
 * Decodes argdata strictly: the inverse of encodeArgdata. Anything else throws a RangeError whose
 * message names the byte offset: an unknown type byte, a bad payload size, a length that overruns
 * its container or has a leading 00, a map key without a value, a string without its NUL or not
 * valid UTF-8, a non-minimal int or timestamp, an fd ≥ 2^31, nesting beyond ARGDATA_MAX_DEPTH.
 * Linear in the input, recursion bounded by the depth cap. Empty input is null. Binary values are
 * copies. (NuxiNL's readers are laxer about redundant int bytes; capsa never writes them.)
 */
export function decodeArgdata(bytes: Uint8Array): ArgdataValue {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return decodeNode(bytes, dv, 0, bytes.length, 1);
}

// ---------------------------------------------------------------------------------------------
// The guest's import module

/** The guest import module's name: `__attribute__((import_module("argdata")))`. */
export const ARGDATA_MODULE = 'argdata';

/** What the imports need of a guest: its (bound, bounds-checked) memory. A WasiContext fits. */
export interface ArgdataImportContext {
  readonly mem: GuestMemory;
}

/** The `argdata` import module, shaped like args_sizes_get/args_get. */
export interface ArgdataImports {
  /** `argdata_size(size: *u32) -> errno`: writes the byte length of the program's argdata. */
  argdata_size: (sizePtr: number) => number;
  /** `argdata_get(buf: *u8) -> errno`: copies the argdata to buf (argdata_size bytes). */
  argdata_get: (bufPtr: number) => number;
}

/**
 * Builds the guest import module `argdata`:
 *
 *   argdata.argdata_size(size_ptr: i32) -> errno   writes the length as a little-endian u32
 *   argdata.argdata_get(buf_ptr: i32) -> errno     copies that many bytes to buf_ptr
 *
 * Either is EFAULT (21) if the pointer (and for argdata_get the whole length) is outside guest
 * memory, before anything is written; errors never throw into the guest (`guard`). A null tree
 * is 0 bytes: size 0, and argdata_get copies nothing.
 *
 * `ctx.mem` is read on every call, so a context reused for several guests works. `getBytes` is
 * called on every call and must return the same bytes for one run (encode once, e.g. with
 * encodeArgdata, and close over the result). `onHostError` hears about failures that are the
 * host's (getBytes throwing), which the guest sees as EIO.
 */
export function createArgdataImports(
  ctx: ArgdataImportContext,
  getBytes: () => Uint8Array,
  onHostError?: HostErrorHandler,
): ArgdataImports {
  return {
    argdata_size: guard('argdata_size', (sizePtr: number): number => {
      const size = getBytes().length;
      ctx.mem.sync().setU32(sizePtr, size);
      return ERRNO.SUCCESS;
    }, onHostError),
    argdata_get: guard('argdata_get', (bufPtr: number): number => {
      const bytes = getBytes();
      ctx.mem.sync().bytes(bufPtr, bytes.length).set(bytes);
      return ERRNO.SUCCESS;
    }, onHostError),
  };
}
