/** The host thread's end of a run's casper messages: they go to the run's broker. */
import type { Broker, BrokerReply } from '../casper/broker.js';
import { packNvlist, unpackNvlist } from '../casper/nvlist-codec.js';
import { NvList } from '../casper/nvlist.js';
import { ERRNO } from '../wasi/constants.js';
import type { BridgeHandler } from './bridge.js';
import { CASPER_FAULT_MAX_CHARS, CASPER_MAX_MESSAGE_BYTES, CASPER_NO_CHANNEL, CASPER_OP, decodeCasperRequest, decodeXferRequest, encodeXferAnswer } from './casper-wire.js';
import type { GuestOpResult } from '../casper/service.js';
import { threadCpuNs } from './worker/thread-cpu.js';

/** Options of casperHandler. */
export interface CasperHandlerOptions {
  /** The largest request or reply nvlist (default CASPER_MAX_MESSAGE_BYTES); past it EMSGSIZE. */
  maxMessageBytes?: number;
  /**
   * Told how long (ms) the host thread worked on each request: decoding it, the broker's and the
   * service's synchronous work, encoding the reply. The host charges it to the run's CPU time.
   */
  charge?: (ms: number) => void;
  /** Told when a service the guest's worker answers threw (as the broker's onServiceError). */
  onServiceError?: (service: string, error: unknown) => void;
}

/** Requests above this size are timed by the thread's CPU clock. */
const PRECISE_CLOCK_BYTES = 4096;

function fail(): never {
  throw new RangeError('malformed xfer');
}

const refused = (errno: number) => encodeXferAnswer({ status: errno, reply: new Uint8Array(0), descriptors: [], service: '?', cmd: '?', errno });

/** Answers the worker's casper requests; a request it cannot read is EINVAL, never an exception. */
export function casperHandler(broker: Broker, options: CasperHandlerOptions = {}): BridgeHandler {
  const max = options.maxMessageBytes ?? CASPER_MAX_MESSAGE_BYTES;
  const charge = options.charge ?? (() => {});
  // Times a synchronous piece of work and charges it, whatever it returns or throws. A large
  // request is timed by the thread's CPU clock (reading it costs microseconds, nothing beside
  // decoding the request); a small one by the wall clock, which a preempted host thread
  // over-counts, but only for the rare call it is preempted in.
  const timed = <T>(precise: boolean, work: () => T): T => {
    const now = precise ? () => Number(threadCpuNs()) / 1e6 : () => performance.now();
    const t0 = now();
    try {
      return work();
    } finally {
      charge(now() - t0);
    }
  };

  const start = (request: Uint8Array): Uint8Array | Promise<BrokerReply> => {
    const r = decodeCasperRequest(request);
    if (!r) throw new RangeError('malformed casper request');
    if (r.op === CASPER_OP.init) {
      let channel: number = CASPER_NO_CHANNEL;
      try { channel = broker.openCore(); } catch { /* every channel the run may have is open */ }
      const out = new Uint8Array(4);
      new DataView(out.buffer).setUint32(0, channel, true);
      return out;
    }
    if (r.op === CASPER_OP.close) {
      broker.close(r.channel);
      return new Uint8Array(0);
    }
    if (r.op === CASPER_OP.fault) {
      let fault: { service?: unknown; message?: unknown } = {};
      try { fault = JSON.parse(new TextDecoder().decode(r.payload)) as typeof fault; } catch { /* reported as unknown */ }
      options.onServiceError?.(String(fault.service ?? '?'), new Error(String(fault.message ?? 'unknown failure').slice(0, CASPER_FAULT_MAX_CHARS)));
      return new Uint8Array(0);
    }
    if (r.op !== CASPER_OP.xfer) throw new RangeError(`unknown casper op ${r.op}`);
    let nv: NvList;
    let results: GuestOpResult[];
    let size: number;
    try {
      const x = decodeXferRequest(r.payload) ?? fail();
      // The worker refuses these already; a request that slips past is not decoded here either.
      if (x.nvlist.length > max) return refused(ERRNO.MSGSIZE);
      nv = unpackNvlist(x.nvlist);
      results = x.results;
      size = x.nvlist.length;
    } catch {
      return refused(ERRNO.INVAL);
    }
    return broker.xfer(r.channel, nv, results, size);
  };

  const finish = (res: BrokerReply): Uint8Array => {
    let reply = packNvlist(res.reply);
    let { descriptors, errno } = res;
    if (reply.length > max) {
      // Too large to hand over: the guest gets EMSGSIZE, and channels made for it are released.
      broker.releaseDescriptors(descriptors);
      descriptors = [];
      errno = ERRNO.MSGSIZE;
      reply = packNvlist(new NvList().addNumber('error', errno));
    }
    return encodeXferAnswer({
      status: 0, reply, descriptors, service: res.service, cmd: res.cmd, errno,
      ...(res.needs ? { needs: res.needs } : {}),
    });
  };

  return async (request) => {
    const large = request.length > PRECISE_CLOCK_BYTES;
    const started = timed(large, () => start(request));
    if (started instanceof Uint8Array) return started;
    const res = await started;
    // limit_get's reply is as large as the limits it packs.
    return timed(large || res.cmd === 'limit_get', () => finish(res));
  };
}
