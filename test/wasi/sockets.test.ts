/**
 * Socket descriptors at the preview1 layer, over an in-memory SocketEndpoint: the rights matrix
 * (every socket call without its right is ENOTCAPABLE), witx's flags, blocking and non-blocking
 * behaviour, and poll readiness.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ERRNO, EVENTTYPE, FDFLAGS, FILETYPE, SDFLAGS } from '../../src/wasi/constants.js';
import { R } from '../../src/wasi/rights.js';
import { LISTENER_RIGHTS, RIFLAGS, SocketHandle, STREAM_SOCKET_RIGHTS, type SocketEndpoint } from '../../src/wasi/sockets.js';
import { harness, type Harness } from '../helpers/harness.js';

/** A connected or listening endpoint whose other side the test plays. */
class FakeEndpoint implements SocketEndpoint {
  inbox: number[] = [];
  sent: number[] = [];
  waiting: FakeEndpoint[] = [];
  eof = false;
  room = 1 << 20;
  shut = 0;
  closed = false;
  peer = '127.0.0.1:1234';
  constructor(readonly listening = false) {}
  available(): number { return this.listening ? this.waiting.length : this.inbox.length; }
  hungUp(): boolean { return this.eof; }
  writable(): boolean { return this.room > 0; }
  recv(bufs: Uint8Array[], peek: boolean): number {
    let n = 0;
    for (const b of bufs) for (let i = 0; i < b.length && n < this.inbox.length; i++) b[i] = this.inbox[n++]!;
    if (!peek) this.inbox.splice(0, n);
    return n > 0 ? n : this.eof ? 0 : -1;
  }
  send(bufs: Uint8Array[]): number {
    if (this.shut & SDFLAGS.WR) throw Object.assign(new Error('shut'), {});
    let n = 0;
    for (const b of bufs) for (const x of b) { if (this.room === 0) break; this.sent.push(x); this.room--; n++; }
    return n > 0 ? n : -1;
  }
  accept(): SocketEndpoint | undefined { return this.waiting.shift(); }
  shutdown(how: number): void { this.shut |= how; }
  close(): void { this.closed = true; }
}

const opened: Harness[] = [];
afterEach(() => { for (const h of opened.splice(0)) h.wasi.context.fds.closeAll(); });

/** A harness whose fd 3 is a listener and fd 4 a connected socket, with full rights. */
function setup() {
  const h = harness({});
  opened.push(h);
  const listener = new FakeEndpoint(true);
  const conn = new FakeEndpoint();
  const ctx = h.wasi.context;
  const lfd = ctx.fds.insert({ handle: new SocketHandle(listener, ctx.waker, true), base: LISTENER_RIGHTS, inheriting: STREAM_SOCKET_RIGHTS, fdflags: FDFLAGS.NONBLOCK });
  const cfd = ctx.fds.insert({ handle: new SocketHandle(conn, ctx.waker, true), base: STREAM_SOCKET_RIGHTS, inheriting: 0n, fdflags: FDFLAGS.NONBLOCK });
  const call = h.call;
  const dv = () => new DataView(h.memory.buffer);
  const out = h.alloc(8);
  const accept = (fd: number, flags: number = FDFLAGS.NONBLOCK): [number, number] => [call.sock_accept!(fd, flags, out), dv().getUint32(out, true)];
  const buf = h.alloc(16);
  const iov = h.iovecs([{ ptr: buf, len: 16 }]);
  const recv = (fd: number, flags = 0): [number, number, number] => {
    const e = call.sock_recv!(fd, iov, 1, flags, out, out + 4);
    return [e, dv().getUint32(out, true), dv().getUint16(out + 4, true)];
  };
  const data = h.put('hello');
  const siov = h.iovecs([data]);
  const send = (fd: number, flags = 0): [number, number] => [call.sock_send!(fd, siov, 1, flags, out), dv().getUint32(out, true)];
  const bytes = (n: number) => [...new Uint8Array(h.memory.buffer, buf, n)];
  const narrow = (fd: number, drop: bigint) => {
    const e = ctx.fds.peek(fd)!;
    expect(call.fd_fdstat_set_rights!(fd, e.base & ~drop, e.inheriting)).toBe(ERRNO.SUCCESS);
  };
  return { h, ctx, listener, conn, lfd, cfd, call, accept, recv, send, bytes, narrow, out, dv };
}

describe('socket rights matrix: each call without its right is ENOTCAPABLE', () => {
  const rows: [string, bigint, (s: ReturnType<typeof setup>) => number][] = [
    ['sock_accept (CAP_ACCEPT)', R.sock_accept, (s) => s.accept(s.lfd)[0]],
    ['sock_recv (CAP_RECV = CAP_READ)', R.fd_read, (s) => s.recv(s.cfd)[0]],
    ['fd_read (CAP_READ)', R.fd_read, (s) => s.call.fd_read!(s.cfd, s.h.iovecs([{ ptr: s.out, len: 1 }]), 1, s.out)],
    ['sock_send (CAP_SEND = CAP_WRITE)', R.fd_write, (s) => s.send(s.cfd)[0]],
    ['fd_write (CAP_WRITE)', R.fd_write, (s) => s.call.fd_write!(s.cfd, s.h.iovecs([s.h.put('x')]), 1, s.out)],
    ['sock_shutdown (CAP_SHUTDOWN)', R.sock_shutdown, (s) => s.call.sock_shutdown!(s.cfd, SDFLAGS.WR)],
    ['fd_fdstat_set_flags (CAP_FCNTL)', R.fd_fdstat_set_flags, (s) => s.call.fd_fdstat_set_flags!(s.cfd, 0)],
    ['fd_filestat_get (CAP_FSTAT)', R.fd_filestat_get, (s) => s.call.fd_filestat_get!(s.cfd, s.h.alloc(64))],
  ];
  for (const [name, right, run] of rows) {
    it(name, () => {
      const s = setup();
      s.conn.inbox.push(1);
      s.listener.waiting.push(new FakeEndpoint());
      expect(run(s), 'with the right').not.toBe(ERRNO.NOTCAPABLE);
      const t = setup();
      t.conn.inbox.push(1);
      t.listener.waiting.push(new FakeEndpoint());
      const fd = right === R.sock_accept ? t.lfd : t.cfd;
      t.narrow(fd, right);
      expect(run(t), 'without it').toBe(ERRNO.NOTCAPABLE);
    });
  }

  it('poll_oneoff on a socket needs CAP_EVENT; on a listener its read readiness needs CAP_ACCEPT, not CAP_READ', () => {
    const s = setup();
    s.listener.waiting.push(new FakeEndpoint());
    const poll = (fd: number, type: number): [number, number] => {
      const sub = s.h.alloc(48);
      const d = s.dv();
      d.setBigUint64(sub, 7n, true);
      d.setUint8(sub + 8, type);
      d.setUint32(sub + 16, fd, true);
      const ev = s.h.alloc(32);
      const e = s.call.poll_oneoff!(sub, ev, 1, s.out);
      return [e, s.dv().getUint16(ev + 8, true)];
    };
    expect(poll(s.lfd, EVENTTYPE.FD_READ)).toEqual([ERRNO.SUCCESS, ERRNO.SUCCESS]);
    s.narrow(s.lfd, R.sock_accept);
    expect(poll(s.lfd, EVENTTYPE.FD_READ)).toEqual([ERRNO.SUCCESS, ERRNO.NOTCAPABLE]);
    s.narrow(s.cfd, R.poll_fd_readwrite);
    expect(poll(s.cfd, EVENTTYPE.FD_WRITE)).toEqual([ERRNO.SUCCESS, ERRNO.NOTCAPABLE]);
  });

  it('an accepted socket holds what the listener passes on, and no more', () => {
    const s = setup();
    s.listener.waiting.push(new FakeEndpoint(), new FakeEndpoint());
    const [e1, fd1] = s.accept(s.lfd);
    expect(e1).toBe(ERRNO.SUCCESS);
    expect(s.ctx.fds.peek(fd1)!.base).toBe(STREAM_SOCKET_RIGHTS);
    // Narrow what the listener passes on: CAP_SEND is gone from what it accepts next.
    expect(s.call.fd_fdstat_set_rights!(s.lfd, LISTENER_RIGHTS, STREAM_SOCKET_RIGHTS & ~R.fd_write)).toBe(ERRNO.SUCCESS);
    const [, fd2] = s.accept(s.lfd);
    expect(s.ctx.fds.peek(fd2)!.base & R.fd_write).toBe(0n);
    expect(s.send(fd2)[0]).toBe(ERRNO.NOTCAPABLE);
    // Rights only shrink: the listener cannot get CAP_SEND back for what it accepts.
    expect(s.call.fd_fdstat_set_rights!(s.lfd, LISTENER_RIGHTS, STREAM_SOCKET_RIGHTS)).toBe(ERRNO.NOTCAPABLE);
  });
});

describe('sock_* per witx', () => {
  it('sock_recv: peek leaves the bytes, a plain recv takes them; roflags is 0; EAGAIN when non-blocking and empty; 0 at EOF', () => {
    const s = setup();
    s.conn.inbox.push(104, 105);
    expect(s.recv(s.cfd, RIFLAGS.RECV_PEEK)).toEqual([ERRNO.SUCCESS, 2, 0]);
    expect(s.recv(s.cfd)).toEqual([ERRNO.SUCCESS, 2, 0]);
    expect(s.bytes(2)).toEqual([104, 105]);
    expect(s.recv(s.cfd)[0]).toBe(ERRNO.AGAIN);
    s.conn.eof = true;
    expect(s.recv(s.cfd)).toEqual([ERRNO.SUCCESS, 0, 0]);
    expect(s.recv(s.cfd, 0x4)[0]).toBe(ERRNO.INVAL);
  });

  it('sock_send takes what fits; siflags must be 0; EAGAIN when nothing fits', () => {
    const s = setup();
    s.conn.room = 3;
    expect(s.send(s.cfd)).toEqual([ERRNO.SUCCESS, 3]);
    expect(s.send(s.cfd)[0]).toBe(ERRNO.AGAIN);
    expect(s.send(s.cfd, 1)[0]).toBe(ERRNO.INVAL);
    expect(s.conn.sent).toEqual([...'hel'].map((c) => c.charCodeAt(0)));
  });

  it('sock_shutdown: rd, wr or both; 0 or unknown bits are EINVAL; a listener holds no CAP_SHUTDOWN', () => {
    const s = setup();
    expect(s.call.sock_shutdown!(s.cfd, 0)).toBe(ERRNO.INVAL);
    expect(s.call.sock_shutdown!(s.cfd, 4)).toBe(ERRNO.INVAL);
    expect(s.call.sock_shutdown!(s.cfd, SDFLAGS.WR)).toBe(ERRNO.SUCCESS);
    expect(s.conn.shut).toBe(SDFLAGS.WR);
    expect(s.call.sock_shutdown!(s.lfd, SDFLAGS.RD)).toBe(ERRNO.NOTCAPABLE);
  });

  it('sock_accept: only fdflags.nonblock; EAGAIN when none waits (non-blocking); a connected socket lacks CAP_ACCEPT', () => {
    const s = setup();
    expect(s.accept(s.lfd, FDFLAGS.APPEND)[0]).toBe(ERRNO.INVAL);
    expect(s.accept(s.lfd)[0]).toBe(ERRNO.AGAIN);
    expect(s.accept(s.cfd)[0]).toBe(ERRNO.NOTCAPABLE);
    s.listener.waiting.push(new FakeEndpoint());
    const [e, fd] = s.accept(s.lfd);
    expect(e).toBe(ERRNO.SUCCESS);
    const st = s.h.alloc(24);
    expect(s.call.fd_fdstat_get!(fd, st)).toBe(ERRNO.SUCCESS);
    expect(s.dv().getUint8(st)).toBe(FILETYPE.SOCKET_STREAM);
    expect(s.dv().getUint16(st + 2, true)).toBe(FDFLAGS.NONBLOCK);
  });

  it('fd_close closes the endpoint; fd_seek lacks its right (a socket never holds CAP_SEEK)', () => {
    const s = setup();
    expect(s.call.fd_seek!(s.cfd, 0n, 0, s.out)).toBe(ERRNO.NOTCAPABLE);
    expect(s.call.fd_close!(s.cfd)).toBe(ERRNO.SUCCESS);
    expect(s.conn.closed).toBe(true);
  });

  it('a blocking recv sleeps on the run\'s Waker until the other side makes the socket ready', () => {
    const s = setup();
    const sock = s.ctx.fds.peek(s.cfd)!.handle as SocketHandle;
    sock.nonblocking = false;
    // The "other thread": the first check finds nothing and the data arrives with the wake.
    let checks = 0;
    const recv = s.conn.recv.bind(s.conn);
    s.conn.recv = (bufs, peek) => {
      if (checks++ === 0) { s.conn.inbox.push(42); s.ctx.waker.wake(); return -1; }
      return recv(bufs, peek);
    };
    expect(s.recv(s.cfd)).toEqual([ERRNO.SUCCESS, 1, 0]);
    expect(s.bytes(1)).toEqual([42]);
  });
});
