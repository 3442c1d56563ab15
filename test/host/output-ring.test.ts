/** The output ring on its own: order, wrap-around (of the data area and of the 32-bit positions), coalescing. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createRing, RecordKind, RingReader, RingWriter } from '../../src/host/worker/output-ring.js';

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

function drained(reader: RingReader): [RecordKind, string][] {
  const out: [RecordKind, string][] = [];
  reader.drain((kind, b) => out.push([kind, text(b)]));
  return out;
}

describe('output ring', () => {
  it('hands records over in order: adjacent bytes of one stream joined, audit records one by one', () => {
    const sab = createRing(64);
    const w = new RingWriter(sab);
    const r = new RingReader(sab);
    w.write(RecordKind.stdout, bytes('ab'));
    w.write(RecordKind.stdout, bytes('c'));
    w.write(RecordKind.audit, bytes('{"a":1}'));
    w.write(RecordKind.audit, bytes('{"a":2}'));
    w.write(RecordKind.stderr, bytes('e'));
    w.write(RecordKind.stdout, bytes('d'));
    expect(drained(r)).toEqual([[RecordKind.stdout, 'abc'], [RecordKind.audit, '{"a":1}'], [RecordKind.audit, '{"a":2}'], [RecordKind.stderr, 'e'], [RecordKind.stdout, 'd']]);
    expect(drained(r)).toEqual([]);
  });

  it('records that wrap around the end of the data area and past 2^32 bytes come out whole', () => {
    const sab = createRing(64);
    // Positions just short of 2^32, so the next records cross both ends.
    new Int32Array(sab, 0, 2).fill(-20);
    const w = new RingWriter(sab);
    const r = new RingReader(sab);
    const seen: string[] = [];
    for (let i = 0; i < 40; i++) {
      const s = `record ${i} ${'.'.repeat(i % 20)}`;
      w.write(i % 2 ? RecordKind.stdout : RecordKind.stderr, bytes(s));
      for (const [, t] of drained(r)) seen.push(t);
    }
    expect(seen).toEqual(Array.from({ length: 40 }, (_, i) => `record ${i} ${'.'.repeat(i % 20)}`));
    expect(new Int32Array(sab, 0, 2)[0]! >>> 0).toBeLessThan(2 ** 31);
  });

  it('refuses a size that is not a power of two', () => {
    expect(() => createRing(1000)).toThrow(/power of two/);
  });

  describe('waking the reader', () => {
    afterEach(() => { vi.restoreAllMocks(); });
    /** Wakes of the reader (notify on the write position, index 0) while `fn` runs. */
    const wakes = (sab: SharedArrayBuffer, fn: () => void): number => {
      const ctl = new Int32Array(sab, 0, 4);
      const spy = vi.spyOn(Atomics, 'notify');
      fn();
      const n = spy.mock.calls.filter(([ta, index]) => (ta as unknown as Int32Array).buffer === ctl.buffer && index === 0).length;
      spy.mockRestore();
      return n;
    };

    it('a streaming run\'s writes wake the reader once its quiet start is over, each of them', () => {
      const sab = createRing(1024);
      const w = new RingWriter(sab);
      w.eagerFrom = performance.now();
      expect(wakes(sab, () => { w.write(RecordKind.stdout, bytes('a')); w.write(RecordKind.stdout, bytes('b')); })).toBe(2);
    });

    it('writes before then (and a collected run\'s) do not, until the ring is half full', () => {
      const sab = createRing(1024);
      const w = new RingWriter(sab);
      const r = new RingReader(sab);
      w.eagerFrom = performance.now() + 60_000;
      expect(wakes(sab, () => { w.write(RecordKind.stdout, bytes('a')); w.write(RecordKind.stdout, bytes('b')); })).toBe(0);
      expect(drained(r)).toEqual([[RecordKind.stdout, 'ab']]);
      w.eagerFrom = Infinity;
      expect(wakes(sab, () => w.write(RecordKind.stdout, bytes('c')))).toBe(0);
      expect(wakes(sab, () => w.write(RecordKind.stdout, new Uint8Array(600)))).toBeGreaterThan(0);
    });
  });
});
