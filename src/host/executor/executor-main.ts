/**
 * An executor process: the engine's worker Pool in a process of its own, under the OS and runtime
 * sandboxes the engine started it in. It keeps compiled modules by id, runs what the engine sends,
 * and sends back output, audit events and ends. Host functions and Casper requests of its guests go
 * back to the engine (which holds the functions, the broker and the network) over the same channel.
 * It never opens the store and its environment holds nothing but what Node needs.
 */
import process from 'node:process';
import { BridgeServer, createBridgeChannel, type BridgeCallContext } from '../bridge.js';
import { compiledModule, ModuleCache } from '../module-cache.js';
import { ModuleLimitError } from '../wasm-limits.js';
import { Pool, type JobEnd } from '../pool.js';
import { decodeBatch, encodeBatch, type FromExecutor, type ToExecutor, type WireFormat } from './protocol.js';

const send0 = process.send?.bind(process);
if (!send0) throw new Error('the executor must be started by the engine, with an IPC channel');

const config = JSON.parse(process.argv[2] ?? '{}') as { workers?: number; cacheBytes?: number; heartbeatMs?: number; workerHeapMb?: number; wire?: WireFormat };
const wire = config.wire ?? 'advanced';

// Messages of one turn of the event loop leave as one array (see protocol.ts): flushed after the
// turn's I/O callbacks (setImmediate), so that runs ending together cost the engine one wake-up.
let outbox: FromExecutor[] = [];
const flush = () => {
  const batch = outbox;
  outbox = [];
  send0(encodeBatch(batch, wire));
};
const send = (m: FromExecutor) => {
  if (outbox.length === 0) setImmediate(flush);
  outbox.push(m);
};

const pool = new Pool({ size: config.workers ?? 1, maxQueue: 1 << 20, ...(config.workerHeapMb ? { workerHeapMb: config.workerHeapMb } : {}) });
const cache = new ModuleCache({ maxBytes: config.cacheBytes ?? 256 << 20 });

interface Active {
  abort: AbortController;
  /** CPU ms the engine spent on the run's Casper requests, as of its last reply. */
  hostCpuMs: number;
  bridge?: BridgeServer;
  calls: Map<number, { resolve(d: Uint8Array): void; reject(e: Error): void; ctx: BridgeCallContext }>;
}
const active = new Map<number, Active>();
let nextCall = 1;

const crashEnd = (message: string): JobEnd => ({ kind: 'stopped', reason: 'crashed', message, wallMs: 0, cpuMs: 0 });

function startRun(m: Extract<ToExecutor, { t: 'run' }>): void {
  let mod;
  try {
    mod = m.bytes ? cache.add(m.bytes, m.caps) : cache.get(m.module, m.caps);
  } catch (e) {
    // The engine read the module's sections but never compiled it: V8's verdict on its code is the guest's fault.
    const end: JobEnd = e instanceof ModuleLimitError
      ? { kind: 'stopped', reason: e.code === 'memory_limit' ? 'module_heap' : 'invalid_module', message: e.message, wallMs: 0, cpuMs: 0 }
      : crashEnd(`the executor cannot compile ${m.module}: ${(e as Error).message}`);
    send({ t: 'end', run: m.run, end });
    return;
  }
  if (!mod) { send({ t: 'missing', run: m.run }); return; }
  const a: Active = { abort: new AbortController(), hostCpuMs: 0, calls: new Map() };
  active.set(m.run, a);
  if (m.bridge) {
    // The guest's worker blocks on this bridge; each request is answered by the engine.
    const channel = createBridgeChannel();
    a.bridge = new BridgeServer(channel, (data, ctx) => new Promise<Uint8Array>((resolve, reject) => {
      const call = nextCall++;
      a.calls.set(call, { resolve, reject, ctx });
      send({ t: 'call', run: m.run, call, data });
    }));
    a.bridge.start();
    m.spec = { ...m.spec };
    void pool.submit({ ...job(m.run, a), module: compiledModule(mod), spec: m.spec, bridge: channel.sab }).then((end) => ended(m.run, end));
  } else {
    void pool.submit({ ...job(m.run, a), module: compiledModule(mod), spec: m.spec }).then((end) => ended(m.run, end));
  }
}

function job(run: number, a: Active) {
  return {
    signal: a.abort.signal,
    // The pool checks the run's CPU limit against its worker's clock plus this, while it runs.
    hostCpuMs: () => a.hostCpuMs,
    onOutput: (fd: 1 | 2, data: Uint8Array) => send({ t: 'out', run, fd, data }),
    onAudit: (events: import('../result.js').AuditEvent[]) => send({ t: 'audit', run, events }),
  };
}

function ended(run: number, end: JobEnd): void {
  const a = active.get(run);
  active.delete(run);
  a?.bridge?.close();
  for (const c of a?.calls.values() ?? []) c.reject(new Error('the run ended'));
  send({ t: 'end', run, end });
}

// Memory operations a host function in the engine asks for, while the guest waits in its call.
function memOp(m: Extract<ToExecutor, { t: 'mem' }>): void {
  const c = active.get(m.run)?.calls.get(m.call);
  if (!c) { send({ t: 'memres', op: m.op, error: 'the call is over' }); return; }
  const p = m.bytes ? c.ctx.writeMemory(m.ptr, m.bytes).then(() => undefined) : c.ctx.readMemory(m.ptr, m.len ?? 0);
  p.then((data) => send({ t: 'memres', op: m.op, ...(data ? { data } : {}) }), (e: unknown) => send({ t: 'memres', op: m.op, error: (e as Error).message }));
}

function onMessage(m: ToExecutor): void {
  switch (m.t) {
    case 'run': startRun(m); break;
    case 'cancel': active.get(m.run)?.abort.abort(); break;
    case 'reply': {
      const a = active.get(m.run);
      const c = a?.calls.get(m.call);
      if (!c) break;
      a!.calls.delete(m.call);
      if (m.hostCpuMs !== undefined) a!.hostCpuMs = m.hostCpuMs;
      if (m.error !== undefined) c.reject(new Error(m.error)); else c.resolve(m.data ?? new Uint8Array(0));
      break;
    }
    case 'mem': memOp(m); break;
    case 'ping': break;
  }
}

process.on('message', (data: unknown) => { for (const m of decodeBatch<ToExecutor>(data, wire)) onMessage(m); });
// The engine gone (its end of the channel closed): nothing left to do here.
process.on('disconnect', () => process.exit(0));

await pool.start();
const beat = () => {
  const s = pool.stats();
  send({ t: 'beat', spawned: s.spawned, busy: s.busy, rssBytes: process.memoryUsage.rss() });
};
setInterval(beat, config.heartbeatMs ?? 500);
send({ t: 'ready', pid: process.pid, workers: pool.options.size });
