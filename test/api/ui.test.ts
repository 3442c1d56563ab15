/**
 * What the dashboard relies on, over HTTP: /ui's strict headers and its bundle, the manifest check
 * it calls as you type, a run's limits, and the audit's explanation of each refusal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CAT, call, json, startService, waitRun, type Service } from './helpers.js';

let svc: Service;
let t: { id: string; key: string };
beforeAll(async () => {
  svc = await startService();
  t = await svc.tenant();
});
afterAll(async () => { await svc.close(); });

describe('/ui', () => {
  it('is one page whose scripts and styles come from this origin, under a CSP without inline script, never framed', async () => {
    const r = await svc.app.request('/ui');
    expect(r.status).toBe(200);
    const csp = r.headers.get('content-security-policy') ?? '';
    const directives = Object.fromEntries(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k, v]));
    expect(directives['default-src']).toEqual(["'none'"]);
    expect(directives['script-src']).toEqual(["'self'"]);
    expect(directives['style-src']).toEqual(["'self'"]);
    expect(directives['connect-src']).toEqual(["'self'"]);
    expect(directives['frame-ancestors']).toEqual(["'none'"]);
    expect(r.headers.get('x-frame-options')).toBe('DENY');
    const html = await r.text();
    // Every script has a src on this origin: none inline, none from elsewhere.
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.length).toBeGreaterThan(0);
    for (const [, attrs, body] of scripts) {
      expect(attrs).toMatch(/src="\/ui\//);
      expect(body!.trim()).toBe('');
    }
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/\son[a-z]+=/i);
  });

  it('serves its bundle, built from the repository, which never parses text as HTML', async () => {
    const js = await svc.app.request('/ui/app.js');
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    const code = await js.text();
    expect(code).toContain('/v1/runs');
    expect(code).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function/);
    // The key is kept in sessionStorage, never localStorage (it goes with the tab).
    expect(code).toContain('sessionStorage');
    expect(code).not.toContain('localStorage');
    const css = await svc.app.request('/ui/app.css');
    expect(css.status).toBe(200);
    expect(css.headers.get('content-type')).toMatch(/^text\/css/);
  });

  it('denies framing of API answers too', async () => {
    const r = await svc.app.request('/healthz');
    expect(r.headers.get('x-frame-options')).toBe('DENY');
  });
});

describe('POST /v1/manifests/check', () => {
  it('names every problem at its line and column, as POST /v1/runs would', async () => {
    const r = await call(svc.app, 'POST', '/v1/manifests/check', { key: t.key, json: { manifest: 'args: [a]\nlimits: { wall: 2 parsecs }\ndirz: []\n' } });
    expect(r.status).toBe(200);
    const body = await json(r);
    expect(body.valid).toBe(false);
    expect(body.problems).toEqual(expect.arrayContaining([
      expect.objectContaining({ line: 2, path: 'limits.wall' }),
      expect.objectContaining({ line: 3, col: 1, message: expect.stringContaining('did you mean "dirs"') }),
    ]));
  });

  it('marks what the policy refuses, and shows what a valid manifest grants', async () => {
    const over = await json(await call(svc.app, 'POST', '/v1/manifests/check', { key: t.key, json: { manifest: 'args: [a]\nlimits: { wall: 1h }\n' } }));
    expect(over.valid).toBe(false);
    expect(over.problems).toEqual([expect.objectContaining({ line: 2, policy: true, message: expect.stringContaining('exceeds the policy') })]);
    const ok = await json(await call(svc.app, 'POST', '/v1/manifests/check', { key: t.key, json: { manifest: 'args: [a]\ndirs:\n  - { guest: /data, source: memory, rights: rpath }\n' } }));
    expect(ok).toMatchObject({ valid: true, problems: [], grants: { args: ['a'], dirs: [{ guest: '/data', rights: ['rpath'] }], casper: [] } });
    expect(ok.grants.limits.wallMs).toBeGreaterThan(0);
  });

  it('needs a key and a manifest', async () => {
    expect((await call(svc.app, 'POST', '/v1/manifests/check', { json: { manifest: '' } })).status).toBe(401);
    expect((await call(svc.app, 'POST', '/v1/manifests/check', { key: t.key, json: {} })).status).toBe(422);
    expect((await call(svc.app, 'POST', '/v1/manifests/check', { key: t.key, json: { manifest: 'a', extra: 1 } })).status).toBe(422);
  });
});

describe('a run for the run page', () => {
  it('shows its limits, and its audit says what each refusal lacked and which manifest line grants it', async () => {
    const cat = await svc.upload(t.key, CAT);
    const manifest = 'args: [/data/in.txt]\nlimits: { wall: 5s }\ndirs:\n  - { guest: /data, source: memory, rights: [CAP_LOOKUP] }\n';
    const res = await call(svc.app, 'POST', '/v1/runs', { key: t.key, json: { module: cat, manifest, files: { '/data/in.txt': 'x\n' } } });
    expect(res.status).toBe(201);
    const run = await waitRun(svc.app, t.key, (await json(res)).id);
    expect(run.limits).toMatchObject({ wallMs: 5000, cpuMs: expect.any(Number), memoryBytes: expect.any(Number) });
    const lines = (await (await call(svc.app, 'GET', `/v1/runs/${run.id}/audit`, { key: t.key })).text()).trim().split('\n').map((l) => JSON.parse(l));
    const refused = lines.filter((e) => e.decision === 'denied');
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]).toMatchObject({
      call: 'fd_read',
      why: { missing: ['CAP_READ'], line: 4, col: 5, path: 'dirs[0]', grant: 'rights: [CAP_LOOKUP, CAP_READ]', note: expect.stringContaining('opened through /data') },
    });
    expect(lines.filter((e) => e.decision === 'allowed').every((e) => e.why === undefined)).toBe(true);
  });
});
