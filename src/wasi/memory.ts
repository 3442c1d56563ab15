import { ERRNO } from './constants.js';
import { WasiError } from './errors.js';

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Bounds-checked access to a guest's linear memory. Every pointer and length a guest passes is
 * untrusted: an access outside memory is EFAULT for the guest, never a host exception.
 */
export class GuestMemory {
  private memory: WebAssembly.Memory | undefined;
  private shared = false;
  private buffer: ArrayBufferLike = new ArrayBuffer(0);
  /** Byte view of the current buffer; refreshed by `sync()` after memory.grow. */
  u8 = new Uint8Array(0);
  private dv = new DataView(this.buffer);

  /** Forgets the memory of the previous guest. */
  unbind(): void {
    this.memory = undefined;
    this.buffer = new ArrayBuffer(0);
    this.u8 = new Uint8Array(0);
    this.dv = new DataView(this.buffer);
  }

  /** Binds the guest's exported (or imported) memory. */
  bind(memory: WebAssembly.Memory): void {
    this.memory = memory;
    this.shared = !(memory.buffer instanceof ArrayBuffer);
    this.u8 = new Uint8Array(0);
    this.sync();
  }

  /**
   * Re-reads memory.buffer after the guest grew its memory. Growing detaches a non-shared buffer
   * (its views drop to length 0), so only shared memories need the getter on every call.
   */
  sync(): this {
    if (this.u8.length === 0 || this.shared) {
      const m = this.memory;
      if (m === undefined) throw new WasiError(ERRNO.FAULT, 'guest memory is not bound yet');
      const b = m.buffer;
      if (b !== this.buffer) {
        this.buffer = b;
        this.u8 = new Uint8Array(b);
        this.dv = new DataView(b);
      }
    }
    return this;
  }

  /** Throws EFAULT unless [ptr, ptr+len) lies inside memory. */
  check(ptr: number, len: number): void {
    if (ptr < 0 || len < 0 || ptr + len > this.u8.length) {
      throw new WasiError(ERRNO.FAULT, `guest pointer ${ptr}+${len} is outside its ${this.u8.length}-byte memory`);
    }
  }

  /** A view (not a copy) of guest bytes. */
  bytes(ptr: number, len: number): Uint8Array {
    ptr >>>= 0; len >>>= 0;
    this.check(ptr, len);
    return this.u8.subarray(ptr, ptr + len);
  }

  /** Decodes a UTF-8 string; invalid UTF-8 is EILSEQ. */
  string(ptr: number, len: number): string {
    const view = this.bytes(ptr, len);
    // Most paths are short ASCII: build those directly rather than through TextDecoder.
    if (view.length <= 64) {
      let ascii = true;
      for (let i = 0; i < view.length; i++) if (view[i]! > 0x7f) { ascii = false; break; }
      if (ascii) return String.fromCharCode.apply(null, view as unknown as number[]);
    }
    try {
      // TextDecoder refuses views of shared memory, so shared memories are copied first.
      return decoder.decode(this.buffer instanceof ArrayBuffer ? view : view.slice());
    } catch {
      throw new WasiError(ERRNO.ILSEQ, 'string is not valid UTF-8');
    }
  }

  u8At(ptr: number): number { ptr >>>= 0; this.check(ptr, 1); return this.u8[ptr]!; }
  u16(ptr: number): number { ptr >>>= 0; this.check(ptr, 2); return this.dv.getUint16(ptr, true); }
  u32(ptr: number): number { ptr >>>= 0; this.check(ptr, 4); return this.dv.getUint32(ptr, true); }
  u64(ptr: number): bigint { ptr >>>= 0; this.check(ptr, 8); return this.dv.getBigUint64(ptr, true); }
  setU8(ptr: number, v: number): void { ptr >>>= 0; this.check(ptr, 1); this.u8[ptr] = v; }
  setU16(ptr: number, v: number): void { ptr >>>= 0; this.check(ptr, 2); this.dv.setUint16(ptr, v, true); }
  setU32(ptr: number, v: number): void { ptr >>>= 0; this.check(ptr, 4); this.dv.setUint32(ptr, v, true); }
  setU64(ptr: number, v: bigint): void { ptr >>>= 0; this.check(ptr, 8); this.dv.setBigUint64(ptr, BigInt.asUintN(64, v), true); }

  /**
   * Reads an iovec array into views of guest memory. The count is capped and every buffer is
   * bounds-checked before any byte moves, so a bad entry fails the call without partial effects.
   */
  iovecs(ptr: number, count: number, cap: number): Uint8Array[] {
    count >>>= 0; ptr >>>= 0;
    if (count > cap) throw new WasiError(ERRNO.INVAL, `${count} iovecs exceed the cap of ${cap}`);
    this.check(ptr, count * 8);
    const out = new Array<Uint8Array>(count);
    const dv = this.dv;
    for (let i = 0; i < count; i++) {
      const buf = dv.getUint32(ptr + i * 8, true);
      const len = dv.getUint32(ptr + i * 8 + 4, true);
      this.check(buf, len);
      out[i] = this.u8.subarray(buf, buf + len);
    }
    return out;
  }
}
