import { PREVIEW1_FUNCTIONS } from '../wasi/preview1.js';

/** Every import capsa can satisfy, as "module.name". */
const PROVIDED = new Set<string>([
  ...PREVIEW1_FUNCTIONS.map((n) => `wasi_snapshot_preview1.${n}`),
  'capsicum.cap_enter',
  'capsicum.cap_getmode',
  'capsicum.pipe',
  'capsicum.pdspawn',
  'capsicum.pdwait',
  'capsicum.pdkill',
  'capsicum.pdgetpid',
  'argdata.argdata_size',
  'argdata.argdata_get',
  'casper.init',
  'casper.xfer',
  'casper.recv',
]);

/** Modules capsa provides, for messages. */
export const PROVIDED_MODULES = ['wasi_snapshot_preview1', 'capsicum', 'argdata', 'casper'] as const;

/** Of a module's imports, those neither capsa nor the embedder's host functions satisfy, as "module.name (kind)". */
export function unknownImports(imports: readonly { module: string; name: string; kind: string }[], extra: { module: string; name: string }[] = []): string[] {
  const more = new Set(extra.map((f) => `${f.module}.${f.name}`));
  return imports
    .filter((i) => i.kind !== 'function' || !(PROVIDED.has(`${i.module}.${i.name}`) || more.has(`${i.module}.${i.name}`)))
    .map((i) => `${i.module}.${i.name} (${i.kind})`);
}

/** The message for a module with unknown imports: which, and what capsa offers instead. */
export function unknownImportsMessage(what: string, unknown: string[]): string {
  const list = unknown.slice(0, 10).join(', ') + (unknown.length > 10 ? `, and ${unknown.length - 10} more` : '');
  // How an embedder provides the first missing function: host functions by module and name.
  const fn = unknown.map((u) => /^(.*)\.([^.]*) \(function\)$/.exec(u)).find((m) => m !== null);
  const how = fn ? `; an embedder provides it as a host function: createHost({ functions: { ${key(fn[1]!)}: { ${key(fn[2]!)}: (ctx, ...args) => 0 } } }) or host.run({ module, functions: … })` : '';
  return `Cannot run ${what}: it imports ${list}, which capsa does not provide (capsa provides functions of ${PROVIDED_MODULES.join(' and ')})${how}`;
}

/** A name as an object key in a code hint: bare when it is an identifier. */
function key(name: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(name) ? name : JSON.stringify(name);
}
