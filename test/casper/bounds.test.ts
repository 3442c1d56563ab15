// The bounds a guest meets on its Casper channels, through a real host and worker (the scripted
// guest of script-guest.ts): the message size (EMSGSIZE), the replies waiting for casper.recv
// (ENOBUFS), and channels the worker could not install, which it must give back to the broker.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHost, type Host, type RunRequest } from '../../src/host/host.js';
import { CASPER_MAX_MESSAGE_BYTES } from '../../src/host/casper-wire.js';
import { ERRNO } from '../../src/wasi/constants.js';
import { GUEST, close, cmd, concat, init, limitSetOfNulls, replies, send, xfer } from './script-guest.js';

let host: Host;
beforeAll(async () => { host = await createHost({ workers: 1 }); });
afterAll(async () => { await host.close(); });

async function script(parts: Uint8Array[], req: Partial<RunRequest> = {}) {
  const r = await host.run({ module: GUEST, casper: { 'system.fileargs': {} }, ...req, stdin: concat(parts) });
  expect(r.status, r.message).toBe('exited');
  return replies(r.stdout);
}
const OK = { errno: 0, error: 0 };
const openFileargs = xfer(3, 1, cmd('open', (l) => l.addString('service', 'system.fileargs')));
// 250 KiB of names: under the message bound, four of them fill the run's 1 MiB of limits.
const LIMITS = limitSetOfNulls(250 * 1024);

describe('Casper bounds seen by a guest', { timeout: 90_000 }, () => {
  it('a request above the message bound is EMSGSIZE from casper.xfer; one below it is served', async () => {
    const over = limitSetOfNulls(CASPER_MAX_MESSAGE_BYTES + 1024);
    const under = limitSetOfNulls(CASPER_MAX_MESSAGE_BYTES - 1024);
    const out = await script([init(), xfer(3, 1, over), xfer(3, 1, under)]);
    // The core channel refuses a service name it does not allow, after reading the whole list.
    expect(out.slice(1)).toEqual([{ errno: ERRNO.MSGSIZE }, { errno: 0, error: ERRNO.NOTCAPABLE }]);
  });

  it('replies waiting for casper.recv are bounded (ENOBUFS before sending); closing a channel frees its reply', async () => {
    const clones = Array.from({ length: 20 }, (_, i) => 5 + i);
    const out = await script([
      init(), openFileargs, xfer(4, 1, LIMITS), xfer(4, 20, cmd('clone')),
      // limit_get answers the 250 KiB list; nobody collects the replies.
      ...[4, ...clones].map((fd) => send(fd, cmd('limit_get'))),
      close(4), xfer(24, 1, cmd('nope')),
    ], { limits: { fds: 64, wallMs: 60_000, cpuMs: 60_000 } });
    const sends = out.slice(23, 44).map((r) => r.errno);
    expect(sends.slice(0, 17)).toEqual(Array(17).fill(0));
    expect(sends.slice(17)).toEqual(Array(4).fill(ERRNO.NOBUFS));
    expect(out.slice(44)).toEqual([{ errno: 0 }, { errno: 0, error: ERRNO.INVAL }]);
  });

  it('channels made for clones refused with EMFILE go back to the broker, with the limits they held', async () => {
    const reopen = (fd: number) => [openFileargs, xfer(fd, 1, LIMITS)];
    const out = await script([
      init(), openFileargs, xfer(4, 1, LIMITS), xfer(4, 10, cmd('clone')),
      close(5), close(6), close(7), close(4),
      // Four fresh channels each set 250 KiB of limits: the run's whole budget, if nothing leaked.
      ...reopen(4), ...reopen(5), ...reopen(6), ...reopen(7),
    ], { limits: { fds: 8 } });
    expect(out.slice(3, 13)).toEqual([OK, OK, OK, ...Array(7).fill({ errno: 0, error: ERRNO.MFILE })]);
    expect(out.slice(17)).toEqual(Array(8).fill(OK));
  });
});
