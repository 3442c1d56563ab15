/**
 * stdin from a host pipe (the CLI's `producer | capsa run`): the host thread pumps it into the run
 * (src/wasi/input-pump.ts), so the guest's thread never sits in read(2). Every byte arrives
 * whatever the writer's pace, poll_oneoff tells the truth about stdin, the end of input is seen,
 * and a run waiting on an idle pipe can still be cancelled or timed out. stdout to a pipe
 * (`capsa run … | consumer`) likewise (src/wasi/output-pump.ts): every byte, and a run whose
 * reader stopped reading still ends.
 *
 * The pipes are FIFOs whose guest end is opened blocking, as a shell's pipe is: a guest thread
 * that read or wrote it with read(2) or write(2) could not be terminated.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createHost, type Host, type RunEvent, type RunHandle } from '../../src/host/host.js';
import { command } from '../helpers/wat.js';
import { STATE_WAIT } from '../helpers/host.js';

const GUESTS = path.resolve(__dirname, '../../guests/build');
const cat = fs.readFileSync(path.join(GUESTS, 'cat.wasm'));
const stdinPoll = fs.readFileSync(path.join(GUESTS, 'stdin_poll.wasm'));
const stdinCount = fs.readFileSync(path.join(GUESTS, 'stdin_count.wasm'));
const text = (b: Uint8Array) => Buffer.from(b).toString();

let host: Host;
let dir: string;
let n = 0;
const open: number[] = [];
const controllers: AbortController[] = [];

beforeAll(async () => {
  host = await createHost({ workers: 2, limits: { max: { wallMs: 120_000, cpuMs: 120_000 } } });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-stdin-'));
});
afterEach(() => {
  for (const ac of controllers.splice(0)) ac.abort();
  for (const fd of open.splice(0)) { try { fs.closeSync(fd); } catch { /* closed by the test */ } }
});
afterAll(async () => {
  await host.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A FIFO with a blocking read end (for the guest) and, unless `withWriter` is false, a write end (for the test). */
function fifo(withWriter = true): { path: string; read: number; write: number | undefined } {
  const p = path.join(dir, `p${n++}`);
  execFileSync('mkfifo', [p]);
  // Opening the read end blocking would wait for a writer: open it non-blocking first, then the
  // writer, then the blocking read end the guest gets.
  const probe = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const write = fs.openSync(p, fs.constants.O_WRONLY);
  const read = fs.openSync(p, fs.constants.O_RDONLY);
  fs.closeSync(probe);
  open.push(read, write);
  if (!withWriter) { fs.closeSync(write); open.pop(); return { path: p, read, write: undefined }; }
  return { path: p, read, write };
}

/** Collects a streaming run's stdout as it comes; `result` resolves with its result. */
function watch(handle: RunHandle) {
  const seen = { stdout: '', audit: [] as string[] };
  const result = (async () => {
    for await (const ev of handle as AsyncIterable<RunEvent>) {
      if (ev.type === 'stdout') seen.stdout += text(ev.data);
      if (ev.type === 'audit') seen.audit.push(ev.event.call);
      if (ev.type === 'result') return ev.result;
    }
    throw new Error('the run ended without a result');
  })();
  return { seen, result };
}

describe('stdin from a pipe', () => {
  it('a writer that pauses between writes: the guest gets every byte, in order, then the end', async () => {
    const p = fifo();
    const run = watch(host.start({ module: cat, stdinFd: p.read }));
    for (const part of ['one\n', 'two\n', 'three\n']) {
      fs.writeSync(p.write!, part);
      // The next write waits until the guest has echoed this one: the writer is idle meanwhile.
      await vi.waitFor(() => expect(run.seen.stdout.endsWith(part)).toBe(true), STATE_WAIT);
    }
    fs.closeSync(p.write!);
    open.splice(open.indexOf(p.write!), 1);
    const r = await run.result;
    expect(r).toMatchObject({ status: 'exited', exitCode: 0 });
    expect(text(r.stdout)).toBe('one\ntwo\nthree\n');
  });

  it('more than the pump buffers at once (8 MiB from a fast writer): every byte, counted', async () => {
    const p = fifo();
    const bytes = 8 << 20;
    // The writer is another process, so that this thread (the pump's) never blocks on a full pipe.
    const writer = spawn('head', ['-c', String(bytes), '/dev/zero'], { stdio: ['ignore', p.write!, 'ignore'] });
    fs.closeSync(p.write!);
    open.splice(open.indexOf(p.write!), 1);
    const exited = new Promise((resolve) => writer.once('exit', resolve));
    const r = await host.run({ module: stdinCount, stdinFd: p.read });
    if (writer.exitCode === null) writer.kill();
    await exited;
    expect(r).toMatchObject({ status: 'exited', exitCode: 0 });
    expect(text(r.stdout)).toBe(`${bytes}\n`);
  });

  it('an empty pipe whose writer closes: end of input at once', async () => {
    const p = fifo(false);
    const r = await host.run({ module: cat, stdinFd: p.read });
    expect(r).toMatchObject({ status: 'exited', exitCode: 0 });
    expect(text(r.stdout)).toBe('');
  });

  it('poll_oneoff says stdin is not ready while the pipe is empty, and ready once data comes', async () => {
    const p = fifo();
    const run = watch(host.start({ module: stdinPoll, stdinFd: p.read }));
    await vi.waitFor(() => expect(run.seen.stdout).toBe('now: 0\n'), STATE_WAIT);
    fs.writeSync(p.write!, 'data\n');
    await vi.waitFor(() => expect(run.seen.stdout).toBe('now: 0\nwaited: 1 POLLIN\ndata\n'), STATE_WAIT);
    fs.closeSync(p.write!);
    open.splice(open.indexOf(p.write!), 1);
    const r = await run.result;
    expect(text(r.stdout)).toBe('now: 0\nwaited: 1 POLLIN\ndata\neof\n');
  });
});

/**
 * An ended run takes nothing more from the pipe: what is written after its end goes to the next
 * reader. (A guest thread left in read(2), which cannot be terminated, would take it.)
 */
async function nothingMoreTaken(p: { read: number; write: number | undefined }): Promise<void> {
  fs.writeSync(p.write!, 'for the next run\n');
  fs.closeSync(p.write!);
  open.splice(open.indexOf(p.write!), 1);
  const next = await host.run({ module: cat, stdinFd: p.read });
  expect(text(next.stdout)).toBe('for the next run\n');
}

describe('a run waiting on an idle stdin pipe ends, and takes nothing more from it', () => {
  it('cancel', async () => {
    const p = fifo();
    const ac = new AbortController();
    controllers.push(ac);
    const run = watch(host.start({ module: cat, stdinFd: p.read, audit: 'all', signal: ac.signal }));
    // The rights check of fd_read is audited before the read waits.
    await vi.waitFor(() => expect(run.seen.audit).toContain('fd_read'), STATE_WAIT);
    ac.abort();
    expect(await run.result).toMatchObject({ status: 'cancelled' });
    await nothingMoreTaken(p);
  });

  it('wall-clock limit', async () => {
    const p = fifo();
    const r = await host.run({ module: cat, stdinFd: p.read, limits: { wallMs: 500 } });
    expect(r).toMatchObject({ status: 'timeout', timeout: 'wall' });
    await nothingMoreTaken(p);
  });

  it('a pipe whose writer wrote and left before the run: the bytes, then the end', async () => {
    const p = fifo();
    fs.writeSync(p.write!, 'again\n');
    fs.closeSync(p.write!);
    open.splice(open.indexOf(p.write!), 1);
    const r = await host.run({ module: cat, stdinFd: p.read });
    expect(r).toMatchObject({ status: 'exited', exitCode: 0 });
    expect(text(r.stdout)).toBe('again\n');
    expect(host.stats()).toMatchObject({ busy: 0 });
  });
});

/** A FIFO the guest writes to through a blocking write end; the test reads it with `cat` in a child process. */
function outFifo(): { path: string; probe: number; write: number } {
  const p = path.join(dir, `o${n++}`);
  execFileSync('mkfifo', [p]);
  const probe = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const write = fs.openSync(p, fs.constants.O_WRONLY);
  open.push(probe, write);
  return { path: p, probe, write };
}

const FD_WRITE = '(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))';
/** Writes 64 KiB of 'x' to stdout forever. */
const flooding = command(`
  (memory.fill (i32.const 1024) (i32.const 120) (i32.const 65536))
  (i32.store (i32.const 0) (i32.const 1024)) (i32.store (i32.const 4) (i32.const 65536))
  (loop $l (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))) (br $l))`, FD_WRITE, '(memory (export "memory") 2)');

describe('stdout to a pipe', () => {
  it('4 MiB through a pipe read by another process: every byte', async () => {
    const p = outFifo();
    const reader = spawn('sh', ['-c', `wc -c < "${p.path}"`], { stdio: ['ignore', 'pipe', 'ignore'] });
    let counted = '';
    reader.stdout.on('data', (d: Buffer) => { counted += d.toString(); });
    const exited = new Promise((resolve) => reader.once('exit', resolve));
    const bytes = 4 << 20;
    const r = await host.run({ module: cat, stdin: new Uint8Array(bytes).fill(7), stdoutFd: p.write, limits: { outputBytes: bytes } });
    expect(r).toMatchObject({ status: 'exited', exitCode: 0 });
    for (const fd of open.splice(0)) fs.closeSync(fd);
    await exited;
    expect(counted.trim()).toBe(String(bytes));
  });

  it('a reader that stopped reading: the wall-clock limit ends the run, and nothing more reaches the pipe after its end', async () => {
    const p = outFifo();
    const r = await host.run({ module: flooding, stdoutFd: p.write, limits: { wallMs: 500 } });
    expect(r).toMatchObject({ status: 'timeout', timeout: 'wall' });
    // What the pipe holds now is all it will ever get: at most one pipe buffer (64 KiB), written
    // while the run was running. (A guest thread left in write(2) would add its write once the
    // pipe drains.) Read it through the FIFO's other read end, which does not block: every byte
    // until the pipe is empty, then the end once every writer has gone.
    fs.closeSync(p.write);
    open.splice(open.indexOf(p.write), 1);
    const buf = Buffer.alloc(1 << 20);
    let total = 0;
    await vi.waitFor(() => {
      for (;;) {
        let got: number;
        try {
          got = fs.readSync(p.probe, buf, 0, buf.length, null);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EAGAIN') throw new Error(`${total} bytes so far; a writer is still open`);
          throw e;
        }
        if (got === 0) return;
        total += got;
      }
    }, STATE_WAIT);
    expect(total).toBeLessThanOrEqual(64 << 10);
  });
});
