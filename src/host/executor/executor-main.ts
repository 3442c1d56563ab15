/**
 * An executor process: the engine's worker Pool in a process of its own, under the OS and runtime
 * sandboxes the engine started it in. It keeps compiled modules by id, runs what the engine sends,
 * and sends back output, audit events and ends. Host functions and Casper requests of its guests go
 * back to the engine (which holds the functions, the broker and the network) over the same channel.
 * It never opens the store and its environment holds nothing but what Node needs.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import process from 'node:process';
import { BridgeServer, createBridgeChannel, type BridgeCallContext } from '../bridge.js';
import { compiledModule, ModuleCache } from '../module-cache.js';
import { ModuleLimitError } from '../wasm-limits.js';
import { NetMemory } from '../net/layout.js';
import { NetOwner, SocketOpenError, type NetSpec } from '../net/owner.js';
import type { NetPlan } from '../net/remote.js';
import { Pool, type JobEnd } from '../pool.js';
import { ERRNO } from '../../wasi/constants.js';
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

/**
 * Runs' sockets: the engine binds and connects (this process has no network) and sends each
 * descriptor over the channel; a NetOwner here serves them to the guest as on a thread's run.
 */
interface NetRun {
  owner: NetOwner;
  plan: NetPlan;
  /** Descriptors of the plan still to come; the guest starts once none is. */
  missing: number;
  /** The run's 'run' message, when it came before its descriptors. */
  deferred?: Extract<ToExecutor, { t: 'run' }>;
  spec?: NetSpec;
  /** Why a socket the guest starts with could not be taken: the run ends with it. */
  failed?: string;
}
const nets = new Map<number, NetRun>();

function netRun(run: number, plan: NetPlan): void {
  const owner = new NetOwner(plan.grants, {
    connections: plan.connections, backlog: plan.backlog, maxBytes: plan.maxBytes, maxDatagrams: plan.maxDatagrams,
    audit: (entry) => send({ t: 'netaudit', run, entry }),
  });
  nets.set(run, { owner, plan, missing: plan.handles });
}

function adopt(m: Extract<ToExecutor, { t: 'socket' }>, handle: unknown): void {
  const n = nets.get(m.run);
  const answer = (a: { slot?: number; errno?: number; error?: string }) => { if (m.op !== undefined) send({ t: 'netres', op: m.op, ...a }); };
  if (!(handle instanceof net.Socket) && !(handle instanceof net.Server) && !(handle instanceof dgram.Socket)) {
    answer({ errno: ERRNO.BADF, error: `the socket of ${m.address} did not come with its descriptor` });
    return;
  }
  if (m.dgram && !(handle instanceof dgram.Socket)) {
    // A runtime whose node:child_process made something else of a datagram socket's descriptor.
    if (handle instanceof net.Socket) handle.destroy(); else handle.close();
    const error = `Cannot take the datagram socket of ${m.address || `slot ${m.slot}`}: it came as another kind of socket`;
    answer({ errno: ERRNO.NOTSUP, error });
    if (n && m.op === undefined) { n.failed ??= error; if (--n.missing === 0 && n.deferred) startRun(n.deferred); }
    return;
  }
  if (!n) {
    if (handle instanceof net.Socket) handle.destroy(); else handle.close();
    answer({ errno: ERRNO.CANCELED, error: `Cannot take the socket of ${m.address}: the run has ended` });
    return;
  }
  try {
    n.owner.adopt(m.slot, handle, m.address);
    answer({ slot: m.slot });
  } catch (e) {
    answer(e instanceof SocketOpenError ? { errno: e.errno, error: e.message } : { errno: ERRNO.IO, error: (e as Error).message });
    if (m.op === undefined) n.failed ??= (e as Error).message;
  }
  if (m.op === undefined && --n.missing === 0 && n.deferred) startRun(n.deferred);
}

function netOp(m: Extract<ToExecutor, { t: 'netop' }>): void {
  const owner = nets.get(m.run)?.owner;
  if (m.do === 'release') { owner?.release(m.slot); return; }
  try {
    if (!owner) throw new SocketOpenError(ERRNO.CANCELED, `Cannot ${m.what}: the run has ended`);
    send({ t: 'netres', op: m.op, slot: owner.reserve(m.what) });
  } catch (e) {
    send({ t: 'netres', op: m.op, errno: (e as SocketOpenError).errno ?? ERRNO.IO, error: (e as Error).message });
  }
}

const crashEnd = (message: string): JobEnd => ({ kind: 'stopped', reason: 'crashed', message, wallMs: 0, cpuMs: 0 });

function startRun(m: Extract<ToExecutor, { t: 'run' }>): void {
  const n = nets.get(m.run);
  if (n && n.missing > 0) { n.deferred = m; return; }
  if (n?.failed) { ended(m.run, crashEnd(`the executor cannot take the run's sockets: ${n.failed}`)); return; }
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
  if (n) {
    n.spec ??= n.owner.start(n.plan.preopened);
    // The NetOwner on this thread wakes the guest through the net memory's cell: the run's cell.
    m.spec = { ...m.spec, net: n.spec, waker: new NetMemory(n.spec.sab).wakerCell() };
  }
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
  nets.get(run)?.owner.close();
  nets.delete(run);
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

function onMessage(m: ToExecutor, handle?: unknown): void {
  switch (m.t) {
    case 'run': startRun(m); break;
    case 'cancel': {
      // A run still waiting for its descriptors ends here: it never reached the pool.
      const n = nets.get(m.run);
      if (!active.has(m.run) && n?.deferred) ended(m.run, { kind: 'stopped', reason: 'cancelled', message: 'cancelled before it started', wallMs: 0, cpuMs: 0 });
      active.get(m.run)?.abort.abort();
      break;
    }
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
    case 'sockets': netRun(m.run, m.plan); break;
    case 'socket': adopt(m, handle); break;
    case 'netop': netOp(m); break;
  }
}

// A message that comes with a descriptor is alone in its batch (see Executor.sendHandle).
process.on('message', (data: unknown, handle: unknown) => { for (const m of decodeBatch<ToExecutor>(data, wire)) onMessage(m, handle); });
// The engine gone (its end of the channel closed): nothing left to do here.
process.on('disconnect', () => process.exit(0));

await pool.start();
const beat = () => {
  const s = pool.stats();
  send({ t: 'beat', spawned: s.spawned, busy: s.busy, rssBytes: process.memoryUsage.rss() });
};
setInterval(beat, config.heartbeatMs ?? 500);
send({ t: 'ready', pid: process.pid, workers: pool.options.size });
