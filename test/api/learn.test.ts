/**
 * `learn: true` on POST /v1/runs: the run's result carries the least manifest (YAML) for what it
 * used; submitted again, that manifest gives the same output; it stays within the tenant's policy;
 * another tenant cannot read it; a malformed `learn` is refused naming what to change.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ADMIN, CAT, call, json, startService, waitRun, type Service } from './helpers.js';

vi.setConfig({ testTimeout: 60_000 });

const UNIQ = new Uint8Array(readFileSync(new URL('../../guests/build/uniq.wasm', import.meta.url)));
const FILES = { '/in/words.txt': 'a\na\nb\nc\nc\n', '/in/other.txt': 'not read\n' };

let svc: Service;
let a: { id: string; key: string };
let b: { id: string; key: string };

/** Submits a run and waits for its end. */
async function run(key: string, body: Record<string, unknown>): Promise<any> {
  const r = await call(svc.app, 'POST', '/v1/runs', { key, json: { ...body, wait: 20 } });
  expect(r.status).toBe(201);
  const j = await json(r);
  return ['queued', 'running'].includes(j.status) ? waitRun(svc.app, key, j.id) : j;
}

beforeAll(async () => {
  svc = await startService();
  a = await svc.tenant();
  b = await svc.tenant();
});
afterAll(async () => { await svc.close(); });

describe('learn: true', () => {
  it('uniq: the learned manifest grants only what was used and, submitted again, gives the same output', async () => {
    const uniq = await svc.upload(a.key, UNIQ);
    const manifest = [
      'args: [/in/words.txt, /out/u.txt]',
      'dirs:',
      '  - { guest: /in, source: memory, rights: [rpath, wpath, cpath] }',
      '  - { guest: /out, source: memory, rights: [rpath, wpath, cpath] }',
      '  - { guest: /spare, source: memory, rights: [rpath] }', '',
    ].join('\n');
    const first = await run(a.key, { module: uniq, manifest, files: FILES, learn: true });
    expect(first.status).toBe('exited');
    expect(first.exitCode).toBe(0);
    const learned: string = first.learnedManifest;
    expect(learned).toContain(`module: ${uniq}`);
    expect(learned).toContain('only /in/words.txt was opened');
    expect(learned).toContain('not granted (unused): /spare');
    // /in was only read: the write and create rights it was given are gone.
    expect(learned).toContain('- { guest: /in, source: memory, rights: [ CAP_READ, CAP_LOOKUP ] }');
    expect(first.audit.events).toBeGreaterThan(0);

    // The learned manifest alone (module included) reproduces the run.
    const again = await run(a.key, { manifest: learned, files: FILES });
    expect(again.status).toBe('exited');
    expect(again.exitCode).toBe(first.exitCode);
    expect(again.stdout).toBe(first.stdout);
    expect(again.stderr).toBe(first.stderr);
    expect(again.files['/out/u.txt']).toEqual(first.files['/out/u.txt']);
    expect(again.files['/out/u.txt'].data).toBe('a\nb\nc\n');
    // A run without learn carries none.
    expect(again.learnedManifest).toBeUndefined();
  });

  it('cat: learned under a tight tenant policy, the manifest stays within it (limits capped at what the run had)', async () => {
    const t = await svc.tenant();
    // Output below the learned minimum (64 KiB): the margin must not carry the manifest over it.
    const put = await call(svc.app, 'PUT', `/v1/admin/tenants/${t.id}/policy`, {
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/yaml' },
      body: 'limits: { output: 16KiB }\ndirs:\n  - source: memory\n    rights: [rpath]\n',
    });
    expect(put.status).toBe(200);
    const cat = await svc.upload(t.key, CAT);
    const first = await run(t.key, { module: cat, manifest: 'args: [/in/words.txt]\ndirs:\n  - { guest: /in, source: memory, rights: rpath }\n', files: FILES, learn: true });
    expect(first.status).toBe('exited');
    expect(first.stdout).toBe(FILES['/in/words.txt']);
    const learned: string = first.learnedManifest;
    expect(learned).toContain('output: 16384');
    const again = await run(t.key, { manifest: learned, files: FILES });
    expect(again.status).toBe('exited');
    expect(again.stdout).toBe(first.stdout);
  });

  it('another tenant cannot read the learned manifest (404, as for a run nobody has)', async () => {
    const hello = await svc.upload(a.key, CAT);
    const mine = await run(a.key, { module: hello, manifest: 'args: [/in/words.txt]\ndirs:\n  - { guest: /in, source: memory, rights: rpath }\n', files: FILES, learn: true });
    expect(mine.learnedManifest).toContain('CAP_READ');
    const theirs = await call(svc.app, 'GET', `/v1/runs/${mine.id}`, { key: b.key });
    expect(theirs.status).toBe(404);
    const text = await theirs.text();
    expect(text).not.toContain('learnedManifest');
    expect(text).not.toContain('/in/words.txt');
    const list = await json(await call(svc.app, 'GET', '/v1/runs', { key: b.key }));
    expect(list.items.map((r: { id: string }) => r.id)).not.toContain(mine.id);
  });

  it('refuses a learn that is not a boolean, and learn with an audit other than all, saying what to change', async () => {
    const cat = await svc.upload(a.key, CAT);
    const r1 = await call(svc.app, 'POST', '/v1/runs', { key: a.key, json: { module: cat, learn: 'yes' } });
    expect(r1.status).toBe(422);
    const e1 = (await json(r1)).error;
    expect(e1.code).toBe('invalid_request');
    expect(e1.message).toContain('learn: must be true or false');
    const r2 = await call(svc.app, 'POST', '/v1/runs', { key: a.key, json: { module: cat, learn: true, audit: 'denied' } });
    expect(r2.status).toBe(422);
    const e2 = (await json(r2)).error;
    expect(e2.message).toContain('drop "audit" or set it to "all"');
    expect(e2.details).toEqual([{ path: 'audit', message: 'conflicts with learn' }]);
    // Nothing was queued for either.
    const list = await json(await call(svc.app, 'GET', '/v1/runs', { key: a.key }));
    expect(list.items.every((r: { status: string }) => !['queued', 'running'].includes(r.status))).toBe(true);
  });

  it('documents learn and learnedManifest in the OpenAPI document', async () => {
    const doc = await json(await call(svc.app, 'GET', '/openapi.json'));
    expect(doc.components.schemas.RunRequest.properties.learn).toMatchObject({ type: 'boolean' });
    expect(doc.components.schemas.RunRequest.properties.learn.description).toContain('least manifest');
    expect(doc.components.schemas.Run.properties.learnedManifest.description).toContain('least manifest');
  });
});
