/** Run requests survive their JSON text: bigints, bytes, and tenant-chosen keys that look like tags. */
import { describe, expect, it } from 'vitest';
import { decodeTagged, encodeTagged, isBase64, toText } from '../../src/api/encoding.js';
import { decodeRequest, encodeRequest, runView, storedResult } from '../../src/api/runs/record.js';
import { jsonDepth } from '../../src/api/http.js';

const roundTrip = (v: unknown) => decodeTagged(JSON.parse(JSON.stringify(encodeTagged(v))));

describe('tagged JSON', () => {
  it('keeps bigints, bytes, nesting and look-alike keys', () => {
    const v = {
      rights: { base: 0xffff_ffff_ffff_ffffn, inheriting: 0n },
      argdata: { type: 'map', entries: [[{ type: 'str', value: 'k' }, { type: 'binary', value: new Uint8Array([0, 255]) }]] },
      env: { $t: 'bigint', v: '1', ['__proto__']: 'x' },
      list: [1, 'two', null, true],
    };
    const back = roundTrip(v) as typeof v;
    expect(back).toEqual(v);
    expect(Object.getPrototypeOf(back.env)).toBe(Object.prototype);
    expect(Object.hasOwn(back.env, '__proto__')).toBe(true);
  });

  it('drops undefined fields and refuses unknown tags', () => {
    expect(roundTrip({ a: undefined, b: 1 })).toEqual({ b: 1 });
    expect(() => decodeTagged({ $t: 'mystery' })).toThrow(/unknown tag/);
  });

  it('stores a request as versioned JSON', () => {
    const text = encodeRequest('args: [x]', { args: ['x'], stdin: new Uint8Array([1, 2]), stdioRights: 7n });
    expect(decodeRequest(text)).toEqual({ manifest: 'args: [x]', fields: { args: ['x'], stdin: new Uint8Array([1, 2]), stdioRights: 7n } });
    expect(() => decodeRequest('{"v":2}')).toThrow(/version/);
  });
});

describe('text or base64', () => {
  it('gives text for UTF-8 and base64 otherwise', () => {
    expect(toText(new TextEncoder().encode('héllo'))).toEqual({ data: 'héllo', encoding: 'utf8' });
    expect(toText(new Uint8Array([0xc3]))).toEqual({ data: 'ww==', encoding: 'base64' });
    expect(isBase64('aGk=')).toBe(true);
    expect(isBase64('aGk')).toBe(false);
    expect(isBase64('a b=')).toBe(false);
  });

  it('views a stored result, keeping files under the cap and listing the rest by size', () => {
    const base = { id: 'run_x', tenantId: 't', moduleId: 'm', state: 'exited' as const, request: '{}', createdAt: 0, startedAt: 1, finishedAt: 2, attempts: 1, cpuMs: 1, nodeId: null };
    const res = {
      status: 'exited' as const, blame: 'guest' as const, exitCode: 0, stdout: new Uint8Array([104, 105]), stderr: new Uint8Array([0xff]),
      files: { '/d/a': new Uint8Array(10), '/d/b': new Uint8Array(2 << 20) }, usage: { wallMs: 1, cpuMs: 1, peakMemoryBytes: 0 }, audit: { events: [], dropped: 0 },
    };
    const v = runView({ ...base, result: JSON.stringify(storedResult(res)) });
    expect(v).toMatchObject({ stdout: 'hi', stdoutEncoding: 'utf8', stderr: '/w==', stderrEncoding: 'base64', exitCode: 0, filesOmitted: { '/d/a': 10, '/d/b': 2 << 20 } });
    expect(v.files).toBeUndefined();
    expect(runView({ ...base, state: 'queued', result: null })).toMatchObject({ stdout: null, exitCode: null, finishedAt: '1970-01-01T00:00:00.002Z' });
  });
});

describe('jsonDepth', () => {
  it('counts nesting outside strings', () => {
    expect(jsonDepth('{"a":[1,{"b":2}]}')).toBe(3);
    expect(jsonDepth('"[[[[["')).toBe(0);
    expect(jsonDepth('["\\"[[", [1]]')).toBe(2);
    expect(jsonDepth('1')).toBe(0);
  });
});
