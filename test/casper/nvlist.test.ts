/**
 * The libnv binary codec: hand-built byte fixtures (written from the format, not from the packer),
 * big-endian input, round trips over random trees in both byte orders, every strictness check of
 * unpack, uniqueness (EEXIST) and flag (EILSEQ) rules, descriptor counts in nested headers, and
 * fuzzing (mutations, truncations, random bytes) that must only ever end in an NvError, quickly.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NV_FLAG, NvError, NvList, type NvValue } from '../../src/casper/nvlist.js';
import { NV_MAX_DEPTH, nvlistToJSON, packNvlist, unpackNvlist } from '../../src/casper/nvlist-codec.js';

// ---------------------------------------------------------------------------------------------
// helpers

/** Hex with spaces, newlines and `#` comments. */
function hex(s: string): Uint8Array {
  const clean = s.replace(/#.*$/gm, '').replace(/\s+/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-f]/i.test(clean)) throw new Error(`bad hex fixture: ${clean}`);
  return Uint8Array.from(clean.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/** A copy with bytes replaced at an offset. */
function patch(b: Uint8Array, at: number, bytes: number[] | Uint8Array): Uint8Array {
  const out = b.slice();
  out.set(bytes, at);
  return out;
}

const le64 = (n: number | bigint): number[] => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(n)), true);
  return [...b];
};
const be64 = (n: number | bigint): number[] => le64(n).reverse();

/** Rewrites the size field of the headers at these offsets (bytes left after each). */
function fixSizes(b: Uint8Array, headerOffsets: number[]): Uint8Array {
  let out = b;
  for (const off of headerOffsets) out = patch(out, off + 11, le64(b.length - off - 19));
  return out;
}

function errnoOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof NvError) return e.errno;
    throw e;
  }
  return 'no error';
}

function expectNvError(f: () => unknown, errno: string, message?: RegExp): void {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(NvError);
  expect((caught as NvError).errno).toBe(errno);
  if (message) expect((caught as NvError).message).toMatch(message);
}

const json = (l: NvList): unknown => nvlistToJSON(l);

// ---------------------------------------------------------------------------------------------
// fixtures, built by hand from the format: every size below is counted in the comments

// {"n": 0x0102030405060708}: 19 (header) + 19 (pair header) + 2 ("n\0") + 8 = 48 bytes
const ONE_NUMBER = hex(`
  6c 00 00 0000000000000000 1d00000000000000          # magic, version 0, flags 0, 0 fds, 29 bytes follow
  03 0200 0800000000000000 0000000000000000 6e00      # NUMBER, namesize 2, datasize 8, nitems 0, "n"
  0807060504030201                                    # the value, little-endian
`);

// {"s": "hi"}: 19 + 19 + 2 + 3 = 43
const ONE_STRING = hex(`
  6c 00 00 0000000000000000 1800000000000000          # 24 bytes follow
  04 0200 0300000000000000 0000000000000000 7300      # STRING "s", datasize 3 = strlen + 1
  686900                                              # "hi\\0"
`);

// {"a": {"x": 1}}: 19 + (19+2) + 19 + (19+2+8) + 20 = 108
const NESTED = hex(`
  6c 00 00 0000000000000000 5900000000000000          # root: 89 bytes follow (the whole rest)
  05 0200 3000000000000000 0000000000000000 6100      # NVLIST "a", datasize 48 = nvlist_size(child)
  6c 00 00 0000000000000000 3100000000000000          # child header @40: 49 bytes follow in the whole buffer
  03 0200 0800000000000000 0000000000000000 7800      # NUMBER "x"
  0100000000000000
  ff 0100 0000000000000000 0000000000000000 00        # NVLIST_UP: namesize 1, name "", datasize 0, nitems 0
`);

// {"a": {"x": 1}, "b": true}: 108 + (19+2+1) = 130. The datasize of "a" is libnv's nvlist_size(child),
// which walks on into the parent: child header 19 + "x" 29 + "b" 22 = 70 (no UP counted).
const NESTED_THEN_MORE = hex(`
  6c 00 00 0000000000000000 6f00000000000000          # 111 follow
  05 0200 4600000000000000 0000000000000000 6100      # NVLIST "a", datasize 70
  6c 00 00 0000000000000000 4700000000000000          # child @40: 130 - 59 = 71 follow
  03 0200 0800000000000000 0000000000000000 7800 0100000000000000
  ff 0100 0000000000000000 0000000000000000 00        # UP
  02 0200 0100000000000000 0000000000000000 6200 01   # BOOL "b" true
`);

// {"arr": [{"k": null}, {}]}: 19 + (19+4) + [19 + 21 + 20] + [19 + 20] = 141
const NVLIST_ARRAY = hex(`
  6c 00 00 0000000000000000 7a00000000000000          # 122 follow
  0b 0400 0000000000000000 0200000000000000 61727200  # NVLIST_ARRAY "arr", datasize 0, nitems 2
  6c 00 00 0000000000000000 5000000000000000          # element 0 @42: 141 - 61 = 80 follow
  01 0200 0000000000000000 0000000000000000 6b00      # NULL "k"
  fe 0100 0000000000000000 0000000000000000 00        # NVLIST_ARRAY_NEXT
  6c 00 00 0000000000000000 1400000000000000          # element 1 @102: 141 - 121 = 20 follow
  fe 0100 0000000000000000 0000000000000000 00        # the last element ends with ARRAY_NEXT too; no UP
`);

// {"arr": [{"c": {"x": null}, "t": null}, {"u": null}], "z": null}: 264 bytes. The datasize of "c":
// its own 19 + 21, then what nvlist_size walks on to: "t" 21, element 1's "u" 21, the root's "z"
// 21 (not the sentinels, not element 1's header) = 103.
const NESTED_IN_ARRAY = hex(`
  6c 00 00 0000000000000000 f500000000000000          # 245 follow
  0b 0400 0000000000000000 0200000000000000 61727200  # "arr" @19, 2 elements
  6c 00 00 0000000000000000 cb00000000000000          # element 0 @42: 203 follow
  05 0200 6700000000000000 0000000000000000 6300      # NVLIST "c", datasize 103
  6c 00 00 0000000000000000 a300000000000000          # "c" @82: 163 follow
  01 0200 0000000000000000 0000000000000000 7800      # NULL "x"
  ff 0100 0000000000000000 0000000000000000 00        # UP (@122)
  01 0200 0000000000000000 0000000000000000 7400      # NULL "t"
  fe 0100 0000000000000000 0000000000000000 00        # NEXT (@163)
  6c 00 00 0000000000000000 3e00000000000000          # element 1 @183: 62 follow
  01 0200 0000000000000000 0000000000000000 7500      # NULL "u"
  fe 0100 0000000000000000 0000000000000000 00        # NEXT (@223)
  01 0200 0000000000000000 0000000000000000 7a00      # NULL "z" (@243..264)
`);

// {"b": [true, false, true]}: 19 + 19 + 2 + 3 = 43
const BOOL_ARRAY = hex(`
  6c 00 00 0000000000000000 1800000000000000
  08 0200 0300000000000000 0300000000000000 6200      # BOOL_ARRAY "b", datasize 3, nitems 3
  010001
`);

// {"sub": {"g": fd 3}, "fd": fd 7}: 19 + 23 + 19 + 29 + 20 + 30 = 140. Each header counts the
// descriptors after it in the whole buffer: the root 2, "sub" 2 (its "g" and the root's "fd").
const DESCRIPTORS = hex(`
  6c 00 00 0200000000000000 7900000000000000          # 2 fds, 121 follow
  05 0400 4e00000000000000 0000000000000000 73756200  # NVLIST "sub", datasize 19 + 29 + 30 = 78
  6c 00 00 0200000000000000 4f00000000000000          # "sub" @42: 2 fds, 79 follow
  06 0200 0800000000000000 0000000000000000 6700      # DESCRIPTOR "g"
  0300000000000000
  ff 0100 0000000000000000 0000000000000000 00
  06 0300 0800000000000000 0000000000000000 666400    # DESCRIPTOR "fd"
  0700000000000000
`);

// Big-endian: {"n": 0x0102030405060708}, {"a": {"x": 1}}, {"b": [true, false, true]}
const ONE_NUMBER_BE = hex(`
  6c 00 80 0000000000000000 000000000000001d          # flags NV_FLAG_BIG_ENDIAN
  03 0002 0000000000000008 0000000000000000 6e00
  0102030405060708
`);
const NESTED_BE = hex(`
  6c 00 80 0000000000000000 0000000000000059
  05 0002 0000000000000030 0000000000000000 6100
  6c 00 80 0000000000000000 0000000000000031
  03 0002 0000000000000008 0000000000000000 7800 0000000000000001
  ff 0001 0000000000000000 0000000000000000 00
`);
const BOOL_ARRAY_BE = hex(`
  6c 00 80 0000000000000000 0000000000000018
  08 0002 0000000000000003 0000000000000003 6200      # nitems is swapped too
  010001
`);

describe('hand-built fixtures', () => {
  it('a list with one number', () => {
    const l = new NvList().addNumber('n', 0x0102030405060708n);
    expect(packNvlist(l)).toEqual(ONE_NUMBER);
    expect(unpackNvlist(ONE_NUMBER).getNumber('n')).toBe(0x0102030405060708n);
  });

  it('a list with one string', () => {
    expect(packNvlist(new NvList().addString('s', 'hi'))).toEqual(ONE_STRING);
    expect(unpackNvlist(ONE_STRING).getString('s')).toBe('hi');
  });

  it('a nested list, its header sized to the whole buffer, closed by NVLIST_UP', () => {
    const l = new NvList().addNvlist('a', new NvList().addNumber('x', 1));
    expect(packNvlist(l)).toEqual(NESTED);
    expect(unpackNvlist(NESTED).getNvlist('a')?.getNumber('x')).toBe(1n);
  });

  it("a nested list followed by more pairs: libnv's nvlist_size walk gives the NVLIST datasize", () => {
    const l = new NvList().addNvlist('a', new NvList().addNumber('x', 1)).addBool('b', true);
    expect(packNvlist(l)).toEqual(NESTED_THEN_MORE);
    expect(json(unpackNvlist(NESTED_THEN_MORE))).toEqual(json(l));
  });

  it('an nvlist array: per element a header, its pairs and NVLIST_ARRAY_NEXT', () => {
    const l = new NvList().add('arr', { type: 'nvlist_array', value: [new NvList().addNull('k'), new NvList()] });
    expect(packNvlist(l)).toEqual(NVLIST_ARRAY);
    const back = unpackNvlist(NVLIST_ARRAY).get('arr', 'nvlist_array')?.value;
    expect(back?.length).toBe(2);
    expect(back?.[0]?.exists('k', 'null')).toBe(true);
    expect(back?.[1]?.empty).toBe(true);
  });

  it('a nested list inside an array element, then more elements and pairs', () => {
    const l = new NvList()
      .add('arr', { type: 'nvlist_array', value: [new NvList().addNvlist('c', new NvList().addNull('x')).addNull('t'), new NvList().addNull('u')] })
      .addNull('z');
    expect(packNvlist(l)).toEqual(NESTED_IN_ARRAY);
    expect(json(unpackNvlist(NESTED_IN_ARRAY))).toEqual(json(l));
  });

  it('a bool array', () => {
    const l = new NvList().add('b', { type: 'bool_array', value: [true, false, true] });
    expect(packNvlist(l)).toEqual(BOOL_ARRAY);
    expect(unpackNvlist(BOOL_ARRAY).get('b', 'bool_array')?.value).toEqual([true, false, true]);
  });

  it('descriptors: i64 values, counted in every header as the descriptors that follow it', () => {
    const l = new NvList().addNvlist('sub', new NvList().addDescriptor('g', 3)).addDescriptor('fd', 7);
    expect(packNvlist(l)).toEqual(DESCRIPTORS);
    const back = unpackNvlist(DESCRIPTORS);
    expect(back.get('fd', 'descriptor')?.value).toBe(7);
    expect(back.getNvlist('sub')?.get('g', 'descriptor')?.value).toBe(3);
    // The other order: the nested header counts only its own one.
    const other = packNvlist(new NvList().addDescriptor('fd', 7).addNvlist('sub', new NvList().addDescriptor('g', 3)));
    const v = new DataView(other.buffer);
    expect(v.getBigUint64(3, true)).toBe(2n);
    const subHeader = 19 + 19 + 3 + 8 + 19 + 4;
    expect(other[subHeader]).toBe(0x6c);
    expect(v.getBigUint64(subHeader + 3, true)).toBe(1n);
  });

  it('big-endian input is decoded, and packed the same way with bigEndian', () => {
    expect(unpackNvlist(ONE_NUMBER_BE).getNumber('n')).toBe(0x0102030405060708n);
    expect(packNvlist(new NvList().addNumber('n', 0x0102030405060708n), { bigEndian: true })).toEqual(ONE_NUMBER_BE);
    expect(unpackNvlist(NESTED_BE).getNvlist('a')?.getNumber('x')).toBe(1n);
    expect(packNvlist(new NvList().addNvlist('a', new NvList().addNumber('x', 1)), { bigEndian: true })).toEqual(NESTED_BE);
    expect(unpackNvlist(BOOL_ARRAY_BE).get('b', 'bool_array')?.value).toEqual([true, false, true]);
  });

  it('an empty list is a bare header', () => {
    expect(packNvlist(new NvList())).toEqual(hex('6c 00 00 0000000000000000 0000000000000000'));
    expect(unpackNvlist(packNvlist(new NvList(NV_FLAG.NO_UNIQUE))).flags).toBe(NV_FLAG.NO_UNIQUE);
  });

  it('nvlistToJSON: plain data, numbers as strings, binary as hex', () => {
    const l = new NvList(NV_FLAG.NO_UNIQUE)
      .addNumber('n', 2n ** 64n - 1n).addBinary('b', Uint8Array.of(0, 255)).addNull('z')
      .add('na', { type: 'number_array', value: [1n, 2n] }).addNvlist('c', new NvList().addBool('t', true));
    expect(nvlistToJSON(l)).toEqual({
      flags: NV_FLAG.NO_UNIQUE,
      pairs: [
        { name: 'n', type: 'number', value: '18446744073709551615' },
        { name: 'b', type: 'binary', value: '00ff' },
        { name: 'z', type: 'null', value: null },
        { name: 'na', type: 'number_array', value: ['1', '2'] },
        { name: 'c', type: 'nvlist', value: { flags: 0, pairs: [{ name: 't', type: 'bool', value: true }] } },
      ],
    });
    expect(JSON.parse(JSON.stringify(nvlistToJSON(l)))).toEqual(nvlistToJSON(l));
  });
});

// ---------------------------------------------------------------------------------------------
// strict unpack

describe('unpack rejects', () => {
  // ONE_NUMBER: header 0..19, type @19, namesize @20, datasize @22, nitems @30, name @38, data @40..48
  const cases: [string, Uint8Array, RegExp?][] = [
    ['an empty buffer', new Uint8Array(0), /truncated nvlist header/],
    ['a short header', ONE_NUMBER.subarray(0, 18), /truncated nvlist header/],
    ['a bad magic', patch(ONE_NUMBER, 0, [0x6d]), /magic/],
    ['another version', patch(ONE_NUMBER, 1, [1]), /version/],
    ['an unknown flag bit', patch(ONE_NUMBER, 2, [0x04]), /flags/],
    ['NV_FLAG_IN_ARRAY-like high bits', patch(ONE_NUMBER, 2, [0x40]), /flags/],
    ['a header size one short', patch(ONE_NUMBER, 11, le64(28)), /size/],
    ['a trailing byte', Uint8Array.of(...ONE_NUMBER, 0), /size/],
    ['a truncated buffer', ONE_NUMBER.subarray(0, 47), /size/],
    ['a truncated buffer with its size fixed', fixSizes(ONE_NUMBER.subarray(0, 47), [0]), /datasize/],
    ['a truncated pair header', fixSizes(ONE_NUMBER.subarray(0, 30), [0]), /truncated nvpair header/],
    ['type 0 (NONE)', patch(ONE_NUMBER, 19, [0]), /type 0/],
    ['type 13', patch(ONE_NUMBER, 19, [13]), /type 13/],
    ['type 253', patch(ONE_NUMBER, 19, [253]), /type 253/],
    ['namesize 0', patch(ONE_NUMBER, 20, [0, 0]), /namesize 0/],
    ['namesize 2049', patch(ONE_NUMBER, 20, [0x01, 0x08]), /namesize 2049/],
    ['a name without its NUL', patch(ONE_NUMBER, 39, [0x41]), /NUL/],
    ['a name with a NUL inside', patch(patch(ONE_NUMBER, 20, [3]), 38, [0]), /NUL/],
    ['an empty name', fixSizes(hex('6c0000 0000000000000000 0000000000000000 01 0100 0000000000000000 0000000000000000 00'), [0]), /empty nvpair name/],
    ['a name that is not UTF-8', patch(ONE_NUMBER, 38, [0xff]), /UTF-8/],
    ['a number of 4 bytes', patch(ONE_NUMBER, 22, le64(4)), /datasize 4/],
    ['a datasize past the end', patch(ONE_NUMBER, 22, le64(9)), /datasize 9/],
    ['a datasize of 2^64-1', patch(ONE_NUMBER, 22, le64(-1n)), /datasize/],
    ['nitems on a number', patch(ONE_NUMBER, 30, le64(1)), /nitems/],
    ['a string without its NUL', patch(ONE_STRING, 42, [0x21]), /NUL/],
    ['a string with a NUL inside', patch(ONE_STRING, 40, [0]), /NUL/],
    ['a string of datasize 0', fixSizes(patch(ONE_STRING, 22, le64(0)).subarray(0, 40), [0]), /NUL/],
    ['a string that is not UTF-8', patch(ONE_STRING, 40, [0xc3, 0x28]), /UTF-8/],
    ['a bool of 2', patch(BOOL_ARRAY, 41, [2]), /bool 2/],
    ['a bool array of datasize 2, nitems 3', patch(BOOL_ARRAY, 22, le64(2)), /datasize 2 for 3 items/],
    ['a bool array of nitems 0', patch(BOOL_ARRAY, 30, le64(0)), /items/],
    ['a bool array of nitems 2^64-1', patch(BOOL_ARRAY, 30, le64(-1n)), /items/],
    ['descriptors the headers do not count', patch(DESCRIPTORS, 3, le64(1)), /counts 1 descriptors, 2 follow/],
    ['a nested header counting too few descriptors', patch(DESCRIPTORS, 45, le64(1)), /counts 1 descriptors, 2 follow/],
    ['a descriptor of -2', patch(DESCRIPTORS, 132, le64(-2n)), /descriptor -2/],
    ['a descriptor of -1 (only array items may be "none")', patch(DESCRIPTORS, 132, le64(-1n)), /descriptor -1/],
    ['a descriptor past a C int', patch(DESCRIPTORS, 132, le64(2n ** 31n)), /descriptor/],
    ['a nested header of the wrong size', patch(NESTED, 51, le64(48)), /size 48/],
    ['a nested header in the other byte order', patch(patch(NESTED, 42, [0x80]), 51, be64(49)), /byte order/],
    ['an NVLIST datasize of 0', patch(NESTED, 22, le64(0)), /malformed nvlist pair/],
    ['an NVLIST datasize past the end', patch(NESTED, 22, le64(90)), /datasize 90/],
    ['NVLIST_ARRAY_NEXT closing a nested nvlist', patch(NESTED, 88, [0xfe]), /NVLIST_ARRAY_NEXT where a nested nvlist goes on/],
    ['an UP sentinel with a datasize', patch(NESTED, 91, le64(1)), /datasize|sentinel/],
    ['an UP sentinel with nitems', patch(NESTED, 99, le64(1)), /sentinel/],
    ['an UP sentinel with a name', fixSizes(Uint8Array.of(...patch(NESTED, 89, [2]).subarray(0, 107), 0x41, 0), [0, 40]), /sentinel/],
    ['a nested list the buffer ends in', fixSizes(NESTED.subarray(0, 88), [0, 40]), /ends without NVLIST_UP/],
    ['NVLIST_UP in the root', fixSizes(Uint8Array.of(...ONE_NUMBER, ...NESTED.subarray(88)), [0]), /NVLIST_UP where the root list goes on/],
    ['NVLIST_UP closing an array element', patch(NVLIST_ARRAY, 82, [0xff]), /NVLIST_UP where an array element goes on/],
    ['an array of 3 elements holding 2', patch(NVLIST_ARRAY, 30, le64(3)), /nvlist array|truncated/],
    ['an array of 0 elements', patch(NVLIST_ARRAY, 30, le64(0)), /malformed nvlist array/],
    ['an array of 2^64-1 elements', patch(NVLIST_ARRAY, 30, le64(-1n)), /malformed nvlist array/],
    ['an nvlist array with a datasize', patch(NVLIST_ARRAY, 22, le64(1)), /malformed nvlist array/],
    ['an element the buffer ends in', fixSizes(NVLIST_ARRAY.subarray(0, 121), [0, 42, 102]), /ends without ARRAY_NEXT/],
  ];
  for (const [what, bytes, message] of cases) {
    it(what, () => expectNvError(() => unpackNvlist(bytes), 'EINVAL', message));
  }

  it('a binary of datasize 0 (libnv refuses it too), and packs none', () => {
    const bin = packNvlist(new NvList().addBinary('b', Uint8Array.of(9)));
    expectNvError(() => unpackNvlist(fixSizes(patch(bin, 22, le64(0)).subarray(0, bin.length - 1), [0])), 'EINVAL', /empty binary/);
    expectNvError(() => packNvlist(new NvList().addBinary('b', new Uint8Array(0))), 'EINVAL');
  });

  it('string arrays: exactly nitems NUL-terminated strings filling datasize', () => {
    const sa = packNvlist(new NvList().add('s', { type: 'string_array', value: ['ab', '', 'c'] }));
    // pair @19, datasize @22, nitems @30, name @38, data @40: "ab\0" "\0" "c\0" (6 bytes)
    expect(unpackNvlist(sa).get('s', 'string_array')?.value).toEqual(['ab', '', 'c']);
    expectNvError(() => unpackNvlist(patch(sa, 30, le64(2))), 'EINVAL', /2 bytes past its 2 strings/);
    expectNvError(() => unpackNvlist(patch(sa, 30, le64(4))), 'EINVAL', /not NUL-terminated/);
    expectNvError(() => unpackNvlist(patch(sa, 45, [0x41])), 'EINVAL', /not NUL-terminated/);
    expectNvError(() => unpackNvlist(patch(sa, 30, le64(7))), 'EINVAL', /datasize 6 for 7 strings/);
  });

  it('number and descriptor arrays: datasize = 8 x nitems', () => {
    const na = packNvlist(new NvList().add('n', { type: 'number_array', value: [1n, 2n] }).add('d', { type: 'descriptor_array', value: [-1, 4] }));
    expect(json(unpackNvlist(na))).toEqual(json(new NvList().add('n', { type: 'number_array', value: [1n, 2n] }).add('d', { type: 'descriptor_array', value: [-1, 4] })));
    expectNvError(() => unpackNvlist(patch(na, 22, le64(15))), 'EINVAL', /datasize 15 for 2 items/);
    expectNvError(() => unpackNvlist(patch(na, 30, le64(1))), 'EINVAL', /datasize 16 for 1 items/);
    expect(new DataView(na.buffer).getBigUint64(3, true)).toBe(2n);
  });

  it('nesting deeper than NV_MAX_DEPTH, in pack and unpack', () => {
    const chain = (levels: number): NvList => {
      let l = new NvList();
      for (let i = 0; i < levels; i++) l = new NvList().addNvlist('a', l);
      return l;
    };
    // The same chain by hand: per level an NVLIST pair "a" and a header, then the UPs.
    const chainBytes = (levels: number): Uint8Array => {
      const total = 19 + levels * (21 + 19 + 20);
      const out: number[] = [];
      const header = () => out.push(0x6c, 0, 0, ...le64(0), ...le64(total - out.length - 19));
      header();
      for (let i = 0; i < levels; i++) {
        out.push(5, 2, 0, ...le64(19 + (levels - 1 - i) * 60), ...le64(0), 0x61, 0);
        header();
      }
      for (let i = 0; i < levels; i++) out.push(0xff, 1, 0, ...le64(0), ...le64(0), 0);
      return Uint8Array.from(out);
    };
    expect(packNvlist(chain(NV_MAX_DEPTH))).toEqual(chainBytes(NV_MAX_DEPTH));
    expect(json(unpackNvlist(chainBytes(NV_MAX_DEPTH)))).toEqual(json(chain(NV_MAX_DEPTH)));
    expectNvError(() => unpackNvlist(chainBytes(NV_MAX_DEPTH + 1)), 'EINVAL', /deeper/);
    expectNvError(() => unpackNvlist(chainBytes(10_000)), 'EINVAL', /deeper/);
    expectNvError(() => packNvlist(chain(NV_MAX_DEPTH + 1)), 'EINVAL', /deeper/);
    let arrays = new NvList();
    for (let i = 0; i <= NV_MAX_DEPTH; i++) arrays = new NvList().add('e', { type: 'nvlist_array', value: [arrays] });
    expectNvError(() => packNvlist(arrays), 'EINVAL', /deeper/);
  });

  it('names up to NV_NAME_MAX bytes with the NUL', () => {
    const long = 'é'.repeat(1023) + 'x'; // 2047 bytes
    expect(unpackNvlist(packNvlist(new NvList().addNull(long))).exists(long)).toBe(true);
    const l = new NvList();
    l.pairs.push([long + 'y', { type: 'null' }]);
    expectNvError(() => packNvlist(l), 'EINVAL', /name of 2048 bytes/);
  });

  it('a non-Uint8Array and invalid expected flags', () => {
    expectNvError(() => unpackNvlist([0x6c] as unknown as Uint8Array), 'EINVAL');
    expectNvError(() => unpackNvlist(ONE_NUMBER, { flags: NV_FLAG.BIG_ENDIAN }), 'EINVAL');
  });

  it('a subarray view decodes from its own offset', () => {
    const big = new Uint8Array(ONE_NUMBER.length + 7);
    big.set(ONE_NUMBER, 5);
    expect(unpackNvlist(big.subarray(5, 5 + ONE_NUMBER.length)).getNumber('n')).toBe(0x0102030405060708n);
  });
});

// ---------------------------------------------------------------------------------------------
// uniqueness and flags

/** Two NULL pairs in a root of these flags. */
function twoNulls(flags: number, a: string, b: string): Uint8Array {
  const pair = (n: string) => [1, 2, 0, ...le64(0), ...le64(0), n.charCodeAt(0), 0];
  return Uint8Array.from([0x6c, 0, flags, ...le64(0), ...le64(42), ...pair(a), ...pair(b)]);
}

describe('EEXIST and EILSEQ', () => {
  it('a duplicate name in a unique list is EEXIST, whatever the types', () => {
    expectNvError(() => unpackNvlist(twoNulls(0, 'a', 'a')), 'EEXIST', /a is already/);
    const mixed = packNvlist(new NvList(NV_FLAG.NO_UNIQUE).addNull('a').addBool('a', true));
    expectNvError(() => unpackNvlist(patch(mixed, 2, [0])), 'EEXIST');
  });

  it('NO_UNIQUE lists keep duplicates, in order', () => {
    const l = unpackNvlist(twoNulls(NV_FLAG.NO_UNIQUE, 'a', 'a'));
    expect(l.pairs.map(([n]) => n)).toEqual(['a', 'a']);
    expect(l.flags).toBe(NV_FLAG.NO_UNIQUE);
  });

  it('IGNORE_CASE folds case for the check', () => {
    expect(errnoOf(() => unpackNvlist(twoNulls(0, 'a', 'A')))).toBe('no error');
    expectNvError(() => unpackNvlist(twoNulls(NV_FLAG.IGNORE_CASE, 'a', 'A')), 'EEXIST');
    expect(unpackNvlist(twoNulls(NV_FLAG.IGNORE_CASE | NV_FLAG.NO_UNIQUE, 'a', 'A')).pairs.length).toBe(2);
  });

  it('each nested list and array element is checked with its own flags', () => {
    const dupChild = new NvList(NV_FLAG.NO_UNIQUE).addNull('x').addNull('x');
    const packed = packNvlist(new NvList(NV_FLAG.NO_UNIQUE).addNvlist('c', dupChild).addNvlist('c', new NvList()));
    expect(unpackNvlist(packed).pairs.length).toBe(2);
    expectNvError(() => unpackNvlist(patch(packed, 40 + 2, [0])), 'EEXIST', /x is already/); // the child becomes unique
    const arr = packNvlist(new NvList().add('e', { type: 'nvlist_array', value: [new NvList(NV_FLAG.NO_UNIQUE).addNull('y').addNull('y')] }));
    expect(unpackNvlist(arr).get('e', 'nvlist_array')?.value[0]?.pairs.length).toBe(2);
    expectNvError(() => unpackNvlist(patch(arr, 19 + 19 + 2 + 2, [0])), 'EEXIST', /y is already/);
  });

  it('pack refuses duplicates that bypassed add', () => {
    const l = new NvList(NV_FLAG.IGNORE_CASE);
    l.pairs.push(['K', { type: 'null' }], ['k', { type: 'null' }]);
    expectNvError(() => packNvlist(l), 'EEXIST');
  });

  it('EILSEQ when the header flags differ from the expected ones (byte order aside)', () => {
    const nu = packNvlist(new NvList(NV_FLAG.NO_UNIQUE).addNull('a'));
    expectNvError(() => unpackNvlist(nu, { flags: 0 }), 'EILSEQ');
    expectNvError(() => unpackNvlist(nu, { flags: NV_FLAG.NO_UNIQUE | NV_FLAG.IGNORE_CASE }), 'EILSEQ');
    expect(unpackNvlist(nu, { flags: NV_FLAG.NO_UNIQUE }).flags).toBe(NV_FLAG.NO_UNIQUE);
    expect(unpackNvlist(nu).flags).toBe(NV_FLAG.NO_UNIQUE);
    const be = packNvlist(new NvList(NV_FLAG.NO_UNIQUE).addNull('a'), { bigEndian: true });
    expect(be[2]).toBe(NV_FLAG.NO_UNIQUE | NV_FLAG.BIG_ENDIAN);
    expect(unpackNvlist(be, { flags: NV_FLAG.NO_UNIQUE }).flags).toBe(NV_FLAG.NO_UNIQUE);
    expectNvError(() => unpackNvlist(be, { flags: 0 }), 'EILSEQ');
    // Only the root is compared, as in libnv.
    const nested = packNvlist(new NvList().addNvlist('c', new NvList(NV_FLAG.IGNORE_CASE)));
    expect(unpackNvlist(nested, { flags: 0 }).getNvlist('c')?.flags).toBe(NV_FLAG.IGNORE_CASE);
  });
});

// ---------------------------------------------------------------------------------------------
// pack refusals

describe('pack refuses', () => {
  it("a list in an error state, with that error", () => {
    const l = new NvList().addNull('a').addNull('a');
    expect(l.error?.errno).toBe('EEXIST');
    let caught: unknown;
    try { packNvlist(l); } catch (e) { caught = e; }
    expect(caught).toBe(l.error);
    const bad = new NvList().addNull('');
    expect(errnoOf(() => packNvlist(new NvList().addNvlist('c', bad)))).toBe('EINVAL');
  });

  const cases: [string, NvValue | [string, NvValue]][] = [
    ['an empty bool array', { type: 'bool_array', value: [] }],
    ['an empty number array', { type: 'number_array', value: [] }],
    ['an empty string array', { type: 'string_array', value: [] }],
    ['an empty descriptor array', { type: 'descriptor_array', value: [] }],
    ['an empty nvlist array', { type: 'nvlist_array', value: [] }],
    ['a string with a NUL', { type: 'string', value: 'a\0b' }],
    ['a string array item with a NUL', { type: 'string_array', value: ['ok', 'a\0'] }],
    ['a lone surrogate', { type: 'string', value: 'a\ud800' }],
    ['a negative number', { type: 'number', value: -1n }],
    ['a number of 2^64', { type: 'number', value: 2n ** 64n }],
    ['a descriptor of -1', { type: 'descriptor', value: -1 }],
    ['a descriptor array item of -2', { type: 'descriptor_array', value: [3, -2] }],
    ['a descriptor of 2^31', { type: 'descriptor', value: 2 ** 31 }],
    ['a fractional descriptor', { type: 'descriptor_array', value: [1.5] }],
    ['an empty name', ['', { type: 'null' }]],
    ['a name with a NUL', ['a\0', { type: 'null' }]],
  ];
  for (const [what, c] of cases) {
    it(what, () => {
      const l = new NvList();
      const [name, value] = Array.isArray(c) ? c : ['v', c];
      l.pairs.push([name, value]);
      expectNvError(() => packNvlist(l), 'EINVAL');
    });
  }

  it('a list that contains itself, and flags outside the public ones', () => {
    const loop = new NvList();
    loop.pairs.push(['self', { type: 'nvlist', value: loop }]);
    expectNvError(() => packNvlist(loop), 'EINVAL', /contains itself/);
    expectNvError(() => nvlistToJSON(loop), 'EINVAL', /contains itself/);
    expectNvError(() => packNvlist(new NvList(NV_FLAG.BIG_ENDIAN)), 'EINVAL', /flags/);
    expectNvError(() => packNvlist(new NvList(0x100)), 'EINVAL', /flags/);
  });

  it('a shared (not cyclic) child is fine', () => {
    const shared = new NvList().addNumber('x', 5);
    const l = new NvList().addNvlist('a', shared).addNvlist('b', shared).add('c', { type: 'nvlist_array', value: [shared, shared] });
    expect(json(unpackNvlist(packNvlist(l)))).toEqual(json(l));
  });
});

// ---------------------------------------------------------------------------------------------
// random trees

const nameArb = fc.string({ unit: 'binary', minLength: 1, maxLength: 8 }).filter((s) => !s.includes('\0'));
const textArb = fc.string({ unit: 'binary', maxLength: 12 }).filter((s) => !s.includes('\0'));
const u64Arb = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const fdArb = fc.integer({ min: 0, max: 0x7fffffff });
const fdItemArb = fc.integer({ min: -1, max: 0x7fffffff });

const { list: listArb } = fc.letrec<{ list: NvList; value: NvValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'medium', maxDepth: 4, depthIdentifier: 'nvlist' },
    fc.constant<NvValue>({ type: 'null' }),
    fc.boolean().map((value): NvValue => ({ type: 'bool', value })),
    u64Arb.map((value): NvValue => ({ type: 'number', value })),
    textArb.map((value): NvValue => ({ type: 'string', value })),
    fdArb.map((value): NvValue => ({ type: 'descriptor', value })),
    fc.uint8Array({ minLength: 1, maxLength: 16 }).map((value): NvValue => ({ type: 'binary', value })),
    fc.array(fc.boolean(), { minLength: 1, maxLength: 5 }).map((value): NvValue => ({ type: 'bool_array', value })),
    fc.array(u64Arb, { minLength: 1, maxLength: 4 }).map((value): NvValue => ({ type: 'number_array', value })),
    fc.array(textArb, { minLength: 1, maxLength: 4 }).map((value): NvValue => ({ type: 'string_array', value })),
    fc.array(fdItemArb, { minLength: 1, maxLength: 4 }).map((value): NvValue => ({ type: 'descriptor_array', value })),
    { arbitrary: tie('list').map((value): NvValue => ({ type: 'nvlist', value })), weight: 4 },
    { arbitrary: fc.array(tie('list'), { minLength: 1, maxLength: 3, depthIdentifier: 'nvlist' }).map((value): NvValue => ({ type: 'nvlist_array', value })), weight: 3 },
  ),
  list: fc
    .record({
      flags: fc.constantFrom(0, NV_FLAG.IGNORE_CASE, NV_FLAG.NO_UNIQUE, NV_FLAG.IGNORE_CASE | NV_FLAG.NO_UNIQUE),
      pairs: fc.array(fc.tuple(fc.oneof(nameArb, fc.constantFrom('a', 'A', 'b')), tie('value')), { maxLength: 5, depthIdentifier: 'nvlist' }),
    })
    .map(({ flags, pairs }) => {
      const l = new NvList(flags);
      for (const [name, value] of pairs) {
        if (!(flags & NV_FLAG.NO_UNIQUE) && l.exists(name)) continue;
        l.add(name, value);
      }
      return l;
    }),
}));

function countDescriptors(l: NvList): number {
  let n = 0;
  for (const [, v] of l.pairs) {
    if (v.type === 'descriptor') n += 1;
    else if (v.type === 'descriptor_array') n += v.value.length;
    else if (v.type === 'nvlist') n += countDescriptors(v.value);
    else if (v.type === 'nvlist_array') for (const e of v.value) n += countDescriptors(e);
  }
  return n;
}

/**
 * An independent walk of a packed little-endian buffer: every header's offset, descriptor count
 * and size field, and where each descriptor value lies.
 */
function scan(b: Uint8Array): { headers: { off: number; descriptors: bigint; size: bigint }[]; fds: number[] } {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const headers: { off: number; descriptors: bigint; size: bigint }[] = [];
  const fds: number[] = [];
  const open: number[] = []; // per open list: elements still to come (-1 for an nvlist)
  let off = 0;
  const header = () => {
    expect(b[off]).toBe(0x6c);
    headers.push({ off, descriptors: v.getBigUint64(off + 3, true), size: v.getBigUint64(off + 11, true) });
    off += 19;
  };
  header();
  while (off < b.length) {
    const type = b[off]!;
    const namesize = v.getUint16(off + 1, true);
    const datasize = Number(v.getBigUint64(off + 3, true));
    const nitems = Number(v.getBigUint64(off + 11, true));
    off += 19 + namesize;
    if (type === 5) { open.push(-1); header(); continue; }
    if (type === 11) { open.push(nitems - 1); header(); continue; }
    if (type === 255) { expect(open.pop()).toBe(-1); continue; }
    if (type === 254) {
      const left = open.pop()!;
      expect(left).toBeGreaterThanOrEqual(0);
      if (left > 0) { open.push(left - 1); header(); }
      continue;
    }
    if (type === 6) fds.push(off);
    if (type === 12) for (let i = 0; i < nitems; i++) fds.push(off + 8 * i);
    off += datasize;
  }
  expect(open).toEqual([]);
  return { headers, fds };
}

describe('round trips over random trees', () => {
  for (const bigEndian of [false, true]) {
    it(`unpack(pack(x)) = x, and pack is stable (${bigEndian ? 'big' : 'little'}-endian)`, () => {
      fc.assert(
        fc.property(listArb, (l) => {
          const bytes = packNvlist(l, { bigEndian });
          expect(bytes[2]! & NV_FLAG.BIG_ENDIAN).toBe(bigEndian ? NV_FLAG.BIG_ENDIAN : 0);
          const back = unpackNvlist(bytes, { flags: l.flags });
          expect(json(back)).toEqual(json(l));
          expect(packNvlist(back, { bigEndian })).toEqual(bytes);
          expect(packNvlist(back, { bigEndian: !bigEndian }).length).toBe(bytes.length);
        }),
        { numRuns: 300 },
      );
    });
  }

  it('every header: size = bytes after it, descriptors = descriptor values after it', () => {
    fc.assert(
      fc.property(listArb, (l) => {
        const bytes = packNvlist(l);
        const { headers, fds } = scan(bytes);
        expect(fds.length).toBe(countDescriptors(l));
        expect(headers[0]!.descriptors).toBe(BigInt(countDescriptors(l)));
        for (const h of headers) {
          expect(h.size).toBe(BigInt(bytes.length - h.off - 19));
          expect(h.descriptors).toBe(BigInt(fds.filter((f) => f > h.off).length));
        }
      }),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// fuzzing

/** unpack, with anything but an NvError failing the test; returns the list or the error. */
function tryUnpack(b: Uint8Array): NvList | NvError {
  try {
    return unpackNvlist(b);
  } catch (e) {
    if (e instanceof NvError) return e;
    throw e;
  }
}

/** Whatever unpack accepts, pack can write again, and unpack reads back the same. */
function checkAccepted(r: NvList | NvError): void {
  if (r instanceof NvError) return;
  expect(json(unpackNvlist(packNvlist(r)))).toEqual(json(r));
}

/** Mutations that keep the length, so that every header's size still holds and parsing goes deep. */
const inPlaceArb = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('u64' as const), at: fc.nat(), value: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(0n, 1n, 19n, 2n ** 63n, 2n ** 64n - 1n)) }),
);
const mutationArb = fc.oneof(
  inPlaceArb,
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 24 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 24 }) }),
  fc.record({ kind: fc.constant('fixSize' as const) }),
);
type Mutation = typeof mutationArb extends fc.Arbitrary<infer M> ? M : never;

function mutate(b: Uint8Array, muts: Mutation[]): Uint8Array {
  let out = b.slice();
  for (const m of muts) {
    const at = out.length ? ('at' in m ? m.at % (out.length + 1) : 0) : 0;
    switch (m.kind) {
      case 'set': if (at < out.length) out[at] = m.byte; break;
      case 'flip': if (at < out.length) out[at]! ^= 1 << m.bit; break;
      case 'u64': if (at + 8 <= out.length) out.set(le64(m.value), at); break;
      case 'truncate': out = out.slice(0, at); break;
      case 'insert': out = Uint8Array.of(...out.subarray(0, at), ...m.bytes, ...out.subarray(at)); break;
      case 'delete': out = Uint8Array.of(...out.subarray(0, at), ...out.subarray(at + m.count)); break;
      case 'fixSize': if (out.length >= 19) out.set(le64(out.length - 19), 11); break; // get past the root size check
    }
  }
  return out;
}

describe('fuzzing: only NvError', () => {
  it('mutated and truncated packed lists', () => {
    fc.assert(
      fc.property(listArb, fc.boolean(), fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (l, bigEndian, muts) => {
        checkAccepted(tryUnpack(mutate(packNvlist(l, { bigEndian }), muts)));
      }),
      { numRuns: 3000 },
    );
  });

  it('packed lists mutated in place', () => {
    let accepted = 0;
    fc.assert(
      fc.property(listArb, fc.boolean(), fc.array(inPlaceArb, { minLength: 1, maxLength: 3 }), (l, bigEndian, muts) => {
        const r = tryUnpack(mutate(packNvlist(l, { bigEndian }), muts));
        if (!(r instanceof NvError)) accepted++;
        checkAccepted(r);
      }),
      { numRuns: 3000 },
    );
    expect(accepted).toBeGreaterThan(0);
  });

  it('random bytes, bare and behind a plausible header', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.constantFrom(0, 0x02, 0x80, 0x83), fc.boolean(), (body, flags, withHeader) => {
        const bytes = withHeader
          ? Uint8Array.of(0x6c, 0, flags, ...le64(0), ...(flags & 0x80 ? be64(body.length) : le64(body.length)), ...body)
          : body;
        checkAccepted(tryUnpack(bytes));
      }),
      { numRuns: 3000 },
    );
  });

  it('random pair sequences behind a valid header', () => {
    const pairArb = fc.record({
      type: fc.oneof(fc.integer({ min: 0, max: 13 }), fc.constantFrom(254, 255)),
      namesize: fc.oneof(fc.integer({ min: 0, max: 4 }), fc.constant(0xffff)),
      datasize: fc.oneof(fc.integer({ min: 0, max: 24 }), fc.constant(2 ** 53)),
      nitems: fc.oneof(fc.integer({ min: 0, max: 4 }), fc.constant(2 ** 40)),
      rest: fc.uint8Array({ maxLength: 30 }),
    });
    fc.assert(
      fc.property(fc.array(pairArb, { maxLength: 8 }), (pairs) => {
        const body: number[] = [];
        for (const p of pairs) body.push(p.type, p.namesize & 0xff, p.namesize >> 8, ...le64(p.datasize), ...le64(p.nitems), ...p.rest);
        checkAccepted(tryUnpack(Uint8Array.of(0x6c, 0, 0, ...le64(0), ...le64(body.length), ...body)));
      }),
      { numRuns: 3000 },
    );
  });

  // No clock here (a loaded machine makes any time bound flaky): each input is sized so that the
  // wrong algorithm cannot finish within the test timeout, or would fail in another way.
  it('large hostile inputs stay linear', () => {
    // 200 000 unique names in one list: a quadratic duplicate check makes 2·10^10 comparisons.
    const many = new NvList();
    for (let i = 0; i < 200_000; i++) many.pairs.push([`k${i}`, { type: 'null' }]); // (add's own check is linear)
    const bytes = packNvlist(many);
    expect(unpackNvlist(bytes).pairs.length).toBe(200_000);
    // Claims of 2^40 items or 2^53 bytes are refused before anything is allocated (allocating
    // them would throw a RangeError, not EINVAL).
    const claim = patch(BOOL_ARRAY, 30, le64(2n ** 40n));
    expect(errnoOf(() => unpackNvlist(claim))).toBe('EINVAL');
    expect(errnoOf(() => unpackNvlist(patch(NVLIST_ARRAY, 30, le64(2n ** 40n))))).toBe('EINVAL');
    // 1 MiB of noise.
    const noise = new Uint8Array(1 << 20).map((_, i) => (i * 2654435761) >>> 24);
    noise.set([0x6c, 0, 0, ...le64(0), ...le64(noise.length - 19)]);
    expect(tryUnpack(noise)).toBeInstanceOf(NvError);
  });
});
