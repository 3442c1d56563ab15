/**
 * Socket descriptors. A guest never creates a socket: it is handed one (a manifest's `!socket`,
 * `--listen`, a Casper `system.net` connection) or accepts one from a listener it holds. What the
 * descriptor talks to is a SocketEndpoint, implemented above this layer (the host's sockets live
 * on another thread); this file only adds blocking, non-blocking and poll readiness on top of it,
 * sleeping on the run's Waker while nothing is ready.
 */
import { ERRNO, FILETYPE, SDFLAGS } from './constants.js';
import { fail } from './errors.js';
import { Handle } from './handles.js';
import { R } from './rights.js';
import type { Waker } from './wake.js';

/** The other end of a socket descriptor; none of its calls blocks. */
export interface SocketEndpoint {
  /** A listening socket (sock_accept) rather than a connected one. */
  readonly listening: boolean;
  /**
   * A datagram socket: a receive returns one datagram (what does not fit the buffers is dropped,
   * and `truncated` says so), a send is one datagram, whole or not at all.
   */
  readonly datagram?: boolean;
  /** Whether the last receive dropped the end of a datagram (roflags.recv_data_truncated). */
  readonly truncated?: boolean;
  /** The peer's address ("127.0.0.1:41234"), for the audit trail. */
  readonly peer?: string | undefined;
  /** Bytes that a receive returns now (a listener: connections waiting to be accepted; a datagram socket: non-zero while one waits). */
  available(): number;
  /** Whether the peer ended or broke the stream (a read then returns 0 or fails). */
  hungUp(): boolean;
  /** Whether a send would take at least one byte now (or fail at once). */
  writable(): boolean;
  /** Copies received bytes into `bufs` (consumed unless `peek`); 0 at end of stream; -1 when none is there yet. */
  recv(bufs: Uint8Array[], peek: boolean): number;
  /** Takes as much of `bufs` as fits; -1 when nothing fits yet. Throws EPIPE once the stream is shut for writing. */
  send(bufs: Uint8Array[]): number;
  /** A connection waiting on a listener, or undefined when none is. */
  accept(): SocketEndpoint | undefined;
  shutdown(how: number): void;
  close(): void;
}

/** The rights an accepted or connected stream socket, or a datagram socket, may hold (CAP_RECV, CAP_SEND, CAP_SHUTDOWN, CAP_EVENT…). */
export const STREAM_SOCKET_RIGHTS = R.fd_read | R.fd_write | R.sock_shutdown | R.poll_fd_readwrite | R.fd_fdstat_set_flags | R.fd_filestat_get;
/** The rights a listening socket may hold (CAP_ACCEPT, CAP_EVENT…); what it accepts inherits STREAM_SOCKET_RIGHTS. */
export const LISTENER_RIGHTS = R.sock_accept | R.poll_fd_readwrite | R.fd_fdstat_set_flags | R.fd_filestat_get;

/** riflags and roflags of sock_recv (typenames.witx). */
export const RIFLAGS = { RECV_PEEK: 0x1, RECV_WAITALL: 0x2 } as const;
/** roflags.recv_data_truncated (typenames.witx). */
export const ROFLAGS_RECV_DATA_TRUNCATED = 0x1;

/** A socket descriptor of the guest. */
export class SocketHandle extends Handle {
  readonly filetype: number;
  constructor(readonly endpoint: SocketEndpoint, private readonly waker: Waker, nonblock = false) {
    super();
    this.nonblocking = nonblock;
    this.filetype = endpoint.datagram ? FILETYPE.SOCKET_DGRAM : FILETYPE.SOCKET_STREAM;
  }

  /** A listener is "readable" when a connection waits: that is CAP_ACCEPT's business, not CAP_READ's. */
  override pollRights(read: boolean): bigint {
    return read && this.endpoint.listening ? R.sock_accept | R.poll_fd_readwrite : super.pollRights(read);
  }

  /** Calls `attempt` until it has an answer, sleeping on the run's Waker in between (EAGAIN when non-blocking). */
  private wait<T>(attempt: () => T | undefined): T {
    for (;;) {
      const seq = this.waker.seq;
      const r = attempt();
      if (r !== undefined) return r;
      if (this.nonblocking) fail(ERRNO.AGAIN, 'the socket is not ready (non-blocking)');
      this.waker.sleep(seq, Infinity);
    }
  }

  /** sock_recv: `waitall` keeps receiving until the buffers are full or the stream ends. */
  recv(bufs: Uint8Array[], peek: boolean, waitall: boolean): number {
    if (this.endpoint.listening) fail(ERRNO.NOTCONN, 'a listening socket has no stream to read; accept a connection');
    const want = bufs.reduce((n, b) => n + b.length, 0);
    if (want === 0) return 0;
    const first = this.wait(() => { const n = this.endpoint.recv(bufs, peek); return n < 0 ? undefined : n; });
    // A datagram is one receive: waitall does not join datagrams.
    if (!waitall || peek || first === 0 || first === want || this.nonblocking || this.endpoint.datagram) return first;
    let got = first;
    while (got < want) {
      const rest = remainder(bufs, got);
      const n = this.wait(() => { const k = this.endpoint.recv(rest, false); return k < 0 ? undefined : k; });
      if (n === 0) break;
      got += n;
    }
    return got;
  }

  override read(bufs: Uint8Array[]): number { return this.recv(bufs, false, false); }

  override write(bufs: Uint8Array[]): number {
    if (this.endpoint.listening) fail(ERRNO.NOTCONN, 'a listening socket has no stream to write; accept a connection');
    if (bufs.every((b) => b.length === 0)) return 0;
    // Like send(2) on a blocking socket: return once some bytes are taken (the guest loops for the rest).
    return this.wait(() => { const n = this.endpoint.send(bufs); return n < 0 ? undefined : n; });
  }

  /** sock_accept: the next waiting connection. */
  accept(): SocketEndpoint {
    if (!this.endpoint.listening) fail(ERRNO.INVAL, 'the socket is not listening');
    return this.wait(() => this.endpoint.accept());
  }

  shutdown(how: number): void {
    if (how === 0 || (how & ~(SDFLAGS.RD | SDFLAGS.WR)) !== 0) fail(ERRNO.INVAL, `sdflags ${how} is not rd, wr or both`);
    if (this.endpoint.listening) fail(ERRNO.NOTCONN, 'a listening socket is not connected');
    this.endpoint.shutdown(how);
  }

  override readReady(): boolean { return this.endpoint.available() > 0 || this.endpoint.hungUp(); }
  override writeReady(): boolean { return this.endpoint.listening ? false : this.endpoint.writable(); }
  override readyBytes(): number { return this.endpoint.available(); }
  override hungUp(): boolean { return this.endpoint.hungUp(); }
  override close(): void { this.endpoint.close(); }
}

/** The part of `bufs` after the first `skip` bytes. */
function remainder(bufs: Uint8Array[], skip: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const b of bufs) {
    if (skip >= b.length) { skip -= b.length; continue; }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}
