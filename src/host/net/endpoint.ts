/**
 * The guest thread's end of a socket: a SocketEndpoint (src/wasi/sockets.ts) over a slot of the
 * run's net memory (./layout.ts). Nothing here blocks or allocates per byte: it copies between
 * the guest's buffers and the slot's rings and rings the host's doorbell.
 */
import { ERRNO } from '../../wasi/constants.js';
import { fail, RunTermination } from '../../wasi/errors.js';
import type { SocketEndpoint } from '../../wasi/sockets.js';
import {
  C, GUEST_CLOSED, GUEST_SHUT_RD, GUEST_SHUT_WR, HOST_EOF, HOST_ERROR, KIND_LISTENER, type NetMemory, type Slot,
} from './layout.js';

/** Unwinds a guest whose sockets moved more bytes than its limit (net.bytes). */
export class NetLimitExceeded extends RunTermination {
  constructor(readonly limit: number) {
    super(`the run's network traffic exceeded its limit of ${limit} bytes (net.bytes)`);
  }
}

/** Bytes received and sent by a run's sockets together, against limits.netBytes. */
export class NetBudget {
  used = 0;
  constructor(readonly limit: number) {}
  /** How many of `want` bytes may still move (throws once nothing may). */
  allow(want: number): number {
    const left = this.limit - this.used;
    if (left <= 0) throw new NetLimitExceeded(this.limit);
    return Math.min(want, left);
  }
  spend(n: number): void { this.used += n; }
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
  readonly peer: string | undefined;
  private closed = false;
  constructor(private readonly net: NetMemory, private readonly slot: Slot, private readonly budget: NetBudget) {
    this.listening = slot.kind === KIND_LISTENER;
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
    return this.slot.tx.room() > 0 || (this.slot.hostFlags() & HOST_ERROR) !== 0 || (this.slot.guestFlags() & GUEST_SHUT_WR) !== 0;
  }

  private brokenErrno(): number {
    return Atomics.load(this.slot.ctl, C.ERRNO) || ERRNO.CONNRESET;
  }

  recv(bufs: Uint8Array[], peek: boolean): number {
    const s = this.slot;
    if (s.guestFlags() & GUEST_SHUT_RD) return 0;
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
