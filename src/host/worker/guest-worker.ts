/**
 * The guest worker: one thread of the pool, running one guest at a time. It never touches the
 * network or the host's state; it gets a compiled module and a spec, and posts back output,
 * audit events and an outcome.
 */
import { parentPort } from 'node:worker_threads';
import type { AuditEvent } from '../result.js';
import type { FromWorker, ToWorker } from './protocol.js';
import { runGuest } from './run-guest.js';
import { threadId } from './thread-cpu.js';

const port = parentPort;
if (!port) throw new Error('guest-worker must run in a worker thread');
const post = (m: FromWorker, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer ?? []);

const BATCH = 64 << 10;

port.on('message', (msg: ToWorker) => {
  if (msg.type !== 'run') return;
  const { id, spec } = msg;
  // Output is batched: one message per 64 KiB, or per write when streaming and a few ms have passed.
  const pending: Record<1 | 2, Uint8Array[]> = { 1: [], 2: [] };
  const size: Record<1 | 2, number> = { 1: 0, 2: 0 };
  let lastFlush = performance.now();
  let audits: AuditEvent[] = [];
  const take = (fd: 1 | 2): Uint8Array<ArrayBuffer> | undefined => {
    if (size[fd] === 0) return undefined;
    const data = new Uint8Array(size[fd]);
    let off = 0;
    for (const c of pending[fd]) { data.set(c, off); off += c.length; }
    pending[fd] = [];
    size[fd] = 0;
    return data;
  };
  const flush = (fd: 1 | 2) => {
    const data = take(fd);
    if (data) post({ type: 'output', id, fd, data }, [data.buffer]);
  };
  const flushAll = () => {
    flush(1); flush(2);
    if (audits.length) { post({ type: 'audit', id, events: audits }); audits = []; }
    lastFlush = performance.now();
  };
  const outcome = runGuest(msg.module, spec, {
    bridge: msg.bridge,
    phase: (phase) => post({ type: phase, id }),
    output(fd, chunk) {
      pending[fd].push(chunk.slice());
      size[fd] += chunk.length;
      if (size[fd] >= BATCH || (spec.stream && performance.now() - lastFlush > 5)) flushAll();
    },
    audit(e) {
      audits.push(e);
      if (audits.length >= 256 || (spec.stream && performance.now() - lastFlush > 5)) flushAll();
    },
  });
  const stdout = take(1), stderr = take(2);
  post({ type: 'done', id, outcome, ...(stdout ? { stdout } : {}), ...(stderr ? { stderr } : {}), ...(audits.length ? { audit: audits } : {}) },
    [stdout?.buffer, stderr?.buffer].filter((b): b is ArrayBuffer => b !== undefined));
});

post({ type: 'ready', tid: threadId() });
