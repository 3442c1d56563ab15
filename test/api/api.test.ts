/** The REST API end to end through app.request(): tenants, modules, runs, events, audit, limits, metrics. */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/api/app.js';
import { createLogger } from '../../src/api/log.js';
import { ADMIN, binaryGuest, call, CAT, HELLO, json, readSSE, slowGuest, startService, tickerGuest, waitRun, type Service } from './helpers.js';

let svc: Service;
let key: string;
let tenantId: string;
let hello: string;

beforeAll(async () => {
  svc = await startService();
  ({ key, id: tenantId } = await svc.tenant('acme'));
  hello = await svc.upload(key, HELLO);
});
afterAll(async () => { await svc.close(); });

describe('service basics', () => {
  it('answers /healthz without auth, with request ids and secure headers', async () => {
    const r = await call(svc.app, 'GET', '/healthz', { headers: { 'x-request-id': 'abc-123' } });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ status: 'ok', node: svc.scheduler.nodeId, database: 'ok', isolation: 'thread', executors: [] });
    // The default node id: host, pid, random.
    expect(svc.scheduler.nodeId).toMatch(new RegExp(`^.+-${process.pid}-[0-9a-f]{6}$`));
    expect(r.headers.get('x-request-id')).toBe('abc-123');
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    expect(r.headers.get('content-security-policy')).toContain("default-src 'none'");
    const r2 = await call(svc.app, 'GET', '/healthz');
    expect(r2.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('refuses missing and unknown keys with 401 in the error shape', async () => {
    for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: 'Basic abc' }, { authorization: `Bearer ${ADMIN}` }]) {
      const r = await call(svc.app, 'GET', '/v1/modules', { headers });
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toContain('Bearer');
      const body = await json(r);
      expect(body.error.code).toBe('unauthorized');
      expect(body.error.message).toBeTruthy();
    }
  });

  it('answers unknown routes 404 in the error shape', async () => {
    const r = await call(svc.app, 'GET', '/v1/nothing', { key });
    expect(r.status).toBe(404);
    expect((await json(r)).error.code).toBe('not_found');
    // A known path with another method is a 405 (test/api/rest.test.ts).
    expect((await call(svc.app, 'PATCH', '/v1/runs', { key })).status).toBe(405);
  });
});

describe('modules', () => {
  it('uploads raw bytes: 201 with id, size and imports; the same bytes again 200', async () => {
    const { key: k } = await svc.tenant();
    const r = await call(svc.app, 'POST', '/v1/modules', { key: k, body: HELLO, headers: { 'content-type': 'application/wasm' } });
    expect(r.status).toBe(201);
    const m = await json(r);
    expect(m.id).toBe(hello);
    expect(m.size).toBe(HELLO.length);
    expect(m.imports).toContain('wasi_snapshot_preview1.fd_write');
    expect(r.headers.get('location')).toBe(`/v1/modules/${m.id}`);
    // curl --data-binary sends application/x-www-form-urlencoded: still the raw bytes.
    const again = await call(svc.app, 'POST', '/v1/modules', { key: k, body: HELLO, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(again.status).toBe(200);
    expect((await json(again)).id).toBe(hello);
  });

  it('uploads a multipart field "module"', async () => {
    const form = new FormData();
    form.append('module', new Blob([CAT]), 'cat.wasm');
    const r = await call(svc.app, 'POST', '/v1/modules', { key, body: form });
    expect(r.status).toBe(201);
    expect((await json(r)).size).toBe(CAT.length);
  });

  it('lists modules in pages, reads and deletes one', async () => {
    const { key: k } = await svc.tenant();
    const ids = [await svc.upload(k, HELLO), await svc.upload(k, CAT), await svc.upload(k, slowGuest(1))];
    const p1 = await json(await call(svc.app, 'GET', '/v1/modules?limit=2', { key: k }));
    expect(p1.items).toHaveLength(2);
    expect(p1.next).toBeTruthy();
    const p2 = await json(await call(svc.app, 'GET', `/v1/modules?limit=2&cursor=${encodeURIComponent(p1.next)}`, { key: k }));
    expect(p2.items).toHaveLength(1);
    expect(p2.next).toBeUndefined();
    expect([...p1.items, ...p2.items].map((m: { id: string }) => m.id).sort()).toEqual([...ids].sort());

    const one = await call(svc.app, 'GET', `/v1/modules/${ids[1]}`, { key: k });
    expect(one.status).toBe(200);
    expect((await json(one)).size).toBe(CAT.length);
    expect((await call(svc.app, 'DELETE', `/v1/modules/${ids[1]}`, { key: k })).status).toBe(204);
    expect((await call(svc.app, 'GET', `/v1/modules/${ids[1]}`, { key: k })).status).toBe(404);
    expect((await call(svc.app, 'DELETE', `/v1/modules/${ids[1]}`, { key: k })).status).toBe(404);
    // Another tenant's copy of the same bytes is untouched.
    expect((await call(svc.app, 'GET', `/v1/modules/${ids[1]}`, { key })).status).toBe(200);
  });
});

describe('runs', () => {
  it('runs hello.wasm with wait (the issue\'s curl, with its form content type)', async () => {
    const r = await call(svc.app, 'POST', '/v1/runs', {
      key, body: JSON.stringify({ module: hello, manifest: 'args: [world]\n', stdin: '', wait: 5 }),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(r.status).toBe(201);
    const run = await json(r);
    expect(run).toMatchObject({ status: 'exited', exitCode: 0, stdout: 'hello world\n', stderr: '', stdoutEncoding: 'utf8', attempts: 1, node: svc.scheduler.nodeId });
    expect(run.id).toMatch(/^run_/);
    expect((await json(await call(svc.app, 'GET', '/v1/runs?limit=1', { key }))).items[0]).toMatchObject({ id: run.id, node: svc.scheduler.nodeId });
    expect(run.usage.wallMs).toBeGreaterThan(0);
    expect(Date.parse(run.finishedAt)).toBeGreaterThanOrEqual(Date.parse(run.startedAt));
    expect(r.headers.get('location')).toBe(`/v1/runs/${run.id}`);
    const again = await json(await call(svc.app, 'GET', `/v1/runs/${run.id}`, { key }));
    expect(again).toEqual(run);
  });

  it('accepts the manifest as a JSON object, and reports exit codes', async () => {
    const run = await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: hello, manifest: { args: ['a', 'b', '--exit=3'] }, wait: 5 } }));
    expect(run).toMatchObject({ status: 'exited', exitCode: 3, stdout: 'hello a b\n' });
  });

  it('takes the module from the manifest when the body leaves it out', async () => {
    const run = await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { manifest: `module: "${hello}"\nargs: [x]\n`, wait: 5 } }));
    expect(run).toMatchObject({ status: 'exited', stdout: 'hello x\n' });
  });

  it('answers at once without wait; the run ends later', async () => {
    const r = await call(svc.app, 'POST', '/v1/runs', { key, json: { module: hello } });
    expect(r.status).toBe(201);
    const run = await json(r);
    expect(['queued', 'running', 'exited']).toContain(run.status);
    const done = await waitRun(svc.app, key, run.id);
    expect(done).toMatchObject({ status: 'exited', stdout: 'hello\n' });
  });

  it('passes stdin and in-memory files, and returns the files', async () => {
    const cat = await svc.upload(key, CAT);
    const a = await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: cat, stdin: 'from stdin', wait: 5 } }));
    expect(a).toMatchObject({ status: 'exited', stdout: 'from stdin' });
    const b = await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: cat, stdinBase64: Buffer.from('b64 in').toString('base64'), wait: 5 } }));
    expect(b.stdout).toBe('b64 in');
    const c = await json(await call(svc.app, 'POST', '/v1/runs', {
      key, json: { module: cat, manifest: { args: ['/data/in.txt', '/data/bin'] }, files: { '/data/in.txt': 'file text;' }, filesBase64: { '/data/bin': Buffer.from([0xff, 0x00]).toString('base64') }, wait: 5 },
    }));
    expect(c.status).toBe('exited');
    expect(c.stdoutEncoding).toBe('base64');
    expect(Buffer.from(c.stdout, 'base64')).toEqual(Buffer.concat([Buffer.from('file text;'), Buffer.from([0xff, 0x00])]));
    expect(c.files['/data/in.txt']).toEqual({ data: 'file text;', encoding: 'utf8' });
    expect(c.files['/data/bin']).toEqual({ data: '/wA=', encoding: 'base64' });
  });

  it('carries a manifest\'s argdata (bigints, rights, files) through the stored request', async () => {
    const argwalk = await svc.upload(key, new Uint8Array(readFileSync(new URL('../../guests/build/argwalk.wasm', import.meta.url))));
    const manifest = `%TAG ! tag:nuxi.nl,2015:cloudabi/
---
argdata:
  input: !file { path: /in/words.txt, rights: [CAP_READ, CAP_FSTAT, CAP_SEEK] }
  logfile: !fd stdout
  nthreads: !!int 8
  big: !!int 12345678901234567890
  ratio: 0.5
  "$t": [a, b]
dirs:
  - { guest: /in, source: memory, rights: rpath }
pledge: [stdio]
`;
    const run = await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: argwalk, manifest, files: { '/in/words.txt': 'first words\nsecond\n' }, wait: 5 } }));
    expect(run.status).toBe('exited');
    expect(run.stdout).toContain('str "nthreads"\n    int 8');
    expect(run.stdout).toContain('int 12345678901234567890');
    expect(run.stdout).toMatch(/str "logfile"\n\s+fd 1 rights/);
    expect(run.stdout).toContain('str "$t"');
    expect(run.stdout).toContain('> first words');
  });

  it('gives output that is not UTF-8 as base64 with its encoding', async () => {
    const bin = await svc.upload(key, binaryGuest());
    const run = await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: bin, wait: 5 } }));
    expect(run).toMatchObject({ status: 'exited', stdoutEncoding: 'base64', stdout: Buffer.from([0xff, 0xfe, 0x00, 0x41]).toString('base64') });
  });

  it('lists runs newest first, in pages, filtered by status', async () => {
    const { key: k } = await svc.tenant();
    await svc.upload(k, HELLO);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await json(await call(svc.app, 'POST', '/v1/runs', { key: k, json: { module: hello, wait: 5 } }))).id);
    const page = await json(await call(svc.app, 'GET', '/v1/runs?limit=2', { key: k }));
    expect(page.items.map((r: { id: string }) => r.id)).toEqual([ids[2], ids[1]]);
    expect(page.items[0].stdout).toBeUndefined();
    const rest = await json(await call(svc.app, 'GET', `/v1/runs?limit=2&cursor=${page.next}`, { key: k }));
    expect(rest.items.map((r: { id: string }) => r.id)).toEqual([ids[0]]);
    expect((await json(await call(svc.app, 'GET', '/v1/runs?status=exited', { key: k }))).items).toHaveLength(3);
    expect((await json(await call(svc.app, 'GET', '/v1/runs?status=queued', { key: k }))).items).toHaveLength(0);
    expect((await call(svc.app, 'GET', '/v1/runs?status=bogus', { key: k })).status).toBe(422);
    expect((await call(svc.app, 'GET', '/v1/runs?limit=1000', { key: k })).status).toBe(422);
    expect((await call(svc.app, 'GET', '/v1/runs?cursor=garbage!', { key: k })).status).toBe(400);
  });

  it('cancels a queued run, a running run, and refuses a finished one', async () => {
    // Longer than any stall of a loaded machine: a run that ends "cancelled" was cancelled, not finished.
    const slow = await svc.upload(key, slowGuest(60_000));
    // Two slow runs take both workers, so the third waits in the queue.
    const a = await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: slow } }));
    const b = await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: slow } }));
    const c = await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: slow } }));
    const cc = await call(svc.app, 'DELETE', `/v1/runs/${c.id}`, { key });
    expect(cc.status).toBe(200);
    expect(await json(cc)).toMatchObject({ status: 'cancelled', attempts: 0 });
    for (const r of [a, b]) {
      const d = await call(svc.app, 'DELETE', `/v1/runs/${r.id}`, { key });
      expect(d.status).toBe(200);
      expect((await json(d)).status).toBe('cancelled');
    }
    const again = await call(svc.app, 'DELETE', `/v1/runs/${a.id}`, { key });
    expect(again.status).toBe(409);
    expect((await json(again)).error.code).toBe('conflict');
    // Events of the queued one: cancelled, then exit.
    const evs = await readSSE(await call(svc.app, 'GET', `/v1/runs/${c.id}/events`, { key }));
    expect(evs.map((e) => e.event)).toEqual(['status', 'exit']);
  });

  it('runs a batch: one result per item, in order', async () => {
    const r = await call(svc.app, 'POST', '/v1/runs:batch', {
      key, json: [
        { module: hello, manifest: 'args: [one]' },
        { module: hello, manifest: 'args: [' },
        { module: `sha256:${'0'.repeat(64)}` },
        { module: hello, wait: 20 },
        { module: hello, manifest: { args: ['two'] } },
      ],
    });
    expect(r.status).toBe(200);
    const { items } = await json(r);
    expect(items.map((i: { status: number }) => i.status)).toEqual([201, 422, 422, 201, 201]);
    expect(items[1].error.code).toBe('invalid_manifest');
    expect(items[2].error.code).toBe('unknown_module');
    // An item's own wait is honoured: it has ended, with its output.
    expect(items[3].run).toMatchObject({ status: 'exited', stdout: 'hello\n', stdoutEncoding: 'utf8' });
    expect((await waitRun(svc.app, key, items[0].run.id)).stdout).toBe('hello one\n');
    expect((await waitRun(svc.app, key, items[4].run.id)).stdout).toBe('hello two\n');
    const wrapped = await call(svc.app, 'POST', '/v1/runs:batch', { key, json: { runs: [{ module: hello }] } });
    expect((await json(wrapped)).items[0].status).toBe(201);
    const tooMany = await call(svc.app, 'POST', '/v1/runs:batch', { key, json: Array.from({ length: 21 }, () => ({ module: hello })) });
    expect(tooMany.status).toBe(422);
    expect((await call(svc.app, 'POST', '/v1/runs:batch', { key, json: { module: hello } })).status).toBe(422);
  });

  it('a batch honours its wait: the answer holds each run\'s result, output as text with its encoding', async () => {
    const bin = await svc.upload(key, binaryGuest());
    const r = await call(svc.app, 'POST', '/v1/runs:batch', { key, json: { runs: [{ module: hello }, { module: bin }], wait: 20 } });
    expect(r.status).toBe(200);
    const { items } = await json(r);
    expect(items[0].run).toMatchObject({ status: 'exited', exitCode: 0, stdout: 'hello\n', stdoutEncoding: 'utf8', stderr: '', stderrEncoding: 'utf8' });
    // Bytes that are not UTF-8: base64, said so; never a JSON map of bytes.
    expect(items[1].run).toMatchObject({ status: 'exited', stdout: Buffer.from([0xff, 0xfe, 0x00, 0x41]).toString('base64'), stdoutEncoding: 'base64' });
    expect(typeof items[1].run.stdout).toBe('string');
    // Without wait the runs are as submitted.
    const quick = await json(await call(svc.app, 'POST', '/v1/runs:batch', { key, json: [{ module: hello }] }));
    expect(quick.items[0].run.status).toBe('queued');
    await waitRun(svc.app, key, quick.items[0].run.id);
  });

  it('a batch refuses unknown keys, in the batch (422 naming each) and in an item (that item\'s 422 naming it)', async () => {
    const top = await call(svc.app, 'POST', '/v1/runs:batch', { key, json: { runs: [{ module: hello }], wiat: 5, callback: 'x' } });
    expect(top.status).toBe(422);
    const e = (await json(top)).error;
    expect(e.message).toMatch(/"wiat", "callback"/);
    expect(e.details.map((d: { path: string }) => d.path)).toEqual(['wiat', 'callback']);
    expect((await call(svc.app, 'POST', '/v1/runs:batch', { key, json: { runs: [{ module: hello }], wait: 'soon' } })).status).toBe(422);
    const item = await json(await call(svc.app, 'POST', '/v1/runs:batch', { key, json: [{ module: hello, stdn: 'x' }] }));
    expect(item.items[0].status).toBe(422);
    expect(item.items[0].error.message).toMatch(/stdn/);
    // Nothing was queued for either.
    expect((await json(await call(svc.app, 'GET', '/v1/runs?status=queued', { key }))).items).toEqual([]);
  });
});

describe('events and audit', () => {
  it('replays a finished run\'s events over SSE and resumes after Last-Event-ID', async () => {
    const run = await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: hello, manifest: 'args: [sse]', wait: 5 } }));
    const res = await call(svc.app, 'GET', `/v1/runs/${run.id}/events`, { key });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const evs = await readSSE(res);
    expect(evs.map((e) => e.event)).toEqual(['status', 'stdout', 'status', 'exit']);
    expect(JSON.parse(evs[0]!.data)).toMatchObject({ state: 'running' });
    expect(JSON.parse(evs[1]!.data)).toEqual({ data: 'hello sse\n', encoding: 'utf8', attempt: 1 });
    expect(JSON.parse(evs[3]!.data)).toMatchObject({ state: 'exited', exitCode: 0 });
    expect(evs.map((e) => Number(e.id))).toEqual([1, 2, 3, 4]);

    const resumed = await readSSE(await call(svc.app, 'GET', `/v1/runs/${run.id}/events`, { key, headers: { 'last-event-id': '2' } }));
    expect(resumed.map((e) => e.id)).toEqual(['3', '4']);
    const byQuery = await readSSE(await call(svc.app, 'GET', `/v1/runs/${run.id}/events?lastEventId=3`, { key }));
    expect(byQuery.map((e) => e.event)).toEqual(['exit']);
  });

  it('streams a running run live until it exits', async () => {
    // Ticks 400 ms apart: the run is still going well after its first output reaches the stream.
    const ticker = await svc.upload(key, tickerGuest(4, 400));
    const run = await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: ticker } }));
    const res = await call(svc.app, 'GET', `/v1/runs/${run.id}/events`, { key });
    // Live: the stream had output while the run was still running (its exit came later).
    let stateAtFirstOutput: string | undefined;
    let stateRead: Promise<void> | undefined;
    const evs = await readSSE(res, (e) => {
      if (e.event === 'stdout' && stateRead === undefined) stateRead = svc.store.getRun(tenantId, run.id).then((r) => { stateAtFirstOutput = r!.state; });
      return false;
    });
    await stateRead;
    expect(stateAtFirstOutput).toBe('running');
    const out = evs.filter((e) => e.event === 'stdout').map((e) => JSON.parse(e.data).data).join('');
    expect(out).toBe('tick\n'.repeat(4));
    expect(evs.filter((e) => e.event === 'stdout').length).toBeGreaterThan(1);
    expect(evs.at(-1)!.event).toBe('exit');
    // ids strictly increase: nothing sent twice between the backlog and the live events.
    const ids = evs.map((e) => Number(e.id));
    expect(ids).toEqual([...ids].sort((x, y) => x - y));
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('shows a running run\'s output so far', async () => {
    const ticker = await svc.upload(key, tickerGuest(5, 150));
    const run = await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: ticker, wait: 0.3 } }));
    expect(run.status).toBe('running');
    expect(run.stdout).toMatch(/^(tick\n){1,3}$/);
    expect(run.exitCode).toBeNull();
    const done = await waitRun(svc.app, key, run.id);
    expect(done.stdout).toBe('tick\n'.repeat(5));
  });

  it('gives the audit trail as NDJSON', async () => {
    const cat = await svc.upload(key, CAT);
    const run = await json(await call(svc.app, 'POST', '/v1/runs', {
      key, json: { module: cat, manifest: { args: ['/data/in.txt', '/data/missing'] }, files: { '/data/in.txt': 'x' }, audit: 'all', wait: 5 },
    }));
    expect(run.status).toBe('exited');
    expect(run.audit.events).toBeGreaterThan(0);
    const r = await call(svc.app, 'GET', `/v1/runs/${run.id}/audit`, { key });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('application/x-ndjson');
    const lines = (await r.text()).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.length).toBe(run.audit.events);
    expect(lines.some((l) => l.decision === 'allowed' && l.call === 'path_open')).toBe(true);
    expect(lines.every((l) => typeof l.seq === 'number' && typeof l.call === 'string')).toBe(true);
  });
});

describe('limits, metrics, admin', () => {
  it('shows the tenant\'s effective limits', async () => {
    const l = await json(await call(svc.app, 'GET', '/v1/limits', { key }));
    expect(l.run.defaults.wallMs).toBe(10_000);
    expect(l.run.maxima.wallMs).toBe(60_000);
    expect(l.policy).toMatchObject({ own: false, casper: {}, dirs: [{ source: 'memory' }] });
    expect(l.quotas.queuedRuns.limit).toBeGreaterThan(0);
    expect(l.quotas.moduleStorageBytes.used).toBeGreaterThan(0);
    expect(l.api).toMatchObject({ moduleBytes: 16 << 20, runBodyBytes: 2 << 20, waitSeconds: 30 });
  });

  it('exposes Prometheus metrics', async () => {
    const r = await call(svc.app, 'GET', '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    const text = await r.text();
    // This node's figures carry its id; the cluster's queue (from the store) does not.
    const node = `node="${svc.scheduler.nodeId}"`;
    expect(text).toContain(`capsa_node_info{${node}} 1`);
    expect(text).toMatch(new RegExp(`capsa_runs_finished_total\\{${node},status="exited"\\} \\d+`));
    expect(text).toMatch(new RegExp(`capsa_queue_depth\\{${node}\\} \\d+`));
    expect(text).toMatch(new RegExp(`capsa_run_duration_seconds_bucket\\{${node},le="\\+Inf"\\} \\d+`));
    expect(text).toMatch(new RegExp(`capsa_worker_utilization\\{${node}\\} [\\d.]+`));
    expect(text).toContain(`capsa_workers{${node}} 2`);
    expect(text).toMatch(/^capsa_cluster_queue_depth \d+$/m);
    expect(text).toMatch(/^capsa_cluster_runs\{status="running"\} \d+$/m);
    for (const line of text.trim().split('\n')) expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? [-+\d.eInf]+)$/);
  });

  it('manages keys: a new key works, a revoked one does not', async () => {
    const admin = { authorization: `Bearer ${ADMIN}` };
    const t = await svc.tenant();
    const nk = await call(svc.app, 'POST', `/v1/admin/tenants/${t.id}/keys`, { headers: admin });
    expect(nk.status).toBe(201);
    const k2 = await json(nk);
    expect(k2.key).toMatch(/^capsa_/);
    expect((await call(svc.app, 'GET', '/v1/modules', { key: k2.key })).status).toBe(200);
    expect((await call(svc.app, 'DELETE', `/v1/admin/tenants/${t.id}/keys/${k2.id}`, { headers: admin })).status).toBe(204);
    expect((await call(svc.app, 'GET', '/v1/modules', { key: k2.key })).status).toBe(401);
    expect((await call(svc.app, 'GET', '/v1/modules', { key: t.key })).status).toBe(200);
    // Revoking is idempotent.
    expect((await call(svc.app, 'DELETE', `/v1/admin/tenants/${t.id}/keys/${k2.id}`, { headers: admin })).status).toBe(204);
    // Another tenant's key id under this tenant: not found.
    const other = await json(await call(svc.app, 'GET', '/v1/admin/tenants', { headers: admin }));
    const acmeKey = other.items.find((x: { id: string }) => x.id === tenantId).keys[0].id;
    expect((await call(svc.app, 'DELETE', `/v1/admin/tenants/${t.id}/keys/${acmeKey}`, { headers: admin })).status).toBe(404);
    expect((await call(svc.app, 'POST', '/v1/admin/tenants/ten_nope/keys', { headers: admin })).status).toBe(404);
  });

  it('lists tenants without keys, refuses a duplicate name, and needs the admin token', async () => {
    const admin = { authorization: `Bearer ${ADMIN}` };
    const list = await call(svc.app, 'GET', '/v1/admin/tenants', { headers: admin });
    const text = await list.text();
    expect(text).toContain('acme');
    expect(text).not.toContain(key);
    const dup = await call(svc.app, 'POST', '/v1/admin/tenants', { headers: admin, json: { name: 'acme' } });
    expect(dup.status).toBe(409);
    expect((await call(svc.app, 'POST', '/v1/admin/tenants', { headers: admin, json: { name: 'bad name!' } })).status).toBe(422);
    expect((await call(svc.app, 'GET', '/v1/admin/tenants', { key })).status).toBe(401);
    expect((await call(svc.app, 'GET', '/v1/admin/tenants', { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
  });

  it('turns the admin API off when no admin token is configured', async () => {
    const app = createApp({ store: svc.store, host: svc.host, scheduler: svc.scheduler, logger: createLogger({ level: 'silent' }), adminToken: '' });
    for (const auth of ['Bearer ', 'Bearer anything', '']) {
      const r = await call(app, 'GET', '/v1/admin/tenants', { headers: auth ? { authorization: auth } : {} });
      expect(r.status).toBe(401);
      expect((await json(r)).error.message).toMatch(/disabled/);
    }
  });

  it('sets a tenant policy that narrows its runs, and refuses bad policies with line:col', async () => {
    const admin = { authorization: `Bearer ${ADMIN}` };
    const t = await svc.tenant();
    const h = await svc.upload(t.key, HELLO);
    const put = await call(svc.app, 'PUT', `/v1/admin/tenants/${t.id}/policy`, { headers: { ...admin, 'content-type': 'application/yaml' }, body: 'limits: { wall: 2s, memory: 64MiB }\ndirs:\n  - source: memory\n    rights: [rpath]\n' });
    expect(put.status).toBe(200);
    expect((await json(put)).policy).toContain('wall: 2s');
    const lim = await json(await call(svc.app, 'GET', '/v1/limits', { key: t.key }));
    expect(lim.run.maxima.wallMs).toBe(2000);
    expect(lim.run.defaults.wallMs).toBe(2000);
    expect(lim.policy.own).toBe(true);

    const over = await call(svc.app, 'POST', '/v1/runs', { key: t.key, json: { module: h, manifest: 'limits: { wall: 5s }\ndirs:\n  - { guest: /w, source: memory, rights: [rpath, wpath] }\n' } });
    expect(over.status).toBe(422);
    const e = (await json(over)).error;
    expect(e.code).toBe('policy_violation');
    expect(e.message).toContain('limits.wall');
    expect(e.message).toContain('dirs[0]');
    expect(e.details.length).toBe(2);
    expect((await json(await call(svc.app, 'POST', '/v1/runs', { key: t.key, json: { module: h, wait: 5 } }))).status).toBe('exited');

    const bad = await call(svc.app, 'PUT', `/v1/admin/tenants/${t.id}/policy`, { headers: { ...admin, 'content-type': 'text/plain' }, body: 'limits:\n  wal: 2s\n' });
    expect(bad.status).toBe(422);
    const be = (await json(bad)).error;
    expect(be.code).toBe('invalid_policy');
    expect(be.details[0]).toMatchObject({ line: 2, col: 3, path: 'limits.wal' });
    const host = await call(svc.app, 'PUT', `/v1/admin/tenants/${t.id}/policy`, { headers: { ...admin, 'content-type': 'text/plain' }, body: 'dirs:\n  - { source: /etc, rights: [rpath] }\n' });
    expect(host.status).toBe(422);
    expect((await json(host)).error.message).toMatch(/in-memory directories only/);
    const reset = await call(svc.app, 'PUT', `/v1/admin/tenants/${t.id}/policy`, { headers: admin, json: { policy: null } });
    expect((await json(reset)).policy).toBeNull();
    expect((await json(await call(svc.app, 'GET', '/v1/limits', { key: t.key }))).run.maxima.wallMs).toBe(60_000);
    expect((await call(svc.app, 'PUT', '/v1/admin/tenants/ten_nope/policy', { headers: admin, body: 'limits: {}' })).status).toBe(404);
  });

  it('logs JSON lines with tenant and run ids, and never a key', async () => {
    const run = await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: hello, wait: 5 } }));
    const records = svc.logs.records();
    const access = records.find((r) => r.msg === 'request' && r.run === run.id);
    expect(access).toMatchObject({ method: 'POST', path: '/v1/runs', status: 201, tenant: tenantId });
    expect(records.find((r) => r.msg === 'run finished' && r.run === run.id)).toMatchObject({ tenant: tenantId, state: 'exited' });
    const all = svc.logs.lines.join('\n');
    expect(all).not.toContain(key);
    expect(all).not.toContain(ADMIN);
    expect(all).not.toMatch(/capsa_[A-Za-z0-9_-]{40}/);
  });
});
