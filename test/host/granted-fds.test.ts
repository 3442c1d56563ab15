/**
 * Descriptors the worker opens for a guest, from a Casper reply (against a scripted broker answer)
 * or an argdata !file: what happens when the guest's table has no room (found by `npm run fuzz`).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NvList } from '../../src/casper/nvlist.js';
import { packNvlist, unpackNvlist } from '../../src/casper/nvlist-codec.js';
import type { DescriptorGrant } from '../../src/casper/broker.js';
import type { BridgeClient } from '../../src/host/bridge.js';
import { CASPER_OP, decodeCasperRequest, encodeXferAnswer } from '../../src/host/casper-wire.js';
import { createCasperImports } from '../../src/host/worker/casper-imports.js';
import { installArgdata } from '../../src/host/worker/argdata-fds.js';
import { ERRNO } from '../../src/wasi/constants.js';
import { R } from '../../src/wasi/rights.js';
import { hostFdsInto } from '../fuzz/core.js';
import { harness } from '../helpers/harness.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true }); });

/** A broker stand-in: init opens channel 7; every xfer grants `grants` in a reply { fd: descriptor #0 }. */
function scripted(grants: DescriptorGrant[]) {
  const closed: number[] = [];
  const client = {
    call(request: Uint8Array): Uint8Array {
      const r = decodeCasperRequest(request)!;
      if (r.op === CASPER_OP.init) return Uint8Array.of(7, 0, 0, 0);
      if (r.op === CASPER_OP.close) { closed.push(r.channel); return new Uint8Array(0); }
      const reply = new NvList().addDescriptor('fd', 0).addNumber('error', 0);
      return encodeXferAnswer({ status: 0, reply: packNvlist(reply), descriptors: grants, service: 'system.fileargs', cmd: 'open', errno: 0 });
    },
  } as unknown as BridgeClient;
  return { client, closed };
}

function setup(grants: DescriptorGrant[], room: number) {
  const host = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-casper-'));
  dirs.push(host);
  fs.writeFileSync(path.join(host, 'f'), 'data');
  // stdio, the preopen and the channel, then `room` more.
  const h = harness({ preopens: [{ guest: '/h', host }], maxFds: 5 + room });
  const { client, closed } = scripted(grants);
  const casper = createCasperImports(h.wasi.context, client, () => {});
  const out = h.alloc(4);
  expect(casper.init(out)).toBe(0);
  const chan = h.u32(out);
  const req = h.put(packNvlist(new NvList().addString('cmd', 'open').addString('name', '/h/f')));
  const xfer = (): number => {
    const len = h.alloc(4);
    const errno = casper.xfer(chan, req.ptr, req.len, len);
    if (errno !== 0) return -errno;
    const buf = h.alloc(h.u32(len));
    expect(casper.recv(chan, buf, h.u32(len))).toBe(0);
    return Number(unpackNvlist(h.bytes(buf, h.u32(len))).getNumber('error'));
  };
  return { h, host, closed, xfer };
}

describe('descriptors granted by a Casper reply', () => {
  it('a file opened for the guest arrives as an fd when there is room', () => {
    const { h, xfer } = setup([{ kind: 'open', path: '/h/f', flags: 0, mode: 0, rights: R.fd_read }], 1);
    expect(xfer()).toBe(0);
    expect(h.wasi.context.fds.size).toBe(6);
  });

  it('a full table answers EMFILE and leaks no host descriptor, however often it is asked', () => {
    const { h, host, xfer } = setup([{ kind: 'open', path: '/h/f', flags: 0, mode: 0, rights: R.fd_read }], 0);
    const before = hostFdsInto(host).length;
    for (let i = 0; i < 20; i++) expect(xfer()).toBe(ERRNO.MFILE);
    expect(hostFdsInto(host).length).toBe(before);
    expect(h.wasi.context.fds.size).toBe(5);
  });

  it('a channel that does not fit is closed on the broker, not left open there', () => {
    const { closed, xfer } = setup([{ kind: 'channel', id: 42 }], 0);
    expect(xfer()).toBe(ERRNO.MFILE);
    expect(closed).toEqual([42]);
  });
});

describe('argdata !file descriptors', () => {
  it('a host file that does not fit fails the install without leaking its host descriptor', () => {
    const host = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-argdata-'));
    dirs.push(host);
    fs.writeFileSync(path.join(host, 'f'), 'data');
    const file = { type: 'file' as const, path: path.join(host, 'f'), host: true, rights: { base: R.fd_read, inheriting: 0n, names: ['CAP_READ'] } };
    const roomy = harness({ maxFds: 4 });
    installArgdata(roomy.wasi.context, { type: 'seq', items: [file] });
    expect(roomy.wasi.context.fds.size).toBe(4);
    roomy.wasi.context.fds.closeAll();
    const full = harness({ maxFds: 3 });
    for (let i = 0; i < 5; i++) expect(() => installArgdata(full.wasi.context, { type: 'seq', items: [file] })).toThrow(/open descriptors/);
    expect(hostFdsInto(host)).toEqual([]);
  });
});
