/**
 * CloudABI argdata (src/wasi/argdata.ts): the byte format, written out by hand from NuxiNL/argdata
 * (argdata_impl.h, argdata_create_*.c), the strict decoder, and the guest's `argdata` imports.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ARGDATA_MAX_DEPTH, createArgdataImports, decodeArgdata, encodeArgdata, type ArgdataValue,
} from '../../src/wasi/argdata.js';
import { ERRNO } from '../../src/wasi/constants.js';
import { GuestMemory } from '../../src/wasi/memory.js';
import type { ArgNode } from '../../src/manifest/types.js';

// Every argdata value is a manifest ArgNode (type-level: tsc fails if the two drift apart).
const asArgNode = (v: ArgdataValue): ArgNode => v;
void asArgNode;

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'));

const nul: ArgdataValue = { type: 'null' };
const int = (value: bigint): ArgdataValue => ({ type: 'int', value });
const str = (value: string): ArgdataValue => ({ type: 'str', value });
const ts = (value: bigint): ArgdataValue => ({ type: 'timestamp', value });
const seq = (...items: ArgdataValue[]): ArgdataValue => ({ type: 'seq', items });
const map = (...entries: [ArgdataValue, ArgdataValue][]): ArgdataValue => ({ type: 'map', entries });
const bin = (value: Uint8Array | number[]): ArgdataValue => ({ type: 'binary', value: Uint8Array.from(value) });

/** [what, tree, hex]: each checked both ways. */
const FIXTURES: [string, ArgdataValue, string][] = [
  ['null is zero bytes', nul, ''],
  ['false', { type: 'bool', value: false }, '02'],
  ['true', { type: 'bool', value: true }, '02 01'],
  ['fd 0', { type: 'fd', fd: 0 }, '03 00000000'],
  ['fd 7', { type: 'fd', fd: 7 }, '03 00000007'],
  ['fd 2^31-1', { type: 'fd', fd: 0x7fffffff }, '03 7fffffff'],
  ['float 1.5', { type: 'float', value: 1.5 }, '04 3ff8000000000000'],
  ['float -0', { type: 'float', value: -0 }, '04 8000000000000000'],
  ['float -Infinity', { type: 'float', value: -Infinity }, '04 fff0000000000000'],
  ['int 0', int(0n), '05'],
  ['int 1', int(1n), '05 01'],
  ['int 127', int(127n), '05 7f'],
  ['int 128', int(128n), '05 0080'],
  ['int 255', int(255n), '05 00ff'],
  ['int 256', int(256n), '05 0100'],
  ['int 32767', int(32767n), '05 7fff'],
  ['int 32768', int(32768n), '05 008000'],
  ['int -1', int(-1n), '05 ff'],
  ['int -128', int(-128n), '05 80'],
  ['int -129', int(-129n), '05 ff7f'],
  ['int -256', int(-256n), '05 ff00'],
  ['int -257', int(-257n), '05 feff'],
  ['int 2^63-1', int(2n ** 63n - 1n), '05 7fffffffffffffff'],
  ['int -2^63', int(-(2n ** 63n)), '05 8000000000000000'],
  ['int 2^64-1', int(2n ** 64n - 1n), '05 00ffffffffffffffff'],
  ['int 2^64', int(2n ** 64n), '05 010000000000000000'],
  ['str ""', str(''), '08 00'],
  ['str "hi"', str('hi'), '08 6869 00'],
  ['str "é✓😀"', str('é✓😀'), '08 c3a9 e29c93 f09f9880 00'],
  ['str with a NUL inside', str('a\0b'), '08 610062 00'],
  ['str with a BOM', str('\ufeffx'), '08 efbbbf78 00'],
  ['empty binary', bin([]), '01'],
  ['binary', bin([0, 1, 0xff]), '01 0001ff'],
  ['timestamp 0', ts(0n), '09'],
  ['timestamp 1 ns', ts(1n), '09 01'],
  ['timestamp -1 ns', ts(-1n), '09 ff'],
  // 2023-11-14T22:13:20.123456789Z; NuxiNL's argdata_create_timestamp gives the same bytes.
  ['timestamp 1700000000.123456789', ts(1700000000123456789n), '09 17979cfe3d85cd15'],
  ['empty seq', seq(), '07'],
  ['empty map', map(), '06'],
  ['seq of null', seq(nul), '07 80'],
  ['seq [null, true, "hi"]', seq(nul, { type: 'bool', value: true }, str('hi')), '07 80 82 0201 84 08686900'],
  ['map {"a": 1}', map([str('a'), int(1n)]), '06 83 086100 82 0501'],
  ['map {null: null}', map([nul, nul]), '06 80 80'],
  ['map {"k": [{}, [-1]]}', map([str('k'), seq(map(), seq(int(-1n)))]),
    '06 83 086b00 88 07 81 06 84 07 82 05ff'],
  ['map with a map key', map([map([int(1n), int(2n)]), seq()]), '06 87 06 82 0501 82 0502 81 07'],
];

/** A seq holding one binary element of `total` bytes (type byte included). */
const seqOfElement = (total: number) => seq(bin(new Uint8Array(total - 1).fill(0xab)));

describe('encodeArgdata / decodeArgdata: byte-exact fixtures', () => {
  it.each(FIXTURES)('%s', (_what, tree, h) => {
    expect(hex(encodeArgdata(tree))).toBe(h.replace(/\s+/g, ''));
    expect(decodeArgdata(bytes(h))).toEqual(tree);
  });

  // Lengths: big-endian 7-bit groups, high bit on the LAST byte (parse_subfield).
  it.each([
    [1, '81'], [127, 'ff'], [128, '0180'], [16383, '7fff'], [16384, '010080'],
    [2097151, '7f7fff'], [2097152, '01000080'],
  ])('an element of %i bytes has the length prefix %s', (total, prefix) => {
    const tree = seqOfElement(total);
    const enc = encodeArgdata(tree);
    expect(hex(enc.subarray(0, 1 + prefix.length / 2 + 1))).toBe(`07${prefix}01`);
    expect(enc.length).toBe(1 + prefix.length / 2 + total);
    const back = decodeArgdata(enc) as { type: 'seq'; items: { type: 'binary'; value: Uint8Array }[] };
    expect(back.items.length).toBe(1);
    // Buffer.equals: toEqual on megabytes of typed array takes seconds.
    expect(Buffer.from(back.items[0]!.value).equals((tree as typeof back).items[0]!.value)).toBe(true);
  });

  it('a null element has length 0 (80), also as a map key or value', () => {
    expect(hex(encodeArgdata(seq(nul, nul)))).toBe('078080');
    expect(decodeArgdata(bytes('06 80 82 0201'))).toEqual(map([nul, { type: 'bool', value: true }]));
  });

  it('shares nothing with its input: binary values decode as copies', () => {
    const input = bytes('01 0102');
    const out = decodeArgdata(input) as { type: 'binary'; value: Uint8Array };
    input[1] = 9;
    expect([...out.value]).toEqual([1, 2]);
  });

  it('decodes from a view at an offset, and from shared memory', () => {
    const backing = bytes('ff ff 08 6869 00 ff');
    expect(decodeArgdata(backing.subarray(2, 6))).toEqual(str('hi'));
    const shared = new Uint8Array(new SharedArrayBuffer(4));
    shared.set(bytes('08 6869 00'));
    expect(decodeArgdata(shared)).toEqual(str('hi'));
  });
});

describe('round trip', () => {
  const { tree } = fc.letrec<{ tree: ArgdataValue; leaf: ArgdataValue; seq: ArgdataValue; map: ArgdataValue }>((tie) => ({
    tree: fc.oneof({ depthSize: 'small', withCrossShrink: true }, tie('leaf'), tie('seq'), tie('map')),
    leaf: fc.oneof(
      fc.constant<ArgdataValue>({ type: 'null' }),
      fc.boolean().map((value): ArgdataValue => ({ type: 'bool', value })),
      fc.oneof(fc.bigInt({ min: -300n, max: 300n }), fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }), fc.bigInt())
        .map((value): ArgdataValue => ({ type: 'int', value })),
      fc.double().map((value): ArgdataValue => ({ type: 'float', value })),
      fc.string({ unit: 'binary' }).map((value): ArgdataValue => ({ type: 'str', value })),
      fc.uint8Array({ maxLength: 200 }).map((value): ArgdataValue => ({ type: 'binary', value })),
      fc.bigInt({ min: -(2n ** 95n), max: 2n ** 95n }).map((value): ArgdataValue => ({ type: 'timestamp', value })),
      fc.integer({ min: 0, max: 0x7fffffff }).map((fd): ArgdataValue => ({ type: 'fd', fd })),
    ),
    seq: fc.array(tie('tree'), { maxLength: 5 }).map((items): ArgdataValue => ({ type: 'seq', items })),
    map: fc.array(fc.tuple(tie('tree'), tie('tree')), { maxLength: 4 })
      .map((entries): ArgdataValue => ({ type: 'map', entries })),
  }));

  it('decode(encode(tree)) is the tree, and encode is deterministic', () => {
    fc.assert(fc.property(tree, (t) => {
      const enc = encodeArgdata(t);
      expect(decodeArgdata(enc)).toEqual(t);
      expect(encodeArgdata(decodeArgdata(enc))).toEqual(enc);
    }), { numRuns: 500 });
  });

  it('every string round-trips, including astral and NUL characters', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 50 }), (s) => {
      expect(decodeArgdata(encodeArgdata(str(s)))).toEqual(str(s));
    }));
  });

  it('every int and timestamp in ±2^200 round-trips through the minimal form', () => {
    fc.assert(fc.property(fc.bigInt({ min: -(2n ** 200n), max: 2n ** 200n }), (v) => {
      const enc = encodeArgdata(int(v));
      expect(decodeArgdata(enc)).toEqual(int(v));
      // Minimal: dropping the first payload byte would change the value or its sign.
      if (enc.length > 2) {
        const lead = enc[1]!, next = enc[2]!;
        expect((lead === 0 && next < 0x80) || (lead === 0xff && next >= 0x80)).toBe(false);
      }
      expect(decodeArgdata(encodeArgdata(ts(v)))).toEqual(ts(v));
    }));
  });
});

describe('decodeArgdata rejects malformed data with a RangeError', () => {
  it.each([
    ['00', /unknown type byte 0x00/],
    ['0a', /unknown type byte 0x0a/],
    ['ff 00', /unknown type byte 0xff/],
    ['02 00', /bool/],
    ['02 0101', /bool/],
    ['03 000000', /fd is 4 bytes/],
    ['03 0000000000', /fd is 4 bytes/],
    ['03 80000000', /fd 2147483648/],
    ['03 ffffffff', /fd 4294967295/],
    ['04 3ff80000000000', /float is 8 bytes/],
    ['05 00', /0 must be encoded as an empty payload/],
    ['05 007f', /redundant leading byte/],
    ['05 ff80', /redundant leading byte/],
    ['09 0001', /redundant leading byte/],
    ['08', /must end with a NUL/],
    ['08 6869', /must end with a NUL/],
    ['08 ff 00', /not valid UTF-8/],
    ['08 c080 00', /not valid UTF-8/], // overlong
    ['08 eda080 00', /not valid UTF-8/], // a surrogate
    ['08 f4908080 00', /not valid UTF-8/], // > U+10FFFF
    ['07 00', /overlong length/],
    ['07 0080', /overlong length/],
    ['07 82 05', /exceeds/],
    ['07 01', /exceeds/],
    ['07 01 01', /exceeds|truncated/],
    ['07 ffffffff', /exceeds/],
    ['06 80', /map key without a value/],
    ['06 82 0501', /map key without a value/],
    ['06 80 80 80', /map key without a value/],
    ['07 81 0a', /unknown type byte 0x0a/],
    ['07 82 0500', /at byte 3: int 0/],
  ])('%s', (h, message) => {
    expect(() => decodeArgdata(bytes(h))).toThrow(RangeError);
    expect(() => decodeArgdata(bytes(h))).toThrow(message);
  });

  /** `levels` seqs, each the only element of the one around it, the innermost empty. */
  const nestedSeqs = (levels: number): Uint8Array => {
    const sizes = [1];
    for (let i = 1; i < levels; i++) {
      const inner = sizes[i - 1]!;
      let v = 1;
      for (let n = inner; n >= 0x80; n = Math.floor(n / 0x80)) v++;
      sizes.push(1 + v + inner);
    }
    const out = new Uint8Array(sizes[levels - 1]!);
    let off = 0;
    for (let i = levels - 1; i >= 1; i--) {
      out[off++] = 7;
      const inner = sizes[i - 1]!;
      const digits: number[] = [];
      for (let n = inner; ; n = Math.floor(n / 0x80)) { digits.unshift(n % 0x80); if (n < 0x80) break; }
      digits[digits.length - 1]! |= 0x80;
      for (const d of digits) out[off++] = d;
    }
    out[off] = 7;
    return out;
  };

  it(`accepts ${ARGDATA_MAX_DEPTH} levels of nesting and refuses ${ARGDATA_MAX_DEPTH + 1}`, () => {
    let t = decodeArgdata(nestedSeqs(ARGDATA_MAX_DEPTH));
    for (let i = 1; i < ARGDATA_MAX_DEPTH; i++) t = (t as { items: ArgdataValue[] }).items[0]!;
    expect(t).toEqual(seq());
    expect(() => decodeArgdata(nestedSeqs(ARGDATA_MAX_DEPTH + 1))).toThrow(/nested deeper than 64 levels/);
  });

  it('refuses 200000 levels of nesting without blowing the stack', () => {
    const deep = nestedSeqs(200_000);
    expect(deep.length).toBeGreaterThan(500_000);
    expect(() => decodeArgdata(deep)).toThrow(RangeError);
  });

  it('stops at once on a megabyte of length continuation bytes', () => {
    const hostile = new Uint8Array(1 << 20).fill(0x01);
    hostile[0] = 7;
    // "exceeds" is said at the first bytes; reading the whole megabyte would end "truncated" instead.
    expect(() => decodeArgdata(hostile)).toThrow(/exceeds/);
  });

  it('decodes a million-element seq in linear time', () => {
    const many = new Uint8Array(1 + 1_000_000).fill(0x80);
    many[0] = 7;
    const t = decodeArgdata(many) as { items: ArgdataValue[] };
    expect(t.items.length).toBe(1_000_000);
  });

  const hasNaN = (t: ArgdataValue): boolean =>
    t.type === 'float' ? Number.isNaN(t.value)
      : t.type === 'seq' ? t.items.some(hasNaN)
        : t.type === 'map' ? t.entries.some(([k, v]) => hasNaN(k) || hasNaN(v)) : false;

  // Mutations of valid encodings, and plain random bytes: only RangeError, and whatever decodes is
  // canonical (re-encodes to the same bytes). A throw of anything else fails the property.
  const valid = fc.constantFrom(...FIXTURES.map(([, , h]) => bytes(h)), encodeArgdata(seqOfElement(130)));
  const mutated = fc.tuple(valid, fc.array(fc.tuple(fc.nat(3), fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 4 }))
    .map(([b, ops]) => {
      const out = [...b];
      for (const [op, at, byte] of ops) {
        const i = out.length === 0 ? 0 : at % out.length;
        if (op === 0 && out.length > 0) out[i] = byte;
        else if (op === 1) out.splice(i, 0, byte);
        else if (op === 2) out.splice(i, 1);
        else out.length = i;
      }
      return Uint8Array.from(out);
    });
  const wrapped = fc.tuple(fc.constantFrom(6, 7), fc.uint8Array({ maxLength: 40 }))
    .map(([t, rest]) => Uint8Array.from([t, ...rest]));

  it.each([
    ['mutated encodings', mutated],
    ['random bytes', fc.uint8Array({ maxLength: 64 })],
    ['random bytes in a map or seq', wrapped],
  ] as const)('fuzz: %s', (_what, input) => {
    fc.assert(fc.property(input, (b) => {
      let t: ArgdataValue;
      try {
        t = decodeArgdata(b);
      } catch (e) {
        expect(e).toBeInstanceOf(RangeError);
        expect((e as Error).message).toMatch(/^malformed argdata at byte \d+: /);
        return;
      }
      // Canonical: it re-encodes to the same bytes (but a NaN's payload bits are not kept).
      if (!hasNaN(t)) expect(encodeArgdata(t)).toEqual(b);
      else expect(decodeArgdata(encodeArgdata(t))).toEqual(t);
    }), { numRuns: 3000 });
  });
});

describe('encodeArgdata refuses what it cannot carry', () => {
  it.each([
    ['a negative fd', { type: 'fd', fd: -1 }, RangeError, /argdata: fd -1/],
    ['an fd ≥ 2^31', { type: 'fd', fd: 2 ** 31 }, RangeError, /fd 2147483648/],
    ['a fractional fd', { type: 'fd', fd: 1.5 }, RangeError, /fd 1\.5/],
    ['a lone surrogate', seq(str('ok'), str('\ud800x')), RangeError, /^argdata\[1\]: str value holds a lone surrogate/],
    ['a number as int', { type: 'int', value: 1 }, TypeError, /int value is not a bigint/],
    ['an unknown type', map([str('k'), { type: 'file', path: 'x' } as unknown as ArgdataValue]), TypeError, /^argdata\[0\]\.value: unknown node type "file"/],
    ['a bad map entry', { type: 'map', entries: [[nul]] }, TypeError, /^argdata\[0\]: a map entry/],
    ['not a node (undefined)', undefined, TypeError, /not an argdata node/],
  ] as [string, unknown, ErrorConstructor, RegExp][])('%s', (_what, node, Err, message) => {
    expect(() => encodeArgdata(node as ArgdataValue)).toThrow(Err);
    expect(() => encodeArgdata(node as ArgdataValue)).toThrow(message);
  });

  it(`nests at most ${ARGDATA_MAX_DEPTH} levels, which also stops cycles`, () => {
    let t: ArgdataValue = seq();
    for (let i = 1; i < ARGDATA_MAX_DEPTH; i++) t = seq(t);
    expect(decodeArgdata(encodeArgdata(t))).toEqual(t);
    expect(() => encodeArgdata(map([nul, t]))).toThrow(/nested deeper than 64 levels/);
    const cyclic: { type: 'seq'; items: ArgdataValue[] } = { type: 'seq', items: [] };
    cyclic.items.push(cyclic);
    expect(() => encodeArgdata(cyclic)).toThrow(RangeError);
  });

  it('caps the size, which bounds the work on shared subtrees (an alias bomb)', () => {
    let t: ArgdataValue = str('x'.repeat(10));
    for (let i = 0; i < 60; i++) t = seq(t, t); // 2^60 leaves
    // Without the cap this would walk 2^60 leaves: the test would never end.
    expect(() => encodeArgdata(t)).toThrow(/exceeds 67108864 bytes/);
    expect(() => encodeArgdata(str('abc'), { maxBytes: 4 })).toThrow(/exceeds 4 bytes/);
    expect(hex(encodeArgdata(str('abc'), { maxBytes: 5 }))).toBe('0861626300');
    expect(() => encodeArgdata(nul, { maxBytes: -1 })).toThrow(RangeError);
  });

  it('encodes a shared subtree the same at every place', () => {
    const shared = seq(int(300n), str('s'));
    const t = map([shared, shared]);
    expect(decodeArgdata(encodeArgdata(t))).toEqual(map([seq(int(300n), str('s')), seq(int(300n), str('s'))]));
  });
});

describe('the argdata import module', () => {
  const setup = (data: Uint8Array, onHostError?: (call: string, e: unknown) => void) => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 4 });
    const mem = new GuestMemory();
    mem.bind(memory);
    const imports = createArgdataImports({ mem }, () => data, onHostError);
    const u8 = () => new Uint8Array(memory.buffer);
    return { memory, imports, u8, dv: () => new DataView(memory.buffer) };
  };
  const data = encodeArgdata(map([str('in'), { type: 'fd', fd: 3 }], [str('n'), int(128n)]));

  it('argdata_size writes the length as a u32, argdata_get copies the bytes', () => {
    const { imports, u8, dv } = setup(data);
    expect(imports.argdata_size(100)).toBe(ERRNO.SUCCESS);
    expect(dv().getUint32(100, true)).toBe(data.length);
    u8().fill(0xee, 200, 200 + data.length + 1);
    expect(imports.argdata_get(200)).toBe(ERRNO.SUCCESS);
    expect(u8().slice(200, 200 + data.length)).toEqual(data);
    expect(u8()[200 + data.length]).toBe(0xee); // not a byte more
    expect(decodeArgdata(u8().slice(200, 200 + data.length))).toEqual(decodeArgdata(data));
  });

  it('a null tree is 0 bytes: size 0, and get copies nothing', () => {
    const { imports, u8, dv } = setup(new Uint8Array(0));
    dv().setUint32(8, 0xdeadbeef, true);
    expect(imports.argdata_size(8)).toBe(ERRNO.SUCCESS);
    expect(dv().getUint32(8, true)).toBe(0);
    expect(imports.argdata_get(65536)).toBe(ERRNO.SUCCESS); // an empty range at the very end is inside
    expect(u8().every((b, i) => i >= 8 && i < 12 ? true : b === 0)).toBe(true);
  });

  it('bad pointers are EFAULT, and nothing is written', () => {
    const { imports, u8 } = setup(data);
    for (const ptr of [65533, 65536, -1, 0xffffffff, 2 ** 31]) {
      expect(imports.argdata_size(ptr)).toBe(ERRNO.FAULT);
    }
    for (const ptr of [65536 - data.length + 1, 65536, -1, 0xfffffff0, 0xffffffff]) {
      expect(imports.argdata_get(ptr)).toBe(ERRNO.FAULT);
    }
    expect(u8().every((b) => b === 0)).toBe(true);
    expect(imports.argdata_get(65536 - data.length)).toBe(ERRNO.SUCCESS); // the last place that fits
  });

  it('follows the memory when the guest grows it', () => {
    const { memory, imports, u8 } = setup(data);
    expect(imports.argdata_get(70000)).toBe(ERRNO.FAULT);
    memory.grow(1);
    expect(imports.argdata_get(70000)).toBe(ERRNO.SUCCESS);
    expect(u8().slice(70000, 70000 + data.length)).toEqual(data);
  });

  it('a host failure is EIO for the guest and reported, never thrown into it', () => {
    const errors: string[] = [];
    const memory = new WebAssembly.Memory({ initial: 1 });
    const mem = new GuestMemory();
    mem.bind(memory);
    const imports = createArgdataImports({ mem }, () => { throw new Error('boom'); }, (call) => errors.push(call));
    expect(imports.argdata_size(0)).toBe(ERRNO.IO);
    expect(imports.argdata_get(0)).toBe(ERRNO.IO);
    expect(errors).toEqual(['argdata_size', 'argdata_get']);
  });

  it('an unbound memory is EFAULT', () => {
    const imports = createArgdataImports({ mem: new GuestMemory() }, () => data);
    expect(imports.argdata_size(0)).toBe(ERRNO.FAULT);
    expect(imports.argdata_get(0)).toBe(ERRNO.FAULT);
  });
});
