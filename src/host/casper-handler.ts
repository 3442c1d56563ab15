/** The host thread's end of a run's casper messages: they go to the run's broker. */
import type { Broker } from '../casper/broker.js';
import { packNvlist, unpackNvlist } from '../casper/nvlist-codec.js';
import type { NvList } from '../casper/nvlist.js';
import { ERRNO } from '../wasi/constants.js';
import type { BridgeHandler } from './bridge.js';
import { CASPER_OP, decodeCasperRequest, decodeXferRequest, encodeXferAnswer } from './casper-wire.js';
import type { GuestOpResult } from '../casper/service.js';

function fail(): never {
  throw new RangeError('malformed xfer');
}

/** Answers the worker's casper requests; a request it cannot read is EINVAL, never an exception. */
export function casperHandler(broker: Broker): BridgeHandler {
  return async (request) => {
    const r = decodeCasperRequest(request);
    if (!r) throw new RangeError('malformed casper request');
    if (r.op === CASPER_OP.init) {
      const out = new Uint8Array(4);
      new DataView(out.buffer).setUint32(0, broker.openCore(), true);
      return out;
    }
    if (r.op === CASPER_OP.close) {
      broker.close(r.channel);
      return new Uint8Array(0);
    }
    if (r.op !== CASPER_OP.xfer) throw new RangeError(`unknown casper op ${r.op}`);
    let nv: NvList;
    let results: GuestOpResult[];
    try {
      const x = decodeXferRequest(r.payload) ?? fail();
      nv = unpackNvlist(x.nvlist);
      results = x.results;
    } catch {
      return encodeXferAnswer({ status: ERRNO.INVAL, reply: new Uint8Array(0), descriptors: [], service: '?', cmd: '?', errno: ERRNO.INVAL });
    }
    const res = await broker.xfer(r.channel, nv, results);
    return encodeXferAnswer({
      status: 0, reply: packNvlist(res.reply), descriptors: res.descriptors, service: res.service, cmd: res.cmd, errno: res.errno,
      ...(res.needs ? { needs: res.needs } : {}),
    });
  };
}
