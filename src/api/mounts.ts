/**
 * The host directories executors may mount: the union of those the policies in force allow. A
 * tenant's own policy grants in-memory directories only (checkTenantPolicy), so the union is the
 * service policy's host directories while some tenant runs under it, and nothing otherwise. When
 * that changes (a tenant created, a policy set), the host replaces its executors (Host.setMounts).
 */
import fs from 'node:fs';
import type { ExecutorMount } from '../host/host.js';
import type { Policy } from '../manifest/policy.js';
import { READ_ONLY_MASK } from '../wasi/rights.js';
import type { Deps } from './options.js';
import type { Store } from './store/types.js';

/** The host directories a policy's rules allow, writable where a rule grants writing. */
export function policyMounts(policy: Policy | undefined): ExecutorMount[] {
  const out: ExecutorMount[] = [];
  for (const d of policy?.dirs ?? []) {
    if (d.source.kind !== 'host') continue;
    if (!fs.existsSync(d.source.under)) continue;
    out.push({ path: d.source.under, write: (d.rights.base & ~READ_ONLY_MASK) !== 0n });
  }
  return out;
}

/** The union of the host directories the policies in force allow (see the file's comment). */
export async function mountsInForce(store: Store, servicePolicy: Policy): Promise<ExecutorMount[]> {
  const underService = (await store.listTenants()).some((t) => t.policy === null || t.policy.trim() === '');
  return underService ? policyMounts(servicePolicy) : [];
}

/**
 * Recomputes the union after a policy change and gives it to the host, which replaces its executors
 * if it changed; resolves once the new executors can take runs.
 */
export async function syncMounts(deps: Pick<Deps, 'store' | 'policy' | 'host'>): Promise<void> {
  await deps.host.setMounts(await mountsInForce(deps.store, deps.policy));
}
