/**
 * Sync bridge: a guest worker makes *blocking* calls that are served by *asynchronous* code on the
 * host thread, over one SharedArrayBuffer.
 *
 * Layout: a 64-byte Int32 control area followed by the data area (`bufferBytes`).
 *
 * The channel is half-duplex and turn-based. The STATE word says whose turn it is; only the side whose
 * turn it is touches the other control words or the data area, and every hand-over is a seq-cst
 * Atomics operation on STATE, which publishes the plain writes that preceded it.
 *
 *   worker's turn: IDLE, REQ_ACK, MEM_OP, REPLY
 *   host's turn:   REQ, HANDLING, MEM_DONE, REPLY_ACK, BUSY
 *
 *   IDLE ──worker writes request chunk──▶ REQ ──host copies──▶ REQ_ACK ──▶ REQ … (one round per chunk)
 *   REQ (last chunk) ──host──▶ HANDLING ──handler needs guest memory──▶ MEM_OP ──worker──▶ MEM_DONE ──▶ HANDLING
 *   HANDLING ──handler settled──▶ REPLY ──worker──▶ REPLY_ACK ──▶ REPLY … ; last REPLY ──worker──▶ IDLE
 *
 * BUSY is held by the host only inside synchronous code while it copies to/from the data area. The
 * worker gives up (timeout) by CAS-ing any state other than BUSY back to IDLE and notifying; the host
 * then drops the call, so a late reply can never land in a later call's buffer. close() ORs CLOSED_BIT
 * into STATE, which makes every later CAS fail and wakes every waiter: nobody can miss it.
 */

/** Shared state created on the host side and handed to the worker (workerData or postMessage). */
export interface BridgeChannel {
  sab: SharedArrayBuffer;
}

/** Why a bridge operation failed, errno-style, so callers can branch without parsing messages. */
export type BridgeErrorCode =
  | 'timeout' // the host did not answer within the deadline
  | 'host_error' // the host handler threw or rejected
  | 'closed' // the server was closed
  | 'protocol' // the other side broke the protocol (or reset the channel after garbage)
  | 'memory_fault' // the worker could not perform a memory op (e.g. out of bounds)
  | 'cancelled'; // the call a memory op belonged to is over (the worker gave up, or its reply already went out)

/** Error thrown by BridgeClient.call and rejected by host-side memory ops; `code` is stable, `message` is for humans. */
export class BridgeError extends Error {
  override name = 'BridgeError';
  constructor(
    readonly code: BridgeErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A guest-memory access the host asks the worker to perform while the worker is blocked in call(). */
export type MemoryOp =
  | { kind: 'read'; ptr: number; len: number }
  /** `bytes` may be a view of the shared buffer: copy it, don't keep it. */
  | { kind: 'write'; ptr: number; bytes: Uint8Array };

/** The handler's reach into the blocked guest's memory; ops issued before the reply goes out run before it, later ones reject 'cancelled'. */
export interface BridgeCallContext {
  readMemory(ptr: number, len: number): Promise<Uint8Array>;
  writeMemory(ptr: number, bytes: Uint8Array): Promise<void>;
}

/** Host-side request handler; whatever it throws becomes the worker's BridgeError('host_error'). */
export type BridgeHandler = (request: Uint8Array, ctx: BridgeCallContext) => Promise<Uint8Array> | Uint8Array;

// ---------------------------------------------------------------------------------------------------
// Layout and states

const HEADER_BYTES = 64;
const HEADER_INTS = HEADER_BYTES / 4;
const DEFAULT_BUFFER_BYTES = 64 * 1024;
// Small enough to exercise chunking in tests, big enough for a truncated error message.
const MIN_BUFFER_BYTES = 64;

const STATE = 0;
const SEQ = 1; // call sequence number, set by the worker per call, echoed by the host
const KIND = 2; // REPLY: status; MEM_OP: op kind; MEM_DONE: status
const TOTAL = 3; // total length of the message / memory op this chunk belongs to
const OFFSET = 4; // offset of this chunk within TOTAL
const LEN = 5; // bytes of this chunk in the data area
const PTR = 6; // guest address of a memory op (u32 stored as i32)

const S_IDLE = 0;
const S_REQ = 1;
const S_REQ_ACK = 2;
const S_HANDLING = 3;
const S_MEM_OP = 4;
const S_MEM_DONE = 5;
const S_REPLY = 6;
const S_REPLY_ACK = 7;
const S_BUSY = 8;
const CLOSED_BIT = 1 << 30;
const WORKER_TURN = (1 << S_IDLE) | (1 << S_REQ_ACK) | (1 << S_MEM_OP) | (1 << S_REPLY);

const STATUS_OK = 0;
const STATUS_ERR = 1;
const OP_READ = 0;
const OP_WRITE = 1;

const MAX_I32 = 0x7fffffff;

function isWorkerTurn(s: number): boolean {
  return s >= 0 && s < 31 && ((WORKER_TURN >>> s) & 1) === 1;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// Whatever a handler throws must still become a message: getters and toString may throw too.
function errorMessage(e: unknown): string {
  try {
    return e instanceof Error ? String(e.message || e.name) : String(e);
  } catch {
    return 'unprintable error';
  }
}

// TextDecoder copies anyway; slicing first keeps us off engines that refuse shared views.
function decodeShared(view: Uint8Array, len: number): string {
  return decoder.decode(view.slice(0, len));
}

function views(channel: BridgeChannel): { ctl: Int32Array; data: Uint8Array } {
  const sab: unknown = channel?.sab;
  if (!(sab instanceof SharedArrayBuffer)) throw new TypeError('bridge channel: sab must be a SharedArrayBuffer');
  if (sab.byteLength < HEADER_BYTES + MIN_BUFFER_BYTES) {
    throw new RangeError(`bridge channel: buffer too small (${sab.byteLength} bytes)`);
  }
  return { ctl: new Int32Array(sab, 0, HEADER_INTS), data: new Uint8Array(sab, HEADER_BYTES) };
}

/** Allocates a channel; `bufferBytes` is the data area, the unit requests/replies/memory ops are chunked into. */
export function createBridgeChannel(opts: { bufferBytes?: number | undefined } = {}): BridgeChannel {
  const bufferBytes = opts.bufferBytes ?? DEFAULT_BUFFER_BYTES;
  if (!Number.isSafeInteger(bufferBytes) || bufferBytes < MIN_BUFFER_BYTES || bufferBytes > MAX_I32 - HEADER_BYTES) {
    throw new RangeError(`bridge channel: bufferBytes must be an integer in [${MIN_BUFFER_BYTES}, 2^31)`);
  }
  return { sab: new SharedArrayBuffer(HEADER_BYTES + bufferBytes) };
}

// ---------------------------------------------------------------------------------------------------
// Worker side

/** Options for BridgeClient. */
export interface BridgeClientOptions {
  /** Deadline for a whole call, memory ops included, counted from its first wait (default 5000; Infinity allowed). */
  timeoutMs?: number | undefined;
  /** Performs host memory ops against the guest's memory; throw to refuse (e.g. out of bounds). */
  onMemoryRequest?: ((op: MemoryOp) => Uint8Array | void) | undefined;
  /**
   * Atomics.load polls before each sleep (default 0). Pays off for back-to-back calls with a core to spare:
   * neither thread then sleeps, so no futex or event-loop wake-up is paid. Otherwise it just burns worker CPU.
   */
  spin?: number | undefined;
}

/** Worker side: turns a request into a blocking call answered by the host; one per channel, never on the host thread (it would block the loop that answers). */
export class BridgeClient {
  readonly #ctl: Int32Array;
  readonly #data: Uint8Array;
  readonly #cap: number;
  readonly #timeoutMs: number;
  readonly #spin: number;
  readonly #onMemory: ((op: MemoryOp) => Uint8Array | void) | undefined;
  #seq = 0;
  #inCall = false;
  #deadline = NaN; // of the current call; NaN until its first sleep
  #callTimeoutMs = 0;
  // Memory op in progress: a read's full result being streamed out, or a write being reassembled.
  #stage: Uint8Array | undefined;

  constructor(channel: BridgeChannel, opts: BridgeClientOptions = {}) {
    const { ctl, data } = views(channel);
    this.#ctl = ctl;
    this.#data = data;
    this.#cap = data.length;
    this.#timeoutMs = checkTimeout(opts.timeoutMs ?? 5000);
    this.#spin = Math.max(0, Math.floor(opts.spin ?? 0));
    this.#onMemory = opts.onMemoryRequest;
  }

  /** Sends `request` (any size) and blocks until the reply; throws BridgeError instead of hanging. */
  call(request: Uint8Array, opts?: { timeoutMs?: number | undefined }): Uint8Array {
    if (this.#inCall) throw new BridgeError('protocol', 'reentrant bridge call (from onMemoryRequest?)');
    const timeoutMs = opts?.timeoutMs === undefined ? this.#timeoutMs : checkTimeout(opts.timeoutMs);
    this.#inCall = true;
    try {
      this.#deadline = NaN;
      this.#callTimeoutMs = timeoutMs;
      return this.#call(request);
    } finally {
      this.#inCall = false;
      this.#stage = undefined;
    }
  }

  #call(req: Uint8Array): Uint8Array {
    const ctl = this.#ctl;
    const data = this.#data;
    const cap = this.#cap;
    const seq = (this.#seq = (this.#seq + 1) | 0);

    // Fast path: state is IDLE. Anything else is leftovers (a previous client died mid-call): cancel it.
    const s0 = Atomics.load(ctl, STATE);
    if (s0 !== S_IDLE) this.#abandon();

    const total = req.length;
    let off = 0;
    let s: number;
    for (;;) {
      const len = Math.min(cap, total - off);
      if (len === total) data.set(req);
      else data.set(req.subarray(off, off + len));
      ctl[SEQ] = seq;
      ctl[TOTAL] = total;
      ctl[OFFSET] = off;
      ctl[LEN] = len;
      const expect = off === 0 ? S_IDLE : S_REQ_ACK;
      const prev = Atomics.compareExchange(ctl, STATE, expect, S_REQ);
      if (prev !== expect) throw this.#unexpected(prev);
      Atomics.notify(ctl, STATE);
      off += len;
      s = this.#await(seq);
      if (off >= total || s !== S_REQ_ACK) break;
    }

    // Reply phase (the host may answer early, e.g. to refuse an oversized request).
    let out: Uint8Array | undefined;
    let got = 0;
    for (;; s = this.#await(seq)) {
      if (s === S_MEM_OP) {
        // A handler issuing memory ops back to back never lets us sleep, so check the deadline here too.
        if (!Number.isNaN(this.#deadline) && performance.now() >= this.#deadline) throw this.#timedOut();
        this.#serveMemory();
        continue;
      }
      if (s !== S_REPLY) throw this.#unexpected(s);
      const rTotal = ctl[TOTAL]!;
      const rOff = ctl[OFFSET]!;
      const rLen = ctl[LEN]!;
      if (rOff !== got || rLen !== Math.min(cap, rTotal - rOff) || rTotal < rOff || (out !== undefined && rTotal !== out.length)) {
        this.#abandon();
        throw new BridgeError('protocol', `malformed reply chunk (total ${rTotal}, offset ${rOff}, len ${rLen})`);
      }
      if (rOff === 0) {
        if (rLen === rTotal) out = data.slice(0, rLen);
        else (out = new Uint8Array(rTotal)).set(data.subarray(0, rLen));
      } else out!.set(data.subarray(0, rLen), rOff);
      got = rOff + rLen;
      if (got < rTotal) {
        if (Atomics.compareExchange(ctl, STATE, S_REPLY, S_REPLY_ACK) !== S_REPLY) throw this.#unexpected(Atomics.load(ctl, STATE));
        Atomics.notify(ctl, STATE);
        continue;
      }
      const status = ctl[KIND];
      // No notify: the host already forgot the call once it posted the last chunk. If this CAS loses to
      // close(), the reply is still whole and worth returning.
      Atomics.compareExchange(ctl, STATE, S_REPLY, S_IDLE);
      if (status !== STATUS_OK) throw new BridgeError('host_error', decoder.decode(out));
      return out!;
    }
  }

  /** Waits until it's the worker's turn for this call; returns that state. */
  #await(seq: number): number {
    const ctl = this.#ctl;
    for (;;) {
      let s = Atomics.load(ctl, STATE);
      for (let i = this.#spin; i > 0 && !isWorkerTurn(s) && (s & CLOSED_BIT) === 0; i--) s = Atomics.load(ctl, STATE);
      if (isWorkerTurn(s)) {
        if (s === S_IDLE) throw new BridgeError('protocol', 'the host reset the channel');
        if (ctl[SEQ] !== seq) {
          this.#abandon();
          throw new BridgeError('protocol', 'reply for another call');
        }
        return s;
      }
      if (s & CLOSED_BIT) throw new BridgeError('closed', 'bridge closed');
      let remaining: number;
      if (Number.isNaN(this.#deadline)) {
        // First sleep of the call: start the clock now rather than at entry, saving a clock read per call.
        remaining = this.#callTimeoutMs;
        this.#deadline = performance.now() + remaining;
      } else if ((remaining = this.#deadline - performance.now()) <= 0) {
        throw this.#timedOut();
      }
      Atomics.wait(ctl, STATE, s, remaining);
    }
  }

  /** Takes the channel back to IDLE from wherever it is (except while the host holds BUSY), so the host drops the call. */
  #abandon(): void {
    const ctl = this.#ctl;
    for (;;) {
      const s = Atomics.load(ctl, STATE);
      if (s & CLOSED_BIT) throw new BridgeError('closed', 'bridge closed');
      if (s === S_IDLE) return;
      if (s === S_BUSY) {
        // The host is mid-copy in synchronous code: this lasts microseconds.
        Atomics.wait(ctl, STATE, S_BUSY, 1);
        continue;
      }
      if (Atomics.compareExchange(ctl, STATE, s, S_IDLE) === s) {
        Atomics.notify(ctl, STATE);
        return;
      }
    }
  }

  #timedOut(): BridgeError {
    this.#abandon();
    return new BridgeError('timeout', `no reply from the host within ${this.#callTimeoutMs} ms`);
  }

  #unexpected(s: number): BridgeError {
    if (s & CLOSED_BIT) return new BridgeError('closed', 'bridge closed');
    if (s !== S_IDLE) this.#abandon();
    return new BridgeError('protocol', `unexpected bridge state ${s}`);
  }

  /** Performs one memory-op chunk for the host and hands the turn back (MEM_OP → MEM_DONE). */
  #serveMemory(): void {
    const ctl = this.#ctl;
    const data = this.#data;
    const cap = this.#cap;
    const kind = ctl[KIND]!;
    const ptr = ctl[PTR]! >>> 0;
    const total = ctl[TOTAL]!;
    const off = ctl[OFFSET]!;
    const len = ctl[LEN]!;
    let status = STATUS_OK;
    try {
      if (total < 0 || off < 0 || off > total) throw new Error('malformed memory op');
      if (kind === OP_READ) {
        if (off === 0) {
          const bytes = this.#perform({ kind: 'read', ptr, len: total });
          if (!(bytes instanceof Uint8Array) || bytes.length !== total) {
            throw new Error(`onMemoryRequest returned ${bytes instanceof Uint8Array ? bytes.length : typeof bytes} for a ${total}-byte read`);
          }
          this.#stage = bytes;
        } else if (this.#stage?.length !== total) throw new Error('read continuation without a read');
        const n = Math.min(cap, total - off);
        data.set(this.#stage.subarray(off, off + n));
        ctl[LEN] = n;
        if (off + n === total) this.#stage = undefined;
      } else if (kind === OP_WRITE) {
        if (len < 0 || len > cap || off + len > total) throw new Error('malformed memory write chunk');
        if (off === 0 && len === total) {
          this.#perform({ kind: 'write', ptr, bytes: data.subarray(0, len) });
        } else {
          if (off === 0) this.#stage = new Uint8Array(total);
          else if (this.#stage?.length !== total) throw new Error('write continuation without a write');
          this.#stage.set(data.subarray(0, len), off);
          if (off + len === total) {
            const bytes = this.#stage;
            this.#stage = undefined;
            this.#perform({ kind: 'write', ptr, bytes });
          }
        }
        ctl[LEN] = 0;
      } else throw new Error(`unknown memory op ${kind}`);
    } catch (e) {
      this.#stage = undefined;
      status = STATUS_ERR;
      ctl[LEN] = encoder.encodeInto(errorMessage(e), data).written;
    }
    ctl[KIND] = status;
    const prev = Atomics.compareExchange(ctl, STATE, S_MEM_OP, S_MEM_DONE);
    if (prev !== S_MEM_OP) throw this.#unexpected(prev);
    Atomics.notify(ctl, STATE);
  }

  #perform(op: MemoryOp): Uint8Array | void {
    if (!this.#onMemory) throw new Error('this worker does not serve memory requests');
    return this.#onMemory(op);
  }
}

function checkTimeout(ms: number): number {
  if (typeof ms !== 'number' || Number.isNaN(ms) || ms < 0) throw new RangeError('timeoutMs must be a non-negative number');
  return ms;
}

/** Ready-made onMemoryRequest over a byte view; a getter because WebAssembly.Memory.grow replaces the buffer. */
export function memoryRequestHandler(getBytes: () => Uint8Array): (op: MemoryOp) => Uint8Array | void {
  return (op) => {
    const mem = getBytes();
    const len = op.kind === 'read' ? op.len : op.bytes.length;
    if (op.ptr + len > mem.length) {
      throw new RangeError(`memory access out of bounds: [${op.ptr}, ${op.ptr + len}) exceeds ${mem.length} bytes`);
    }
    if (op.kind === 'read') return mem.subarray(op.ptr, op.ptr + len);
    mem.set(op.bytes, op.ptr);
  };
}

// ---------------------------------------------------------------------------------------------------
// Host side

/** Options for BridgeServer. */
export interface BridgeServerOptions {
  /** Told about garbage from the worker (the channel is reset) and internal faults; never throws into the event loop. */
  onError?: ((error: Error) => void) | undefined;
  /** Largest request the host will buffer (default 64 MiB), since the worker picks the size. */
  maxRequestBytes?: number | undefined;
}

// lib.es2024 has Atomics.waitAsync; this project targets es2023 typings, so declare the one overload we use.
const AtomicsAsync = Atomics as unknown as {
  waitAsync?: (
    ta: Int32Array,
    index: number,
    value: number,
  ) => { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
};

// Lifecycle of a Call on the host.
const RECEIVING = 0;
const HANDLING = 1;
const REPLYING = 2;
const DONE = 3;

interface MemRequest {
  kind: typeof OP_READ | typeof OP_WRITE;
  ptr: number;
  len: number;
  bytes: Uint8Array | undefined; // write source / read destination
  done: number;
  resolve: (v: Uint8Array) => void;
  reject: (e: Error) => void;
}

class Call {
  phase = RECEIVING;
  received = 0;
  reply: Uint8Array | undefined;
  status = STATUS_OK;
  sent = 0;
  memActive: MemRequest | undefined;
  memQueue: MemRequest[] | undefined; // created on first use: most calls never touch memory
  constructor(
    readonly seq: number,
    readonly total: number,
    readonly buf: Uint8Array,
  ) {}
}

// What the handler sees: no internals, and useless once its call is over.
class CallContext implements BridgeCallContext {
  readonly #server: BridgeServer;
  readonly #call: Call;
  constructor(server: BridgeServer, call: Call) {
    this.#server = server;
    this.#call = call;
  }
  readMemory(ptr: number, len: number): Promise<Uint8Array> {
    return enqueueMemory(this.#server, this.#call, OP_READ, ptr, len, undefined);
  }
  writeMemory(ptr: number, bytes: Uint8Array): Promise<void> {
    if (!(bytes instanceof Uint8Array)) return Promise.reject(new TypeError('writeMemory: bytes must be a Uint8Array'));
    return enqueueMemory(this.#server, this.#call, OP_WRITE, ptr, bytes.length, bytes).then(() => undefined);
  }
}

let enqueueMemory: (server: BridgeServer, call: Call, kind: MemRequest['kind'], ptr: number, len: number, bytes: Uint8Array | undefined) => Promise<Uint8Array>;

// A worker that answers back-to-back keeps the pump busy (each waitAsync finds the state already moved):
// about 20 calls per turn, then the rest of the event loop (other workers, I/O) gets a go.
const MAX_SYNC_STEPS = 64;

/** Host side: serves worker calls with an async handler, woken by Atomics.waitAsync (never blocks the event loop). */
export class BridgeServer {
  readonly #ctl: Int32Array;
  readonly #data: Uint8Array;
  readonly #cap: number;
  readonly #handler: BridgeHandler;
  readonly #onError: (error: Error) => void;
  readonly #maxRequest: number;
  #call: Call | undefined;
  #started = false;
  #closed = false;
  #pumping = false;
  #waiting = false; // an Atomics.waitAsync is armed
  #yielded = false; // a setImmediate is queued
  readonly #wake = (): void => {
    this.#waiting = false;
    this.#pump();
  };
  readonly #resume = (): void => {
    this.#yielded = false;
    this.#pump();
  };

  static {
    enqueueMemory = (server, call, kind, ptr, len, bytes) => server.#enqueueMemory(call, kind, ptr, len, bytes);
  }

  constructor(channel: BridgeChannel, handler: BridgeHandler, opts: BridgeServerOptions = {}) {
    const { ctl, data } = views(channel);
    if (typeof AtomicsAsync.waitAsync !== 'function') throw new Error('BridgeServer needs Atomics.waitAsync (Node >= 16)');
    if (typeof handler !== 'function') throw new TypeError('BridgeServer: handler must be a function');
    this.#ctl = ctl;
    this.#data = data;
    this.#cap = data.length;
    this.#handler = handler;
    this.#onError = opts.onError ?? (() => {});
    const max = opts.maxRequestBytes ?? 64 * 1024 * 1024;
    if (!Number.isSafeInteger(max) || max < 0) throw new RangeError('maxRequestBytes must be a non-negative integer');
    this.#maxRequest = Math.min(max, MAX_I32);
  }

  /** Begins serving (idempotent); requests the worker made before start() are picked up. */
  start(): void {
    if (this.#closed) throw new BridgeError('closed', 'bridge closed');
    if (this.#started) return;
    this.#started = true;
    this.#pump();
  }

  /** Stops for good: a blocked worker gets 'closed', pending memory ops reject, late handler results are dropped. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    Atomics.or(this.#ctl, STATE, CLOSED_BIT);
    Atomics.notify(this.#ctl, STATE);
    if (this.#call) this.#abandon(this.#call, 'closed', 'bridge closed');
  }

  #pump(): void {
    if (this.#pumping || !this.#started || this.#closed) return;
    this.#pumping = true;
    const ctl = this.#ctl;
    try {
      this.#run(ctl);
    } catch (e) {
      // Only Atomics.waitAsync itself can get here; a server that can't wait can't serve, so fail loudly but safely.
      this.#report(`bridge server stopped: ${errorMessage(e)}`);
      this.close();
    } finally {
      this.#pumping = false;
    }
  }

  #run(ctl: Int32Array): void {
    for (let i = 0; i < MAX_SYNC_STEPS; i++) {
      const s = Atomics.load(ctl, STATE);
      if (s & CLOSED_BIT) {
        // Another server on this channel closed it, or the worker set the bit: it can only hurt itself.
        this.close();
        return;
      }
      let progressed: boolean;
      try {
        progressed = this.#step(s);
      } catch (e) {
        // A bug or garbage we didn't anticipate: report, reset, keep serving.
        this.#reset(`internal error: ${errorMessage(e)}`);
        progressed = true;
      }
      if (progressed) continue;
      // Every worker transition the host must act on comes with a notify, which wakes an armed waiter.
      if (this.#waiting) return;
      const w = AtomicsAsync.waitAsync!(ctl, STATE, s);
      if (!w.async) continue;
      this.#waiting = true;
      void w.value.then(this.#wake);
      return;
    }
    // Still busy after many steps (a fast or hostile worker): let the rest of the event loop run first.
    if (!this.#yielded) {
      this.#yielded = true;
      setImmediate(this.#resume);
    }
  }

  /** Acts on state `s` if it is the host's move; true when it changed something worth re-reading. */
  #step(s: number): boolean {
    switch (s) {
      case S_REQ:
        return this.#onRequestChunk();
      case S_HANDLING:
        return this.#onHandling();
      case S_MEM_DONE:
        return this.#onMemDone();
      case S_REPLY_ACK:
        return this.#onReplyAck();
      case S_IDLE:
        // The worker gave up on the call (timeout) or never had one.
        if (this.#call) this.#abandon(this.#call, 'cancelled', 'the worker abandoned the call');
        return false;
      case S_REQ_ACK:
      case S_MEM_OP:
      case S_REPLY:
        return false;
      default:
        // Includes BUSY: we never leave it set across turns, so the worker wrote it.
        this.#reset(`invalid bridge state ${s}`);
        return true;
    }
  }

  /** Claims the data area for synchronous host work; false if the worker moved first (cancel). */
  #claim(from: number): boolean {
    return Atomics.compareExchange(this.#ctl, STATE, from, S_BUSY) === from;
  }

  #release(to: number, notify: boolean): void {
    Atomics.store(this.#ctl, STATE, to);
    if (notify) Atomics.notify(this.#ctl, STATE);
  }

  #onRequestChunk(): boolean {
    if (!this.#claim(S_REQ)) return true;
    const ctl = this.#ctl;
    const data = this.#data;
    const seq = ctl[SEQ]!;
    const total = ctl[TOTAL]!;
    const off = ctl[OFFSET]!;
    const len = ctl[LEN]!;
    if (!(total >= 0 && off >= 0 && off <= total && len === Math.min(this.#cap, total - off))) {
      this.#reset(`malformed request chunk (total ${total}, offset ${off}, len ${len})`);
      return true;
    }
    let call = this.#call;
    if (off === 0) {
      // A new call implicitly ends the previous one (the worker timed out and moved on).
      if (call) this.#abandon(call, 'cancelled', 'the worker abandoned the call');
      if (total > this.#maxRequest) {
        call = this.#call = new Call(seq, total, new Uint8Array(0));
        call.phase = HANDLING;
        this.#setReply(call, encoder.encode(`request of ${total} bytes exceeds the host limit of ${this.#maxRequest}`), STATUS_ERR);
        this.#sendReplyChunk(call);
        return true;
      }
      let buf: Uint8Array;
      if (len === total) buf = data.slice(0, len);
      else (buf = new Uint8Array(total)).set(data.subarray(0, len));
      call = this.#call = new Call(seq, total, buf);
    } else {
      if (!call || call.phase !== RECEIVING || call.seq !== seq || call.total !== total || call.received !== off) {
        this.#reset(`request chunk out of sequence (seq ${seq}, offset ${off})`);
        return true;
      }
      call.buf.set(data.subarray(0, len), off);
    }
    call.received = off + len;
    if (call.received < total) {
      this.#release(S_REQ_ACK, true);
      return true;
    }
    call.phase = HANDLING;
    // No notify: the worker is asleep waiting for something other than REQ, and HANDLING isn't it.
    this.#release(S_HANDLING, false);
    this.#invoke(call);
    return true;
  }

  #invoke(call: Call): void {
    let r: unknown;
    try {
      r = this.#handler(call.buf, new CallContext(this, call));
    } catch (e) {
      this.#conclude(call, undefined, e, true);
      return;
    }
    // Synchronous answer: reply in this same turn, no microtask hop.
    if (r instanceof Uint8Array) this.#conclude(call, r);
    else {
      Promise.resolve(r).then(
        (v) => this.#conclude(call, v, undefined, false, true),
        (e: unknown) => this.#conclude(call, undefined, e, true, true),
      );
    }
  }

  /** Records the handler's outcome as the reply; `later` means we're outside the pump and must restart it. */
  #conclude(call: Call, value: unknown, error?: unknown, failed = false, later = false): void {
    // Answers to abandoned calls (timeout, close, a newer call) are dropped here: the worker has moved on.
    if (call.phase !== HANDLING || call !== this.#call) return;
    if (failed) this.#setReply(call, encoder.encode(errorMessage(error)), STATUS_ERR);
    else if (value instanceof Uint8Array) this.#setReply(call, value, STATUS_OK);
    else this.#setReply(call, encoder.encode(`handler produced ${typeof value}, not a Uint8Array`), STATUS_ERR);
    if (later) this.#pump();
  }

  #setReply(call: Call, bytes: Uint8Array, status: number): void {
    call.reply = bytes;
    call.status = status;
    call.phase = REPLYING;
  }

  #onHandling(): boolean {
    const call = this.#call;
    if (!call) {
      this.#reset('HANDLING with no call in flight');
      return true;
    }
    if (call.memActive) {
      this.#reset('HANDLING while a memory op is in flight');
      return true;
    }
    // Memory ops the handler started but didn't await still run first: the guest sees them before the reply.
    const op = call.memQueue?.[0];
    if (op) {
      if (!this.#claim(S_HANDLING)) return true;
      call.memQueue!.shift();
      call.memActive = op;
      this.#postMemOp(call, op);
      return true;
    }
    if (call.phase !== REPLYING) return false;
    if (!this.#claim(S_HANDLING)) return true;
    this.#sendReplyChunk(call);
    return true;
  }

  #postMemOp(call: Call, op: MemRequest): void {
    const ctl = this.#ctl;
    ctl[SEQ] = call.seq;
    ctl[KIND] = op.kind;
    ctl[PTR] = op.ptr | 0;
    ctl[TOTAL] = op.len;
    ctl[OFFSET] = op.done;
    if (op.kind === OP_WRITE) {
      const n = Math.min(this.#cap, op.len - op.done);
      const src = op.bytes!;
      if (n === src.length) this.#data.set(src);
      else this.#data.set(src.subarray(op.done, op.done + n));
      ctl[LEN] = n;
    } else ctl[LEN] = 0;
    this.#release(S_MEM_OP, true);
  }

  #onMemDone(): boolean {
    if (!this.#claim(S_MEM_DONE)) return true;
    const ctl = this.#ctl;
    const data = this.#data;
    const call = this.#call;
    const op = call?.memActive;
    if (!call || !op || ctl[SEQ] !== call.seq) {
      this.#reset('memory op result with no memory op in flight');
      return true;
    }
    const status = ctl[KIND];
    const len = ctl[LEN]!;
    if (status !== STATUS_OK) {
      call.memActive = undefined;
      const msg = len >= 0 && len <= this.#cap ? decodeShared(data, len) : 'memory op failed';
      op.reject(new BridgeError('memory_fault', msg || 'memory op failed'));
      this.#release(S_HANDLING, false);
      return true;
    }
    if (op.kind === OP_READ) {
      const off = ctl[OFFSET]!;
      if (ctl[TOTAL] !== op.len || off !== op.done || len !== Math.min(this.#cap, op.len - off)) {
        call.memActive = undefined;
        op.reject(new BridgeError('protocol', 'malformed memory read result'));
        this.#reset(`malformed memory read result (offset ${off}, len ${len})`);
        return true;
      }
      if (off === 0 && len === op.len) op.bytes = data.slice(0, len);
      else (op.bytes ??= new Uint8Array(op.len)).set(data.subarray(0, len), off);
      op.done += len;
    } else {
      op.done += Math.min(this.#cap, op.len - op.done);
    }
    if (op.done < op.len) {
      this.#postMemOp(call, op);
      return true;
    }
    call.memActive = undefined;
    op.resolve(op.bytes ?? new Uint8Array(0));
    this.#release(S_HANDLING, false);
    return true;
  }

  #onReplyAck(): boolean {
    if (!this.#claim(S_REPLY_ACK)) return true;
    const call = this.#call;
    if (!call || call.phase !== REPLYING || this.#ctl[SEQ] !== call.seq || call.sent === 0) {
      this.#reset('reply acknowledgement with no reply in flight');
      return true;
    }
    this.#sendReplyChunk(call);
    return true;
  }

  /** Writes the next reply chunk; caller holds BUSY. */
  #sendReplyChunk(call: Call): void {
    const ctl = this.#ctl;
    const r = call.reply!;
    const total = r.length;
    const off = call.sent;
    const n = Math.min(this.#cap, total - off);
    if (n === total) this.#data.set(r);
    else this.#data.set(r.subarray(off, off + n));
    ctl[SEQ] = call.seq;
    ctl[KIND] = call.status;
    ctl[TOTAL] = total;
    ctl[OFFSET] = off;
    ctl[LEN] = n;
    call.sent = off + n;
    if (call.sent >= total) {
      // The worker owns the rest; nothing more is expected for this call.
      call.phase = DONE;
      this.#call = undefined;
    }
    this.#release(S_REPLY, true);
  }

  #enqueueMemory(call: Call, kind: MemRequest['kind'], ptr: number, len: number, bytes: Uint8Array | undefined): Promise<Uint8Array> {
    if (!Number.isSafeInteger(ptr) || ptr < 0 || ptr > 0xffffffff) {
      return Promise.reject(new RangeError(`memory op: bad pointer ${ptr}`));
    }
    if (!Number.isSafeInteger(len) || len < 0 || len > MAX_I32) {
      return Promise.reject(new RangeError(`memory op: bad length ${len}`));
    }
    if (this.#closed) return Promise.reject(new BridgeError('closed', 'bridge closed'));
    if (call !== this.#call || !(call.phase === HANDLING || (call.phase === REPLYING && call.sent === 0))) {
      return Promise.reject(new BridgeError('cancelled', 'the call this memory op belongs to is over'));
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      (call.memQueue ??= []).push({ kind, ptr, len, bytes, done: 0, resolve, reject });
      this.#pump();
    });
  }

  #rejectQueued(call: Call, code: BridgeErrorCode, message: string): void {
    const q = call.memQueue;
    call.memQueue = undefined;
    if (q) for (const op of q) op.reject(new BridgeError(code, message));
  }

  #abandon(call: Call, code: BridgeErrorCode, message: string): void {
    call.phase = DONE;
    if (this.#call === call) this.#call = undefined;
    const active = call.memActive;
    call.memActive = undefined;
    active?.reject(new BridgeError(code, message));
    this.#rejectQueued(call, code, message);
  }

  /** Garbage in the channel: report it, drop the call, and hand the worker a clean IDLE. */
  #reset(reason: string): void {
    if (this.#call) this.#abandon(this.#call, 'protocol', reason);
    if (!this.#closed) {
      const s = Atomics.load(this.#ctl, STATE);
      if ((s & CLOSED_BIT) === 0) this.#release(S_IDLE, true);
    }
    this.#report(reason);
  }

  #report(reason: string): void {
    try {
      this.#onError(new BridgeError('protocol', reason));
    } catch {
      // The reporter's own failure must not take the event loop down either.
    }
  }
}
