/**
 * libnv's name-value lists (FreeBSD sys/sys/nv.h): the message format of Casper. This file is the
 * in-memory model; pack/unpack of the binary format live in nvlist-codec.ts.
 */

export const NV_TYPE = {
  NONE: 0, NULL: 1, BOOL: 2, NUMBER: 3, STRING: 4, NVLIST: 5, DESCRIPTOR: 6, BINARY: 7,
  BOOL_ARRAY: 8, NUMBER_ARRAY: 9, STRING_ARRAY: 10, NVLIST_ARRAY: 11, DESCRIPTOR_ARRAY: 12,
} as const;

export const NV_FLAG = { IGNORE_CASE: 0x01, NO_UNIQUE: 0x02, BIG_ENDIAN: 0x80 } as const;

/** Longest name, NUL included (NV_NAME_MAX). */
export const NV_NAME_MAX = 2048;

/** One value; numbers are u64 (bigint), descriptors are the guest's fd numbers. */
export type NvValue =
  | { type: 'null' }
  | { type: 'bool'; value: boolean }
  | { type: 'number'; value: bigint }
  | { type: 'string'; value: string }
  | { type: 'nvlist'; value: NvList }
  | { type: 'descriptor'; value: number }
  | { type: 'binary'; value: Uint8Array }
  | { type: 'bool_array'; value: boolean[] }
  | { type: 'number_array'; value: bigint[] }
  | { type: 'string_array'; value: string[] }
  | { type: 'nvlist_array'; value: NvList[] }
  | { type: 'descriptor_array'; value: number[] };

export type NvType = NvValue['type'];

/** An error of an nvlist operation, errno-style (EEXIST, ENOENT, EINVAL…), as libnv reports them. */
export class NvError extends Error {
  constructor(readonly errno: 'EEXIST' | 'ENOENT' | 'EINVAL' | 'EILSEQ' | 'ENOMEM', message: string) {
    super(message);
    this.name = 'NvError';
  }
}

/**
 * An ordered list of named values. Names are unique (by name, whatever the type) unless the
 * list was made with NV_FLAG.NO_UNIQUE; like libnv, a failed add puts the list in an error state
 * that later adds keep and that pack reports.
 */
export class NvList {
  readonly pairs: [string, NvValue][] = [];
  error: NvError | undefined;
  constructor(readonly flags = 0) {}

  /** Adds a pair; EEXIST (kept as the list's error) when the name is taken in a unique list. */
  add(name: string, value: NvValue): this {
    if (this.error) return this;
    if (name.length === 0 || Buffer.byteLength(name) + 1 > NV_NAME_MAX || name.includes('\0')) {
      this.error = new NvError('EINVAL', `invalid name ${JSON.stringify(name.slice(0, 40))}`);
    } else if (!(this.flags & NV_FLAG.NO_UNIQUE) && this.exists(name)) {
      this.error = new NvError('EEXIST', `${name} is already in the list`);
    } else {
      this.pairs.push([name, value]);
    }
    return this;
  }

  /** Whether a pair of that name (and type, when given) exists. */
  exists(name: string, type?: NvType): boolean {
    return this.pairs.some(([n, v]) => this.same(n, name) && (type === undefined || v.type === type));
  }

  /** The first value of that name and type, or undefined. */
  get<T extends NvType>(name: string, type: T): Extract<NvValue, { type: T }> | undefined {
    const p = this.pairs.find(([n, v]) => this.same(n, name) && v.type === type);
    return p?.[1] as Extract<NvValue, { type: T }> | undefined;
  }

  /** Removes the first pair of that name (and type, when given); returns whether one was there. */
  remove(name: string, type?: NvType): boolean {
    const i = this.pairs.findIndex(([n, v]) => this.same(n, name) && (type === undefined || v.type === type));
    if (i >= 0) this.pairs.splice(i, 1);
    return i >= 0;
  }

  get empty(): boolean {
    return this.pairs.length === 0;
  }

  private same(a: string, b: string): boolean {
    return this.flags & NV_FLAG.IGNORE_CASE ? a.toLowerCase() === b.toLowerCase() : a === b;
  }

  // Shorthands for the common types.
  addNull(name: string): this { return this.add(name, { type: 'null' }); }
  addBool(name: string, value: boolean): this { return this.add(name, { type: 'bool', value }); }
  addNumber(name: string, value: bigint | number): this { return this.add(name, { type: 'number', value: BigInt.asUintN(64, BigInt(value)) }); }
  addString(name: string, value: string): this { return this.add(name, { type: 'string', value }); }
  addNvlist(name: string, value: NvList): this { return this.add(name, { type: 'nvlist', value }); }
  addBinary(name: string, value: Uint8Array): this { return this.add(name, { type: 'binary', value }); }
  addDescriptor(name: string, value: number): this { return this.add(name, { type: 'descriptor', value }); }
  getNumber(name: string): bigint | undefined { return this.get(name, 'number')?.value; }
  getString(name: string): string | undefined { return this.get(name, 'string')?.value; }
  getBool(name: string): boolean | undefined { return this.get(name, 'bool')?.value; }
  getNvlist(name: string): NvList | undefined { return this.get(name, 'nvlist')?.value; }
  getBinary(name: string): Uint8Array | undefined { return this.get(name, 'binary')?.value; }

  /** A deep copy (nvlist_clone). */
  clone(): NvList {
    const out = new NvList(this.flags);
    for (const [n, v] of this.pairs) out.pairs.push([n, cloneValue(v)]);
    out.error = this.error;
    return out;
  }
}

function cloneValue(v: NvValue): NvValue {
  switch (v.type) {
    case 'nvlist': return { type: 'nvlist', value: v.value.clone() };
    case 'nvlist_array': return { type: 'nvlist_array', value: v.value.map((l) => l.clone()) };
    case 'binary': return { type: 'binary', value: v.value.slice() };
    case 'bool_array': case 'number_array': case 'string_array': case 'descriptor_array':
      return { ...v, value: [...v.value] } as NvValue;
    default: return { ...v };
  }
}
