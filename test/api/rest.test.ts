/** What self-hosters expect of a REST service: CORS for the configured origins, OPTIONS, 405 with Allow, GET / → /ui. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, HELLO, json, startService, type Service } from './helpers.js';

let svc: Service;
let key: string;
beforeAll(async () => {
  svc = await startService({ store: 'fake', paused: true, app: { corsOrigins: ['https://app.example.com', 'http://localhost:5173'] } });
  key = (await svc.tenant()).key;
});
afterAll(async () => { await svc.close(); });

const ALLOWED = 'https://app.example.com';
const preflight = (path: string, origin: string, method = 'POST') => call(svc.app, 'OPTIONS', path, {
  headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'authorization, content-type' },
});

describe('CORS', () => {
  it('answers a preflight from an allowed origin with the path\'s methods and the headers clients send', async () => {
    const r = await preflight('/v1/runs', ALLOWED);
    expect(r.status).toBe(204);
    expect(r.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(r.headers.get('access-control-allow-methods')!.split(', ').sort()).toEqual(['GET', 'HEAD', 'OPTIONS', 'POST']);
    expect(r.headers.get('access-control-allow-headers')).toMatch(/Authorization/);
    expect(r.headers.get('access-control-allow-headers')).toMatch(/Content-Type/);
    expect(r.headers.get('access-control-max-age')).toBe('600');
    expect(r.headers.get('vary')).toMatch(/Origin/);
    // A path with a parameter.
    const one = await preflight('/v1/runs/run_x', 'http://localhost:5173', 'DELETE');
    expect(one.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
    expect(one.headers.get('access-control-allow-methods')!.split(', ').sort()).toEqual(['DELETE', 'GET', 'HEAD', 'OPTIONS']);
  });

  it('an allowed origin\'s requests get Access-Control-Allow-Origin, errors included; the key still decides', async () => {
    const ok = await call(svc.app, 'GET', '/v1/limits', { key, headers: { origin: ALLOWED } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(ok.headers.get('access-control-expose-headers')).toMatch(/Retry-After/);
    const denied = await call(svc.app, 'GET', '/v1/limits', { headers: { origin: ALLOWED } });
    expect(denied.status).toBe(401);
    expect(denied.headers.get('access-control-allow-origin')).toBe(ALLOWED);
  });

  it('gives nothing to another origin: no CORS header on the preflight or the request', async () => {
    for (const origin of ['https://evil.example', 'https://app.example.com.evil.example', 'null', 'http://app.example.com']) {
      const p = await preflight('/v1/runs', origin);
      expect(p.status).toBe(204);
      for (const h of ['access-control-allow-origin', 'access-control-allow-methods', 'access-control-allow-headers']) expect(p.headers.get(h)).toBeNull();
      const r = await call(svc.app, 'GET', '/v1/limits', { key, headers: { origin } });
      expect(r.status).toBe(200);
      expect(r.headers.get('access-control-allow-origin')).toBeNull();
    }
  });

  it('without --cors-origin no origin gets CORS headers', async () => {
    const plain = await startService({ store: 'fake', paused: true });
    try {
      const p = await call(plain.app, 'OPTIONS', '/v1/runs', { headers: { origin: ALLOWED, 'access-control-request-method': 'POST' } });
      expect(p.headers.get('access-control-allow-origin')).toBeNull();
      expect(p.headers.get('allow')).toMatch(/POST/);
    } finally {
      await plain.close();
    }
  });
});

describe('methods', () => {
  it('a known path with the wrong method is 405 with Allow, in the error shape', async () => {
    for (const [method, path, allow] of [
      ['PUT', '/v1/runs', ['GET', 'HEAD', 'OPTIONS', 'POST']],
      ['PATCH', '/v1/runs/run_x', ['DELETE', 'GET', 'HEAD', 'OPTIONS']],
      ['GET', '/v1/runs:batch', ['OPTIONS', 'POST']],
      ['POST', '/healthz', ['GET', 'HEAD', 'OPTIONS']],
      ['DELETE', '/v1/admin/tenants/ten_x/quotas', ['OPTIONS', 'PUT']],
    ] as const) {
      const r = await call(svc.app, method, path, { key });
      expect(r.status, `${method} ${path}`).toBe(405);
      expect(r.headers.get('allow')!.split(', ').sort()).toEqual([...allow]);
      const e = (await json(r)).error;
      expect(e.code).toBe('method_not_allowed');
      expect(e.message).toContain(method);
    }
  });

  it('an unknown path is still 404, whatever the method; OPTIONS on it too', async () => {
    for (const method of ['GET', 'PUT', 'OPTIONS']) {
      const r = await call(svc.app, method, '/v1/nothing/here', { key });
      expect(r.status).toBe(404);
      expect(r.headers.get('allow')).toBeNull();
    }
    expect((await call(svc.app, 'GET', '/v1/runs/run_x/extra', { key })).status).toBe(404);
  });

  it('OPTIONS on a known path (no CORS) is 204 with Allow', async () => {
    const r = await call(svc.app, 'OPTIONS', '/v1/modules');
    expect(r.status).toBe(204);
    expect(r.headers.get('allow')!.split(', ').sort()).toEqual(['GET', 'HEAD', 'OPTIONS', 'POST']);
  });

  it('GET / redirects to /ui', async () => {
    const r = await call(svc.app, 'GET', '/');
    expect(r.status).toBe(302);
    expect(r.headers.get('location')).toBe('/ui');
  });
});

describe('stdin and files limits, apart from the body limit', () => {
  it('refuses stdin or files above their own limits (413 naming the field), and takes them above the JSON body limit', async () => {
    const s = await startService({ store: 'fake', paused: true, limits: { runBodyBytes: 4096, stdinBytes: 64 << 10, filesBytes: 32 << 10 } });
    try {
      const k = (await s.tenant()).key;
      const module = await s.upload(k, HELLO);
      const post = (body: object) => call(s.app, 'POST', '/v1/runs', { key: k, json: { module, ...body } });
      // 50 KiB of stdin, well above the 4 KiB body limit: accepted.
      expect((await post({ stdin: 'x'.repeat(50 << 10) })).status).toBe(201);
      expect((await post({ stdinBase64: Buffer.alloc(60 << 10, 1).toString('base64') })).status).toBe(201);
      const okFiles = await post({ files: { '/data/a': 'y'.repeat(16 << 10), '/data/b': 'z'.repeat(16 << 10) } });
      expect(okFiles.status, await okFiles.clone().text()).toBe(201);
      // One byte over each.
      const over = await post({ stdin: 'x'.repeat((64 << 10) + 1) });
      expect(over.status).toBe(413);
      const e = (await json(over)).error;
      expect(e.code).toBe('body_too_large');
      expect(e.message).toMatch(/stdin is 64\.0 KiB; the service takes at most 64 KiB of stdin/);
      expect(e.details).toEqual([{ path: 'stdin', message: `above ${64 << 10} bytes` }]);
      // Multi-byte text counts in bytes, not characters.
      expect((await post({ stdin: 'é'.repeat((32 << 10) + 1) })).status).toBe(413);
      const b64 = await post({ stdinBase64: Buffer.alloc((64 << 10) + 1).toString('base64') });
      expect(b64.status).toBe(413);
      expect((await json(b64)).error.details[0].path).toBe('stdinBase64');
      const files = await post({ files: { '/data/a': 'y'.repeat(16 << 10) }, filesBase64: { '/data/b': Buffer.alloc((16 << 10) + 1).toString('base64') } });
      expect(files.status).toBe(413);
      expect((await json(files)).error.message).toMatch(/files add up to 32\.0 KiB/);
      // The rest of the body still has the JSON limit.
      expect((await post({ manifest: `# ${'m'.repeat(200 << 10)}\n` })).status).toBe(413);
      const lim = await json(await call(s.app, 'GET', '/v1/limits', { key: k }));
      expect(lim.api).toMatchObject({ runBodyBytes: 4096, stdinBytes: 64 << 10, filesBytes: 32 << 10 });
      // Nothing refused was stored.
      expect((await json(await call(s.app, 'GET', '/v1/runs', { key: k }))).items).toHaveLength(3);
    } finally {
      await s.close();
    }
  });
});

describe('--cors-origin', () => {
  it('takes origins (scheme, host, port) and *; refuses paths, other schemes and garbage', async () => {
    const { checkOrigins } = await import('../../src/api/methods.js');
    expect(checkOrigins(['https://app.example.com', 'http://localhost:5173', '*'])).toEqual(['https://app.example.com', 'http://localhost:5173', '*']);
    for (const bad of ['https://app.example.com/path', 'ftp://x.example', 'app.example.com', '']) expect(() => checkOrigins([bad]), bad).toThrow(/--cors-origin/);
  });
});
