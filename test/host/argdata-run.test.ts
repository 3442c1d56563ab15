// The argdata tree of a manifest reaches a real C guest (guests/src/argwalk.c): values, stdio fds,
// and files opened from a granted directory with exactly the stated rights.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHost, type Host } from '../../src/host/host.js';
import { DEFAULT_LIMITS } from '../../src/host/limits.js';
import { parseManifest } from '../../src/manifest/parse.js';
import { applyPolicy, OPEN_POLICY } from '../../src/manifest/policy.js';
import { requestFromManifest } from '../../src/manifest/to-request.js';
import { R } from '../../src/wasi/rights.js';

const argwalk = fs.readFileSync(new URL('../../guests/build/argwalk.wasm', import.meta.url));
const text = (b: Uint8Array) => new TextDecoder().decode(b);

let host: Host;
beforeAll(async () => { host = await createHost({ workers: 1 }); });
afterAll(async () => { await host.close(); });

const MANIFEST = `%TAG ! tag:nuxi.nl,2015:cloudabi/
---
argdata:
  input: !file { path: /in/words.txt, rights: [CAP_READ, CAP_FSTAT, CAP_SEEK] }
  logfile: !fd stdout
  nthreads: !!int 8
  ratio: 0.5
  verbose: true
  tags: [a, b]
dirs:
  - { guest: /in, source: memory, rights: rpath }
`;

describe('argdata end to end', () => {
  it('the guest walks its tree; the file fd holds exactly the stated rights', async () => {
    const m = applyPolicy(parseManifest(MANIFEST, 'argdata.yaml'), OPEN_POLICY, DEFAULT_LIMITS);
    const r = await host.run({ ...requestFromManifest(m), module: argwalk, files: { '/in/words.txt': 'first words\nsecond\n' } });
    expect(r.status).toBe('exited');
    const out = text(r.stdout);
    expect(out).toContain('str "nthreads"\n    int 8');
    expect(out).toContain('float 0.5');
    expect(out).toContain('bool true');
    expect(out).toMatch(/str "logfile"\n\s+fd 1 rights/);
    // fd 4: after stdio and the one directory; rights = CAP_READ | CAP_FSTAT | CAP_SEEK, nothing more.
    const want = (R.fd_read | R.fd_filestat_get | R.fd_seek | R.fd_tell).toString(16);
    expect(out).toContain(`fd 4 rights 0x${want}`);
    expect(out).toContain('> first words');
  });

  it('a file outside the granted directories, or wider than the directory passes on, is refused', () => {
    const outside = MANIFEST.replace('/in/words.txt, rights', '/etc/passwd, rights');
    expect(() => applyPolicy(parseManifest(outside, 'a.yaml'), OPEN_POLICY, DEFAULT_LIMITS)).toThrow(/\/etc\/passwd is not inside a granted directory/);
    const wider = MANIFEST.replace('[CAP_READ, CAP_FSTAT, CAP_SEEK]', '[CAP_READ, CAP_WRITE]');
    expect(() => applyPolicy(parseManifest(wider, 'a.yaml'), OPEN_POLICY, DEFAULT_LIMITS)).toThrow(/CAP_WRITE, which \/in does not pass on/);
    const fd = MANIFEST.replace('!fd stdout', '!fd 9');
    expect(() => applyPolicy(parseManifest(fd, 'a.yaml'), OPEN_POLICY, DEFAULT_LIMITS)).toThrow(/!fd 9 is not granted/);
  });

  it('the engine refuses the same at run time when a caller skips the manifest checks', async () => {
    const r = await host.run({
      module: argwalk, dirs: [{ guest: '/in', rights: { base: R.path_open, inheriting: R.fd_read } }], files: { '/in/w': 'x' },
      argdata: { type: 'file', path: '/in/w', rights: { base: R.fd_write, inheriting: 0n, names: [] } },
    });
    expect(r.status).toBe('host_error');
    expect(r.message).toMatch(/CAP_WRITE/);
  });

  it('a guest without argdata sees null', async () => {
    const r = await host.run({ module: argwalk });
    expect(text(r.stdout)).toBe('null\n');
  });
});

describe('init-only grants', () => {
  // cap_enter(), then fd_fdstat_get(3): the init-only /tmp grant is gone (EBADF), /in stays (fd 4).
  it('a grant marked init_only is revoked when the guest enters capability mode', async () => {
    const { command } = await import('../helpers/wat.js');
    const guest = command(`
      (drop (call $enter))
      (call $exit (i32.add (i32.mul (call $fdstat (i32.const 3) (i32.const 64)) (i32.const 100)) (call $fdstat (i32.const 4) (i32.const 64))))`,
    `(import "capsicum" "cap_enter" (func $enter (result i32)))
     (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fdstat (param i32 i32) (result i32)))
     (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))`);
    const yaml = 'dirs:\n  - { guest: /tmp, source: memory, rights: [rpath, wpath, cpath], init_only: true }\n  - { guest: /in, source: memory, rights: rpath }\n';
    const m = applyPolicy(parseManifest(yaml, 'init.yaml'), OPEN_POLICY, DEFAULT_LIMITS);
    const r = await host.run({ ...requestFromManifest(m), module: guest });
    expect(r.exitCode).toBe(8 * 100 + 0);
    const keep = applyPolicy(parseManifest(yaml.replace('init_only: true', 'init_only: false'), 'init.yaml'), OPEN_POLICY, DEFAULT_LIMITS);
    expect((await host.run({ ...requestFromManifest(keep), module: guest })).exitCode).toBe(0);
  });
});
