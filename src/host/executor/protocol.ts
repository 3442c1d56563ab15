/**
 * Messages between the engine and an executor process. They cross the child's IPC channel with
 * Node's 'advanced' serialization (the V8 wire format: binary, Uint8Array and bigint intact), and
 * each side sends its messages of one turn of its event loop as one array, so a busy executor
 * costs one message per turn rather than one per event.
 */
import type { ModuleCaps } from '../wasm-limits.js';
import type { JobEnd } from '../pool.js';
import type { AuditEvent } from '../result.js';
import type { GuestSpec } from '../worker/protocol.js';
import type { NetAuditEntry } from '../net/owner.js';
import type { NetPlan } from '../net/remote.js';

/** engine → executor */
export type ToExecutor =
  /** A run; `bytes` come with the first run of a module on this executor (or after `missing`). */
  | { t: 'run'; run: number; module: string; bytes?: Uint8Array; caps: ModuleCaps; spec: GuestSpec; bridge: boolean }
  | { t: 'cancel'; run: number }
  /**
   * The answer to a bridge call the guest made (`call` from the executor), with the CPU time (ms)
   * the engine has spent on the run's Casper requests so far: it counts against the run's CPU
   * limit, which the executor enforces while the run goes on.
   */
  | { t: 'reply'; run: number; call: number; data?: Uint8Array; error?: string; hostCpuMs?: number }
  /** A guest-memory access a host function asks for while its call waits. */
  | { t: 'mem'; run: number; call: number; op: number; ptr: number; len?: number; bytes?: Uint8Array }
  | { t: 'ping' }
  /**
   * Before a run with sockets (src/host/net/remote.ts): its net memory's plan. `plan.handles`
   * 'socket' messages follow; the executor starts the guest once it holds them all.
   */
  | { t: 'sockets'; run: number; plan: NetPlan }
  /**
   * Comes with a descriptor (a connected net.Socket or a listening net.Server, sent as the IPC
   * message's handle, alone in its batch): put it in slot `slot`. With `op`, answered by 'netres'.
   */
  | { t: 'socket'; run: number; slot: number; address: string; op?: number; dgram?: boolean }
  /** Holds a free slot for a socket the engine is about to open ('reserve'), or closes one ('release'). */
  | { t: 'netop'; run: number; op: number; do: 'reserve'; what: string }
  | { t: 'netop'; run: number; do: 'release'; slot: number };

/** executor → engine */
export type FromExecutor =
  | { t: 'ready'; pid: number; workers: number }
  /** Sent every heartbeat period while the executor's event loop turns. */
  | { t: 'beat'; spawned: number; busy: number; rssBytes: number }
  | { t: 'out'; run: number; fd: 1 | 2; data: Uint8Array }
  | { t: 'audit'; run: number; events: AuditEvent[] }
  | { t: 'end'; run: number; end: JobEnd }
  /** The executor no longer holds the module's bytes: send the run again with them. */
  | { t: 'missing'; run: number }
  /** A host function or Casper request of the guest, for the engine's handlers. */
  | { t: 'call'; run: number; call: number; data: Uint8Array }
  | { t: 'memres'; op: number; data?: Uint8Array; error?: string }
  /** The answer to a 'netop' reserve or a 'socket' with an op: the slot, or why not. */
  | { t: 'netres'; op: number; slot?: number; errno?: number; error?: string }
  /** A refusal a run's sockets recorded in the executor (a connection past the backlog…), for its audit trail. */
  | { t: 'netaudit'; run: number; entry: NetAuditEntry };

/**
 * The IPC channel's format. 'advanced' (Node's V8 serializer) where both ends are Node; 'json'
 * where the executor is Deno, whose V8 writes a serialization version Node's cannot read: then
 * each batch is one JSON string, bytes in base64 and bigints (rights) as decimal strings.
 */
export type WireFormat = 'advanced' | 'json';

/** A batch as it goes on the channel. */
export function encodeBatch(batch: readonly unknown[], format: WireFormat): unknown {
  if (format === 'advanced') return batch;
  return JSON.stringify(batch, function replacer(this: Record<string, unknown>, key: string, value: unknown) {
    const raw = this[key]; // before toJSON: a Buffer is still a Uint8Array here
    if (raw instanceof Uint8Array) return { $b: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') };
    if (typeof value === 'bigint') return { $n: value.toString() };
    return value;
  });
}

/** A batch as it came off the channel. */
export function decodeBatch<T>(data: unknown, format: WireFormat): T[] {
  if (format === 'advanced') return data as T[];
  return JSON.parse(data as string, (_key, value: unknown) => {
    if (value && typeof value === 'object') {
      const v = value as { $b?: string; $n?: string };
      if (typeof v.$b === 'string') return new Uint8Array(Buffer.from(v.$b, 'base64'));
      if (typeof v.$n === 'string') return BigInt(v.$n);
    }
    return value;
  }) as T[];
}
