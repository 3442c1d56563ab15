/**
 * The end of a run is the end of its CPU and memory use: after a hostile run is stopped, the
 * host process is back near its baseline. Each case runs its own host in a child process and
 * measures that process from /proc once the run has ended, so nothing else runs there.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Limits } from '../../src/host/limits.js';
import { command, wat } from '../helpers/wat.js';

const FIXTURE = new URL('./fixtures/run-then-idle.ts', import.meta.url).pathname;
const MiB = 1 << 20;
const TICK_MS = 1000 / 100; // USER_HZ is 100 on Linux

let tmp: string;
const children: ChildProcess[] = [];
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-terminate-')); });
afterEach(() => { for (const c of children.splice(0)) c.kill('SIGKILL'); });
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

interface Ended { status: string; blame: string; timeout?: string; message?: string; rssBefore: number; threadsBefore: number }

/** CPU time (user + system, ms), RSS (bytes) and thread count of a process, from /proc. */
function usage(pid: number): { cpuMs: number; rss: number; threads: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)![1]);
  return { cpuMs: (Number(f[11]) + Number(f[12])) * TICK_MS, rss: field('VmRSS') * 1024, threads: field('Threads') };
}

/** Runs `module` in a fresh host in a child process; resolves when the run has ended. */
async function runInChild(module: Uint8Array, limits: Partial<Limits>): Promise<{ child: ChildProcess; ended: Ended }> {
  const file = path.join(tmp, `m${children.length}-${Date.now()}.wasm`);
  fs.writeFileSync(file, module);
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, file, JSON.stringify(limits)], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  const line = await new Promise<string>((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the child exited with ${code} before the run ended`)));
  });
  return { child, ended: JSON.parse(line) as Ended };
}

/**
 * Waits until the child is back near where it was before the run: the stopped worker's thread
 * has exited (as many threads as before), the process is idle (under 5% of a core over a window
 * of at least a second: CPU shares alone mislead on a busy machine, where even a spinning thread
 * gets a fraction of a core) and its RSS is within `rssSlack` of before. On main, the stopped
 * guest kept its thread running for 15 s to hours, and tables added 600-800 MiB.
 */
async function backToBaseline(child: ChildProcess, ended: Ended, rssSlack = 96 * MiB): Promise<void> {
  let last = { ...usage(child.pid!), t: performance.now() };
  await vi.waitFor(() => {
    const now = { ...usage(child.pid!), t: performance.now() };
    expect(now.threads, 'threads (the stopped worker\'s must have exited)').toBe(ended.threadsBefore);
    const window = now.t - last.t;
    if (window < 1000) throw new Error('measuring');
    const share = (now.cpuMs - last.cpuMs) / window;
    last = now;
    expect(share, `CPU share over the last ${Math.round(window)} ms`).toBeLessThan(0.05);
    expect(now.rss - ended.rssBefore, 'RSS growth since before the run').toBeLessThan(rssSlack);
  }, { timeout: 15_000, interval: 100 });
}

// Each case starts a child with its own host and warm worker: slow on a busy machine.
describe('a stopped run stops using the host', { timeout: 60_000 }, () => {
  it('a loop of 64 MiB memory.fill is stopped at its CPU limit and its worker stops', async () => {
    const fill = command('(loop $l (memory.fill (i32.const 0) (i32.const 1) (i32.const 0x4000000)) (br $l))', '', '(memory (export "memory") 1024)');
    const { child, ended } = await runInChild(fill, { cpuMs: 1000, wallMs: 5000 });
    expect(ended).toMatchObject({ status: 'timeout', blame: 'guest' });
    await backToBaseline(child, ended);
  });

  it('a memory.grow(1) loop up to 256 MiB is stopped at its CPU limit and its worker stops', async () => {
    const grow = command('(loop $l (if (i32.ne (memory.grow (i32.const 1)) (i32.const -1)) (then (br $l)))) (loop $m (br $m))');
    const { child, ended } = await runInChild(grow, { cpuMs: 1000, wallMs: 3000 });
    expect(ended).toMatchObject({ status: 'timeout', blame: 'guest' });
    await backToBaseline(child, ended);
  });

  it('400 tables of 100,000 elements are refused before any work, and nothing keeps running', async () => {
    const tables = wat(`(module ${'(table 100000 funcref)'.repeat(400)} (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))`);
    const { child, ended } = await runInChild(tables, { cpuMs: 1000, tableElements: 1_000_000 });
    expect(ended).toMatchObject({ status: 'invalid_module', blame: 'guest' });
    await backToBaseline(child, ended);
  });

  it('a spinning guest (the happy case of termination) leaves nothing behind either', async () => {
    const { child, ended } = await runInChild(command('(loop $l (br $l))'), { cpuMs: 500 });
    expect(ended).toMatchObject({ status: 'timeout', timeout: 'cpu', blame: 'guest' });
    await backToBaseline(child, ended);
  });
});
