import { lineTable } from './dwarf-lines.js';

/** The kind of a trap, from the engine's error. */
export type TrapKind = 'unreachable' | 'memory_out_of_bounds' | 'stack_overflow' | 'integer_divide_by_zero'
  | 'integer_overflow' | 'invalid_conversion' | 'indirect_call' | 'table_out_of_bounds' | 'null_reference' | 'other';

/**
 * One frame of a trap's wasm backtrace: the function's index, its name (from the name section) when
 * the module has one, the byte offset in the module, and its source position when the module has
 * DWARF line information (clang -g).
 */
export interface TrapFrame { func: number; name?: string; offset: number; file?: string; line?: number; column?: number }

/** The wasm frames of an engine error's stack, innermost first (V8 names them from the name section). */
export function trapFrames(e: unknown): TrapFrame[] {
  const stack = (e as Error)?.stack;
  if (typeof stack !== 'string') return [];
  const frames: TrapFrame[] = [];
  for (const line of stack.split('\n')) {
    const m = /^\s*at (?:(.+?) \()?wasm:\/\/wasm\/[^:]*:wasm-function\[(\d+)\]:(0x[\da-f]+)\)?\s*$/i.exec(line);
    if (!m) continue;
    const f: TrapFrame = { func: Number(m[2]), offset: Number(m[3]) };
    if (m[1] !== undefined) f.name = m[1];
    frames.push(f);
  }
  return frames;
}

/**
 * A backtrace as wasmtime prints it: "    0:   0x37 - name" (or wasm-function[N] without a name
 * section), then "                    at FILE:LINE:COLUMN" where the frame has a source position.
 */
export function formatBacktrace(frames: TrapFrame[]): string {
  const width = Math.max(...frames.map((f) => f.offset.toString(16).length + 2));
  return ['wasm backtrace:', ...frames.map((f, i) => {
    const head = `  ${String(i).padStart(3)}: ${('0x' + f.offset.toString(16)).padStart(width)} - ${f.name ?? `wasm-function[${f.func}]`}`;
    return f.file === undefined ? head : `${head}\n                    at ${f.file}:${f.line}:${f.column}`;
  })].join('\n');
}

/** The frames with their source positions, from the module's DWARF line table (a module without one: unchanged). */
export function withSourceLines(frames: TrapFrame[], bytes: Uint8Array): TrapFrame[] {
  const lookup = lineTable(bytes);
  if (!lookup) return frames;
  return frames.map((f) => {
    const at = lookup(f.offset);
    return at ? { ...f, file: at.file, line: at.line, column: at.column } : f;
  });
}

/** Whether an exception thrown out of guest code is a WebAssembly trap, and which, with its wasm backtrace. */
export function classifyTrap(e: unknown): { kind: TrapKind; message: string; frames?: TrapFrame[] } | undefined {
  const frames = trapFrames(e);
  const t = classifyKind(e);
  return t && frames.length ? { ...t, frames } : t;
}

function classifyKind(e: unknown): { kind: TrapKind; message: string } | undefined {
  if (e instanceof RangeError && /call stack/i.test(e.message)) return { kind: 'stack_overflow', message: 'stack overflow' };
  if (!(e instanceof WebAssembly.RuntimeError)) return undefined;
  const m = e.message;
  const kind: TrapKind =
    /unreachable/i.test(m) ? 'unreachable'
    : /memory access out of bounds/i.test(m) ? 'memory_out_of_bounds'
    : /divide by zero|remainder by zero/i.test(m) ? 'integer_divide_by_zero'
    : /integer overflow|unrepresentable/i.test(m) ? (/float/i.test(m) ? 'invalid_conversion' : 'integer_overflow')
    : /table index|table access|element segment/i.test(m) ? 'table_out_of_bounds'
    : /signature|indirect call|null function/i.test(m) ? 'indirect_call'
    : /null/i.test(m) ? 'null_reference'
    : 'other';
  return { kind, message: m };
}
