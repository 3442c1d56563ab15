import { createHash, randomBytes } from 'node:crypto';

/** Prefixes of the service's ids. */
export type IdPrefix = 'ten' | 'key' | 'run' | 'whd';

/** `<prefix>_<16 random bytes, base64url>` (22 characters after the prefix). */
export function newId(prefix: IdPrefix): string {
  return `${prefix}_${randomBytes(16).toString('base64url')}`;
}

/** A run id for `Store.createRun`, which takes the id from its caller. */
export function newRunId(): string {
  return newId('run');
}

/** The prefix of every API key. */
export const KEY_PREFIX = 'capsa_';

/** `capsa_<32 random bytes, base64url>`: 43 characters after the prefix. */
export function newApiKey(): string {
  return KEY_PREFIX + randomBytes(32).toString('base64url');
}

/** A tenant's webhook signing secret: `whsec_<32 random bytes, base64url>`. */
export function newWebhookSecret(): string {
  return 'whsec_' + randomBytes(32).toString('base64url');
}

/** What the store keeps of a key: sha256 of the whole key text, hex. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** A module's id: `sha256:<hex>` of its bytes. */
export function moduleIdOf(bytes: Uint8Array): string {
  return 'sha256:' + createHash('sha256').update(bytes).digest('hex');
}

const MODULE_ID = /^sha256:([0-9a-f]{64})$/;

/** The hex digest of a well-formed module id, or undefined (so no other text ever reaches a path). */
export function moduleDigest(id: string): string | undefined {
  return MODULE_ID.exec(id)?.[1];
}
