/**
 * system.random: cap_random.c's "generate" command (FreeBSD ships no test for it), the 1 MiB
 * bound, cap_random_buf's splitting on the client side, and the absence of limits (the broker
 * answers limit_set with EOPNOTSUPP for a service without `limit`).
 */
import { describe, expect, it } from 'vitest';
import { NvList } from '../../../src/casper/nvlist.js';
import { CasperError } from '../../../src/casper/service.js';
import randomService, { RANDOM_MAXSIZE } from '../../../src/casper/services/random.js';
import { GrantError } from '../../../src/casper/services/common.js';
import { ERRNO } from '../../../src/wasi/constants.js';

const ctx = { channelState: new Map(), sandboxState: new Map(), config: undefined };

function xfer(req: NvList): { error: number; reply: NvList } {
  try {
    const reply = randomService.command(req.getString('cmd')!, null, req, ctx);
    if (reply instanceof Promise) throw new Error('random answers synchronously');
    return { error: 0, reply };
  } catch (e) {
    if (e instanceof CasperError) return { error: e.errno, reply: new NvList() };
    throw e;
  }
}

/** cap_random_buf: "generate" requests of at most MAXSIZE bytes each. */
function capRandomBuf(nbytes: number): { ret: number; errno: number; buf: Uint8Array; requests: number } {
  const buf = new Uint8Array(nbytes);
  let left = nbytes;
  let at = 0;
  let requests = 0;
  while (left > 0) {
    requests++;
    const { error, reply } = xfer(new NvList().addString('cmd', 'generate').addNumber('size', Math.min(left, RANDOM_MAXSIZE)));
    if (error !== 0) return { ret: -1, errno: error, buf, requests };
    const data = reply.getBinary('data')!;
    buf.set(data, at);
    at += data.length;
    left -= data.length;
  }
  return { ret: 0, errno: 0, buf, requests };
}

describe('system.random', () => {
  it.each([1, 16, 4096, RANDOM_MAXSIZE])('generate %i bytes', (size) => {
    const { error, reply } = xfer(new NvList().addString('cmd', 'generate').addNumber('size', size));
    expect(error).toBe(0);
    expect(reply.pairs.map(([n]) => n)).toEqual(['data']);
    expect(reply.getBinary('data')!.length).toBe(size);
  });

  it('gives different bytes each time', () => {
    const a = capRandomBuf(64).buf;
    const b = capRandomBuf(64).buf;
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
    // Not all zero, and roughly uniform over a larger sample.
    const big = capRandomBuf(1 << 16).buf;
    const ones = big.reduce((n, x) => n + x.toString(2).split('1').length - 1, 0);
    expect(Math.abs(ones / (big.length * 8) - 0.5)).toBeLessThan(0.01);
  });

  it('cap_random_buf splits 3 MiB + 5 bytes into four requests', () => {
    const r = capRandomBuf(3 * RANDOM_MAXSIZE + 5);
    expect(r).toMatchObject({ ret: 0, requests: 4 });
    expect(r.buf.subarray(3 * RANDOM_MAXSIZE).some((x) => x !== 0) || r.buf.subarray(0, 64).some((x) => x !== 0)).toBe(true);
  });

  it.each<[string, NvList]>([
    ['size 0', new NvList().addString('cmd', 'generate').addNumber('size', 0)],
    ['size 1 MiB + 1', new NvList().addString('cmd', 'generate').addNumber('size', RANDOM_MAXSIZE + 1)],
    ['size 2^64 - 1', new NvList().addString('cmd', 'generate').addNumber('size', -1)],
    ['no size', new NvList().addString('cmd', 'generate')],
    ['size as a string', new NvList().addString('cmd', 'generate').addString('size', '16')],
    ['another command', new NvList().addString('cmd', 'arc4random').addNumber('size', 16)],
  ])('%s is EINVAL', (_, req) => {
    expect(xfer(req).error).toBe(ERRNO.INVAL);
  });

  it('has no limit function (limit_set is EOPNOTSUPP) and takes only {} as a grant', () => {
    expect(randomService.limit).toBeUndefined();
    expect(randomService.fromManifest!({})).toBeNull();
    expect(() => randomService.fromManifest!({ size: 16 })).toThrow(GrantError);
  });
});
