/**
 * The YAML library, loaded on first use. It is over a third of the JavaScript `capsa run` would
 * load, and a run from flags alone reads no YAML. Async callers `await loadYaml()` first, which
 * takes it from the bundle; a sync first use (a library caller of parseManifest) requires it.
 */
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

let lib: typeof Yaml | undefined;

/** Loads the YAML library ahead of its sync uses. */
export async function loadYaml(): Promise<void> {
  if (lib) return;
  // yaml is CommonJS under Node: the bundle's chunk of it has only a default export (module.exports).
  const m = await import('yaml') as typeof Yaml & { default?: typeof Yaml };
  lib ??= typeof m.default?.parseDocument === 'function' ? m.default : m;
}

/** The YAML library, loading it now if loadYaml has not. */
export function yaml(): typeof Yaml {
  return lib ??= createRequire(import.meta.url)('yaml') as typeof Yaml;
}

// The node tests the readers use; they are only ever asked about nodes yaml made, so it is loaded.
export const isAlias = ((n: unknown) => yaml().isAlias(n)) as typeof Yaml.isAlias;
export const isMap = ((n: unknown) => yaml().isMap(n)) as typeof Yaml.isMap;
export const isScalar = ((n: unknown) => yaml().isScalar(n)) as typeof Yaml.isScalar;
export const isSeq = ((n: unknown) => yaml().isSeq(n)) as typeof Yaml.isSeq;

/** Whether the YAML library has been loaded in this process (start-up tests check a run from flags never does). */
export function yamlLoaded(): boolean {
  return lib !== undefined;
}
