/**
 * Under process isolation the API process never hands a tenant's bytes to V8's compiler: uploads
 * and runs read a module's sections with capsa's bounded reader, and only the executors compile.
 * Every entry into the compiler in this (the API) process is counted while the requests go.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHost, type Host } from '../../src/host/host.js';
import { call, HELLO, startService, type Service } from './helpers.js';

const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
const name = (s: string) => [s.length, ...Buffer.from(s)];
/**
 * A WASI command whose sections are sound but whose _start V8 refuses (i32.add on an empty
 * stack): only a compiler finds the fault.
 */
const BAD_CODE = Uint8Array.from([...HEADER,
  0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type 0: () -> ()
  0x03, 0x02, 0x01, 0x00, // one function of type 0
  0x05, 0x03, 0x01, 0x00, 0x01, // one memory of 1 page
  0x07, 0x13, 0x02, ...name('_start'), 0x00, 0x00, ...name('memory'), 0x02, 0x00,
  0x0a, 0x05, 0x01, 0x03, 0x00, 0x6a, 0x0b, // body: i32.add, end
]);

let host: Host;
let svc: Service;
let key: string;
const compiled: string[] = [];
const restore: (() => void)[] = [];

/** Counts each call of `name` on WebAssembly from now on. */
function count(name: 'compile' | 'compileStreaming' | 'validate' | 'instantiate' | 'instantiateStreaming'): void {
  const real = WebAssembly[name] as (...a: unknown[]) => unknown;
  (WebAssembly as unknown as Record<string, unknown>)[name] = (...a: unknown[]) => { compiled.push(name); return real.apply(WebAssembly, a); };
  restore.push(() => { (WebAssembly as unknown as Record<string, unknown>)[name] = real; });
}

beforeAll(async () => {
  expect(WebAssembly.validate(BAD_CODE)).toBe(false);
  host = await createHost({ isolation: 'process', workers: 1, executors: { count: 1 } });
  svc = await startService({ host });
  ({ key } = await svc.tenant());
  for (const n of ['compile', 'compileStreaming', 'validate', 'instantiate', 'instantiateStreaming'] as const) count(n);
  const RealModule = WebAssembly.Module;
  const RealInstance = WebAssembly.Instance;
  WebAssembly.Module = new Proxy(RealModule, { construct(t, a) { compiled.push('Module'); return Reflect.construct(t, a) as object; } });
  WebAssembly.Instance = new Proxy(RealInstance, { construct(t, a) { compiled.push('Instance'); return Reflect.construct(t, a) as object; } });
  restore.push(() => { WebAssembly.Module = RealModule; WebAssembly.Instance = RealInstance; });
});

afterAll(async () => {
  for (const r of restore) r();
  await svc?.close();
  await host?.close();
});

const upload = (bytes: Uint8Array) => call(svc.app, 'POST', '/v1/modules', { key, body: bytes as Uint8Array<ArrayBuffer>, headers: { 'content-type': 'application/wasm' } });
const run = (module: string) => call(svc.app, 'POST', '/v1/runs', { key, json: { module, manifest: 'args: [world]\n', wait: 20 } });

describe('the API process compiles no module (isolation: process)', () => {
  it('uploads and runs hello.wasm: the executor compiled it, this process did not', async () => {
    compiled.length = 0;
    const up = await upload(HELLO);
    expect(up.status).toBe(201);
    const r = await run((await up.json() as { id: string }).id);
    const v = await r.json() as { status: string; stdout: string };
    expect(v).toMatchObject({ status: 'exited', stdout: 'hello world\n' });
    expect(compiled).toEqual([]);
  });

  it('a module only a compiler can fault is stored, and its run ends invalid_module (blame guest) with V8\'s reason', async () => {
    compiled.length = 0;
    const up = await upload(BAD_CODE);
    expect(up.status).toBe(201);
    const r = await run((await up.json() as { id: string }).id);
    const v = await r.json() as { status: string; blame: string; message: string };
    expect(v.status).toBe('invalid_module');
    expect(v.blame).toBe('guest');
    expect(v.message).toMatch(/not valid WebAssembly \(.*i32\.add/);
    expect(compiled).toEqual([]);
  });

  it('malformed framing is a 422 naming the fault, found without compiling', async () => {
    compiled.length = 0;
    // The export section claims two exports named "_start".
    const twice = Uint8Array.from([...HEADER, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02, 0x01, 0x00,
      0x07, 0x13, 0x02, ...name('_start'), 0x00, 0x00, ...name('_start'), 0x00, 0x00, 0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b]);
    for (const [bytes, why] of [
      [twice, /Not a valid WebAssembly module: export 1 at byte \d+ repeats the name "_start"/],
      [BAD_CODE.subarray(0, BAD_CODE.length - 3), /Not a valid WebAssembly module: .*truncated|claims \d+ bytes/],
      [Uint8Array.from([...HEADER, 0x03, 0x02, 0x01, 0x00]), /declares 1 function but has 0 function bodies/],
    ] as const) {
      const r = await upload(bytes);
      const text = await r.text();
      expect(r.status, text).toBe(422);
      expect(JSON.parse(text).error).toMatchObject({ code: 'invalid_module' });
      expect(JSON.parse(text).error.message).toMatch(why);
    }
    expect(compiled).toEqual([]);
  });
});
