// Casper services answered in the guest's worker (src/casper/in-worker.ts): a guest sees exactly
// what the broker on the host thread answers (replies, refusals, limits, clones, audit entries),
// the broker never sees those services' commands, limits only narrow, and the work counts against
// the run's CPU limit. The scripted guest of script-guest.ts sends the same requests both ways.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Broker } from '../../src/casper/broker.js';
import { InWorkerServices, type LocalChannel } from '../../src/casper/in-worker.js';
import { NvList, type NvValue } from '../../src/casper/nvlist.js';
import { unpackNvlist } from '../../src/casper/nvlist-codec.js';
import { CasperError, type CasperService } from '../../src/casper/service.js';
import { CAP_SYSCTL } from '../../src/casper/services/sysctl.js';
import { casperHandler } from '../../src/host/casper-handler.js';
import { CASPER_OP, encodeCasperRequest } from '../../src/host/casper-wire.js';
import { BRIDGE_KIND } from '../../src/host/functions.js';
import { createHost, type Host, type RunRequest } from '../../src/host/host.js';
import { ERRNO } from '../../src/wasi/constants.js';
import { endLeftoverRuns } from '../helpers/host.js';
import { GUEST, close, cmd, concat, init, xfer } from './script-guest.js';

const CONFIG = {
  'system.sysctl': { hostname: 'box.example' },
  'system.pwd': { users: [
    { pw_name: 'root', pw_passwd: '*', pw_uid: 0, pw_gid: 0, pw_gecos: 'Charlie &', pw_dir: '/root', pw_shell: '/bin/sh' },
    { pw_name: 'ann', pw_passwd: '*', pw_uid: 1001, pw_gid: 100, pw_gecos: 'Ann', pw_dir: '/home/ann', pw_shell: '/bin/sh' },
    { pw_name: 'bob', pw_passwd: '*', pw_uid: 1002, pw_gid: 100, pw_gecos: 'Bob', pw_dir: '/home/bob', pw_shell: '/bin/sh' },
  ] },
};
const GRANTS: RunRequest['casper'] = {
  'system.random': {},
  'system.sysctl': { names: { 'kern.hostname': 'rdwr', 'kern.ostype': 'read' } },
  'system.pwd': { cmds: ['getpwnam', 'getpwent', 'setpwent', 'getpwuid'] },
  'system.grp': {},
};

let inWorker: Host;
let onHost: Host;
beforeAll(async () => {
  [inWorker, onHost] = await Promise.all([
    createHost({ workers: 1, casperConfig: CONFIG }),
    createHost({ workers: 1, casperConfig: CONFIG, casperInWorker: false }),
  ]);
});
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all([endLeftoverRuns(inWorker), endLeftoverRuns(onHost)]);
});
afterAll(async () => { await Promise.all([inWorker.close(), onHost.close()]); });

/** A reply as plain data; random bytes become their length (they differ from run to run). */
function plain(list: NvList): unknown[] {
  const value = (name: string, v: NvValue): unknown => {
    if (v.type === 'nvlist') return plain(v.value);
    if (v.type === 'nvlist_array') return v.value.map(plain);
    if (v.type === 'binary') return name === 'data' ? `${v.value.length} random bytes` : [...v.value];
    if (v.type === 'null') return null;
    return typeof v.value === 'bigint' ? v.value.toString() : v.value;
  };
  return list.pairs.map(([n, v]) => [n, v.type, value(n, v)]);
}

/** Every call's errno and reply (init's: the fd), from the scripted guest's stdout. */
function outcomes(stdout: Uint8Array): { errno: number; reply?: unknown }[] {
  const out: { errno: number; reply?: unknown }[] = [];
  for (let at = 0; at + 8 <= stdout.length;) {
    const dv = new DataView(stdout.buffer, stdout.byteOffset + at, 8);
    const errno = dv.getUint32(0, true);
    const body = stdout.subarray(at + 8, at + 8 + dv.getUint32(4, true));
    at += 8 + body.length;
    out.push(body.length === 0 ? { errno } : body.length === 4 ? { errno, reply: new DataView(body.buffer, body.byteOffset).getUint32(0, true) } : { errno, reply: plain(unpackNvlist(body)) });
  }
  return out;
}
const errorOf = (o: { reply?: unknown }): number | undefined => {
  const pair = (o.reply as unknown[][] | undefined)?.find((p) => p[0] === 'error');
  return pair ? Number(pair[2]) : undefined;
};
const stringOf = (o: { reply?: unknown }, name: string): string | undefined =>
  (o.reply as unknown[][] | undefined)?.find((p) => p[0] === name)?.[2] as string | undefined;

const open = (service: string) => xfer(3, 1, cmd('open', (l) => l.addString('service', service)));
const read = (name: string) => cmd('sysctlbyname', (l) => l.addString('name', name).addNumber('operation', CAP_SYSCTL.READ).addNumber('oldlen', 256));
const limitSet = (fill: (limits: NvList) => void) => cmd('limit_set', (l) => { const limits = new NvList(); fill(limits); l.addNvlist('limits', limits); });
const pwdCmds = (...cmds: string[]) => limitSet((l) => { const c = new NvList(); for (const n of cmds) c.addNull(n); l.addNvlist('cmds', c); });
const sysctlLimit = (name: string, op: number) => limitSet((l) => l.addNvlist('limit', new NvList().addString('name', name).addNumber('operation', op)));

// fds: 3 core, 4 random, 5 sysctl, 6 pwd, 7 grp, 8 a clone of 6, 9 a clone of 6 after it narrowed.
const SCRIPT = concat([
  init(), open('system.random'), open('system.sysctl'), open('system.pwd'), open('system.grp'),
  /* 5 */ xfer(4, 1, cmd('generate', (l) => l.addNumber('size', 16))),
  xfer(4, 1, cmd('generate', (l) => l.addNumber('size', 0))),
  xfer(4, 1, cmd('bogus')),
  xfer(4, 1, new NvList().addNumber('size', 16)), // no "cmd"
  xfer(4, 1, cmd('generate', (l) => l.addNumber('size', 16).addDescriptor('fd', 0))),
  /* 10 */ xfer(4, 1, new Uint8Array([1, 2, 3, 4, 5, 6, 7])), // not an nvlist
  xfer(4, 1, limitSet(() => {})), // system.random has no limits: EOPNOTSUPP
  xfer(5, 1, read('kern.hostname')),
  xfer(5, 1, cmd('sysctlbyname', (l) => l.addString('name', 'kern.hostname').addNumber('operation', CAP_SYSCTL.WRITE).addBinary('newp', new TextEncoder().encode('renamed\0')))),
  xfer(5, 1, read('kern.hostname')),
  /* 15 */ xfer(5, 1, read('hw.ncpu')), // outside the grant
  xfer(5, 1, sysctlLimit('kern.ostype', CAP_SYSCTL.READ)), // narrows
  xfer(5, 1, read('kern.hostname')), // now refused
  xfer(5, 1, sysctlLimit('hw.ncpu', CAP_SYSCTL.READ)), // widens: refused
  xfer(5, 1, read('hw.ncpu')),
  /* 20 */ xfer(5, 1, read('kern.ostype')),
  xfer(5, 1, cmd('limit_get')),
  xfer(6, 1, cmd('getpwnam', (l) => l.addString('name', 'ann'))),
  xfer(6, 2, cmd('getpwent')),
  /* 25 */ xfer(6, 1, cmd('clone')),
  xfer(8, 1, cmd('getpwent')), // a clone's cursor starts afresh
  xfer(6, 1, cmd('getpwent')), // the parent's goes on
  xfer(6, 1, cmd('getpwent')),
  xfer(6, 1, pwdCmds('getpwnam')), // narrows
  xfer(6, 1, cmd('getpwent')),
  xfer(6, 1, cmd('getpwuid', (l) => l.addNumber('uid', 0))),
  xfer(8, 1, cmd('getpwuid', (l) => l.addNumber('uid', 0))), // the earlier clone keeps the wider limits
  xfer(6, 1, pwdCmds('getpwnam', 'getpwuid')), // widens: refused
  xfer(6, 1, cmd('getpwuid', (l) => l.addNumber('uid', 0))),
  /* 35 */ xfer(6, 1, limitSet((l) => l.addNvlist('cmds', new NvList().addNull('getpwnam')).addString('junk', 'x'))), // malformed: EINVAL
  xfer(6, 1, cmd('getpwnam', (l) => l.addString('name', 'root'))),
  xfer(6, 1, cmd('clone')),
  xfer(9, 1, cmd('getpwent')), // the new clone has the narrowed limits
  xfer(7, 1, cmd('getgrgid', (l) => l.addNumber('gid', 0))),
  /* 40 */ close(6),
  xfer(6, 1, cmd('getpwnam', (l) => l.addString('name', 'root'))),
  xfer(8, 1, cmd('getpwnam', (l) => l.addString('name', 'root'))),
]);

describe('Casper services answered in the guest\'s worker', { timeout: 90_000 }, () => {
  it('a guest sees the same replies, refusals, limits and audit entries as through the host thread', async () => {
    const req = { module: GUEST, casper: GRANTS, audit: 'all' as const, stdin: SCRIPT };
    const [w, h] = await Promise.all([inWorker.run(req), onHost.run(req)]);
    expect(w.status, w.message).toBe('exited');
    expect(h.status, h.message).toBe('exited');
    const ow = outcomes(w.stdout);
    expect(ow).toEqual(outcomes(h.stdout));
    // The audit trails match entry for entry, numbered in one sequence with the guest's WASI calls.
    const entries = (r: typeof w) => r.audit.events.map(({ t: _t, ...e }) => e);
    expect(entries(w)).toEqual(entries(h));
    expect(entries(w).map((e) => e.seq)).toEqual(entries(w).map((_, i) => i));
    expect(entries(w).some((e) => e.call === 'fd_write')).toBe(true);
    expect(entries(w).filter((e) => e.call === 'system.pwd.getpwuid').map((e) => e.decision)).toEqual(['denied', 'allowed', 'denied']);

    // And the answers are the services' own.
    expect(ow.slice(0, 5).map((o) => o.errno)).toEqual([0, 0, 0, 0, 0]);
    expect(ow[5]!.reply).toEqual([['data', 'binary', '16 random bytes'], ['error', 'number', '0']]);
    expect([6, 7, 8, 9].map((i) => errorOf(ow[i]!))).toEqual([ERRNO.INVAL, ERRNO.INVAL, ERRNO.INVAL, ERRNO.INVAL]);
    expect(ow[10]).toEqual({ errno: ERRNO.INVAL });
    expect(errorOf(ow[11]!)).toBe(ERRNO.NOTSUP);
    const text = (o: { reply?: unknown }) => (o.reply as unknown[][]).find((p) => p[0] === 'oldp')?.[2] as number[];
    expect(Buffer.from(text(ow[12]!)).toString()).toBe('box.example\0');
    expect(errorOf(ow[13]!)).toBe(0);
    expect(Buffer.from(text(ow[14]!)).toString()).toBe('renamed\0');
    expect([15, 16, 17, 18, 19, 20].map((i) => errorOf(ow[i]!))).toEqual([ERRNO.NOTCAPABLE, 0, ERRNO.NOTCAPABLE, ERRNO.NOTCAPABLE, ERRNO.NOTCAPABLE, 0]);
    expect(stringOf(ow[22]!, 'pw_name')).toBe('ann');
    // getpwent, getpwent, clone, the clone's getpwent, then the parent's: its cursor went on.
    expect([23, 24, 26, 27, 28].map((i) => stringOf(ow[i]!, 'pw_name'))).toEqual(['root', 'ann', 'root', 'bob', undefined]);
    expect(errorOf(ow[25]!)).toBe(0);
    // Narrowed to getpwnam: getpwent and getpwuid refused; the older clone still has getpwuid.
    expect([29, 30, 31, 32, 33, 34, 35, 36].map((i) => errorOf(ow[i]!))).toEqual([0, ERRNO.NOTCAPABLE, ERRNO.NOTCAPABLE, 0, ERRNO.NOTCAPABLE, ERRNO.NOTCAPABLE, ERRNO.INVAL, 0]);
    expect(stringOf(ow[32]!, 'pw_name')).toBe('root');
    expect(errorOf(ow[38]!)).toBe(ERRNO.NOTCAPABLE);
    expect(stringOf(ow[39]!, 'gr_name')).toBe('wheel');
    expect(ow.slice(40, 42)).toEqual([{ errno: 0 }, { errno: ERRNO.BADF }]);
    expect(stringOf(ow[42]!, 'pw_name')).toBe('root');
  });

  it('the broker on the host thread sees only the channels\' own commands, never the services\'', async () => {
    const seen = (host: Host) => async () => {
      const spy = vi.spyOn(Broker.prototype, 'xfer');
      const r = await host.run({ module: GUEST, casper: GRANTS, stdin: SCRIPT });
      expect(r.status, r.message).toBe('exited');
      const cmds = spy.mock.calls.map(([, request]) => request.getString('cmd'));
      spy.mockRestore();
      return cmds;
    };
    const worker = await seen(inWorker)();
    // open ×4, the limits of each new in-worker channel, and the guest's limit_set, limit_get and clones.
    expect(new Set(worker)).toEqual(new Set(['open', 'limit_get', 'limit_set', 'clone']));
    expect(worker.filter((c) => c === 'limit_set')).toHaveLength(6);
    const host = await seen(onHost)();
    expect(host).toEqual(expect.arrayContaining(['generate', 'sysctlbyname', 'getpwnam', 'getpwent', 'getgrgid']));
  });

  it('a flood of in-worker calls ends at the run\'s CPU limit', async () => {
    const r = await inWorker.run({
      module: GUEST, casper: GRANTS, limits: { cpuMs: 300, wallMs: 30_000 },
      stdin: concat([init(), open('system.random'), xfer(4, 0, cmd('generate', (l) => l.addNumber('size', 65536)))]),
    });
    expect(r.status).toBe('timeout');
    expect(r.timeout).toBe('cpu');
  });
});

describe('InWorkerServices', () => {
  const throwing = (error: unknown): CasperService => ({ name: 'test.bad', command: () => { throw error; } });
  const channel = (service: CasperService): LocalChannel => ({ service, limits: null, state: new Map([['cursor', 3]]) });

  it('a service that throws answers EIO, is reported, and loses its channel\'s and sandbox\'s state', () => {
    const faults: string[] = [];
    let sandbox: Map<string, unknown> | undefined;
    const keeps: CasperService = { name: 'test.bad', command: (_c, _l, _r, ctx) => { sandbox = ctx.sandboxState; ctx.sandboxState.set('k', 1); return new NvList(); } };
    const services = new InWorkerServices({ 'test.bad': keeps }, {}, (s, e) => faults.push(`${s}: ${(e as Error).message}`));
    const ch = channel(keeps);
    expect(services.command(ch, 'x', new NvList()).errno).toBe(0);
    const first = sandbox;
    (keeps as { command: CasperService['command'] }).command = throwing(new Error('boom')).command;
    const a = services.command(ch, 'x', new NvList());
    expect(a.errno).toBe(ERRNO.IO);
    expect(a.reply.getNumber('error')).toBe(BigInt(ERRNO.IO));
    expect(faults).toEqual(['test.bad: boom']);
    expect(ch.state.size).toBe(0);
    (keeps as { command: CasperService['command'] }).command = (_c, _l, _r, ctx) => { sandbox = ctx.sandboxState; return new NvList(); };
    services.command(ch, 'x', new NvList());
    expect(sandbox).not.toBe(first);
    expect(sandbox!.size).toBe(0);
  });

  it('a refusal keeps its message and the state; an asynchronous answer is a fault', () => {
    const faults: unknown[] = [];
    const services = new InWorkerServices({}, {}, (_s, e) => faults.push(e));
    const ch = channel(throwing(new CasperError(ERRNO.NOTCAPABLE, 'not this one', true)));
    const a = services.command(ch, 'x', new NvList());
    expect(plain(a.reply)).toEqual([['refused', 'string', 'not this one'], ['error', 'number', String(ERRNO.NOTCAPABLE)]]);
    expect(ch.state.size).toBe(1);
    expect(faults).toEqual([]);
    const later = channel({ name: 'test.async', command: async () => new NvList() });
    expect(services.command(later, 'x', new NvList()).errno).toBe(ERRNO.IO);
    expect(String(faults[0])).toMatch(/asynchronously/);
  });

  it('serves only the services it was given', () => {
    const services = new InWorkerServices({ 'system.random': { name: 'system.random', command: () => new NvList() } }, {}, () => {});
    expect(services.serviceOf('system.random')?.name).toBe('system.random');
    expect(services.serviceOf('system.dns')).toBeUndefined();
    expect(services.serviceOf('toString')).toBeUndefined();
  });

  it('the host lists a fault the worker reports among the run\'s warnings', async () => {
    const reported: string[] = [];
    const handler = casperHandler(new Broker({ grants: {}, services: {} }), { onServiceError: (s, e) => reported.push(`${s}: ${(e as Error).message}`) });
    const payload = new TextEncoder().encode(JSON.stringify({ service: 'system.pwd', message: 'boom' }));
    const memory = { readMemory: () => Promise.reject(new Error('unused')), writeMemory: () => Promise.reject(new Error('unused')) };
    await handler(encodeCasperRequest(BRIDGE_KIND.casper, CASPER_OP.fault, 0, payload), memory);
    await handler(encodeCasperRequest(BRIDGE_KIND.casper, CASPER_OP.fault, 0, new Uint8Array([0xff])), memory);
    expect(reported).toEqual(['system.pwd: boom', '?: unknown failure']);
  });
});
