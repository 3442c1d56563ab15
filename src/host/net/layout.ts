/**
 * The shared memory through which a guest's thread uses sockets that the host thread owns (Node's
 * sockets are asynchronous on the thread that made them; a guest's syscalls are synchronous).
 *
 * One SharedArrayBuffer per run that has sockets:
 *   header (64 bytes, Int32): [WAKER] the run's Waker cell (the host wakes the guest through it),
 *     [DOORBELL] rung by the guest when it took bytes, wrote bytes, shut down or closed (the host
 *     thread waits on it with Atomics.waitAsync), [SLOTS] the number of slots.
 *   slots, each: a 64-byte Int32 control area, then a receive ring and a send ring (ByteRing,
 *     ./output-ring.ts). A listener's receive ring carries the slot numbers of accepted
 *     connections (u32 LE), its send ring is unused. A datagram socket's rings carry records, a
 *     datagram each: its length (u32 LE), then its bytes, written with one ring write (so a
 *     reader sees a record whole or not at all).
 *
 * Slots belong to the host: it fills a free one (KIND free → stream) before it queues its number
 * on a listener, and frees it once the guest has closed it and its last bytes are sent. The rings
 * bound what either side buffers: a guest that never reads fills its receive ring and the host
 * pauses the socket; a peer that never reads fills the send ring and the guest's sends block.
 */
import { ByteRing, byteRingBytes } from '../worker/output-ring.js';

export const HEADER_BYTES = 64;
export const H = { WAKER: 0, DOORBELL: 1, SLOTS: 2 } as const;

const CTL_BYTES = 64;
/** Control words of a slot (Int32 indexes). */
export const C = {
  /** KIND_* */
  KIND: 0,
  /** HOST_* flags, set by the host. */
  HOST: 1,
  /** The errno of HOST_ERROR. */
  ERRNO: 2,
  /** GUEST_* flags, set by the guest. */
  GUEST: 3,
} as const;
export const KIND_FREE = 0;
export const KIND_LISTENER = 1;
export const KIND_STREAM = 2;
export const KIND_DGRAM = 3;
/** The peer ended its side (EOF after the buffered bytes). */
export const HOST_EOF = 1;
/** The connection broke (ERRNO says how); reads and writes fail with it. */
export const HOST_ERROR = 2;
export const GUEST_SHUT_RD = 1;
export const GUEST_SHUT_WR = 2;
export const GUEST_CLOSED = 4;

/** Bytes of each ring's data area: what one connection may hold in flight each way. */
export const RING_BYTES = 64 << 10;
/** A datagram record's header: the datagram's length, u32 LE. */
export const DGRAM_HEADER = 4;
/** The largest datagram a slot carries: its ring less the header (UDP's own largest, 65507, fits). */
export const MAX_DATAGRAM = RING_BYTES - DGRAM_HEADER;
const SLOT_BYTES = CTL_BYTES + 2 * byteRingBytes(RING_BYTES);

/** Allocates the shared memory of a run with `slots` sockets at once. */
export function createNetMemory(slots: number): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(HEADER_BYTES + slots * SLOT_BYTES);
  Atomics.store(new Int32Array(sab, 0, HEADER_BYTES / 4), H.SLOTS, slots);
  return sab;
}

/** One slot's control words and rings, as either side sees them. */
export class Slot {
  readonly ctl: Int32Array;
  readonly rx: ByteRing;
  readonly tx: ByteRing;
  constructor(sab: SharedArrayBuffer, readonly index: number) {
    const at = HEADER_BYTES + index * SLOT_BYTES;
    this.ctl = new Int32Array(sab, at, CTL_BYTES / 4);
    this.rx = new ByteRing(sab, at + CTL_BYTES, RING_BYTES);
    this.tx = new ByteRing(sab, at + CTL_BYTES + byteRingBytes(RING_BYTES), RING_BYTES);
  }
  get kind(): number { return Atomics.load(this.ctl, C.KIND); }
  hostFlags(): number { return Atomics.load(this.ctl, C.HOST); }
  guestFlags(): number { return Atomics.load(this.ctl, C.GUEST); }
}

/** The header's words and every slot of a run's net memory. */
export class NetMemory {
  readonly header: Int32Array;
  readonly slots: Slot[];
  constructor(readonly sab: SharedArrayBuffer) {
    this.header = new Int32Array(sab, 0, HEADER_BYTES / 4);
    const n = Atomics.load(this.header, H.SLOTS);
    this.slots = Array.from({ length: n }, (_, i) => new Slot(sab, i));
  }
  /** The run's Waker cell, as an Int32Array of length 1. */
  wakerCell(): Int32Array {
    return new Int32Array(this.sab, H.WAKER * 4, 1);
  }
  /** Guest → host: something changed on some slot. */
  ring(): void {
    Atomics.add(this.header, H.DOORBELL, 1);
    Atomics.notify(this.header, H.DOORBELL);
  }
}
