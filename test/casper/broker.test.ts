import { describe, expect, it, vi } from 'vitest';
import { Broker } from '../../src/casper/broker.js';
import { NvList } from '../../src/casper/nvlist.js';
import { CasperError, type CasperService } from '../../src/casper/service.js';
import { ERRNO } from '../../src/wasi/constants.js';

// A service whose limits are a list of allowed words ("w0", "w1"…): a new set must be a subset.
const words = (l: NvList | null) => (l ? l.pairs.map(([, v]) => (v.type === 'string' ? v.value : '?')) : null);
const echo: CasperService = {
  name: 'test.echo',
  limit(old, next) {
    const o = words(old);
    for (const w of words(next)!) if (o && !o.includes(w)) return ERRNO.NOTCAPABLE;
    return 0;
  },
  command(cmd, limits, req, ctx) {
    if (cmd === 'boom') throw new Error('the service crashed');
    if (cmd === 'scribble') { limits?.addString('w99', 'anything'); return new NvList(); }
    if (cmd === 'hang') return new Promise<NvList>(() => {});
    if (cmd === 'count') {
      const n = ((ctx.sandboxState.get('n') as number | undefined) ?? 0) + 1;
      ctx.sandboxState.set('n', n);
      return new NvList().addNumber('n', n);
    }
    const w = req.getString('word') ?? '';
    const allowed = words(limits);
    if (allowed && !allowed.includes(w)) throw new CasperError(ERRNO.NOTCAPABLE);
    return new NvList().addString('word', w);
  },
  fromManifest: (g) => {
    const l = new NvList();
    (g['words'] as string[]).forEach((w, i) => l.addString(`w${i}`, w));
    return l;
  },
};
const nolimit: CasperService = { name: 'test.nolimit', command: () => new NvList() };
const SERVICES = { 'test.echo': echo, 'test.nolimit': nolimit };

const req = (cmd: string, f?: (l: NvList) => void) => { const l = new NvList().addString('cmd', cmd); f?.(l); return l; };
const limitsOf = (...ws: string[]) => { const l = new NvList(); ws.forEach((w, i) => l.addString(`w${i}`, w)); return l; };

async function open(b: Broker, name: string) {
  const core = b.openCore();
  const r = await b.xfer(core, req('open', (l) => l.addString('service', name)));
  return { core, r, channel: r.errno === 0 ? (r.descriptors[r.reply.get('chanfd', 'descriptor')!.value] as { id: number }).id : -1 };
}

describe('the core channel', () => {
  it('opens a granted service and hands back a channel descriptor', async () => {
    const b = new Broker({ grants: { 'test.echo': {} }, services: SERVICES });
    const { r, channel } = await open(b, 'test.echo');
    expect(r.errno).toBe(0);
    expect(r.reply.getNumber('error')).toBe(0n);
    expect(r.descriptors).toEqual([{ kind: 'channel', id: channel }]);
    expect(b.has(channel)).toBe(true);
  });

  it('refuses a service the manifest does not grant (ENOTCAPABLE) and an unknown one (ENOENT)', async () => {
    const b = new Broker({ grants: { 'test.echo': {} }, services: SERVICES });
    expect((await open(b, 'test.nolimit')).r.errno).toBe(ERRNO.NOTCAPABLE);
    expect((await open(b, 'system.nope')).r.errno).toBe(ERRNO.NOENT);
  });

  it('cap_service_limit narrows the core channel and cannot widen it again', async () => {
    const b = new Broker({ grants: { 'test.echo': {}, 'test.nolimit': {} }, services: SERVICES });
    const core = b.openCore();
    const only = new NvList().addNull('test.echo');
    expect((await b.xfer(core, req('limit_set', (l) => l.addNvlist('limits', only)))).errno).toBe(0);
    const r = await b.xfer(core, req('open', (l) => l.addString('service', 'test.nolimit')));
    expect(r.errno).toBe(ERRNO.NOTCAPABLE);
    const wider = new NvList().addNull('test.echo').addNull('test.nolimit');
    expect((await b.xfer(core, req('limit_set', (l) => l.addNvlist('limits', wider)))).errno).toBe(ERRNO.NOTCAPABLE);
    const typed = new NvList().addString('test.echo', 'x');
    expect((await b.xfer(core, req('limit_set', (l) => l.addNvlist('limits', typed)))).errno).toBe(ERRNO.INVAL);
  });
});

describe('limits', () => {
  it('the manifest grant is the first limit; limit_set only narrows; limit_get reports', async () => {
    const b = new Broker({ grants: { 'test.echo': { words: ['a', 'b'] } }, services: SERVICES });
    const { channel } = await open(b, 'test.echo');
    expect((await b.xfer(channel, req('x', (l) => l.addString('word', 'c')))).errno).toBe(ERRNO.NOTCAPABLE);
    expect((await b.xfer(channel, req('x', (l) => l.addString('word', 'a')))).errno).toBe(0);
    expect((await b.xfer(channel, req('limit_set', (l) => l.addNvlist('limits', limitsOf('a', 'c'))))).errno).toBe(ERRNO.NOTCAPABLE);
    expect((await b.xfer(channel, req('limit_set', (l) => l.addNvlist('limits', limitsOf('b'))))).errno).toBe(0);
    expect((await b.xfer(channel, req('x', (l) => l.addString('word', 'a')))).errno).toBe(ERRNO.NOTCAPABLE);
    const got = await b.xfer(channel, req('limit_get'));
    expect(words(got.reply.getNvlist('limits')!)).toEqual(['b']);
  });

  it('limit_get without limits answers a NULL "limits"; a service without limit() answers EOPNOTSUPP', async () => {
    const b = new Broker({ grants: { 'test.nolimit': {} }, services: SERVICES });
    const { channel } = await open(b, 'test.nolimit');
    const got = await b.xfer(channel, req('limit_get'));
    expect(got.reply.exists('limits', 'null')).toBe(true);
    expect((await b.xfer(channel, req('limit_set', (l) => l.addNvlist('limits', new NvList())))).errno).toBe(ERRNO.NOTSUP);
  });

  it('clone gives a new channel the current limits', async () => {
    const b = new Broker({ grants: { 'test.echo': { words: ['a', 'b'] } }, services: SERVICES });
    const { channel } = await open(b, 'test.echo');
    await b.xfer(channel, req('limit_set', (l) => l.addNvlist('limits', limitsOf('a'))));
    const c = await b.xfer(channel, req('clone'));
    const clone = (c.descriptors[c.reply.get('sock', 'descriptor')!.value] as { id: number }).id;
    expect(clone).not.toBe(channel);
    expect((await b.xfer(clone, req('x', (l) => l.addString('word', 'b')))).errno).toBe(ERRNO.NOTCAPABLE);
    expect((await b.xfer(clone, req('x', (l) => l.addString('word', 'a')))).errno).toBe(0);
  });
});

describe('bad requests and failing services', () => {
  it('a request without "cmd", with descriptors, or on a closed channel is an error reply', async () => {
    const b = new Broker({ grants: { 'test.echo': {} }, services: SERVICES });
    const { channel } = await open(b, 'test.echo');
    expect((await b.xfer(channel, new NvList())).errno).toBe(ERRNO.INVAL);
    expect((await b.xfer(channel, req('x', (l) => l.addDescriptor('fd', 3)))).errno).toBe(ERRNO.INVAL);
    b.close(channel);
    expect((await b.xfer(channel, req('x'))).errno).toBe(ERRNO.BADF);
  });

  it('a service that throws fails that call, is restarted (its state dropped), and the next call works', async () => {
    const errors: unknown[] = [];
    const b = new Broker({ grants: { 'test.echo': {} }, services: SERVICES, onServiceError: (_s, e) => errors.push(e) });
    const { channel } = await open(b, 'test.echo');
    expect((await b.xfer(channel, req('count'))).reply.getNumber('n')).toBe(1n);
    expect((await b.xfer(channel, req('count'))).reply.getNumber('n')).toBe(2n);
    expect((await b.xfer(channel, req('boom'))).errno).toBe(ERRNO.IO);
    expect(errors).toHaveLength(1);
    expect((await b.xfer(channel, req('count'))).reply.getNumber('n')).toBe(1n);
  });

  it('a service that hangs fails that call with ETIMEDOUT', async () => {
    const b = new Broker({ grants: { 'test.echo': {} }, services: SERVICES, timeoutMs: 50 });
    const { channel } = await open(b, 'test.echo');
    expect((await b.xfer(channel, req('hang'))).errno).toBe(ERRNO.TIMEDOUT);
    expect((await b.xfer(channel, req('x', (l) => l.addString('word', 'ok')))).errno).toBe(0);
  });
});

describe('bounds: what a guest can make the broker hold', () => {
  const sock = (r: { reply: NvList; descriptors: unknown[] }) => (r.descriptors[r.reply.get('sock', 'descriptor')!.value] as { id: number }).id;

  it('clones share their parent\'s limits: 16 clones hold the bytes of one list', async () => {
    const b = new Broker({ grants: { 'test.echo': {} }, services: SERVICES });
    const { channel } = await open(b, 'test.echo');
    expect((await b.xfer(channel, req('limit_set', (l) => l.addNvlist('limits', limitsOf('a', 'b'))), [], 1000)).errno).toBe(0);
    expect(b.usage().limitsBytes).toBe(1000);
    const clones: number[] = [];
    for (let i = 0; i < 16; i++) clones.push(sock(await b.xfer(channel, req('clone'))));
    expect(b.usage().limitsBytes).toBe(1000);
    // The list is released with the last channel that holds it.
    b.close(channel);
    for (const c of clones.slice(1)) b.close(c);
    expect(b.usage().limitsBytes).toBe(1000);
    b.close(clones[0]!);
    expect(b.usage().limitsBytes).toBe(0);
  });

  it('limits held past maxLimitsBytes are ENOMEM, the old limits stay, and closing frees room', async () => {
    const b = new Broker({ grants: { 'test.echo': {} }, services: SERVICES, maxLimitsBytes: 2500 });
    const a = (await open(b, 'test.echo')).channel;
    const c = (await open(b, 'test.echo')).channel;
    const set = (ch: number, ...ws: string[]) => b.xfer(ch, req('limit_set', (l) => l.addNvlist('limits', limitsOf(...ws))), [], 1000);
    expect((await set(a, 'a', 'b')).errno).toBe(0);
    expect((await set(c, 'a', 'b')).errno).toBe(0);
    const d = sock(await b.xfer(c, req('clone')));
    expect((await set(d, 'a')).errno).toBe(ERRNO.NOMEM);
    expect((await b.xfer(d, req('x', (l) => l.addString('word', 'b')))).errno).toBe(0);
    // Narrowing a list only this channel holds replaces it: no room needed.
    expect((await set(a, 'a')).errno).toBe(0);
    expect(b.usage().limitsBytes).toBe(2000);
    b.close(a);
    expect((await set(d, 'a')).errno).toBe(0);
    expect(b.usage().limitsBytes).toBe(2000);
  });

  it('past maxChannels, open, clone and cap_init are EMFILE; a closed channel makes room', async () => {
    const b = new Broker({ grants: { 'test.echo': {} }, services: SERVICES, maxChannels: 3 });
    const { core, channel } = await open(b, 'test.echo');
    const third = sock(await b.xfer(channel, req('clone')));
    expect((await b.xfer(channel, req('clone'))).errno).toBe(ERRNO.MFILE);
    expect((await b.xfer(core, req('open', (l) => l.addString('service', 'test.echo')))).errno).toBe(ERRNO.MFILE);
    expect(() => b.openCore()).toThrow(expect.objectContaining({ errno: ERRNO.MFILE }));
    expect(b.usage().channels).toBe(3);
    b.close(third);
    expect((await b.xfer(channel, req('clone'))).errno).toBe(0);
  });

  it('shared limits are frozen: a service that writes to them fails that call (EIO) and they stay', async () => {
    const b = new Broker({ grants: { 'test.echo': { words: ['a'] } }, services: SERVICES });
    const { channel } = await open(b, 'test.echo');
    expect((await b.xfer(channel, req('scribble'))).errno).toBe(ERRNO.IO);
    expect(words((await b.xfer(channel, req('limit_get'))).reply.getNvlist('limits')!)).toEqual(['a']);
  });
});

describe('sockets lent to services', () => {
  // A service that connects where asked, then fails when asked to ("after": the socket was made).
  const dialer: CasperService = {
    name: 'test.dial',
    async command(cmd, _limits, r, ctx) {
      const index = await ctx.connectSocket!({ host: '127.0.0.1', port: Number(r.getNumber('port') ?? 0n) });
      if (cmd === 'dial-then-fail') throw new CasperError(ERRNO.NOTCAPABLE);
      return new NvList().addDescriptor('s', index);
    },
  };
  const provider = () => {
    const released: number[] = [];
    const pending: ((slot: number) => void)[] = [];
    return {
      released, pending,
      sockets: {
        connect: () => new Promise<number>((resolve) => pending.push(resolve)),
        listen: () => Promise.reject(new Error('unused')),
        release: (slot: number) => { released.push(slot); },
      },
    };
  };

  it('a socket that arrives after the request timed out is released, not handed out', async () => {
    const p = provider();
    const b = new Broker({ grants: { 'test.dial': {} }, services: { 'test.dial': dialer }, timeoutMs: 50, sockets: p.sockets });
    const { channel } = await open(b, 'test.dial');
    const a = await b.xfer(channel, req('dial'));
    expect(a.errno).toBe(ERRNO.TIMEDOUT);
    expect(a.descriptors).toEqual([]);
    p.pending[0]!(7);
    await vi.waitFor(() => expect(p.released).toEqual([7]));
  });

  it('a socket of a request that then fails is released; one that succeeds is handed out', async () => {
    const p = provider();
    const b = new Broker({ grants: { 'test.dial': {} }, services: { 'test.dial': dialer }, sockets: p.sockets });
    const { channel } = await open(b, 'test.dial');
    const failing = b.xfer(channel, req('dial-then-fail'));
    await vi.waitFor(() => expect(p.pending).toHaveLength(1));
    p.pending[0]!(3);
    const f = await failing;
    expect(f.errno).toBe(ERRNO.NOTCAPABLE);
    expect(f.descriptors).toEqual([]);
    expect(p.released).toEqual([3]);
    const ok = b.xfer(channel, req('dial'));
    await vi.waitFor(() => expect(p.pending).toHaveLength(2));
    p.pending[1]!(4);
    expect((await ok).descriptors).toEqual([{ kind: 'socket', slot: 4, listening: false }]);
    b.releaseDescriptors((await ok).descriptors);
    expect(p.released).toEqual([3, 4]);
  });
});
