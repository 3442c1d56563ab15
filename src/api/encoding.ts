/** Bytes in JSON: text when they are valid UTF-8, base64 otherwise; and run requests as JSON text. */

const strict = new TextDecoder('utf-8', { fatal: true });

export type Encoding = 'utf8' | 'base64';

/** Bytes as `{ data, encoding }`: the text when it is valid UTF-8, else base64. */
export function toText(bytes: Uint8Array): { data: string; encoding: Encoding } {
  try {
    return { data: strict.decode(bytes), encoding: 'utf8' };
  } catch {
    return { data: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'), encoding: 'base64' };
  }
}

export const b64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
export const fromB64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));

/** A stored time (ms since the epoch) as the API writes it: ISO 8601, or null when unset. */
export const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

/** Whether `s` is canonical base64 (so that a typo is refused rather than decoded to garbage). */
export function isBase64(s: string): boolean {
  return s.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(s);
}

/**
 * JSON for values with bigints and byte arrays (a run request: rights are bigints, argdata may
 * hold bytes). Tagged objects carry `$t`; a plain object that has a `$t` key of its own is wrapped,
 * so nothing a tenant writes (env names, Casper limits) is mistaken for a tag.
 */
export function encodeTagged(v: unknown): unknown {
  if (typeof v === 'bigint') return { $t: 'bigint', v: v.toString() };
  if (v instanceof Uint8Array) return { $t: 'bytes', v: b64(v) };
  if (Array.isArray(v)) return v.map(encodeTagged);
  if (v && typeof v === 'object') {
    const o = Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, encodeTagged(x)]));
    return Object.hasOwn(o, '$t') ? { $t: 'object', v: o } : o;
  }
  return v;
}

/** The inverse of encodeTagged. */
export function decodeTagged(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(decodeTagged);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (Object.hasOwn(o, '$t')) {
      if (o.$t === 'bigint') return BigInt(String(o.v));
      if (o.$t === 'bytes') return fromB64(String(o.v));
      if (o.$t === 'object') return Object.fromEntries(Object.entries(o.v as object).map(([k, x]) => [k, decodeTagged(x)]));
      throw new TypeError(`unknown tag ${JSON.stringify(o.$t)}`);
    }
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, decodeTagged(x)]));
  }
  return v;
}
