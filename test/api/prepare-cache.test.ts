/** prepareRun keeps manifests it checked, per policy: the same text is parsed once, a new policy checks it again. */
import { describe, expect, it, vi } from 'vitest';
import * as effective from '../../src/manifest/effective.js';
import { SERVICE_POLICY } from '../../src/manifest/policy.js';
import { DEFAULT_LIMITS } from '../../src/host/limits.js';
import { prepareRun } from '../../src/api/runs/prepare.js';
import type { Deps } from '../../src/api/options.js';
import type { Tenant } from '../../src/api/store/types.js';

vi.mock('../../src/manifest/effective.js', async (original) => {
  const m = await original<typeof import('../../src/manifest/effective.js')>();
  return { ...m, effectiveGrants: vi.fn(m.effectiveGrants) };
});

const MODULE = `sha256:${'a'.repeat(64)}`;
const deps = {
  policy: SERVICE_POLICY,
  limits: { runDefaults: { ...DEFAULT_LIMITS } },
  store: { getModule: async () => ({ id: MODULE }) },
} as unknown as Deps;
const tenant = (policy: string | null): Tenant => ({ id: 'ten_1', name: 't', createdAt: 0, policy, quotas: {} });

describe('prepareRun and the manifests it checked', () => {
  it('the same manifest under the same policy is parsed once; each run gets its own fields', async () => {
    const spy = vi.mocked(effective.effectiveGrants);
    spy.mockClear();
    const a = await prepareRun(deps, tenant(null), { module: MODULE, manifest: 'args: [cached, one]\n', stdin: 'x' });
    const b = await prepareRun(deps, tenant(null), { module: MODULE, manifest: 'args: [cached, one]\n', stdin: 'y' });
    expect(spy).toHaveBeenCalledTimes(1);
    expect(a.fields.args).toEqual(['cached', 'one']);
    expect(b.fields).toMatchObject({ args: ['cached', 'one'], stdin: 'y' });
    expect(a.fields.stdin).toBe('x');
  });

  it('a tenant whose policy changed has the manifest checked again, and refused', async () => {
    const allowed = 'limits:\n  memory: 512MiB\n';
    await prepareRun(deps, tenant('limits:\n  memory: 1GiB\n'), { module: MODULE, manifest: allowed });
    await expect(prepareRun(deps, tenant('limits:\n  memory: 64MiB\n'), { module: MODULE, manifest: allowed }))
      .rejects.toMatchObject({ status: 422, code: 'policy_violation' });
  });

  it('a refused manifest is refused again (refusals are not kept as answers)', async () => {
    const body = { module: MODULE, manifest: 'args: [1, 2\n' };
    await expect(prepareRun(deps, tenant(null), body)).rejects.toMatchObject({ status: 422, code: 'invalid_manifest' });
    await expect(prepareRun(deps, tenant(null), body)).rejects.toMatchObject({ status: 422, code: 'invalid_manifest' });
  });
});
