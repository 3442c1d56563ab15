/** The fuzzer's thread: runs the calls (core.ts) while the main thread serves Casper and watches for hangs. */
import { parentPort, workerData } from 'node:worker_threads';
import { bridgeClient } from '../../src/host/functions.js';
import { runFuzz } from './core.js';

export interface FuzzWorkerData {
  seed: number;
  count: number;
  from: number;
  tmp: string;
  bridge: SharedArrayBuffer;
  heartbeat: SharedArrayBuffer;
  trace: boolean;
  maxFailures: number;
}

/** Messages the worker posts. */
export type FuzzWorkerMessage =
  | { type: 'progress'; calls: number }
  | { type: 'trace'; line: string }
  | { type: 'done'; result: ReturnType<typeof runFuzz> };

const d = workerData as FuzzWorkerData;
const post = (m: FuzzWorkerMessage): void => parentPort!.postMessage(m);
// Memory ops over the bridge are never asked for by the casper handler; the client still needs the callback.
const client = bridgeClient(d.bridge, () => undefined, 10_000);
const result = runFuzz({
  seed: d.seed, count: d.count, from: d.from, tmp: d.tmp, client, heartbeat: d.heartbeat,
  maxFailures: d.maxFailures,
  trace: d.trace ? (line) => post({ type: 'trace', line }) : undefined,
  onProgress: (calls) => post({ type: 'progress', calls }),
});
post({ type: 'done', result });
