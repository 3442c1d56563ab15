/**
 * `capsa tenant ...`: the operator's side of the service's tenants, straight on the store in the
 * data directory (SQLite in WAL mode lets these run while `capsa serve` has the same directory open).
 * Keys are printed on stdout alone, so that a script can capture them: KEY=$(capsa tenant create acme).
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createSqliteStore } from '../api/store/sqlite.js';
import { storeUrl } from './store-url.js';
import { StoreError } from '../api/store/errors.js';
import type { Store, Tenant } from '../api/store/types.js';
import { parsePolicy } from '../manifest/policy.js';
import { applyQuotas, parseQuotaAssignments, QUOTA_ASSIGNMENTS_HELP } from '../api/quotas.js';
import { UsageError } from './flags.js';

export const DEFAULT_DATA_DIR = './capsa-data';

export const TENANT_HELP = `Usage: capsa tenant create NAME [--data DIR]
       capsa tenant list [--data DIR] [--json]
       capsa tenant add-key TENANT [--data DIR]
       capsa tenant keys TENANT [--data DIR]
       capsa tenant revoke-key TENANT KEY_ID [--data DIR]
       capsa tenant set-policy TENANT FILE [--data DIR]
       capsa tenant set-policy TENANT --clear [--data DIR]
       capsa tenant set-quota TENANT NAME=VALUE... [--data DIR]
       capsa tenant set-quota TENANT --clear [--data DIR]

Manages the tenants of "capsa serve" in its data directory, or with --store URL (or
CAPSA_DATABASE_URL) in its PostgreSQL database. These work on the store directly,
also while the server runs.

create       Creates the tenant NAME and its first API key. The key is printed on
             stdout alone (it is shown once; only its hash is kept), the tenant id and
             the key id on stderr:  KEY=$(capsa tenant create acme)
list         Lists the tenants: id, name, when created, active keys (and revoked ones).
add-key      Makes another key for TENANT, printed on stdout alone (the key id on stderr).
keys         Lists TENANT's keys: id, when created, when revoked.
revoke-key   Revokes TENANT's key KEY_ID; requests with it are refused from then on.
set-policy   Sets TENANT's policy, the most its manifests may be granted (the policy
             vocabulary of docs/manifest.md). The file is checked first; a mistake is
             printed as FILE:LINE:COL: what is wrong, and nothing is changed. Host
             directory rules are ignored (tenants get in-memory directories only).
             --clear returns the tenant to the service's default policy.
set-quota    Sets TENANT's own quotas, over the service's (capsa serve --quota):
             ${QUOTA_ASSIGNMENTS_HELP}.
             NAME=default gives one back to the service; --clear gives all back.
             They hold from the tenant's next request; GET /v1/limits shows them.

TENANT is a tenant id or name.

Options:
  --data DIR   The service's data directory (default ${DEFAULT_DATA_DIR}).
  --json       (list) One JSON object per line instead of a table.
  -h, --help   Show this help.

Exit status: 0 on success; 1 when the tenant, the key or the policy file cannot be
used (the message says why); 2 for a usage error.`;

/** A failure the message explains: exit status 1. */
class TenantError extends Error {}

/** Runs `capsa tenant ...`; returns the exit status. */
export async function tenant(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(TENANT_HELP + '\n');
    return sub === undefined ? 2 : 0;
  }
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      data: { type: 'string', default: DEFAULT_DATA_DIR },
      store: { type: 'string' },
      json: { type: 'boolean', default: false },
      clear: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) { process.stdout.write(TENANT_HELP + '\n'); return 0; }
  const want = (n: number, what: string) => {
    if (positionals.length !== n) throw new UsageError(`tenant ${sub}: expected ${what}\n\n${TENANT_HELP}`);
  };
  if (values.json && sub !== 'list') throw new UsageError(`tenant ${sub}: --json is for list`);
  if (values.clear && sub !== 'set-policy' && sub !== 'set-quota') throw new UsageError(`tenant ${sub}: --clear is for set-policy and set-quota`);
  switch (sub) {
    case 'create': want(1, 'NAME'); break;
    case 'list': want(0, 'no arguments'); break;
    case 'add-key': case 'keys': want(1, 'TENANT'); break;
    case 'revoke-key': want(2, 'TENANT KEY_ID'); break;
    case 'set-policy': want(values.clear ? 1 : 2, values.clear ? 'TENANT with --clear' : 'TENANT FILE (or TENANT --clear)'); break;
    case 'set-quota':
      if (values.clear ? positionals.length !== 1 : positionals.length < 2) {
        throw new UsageError(`tenant set-quota: expected ${values.clear ? 'TENANT with --clear' : 'TENANT NAME=VALUE... (or TENANT --clear)'}\n\n${TENANT_HELP}`);
      }
      break;
    default: throw new UsageError(`tenant: unknown subcommand ${JSON.stringify(sub)}\n\n${TENANT_HELP}`);
  }
  // Read and check a policy before opening anything: a mistake changes nothing.
  let policyText: string | null = null;
  if (sub === 'set-policy' && !values.clear) {
    const file = positionals[1]!;
    try {
      policyText = fs.readFileSync(file, 'utf8');
    } catch (e) {
      process.stderr.write(`capsa: Cannot read ${file}: ${(e as Error).message}\n`);
      return 1;
    }
    // Throws ManifestError (FILE:LINE:COL: ...), which main prints with exit status 1.
    const policy = parsePolicy(policyText, file, path.dirname(path.resolve(file)));
    const hostRules = policy.dirs.filter((d) => d.source.kind === 'host').length;
    if (hostRules) {
      process.stderr.write(`capsa: warning: ${file}: ${hostRules} host directory rule(s) will be ignored: the service gives tenants in-memory directories only\n`);
    }
  }

  // Read the quota assignments before opening anything too.
  let quotaChanges: ReturnType<typeof parseQuotaAssignments> | undefined;
  if (sub === 'set-quota') {
    try {
      quotaChanges = values.clear ? undefined : parseQuotaAssignments(positionals.slice(1));
    } catch (e) {
      throw new UsageError(`tenant set-quota: ${(e as Error).message}`);
    }
  }

  const url = storeUrl(values.store);
  let store: Store;
  if (url) {
    try {
      const { createPostgresStore } = await import('../api/store/postgres.js');
      store = await createPostgresStore({ url, poolSize: 1 });
    } catch (e) {
      process.stderr.write(`capsa: cannot open the PostgreSQL store: ${(e as Error).message}\n`);
      return 1;
    }
  } else {
    const dir = values.data;
    if (sub !== 'create' && !fs.existsSync(dir)) {
      process.stderr.write(`capsa: ${dir}: no such data directory (capsa tenant create, or capsa serve --data ${dir}, makes it)\n`);
      return 1;
    }
    fs.mkdirSync(dir, { recursive: true });
    store = createSqliteStore({ dir });
  }
  try {
    return await subcommand(store, sub, positionals, values.json, policyText, quotaChanges);
  } catch (e) {
    if (e instanceof TenantError || e instanceof StoreError) {
      process.stderr.write(`capsa: ${e.message}\n`);
      return 1;
    }
    throw e;
  } finally {
    await store.close();
  }
}

async function subcommand(store: Store, sub: string, args: string[], json: boolean, policyText: string | null,
  quotaChanges?: ReturnType<typeof parseQuotaAssignments>): Promise<number> {
  switch (sub) {
    case 'create': {
      const name = args[0]!;
      if (!name.trim()) throw new UsageError('tenant create: NAME is empty');
      if (await store.findTenantByName(name)) throw new TenantError(`a tenant named ${JSON.stringify(name)} exists already (capsa tenant add-key ${name} makes another key)`);
      const t = await store.createTenant(name);
      const { key, record } = await store.createKey(t.id);
      process.stderr.write(`capsa: tenant ${t.id} (${t.name}) created with key ${record.id}; the key is printed once, on stdout\n`);
      process.stdout.write(key + '\n');
      return 0;
    }
    case 'list': {
      const rows = [];
      for (const t of await store.listTenants()) {
        const keys = await store.listKeys(t.id);
        const active = keys.filter((k) => k.revokedAt === null).length;
        rows.push({ id: t.id, name: t.name, createdAt: t.createdAt, keys: active, revokedKeys: keys.length - active, policy: t.policy === null ? 'default' : 'own', quotas: t.quotas });
      }
      if (json) {
        for (const r of rows) process.stdout.write(JSON.stringify({ ...r, created: iso(r.createdAt) }) + '\n');
        return 0;
      }
      process.stdout.write(table(['ID', 'NAME', 'CREATED', 'KEYS', 'POLICY'],
        rows.map((r) => [r.id, r.name, iso(r.createdAt), r.revokedKeys ? `${r.keys} (+${r.revokedKeys} revoked)` : String(r.keys), r.policy])));
      return 0;
    }
    case 'add-key': {
      const t = await find(store, args[0]!);
      const { key, record } = await store.createKey(t.id);
      process.stderr.write(`capsa: key ${record.id} added to tenant ${t.id} (${t.name}); the key is printed once, on stdout\n`);
      process.stdout.write(key + '\n');
      return 0;
    }
    case 'keys': {
      const t = await find(store, args[0]!);
      process.stdout.write(table(['KEY_ID', 'CREATED', 'REVOKED'],
        (await store.listKeys(t.id)).map((k) => [k.id, iso(k.createdAt), k.revokedAt === null ? '-' : iso(k.revokedAt)])));
      return 0;
    }
    case 'revoke-key': {
      const t = await find(store, args[0]!);
      const keyId = args[1]!;
      const known = (await store.listKeys(t.id)).find((k) => k.id === keyId);
      if (!known) throw new TenantError(`tenant ${t.id} (${t.name}) has no key ${keyId} (capsa tenant keys ${t.name} lists them)`);
      if (known.revokedAt !== null) {
        process.stderr.write(`capsa: key ${keyId} of tenant ${t.id} was revoked already, at ${iso(known.revokedAt)}\n`);
        return 0;
      }
      if (!await store.revokeKey(t.id, keyId)) throw new TenantError(`cannot revoke key ${keyId} of tenant ${t.id}`);
      process.stderr.write(`capsa: key ${keyId} of tenant ${t.id} (${t.name}) revoked\n`);
      return 0;
    }
    case 'set-policy': {
      const t = await find(store, args[0]!);
      await store.setPolicy(t.id, policyText);
      process.stderr.write(policyText === null
        ? `capsa: tenant ${t.id} (${t.name}) is back on the service's default policy\n`
        : `capsa: policy of tenant ${t.id} (${t.name}) set from ${args[1]!}\n`);
      return 0;
    }
    case 'set-quota': {
      const t = await find(store, args[0]!);
      const quotas = quotaChanges ? applyQuotas(t.quotas, quotaChanges) : {};
      await store.setQuotas(t.id, quotas);
      process.stderr.write(`capsa: quotas of tenant ${t.id} (${t.name}): ${Object.keys(quotas).length ? JSON.stringify(quotas) : 'the service\'s'}\n`);
      return 0;
    }
  }
  throw new UsageError(`tenant: unknown subcommand ${JSON.stringify(sub)}`);
}

/** A tenant by id, else by name. */
async function find(store: Store, ref: string): Promise<Tenant> {
  const t = await store.getTenant(ref) ?? await store.findTenantByName(ref);
  if (!t) throw new TenantError(`no tenant ${JSON.stringify(ref)} (capsa tenant list shows them)`);
  return t;
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd() + '\n';
  return [head, ...rows].map(line).join('');
}
