/**
 * The guest worker: one thread of the pool, running one guest at a time. It never touches the
 * network or the host's state; it gets a compiled module and a spec, commits output and audit
 * events to its slot's output ring (shared memory the pool drains, so that terminating this thread
 * loses none of them), and posts back an outcome.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PHASE_INSTANTIATING, PHASE_STARTED, STREAM_QUIET_MS, type FromWorker, type ToWorker, type WorkerData } from './protocol.js';
import { RecordKind, RingWriter } from './output-ring.js';
import { runGuest } from './run-guest.js';
import { threadId } from './thread-cpu.js';

const port = parentPort;
if (!port) throw new Error('guest-worker must run in a worker thread');
const post = (m: FromWorker) => port.postMessage(m);
const ring = new RingWriter((workerData as WorkerData).ring);
const phase = new Int32Array((workerData as WorkerData).phase);
const encoder = new TextEncoder();

port.on('message', (msg: ToWorker) => {
  if (msg.type !== 'run') return;
  const { id, spec } = msg;
  // A streaming consumer is woken on every write once the run has lasted STREAM_QUIET_MS (before,
  // the pool's clock drains the ring); a collected run's output is drained at its end.
  ring.eagerFrom = spec.stream ? performance.now() + STREAM_QUIET_MS : Infinity;
  const outcome = runGuest(msg.module, spec, {
    bridge: msg.bridge,
    proc: msg.proc,
    post,
    id,
    phase: (p) => { Atomics.store(phase, 0, id); Atomics.store(phase, 1, p === 'instantiating' ? PHASE_INSTANTIATING : PHASE_STARTED); },
    output(fd, chunk) {
      if (chunk.length) ring.write(fd === 1 ? RecordKind.stdout : RecordKind.stderr, chunk);
    },
    audit(e) {
      ring.write(RecordKind.audit, encoder.encode(JSON.stringify(e)));
    },
  });
  post({ type: 'done', id, outcome });
});

post({ type: 'ready', tid: threadId() });
