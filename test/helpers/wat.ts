import wabtInit from 'wabt';

const wabt = await wabtInit();

/** Assembles WebAssembly text into a binary module; `names` keeps the name section, as a debug build has it. */
export function wat(source: string, { names = false } = {}): Uint8Array<ArrayBuffer> {
  const m = wabt.parseWat('guest.wat', source, { threads: true, bulk_memory: true });
  try {
    return new Uint8Array(m.toBinary({ write_debug_names: names }).buffer);
  } finally {
    m.destroy();
  }
}

/** A command module exporting memory and a _start whose body is `body` (imports go in `imports`). */
export function command(body: string, imports = '', memory = '(memory (export "memory") 1)'): Uint8Array {
  return wat(`(module ${imports} ${memory} (func (export "_start") ${body}))`);
}
