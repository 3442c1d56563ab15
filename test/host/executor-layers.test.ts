// Each layer under an executor holds alone. A probe, preloaded into the executor with the runtime's
// own flag (node --import, through the operator option runtimeFlags), tries what a guest that broke
// out of V8's sandbox and capsa's rights table would try: read the service's data directory and
// its SQLite file, read outside its mounts, write to a read-only mount, reach a loopback port,
// spawn a process — from the executor's main thread and from a worker thread (guest workers are
// threads of the same process: --allow-worker must not widen what they may do).
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createHost, type HostOptions } from '../../src/host/host.js';
import { denoBinary } from '../../src/host/executor/sandbox.js';

const guest = (name: string) => fs.readFileSync(new URL(`../../guests/build/${name}.wasm`, import.meta.url));
const text = (b: Uint8Array) => new TextDecoder().decode(b);

let tmp: string;
let ro: string;
let rw: string;
let server: net.Server;
let port = 0;
let connections = 0;

// The probe: every attempt reports `allowed` or the error code that refused it.
const PROBE = `
import fs from 'node:fs';
import net from 'node:net';
import cp from 'node:child_process';
import { Worker, isMainThread, workerData, parentPort } from 'node:worker_threads';
const [data, db, outside, ro, port] = JSON.parse(fs.readFileSync(new URL('./targets.json', import.meta.url), 'utf8'));
const code = (e) => e?.code ?? e?.name ?? String(e);
const tryIt = (f) => { try { f(); return 'allowed'; } catch (e) { return code(e); } };
const connect = () => new Promise((resolve) => {
  const s = net.connect({ host: '127.0.0.1', port });
  s.once('connect', () => { s.destroy(); resolve('allowed'); });
  s.once('error', (e) => resolve(code(e)));
});
async function attempts() {
  return {
    readDataDir: tryIt(() => fs.readdirSync(data)),
    readSqlite: tryIt(() => fs.readFileSync(db)),
    readOutside: tryIt(() => fs.readFileSync(outside)),
    writeReadMount: tryIt(() => fs.writeFileSync(ro + '/pwned', 'x')),
    connectLoopback: await connect(),
    spawnProcess: tryIt(() => { const r = cp.spawnSync('/bin/sh', ['-c', 'echo pwned']); if (r.error) throw r.error; }),
  };
}
if (isMainThread) {
  const main = await attempts();
  const w = new Worker(new URL(import.meta.url), { workerData: { probe: true }, stdout: false, stderr: false });
  const worker = await new Promise((resolve) => { w.once('message', resolve); w.once('error', (e) => resolve({ error: code(e) })); });
  await w.terminate();
  process.stderr.write('PROBE ' + JSON.stringify({ main, worker }) + '\\n');
} else if (workerData?.probe) {
  // Only the probe's own worker: the preload may also run in the pool's guest workers.
  parentPort.postMessage(await attempts());
}
`;

interface Attempts { readDataDir: string; readSqlite: string; readOutside: string; writeReadMount: string; connectLoopback: string; spawnProcess: string }

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-layers-'));
  // A service's data directory with its store, and a file outside every mount.
  fs.mkdirSync(path.join(tmp, 'data'));
  fs.writeFileSync(path.join(tmp, 'data', 'capsa.db'), 'SQLite format 3\0 tenants and keys');
  fs.writeFileSync(path.join(tmp, 'secret.txt'), 'secret');
  ro = path.join(tmp, 'ro');
  rw = path.join(tmp, 'rw');
  fs.mkdirSync(ro);
  fs.mkdirSync(rw);
  fs.writeFileSync(path.join(ro, 'in.txt'), 'from the read mount\n');
  // The probe lives in the read mount: the only host files an executor may read besides capsa's.
  fs.writeFileSync(path.join(ro, 'probe.mjs'), PROBE);
  server = net.createServer((s) => { connections++; s.end(); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
  fs.writeFileSync(path.join(ro, 'targets.json'), JSON.stringify([path.join(tmp, 'data'), path.join(tmp, 'data', 'capsa.db'), path.join(tmp, 'secret.txt'), ro, port]));
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Starts an executor with the probe under the given layers; returns what the probe saw. */
async function probe(layers: { bubblewrap: boolean; permissions: boolean; runtime?: 'node' | 'deno' }): Promise<{ main: Attempts; worker: Attempts; layers: string[] }> {
  const probeUrl = pathToFileURL(path.join(ro, 'probe.mjs')).href;
  const lines: string[] = [];
  const options: HostOptions = {
    isolation: 'process', workers: 1,
    executors: {
      // No memory cgroup: it bounds memory, not access, and each access layer is tested alone here.
      count: 1, ...layers, isolation: 'best-effort', memoryMb: 0,
      mounts: [{ path: ro, write: false }, { path: rw, write: true }],
      // Each runtime's own preload flag.
      runtimeFlags: layers.runtime === 'deno' ? [`--preload=${probeUrl}`] : ['--import', probeUrl],
      onLog: (_level, msg) => lines.push(msg),
    },
  };
  const host = await createHost(options);
  try {
    await vi.waitFor(() => expect(lines.some((l) => l.includes('PROBE '))).toBe(true), { timeout: 20_000 });
    const line = lines.find((l) => l.includes('PROBE '))!;
    // The executor still runs guests, and host mounts work through the layers.
    const r = await host.run({ module: guest('cat'), args: ['/in/in.txt'], dirs: [{ guest: '/in', host: ro, readonly: true }] });
    expect(text(r.stdout)).toBe('from the read mount\n');
    const u = await host.run({ module: guest('uniq'), args: ['/in/in.txt', '/out/u.txt'], dirs: [{ guest: '/in', host: ro, readonly: true }, { guest: '/out', host: rw }] });
    expect(u).toMatchObject({ status: 'exited', exitCode: 0 });
    expect(fs.readFileSync(path.join(rw, 'u.txt'), 'utf8')).toBe('from the read mount\n');
    return { ...JSON.parse(line.slice(line.indexOf('PROBE ') + 6)) as { main: Attempts; worker: Attempts }, layers: host.executors()[0]!.layers };
  } finally {
    await host.close();
  }
}

describe('each layer refuses alone', () => {
  it('bubblewrap alone (no permission model): the files are not there, the mount is read-only, there is no network and no shell', async () => {
    const before = connections;
    const r = await probe({ bubblewrap: true, permissions: false });
    expect(connections).toBe(before);
    expect(r.layers).toEqual(['bubblewrap', 'capsicum-rights']);
    for (const who of [r.main, r.worker]) {
      // ENOENT: the mount namespace has no such file; EROFS: a read-only bind; ECONNREFUSED: the
      // new network namespace has a loopback of its own, where nothing listens. All bubblewrap's.
      expect(who).toEqual({
        readDataDir: 'ENOENT', readSqlite: 'ENOENT', readOutside: 'ENOENT', writeReadMount: 'EROFS',
        connectLoopback: 'ECONNREFUSED', spawnProcess: 'ENOENT',
      });
    }
  }, 60_000);

  it('the Node permission model alone (no bubblewrap): every file access and the spawn are ERR_ACCESS_DENIED, also in worker threads', async () => {
    const r = await probe({ bubblewrap: false, permissions: true });
    expect(r.layers).toEqual(['node-permission', 'capsicum-rights']);
    for (const who of [r.main, r.worker]) {
      expect(who).toEqual({
        readDataDir: 'ERR_ACCESS_DENIED', readSqlite: 'ERR_ACCESS_DENIED', readOutside: 'ERR_ACCESS_DENIED', writeReadMount: 'ERR_ACCESS_DENIED',
        // Node 20's model has no network permission: bubblewrap (or Deno) is what closes the network.
        connectLoopback: 'allowed',
        spawnProcess: 'ERR_ACCESS_DENIED',
      });
    }
  }, 60_000);

  it('neither layer: the probe gets everything (what the layers are for)', async () => {
    const r = await probe({ bubblewrap: false, permissions: false });
    expect(r.layers).toEqual(['capsicum-rights']);
    expect(r.main).toEqual({ readDataDir: 'allowed', readSqlite: 'allowed', readOutside: 'allowed', writeReadMount: 'allowed', connectLoopback: 'allowed', spawnProcess: 'allowed' });
    fs.rmSync(path.join(ro, 'pwned'), { force: true });
  }, 60_000);
});

// The deno package is an optional dependency (npm ci installs it); without its binary there is nothing to test.
const hasDeno = spawnSync(denoBinary(), ['--version']).status === 0;

describe.skipIf(!hasDeno)('Deno\'s permission model alone (no bubblewrap)', () => {
  it('refuses every file access, the spawn and the network: NotCapable, in the main thread and in workers', async () => {
    const before = connections;
    const r = await probe({ bubblewrap: false, permissions: true, runtime: 'deno' });
    expect(r.layers).toEqual(['deno-permission', 'capsicum-rights']);
    for (const who of [r.main, r.worker]) {
      expect(who).toEqual({
        readDataDir: 'NotCapable', readSqlite: 'NotCapable', readOutside: 'NotCapable', writeReadMount: 'NotCapable',
        connectLoopback: 'NotCapable', spawnProcess: 'NotCapable',
      });
    }
    expect(connections).toBe(before);
  }, 60_000);
});
