import wabtInit from 'wabt';

const wabt = await wabtInit();

/** Assembles WebAssembly text into a binary module. */
export function wat(source: string): Uint8Array<ArrayBuffer> {
  const m = wabt.parseWat('guest.wat', source, { threads: true, bulk_memory: true });
  try {
    return new Uint8Array(m.toBinary({}).buffer);
  } finally {
    m.destroy();
  }
}

/** A command module exporting memory and a _start whose body is `body` (imports go in `imports`). */
export function command(body: string, imports = '', memory = '(memory (export "memory") 1)'): Uint8Array {
  return wat(`(module ${imports} ${memory} (func (export "_start") ${body}))`);
}
