/**
 * The guest thread's end of a socket: a SocketEndpoint (src/wasi/sockets.ts) over a slot of the
 * run's net memory (./layout.ts). Nothing here blocks or allocates per byte: it copies between
 * the guest's buffers and the slot's rings and rings the host's doorbell.
 */
import { ERRNO } from '../../wasi/constants.js';
import { fail, RunTermination } from '../../wasi/errors.js';
import type { SocketEndpoint } from '../../wasi/sockets.js';
import {
  C, DGRAM_HEADER, GUEST_CLOSED, GUEST_SHUT_RD, GUEST_SHUT_WR, HOST_EOF, HOST_ERROR, KIND_DGRAM, KIND_LISTENER, MAX_DATAGRAM, type NetMemory, type Slot,
} from './layout.js';

/** Unwinds a guest whose sockets moved more bytes (net.bytes) or datagrams (net.datagrams) than its limit. */
export class NetLimitExceeded extends RunTermination {
  constructor(readonly limit: number, what: 'bytes' | 'datagrams' = 'bytes') {
    super(`the run's network traffic exceeded its limit of ${limit} ${what} (net.${what})`);
  }
}

/** Bytes received and sent by a run's sockets together, against net.bytes; datagrams, against net.datagrams. */
export class NetBudget {
  used = 0;
  datagrams = 0;
  constructor(readonly limit: number, readonly maxDatagrams = Infinity) {}
  /** How many of `want` bytes may still move (throws once nothing may). */
  allow(want: number): number {
    const left = this.limit - this.used;
    if (left <= 0) throw new NetLimitExceeded(this.limit);
    return Math.min(want, left);
  }
  spend(n: number): void { this.used += n; }
  /** One datagram of `n` bytes in or out: all of it within net.bytes, and one more within net.datagrams. */
  datagram(n: number): void {
    if (this.datagrams >= this.maxDatagrams) throw new NetLimitExceeded(this.maxDatagrams, 'datagrams');
    if (this.allow(n) < n) throw new NetLimitExceeded(this.limit);
    this.datagrams++;
    this.used += n;
  }
}

const decoder = new TextDecoder();

/** The peer address the host wrote into a slot's control words 4..15 (length, then ASCII). */
export function peerOf(slot: Slot): string | undefined {
  const len = Atomics.load(slot.ctl, 4);
  if (len <= 0) return undefined;
  const bytes = new Uint8Array(slot.ctl.buffer, slot.ctl.byteOffset + 20, Math.min(len, 44)).slice();
  return decoder.decode(bytes);
}

/** Writes `peer` into a slot's control words (host side, before the guest sees the slot). */
export function setPeer(slot: Slot, peer: string): void {
  const bytes = new TextEncoder().encode(peer).subarray(0, 44);
  new Uint8Array(slot.ctl.buffer, slot.ctl.byteOffset + 20, 44).set(bytes);
  Atomics.store(slot.ctl, 4, bytes.length);
}

/** Gives the host back a slot no descriptor came to hold: closed as a guest's close would. */
export function discardSlot(net: NetMemory, index: number): void {
  const slot = net.slots[index];
  if (!slot) return;
  Atomics.or(slot.ctl, C.GUEST, GUEST_CLOSED);
  net.ring();
}

/** A socket descriptor's view of its slot. */
export class SlotEndpoint implements SocketEndpoint {
  readonly listening: boolean;
  readonly datagram: boolean;
  readonly peer: string | undefined;
  truncated = false;
  private closed = false;
  constructor(private readonly net: NetMemory, private readonly slot: Slot, private readonly budget: NetBudget) {
    this.listening = slot.kind === KIND_LISTENER;
    this.datagram = slot.kind === KIND_DGRAM;
    this.peer = peerOf(slot);
  }

  available(): number {
    const n = this.slot.rx.available();
    return this.listening ? n >>> 2 : n;
  }

  hungUp(): boolean {
    return (this.slot.hostFlags() & (HOST_EOF | HOST_ERROR)) !== 0 || (this.slot.guestFlags() & GUEST_SHUT_RD) !== 0;
  }

  writable(): boolean {
    const room = this.datagram ? DGRAM_HEADER : 0;
    return this.slot.tx.room() > room || (this.slot.hostFlags() & HOST_ERROR) !== 0 || (this.slot.guestFlags() & GUEST_SHUT_WR) !== 0;
  }

  /** One datagram into `bufs` (the rest of it dropped); -1 when none waits. */
  private recvDatagram(bufs: Uint8Array[], peek: boolean): number {
    const s = this.slot;
    const head = new Uint8Array(DGRAM_HEADER);
    if (s.rx.read(head, true) < DGRAM_HEADER) {
      if (s.hostFlags() & HOST_ERROR) fail(this.brokenErrno(), `the socket to ${this.peer ?? 'its peer'} broke`);
      return -1;
    }
    const len = new DataView(head.buffer).getUint32(0, true);
    if (!peek) this.budget.datagram(len);
    const record = new Uint8Array(DGRAM_HEADER + len);
    s.rx.read(record, peek);
    let off = DGRAM_HEADER;
    for (const b of bufs) {
      const k = Math.min(b.length, record.length - off);
      b.set(record.subarray(off, off + k));
      off += k;
      if (off === record.length) break;
    }
    this.truncated = off < record.length;
    if (!peek) this.net.ring();
    return off - DGRAM_HEADER;
  }

  /** `bufs` as one datagram, whole or not at all; -1 when it does not fit the send ring yet. */
  private sendDatagram(bufs: Uint8Array[]): number {
    const total = bufs.reduce((n, b) => n + b.length, 0);
    if (this.peer === undefined) fail(ERRNO.DESTADDRREQ, 'the datagram socket is not connected: preview1 has no sendto, so it can only receive');
    if (total > MAX_DATAGRAM) fail(ERRNO.MSGSIZE, `a datagram of ${total} bytes is above the largest one a socket sends (${MAX_DATAGRAM})`);
    if (this.slot.tx.room() < DGRAM_HEADER + total) return -1;
    this.budget.datagram(total);
    const record = new Uint8Array(DGRAM_HEADER + total);
    new DataView(record.buffer).setUint32(0, total, true);
    let off = DGRAM_HEADER;
    for (const b of bufs) { record.set(b, off); off += b.length; }
    this.slot.tx.write(record);
    this.net.ring();
    return total;
  }

  private brokenErrno(): number {
    return Atomics.load(this.slot.ctl, C.ERRNO) || ERRNO.CONNRESET;
  }

  recv(bufs: Uint8Array[], peek: boolean): number {
    const s = this.slot;
    if (s.guestFlags() & GUEST_SHUT_RD) return 0;
    if (this.datagram) return this.recvDatagram(bufs, peek);
    let total = 0;
    if (peek) {
      // A peek reads from the same position for every buffer: read once, then scatter.
      const all = new Uint8Array(Math.min(bufs.reduce((n, b) => n + b.length, 0), s.rx.available()));
      total = s.rx.read(all, true);
      let off = 0;
      for (const b of bufs) { if (off >= total) break; const k = Math.min(b.length, total - off); b.set(all.subarray(off, off + k)); off += k; }
    } else {
      for (const b of bufs) {
        if (b.length === 0) continue;
        const room = this.budget.allow(b.length);
        const n = s.rx.read(room === b.length ? b : b.subarray(0, room));
        total += n;
        if (n < b.length) break;
      }
      if (total > 0) {
        this.budget.spend(total);
        // The host may have paused the socket for want of room: there is room now.
        this.net.ring();
      }
    }
    if (total > 0) return total;
    const host = s.hostFlags();
    if (host & HOST_ERROR) fail(this.brokenErrno(), `the connection to ${this.peer ?? 'the peer'} broke`);
    return host & HOST_EOF ? 0 : -1;
  }

  send(bufs: Uint8Array[]): number {
    const s = this.slot;
    if (s.guestFlags() & GUEST_SHUT_WR) fail(ERRNO.PIPE, 'the socket is shut down for writing');
    if (s.hostFlags() & HOST_ERROR) fail(ERRNO.PIPE, `the connection to ${this.peer ?? 'the peer'} broke`);
    if (this.datagram) return this.sendDatagram(bufs);
    let total = 0;
    for (const b of bufs) {
      if (b.length === 0) continue;
      const room = this.budget.allow(b.length);
      const n = s.tx.write(room === b.length ? b : b.subarray(0, room));
      total += n;
      if (n < b.length) break;
    }
    if (total === 0) return -1;
    this.budget.spend(total);
    this.net.ring();
    return total;
  }

  accept(): SocketEndpoint | undefined {
    const word = new Uint8Array(4);
    if (this.slot.rx.available() < 4) return undefined;
    this.slot.rx.read(word);
    const index = new DataView(word.buffer).getUint32(0, true);
    const slot = this.net.slots[index];
    if (!slot) throw new Error(`capsa bug: the host queued slot ${index}, which does not exist`);
    this.net.ring();
    return new SlotEndpoint(this.net, slot, this.budget);
  }

  shutdown(how: number): void {
    Atomics.or(this.slot.ctl, C.GUEST, (how & 1 ? GUEST_SHUT_RD : 0) | (how & 2 ? GUEST_SHUT_WR : 0));
    this.net.ring();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    Atomics.or(this.slot.ctl, C.GUEST, GUEST_CLOSED);
    this.net.ring();
  }
}
