// Executors' mounts follow the policies in force: when they change, every executor is replaced
// (drained: new runs go to new executors, old ones finish their runs and exit), and an executor
// never holds a host directory no policy in force allows.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createApp } from '../../src/api/app.js';
import { createLogger } from '../../src/api/log.js';
import { createScheduler } from '../../src/api/scheduler.js';
import { createSqliteStore } from '../../src/api/store/sqlite.js';
import { createHost, type Host } from '../../src/host/host.js';
import { parsePolicy } from '../../src/manifest/policy.js';
import { command } from '../helpers/wat.js';

const guest = (name: string) => fs.readFileSync(new URL(`../../guests/build/${name}.wasm`, import.meta.url));
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const POLL = '(import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))';
/** Sleeps `ms` in one poll_oneoff. */
const sleeper = (ms: number) => command(`
  (i64.store (i32.const 0) (i64.const 1)) (i32.store8 (i32.const 8) (i32.const 0)) (i32.store (i32.const 16) (i32.const 1))
  (i64.store (i32.const 24) (i64.const ${ms * 1_000_000}))
  (drop (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))`, POLL);
const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-mounts-'));
  fs.writeFileSync(path.join(dir, 'in.txt'), 'from the host\n');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('Host.setMounts under process isolation', () => {
  it('replaces every executor: a run in progress finishes on the old one, new runs get the new grants, the old one exits', async () => {
    const host = await createHost({ isolation: 'process', workers: 1, executors: { count: 1, mounts: [{ path: dir, write: false }] }, limits: { max: { wallMs: 30_000 } } });
    try {
      const readIt = () => host.run({ module: guest('cat'), args: ['/host/in.txt'], dirs: [{ guest: '/host', host: dir, readonly: true }] });
      expect(text((await readIt()).stdout)).toBe('from the host\n');
      const [old] = host.executors();
      expect(old!.mounts).toEqual([{ path: dir, write: false }]);
      const long = host.run({ module: sleeper(1500), limits: { wallMs: 30_000 } });
      await vi.waitFor(() => expect(host.stats().busy).toBe(1));

      const replaced = host.setMounts([]);
      // At once: the old executor still holds its run, and takes no new one.
      const now = host.executors();
      expect(now.find((e) => e.pid === old!.pid)).toMatchObject({ draining: true, busy: 1 });
      await replaced;
      const fresh = host.executors().find((e) => !e.draining)!;
      expect(fresh.pid).not.toBe(old!.pid);
      expect(fresh.mounts).toEqual([]);
      // The directory is out of the new executor's reach: the run cannot open it.
      const denied = await readIt();
      expect(denied.status === 'exited' && text(denied.stdout) === 'from the host\n').toBe(false);
      expect(text((await host.run({ module: guest('hello'), args: ['new'] })).stdout)).toBe('hello new\n');

      expect(await long).toMatchObject({ status: 'exited', exitCode: 0 });
      await vi.waitFor(() => expect(alive(old!.pid!)).toBe(false), { timeout: 10_000 });
      expect(host.executors().map((e) => e.pid)).toEqual([fresh.pid]);
      // The same set again changes nothing.
      await host.setMounts([]);
      expect(host.executors().map((e) => e.pid)).toEqual([fresh.pid]);
    } finally {
      await host.close();
    }
  }, 60_000);
});

describe('the service replaces executors when tenants\' policies change the union of host paths', () => {
  let host: Host;
  beforeAll(async () => { host = await createHost({ isolation: 'process', workers: 1, executors: { count: 1 } }); });
  afterAll(async () => { await host.close(); });

  it('a tenant under the service policy brings its host directories in; the last one leaving takes them out', async () => {
    const data = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-mounts-api-'));
    const store = createSqliteStore({ dir: data });
    const logger = createLogger({ level: 'silent' });
    const scheduler = createScheduler({ store, host, logger });
    const ADMIN = 'admin-token-for-the-mounts-test';
    const policy = parsePolicy(`dirs:\n  - source: ${dir}\n    rights: [CAP_READ, CAP_LOOKUP, CAP_FSTAT, CAP_SEEK]\n`, 'policy');
    const app = createApp({ store, host, scheduler, logger, adminToken: ADMIN, policy });
    const admin = (method: string, url: string, body: unknown) => app.request(url, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    try {
      expect(host.executors()[0]!.mounts).toEqual([]);
      // No tenant yet, then one with its own policy: no policy in force allows a host path.
      const own = await admin('POST', '/v1/admin/tenants', { name: 'own', policy: 'dirs:\n  - source: memory\n    rights: [CAP_READ]\n' });
      expect(own.status).toBe(201);
      expect(host.executors().map((e) => e.mounts)).toEqual([[]]);

      const r = await admin('POST', '/v1/admin/tenants', { name: 'svc' });
      expect(r.status).toBe(201);
      const svc = (await r.json() as { tenant: { id: string } }).tenant.id;
      const active = () => host.executors().filter((e) => !e.draining);
      expect(active().map((e) => e.mounts)).toEqual([[{ path: dir, write: false }]]);

      // The tenant takes a policy of its own: the service policy is in force for nobody.
      const p = await admin('PUT', `/v1/admin/tenants/${svc}/policy`, { policy: 'dirs:\n  - source: memory\n    rights: [CAP_READ]\n' });
      expect(p.status).toBe(200);
      expect(active().map((e) => e.mounts)).toEqual([[]]);
      await vi.waitFor(() => expect(host.executors().every((e) => !e.draining)).toBe(true), { timeout: 10_000 });
    } finally {
      await scheduler.stop(1000);
      store.close();
      fs.rmSync(data, { recursive: true, force: true });
    }
  }, 60_000);
});
