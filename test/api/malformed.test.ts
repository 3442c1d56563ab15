/** Malformed input of every kind is a 4xx with a message in the error shape, never a 5xx. */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, call, foreignImportGuest, HELLO, startService, type Service } from './helpers.js';

let svc: Service;
let key: string;
let hello: string;

beforeAll(async () => {
  svc = await startService({ limits: { moduleBytes: 1 << 20 } });
  ({ key } = await svc.tenant());
  hello = await svc.upload(key, HELLO);
});
afterAll(async () => { await svc.close(); });

/** Checks the error shape and returns the error. */
async function refused(r: Response, status: number, code?: string): Promise<{ code: string; message: string; details?: any }> {
  const text = await r.text();
  expect(r.status, text).toBe(status);
  const body = JSON.parse(text);
  expect(Object.keys(body)).toEqual(['error']);
  expect(typeof body.error.message).toBe('string');
  expect(body.error.message.length).toBeGreaterThan(5);
  expect(text).not.toMatch(/at .*\.(ts|js):\d+/);
  if (code) expect(body.error.code).toBe(code);
  return body.error;
}

const run = (body: unknown, headers?: Record<string, string>) =>
  call(svc.app, 'POST', '/v1/runs', { key, ...(typeof body === 'string' ? { body, headers: { 'content-type': 'application/json', ...headers } } : { json: body }) });

describe('modules', () => {
  it('refuses bytes that are not WebAssembly', async () => {
    const e = await refused(await call(svc.app, 'POST', '/v1/modules', { key, body: new TextEncoder().encode('\0asm but not really'), headers: { 'content-type': 'application/wasm' } }), 422, 'invalid_module');
    expect(e.message).toMatch(/Not a valid WebAssembly module/);
    await refused(await call(svc.app, 'POST', '/v1/modules', { key, body: new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0xff]), headers: { 'content-type': 'application/wasm' } }), 422, 'invalid_module');
  });

  it('names each import capsa does not provide', async () => {
    const e = await refused(await call(svc.app, 'POST', '/v1/modules', { key, body: foreignImportGuest(), headers: { 'content-type': 'application/wasm' } }), 422, 'unknown_imports');
    expect(e.message).toContain('env.launch_missiles (function)');
    expect(e.message).not.toContain('fd_write');
    expect(e.details).toEqual([{ import: 'env.launch_missiles (function)', message: 'not provided by capsa' }]);
  });

  it('refuses empty bodies, JSON bodies, a multipart body without the field', async () => {
    await refused(await call(svc.app, 'POST', '/v1/modules', { key, headers: { 'content-type': 'application/wasm' } }), 400, 'bad_request');
    await refused(await call(svc.app, 'POST', '/v1/modules', { key, json: { module: 'AGFzbQ==' } }), 415, 'unsupported_media_type');
    const form = new FormData();
    form.append('other', new Blob([HELLO]));
    await refused(await call(svc.app, 'POST', '/v1/modules', { key, body: form }), 422, 'invalid_request');
    await refused(await call(svc.app, 'POST', '/v1/modules', { key, body: '--x\r\nbroken', headers: { 'content-type': 'multipart/form-data; boundary=x' } }), 400);
  });

  it('refuses modules above the size cap with 413, with or without Content-Length', async () => {
    const big = new Uint8Array((1 << 20) + (128 << 10));
    await refused(await call(svc.app, 'POST', '/v1/modules', { key, body: big, headers: { 'content-type': 'application/wasm', 'content-length': String(big.length) } }), 413, 'body_too_large');
    const stream = new ReadableStream({ start(c) { for (let i = 0; i < 20; i++) c.enqueue(new Uint8Array(64 << 10)); c.close(); } });
    const r = await svc.app.request('/v1/modules', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/wasm' }, body: stream, duplex: 'half' } as RequestInit);
    await refused(r, 413, 'body_too_large');
  });
});

describe('runs', () => {
  it('refuses malformed JSON with 400', async () => {
    for (const body of ['{', '{"module": }', 'nul', '[1,2', '\u00ff\u00fe']) {
      const e = await refused(await run(body), 400, 'malformed_json');
      expect(e.message).toMatch(/JSON|empty/);
    }
    await refused(await run(''), 400, 'malformed_json');
    await refused(await call(svc.app, 'POST', '/v1/runs', { key, body: new Uint8Array([0x7b, 0xff, 0x7d]), headers: { 'content-type': 'application/json' } }), 400, 'malformed_json');
  });

  it('refuses files an in-memory tree cannot hold with a 422 that says what to change', async () => {
    // 80 KB of body: one path 40,000 components deep (it used to crash the worker: host_error).
    const deep = await refused(await run({ module: hello, files: { ['/data' + '/a'.repeat(40_000)]: 'x' } }), 422, 'invalid_request');
    expect(deep.message).toMatch(/the path is 80005 bytes, 40001 levels deep; in-memory paths are at most 1024 bytes: use a shallower path or shorter names/);
    expect(deep.message.length).toBeLessThan(400);
    const long = await refused(await run({ module: hello, files: { [`/data/${'n'.repeat(300)}`]: 'x' } }), 422, 'invalid_request');
    expect(long.message).toMatch(/is 300 bytes; names are at most 255 bytes/);
    const many = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`/d/${i}`, '']));
    expect((await refused(await run({ module: hello, filesBase64: many }), 422, 'invalid_request')).message).toMatch(/10001 files and directories; an in-memory tree holds at most 9999: send fewer/);
    const big = await refused(await run({ module: hello, manifest: { limits: { files: 1024 } }, files: { '/data/in.txt': 'x'.repeat(1020) } }), 422, 'invalid_request');
    expect(big.message).toMatch(/the files take 1030 bytes with their names, above the files limit of 1024: send less or raise limits.files/);
  });

  it('refuses JSON nested too deep', async () => {
    const deep = '{"module":"x","manifest":' + '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_001);
    const e = await refused(await run(deep), 400, 'malformed_json');
    expect(e.message).toMatch(/nested/);
    let nested: unknown = 'x';
    for (let i = 0; i < 40; i++) nested = [nested];
    const arr = JSON.stringify({ module: hello, manifest: { args: nested } });
    await refused(await run(arr), 400, 'malformed_json');
  });

  it('refuses wrong types and unknown keys, naming each field', async () => {
    const e = await refused(await run({ module: 42, stdin: ['x'], wait: 'soon', bogus: true }), 422, 'invalid_request');
    const paths = e.details.map((d: { path: string }) => d.path);
    expect(paths).toEqual(expect.arrayContaining(['module', 'stdin', 'wait']));
    expect(e.message).toMatch(/bogus/);
    await refused(await run([]), 422, 'invalid_request');
    await refused(await run('"just a string"'), 422, 'invalid_request');
    await refused(await run({ module: 'sha256:xyz' }), 422, 'invalid_request');
    await refused(await run({ module: hello, wait: -1 }), 422, 'invalid_request');
    await refused(await run({ module: hello, stdinBase64: 'not base64!' }), 422, 'invalid_request');
    await refused(await run({ module: hello, stdin: 'a', stdinBase64: 'YQ==' }), 422, 'invalid_request');
    await refused(await run({ module: hello, files: { 'relative.txt': 'x' } }), 422, 'invalid_request');
    await refused(await run({ module: hello, files: { '/data/../etc/passwd': 'x' } }), 422, 'invalid_request');
    await refused(await run({ module: hello, files: { '/top': 'x' } }), 422, 'invalid_request');
    await refused(await run({ module: hello, audit: 'loud' }), 422, 'invalid_request');
    await refused(await run({}), 422, 'invalid_request');
    await refused(await call(svc.app, 'POST', '/v1/runs', { key, body: '{}', headers: { 'content-type': 'application/xml' } }), 415, 'unsupported_media_type');
  });

  it('gives manifest problems with line:col', async () => {
    const e = await refused(await run({ module: hello, manifest: 'args: [a\nlimits: {' }), 422, 'invalid_manifest');
    expect(e.details.length).toBeGreaterThan(0);
    expect(e.details[0]).toMatchObject({ line: expect.any(Number), col: expect.any(Number) });
    expect(e.details[0].line).toBeGreaterThan(0);

    const e2 = await refused(await run({ module: hello, manifest: 'args: [a]\nlimtis:\n  wall: 1s\nenv: 3\n' }), 422, 'invalid_manifest');
    expect(e2.details).toEqual(expect.arrayContaining([
      expect.objectContaining({ line: 2, col: 1, path: 'limtis', message: expect.stringContaining('did you mean "limits"') }),
      expect.objectContaining({ line: 4, col: 6, path: 'env' }),
    ]));
    expect(e2.message).toContain('manifest:2:1');

    const e3 = await refused(await run({ module: hello, manifest: { args: 'not a list', limits: { wall: 'forever' } } }), 422, 'invalid_manifest');
    expect(e3.details.map((d: { path: string }) => d.path)).toEqual(expect.arrayContaining(['args', 'limits.wall']));
    await refused(await run({ module: hello, manifest: 'module: other.wasm' }), 422, 'invalid_manifest');
    await refused(await run({ module: hello, manifest: `module: "sha256:${'1'.repeat(64)}"` }), 422, 'invalid_request');
  });

  it('refuses YAML bombs and deep nesting', async () => {
    const laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 9; i++) laughs.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
    const e = await refused(await run({ module: hello, manifest: `argdata:\n  ${laughs.join('\n  ')}\n` }), 422, 'invalid_manifest');
    expect(e.message).toMatch(/aliases|nodes/);
    await refused(await run({ module: hello, manifest: 'args: ' + '['.repeat(5000) + ']'.repeat(5000) }), 422, 'invalid_manifest');
  });

  it('refuses what the policy does not allow, naming each excess', async () => {
    const e = await refused(await run({ module: hello, manifest: 'limits: { wall: 10m, memory: 8GiB }\ndirs:\n  - { guest: /h, source: /etc, rights: [rpath] }\ncasper: { system.dns: {} }\n' }), 422, 'policy_violation');
    expect(e.message).toContain('limits.wall');
    expect(e.message).toContain('limits.memory');
    expect(e.message).toContain('/etc is not allowed');
    expect(e.message).toContain('casper.system.dns');
    expect(e.details).toHaveLength(4);
  });

  it('refuses bodies above the run cap with 413', async () => {
    const big = JSON.stringify({ module: hello, stdin: 'x'.repeat(3 << 20) });
    await refused(await run(big), 413, 'body_too_large');
  });
});

describe('everything else', () => {
  it('answers admin mistakes with 4xx', async () => {
    const admin = { authorization: `Bearer ${ADMIN}` };
    await refused(await call(svc.app, 'POST', '/v1/admin/tenants', { headers: { ...admin, 'content-type': 'application/json' }, body: '{' }), 400, 'malformed_json');
    await refused(await call(svc.app, 'POST', '/v1/admin/tenants', { headers: admin, json: {} }), 422, 'invalid_request');
    await refused(await call(svc.app, 'POST', '/v1/admin/tenants', { headers: admin, json: { name: 'ok', policy: 'limits: [' } }), 422, 'invalid_policy');
    const t = await svc.tenant();
    await refused(await call(svc.app, 'PUT', `/v1/admin/tenants/${t.id}/policy`, { headers: admin, body: 'casper: ' + '{a: '.repeat(100) + '}'.repeat(100) }), 422, 'invalid_policy');
    await refused(await call(svc.app, 'PUT', `/v1/admin/tenants/${t.id}/policy`, { headers: admin, json: { policy: 5 } }), 422, 'invalid_request');
    await refused(await call(svc.app, 'PUT', `/v1/admin/tenants/${t.id}/policy`, { headers: admin, body: 'x'.repeat(300 << 10) }), 413, 'body_too_large');
  });

  it('never answers 5xx to random bodies on any body route', async () => {
    const routes = ['/v1/runs', '/v1/runs:batch', '/v1/modules', '/v1/admin/tenants'];
    const value = fc.letrec((tie) => ({
      v: fc.oneof({ depthSize: 'small' }, fc.string(), fc.integer(), fc.boolean(), fc.constant(null), fc.array(tie('v'), { maxLength: 4 }), fc.dictionary(fc.constantFrom('module', 'manifest', 'stdin', 'files', 'wait', 'audit', 'runs', 'name', 'x'), tie('v'), { maxKeys: 4 })),
    })).v;
    await fc.assert(fc.asyncProperty(fc.constantFrom(...routes), fc.oneof(value.map((v) => JSON.stringify(v)), fc.string()), fc.constantFrom('application/json', 'application/wasm', 'text/plain', ''), async (route, body, type) => {
      const headers: Record<string, string> = { authorization: `Bearer ${route.includes('admin') ? ADMIN : key}` };
      if (type) headers['content-type'] = type;
      const r = await svc.app.request(route, { method: 'POST', headers, body });
      const text = await r.text();
      if (r.status >= 500) throw new Error(`${route} ${type} ${JSON.stringify(body)} → ${r.status} ${text}`);
      if (r.status >= 400) expect(JSON.parse(text).error.message).toBeTruthy();
    }), { numRuns: 300 });
    await fc.assert(fc.asyncProperty(fc.string({ minLength: 0, maxLength: 300 }), async (manifest) => {
      const r = await run({ module: hello, manifest });
      if (r.status >= 500) throw new Error(`${JSON.stringify(manifest)} → ${r.status} ${await r.text()}`);
      if (r.status === 201) await r.text();
    }), { numRuns: 200 });
  });
});
