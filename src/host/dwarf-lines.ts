/**
 * Source lines for trap backtraces: a reader of DWARF's line table (.debug_line, versions 2 to 5)
 * in a wasm module's custom sections, and nothing else of DWARF. The npm packages that read DWARF
 * are whole debuggers compiled to wasm (@vscode/dwarf-debugging); a backtrace needs only the table
 * that maps a code address to file:line:column.
 *
 * In wasm, DWARF's addresses are offsets from the start of the Code section's contents; V8's
 * backtrace offsets are from the start of the module.
 */

/** A source position. */
export interface SourceLine { file: string; line: number; column: number }

/** Looks up the source position of a module offset (as V8's backtraces give it). */
export type LineLookup = (moduleOffset: number) => SourceLine | undefined;

interface Row { address: number; file: string; line: number; column: number; end: boolean }

class Reader {
  pos = 0;
  constructor(readonly b: Uint8Array, readonly view = new DataView(b.buffer, b.byteOffset, b.byteLength)) {}
  u8(): number {
    if (this.pos >= this.b.length) throw new RangeError('truncated');
    return this.b[this.pos++]!;
  }
  u16(): number { const v = this.view.getUint16(this.pos, true); this.pos += 2; return v; }
  u32(): number { const v = this.view.getUint32(this.pos, true); this.pos += 4; return v; }
  u64(): number { const v = Number(this.view.getBigUint64(this.pos, true)); this.pos += 8; return v; }
  uleb(): number {
    let v = 0;
    let mul = 1;
    for (;;) {
      const byte = this.u8();
      v += (byte & 0x7f) * mul;
      if (!(byte & 0x80)) return v;
      mul *= 128;
    }
  }
  sleb(): number {
    let v = 0;
    let mul = 1;
    let byte: number;
    do {
      byte = this.u8();
      v += (byte & 0x7f) * mul;
      mul *= 128;
    } while (byte & 0x80);
    return byte & 0x40 ? v - mul : v;
  }
  cstr(): string {
    const end = this.b.indexOf(0, this.pos);
    if (end < 0) throw new RangeError('truncated');
    const s = new TextDecoder().decode(this.b.subarray(this.pos, end));
    this.pos = end + 1;
    return s;
  }
}

/** The wasm module's sections that matter here: where the Code section's contents start, and the custom sections by name. */
function sections(bytes: Uint8Array): { codeStart?: number; custom: Map<string, Uint8Array> } {
  const r = new Reader(bytes);
  r.pos = 8;
  const custom = new Map<string, Uint8Array>();
  let codeStart: number | undefined;
  while (r.pos < bytes.length) {
    const id = r.u8();
    const size = r.uleb();
    const start = r.pos;
    if (id === 10) codeStart = start;
    if (id === 0) {
      const len = r.uleb();
      const name = new TextDecoder().decode(bytes.subarray(r.pos, r.pos + len));
      custom.set(name, bytes.subarray(r.pos + len, start + size));
    }
    r.pos = start + size;
  }
  return codeStart === undefined ? { custom } : { codeStart, custom };
}

const strAt = (section: Uint8Array | undefined, off: number): string => {
  if (!section) return '?';
  const r = new Reader(section);
  r.pos = off;
  return r.cstr();
};

/** A DWARF 5 entry format's value (directory and file entries): a string or a number. */
function formValue(r: Reader, form: number, offset64: boolean, custom: Map<string, Uint8Array>): string | number {
  switch (form) {
    case 0x08: return r.cstr(); // string
    case 0x1f: return strAt(custom.get('.debug_line_str'), offset64 ? r.u64() : r.u32()); // line_strp
    case 0x0e: return strAt(custom.get('.debug_str'), offset64 ? r.u64() : r.u32()); // strp
    case 0x0b: return r.u8(); // data1
    case 0x05: return r.u16(); // data2
    case 0x06: return r.u32(); // data4
    case 0x07: return r.u64(); // data8
    case 0x0f: return r.uleb(); // udata
    case 0x1e: r.pos += 16; return 0; // data16 (MD5)
    case 0x09: r.pos += r.uleb(); return 0; // block
    default: throw new RangeError(`unsupported form 0x${form.toString(16)}`);
  }
}

const join = (dir: string | undefined, name: string): string =>
  name.startsWith('/') || !dir ? name : `${dir.replace(/\/$/, '')}/${name}`;

/** Runs one unit's line program; appends its rows. */
function unit(r: Reader, custom: Map<string, Uint8Array>, rows: Row[]): void {
  let length = r.u32();
  const offset64 = length === 0xffffffff;
  if (offset64) length = r.u64();
  const end = r.pos + length;
  const version = r.u16();
  if (version < 2 || version > 5) { r.pos = end; return; }
  if (version >= 5) { r.u8(); r.u8(); } // address_size, segment_selector_size
  const headerLength = offset64 ? r.u64() : r.u32();
  const programStart = r.pos + headerLength;
  const minInst = r.u8();
  if (version >= 4) r.u8(); // maximum_operations_per_instruction (1 outside VLIW)
  r.u8(); // default_is_stmt: every row counts for a backtrace
  const lineBase = (r.u8() << 24) >> 24;
  const lineRange = r.u8();
  const opcodeBase = r.u8();
  const argCounts = [0];
  for (let i = 1; i < opcodeBase; i++) argCounts.push(r.u8());
  const dirs: string[] = [];
  const files: string[] = [];
  if (version >= 5) {
    const entries = (): { path: string; dir: number }[] => {
      const formats: [number, number][] = [];
      const n = r.u8();
      for (let i = 0; i < n; i++) formats.push([r.uleb(), r.uleb()]);
      const count = r.uleb();
      const out: { path: string; dir: number }[] = [];
      for (let i = 0; i < count; i++) {
        const e = { path: '', dir: 0 };
        for (const [type, form] of formats) {
          const v = formValue(r, form, offset64, custom);
          if (type === 1) e.path = String(v); // DW_LNCT_path
          else if (type === 2) e.dir = Number(v); // DW_LNCT_directory_index
        }
        out.push(e);
      }
      return out;
    };
    for (const d of entries()) dirs.push(d.path);
    for (const f of entries()) files.push(join(dirs[f.dir], f.path));
  } else {
    for (let d = r.cstr(); d !== ''; d = r.cstr()) dirs.push(d);
    for (let name = r.cstr(); name !== ''; name = r.cstr()) {
      const dir = r.uleb();
      r.uleb();
      r.uleb();
      files.push(join(dir === 0 ? undefined : dirs[dir - 1], name));
    }
  }
  // Files are numbered from 1 before DWARF 5, from 0 since.
  const fileName = (i: number) => files[version >= 5 ? i : i - 1] ?? '?';
  r.pos = programStart;
  let address = 0;
  let file = 1;
  let line = 1;
  let column = 0;
  const reset = () => { address = 0; file = 1; line = 1; column = 0; };
  const emit = (endSeq = false) => rows.push({ address, file: fileName(file), line, column, end: endSeq });
  while (r.pos < end) {
    const op = r.u8();
    if (op >= opcodeBase) {
      const adj = op - opcodeBase;
      address += Math.floor(adj / lineRange) * minInst;
      line += lineBase + (adj % lineRange);
      emit();
    } else if (op === 0) {
      const len = r.uleb();
      if (len === 0) continue; // no sub-opcode: nothing to do (and no way back to re-read)
      const next = r.pos + len;
      const sub = r.u8();
      if (sub === 1) { emit(true); reset(); } else if (sub === 2) address = len - 1 === 8 ? r.u64() : r.u32();
      r.pos = next;
    } else if (op === 1) emit();
    else if (op === 2) address += r.uleb() * minInst;
    else if (op === 3) line += r.sleb();
    else if (op === 4) file = r.uleb();
    else if (op === 5) column = r.uleb();
    else if (op === 8) address += Math.floor((255 - opcodeBase) / lineRange) * minInst;
    else if (op === 9) address += r.u16();
    else for (let i = 0; i < (argCounts[op] ?? 0); i++) r.uleb(); // negate_stmt, basic_block, prologue_end, epilogue_begin, isa…
  }
  r.pos = end;
}

/**
 * The module's line table as a lookup, or undefined when it has none (no .debug_line, or one this
 * reader cannot follow: a malformed table gives no lines rather than wrong ones).
 */
export function lineTable(bytes: Uint8Array): LineLookup | undefined {
  try {
    const { codeStart, custom } = sections(bytes);
    const section = custom.get('.debug_line');
    if (codeStart === undefined || !section) return undefined;
    const rows: Row[] = [];
    const r = new Reader(section);
    while (r.pos < section.length) unit(r, custom, rows);
    // Sequences, each ascending and closed by its end row; a lookup takes the row at or below the
    // address in the sequence that spans it.
    const spans: Row[][] = [];
    let cur: Row[] = [];
    for (const row of rows) {
      cur.push(row);
      if (row.end) { if (cur.length > 1 && cur[0]!.address > 0) spans.push(cur); cur = []; }
    }
    return (moduleOffset) => {
      const a = moduleOffset - codeStart;
      for (const seq of spans) {
        if (a < seq[0]!.address || a >= seq[seq.length - 1]!.address) continue;
        let best: Row | undefined;
        for (const row of seq) {
          if (row.end || row.address > a) break;
          best = row;
        }
        if (best && best.line > 0) return { file: best.file, line: best.line, column: best.column };
      }
      return undefined;
    };
  } catch {
    return undefined;
  }
}
