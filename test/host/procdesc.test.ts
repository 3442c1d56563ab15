/**
 * Child guests end to end (capsicum.pdspawn on the worker pool): the privilege-separated grep, a
 * three-stage pipeline, a child's confinement (no preopens, no wider rights), process descriptors
 * (close, pdkill, poll with pipes and clocks), and the limits a run tree lives under: children end
 * with their run, and a fork bomb ends as a limit while the host keeps serving.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createHost, type Host, type RunRequest } from '../../src/host/host.js';
import { ERRNO } from '../../src/wasi/constants.js';

const guest = (name: string) => new Uint8Array(fs.readFileSync(new URL(`../../guests/build/${name}.wasm`, import.meta.url)));
const BUILD = new URL('../../guests/build', import.meta.url).pathname;
const PROCTEST = guest('proctest');
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bin = { guest: '/bin', host: BUILD, readonly: true };

describe('child guests', () => {
  let host: Host;
  beforeAll(async () => { host = await createHost({ workers: 3 }); });
  afterAll(async () => { await host.close(); });
  const proctest = (args: string[], extra: Partial<RunRequest> = {}) =>
    host.run({ module: PROCTEST, args, dirs: [bin], files: { '/data/secret.txt': 'secret' }, limits: { wallMs: 60_000 }, ...extra });

  it('privsep_grep: the parent opens the file, a child in capability mode with only the file and a pipe matches', async () => {
    const r = await host.run({
      module: guest('privsep_grep'), args: ['needle', '/data/f.txt'], limits: { wallMs: 60_000 },
      files: { '/data/f.txt': 'alpha\nneedle one\nbeta\nthe needle two\n', '/bin/privsep_grep.wasm': guest('privsep_grep') },
    });
    expect(text(r.stderr)).toBe('');
    expect(r).toMatchObject({ status: 'exited', exitCode: 0 });
    expect(text(r.stdout)).toBe('needle one\nthe needle two\n');
    expect(r.children).toEqual([expect.objectContaining({ pid: expect.any(Number), status: 'exited', exitCode: 0 })]);
    // No match: grep's status 1 comes back from the child through pdwait.
    const none = await host.run({
      module: guest('privsep_grep'), args: ['zebra', '/data/f.txt'], limits: { wallMs: 60_000 },
      files: { '/data/f.txt': 'alpha\n', '/bin/privsep_grep.wasm': guest('privsep_grep') },
    });
    expect(none).toMatchObject({ status: 'exited', exitCode: 1 });
  });

  it('pipeline: three children chained by pipes, the last writing to the run\'s stdout', async () => {
    const r = await host.run({ module: guest('pipeline'), args: ['/bin', 'cat', '|', 'uniq', '|', 'cat'], stdin: 'b\na\na\nc\nc\n', dirs: [bin], limits: { wallMs: 60_000 } });
    expect(text(r.stderr)).toBe('');
    expect(r).toMatchObject({ status: 'exited', exitCode: 0 });
    expect(text(r.stdout)).toBe('b\na\nc\n');
    expect(r.children?.map((c) => c.status)).toEqual(['exited', 'exited', 'exited']);
  });

  it('a child cannot open its parent\'s preopens (ENOTCAPABLE) nor widen a passed descriptor; its denials are audited with its pid', async () => {
    const r = await proctest(['spawn', '/bin/proctest.wasm', 'escape'], { audit: 'denied' });
    expect(r).toMatchObject({ status: 'exited', exitCode: 0 });
    expect(text(r.stdout)).toBe([
      `open /data/secret.txt: -1 errno ${ERRNO.NOTCAPABLE}`,
      `widen fd 1: -1 errno ${ERRNO.NOTCAPABLE}`,
      `widen fd 1 (host): errno ${ERRNO.NOTCAPABLE}`,
      'fd 1 read 0 write 1',
      'child pid-ok exit 0', ''].join('\n'));
    const pid = r.children![0]!.pid;
    const widen = r.audit.events.find((e) => e.call === 'fd_fdstat_set_rights');
    expect(widen).toMatchObject({ pid, decision: 'denied', errno: ERRNO.NOTCAPABLE });
  });

  it('close(pd) ends the child: its pipe reads EOF and its status says killed by SIGKILL', async () => {
    const r = await proctest(['closepd', '/bin/proctest.wasm']);
    expect(r).toMatchObject({ status: 'exited', exitCode: 0 });
    expect(text(r.stdout)).toBe('read after close(pd): 0\n');
    expect(r.children).toEqual([expect.objectContaining({ status: 'killed', signal: 9 })]);
  });

  it('pdkill ends the child with the signal, and pdwait reports it', async () => {
    const r = await proctest(['kill', '/bin/proctest.wasm']);
    expect(text(r.stdout)).toBe('child pid-ok signal 15\n');
    expect(r.children).toEqual([expect.objectContaining({ status: 'killed', signal: 15 })]);
  });

  it('poll() over a pipe, a process descriptor and a timeout', async () => {
    const r = await proctest(['poll', '/bin/proctest.wasm']);
    expect(text(r.stdout)).toBe([
      'poll pipe+pd: 1 pipe 0 pd 1',
      'poll empty pipe, 20 ms: 0',
      'poll pipe after write: 1 pipe 1',
      'child pid-ok exit 7', ''].join('\n'));
    // The children's CPU time is part of the run's.
    expect(r.usage.cpuMs).toBeGreaterThanOrEqual(r.children![0]!.usage.cpuMs);
  }, 60_000);
});

describe('a run tree ends with its run', () => {
  let host: Host;
  beforeAll(async () => { host = await createHost({ workers: 2 }); });
  afterAll(async () => { await host.close(); });

  it('a parent that exits leaves no child running (counting workers)', async () => {
    const r = await host.run({ module: PROCTEST, args: ['orphan', '/bin/proctest.wasm'], dirs: [bin], limits: { wallMs: 60_000 } });
    expect(r).toMatchObject({ status: 'exited', exitCode: 0 });
    expect(r.children).toHaveLength(3);
    for (const c of r.children!) expect(['killed', 'exited']).toContain(c.status);
    // The workers started for the children are gone; the pool is back to its size, all idle.
    await vi.waitFor(() => expect(host.stats()).toMatchObject({ workers: 2, busy: 0 }), { timeout: 30_000 });
  });
});

describe('fork bomb', () => {
  let host: Host;
  beforeAll(async () => { host = await createHost({ workers: 4, processes: { maxChildren: 2 } }); });
  afterAll(async () => { await host.close(); });

  it('ends with a limit status, and the host keeps serving other runs meanwhile', async () => {
    const bomb = host.run({ module: PROCTEST, args: ['bomb', '/bin/proctest.wasm'], dirs: [bin], limits: { cpuMs: 3000, wallMs: 60_000 } });
    // Another run is served while the bomb runs, on the worker the bomb cannot take.
    await vi.waitFor(() => expect(host.stats().busy).toBe(3), { timeout: 30_000 });
    const other = await host.run({ module: guest('hello'), args: ['you'] });
    expect(other).toMatchObject({ status: 'exited', exitCode: 0 });
    const r = await bomb;
    expect(r.status).toBe('timeout');
    expect(r.blame).toBe('guest');
    expect(r.children!.length).toBeGreaterThanOrEqual(2);
    await vi.waitFor(() => expect(host.stats()).toMatchObject({ workers: 4, busy: 0 }), { timeout: 30_000 });
    expect(await host.run({ module: guest('hello'), args: ['again'] })).toMatchObject({ status: 'exited', exitCode: 0 });
  }, 120_000);
});
