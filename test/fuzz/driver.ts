/**
 * Runs the fuzzer (core.ts) in a worker thread, as a guest runs: the main thread serves the
 * worker's Casper calls with a real Broker over the run's bridge (the path a guest's calls take),
 * and watches the worker: a call that has not returned within `watchdogMs` is a hang, reported
 * with the call and the worker ended. Shared by `npm run fuzz` (main.ts) and test/fuzz/fuzz.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Broker } from '../../src/casper/broker.js';
import { SERVICES } from '../../src/casper/services/index.js';
import { createBridgeChannel } from '../../src/host/bridge.js';
import { casperHandler } from '../../src/host/casper-handler.js';
import { bridgeDispatcher, serveRun } from '../../src/host/functions.js';
import { newWorker } from '../../src/host/pool.js';
import { EPISODE_CALLS, FUZZ_SERVICES, HEARTBEAT_BYTES, prepareTmp, readHeartbeat, snapshotOutside, type Failure, type FuzzResult } from './core.js';
import type { FuzzWorkerData, FuzzWorkerMessage } from './worker.js';

export interface DriveOptions {
  seed: number;
  count: number;
  /** Replay: run call `replay`'s episode up to it, tracing every call. */
  replay?: number | undefined;
  /** A call that takes longer than this is a hang (default 20 s: on a loaded machine a slow call is not a hang). */
  watchdogMs?: number;
  maxFailures?: number;
  onProgress?: (calls: number) => void;
  onTrace?: (line: string) => void;
}

export interface DriveReport extends FuzzResult {
  seed: number;
  ms: number;
  /** Broker answers by "service cmd → errno": how deep the Casper requests got. */
  casper: Record<string, number>;
}

/** Runs one fuzz session; never throws for what the fuzzer finds, only reports it. */
export async function drive(o: DriveOptions): Promise<DriveReport> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-fuzz-'));
  prepareTmp(tmp);
  const outside = snapshotOutside(tmp);
  const extra: Failure[] = [];
  const hostFailure = (problem: string): void => { extra.push({ seed: o.seed, index: -1, call: '(host side)', args: '', problem }); };

  // Every service is granted; DNS may only ask a closed port on loopback.
  const broker = new Broker({
    grants: Object.fromEntries(FUZZ_SERVICES.map((s) => [s, {}])),
    services: SERVICES,
    config: { 'system.dns': { servers: ['127.0.0.1:9'], timeout: 20, tries: 1 } },
    timeoutMs: 2000,
    onServiceError: (service, e) => hostFailure(`casper service ${service} threw: ${(e as Error)?.stack ?? String(e)}`),
  });
  const casper: Record<string, number> = {};
  const xfer = broker.xfer.bind(broker);
  broker.xfer = async (...args) => {
    const r = await xfer(...args);
    const key = `${r.service} ${r.cmd} → ${r.needs ? 'needs' : r.errno}`;
    casper[key] = (casper[key] ?? 0) + 1;
    return r;
  };
  const channel = createBridgeChannel();
  const server = serveRun(channel, bridgeDispatcher({ casper: casperHandler(broker) }), (what, e) => hostFailure(`${what}: ${(e as Error)?.stack ?? String(e)}`));
  const heartbeat = new SharedArrayBuffer(HEARTBEAT_BYTES);
  const from = o.replay ?? 0;
  const data: FuzzWorkerData = {
    seed: o.seed, count: o.replay !== undefined ? 1 : o.count, from, tmp, bridge: channel.sab, heartbeat,
    trace: o.replay !== undefined, maxFailures: o.maxFailures ?? 10,
  };
  const started = performance.now();
  const worker = newWorker({ workerData: data }, new URL('./worker.ts', import.meta.url));
  const watchdogMs = o.watchdogMs ?? 20_000;

  let result: FuzzResult = { calls: 0, failures: [], perImport: {}, msPerImport: {} };
  try {
    result = await new Promise<FuzzResult>((resolve) => {
      let last = -1;
      let since = performance.now();
      const timer = setInterval(() => {
        const hb = readHeartbeat(heartbeat);
        if (!hb.inCall || hb.index !== last) { last = hb.inCall ? hb.index : -1; since = performance.now(); return; }
        if (performance.now() - since < watchdogMs) return;
        clearInterval(timer);
        void worker.terminate();
        resolve({ calls: hb.index - Math.floor(from / EPISODE_CALLS) * EPISODE_CALLS, perImport: {}, msPerImport: {}, failures: [{
          seed: o.seed, index: hb.index, call: hb.call.slice(0, hb.call.indexOf('(')), args: hb.call.slice(hb.call.indexOf('(') + 1, -1),
          problem: `hang: the call did not return within ${watchdogMs} ms`,
        }] });
      }, 200);
      worker.on('message', (m: FuzzWorkerMessage) => {
        if (m.type === 'progress') o.onProgress?.(m.calls);
        else if (m.type === 'trace') o.onTrace?.(m.line);
        else { clearInterval(timer); resolve(m.result); }
      });
      worker.on('error', (e) => {
        clearInterval(timer);
        const hb = readHeartbeat(heartbeat);
        resolve({ calls: 0, perImport: {}, msPerImport: {}, failures: [{ seed: o.seed, index: hb.index, call: hb.call, args: '', problem: `the fuzzer thread died: ${e.stack ?? String(e)}` }] });
      });
    });
  } finally {
    await worker.terminate();
    server.close();
  }
  // No call may have touched anything beside the mount, through an escaping symlink or otherwise.
  const after = snapshotOutside(tmp);
  if (after !== outside) hostFailure(`files beside the mount changed:\n--- before\n${outside}\n--- after\n${after}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  return { ...result, failures: [...result.failures, ...extra], seed: o.seed, ms: performance.now() - started, casper };
}

/** One failure as a replayable report. */
export function describeFailure(f: Failure): string {
  const replay = f.index >= 0 ? `\n  replay: npm run fuzz -- --seed ${f.seed} --replay ${f.index}` : '';
  return `call #${f.index} (seed ${f.seed}): ${f.call}(${f.args})\n  ${f.problem}${replay}`;
}
