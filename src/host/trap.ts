/** The kind of a trap, from the engine's error. */
export type TrapKind = 'unreachable' | 'memory_out_of_bounds' | 'stack_overflow' | 'integer_divide_by_zero'
  | 'integer_overflow' | 'invalid_conversion' | 'indirect_call' | 'table_out_of_bounds' | 'null_reference' | 'other';

/** Whether an exception thrown out of guest code is a WebAssembly trap, and which. */
export function classifyTrap(e: unknown): { kind: TrapKind; message: string } | undefined {
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
