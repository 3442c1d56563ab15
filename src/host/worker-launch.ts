/**
 * Starting guest workers. Kept apart from the pool, with nothing heavy imported, so that the CLI
 * can start its worker before it loads the rest of capsa: a worker takes ~20 ms to boot Node and
 * load its own code, which then overlaps the main thread's loading, checking and compiling.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { createRing } from './worker/output-ring.js';
import type { FromWorker, WorkerData } from './worker/protocol.js';

// Built code runs the compiled worker; from the sources (tests, tsx) the worker registers tsx first.
const FROM_SOURCE = import.meta.url.endsWith('.ts');
// Deno runs TypeScript itself: only Node running the sources needs tsx in the worker.
const NEEDS_TSX = FROM_SOURCE && !(process.versions as Record<string, string | undefined>)['deno'];
const WORKER_URL = new URL(FROM_SOURCE ? './worker/guest-worker.ts' : './worker/guest-worker.js', import.meta.url);

/** Starts a worker thread on `url` (the guest worker by default), registering tsx first when Node runs the sources. */
export function newWorker(options: WorkerOptions, url: URL = WORKER_URL): Worker {
  if (!NEEDS_TSX) return new Worker(url, options);
  // Resolved here, not in the worker: a bare specifier there would resolve from the process's cwd.
  // (require.resolve would pick tsx's CommonJS build, which cannot be imported from a worker.)
  const pkg = createRequire(import.meta.url).resolve('tsx/package.json');
  const tsx = pathToFileURL(path.join(path.dirname(pkg), 'dist/esm/api/index.mjs')).href;
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { ...options, eval: true });
}

/** A guest worker being started: its thread, its output ring and phase cells, and its 'ready' (with its kernel thread id). */
export interface GuestWorker {
  worker: Worker;
  ring: SharedArrayBuffer;
  phase: SharedArrayBuffer;
  heapMb: number;
  ready: Promise<number | undefined>;
}

/** Starts a guest worker whose own JS heap is capped at `heapMb` (guests' linear memory lies outside it). */
export function startGuestWorker(heapMb: number): GuestWorker {
  const ring = createRing();
  const phase = new SharedArrayBuffer(8);
  const workerData: WorkerData = { ring, phase };
  const worker = newWorker({
    resourceLimits: { maxOldGenerationSizeMb: heapMb, maxYoungGenerationSizeMb: 16, stackSizeMb: 4 },
    stdout: false, stderr: false, workerData,
  });
  // Never what keeps the process alive: the pool's runs do that.
  worker.unref();
  // Listened for at once: a worker started early says 'ready' before anyone adopts it.
  const ready = new Promise<number | undefined>((resolve, reject) => {
    const onExit = (code: number) => reject(new Error(`the worker exited with code ${code} before it was ready`));
    const onMessage = (m: FromWorker) => {
      if (m.type !== 'ready') return;
      worker.off('message', onMessage).off('error', reject).off('exit', onExit);
      resolve(m.tid);
    };
    worker.on('message', onMessage).once('error', reject).once('exit', onExit);
  });
  ready.catch(() => {});
  return { worker, ring, phase, heapMb, ready };
}

/** The default cap of a guest worker's own JS heap, in MiB. */
export const DEFAULT_WORKER_HEAP_MB = 64;

let early: GuestWorker | undefined;

/** Starts one guest worker now, for the next pool that wants a worker of this heap size (the CLI's one run). */
export function prestartGuestWorker(heapMb = DEFAULT_WORKER_HEAP_MB): void {
  early ??= startGuestWorker(heapMb);
}

/** The worker prestartGuestWorker started, if one of `heapMb` is waiting; each is handed out once. */
export function takePrestartedWorker(heapMb: number): GuestWorker | undefined {
  const w = early;
  if (w === undefined || w.heapMb !== heapMb) return undefined;
  early = undefined;
  return w;
}
