/**
 * Host functions: embedder code that a guest imports. The guest calls synchronously from its worker;
 * the function runs on the host thread, may be async, and reaches guest memory through the bridge.
 */
import { ERRNO } from '../wasi/constants.js';
import { BridgeClient, BridgeError, BridgeServer, memoryRequestHandler, type BridgeChannel, type BridgeHandler } from './bridge.js';

/** What a host function gets besides the guest's arguments. */
export interface HostFunctionContext {
  /** Copies `len` bytes of guest memory at `ptr`. */
  read(ptr: number, len: number): Promise<Uint8Array>;
  /** Writes bytes into guest memory at `ptr`. */
  write(ptr: number, bytes: Uint8Array): Promise<void>;
  /** Reads a UTF-8 string of `len` bytes at `ptr`. */
  readString(ptr: number, len: number): Promise<string>;
}

/** A host function: i32/f32/f64 arguments arrive as numbers, i64 as bigints; return likewise. */
export type HostFunction = (ctx: HostFunctionContext, ...args: (number | bigint)[]) =>
  number | bigint | undefined | void | Promise<number | bigint | undefined | void>;

/** Host functions by import module, then by name: `{ env: { log: async (ctx, ptr, len) => 0 } }`. */
export type HostFunctions = Record<string, Record<string, HostFunction>>;

/** The names a run's guest may import, in a fixed order shared by host and worker. */
export function functionList(fns: HostFunctions | undefined): { module: string; name: string }[] {
  const out: { module: string; name: string }[] = [];
  for (const [module, table] of Object.entries(fns ?? {})) {
    for (const [name, fn] of Object.entries(table)) {
      if (typeof fn !== 'function') throw new TypeError(`functions.${module}.${name} must be a function`);
      out.push({ module, name });
    }
  }
  return out;
}

// Wire format: request = kind byte (BRIDGE_KIND.function), u32 index, u32 argc, then per argument
// a tag byte (0 number, 1 bigint) and 8 bytes (f64 or i64). Reply = tag (0 number, 1 bigint, 2
// nothing) and 8 bytes.
const NUM = 0, BIG = 1, VOID = 2;

function encodeCall(index: number, args: unknown[]): Uint8Array {
  const buf = new Uint8Array(9 + args.length * 9);
  const dv = new DataView(buf.buffer);
  dv.setUint8(0, BRIDGE_KIND.function);
  dv.setUint32(1, index, true);
  dv.setUint32(5, args.length, true);
  args.forEach((a, i) => {
    const o = 9 + i * 9;
    if (typeof a === 'bigint') { dv.setUint8(o, BIG); dv.setBigInt64(o + 1, a, true); } else { dv.setUint8(o, NUM); dv.setFloat64(o + 1, Number(a), true); }
  });
  return buf;
}

function decodeCall(buf: Uint8Array): { index: number; args: (number | bigint)[] } {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf.length < 9) throw new RangeError('malformed host function call');
  const index = dv.getUint32(1, true);
  const argc = dv.getUint32(5, true);
  if (buf.length !== 9 + argc * 9) throw new RangeError('malformed host function call');
  const args: (number | bigint)[] = [];
  for (let i = 0; i < argc; i++) {
    const o = 9 + i * 9;
    args.push(dv.getUint8(o) === BIG ? dv.getBigInt64(o + 1, true) : dv.getFloat64(o + 1, true));
  }
  return { index, args };
}

function encodeResult(v: unknown): Uint8Array {
  const buf = new Uint8Array(9);
  const dv = new DataView(buf.buffer);
  if (typeof v === 'bigint') { dv.setUint8(0, BIG); dv.setBigInt64(1, v, true); } else if (typeof v === 'number') { dv.setUint8(0, NUM); dv.setFloat64(1, v, true); } else if (v === undefined) { dv.setUint8(0, VOID); } else {
    throw new TypeError(`a host function returned ${typeof v}; return a number, a bigint or nothing`);
  }
  return buf;
}

function decodeResult(buf: Uint8Array): number | bigint | undefined {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const tag = dv.getUint8(0);
  return tag === BIG ? dv.getBigInt64(1, true) : tag === NUM ? dv.getFloat64(1, true) : undefined;
}

/**
 * Worker side: import objects whose functions block on the bridge until the host answers. A host
 * function that throws returns EIO (29) to the guest instead of hanging or crashing its worker.
 */
export function functionStubs(list: { module: string; name: string }[], client: BridgeClient): WebAssembly.Imports {
  const imports: Record<string, Record<string, (...args: unknown[]) => number | bigint | undefined>> = {};
  list.forEach(({ module, name }, index) => {
    (imports[module] ??= {})[name] = (...args: unknown[]) => {
      try {
        return decodeResult(client.call(encodeCall(index, args)));
      } catch (e) {
        if (e instanceof BridgeError) return ERRNO.IO;
        throw e;
      }
    };
  });
  return imports as WebAssembly.Imports;
}

/** Host side: answers one run's host function calls; `onError` hears about functions that threw. */
export function functionHandler(fns: HostFunctions, list: { module: string; name: string }[],
  onError: (what: string, e: unknown) => void): BridgeHandler {
  const decoder = new TextDecoder();
  return async (request, bridge) => {
    const { index, args } = decodeCall(request);
    const entry = list[index];
    const fn = entry ? fns[entry.module]?.[entry.name] : undefined;
    if (!entry || !fn) throw new RangeError(`no host function #${index}`);
    const ctx: HostFunctionContext = {
      read: (ptr, len) => bridge.readMemory(ptr, len),
      write: (ptr, bytes) => bridge.writeMemory(ptr, bytes),
      readString: async (ptr, len) => decoder.decode(await bridge.readMemory(ptr, len)),
    };
    try {
      return encodeResult(await fn(ctx, ...args));
    } catch (e) {
      onError(`${entry.module}.${entry.name}`, e);
      throw e;
    }
  };
}

/** The first byte of every bridge request says what it is for. */
export const BRIDGE_KIND = { function: 1, casper: 2 } as const;

/** The worker's end of the run's bridge; guest memory is reachable while a call waits. */
export function bridgeClient(sab: SharedArrayBuffer, memory: () => WebAssembly.Memory | undefined, timeoutMs: number): BridgeClient {
  // A short spin before sleeping: back-to-back calls (Casper round trips) then skip the futex
  // wake-up on this side, which costs tens of µs on a loaded VM; it spends at most ~20 µs of the
  // guest's own CPU time per call.
  return new BridgeClient({ sab }, {
    timeoutMs,
    spin: 20000,
    onMemoryRequest: memoryRequestHandler(() => {
      const m = memory();
      return m ? new Uint8Array(m.buffer) : new Uint8Array(0);
    }),
  });
}

/** Routes a bridge request to its handler by the request's first byte (BRIDGE_KIND). */
export function bridgeDispatcher(handlers: Partial<Record<keyof typeof BRIDGE_KIND, BridgeHandler>>): BridgeHandler {
  return (request, bridge) => {
    const kind = request[0];
    const handler = kind === BRIDGE_KIND.function ? handlers.function : kind === BRIDGE_KIND.casper ? handlers.casper : undefined;
    if (!handler) throw new RangeError(`no handler for bridge request kind ${kind}`);
    return handler(request, bridge);
  };
}

/** The host's end: one server per run, answering with `handler` (a bridgeDispatcher). */
export function serveRun(channel: BridgeChannel, handler: BridgeHandler, onError: (what: string, e: unknown) => void,
  opts: { maxRequestBytes?: number } = {}): BridgeServer {
  const server = new BridgeServer(channel, handler, { onError: (e) => onError('bridge', e), maxRequestBytes: opts.maxRequestBytes });
  server.start();
  return server;
}
